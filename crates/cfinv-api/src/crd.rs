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
/// Schema pattern of `spec.distributionId`.
pub const DISTRIBUTION_ID_PATTERN: &str = r"^[A-Z0-9]+$";
/// Schema pattern of `spec.distributionTenantId`. The API reference types the id as a plain
/// string; every id CloudFront shows (API reference, AWS CLI examples such as
/// `dt_2yMvQgam3QkJo2z54FDl91dk1AB`) is `dt_` followed by letters and digits.
pub const DISTRIBUTION_TENANT_ID_PATTERN: &str = r"^dt_[0-9A-Za-z]+$";

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
        name = "Target",
        type_ = "string",
        json_path = ".status.target",
        description = "distribution/<id> or tenant/<id>: where the invalidation is sent"
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
        json_path = ".status.pathCount",
        description = "Paths sent (after removing duplicates and covered paths)"
    ),
    printcolumn(
        name = "Tags",
        type_ = "integer",
        json_path = ".status.tagCount",
        description = "Cache tags sent (after removing case-insensitive duplicates)"
    ),
    printcolumn(
        name = "Billed",
        type_ = "integer",
        json_path = ".status.billedPaths",
        priority = 1,
        description = "Items CloudFront bills: every path and every tag sent counts as one"
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
#[x_kube(validation = Rule::new("has(self.distributionId) != has(self.distributionTenantId)").message(
    "set exactly one of spec.distributionId and spec.distributionTenantId (rule: one-target)"
))]
// The same rule for servers that drop CEL: structural schemas allow `oneOf` of `required`.
#[schemars(extend("oneOf" = [{"required": ["distributionId"]}, {"required": ["distributionTenantId"]}]))]
#[serde(rename_all = "camelCase")]
pub struct CloudFrontInvalidationSpec {
    /// Id of the CloudFront distribution, e.g. `E2QWRUHAPOMQZL`. Exactly one of
    /// `distributionId` and `distributionTenantId` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Z0-9]+$"))]
    pub distribution_id: Option<String>,

    /// Id of a distribution tenant of a multi-tenant distribution (CloudFront SaaS Manager),
    /// e.g. `dt_2yMvQgam3QkJo2z54FDl91dk1AB`: the invalidation goes through
    /// CreateInvalidationForDistributionTenant. Exactly one of `distributionId` and
    /// `distributionTenantId` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 4, max = 128), regex(pattern = r"^dt_[0-9A-Za-z]+$"))]
    pub distribution_tenant_id: Option<String>,

