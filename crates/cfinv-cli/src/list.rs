//! `list` (recent invalidations of a distribution or of a distribution tenant, newest first,
//! like the console's list) and `get` (one invalidation with its paths).

use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::output::{self, ErrorReport, InvalidationReport, ListReport, SummaryReport};
use super::{
    CallError, ClientArgs, Exit, NO_CREDENTIALS, OutputFormat, call_with_retry, target_from_flags,
};
use cfinv_api::crd::Target;
use cfinv_cloudfront::backoff::RetrySettings;
use cfinv_cloudfront::{
    CloudFront, CloudFrontError, Disposition, FailureReason, classify, get_operation,
    list_operation,
};

/// Most invalidations CloudFront returns in one ListInvalidations page.
const MAX_PAGE_SIZE: u32 = 100;

/// Which distribution, or distribution tenant, `list` and `get` read.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Id of the CloudFront distribution.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "distribution_tenant_id",
        conflicts_with = "distribution_tenant_id"
    )]
    pub distribution_id: Option<String>,

    /// Id of a distribution tenant, e.g. dt_2yMvQgam3QkJo2z54FDl91dk1AB, read through the
    /// ...ForDistributionTenant operations. Instead of --distribution-id.
    #[arg(long, value_name = "ID")]
    pub distribution_tenant_id: Option<String>,
}

impl TargetArgs {
    /// The target; a malformed id is reported here (exit 3, no call made).
    fn resolve(&self, format: OutputFormat) -> Result<Target, Exit> {
        target_from_flags(
            self.distribution_id.as_deref(),
            self.distribution_tenant_id.as_deref(),
        )
        .map_err(|err| {
            error(
                format,
                Exit::InvalidInput,
                "InvalidInput",
                None,
                err.to_string(),
            )
        })
    }
}

/// `list`: recent invalidations of a distribution (or of a distribution tenant).
#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Show at most this many invalidations, newest first (0: all of them). Pages are
    /// followed as needed.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_items: u32,

    /// Invalidations asked for per ListInvalidations call (1 to 100).
    #[arg(long, value_name = "N", default_value_t = MAX_PAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=MAX_PAGE_SIZE as i64), hide_short_help = true)]
    pub page_size: u32,

    /// Give up after this long, retrying transient errors until then (exit 4).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `get`: one invalidation.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Id of the invalidation, e.g. I2J0I21PCUYOIK.
    #[arg(long, value_name = "ID")]
    pub id: String,

    /// Give up after this long, retrying transient errors until then (exit 4).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// Backoff between retries of `list` and `get`.
fn retry_settings() -> RetrySettings {
    RetrySettings {
        base: Duration::from_millis(500),
        max: Duration::from_secs(10),
    }
}

/// Runs `list` and returns its exit code.
pub async fn list(args: ListArgs) -> Exit {
    let format = args.client.output;
    let target = match args.target.resolve(format) {
        Ok(target) => target,
        Err(exit) => return exit,
    };
    let client = match args.client.client().await {
        Ok(client) => client,
        Err(message) => return error(format, Exit::Failed, NO_CREDENTIALS, None, message),
    };
    let cf: &dyn CloudFront = &client;
    let operation = list_operation(&target).as_str();
    let deadline = Instant::now() + args.timeout;
    let limit = (args.max_items > 0).then_some(args.max_items as usize);
    let mut items = Vec::new();
    let mut marker: Option<String> = None;
    let mut truncated = false;
    loop {
        let want = match limit {
            Some(limit) => (limit - items.len()).min(args.page_size as usize),
            None => args.page_size as usize,
        };
        let page = call_with_retry(deadline, &retry_settings(), operation, || {
            cf.list_for(&target, marker.as_deref(), Some(want as i32))
        })
        .await;
        let page = match page {
            Ok(page) => page,
            Err(err) => return call_error(format, &target, operation, err, args.timeout),
        };
        items.extend(page.items);
        if let Some(limit) = limit
            && items.len() >= limit
        {
            truncated = page.next_marker.is_some() || items.len() > limit;
            items.truncate(limit);
            break;
        }
        match page.next_marker {
            Some(next) if marker.as_deref() != Some(next.as_str()) => marker = Some(next),
            _ => break,
        }
    }
    let report = ListReport {
        target: (&target).into(),
        items: items.iter().map(SummaryReport::from).collect(),
        truncated,
    };
    output::emit(format, &report, output::list_text);
    if truncated && format == OutputFormat::Text {
        eprintln!(
            "showing the {} most recent invalidations; --max-items 0 lists all of them",
            report.items.len()
        );
    }
    Exit::Success
}

/// Runs `get` and returns its exit code.
pub async fn get(args: GetArgs) -> Exit {
    let format = args.client.output;
    let target = match args.target.resolve(format) {
        Ok(target) => target,
        Err(exit) => return exit,
    };
    if args.id.trim().is_empty() {
        let message = "the invalidation id must not be empty".to_owned();
        return error(format, Exit::InvalidInput, "InvalidInput", None, message);
    }
    let client = match args.client.client().await {
        Ok(client) => client,
        Err(message) => return error(format, Exit::Failed, NO_CREDENTIALS, None, message),
    };
    let cf: &dyn CloudFront = &client;
    let operation = get_operation(&target).as_str();
    let deadline = Instant::now() + args.timeout;
    let result = call_with_retry(deadline, &retry_settings(), operation, || {
        cf.get_for(&target, &args.id)
    })
    .await;
    match result {
        Ok(inv) => {
            let report = InvalidationReport::new(&target, &inv);
            output::emit(format, &report, output::invalidation_text);
            Exit::Success
        }
        Err(err) => call_error(format, &target, operation, err, args.timeout),
    }
}

fn call_error(
    format: OutputFormat,
    target: &Target,
    operation: &str,
    err: CallError,
    timeout: Duration,
) -> Exit {
    match err {
        CallError::Failed(err) => {
            let reason = match classify(&err) {
                Disposition::Fail(reason) => reason,
                _ => FailureReason::UnexpectedError,
            };
            let hint = match reason {
                FailureReason::DistributionNotFound | FailureReason::DistributionTenantNotFound => {
                    format!("{target} does not exist (in the account of these credentials)")
                }
                FailureReason::InvalidationNotFound => {
                    format!("{target} has no such invalidation")
                }
                FailureReason::AccessDenied => {
                    format!("these credentials may not read the invalidations of {target}")
                }
                _ => format!("CloudFront refused the request ({reason})"),
            };
            let code = err.code.clone();
            let message = format!("{hint}: {operation}: {err}");
            error(format, Exit::Failed, reason.as_str(), code, message)
        }
        CallError::TimedOut(last) => {
            let last_text = last
                .as_ref()
                .map_or_else(String::new, |e: &CloudFrontError| format!(": {e}"));
            let message = format!(
                "{operation} did not succeed within {}{last_text}",
                super::progress::format_duration(timeout)
            );
            let code = last.and_then(|e| e.code);
            error(format, Exit::TimedOut, "Timeout", code, message)
        }
    }
}

/// The JSON printed on stdout when `list` or `get` fails.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorOutput {
    exit_code: i32,
    error: ErrorReport,
}

fn error(
    format: OutputFormat,
    exit: Exit,
    reason: &str,
    code: Option<String>,
    message: String,
) -> Exit {
    eprintln!("error: {message}");
    if format == OutputFormat::Json {
        let out = ErrorOutput {
            exit_code: exit.code(),
            error: ErrorReport {
                reason: reason.to_owned(),
                code,
                message,
            },
        };
        output::emit(format, &out, |_| String::new());
    }
    exit
}
