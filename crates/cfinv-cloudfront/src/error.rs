//! CloudFront errors and THE table that decides, per error code, whether an object fails, waits
//! for a quota slot, or retries. `docs/errors.md` is this table in prose; a test keeps them equal.

use std::fmt;

/// Where an error came from, as far as it matters for retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// CloudFront answered with an error document (`code` is set).
    Service,
    /// No answer: connection refused or reset, DNS, TLS, I/O.
    Network,
    /// No answer in time.
    Timeout,
    /// Anything else the client reported (credentials could not be loaded, a response that did
    /// not parse, ...).
    Other,
}

/// An error from a CloudFront call, reduced to what the operator decides on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CloudFrontError {
    pub kind: ErrorKind,
    /// CloudFront's error code, e.g. `TooManyInvalidationsInProgress`.
    pub code: Option<String>,
    pub message: String,
    pub http_status: Option<u16>,
}

impl CloudFrontError {
    pub fn service(code: impl Into<String>, message: impl Into<String>, http_status: u16) -> Self {
        Self {
            kind: ErrorKind::Service,
            code: Some(code.into()),
            message: message.into(),
            http_status: Some(http_status),
        }
    }

    pub fn network(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Network,
            code: None,
            message: message.into(),
            http_status: None,
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Timeout,
            code: None,
            message: message.into(),
            http_status: None,
        }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Other,
            code: None,
            message: message.into(),
            http_status: None,
        }
    }

    /// A short label for metrics and logs: the error code, or the kind.
    pub fn label(&self) -> &str {
        match (&self.code, self.kind) {
            (Some(code), _) => code,
            (None, ErrorKind::Service) => "UnknownServiceError",
            (None, ErrorKind::Network) => "NetworkError",
            (None, ErrorKind::Timeout) => "Timeout",
            (None, ErrorKind::Other) => "ClientError",
        }
    }
}

