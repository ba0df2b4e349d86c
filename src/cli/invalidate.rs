//! `invalidate`: normalize the paths, submit one CreateInvalidation (waiting for an in-progress
//! slot and retrying transient errors inside `--timeout`), and with `--wait` poll until
//! CloudFront reports it completed.

use std::time::{Duration, Instant};

use clap::{ArgAction, Args};

use super::caller_reference::{Source, keyed_caller_reference, per_run_caller_reference};
use super::cost::estimate_cost;
use super::manifest::{self, validate_caller_reference};
use super::output::{self, ErrorReport, InvalidateReport};
use super::progress::{Mode, Progress, format_duration};
use super::{
    CALL_GRACE, ClientArgs, Exit, InputError, NO_CREDENTIALS, OutputFormat,
    validate_distribution_id,
};
use crate::cloudfront::{
    CloudFront, CloudFrontError, CreateInvalidation, Disposition, FailureReason, Invalidation,
    classify,
};
use crate::controller::{PollSettings, RetrySettings};
use crate::crd::DEFAULT_TIMEOUT_SECONDS;
use crate::paths::{self, NormalizedPaths, PathError, PathErrors};
use crate::polling::CompletionModel;

/// `invalidate`: create one CloudFront invalidation, optionally wait for it.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Exit codes: 0 completed (or submitted, without --wait; or a dry run), \
1 failed, 2 usage error, 3 invalid input (nothing sent), 4 timed out. See docs/cli.md."
)]
pub struct InvalidateArgs {
    /// Id of the CloudFront distribution, e.g. E2QWRUHAPOMQZL.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "filename",
        conflicts_with = "filename"
    )]
    pub distribution_id: Option<String>,

    /// A path to invalidate; repeat the flag or give several values (`--path /index.html
    /// '/static/*'`). The leading `/` is optional; `*` only as the last character. Duplicates
    /// and paths covered by a wildcard are dropped (not billed).
    #[arg(
        long = "path",
        visible_alias = "paths",
        value_name = "PATH",
        num_args = 1..,
        action = ArgAction::Append,
        required_unless_present = "filename",
        conflicts_with = "filename"
    )]
    pub paths: Vec<String>,

    /// Take distribution, paths, callerReference and timeoutSeconds from a
    /// CloudFrontInvalidation manifest (the file `kubectl apply -f` takes); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Option<String>,

    /// CloudFront's CallerReference, sent as given (1 to 128 characters). Default: see
    /// --idempotency-key.
    #[arg(long, value_name = "REF", conflicts_with = "idempotency_key")]
    pub caller_reference: Option<String>,

    /// Makes the CallerReference a hash of distribution, paths and this key, so a retried
    /// pipeline step gets the invalidation it already created instead of a new (billed) one.
    /// Use the pipeline's run id: "$CI_PIPELINE_ID", "${{ github.run_id }}". Without it (and
    /// without --caller-reference) every run creates a new invalidation.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,

    /// Wait until CloudFront reports the invalidation completed (else exit once it is
    /// submitted).
    #[arg(long)]
    pub wait: bool,

    /// Give up after this long (exit 4): waiting for an in-progress slot, retrying transient
    /// errors and, with --wait, waiting for completion. E.g. `90s`, `15m`. Default: the
    /// manifest's timeoutSeconds, else 15m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,

    /// Print the normalized paths, what was dropped, the billed count and the cost, and send
    /// nothing (no credentials needed).
    #[arg(long)]
    pub dry_run: bool,

    /// For --dry-run's cost: paths the AWS account already invalidated this month (default:
    /// assume the 1,000 free paths are used up).
    #[arg(long, value_name = "N", requires = "dry_run")]
    pub paths_this_month: Option<u64>,

    /// No progress lines on stderr (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub client: ClientArgs,

    /// Shortest interval between GetInvalidation polls.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration, hide_short_help = true)]
    pub poll_min_interval: Duration,

    /// Longest interval between GetInvalidation polls. Polls are sparse before completion is
    /// plausible (about 10 s), dense while it is likely, and back off past the tail.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, hide_short_help = true)]
    pub poll_max_interval: Duration,

    /// First backoff after a transient error or a full distribution (doubles per attempt,
    /// with jitter).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration, hide_short_help = true)]
    pub retry_base_delay: Duration,

    /// Longest backoff.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, hide_short_help = true)]
    pub retry_max_delay: Duration,

    /// How often a "still waiting" line is printed when stderr is not a terminal.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, hide_short_help = true)]
    pub progress_interval: Duration,
}

