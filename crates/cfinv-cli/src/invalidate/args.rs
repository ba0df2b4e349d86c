//! The `invalidate` command line, and the polling and backoff it sets.

use std::time::Duration;

use clap::{ArgAction, Args};

use crate::ClientArgs;
use cfinv_cloudfront::{backoff::RetrySettings, polling::PollSettings};

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
        required_unless_present_any = ["filename", "distribution_tenant_id"],
        conflicts_with_all = ["filename", "distribution_tenant_id"]
    )]
    pub distribution_id: Option<String>,

    /// Id of a distribution tenant of a multi-tenant distribution, e.g.
    /// dt_2yMvQgam3QkJo2z54FDl91dk1AB: the invalidation goes through
    /// CreateInvalidationForDistributionTenant. Instead of --distribution-id.
    #[arg(long, value_name = "ID", conflicts_with = "filename")]
    pub distribution_tenant_id: Option<String>,

    /// A path to invalidate; repeat the flag or give several values (`--path /index.html
    /// '/static/*'`). The leading `/` is optional; `*` only as the last character. Duplicates
    /// and paths covered by a wildcard are dropped (not billed).
    #[arg(
        long = "path",
        visible_alias = "paths",
        value_name = "PATH",
        num_args = 1..,
        action = ArgAction::Append,
        required_unless_present_any = ["filename", "tags"],
        conflicts_with = "filename"
    )]
    pub paths: Vec<String>,

    /// A cache tag to invalidate (repeatable): every cached object carrying it, on a
    /// distribution with a CacheTagConfig. The same as `--path '#TAG'`; the leading `#` is
    /// optional here. Tags ignore case; duplicates are sent once.
    #[arg(
        long = "tag",
        value_name = "TAG",
        num_args = 1..,
        action = ArgAction::Append,
        conflicts_with = "filename"
    )]
    pub tags: Vec<String>,

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

    /// Longest interval between two GetInvalidation polls. The first poll waits until completion
    /// is plausible (about 12 s, which may be longer), polls are dense while it is likely, and
    /// back off past the tail.
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

/// Polling and backoff, from the flags.
#[derive(Clone, Debug)]
pub(super) struct Tuning {
    pub(super) poll: PollSettings,
    pub(super) retry: RetrySettings,
}

impl Tuning {
    pub(super) fn from_args(args: &InvalidateArgs) -> Self {
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