impl fmt::Display for CloudFrontError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, self.http_status) {
            (Some(code), Some(status)) => write!(f, "{code} (HTTP {status}): {}", self.message),
            (Some(code), None) => write!(f, "{code}: {}", self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

/// Why an object ended `Failed`: the `reason` of its `Failed` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The paths break CloudFront's rules (found by us before any call, or by CloudFront).
    InvalidPaths,
    /// More than 3,000 paths after normalisation.
    BatchTooLarge,
    /// The distribution does not exist (in the account the operator's credentials belong to).
    DistributionNotFound,
    /// The distribution tenant does not exist (CloudFront's `EntityNotFound`).
    DistributionTenantNotFound,
    /// The spec sets both `distributionId` and `distributionTenantId`, or neither (servers
    /// without CEL admit it).
    InvalidTarget,
    /// The invalidation id in the status is unknown to CloudFront.
    InvalidationNotFound,
    /// IAM denies the call.
    AccessDenied,
    /// The CallerReference was already used for a different set of paths.
    CallerReferenceConflict,
    /// The request alone holds more paths than CloudFront allows in progress per distribution
    /// (15 wildcard paths, 3,000 other paths): it could never be accepted.
    ExceedsQuota,
    /// A request CloudFront says is malformed: a bug in this operator, not the user's input.
    InvalidRequest,
    /// `spec.timeoutSeconds` passed before CloudFront finished.
    Timeout,
    /// The tenancy policy does not let this namespace invalidate this distribution.
    NotAllowed,
    /// A client error this table does not know.
    UnexpectedError,
}

impl FailureReason {
    /// Every reason, e.g. to export each failure counter at 0 from the start.
    pub const ALL: [FailureReason; 13] = [
        Self::InvalidPaths,
        Self::BatchTooLarge,
        Self::DistributionNotFound,
        Self::DistributionTenantNotFound,
        Self::InvalidTarget,
        Self::InvalidationNotFound,
        Self::AccessDenied,
        Self::CallerReferenceConflict,
        Self::ExceedsQuota,
        Self::InvalidRequest,
        Self::Timeout,
        Self::NotAllowed,
        Self::UnexpectedError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPaths => "InvalidPaths",
            Self::BatchTooLarge => "BatchTooLarge",
            Self::DistributionNotFound => "DistributionNotFound",
            Self::DistributionTenantNotFound => "DistributionTenantNotFound",
            Self::InvalidTarget => "InvalidTarget",
            Self::InvalidationNotFound => "InvalidationNotFound",
            Self::AccessDenied => "AccessDenied",
            Self::CallerReferenceConflict => "CallerReferenceConflict",
            Self::ExceedsQuota => "ExceedsQuota",
            Self::InvalidRequest => "InvalidRequest",
            Self::Timeout => "Timeout",
            Self::NotAllowed => "NotAllowed",
            Self::UnexpectedError => "UnexpectedError",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Give up: the object ends `Failed` with this reason. Retrying cannot help.
    Fail(FailureReason),
    /// The distribution has too many invalidations in progress: phase `Queued`, wait for a slot.
    Queue,
    /// Transient: retry with capped exponential backoff and jitter, inside the timeout.
    Retry,
}

/// The table: CloudFront error code → what the operator does. Codes from the SDK's error models
/// for CreateInvalidation/GetInvalidation/ListInvalidations and their `ForDistributionTenant`
/// twins, plus the common AWS errors.
pub const ERROR_TABLE: &[(&str, Disposition)] = &[
    (
        "AccessDenied",
        Disposition::Fail(FailureReason::AccessDenied),
    ),
    (
        "NoSuchDistribution",
        Disposition::Fail(FailureReason::DistributionNotFound),
    ),
    (
        "EntityNotFound",
        Disposition::Fail(FailureReason::DistributionTenantNotFound),
    ),
    (
        "NoSuchInvalidation",
        Disposition::Fail(FailureReason::InvalidationNotFound),
    ),
    (
        "InvalidArgument",
        Disposition::Fail(FailureReason::InvalidPaths),
    ),
    (
        "BatchTooLarge",
        Disposition::Fail(FailureReason::BatchTooLarge),
    ),
    (
        "InvalidationBatchAlreadyExists",
        Disposition::Fail(FailureReason::CallerReferenceConflict),
    ),
    (
        "InconsistentQuantities",
        Disposition::Fail(FailureReason::InvalidRequest),
    ),
    (
        "MissingBody",
        Disposition::Fail(FailureReason::InvalidRequest),
    ),
    ("TooManyInvalidationsInProgress", Disposition::Queue),
    ("Throttling", Disposition::Retry),
    ("ThrottlingException", Disposition::Retry),
    ("RequestLimitExceeded", Disposition::Retry),
    ("TooManyRequestsException", Disposition::Retry),
    ("ServiceUnavailable", Disposition::Retry),
    ("InternalError", Disposition::Retry),
    ("InternalFailure", Disposition::Retry),
    // Our clock and AWS's disagree (or a request waited too long before it was sent): a new
    // request is signed afresh, and the clock is usually corrected by NTP meanwhile.
    ("RequestExpired", Disposition::Retry),
    ("RequestTimeTooSkewed", Disposition::Retry),
    // Credential problems heal when the token is refreshed or an administrator fixes the role,
    // so they are retried inside the object's timeout instead of failing every object at once.
    ("ExpiredToken", Disposition::Retry),
    ("InvalidClientTokenId", Disposition::Retry),
    ("SignatureDoesNotMatch", Disposition::Retry),
    ("MissingAuthenticationToken", Disposition::Retry),
    ("UnrecognizedClientException", Disposition::Retry),
];

/// Once CloudFront holds an invalidation (the object has its id), only these answers end the
/// object: the invalidation, its distribution or its tenant does not exist. Every other error
/// is retried until `spec.timeoutSeconds`, AccessDenied included: the invalidation is running
/// and billed whatever IAM says about looking at it.
pub const TERMINAL_AFTER_SUBMISSION: &[&str] =
    &["NoSuchInvalidation", "NoSuchDistribution", "EntityNotFound"];

/// A reused CallerReference as the live service reports it: `InvalidArgument` with this in the
/// message (the API reference documents `InvalidationBatchAlreadyExists` instead).
const CALLER_REFERENCE_REUSED: &str = "caller reference";

/// Classify an error. Codes not in the table: 5xx, 429 and no-answer errors are retried; other
/// client errors fail the object with `UnexpectedError` (a 4xx does not fix itself).
pub fn classify(err: &CloudFrontError) -> Disposition {
    if err.code.as_deref() == Some("InvalidArgument")
        && err
            .message
            .to_ascii_lowercase()
            .contains(CALLER_REFERENCE_REUSED)
    {
        return Disposition::Fail(FailureReason::CallerReferenceConflict);
    }
    if let Some(code) = &err.code
        && let Some((_, disposition)) = ERROR_TABLE.iter().find(|(c, _)| c == code)
    {
        return *disposition;
    }
    match (err.kind, err.http_status) {
        (ErrorKind::Network | ErrorKind::Timeout, _) => Disposition::Retry,
        (_, Some(status)) if status >= 500 || status == 429 => Disposition::Retry,
        (ErrorKind::Service, _) => Disposition::Fail(FailureReason::UnexpectedError),
        // The client could not build or send the request (e.g. credentials not found yet).
        (ErrorKind::Other, _) => Disposition::Retry,
    }
}

/// Classify an error of a call about an invalidation CloudFront already holds (polling): "does
/// not exist" answers end the object, everything else is retried.
pub fn classify_after_submission(err: &CloudFrontError) -> Disposition {
    let not_found = err
        .code
        .as_deref()
        .is_some_and(|c| TERMINAL_AFTER_SUBMISSION.contains(&c));
    match classify(err) {
        Disposition::Fail(reason) if not_found => Disposition::Fail(reason),
        // A "does not exist" code the table does not name (a tenant's EntityNotFound).
        _ if not_found => Disposition::Fail(FailureReason::InvalidationNotFound),
        _ => Disposition::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_holds_every_reason_once() {
        // No wildcard arm: a new variant stops this from compiling until it is in ALL too.
        let position = |r: FailureReason| match r {
            FailureReason::InvalidPaths => 0,
            FailureReason::BatchTooLarge => 1,
            FailureReason::DistributionNotFound => 2,
            FailureReason::DistributionTenantNotFound => 3,
            FailureReason::InvalidTarget => 4,
            FailureReason::InvalidationNotFound => 5,
            FailureReason::AccessDenied => 6,
            FailureReason::CallerReferenceConflict => 7,
            FailureReason::ExceedsQuota => 8,
            FailureReason::InvalidRequest => 9,
            FailureReason::Timeout => 10,
            FailureReason::NotAllowed => 11,
            FailureReason::UnexpectedError => 12,
        };
        for (i, r) in FailureReason::ALL.into_iter().enumerate() {
            assert_eq!(position(r), i, "{r} is out of place in FailureReason::ALL");
        }
    }

    #[test]
    fn table_codes_are_unique() {
        let mut codes: Vec<_> = ERROR_TABLE.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(before, codes.len(), "a code appears twice in ERROR_TABLE");
    }

    #[test]
    fn quota_errors_queue_instead_of_failing() {
        let err = CloudFrontError::service("TooManyInvalidationsInProgress", "slow down", 400);
        assert_eq!(classify(&err), Disposition::Queue);
    }

    #[test]
    fn known_codes_follow_the_table_whatever_the_status() {
        let err = CloudFrontError::service("NoSuchDistribution", "gone", 404);
        assert_eq!(
            classify(&err),
            Disposition::Fail(FailureReason::DistributionNotFound)
        );
        let err = CloudFrontError::service("Throttling", "Rate exceeded", 400);
        assert_eq!(classify(&err), Disposition::Retry);
        let err = CloudFrontError::service("InvalidationBatchAlreadyExists", "dup", 409);
        assert_eq!(
            classify(&err),
            Disposition::Fail(FailureReason::CallerReferenceConflict)
        );
    }

    #[test]
    fn unknown_codes_retry_on_5xx_and_429_and_fail_on_4xx() {
        assert_eq!(
            classify(&CloudFrontError::service("Weird", "x", 503)),
            Disposition::Retry
        );
        assert_eq!(
            classify(&CloudFrontError::service("Weird", "x", 429)),
            Disposition::Retry
        );
        assert_eq!(
            classify(&CloudFrontError::service("Weird", "x", 400)),
            Disposition::Fail(FailureReason::UnexpectedError)
        );
    }

    #[test]
    fn unknown_tenant_fails_for_good() {
        let err = CloudFrontError::service("EntityNotFound", "The entity was not found.", 404);
        assert_eq!(
            classify(&err),
            Disposition::Fail(FailureReason::DistributionTenantNotFound)
        );
    }

    #[test]
    fn no_answer_is_retried() {
        assert_eq!(
            classify(&CloudFrontError::network("connection reset")),
            Disposition::Retry
        );
        assert_eq!(
            classify(&CloudFrontError::timeout("no answer in 30s")),
            Disposition::Retry
        );
    }

    #[test]
    fn a_reused_caller_reference_is_a_conflict_in_either_spelling() {
        let live = CloudFrontError::service(
            "InvalidArgument",
            "Your request contains a caller reference that was used for a previous invalidation \
             batch for the same distribution.",
            400,
        );
        assert_eq!(
            classify(&live),
            Disposition::Fail(FailureReason::CallerReferenceConflict)
        );
        let paths = CloudFrontError::service("InvalidArgument", "bad path", 400);
        assert_eq!(
            classify(&paths),
            Disposition::Fail(FailureReason::InvalidPaths)
        );
    }

    #[test]
    fn clock_skew_is_retried() {
        for code in ["RequestExpired", "RequestTimeTooSkewed"] {
            let err = CloudFrontError::service(code, "skew", 403);
            assert_eq!(classify(&err), Disposition::Retry, "{code}");
        }
    }

    #[test]
    fn after_submission_only_does_not_exist_answers_are_terminal() {
        for (code, http) in [
            ("AccessDenied", 403),
            ("Throttling", 400),
            ("InternalError", 500),
            ("InvalidArgument", 400),
            ("Weird", 400),
            ("TooManyInvalidationsInProgress", 400),
        ] {
            let err = CloudFrontError::service(code, "x", http);
            assert_eq!(
                classify_after_submission(&err),
                Disposition::Retry,
                "{code}"
            );
        }
        assert_eq!(
            classify_after_submission(&CloudFrontError::service("NoSuchInvalidation", "x", 404)),
            Disposition::Fail(FailureReason::InvalidationNotFound)
        );
        assert_eq!(
            classify_after_submission(&CloudFrontError::service("NoSuchDistribution", "x", 404)),
            Disposition::Fail(FailureReason::DistributionNotFound)
        );
        assert!(matches!(
            classify_after_submission(&CloudFrontError::service("EntityNotFound", "x", 404)),
            Disposition::Fail(_)
        ));
    }

    /// docs/errors.md names every code that ends an object after submission.
    #[test]
    fn docs_name_the_codes_terminal_after_submission() {
        let doc = include_str!("../../../docs/errors.md");
        let section = doc
            .split("## After submission")
            .nth(1)
            .expect("docs/errors.md has an 'After submission' section");
        for code in TERMINAL_AFTER_SUBMISSION {
            assert!(section.contains(&format!("`{code}`")), "{code}");
        }
    }

    /// docs/errors.md lists every code of the table with the same decision.
    #[test]
    fn docs_list_every_code_with_its_decision() {
        let doc = include_str!("../../../docs/errors.md");
        for (code, disposition) in ERROR_TABLE {
            let expected = match disposition {
                Disposition::Fail(reason) => format!("Failed, reason `{reason}`"),
                Disposition::Queue => "Queued".to_owned(),
                Disposition::Retry => "retry".to_owned(),
            };
            let line = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{code}`")))
                .unwrap_or_else(|| panic!("docs/errors.md has no row for `{code}`"));
            assert!(
                line.contains(&expected),
                "docs/errors.md row for `{code}` should say {expected:?}: {line}"
            );
        }
    }
}
