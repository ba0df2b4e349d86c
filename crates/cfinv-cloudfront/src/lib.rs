//! What the operator and the CLI need from CloudFront, behind a trait so the reconciler can be
//! tested with a fake and run against AWS, the simulator or anything that speaks the API; plus
//! how to wait for CloudFront (the completion model, retry backoff) and the log setup that keeps
//! the SDK's credentials out of logs.

mod aws;
pub mod backoff;
mod error;
mod layer;
mod metered;
pub mod polling;
mod rate_limit;
pub mod telemetry;

pub use aws::{AwsCloudFront, AwsOptions};
pub use error::{
    CloudFrontError, Disposition, ErrorKind, FailureReason, TERMINAL_AFTER_SUBMISSION, classify,
    classify_after_submission,
};
pub use layer::{Layer, Layered};
pub use metered::{CallCounter, CallSink, Metered, Metering};
pub use rate_limit::{RateLimit, RateLimited};

use async_trait::async_trait;
use jiff::Timestamp;

pub use cfinv_api::crd::Target;

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

/// One `CreateInvalidation` request, or one `CreateInvalidationForDistributionTenant`
/// request (then `distribution_id` holds the tenant id: the two share the batch shape).
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

/// What the operator reads of a distribution's configuration (`GetDistributionConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DistributionConfig {
    /// `CacheTagConfig.HeaderName`: the origin response header CloudFront reads cache tags
    /// from. `None`: the distribution has no `CacheTagConfig`, so tag items match nothing.
    pub cache_tag_header: Option<String>,
}

/// The CloudFront operations the operator and the CLI use. The `_for_distribution_tenant`
/// operations are the same lifecycle on one tenant of a multi-tenant distribution; callers that
/// hold a [`Target`] use the `*_for` methods of `dyn CloudFront`, which pick the operation.
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

    /// `CreateInvalidationForDistributionTenant`; `request.distribution_id` is the tenant id.
    async fn create_invalidation_for_distribution_tenant(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError>;

    async fn get_invalidation_for_distribution_tenant(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError>;

    async fn list_invalidations_for_distribution_tenant(
        &self,
        tenant_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError>;

    /// `GetDistributionConfig` (IAM action `cloudfront:GetDistribution`, which the operator
    /// treats as optional): only to tell whether tag items can match anything.
    async fn get_distribution_config(
        &self,
        distribution_id: &str,
    ) -> Result<DistributionConfig, CloudFrontError>;
}

impl dyn CloudFront + '_ {
    /// Create an invalidation on `target` (a distribution or a tenant).
    pub async fn create_for(
        &self,
        target: &Target,
        caller_reference: &str,
        paths: &[String],
    ) -> Result<Invalidation, CloudFrontError> {
        let request = CreateInvalidation {
            distribution_id: target.id().to_owned(),
            caller_reference: caller_reference.to_owned(),
            paths: paths.to_vec(),
        };
        match target {
            Target::Distribution(_) => self.create_invalidation(&request).await,
            Target::Tenant(_) => {
                self.create_invalidation_for_distribution_tenant(&request)
                    .await
            }
        }
    }

    /// Get invalidation `id` of `target`.
    pub async fn get_for(
        &self,
        target: &Target,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        match target {
            Target::Distribution(d) => self.get_invalidation(d, id).await,
            Target::Tenant(t) => self.get_invalidation_for_distribution_tenant(t, id).await,
        }
    }

    /// One page of `target`'s invalidations, newest first.
    pub async fn list_for(
        &self,
        target: &Target,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        match target {
            Target::Distribution(d) => self.list_invalidations(d, marker, max_items).await,
            Target::Tenant(t) => {
                self.list_invalidations_for_distribution_tenant(t, marker, max_items)
                    .await
            }
        }
    }
}

/// The operation that creates an invalidation on `target`, for messages and call counts.
pub fn create_operation(target: &Target) -> Operation {
    match target {
        Target::Distribution(_) => Operation::CreateInvalidation,
        Target::Tenant(_) => Operation::CreateInvalidationForDistributionTenant,
    }
}

/// The operation that reads one invalidation of `target`.
pub fn get_operation(target: &Target) -> Operation {
    match target {
        Target::Distribution(_) => Operation::GetInvalidation,
        Target::Tenant(_) => Operation::GetInvalidationForDistributionTenant,
    }
}

/// The operation that lists `target`'s invalidations.
pub fn list_operation(target: &Target) -> Operation {
    match target {
        Target::Distribution(_) => Operation::ListInvalidations,
        Target::Tenant(_) => Operation::ListInvalidationsForDistributionTenant,
    }
}

/// The operation names used in logs, metrics and call counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    CreateInvalidation,
    GetInvalidation,
    ListInvalidations,
    CreateInvalidationForDistributionTenant,
    GetInvalidationForDistributionTenant,
    ListInvalidationsForDistributionTenant,
    GetDistributionConfig,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateInvalidation => "CreateInvalidation",
            Operation::GetInvalidation => "GetInvalidation",
            Operation::ListInvalidations => "ListInvalidations",
            Operation::CreateInvalidationForDistributionTenant => {
                "CreateInvalidationForDistributionTenant"
            }
            Operation::GetInvalidationForDistributionTenant => {
                "GetInvalidationForDistributionTenant"
            }
            Operation::ListInvalidationsForDistributionTenant => {
                "ListInvalidationsForDistributionTenant"
            }
            Operation::GetDistributionConfig => "GetDistributionConfig",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
