//! The one-shot command line: `invalidate`, `list` and `get` for pipelines without a cluster, and
//! `wait` for pipelines (and Helm hook Jobs) that wait for CloudFrontInvalidations in one.
//!
//! The same engine as the operator: [`cfinv_api::paths::normalize`] for the paths,
//! [`cfinv_cloudfront::classify`] for every CloudFront error, and
//! [`cfinv_cloudfront::polling::PollSettings`] / [`cfinv_cloudfront::backoff::RetrySettings`] for
//! polling and backoff. `docs/cli.md` is the user's reference.
//!
//! Results go to stdout (text or JSON, `--output`); progress lines, warnings and errors go to
//! stderr, so `--output json` stays machine-readable. Each entry point returns an [`Exit`]; the
//! binary turns it into the process exit code.

mod caller_reference;
mod cost;
mod invalidate;
mod list;
mod manifest;
mod output;
mod progress;
mod wait;

use std::time::{Duration, Instant};

use clap::Args;

use cfinv_cloudfront::backoff::RetrySettings;
use cfinv_cloudfront::{AwsCloudFront, AwsOptions, CloudFrontError, Disposition, classify};

pub use caller_reference::{CALLER_REFERENCE_PREFIX, keyed_caller_reference};
pub use cost::{
    CostEstimate, FREE_PATHS_PER_MONTH, PRICE_PER_PATH_MILLI_USD, estimate_cost, format_usd,
};
pub use invalidate::{InvalidateArgs, invalidate};
pub use list::{GetArgs, ListArgs, get, list};
pub use output::OutputFormat;
pub use wait::{WaitArgs, wait};

/// How a command ended: the process exit code. Documented in `docs/cli.md`; `2` is clap's
/// usage error (unknown flag, missing required flag), which never reaches these functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// `0`: completed (with `--wait`), submitted (without), a dry run, `list`/`get` answered.
    Success,
    /// `1`: CloudFront refused the request, or the invalidation cannot complete (no such
    /// distribution or invalidation, access denied, caller reference reused with other paths…).
    Failed,
    /// `3`: the input is invalid (a path, the distribution id, the manifest, the caller
    /// reference); nothing was sent to CloudFront.
    InvalidInput,
    /// `4`: `--timeout` passed first (waiting for completion, for an in-progress slot, or
    /// retrying transient errors). A submitted invalidation may still complete.
    TimedOut,
}

impl Exit {
    /// Every exit code this module produces, for docs and tests.
    pub const ALL: [Exit; 4] = [
        Exit::Success,
        Exit::Failed,
        Exit::InvalidInput,
        Exit::TimedOut,
    ];

    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::InvalidInput => 3,
            Exit::TimedOut => 4,
        }
    }

    /// A name for JSON output and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failed => "failed",
            Exit::InvalidInput => "invalidInput",
            Exit::TimedOut => "timedOut",
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        // Every code is in 0..=4.
        std::process::ExitCode::from(exit.code() as u8)
    }
}

/// Flags shared by every subcommand: where to send requests and how to print results.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Send requests to this URL instead of CloudFront (the simulator, a proxy). Without it
    /// the SDK's `AWS_ENDPOINT_URL_CLOUDFRONT` (then `AWS_ENDPOINT_URL`) applies, else the real
    /// CloudFront endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// How results are printed on stdout. Progress and errors always go to stderr.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}

impl ClientArgs {
    /// A CloudFront client: the default credential chain, one HTTP request per call (the CLI
    /// retries with its own backoff), us-east-1 signing.
    ///
    /// Fails when the default chain finds no credentials at all: the error table retries that
    /// (right for a pod whose token is not mounted yet), but in a pipeline it is a
    /// misconfiguration that waiting does not fix.
    pub async fn client(&self) -> Result<AwsCloudFront, String> {
        check_credentials().await?;
        Ok(AwsCloudFront::new(&AwsOptions {
            endpoint_url: self.endpoint_url.clone(),
            ..AwsOptions::default()
        })
        .await)
    }
}

/// How long the credential check may take; a slower provider (an STS call, SSO) is left to
/// the first real call.
const CREDENTIALS_CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Asks the default credential chain for credentials once, as the SDK client will.
async fn check_credentials() -> Result<(), String> {
    use aws_sdk_cloudfront::config::ProvideCredentials;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let hint = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or your CI's \
                OIDC role (see docs/aws-credentials.md)";
    let Some(provider) = config.credentials_provider() else {
        return Err(format!("no AWS credentials provider is configured; {hint}"));
    };
    match tokio::time::timeout(CREDENTIALS_CHECK_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) | Err(_) => Ok(()),
        Ok(Err(err)) => {
            let mut chain = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(e) = source {
                chain.push_str(": ");
                chain.push_str(&e.to_string());
                source = e.source();
            }
            Err(format!("no AWS credentials found ({chain}); {hint}"))
        }
    }
}

/// The `error.reason` of a run that found no AWS credentials (exit 1).
pub const NO_CREDENTIALS: &str = "NoCredentials";

/// A problem with the user's input, found before any call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The longest distribution id the CRD accepts.
const MAX_DISTRIBUTION_ID_LEN: usize = 128;