/// What to do, once the input is checked.
#[derive(Clone, Debug)]
struct Plan {
    distribution_id: String,
    /// The paths to send, sorted (so two runs send byte-identical batches).
    normalized: NormalizedPaths,
    caller_reference: String,
    reference_source: Source,
    wait: bool,
    timeout: Duration,
}

impl Plan {
    fn from_args(args: &InvalidateArgs) -> Result<Self, InputError> {
        let (distribution_id, raw_paths, manifest_reference, manifest_timeout) =
            match &args.filename {
                Some(file) => {
                    let m = manifest::load(file)?;
                    (
                        m.distribution_id,
                        m.paths,
                        m.caller_reference,
                        Some(m.timeout),
                    )
                }
                None => (
                    args.distribution_id.clone().unwrap_or_default(),
                    args.paths.clone(),
                    None,
                    None,
                ),
            };
        validate_distribution_id(&distribution_id)?;
        let mut normalized = paths::normalize(&raw_paths)
            .map_err(|e| path_errors(&e, &raw_paths, args.filename.is_some()))?;
        normalized.paths.sort_unstable();

        let explicit = match (&args.caller_reference, manifest_reference) {
            (Some(r), _) => Some((r.clone(), Source::Flag)),
            (None, Some(r)) => Some((r, Source::Manifest)),
            (None, None) => None,
        };
        let (caller_reference, reference_source) = match (explicit, &args.idempotency_key) {
            (Some((_, Source::Manifest)), Some(_)) => {
                return Err(InputError::new(
                    "--idempotency-key has no effect: the manifest sets spec.callerReference, \
                     which is sent as written; remove one of them",
                ));
            }
            (Some((reference, source)), _) => {
                validate_caller_reference(&reference)
                    .map_err(|e| InputError::new(format!("--caller-reference: {e}")))?;
                (reference, source)
            }
            (None, Some(key)) if key.trim().is_empty() => {
                return Err(InputError::new(
                    "--idempotency-key is empty: is the variable you pass set? \
                     (an empty key would make every run share one caller reference)",
                ));
            }
            (None, Some(key)) => (
                keyed_caller_reference(&distribution_id, &normalized.paths, key),
                Source::IdempotencyKey,
            ),
            (None, None) => (per_run_caller_reference(), Source::PerRun),
        };

        let timeout = args
            .timeout
            .or(manifest_timeout)
            .unwrap_or(Duration::from_secs(DEFAULT_TIMEOUT_SECONDS.into()));
        if timeout.is_zero() {
            return Err(InputError::new("--timeout must be more than zero"));
        }
        Ok(Self {
            distribution_id,
            normalized,
            caller_reference,
            reference_source,
            wait: args.wait,
            timeout,
        })
    }
}

/// The path engine's errors, worded for where the paths came from: a manifest keeps the
/// engine's `spec.paths[i]`; flags name the path (1-based) as given.
fn path_errors(errors: &PathErrors, raw: &[String], from_manifest: bool) -> InputError {
    if from_manifest {
        return InputError::new(errors.to_string());
    }
    let messages: Vec<String> = errors
        .0
        .iter()
        .map(|e| {
            let index = match e {
                PathError::EmptyPath { index }
                | PathError::WildcardNotLast { index, .. }
                | PathError::TooLong { index, .. } => Some(*index),
                _ => None,
            };
            let text = e.to_string();
            match (index, text.split_once(": ")) {
                (Some(i), Some((_, rule))) => {
                    // The engine's message may end with the path; it is named first here.
                    let rule = rule
                        .strip_suffix(&format!(": {:?}", raw[i]))
                        .unwrap_or(rule);
                    format!("--path {:?}: {rule}", raw[i])
                }
                _ => text.replacen("spec.paths", "--path", 1),
            }
        })
        .collect();
    InputError::new(messages.join("; "))
}