    /// What to invalidate: paths relative to the distribution (`/index.html`, `/static/*`) and
    /// cache tags (`#product:electronics`), mixed freely. Paths: the leading `/` is optional,
    /// `*` only as the last character. Tags: `#` then 1 to 256 visible ASCII characters
    /// without commas or `*`, case-insensitive; they match only on distributions with a
    /// CacheTagConfig. Duplicates (tags ignoring case) and paths covered by a wildcard in the
    /// same list are dropped before submission (not billed).
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

/// One item as written by the user: a path, or a cache tag (`#tag`).
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
        // `pattern` holds on servers without CEL; the CEL rules say which rule broke. A tag is
        // `#` and 1-256 characters of 33-126 except `*` (42) and `,` (44); the class lists `-`
        // (45) last, where it needs no escape.
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 4000,
            "pattern": r"^(#[!-)+.-~-]{1,256}|[^#*][^*]*\*?|\*)$",
            "x-kubernetes-validations": [
                {
                    "rule": "self.startsWith('#') || !self.contains('*') || self.indexOf('*') == size(self) - 1",
                    "message": "'*' is allowed only as the last character of a path (rule: wildcard-last), e.g. /images/* or /app.js*"
                },
                {
                    "rule": "!self.startsWith('#') || !self.contains('*')",
                    "message": "a tag item (starting with #) cannot contain the '*' wildcard, tags match exactly (rule: tag-no-wildcard)"
                },
                {
                    "rule": "!self.startsWith('#') || (size(self) >= 2 && size(self) <= 257)",
                    "message": "a tag item is '#' followed by 1 to 256 characters (rule: tag-length)"
                },
                {
                    "rule": "!self.startsWith('#') || self.matches('^#[!-+.-~-]*$')",
                    "message": "a tag may contain only visible ASCII characters (33-126) and no comma (rule: tag-characters)"
                }
            ]
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
    /// The distribution the invalidation was submitted to (recorded at the first submit
    /// attempt; polling reads it from here, so a spec edit cannot redirect in-flight work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_id: Option<String>,
    /// The distribution tenant the invalidation was submitted to, for tenant invalidations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_tenant_id: Option<String>,
    /// The last status CloudFront reported for `invalidationId` (`InProgress`, `Completed`),
    /// kept up to date after a `Timeout` too, until CloudFront reports it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_front_status: Option<String>,
    /// The CallerReference sent to CloudFront.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_reference: Option<String>,
    /// Where the invalidation is sent, for `kubectl get`: `distribution/<id>` or
    /// `tenant/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The items actually sent (paths and tags), after normalisation, de-duplication and
    /// wildcard coverage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_paths: Option<Vec<String>>,
    /// How many of the items sent are paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_count: Option<u32>,
    /// How many of the items sent are cache tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_count: Option<u32>,
    /// How many items CloudFront bills for this request (a wildcard path counts as one, and so
    /// does each tag).
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
    /// The `CloudFrontInvalidationBatch` (same namespace) this object was merged into
    /// (coalescing, docs/coalescing.md). Set once, by a write conditional on the object's
    /// resourceVersion; the batch's spec is what says who its members are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// When `batch` was set (a claim whose batch never got recorded is released after a while).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_claim_time: Option<Time>,
    /// How many objects share the batch's invalidation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Of this object's own items, how many another member of its batch had already brought
    /// (or covered with a wildcard) and so paid for: first come pays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_paths: Option<u32>,
    /// `Completed`, `Failed` and `Ready` (as a Job has), plus kstatus' `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Where an invalidation goes: a distribution, or one tenant of a multi-tenant distribution.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `CreateInvalidation` on this distribution id.
    Distribution(String),
    /// `CreateInvalidationForDistributionTenant` on this distribution tenant id.
    Tenant(String),
}

impl Target {
    /// The id, whichever kind.
    pub fn id(&self) -> &str {
        match self {
            Target::Distribution(id) | Target::Tenant(id) => id,
        }
    }

    pub fn is_tenant(&self) -> bool {
        matches!(self, Target::Tenant(_))
    }

    /// `distribution/<id>` or `tenant/<id>`: `status.target`, one `kubectl get` column for
    /// both kinds.
    pub fn label(&self) -> String {
        match self {
            Target::Distribution(id) => format!("distribution/{id}"),
            Target::Tenant(id) => format!("tenant/{id}"),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Distribution(id) => write!(f, "distribution {id}"),
            Target::Tenant(id) => write!(f, "distribution tenant {id}"),
        }
    }
}

/// A spec that names no target or two: refused before any AWS call (the API server refuses it
/// too when it evaluates CEL or `oneOf`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "spec.distributionId and spec.distributionTenantId are both set; set exactly one of them (rule: one-target)"
    )]
    Both,
    #[error(
        "neither spec.distributionId nor spec.distributionTenantId is set; set exactly one of them (rule: one-target)"
    )]
    Neither,
}

impl CloudFrontInvalidationSpec {
    /// The one target the spec names.
    pub fn target(&self) -> Result<Target, TargetError> {
        match (&self.distribution_id, &self.distribution_tenant_id) {
            (Some(_), Some(_)) => Err(TargetError::Both),
            (None, None) => Err(TargetError::Neither),
            (Some(id), None) => Ok(Target::Distribution(id.clone())),
            (None, Some(id)) => Ok(Target::Tenant(id.clone())),
        }
    }

    /// The scheduling and polling key: the target's id, whichever kind (`""` when the spec is
    /// invalid; such an object never reaches CloudFront).
    pub fn target_id(&self) -> &str {
        self.distribution_id
            .as_deref()
            .or(self.distribution_tenant_id.as_deref())
            .unwrap_or_default()
    }
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