/// Checks a distribution id as the CRD does (`^[A-Z0-9]+$`, at most 128 characters), so that
/// a typo fails here with exit 3 instead of at CloudFront.
pub fn validate_distribution_id(id: &str) -> Result<(), InputError> {
    if id.is_empty() {
        return Err(InputError::new("the distribution id must not be empty"));
    }
    if id.len() > MAX_DISTRIBUTION_ID_LEN {
        return Err(InputError::new(format!(
            "the distribution id may be at most {MAX_DISTRIBUTION_ID_LEN} characters, this one is {}",
            id.len()
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(InputError::new(format!(
            "distribution id {id:?} is not valid: CloudFront ids are upper-case letters and digits, e.g. E2QWRUHAPOMQZL"
        )));
    }
    Ok(())
}

/// Checks a distribution tenant id as the CRD does (`^dt_[0-9A-Za-z]+$`, at most 128
/// characters).
pub fn validate_distribution_tenant_id(id: &str) -> Result<(), InputError> {
    let rest = id.strip_prefix("dt_").unwrap_or_default();
    if id.len() > MAX_DISTRIBUTION_ID_LEN
        || rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(InputError::new(format!(
            "distribution tenant id {id:?} is not valid: CloudFront tenant ids are dt_ followed by \
             letters and digits (at most {MAX_DISTRIBUTION_ID_LEN} characters), e.g. \
             dt_2yMvQgam3QkJo2z54FDl91dk1AB"
        )));
    }
    Ok(())
}

/// The target the `--distribution-id` / `--distribution-tenant-id` flags name (clap makes sure
/// exactly one is given), checked as the CRD checks it.
pub(crate) fn target_from_flags(
    distribution_id: Option<&str>,
    distribution_tenant_id: Option<&str>,
) -> Result<cfinv_api::crd::Target, InputError> {
    use cfinv_api::crd::Target;
    match distribution_tenant_id {
        Some(tenant) => {
            validate_distribution_tenant_id(tenant)?;
            Ok(Target::Tenant(tenant.to_owned()))
        }
        None => {
            let id = distribution_id.unwrap_or_default();
            validate_distribution_id(id)?;
            Ok(Target::Distribution(id.to_owned()))
        }
    }
}

/// How long a single call may take past the deadline, so the last attempt at the deadline can
/// still be answered.
const CALL_GRACE: Duration = Duration::from_secs(5);

/// Why [`call_with_retry`] gave up.
#[derive(Debug)]
pub(crate) enum CallError {
    /// A [`Disposition::Fail`] error: retrying cannot help.
    Failed(CloudFrontError),
    /// The deadline passed; the last error seen, if any.
    TimedOut(Option<CloudFrontError>),
}

/// Runs `call` until it succeeds, fails for good, or `deadline` passes, retrying the errors
/// [`classify`] calls transient (and quota errors, which `list`/`get` never see) with `retry`
/// backoff. Used by `list` and `get`; `invalidate` has its own loop with progress lines.
pub(crate) async fn call_with_retry<T, F, Fut>(
    deadline: Instant,
    retry: &RetrySettings,
    what: &str,
    mut call: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudFrontError>>,
{
    let mut attempt = 0u32;
    let mut last = None;
    loop {
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .max(CALL_GRACE);
        match tokio::time::timeout(bound, call()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => match classify(&err) {
                Disposition::Fail(_) => return Err(CallError::Failed(err)),
                Disposition::Queue | Disposition::Retry => last = Some(err),
            },
            Err(_) => return Err(CallError::TimedOut(last)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(CallError::TimedOut(last));
        }
        let delay = retry.delay(attempt, &mut rand::rng());
        attempt = attempt.saturating_add(1);
        if let Some(err) = &last {
            eprintln!(
                "{what} failed, retrying in {}: {err}",
                progress::format_duration(delay)
            );
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_leave_2_to_clap() {
        let codes: std::collections::BTreeSet<i32> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), Exit::ALL.len());
        assert!(!codes.contains(&2), "2 is clap's usage error");
        assert_eq!(Exit::Success.code(), 0);
    }

    #[test]
    fn docs_list_every_exit_code() {
        let doc = include_str!("../../../docs/cli.md");
        for exit in Exit::ALL {
            let row = format!("| `{}` |", exit.code());
            assert!(doc.contains(&row), "docs/cli.md has no row {row}");
        }
        assert!(doc.contains("| `2` |"), "docs/cli.md documents clap's 2");
    }

    #[test]
    fn distribution_ids() {
        assert!(validate_distribution_id("E2QWRUHAPOMQZL").is_ok());
        assert!(validate_distribution_id("E1").is_ok());
        assert!(validate_distribution_id("").is_err());
        assert!(validate_distribution_id("e2qwruhapomqzl").is_err());
        assert!(validate_distribution_id("E2-QW").is_err());
        assert!(validate_distribution_id(" E2").is_err());
        assert!(validate_distribution_id(&"E".repeat(129)).is_err());
        assert!(validate_distribution_id(&"E".repeat(128)).is_ok());
        assert!(validate_distribution_tenant_id("dt_2yMvQgam3QkJo2z54FDl91dk1AB").is_ok());
        for bad in ["dt_", "E2QWRUHAPOMQZL", "dt-abc", "dt_a/b"] {
            assert!(validate_distribution_tenant_id(bad).is_err(), "{bad}");
        }
    }
}