/// Polling and backoff, from the flags.
#[derive(Clone, Debug)]
struct Tuning {
    poll: PollSettings,
    retry: RetrySettings,
}

impl Tuning {
    fn from_args(args: &InvalidateArgs) -> Self {
        Self {
            poll: PollSettings {
                min_interval: args.poll_min_interval,
                max_interval: args.poll_max_interval,
                ..PollSettings::default()
            },
            retry: RetrySettings {
                base: args.retry_base_delay,
                max: args.retry_max_delay,
            },
        }
    }
}

/// Where a run that timed out was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// CreateInvalidation kept failing with transient errors (or did not answer).
    Submitting,
    /// The distribution had no free in-progress slot.
    WaitingForSlot,
    /// Submitted, not completed.
    InProgress,
}

/// How a run ended.
#[derive(Debug)]
enum Outcome {
    Completed(Invalidation),
    Submitted(Invalidation),
    Failed {
        reason: FailureReason,
        operation: &'static str,
        error: CloudFrontError,
        invalidation: Option<Invalidation>,
    },
    TimedOut {
        stage: Stage,
        invalidation: Option<Invalidation>,
        last_error: Option<CloudFrontError>,
    },
}

/// Runs `invalidate` and returns its exit code. Results on stdout, progress on stderr.
pub async fn invalidate(args: InvalidateArgs) -> Exit {
    let format = args.client.output;
    let plan = match Plan::from_args(&args) {
        Ok(plan) => plan,
        Err(err) => return invalid_input(format, &args, &err),
    };
    if args.dry_run {
        return dry_run(format, &plan, args.paths_this_month);
    }
    let progress = Progress::new(Mode::detect(args.quiet), args.progress_interval);
    if plan.reference_source == Source::PerRun {
        progress.line(
            "note: no --idempotency-key: running this step again creates (and bills) a new \
             invalidation; pass e.g. --idempotency-key \"$CI_PIPELINE_ID\" to make retries free",
        );
    }
    let cloudfront = match args.client.client().await {
        Ok(client) => client,
        Err(message) => {
            progress.finish();
            return no_credentials(format, &plan, message);
        }
    };
    let outcome = run(&cloudfront, &plan, &Tuning::from_args(&args), &progress).await;
    let elapsed = progress.elapsed();
    progress.finish();
    finish(format, &plan, outcome, elapsed)
}

fn invalid_input(format: OutputFormat, args: &InvalidateArgs, err: &InputError) -> Exit {
    eprintln!("error: {err}");
    if format == OutputFormat::Json {
        let report = InvalidateReport {
            outcome: "invalidInput",
            exit_code: Exit::InvalidInput.code(),
            distribution_id: args.distribution_id.clone(),
            error: Some(ErrorReport {
                reason: "InvalidInput".into(),
                code: None,
                message: err.to_string(),
            }),
            ..Default::default()
        };
        output::emit(format, &report, output::invalidate_text);
    }
    Exit::InvalidInput
}

fn no_credentials(format: OutputFormat, plan: &Plan, message: String) -> Exit {
    eprintln!("error: {message}");
    if format == OutputFormat::Json {
        let mut report = base_report(plan, "failed", Exit::Failed);
        report.error = Some(ErrorReport {
            reason: NO_CREDENTIALS.into(),
            code: None,
            message,
        });
        output::emit(format, &report, output::invalidate_text);
    }
    Exit::Failed
}

fn base_report(plan: &Plan, outcome: &'static str, exit: Exit) -> InvalidateReport {
    InvalidateReport {
        outcome,
        exit_code: exit.code(),
        distribution_id: Some(plan.distribution_id.clone()),
        caller_reference: Some(plan.caller_reference.clone()),
        caller_reference_source: Some(plan.reference_source.as_str()),
        ..Default::default()
    }
    .with_paths(&plan.normalized)
}

