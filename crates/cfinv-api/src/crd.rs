//! The `CloudFrontInvalidation` custom resource: spec, status and the generated CRD.
//!
//! Everything the API server can check is declared here (OpenAPI schema + CEL rules), so a wrong
//! manifest fails at `kubectl apply` instead of minutes later in the controller.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "cloudfront.invalidation.io";
/// Default for `spec.timeoutSeconds` (Terraform's action uses the same).
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 900;
/// Bounds for `spec.timeoutSeconds`.
pub const MIN_TIMEOUT_SECONDS: u32 = 60;
pub const MAX_TIMEOUT_SECONDS: u32 = 3600;
/// CloudFront accepts at most 128 characters of CallerReference.
pub const MAX_CALLER_REFERENCE_LEN: usize = 128;

/// A one-shot request to invalidate paths of one CloudFront distribution, like a Job: the spec is
/// immutable; create a new object to invalidate again.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cloudfront.invalidation.io",
    version = "v1alpha1",
    kind = "CloudFrontInvalidation",
    plural = "cloudfrontinvalidations",
    shortname = "cfinv",
    category = "aws",
    category = "cloudfront",
    namespaced,
    status = "CloudFrontInvalidationStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Distribution",
        type_ = "string",
        json_path = ".spec.distributionId"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Invalidation ID",
        type_ = "string",
        json_path = ".status.invalidationId"
    ),
    printcolumn(
        name = "Paths",
        type_ = "integer",
        json_path = ".status.billedPaths",
        description = "Paths billed by CloudFront (after removing duplicates and covered paths)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message(
    "spec is immutable (rule: spec == oldSpec): an invalidation is one-shot, like a Job; create a new CloudFrontInvalidation to invalidate again"
))]
#[serde(rename_all = "camelCase")]
pub struct CloudFrontInvalidationSpec {
    /// Id of the CloudFront distribution, e.g. `E2QWRUHAPOMQZL`.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Z0-9]+$"))]
    pub distribution_id: String,

    /// Paths to invalidate, relative to the distribution (`/index.html`, `/static/*`).
    /// The leading `/` is optional; `*` is allowed only as the last character. Duplicates and
    /// paths covered by a wildcard in the same list are dropped before submission (not billed).
    #[schemars(length(min = 1, max = 3000))]
    pub paths: Vec<InvalidationPath>,

    /// CloudFront's idempotency key. Defaults to the object's UID, so a retry after a crash returns
    /// the invalidation already created instead of creating (and paying for) a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub caller_reference: Option<String>,

    /// How long to wait for CloudFront to finish, counted from `status.startTime`. Past it the
    /// object is `Failed` with reason `Timeout` (the invalidation may still complete in CloudFront).
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 60, max = 3600))]
    pub timeout_seconds: u32,

    /// Delete the object this many seconds after it finished (`Completed` or `Failed`, counted
    /// from `status.completionTime`), as Jobs do. Never while CloudFront still reports a
    /// timed-out invalidation in progress. Unset: the operator's `--ttl-after-finished`, if
    /// any; `0`: as soon as it finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<u32>,
}

fn default_timeout_seconds() -> u32 {
    DEFAULT_TIMEOUT_SECONDS
}

/// One invalidation path as written by the user.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct InvalidationPath(pub String);

/// Written by hand because the derive cannot put a CEL rule on a list item.
impl JsonSchema for InvalidationPath {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "InvalidationPath".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 4000,
            "pattern": r"^[^*]*\*?$",
            "x-kubernetes-validations": [{
                "rule": "!self.contains('*') || self.indexOf('*') == size(self) - 1",
                "message": "'*' is allowed only as the last character of a path (rule: wildcard-last), e.g. /images/* or /app.js*"
            }]
        })
    }
}

impl InvalidationPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for InvalidationPath {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl AsRef<str> for InvalidationPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lifecycle of a CloudFrontInvalidation, as shown in `kubectl get`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum Phase {
    /// Seen by the operator, not yet accepted by CloudFront.
    #[default]
    Pending,
    /// Waiting for an in-progress slot on the distribution (CloudFront's quotas).
    Queued,
    /// Accepted by CloudFront, not finished yet.
    InProgress,
    /// CloudFront reports the invalidation completed.
    Completed,
    /// Will not complete (see the `Failed` condition's reason).
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Queued => "Queued",
            Phase::InProgress => "InProgress",
            Phase::Completed => "Completed",
            Phase::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state, written only by the operator through the status subresource.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudFrontInvalidationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// CloudFront's id of the invalidation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidation_id: Option<String>,
    /// The distribution the invalidation was submitted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_id: Option<String>,
    /// The last status CloudFront reported for `invalidationId` (`InProgress`, `Completed`),
    /// kept up to date after a timeout too: a `Failed` object whose invalidation is still
    /// `InProgress` holds CloudFront's quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_front_status: Option<String>,
    /// The CallerReference sent to CloudFront.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_reference: Option<String>,
    /// The paths actually sent, after normalisation, de-duplication and wildcard coverage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_paths: Option<Vec<String>>,
    /// How many paths CloudFront bills for this request (a wildcard counts as one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_paths: Option<u32>,
    /// When the operator started working on the object; `spec.timeoutSeconds` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// CloudFront's CreateTime of the invalidation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<Time>,
    /// When the operator saw the invalidation Completed (or gave up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What is happening, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Completed`, `Failed` and `Ready` (as a Job has), plus kstatus' `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl CloudFrontInvalidation {
    /// The CallerReference to send: the user's, or the object's UID.
    pub fn caller_reference(&self) -> Option<String> {
        self.spec
            .caller_reference
            .clone()
            .or_else(|| self.metadata.uid.clone())
    }

    pub fn phase(&self) -> Phase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or_default()
    }
}

/// The CRD as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> String {
    serde_norway::to_string(&CloudFrontInvalidation::crd()).expect("the CRD serialises to YAML")
}

#[cfg(test)]
mod tests;
