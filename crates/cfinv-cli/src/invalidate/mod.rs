//! `invalidate`: normalize the paths, submit one CreateInvalidation (waiting for an in-progress
//! slot and retrying transient errors inside `--timeout`), and with `--wait` poll until
//! CloudFront reports it completed.

mod args;
mod plan;
mod report;
#[cfg(test)]
mod tests;
mod wait;

use crate::Exit;
use crate::caller_reference::Source;
use crate::progress::{Mode, Progress};
use args::Tuning;
use cfinv_cloudfront::{CloudFrontError, FailureReason, Invalidation};
use plan::Plan;
use report::{dry_run, finish, invalid_input, no_credentials};
use wait::run;

pub use args::InvalidateArgs;

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