fn dry_run(format: OutputFormat, plan: &Plan, paths_this_month: Option<u64>) -> Exit {
    let mut report = base_report(plan, "dryRun", Exit::Success);
    if plan.reference_source == Source::PerRun {
        // A random reference now would not be the one a real run sends.
        report.caller_reference = None;
    }
    report.cost = Some(estimate_cost(plan.normalized.billed() as u64, paths_this_month).into());
    output::emit(format, &report, output::invalidate_text);
    Exit::Success
}

/// Prints the outcome and returns the exit code.
fn finish(format: OutputFormat, plan: &Plan, outcome: Outcome, elapsed: Duration) -> Exit {
    let dist = &plan.distribution_id;
    let (name, exit, invalidation, error) = match outcome {
        Outcome::Completed(inv) => ("completed", Exit::Success, Some(inv), None),
        Outcome::Submitted(inv) => ("submitted", Exit::Success, Some(inv), None),
        Outcome::Failed {
            reason,
            operation,
            error,
            invalidation,
        } => {
            let message = failure_message(plan, reason, operation, &error);
            let report = ErrorReport {
                reason: reason.as_str().to_owned(),
                code: error.code.clone(),
                message,
            };
            ("failed", Exit::Failed, invalidation, Some(report))
        }
        Outcome::TimedOut {
            stage,
            invalidation,
            last_error,
        } => {
            let after = format_duration(plan.timeout);
            let last = last_error
                .as_ref()
                .map_or_else(String::new, |e| format!(" (last error: {e})"));
            let message = match (stage, &invalidation) {
                (Stage::InProgress, Some(inv)) => format!(
                    "timed out after {after}: invalidation {} is still {} (CloudFront will \
                     finish it; it cannot be cancelled); check later with `get \
                     --distribution-id {dist} --id {}`{last}",
                    inv.id,
                    output::status_str(&inv.status),
                    inv.id
                ),
                (Stage::WaitingForSlot, _) => format!(
                    "timed out after {after} waiting for an in-progress slot on distribution \
                     {dist}; nothing was submitted"
                ),
                _ => format!(
                    "timed out after {after} submitting the invalidation{last}; it may or may \
                     not have been created: running again with the same caller reference ({}) \
                     is safe",
                    plan.caller_reference
                ),
            };
            let report = ErrorReport {
                reason: FailureReason::Timeout.as_str().to_owned(),
                code: last_error.and_then(|e| e.code),
                message,
            };
            ("timedOut", Exit::TimedOut, invalidation, Some(report))
        }
    };
    let mut report = base_report(plan, name, exit);
    report.elapsed_seconds = Some((elapsed.as_secs_f64() * 1000.0).round() / 1000.0);
    if let Some(inv) = &invalidation {
        report = report.with_invalidation(inv);
    }
    if let Some(error) = &error {
        eprintln!("error: {}", error.message);
    }
    report.error = error;
    // Text goes to stdout only when there is an invalidation to show; JSON always.
    if format == OutputFormat::Json || invalidation.is_some() {
        output::emit(format, &report, output::invalidate_text);
    }
    exit
}

fn failure_message(
    plan: &Plan,
    reason: FailureReason,
    operation: &str,
    err: &CloudFrontError,
) -> String {
    let dist = &plan.distribution_id;
    let hint = match reason {
        FailureReason::DistributionNotFound => format!(
            "distribution {dist} does not exist, or belongs to another AWS account than these \
             credentials"
        ),
        FailureReason::AccessDenied => format!(
            "these credentials may not invalidate distribution {dist}: grant \
             cloudfront:CreateInvalidation, cloudfront:GetInvalidation and \
             cloudfront:ListInvalidations on it"
        ),
        FailureReason::CallerReferenceConflict => format!(
            "caller reference {} was already used for other paths; use another \
             --caller-reference or --idempotency-key",
            plan.caller_reference
        ),
        FailureReason::InvalidationNotFound => {
            "CloudFront no longer knows the invalidation it returned".to_owned()
        }
        FailureReason::InvalidPaths => "CloudFront rejected the paths".to_owned(),
        _ => format!("CloudFront refused the request ({reason})"),
    };
    format!("{hint}: {operation}: {err}")
}

