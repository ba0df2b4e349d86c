//! What the operator and the CLI need from CloudFront, behind a trait so the reconciler can be
//! tested with a fake and run against AWS, the simulator or anything that speaks the API; plus
//! how to wait for CloudFront (the completion model, retry backoff) and the log setup that keeps
//! the SDK's credentials out of logs.

mod aws;
pub mod backoff;
mod error;
mod metered;
pub mod polling;
mod rate_limit;
pub mod telemetry;

pub use aws::{AwsCloudFront, AwsOptions};
pub use error::{
    CloudFrontError, Disposition, ErrorKind, FailureReason, TERMINAL_AFTER_SUBMISSION, classify,
    classify_after_submission,
};
pub use metered::{CallCounter, CallSink, Metered};
pub use rate_limit::RateLimited;

use async_trait::async_trait;
use jiff::Timestamp;

/// CloudFront's status of an invalidation. Anything but `Completed` means "still working".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidationStatus {
    InProgress,
    Completed,
    /// A value this code does not know; treated as in progress.
    Other(String),
}

impl InvalidationStatus {
    pub fn parse(s: &str) -> Self {
        // The API documents `InProgress` and `Completed`; moto answers `COMPLETED`.
        if s.eq_ignore_ascii_case("Completed") {
            Self::Completed
        } else if s.eq_ignore_ascii_case("InProgress") {
            Self::InProgress
        } else {
            Self::Other(s.to_owned())
        }
    }

    pub fn is_completed(&self) -> bool {
        matches!(self, Self::Completed)
    }
}

/// One `CreateInvalidation` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateInvalidation {
    pub distribution_id: String,
    pub caller_reference: String,
    pub paths: Vec<String>,
}

/// An invalidation as `CreateInvalidation` / `GetInvalidation` return it.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalidation {
    pub id: String,
    pub status: InvalidationStatus,
    pub create_time: Option<Timestamp>,
    pub caller_reference: Option<String>,
    pub paths: Vec<String>,
}

/// One row of `ListInvalidations`.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidationSummary {
    pub id: String,
    pub status: InvalidationStatus,
    pub create_time: Option<Timestamp>,
}

/// One page of `ListInvalidations` (newest first).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct InvalidationPage {
    pub items: Vec<InvalidationSummary>,
    /// Marker for the next page, when there is one.
    pub next_marker: Option<String>,
}

/// The CloudFront operations the operator and the CLI use.
#[async_trait]
pub trait CloudFront: Send + Sync {
    async fn create_invalidation(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError>;

    async fn get_invalidation(
        &self,
        distribution_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError>;

    async fn list_invalidations(
        &self,
        distribution_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError>;
}

/// The operation names used in logs, metrics and call counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    CreateInvalidation,
    GetInvalidation,
    ListInvalidations,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateInvalidation => "CreateInvalidation",
            Operation::GetInvalidation => "GetInvalidation",
            Operation::ListInvalidations => "ListInvalidations",
        }
    }
}