/// The state machine: submit (waiting for a slot, retrying), then poll until done.
async fn run(cf: &dyn CloudFront, plan: &Plan, tuning: &Tuning, progress: &Progress) -> Outcome {
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let dist = &plan.distribution_id;
    let request = CreateInvalidation {
        distribution_id: dist.clone(),
        caller_reference: plan.caller_reference.clone(),
        paths: plan.normalized.paths.clone(),
    };
    let dropped = match plan.normalized.dropped.len() {
        0 => String::new(),
        n => format!(", {n} duplicate or covered path(s) dropped"),
    };
    progress.line(format!(
        "submitting {} path(s) to distribution {dist}{dropped} (caller reference {})",
        plan.normalized.billed(),
        plan.caller_reference
    ));
    progress.waiting("submitting");

    let mut attempt = 0u32;
    let mut queued = false;
    let submitted = loop {
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .max(CALL_GRACE);
        let err = match tokio::time::timeout(bound, cf.create_invalidation(&request)).await {
            Ok(Ok(invalidation)) => break invalidation,
            Ok(Err(err)) => err,
            Err(_) => {
                return Outcome::TimedOut {
                    stage: Stage::Submitting,
                    invalidation: None,
                    last_error: Some(CloudFrontError::timeout(
                        "CreateInvalidation did not answer before the timeout",
                    )),
                };
            }
        };
        let disposition = classify(&err);
        if let Disposition::Fail(reason) = disposition {
            return Outcome::Failed {
                reason,
                operation: "CreateInvalidation",
                error: err,
                invalidation: None,
            };
        }
        let now = Instant::now();
        if now >= deadline {
            let stage = if disposition == Disposition::Queue {
                Stage::WaitingForSlot
            } else {
                Stage::Submitting
            };
            return Outcome::TimedOut {
                stage,
                invalidation: None,
                last_error: Some(err),
            };
        }
        let delay = tuning
            .retry
            .delay(attempt, &mut rand::rng())
            .min(deadline - now);
        attempt = attempt.saturating_add(1);
        match disposition {
            Disposition::Queue if !queued => {
                queued = true;
                progress.line(format!(
                    "distribution {dist} has too many invalidations in progress (CloudFront \
                     allows 15 wildcard paths and 3,000 other paths in progress at once); \
                     waiting for a slot, up to {} more",
                    format_duration(deadline - now)
                ));
                progress.waiting(format!("waiting for an in-progress slot on {dist}"));
            }
            Disposition::Queue => {}
            _ => progress.line(format!(
                "CreateInvalidation failed, retrying in {}: {err}",
                format_duration(delay)
            )),
        }
        progress.sleep(delay).await;
    };

    let id = submitted.id.clone();
    let status = output::status_str(&submitted.status).to_owned();
    if submitted.status.is_completed() {
        // CloudFront never creates an invalidation that is done at once: this is the one an
        // earlier run created with the same caller reference.
        let created = submitted
            .create_time
            .map_or_else(String::new, |t| format!(" at {t:.0}"));
        progress.line(format!(
            "invalidation {id} {status}: CloudFront returned the invalidation created{created} \
             with this caller reference (nothing new is billed)"
        ));
        return Outcome::Completed(submitted);
    }
    progress.line(format!(
        "invalidation {id} {status} ({} path(s))",
        plan.normalized.billed()
    ));
    if !plan.wait {
        return Outcome::Submitted(submitted);
    }

    progress.waiting(format!("waiting for invalidation {id} to complete"));
    let submitted_at = Instant::now();
    let mut current = submitted;
    let mut retries = 0u32;
    let mut last_error;
    // A one-shot process has seen no completions: the engine's prior window (CloudFront's
    // documented times) shapes the schedule; one invalidation, so no batched List.
    let window = CompletionModel::new(tuning.poll.prior_median).window(dist);
    loop {
        let now = Instant::now();
        let delay = if retries == 0 {
            tuning.poll.next_poll(now - submitted_at, window, false)
        } else {
            tuning.retry.delay(retries - 1, &mut rand::rng())
        };
        progress
            .sleep(delay.min(deadline.saturating_duration_since(now)))
            .await;
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .max(CALL_GRACE);
        match tokio::time::timeout(bound, cf.get_invalidation(dist, &id)).await {
            Ok(Ok(polled)) => {
                retries = 0;
                last_error = None;
                if polled.status != current.status {
                    let status = output::status_str(&polled.status).to_owned();
                    let after = format_duration(submitted_at.elapsed());
                    progress.line(format!("invalidation {id} {status} after {after}"));
                }
                current = Invalidation {
                    paths: current.paths,
                    ..polled
                };
                if current.status.is_completed() {
                    return Outcome::Completed(current);
                }
            }
            Ok(Err(err)) => match classify(&err) {
                Disposition::Fail(reason) => {
                    return Outcome::Failed {
                        reason,
                        operation: "GetInvalidation",
                        error: err,
                        invalidation: Some(current),
                    };
                }
                Disposition::Queue | Disposition::Retry => {
                    retries = retries.saturating_add(1);
                    progress.line(format!("GetInvalidation failed, will retry: {err}"));
                    last_error = Some(err);
                }
            },
            Err(_) => {
                last_error = Some(CloudFrontError::timeout(
                    "GetInvalidation did not answer before the timeout",
                ));
            }
        }
        if Instant::now() >= deadline {
            return Outcome::TimedOut {
                stage: Stage::InProgress,
                invalidation: Some(current),
                last_error,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: InvalidateArgs,
    }

    fn parse(argv: &[&str]) -> Result<InvalidateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("invalidate").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    fn plan(argv: &[&str]) -> Result<Plan, InputError> {
        Plan::from_args(&parse(argv).expect("valid usage"))
    }

    #[test]
    fn paths_repeat_or_take_several_values() {
        let a = parse(&["--distribution-id", "E2", "--path", "/a", "--path", "/b"]).unwrap();
        assert_eq!(a.paths, ["/a", "/b"]);
        let a = parse(&[
            "--distribution-id",
            "E2",
            "--path",
            "/a",
            "/b",
            "--paths",
            "/c",
        ])
        .unwrap();
        assert_eq!(a.paths, ["/a", "/b", "/c"]);
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        for argv in [
            &["--path", "/a"][..],
            &["--distribution-id", "E2"],
            &["--distribution-id", "E2", "-f", "m.yaml"],
            &["-f", "m.yaml", "--path", "/a"],
            &[
                "--distribution-id",
                "E2",
                "--path",
                "/a",
                "--caller-reference",
                "r",
                "--idempotency-key",
                "k",
            ],
            &[
                "--distribution-id",
                "E2",
                "--path",
                "/a",
                "--paths-this-month",
                "3",
            ],
            &[
                "--distribution-id",
                "E2",
                "--path",
                "/a",
                "--timeout",
                "soon",
            ],
        ] {
            let err = parse(argv).expect_err(&format!("{argv:?}"));
            assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
        }
    }

    #[test]
    fn plan_sorts_paths_and_hashes_the_key() {
        let p = plan(&[
            "--distribution-id",
            "E2EXAMPLE",
            "--path",
            "/z",
            "a",
            "/img/*",
            "/img/x",
            "--idempotency-key",
            "42",
        ])
        .unwrap();
        assert_eq!(p.normalized.paths, ["/a", "/img/*", "/z"]);
        assert_eq!(p.normalized.dropped.len(), 1);
        assert_eq!(p.reference_source, Source::IdempotencyKey);
        let same = plan(&[
            "--distribution-id",
            "E2EXAMPLE",
            "--path",
            "/img/*",
            "/a",
            "z",
            "--idempotency-key",
            "42",
        ])
        .unwrap();
        assert_eq!(p.caller_reference, same.caller_reference);
        assert_eq!(p.timeout, Duration::from_secs(900));
        assert!(!p.wait);
    }

    #[test]
    fn plan_reference_sources() {
        let p = plan(&["--distribution-id", "E2", "--path", "/a"]).unwrap();
        assert_eq!(p.reference_source, Source::PerRun);
        assert!(p.caller_reference.starts_with("cfinv-run-"));
        let p = plan(&[
            "--distribution-id",
            "E2",
            "--path",
            "/a",
            "--caller-reference",
            "r1",
        ])
        .unwrap();
        assert_eq!(p.reference_source, Source::Flag);
        assert_eq!(p.caller_reference, "r1");
    }

    #[test]
    fn plan_rejects_bad_input() {
        let long = "r".repeat(129);
        let cases: [(&[&str], &str); 6] = [
            (
                &["--distribution-id", "E2", "--path", "/a*b"],
                "--path \"/a*b\": \"*\" is allowed only as the last character",
            ),
            (
                &["--distribution-id", "E2", "--path", "/ok", "--path", ""],
                "--path \"\": a path must not be empty",
            ),
            (
                &["--distribution-id", "e2", "--path", "/a"],
                "distribution id \"e2\" is not valid",
            ),
            (
                &[
                    "--distribution-id",
                    "E2",
                    "--path",
                    "/a",
                    "--caller-reference",
                    &long,
                ],
                "--caller-reference: a caller reference may be at most 128",
            ),
            (
                &[
                    "--distribution-id",
                    "E2",
                    "--path",
                    "/a",
                    "--idempotency-key",
                    "",
                ],
                "--idempotency-key is empty",
            ),
            (
                &["--distribution-id", "E2", "--path", "/a", "--timeout", "0s"],
                "--timeout must be more than zero",
            ),
        ];
        for (argv, expected) in cases {
            let err = plan(argv).expect_err(expected).to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn manifest_plan() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.yaml");
        std::fs::write(
            &file,
            "apiVersion: cloudfront.invalidation.io/v1alpha1\nkind: CloudFrontInvalidation\n\
             metadata:\n  name: x\nspec:\n  distributionId: E2EXAMPLE\n  callerReference: rel-1\n  \
             timeoutSeconds: 120\n  paths: [\"/b\", \"/a*b\"]\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let err = plan(&["-f", f]).unwrap_err().to_string();
        assert!(err.starts_with("spec.paths[1]:"), "{err}");

        std::fs::write(
            &file,
            "apiVersion: cloudfront.invalidation.io/v1alpha1\nkind: CloudFrontInvalidation\n\
             metadata:\n  name: x\nspec:\n  distributionId: E2EXAMPLE\n  callerReference: rel-1\n  \
             timeoutSeconds: 120\n  paths: [\"/b\", \"a\"]\n",
        )
        .unwrap();
        let p = plan(&["-f", f, "--wait"]).unwrap();
        assert_eq!(p.distribution_id, "E2EXAMPLE");
        assert_eq!(p.normalized.paths, ["/a", "/b"]);
        assert_eq!(p.caller_reference, "rel-1");
        assert_eq!(p.reference_source, Source::Manifest);
        assert_eq!(p.timeout, Duration::from_secs(120));
        assert!(p.wait);
        // The flags win over the manifest.
        let p = plan(&["-f", f, "--timeout", "5m", "--caller-reference", "mine"]).unwrap();
        assert_eq!(p.timeout, Duration::from_secs(300));
        assert_eq!(p.caller_reference, "mine");
        assert_eq!(p.reference_source, Source::Flag);
        // A key next to the manifest's reference would be silently ignored: refused.
        let err = plan(&["-f", f, "--idempotency-key", "1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--idempotency-key has no effect"), "{err}");
    }
}
