//! The `CloudFrontInvalidationBatch` custom resource: the durable record of one coalesced
//! invalidation (docs/design/coalescing.md), and the pure rule that merges its members' items
//! and splits the bill between them.
//!
//! A batch is created once, whole, before its `CreateInvalidation`; its spec never changes, and
//! its `metadata.uid` is the CallerReference sent, so any replica reading it after a crash sends
//! the same request again.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::Target;
use crate::paths::{self, PathErrors};

/// Several CloudFrontInvalidations of one namespace sent as one CloudFront invalidation.
/// Written by the operator only.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cloudfront.invalidation.io",
    version = "v1alpha1",
    kind = "CloudFrontInvalidationBatch",
    plural = "cloudfrontinvalidationbatches",
    shortname = "cfinvbatch",
    category = "aws",
    category = "cloudfront",
    namespaced,
    status = "CloudFrontInvalidationBatchStatus",
    derive = "PartialEq",
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Invalidation ID",
        type_ = "string",
        json_path = ".status.invalidationId"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CloudFrontInvalidationBatchSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_tenant_id: Option<String>,
    /// The members, oldest first (the order the bill is split in).
    #[serde(default)]
    pub members: Vec<BatchMember>,
    /// Exactly what `CreateInvalidation` sends: the members' normalised items, merged.
    #[serde(default)]
    pub items: Vec<String>,
    /// When the planner claimed the members (its clock). A batch created long after its claims
    /// (a stalled planner) is never submitted: its claims may have been released meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_time: Option<Time>,
    /// A tombstone: created to release claims naming a batch that was never recorded, so that
    /// it can never be recorded afterwards. Never submitted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abandoned: bool,
}

/// One member of a batch and its share of the bill.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchMember {
    pub uid: String,
    pub name: String,
    /// Items of the batch this member pays for.
    pub billed_paths: u32,
    /// Its own items another member pays for (the same item, or a wildcard covering it).
    pub covered_paths: u32,
}

/// Where a batch is in its life.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BatchState {
    /// CloudFront accepted it and is working on it.
    InProgress,
    /// CloudFront reports it completed: every member is done.
    Completed,
    /// CloudFront refused it for good (`reason`, `message`): every member fails.
    Failed,
    /// Never submitted and never will be (a stalled planner's record, or a tombstone).
    Abandoned,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudFrontInvalidationBatchStatus {
    /// Absent until CloudFront answered the submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BatchState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidation_id: Option<String>,
    /// CloudFront's CreateTime of the invalidation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The failure reason (as the members' `Failed` condition), when `state` is `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CloudFrontInvalidationBatchSpec {
    /// The target, as the members named it (`None` for a tombstone).
    pub fn target(&self) -> Option<Target> {
        match (&self.distribution_id, &self.distribution_tenant_id) {
            (_, Some(t)) => Some(Target::Tenant(t.clone())),
            (Some(d), None) => Some(Target::Distribution(d.clone())),
            (None, None) => None,
        }
    }

    pub fn set_target(&mut self, target: &Target) {
        match target {
            Target::Distribution(id) => self.distribution_id = Some(id.clone()),
            Target::Tenant(id) => self.distribution_tenant_id = Some(id.clone()),
        }
    }
}

impl CloudFrontInvalidationBatch {
    pub fn state(&self) -> Option<BatchState> {
        self.status.as_ref().and_then(|s| s.state)
    }

    /// The batch will not change CloudFront any more: completed, failed or abandoned.
    pub fn is_finished(&self) -> bool {
        self.spec.abandoned
            || matches!(
                self.state(),
                Some(BatchState::Completed | BatchState::Failed | BatchState::Abandoned)
            )
    }

    pub fn member(&self, uid: &str) -> Option<&BatchMember> {
        self.spec.members.iter().find(|m| m.uid == uid)
    }
}

/// The batch CRD as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> String {
    serde_norway::to_string(&CloudFrontInvalidationBatch::crd())
        .expect("the batch CRD serialises to YAML")
}

/// One invalidation's items made of several members' items, and each member's share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// What to send: the path engine's normalisation of every member's items together
    /// (duplicates across members dropped, items covered by another member's wildcard dropped).
    pub items: Vec<String>,
    /// Per member, in the order given: (billed, covered).
    pub shares: Vec<(u32, u32)>,
}

/// Merge the members' items, oldest member first. The bill is split first come pays: each item
/// sent is billed to the oldest member that asked for exactly it (every item sent is some
/// member's own item: normalisation only drops). A member's other items are `covered`: an older
/// member brought the same item, or some member's wildcard covers it. The billed counts add up
/// to what CloudFront bills.
pub fn merge<S: AsRef<str>>(members: &[Vec<S>]) -> Result<Merged, PathErrors> {
    let all: Vec<&str> = members
        .iter()
        .flat_map(|m| m.iter().map(AsRef::as_ref))
        .collect();
    let items = paths::normalize(&all)?.paths;
    // Tags compare ignoring ASCII case, as normalisation dedupes them.
    let key = |item: &str| {
        if paths::is_tag(item) {
            item.to_ascii_lowercase()
        } else {
            item.to_owned()
        }
    };
    let own = normalised(members)?;
    let mut payer: HashMap<String, usize> = HashMap::new();
    for (i, items) in own.iter().enumerate() {
        for item in items {
            payer.entry(key(item)).or_insert(i);
        }
    }
    let mut billed = vec![0u32; members.len()];
    for item in &items {
        if let Some(i) = payer.get(&key(item)) {
            billed[*i] += 1;
        }
    }
    let shares = own
        .iter()
        .zip(billed)
        .map(|(items, billed)| (billed, (items.len() as u32).saturating_sub(billed)))
        .collect();
    Ok(Merged { items, shares })
}

/// Each member's own items, normalised (a member without items has none: a tag-only split
/// passes members without tags).
fn normalised<S: AsRef<str>>(members: &[Vec<S>]) -> Result<Vec<Vec<String>>, PathErrors> {
    members
        .iter()
        .map(|m| {
            if m.is_empty() {
                Ok(Vec::new())
            } else {
                paths::normalize(m).map(|n| n.paths)
            }
        })
        .collect()
}

/// Escalation (an opt-in policy): the members' paths all go out as `/*`, their tags as they
/// are (`/*` does not cover tags). The oldest member pays for `/*`; tags split first come pays;
/// every other item is covered.
pub fn merge_escalated<S: AsRef<str>>(members: &[Vec<S>]) -> Result<Merged, PathErrors> {
    let own = normalised(members)?;
    let tags: Vec<Vec<String>> = own
        .iter()
        .map(|items| items.iter().filter(|p| paths::is_tag(p)).cloned().collect())
        .collect();
    let tag_merge = if tags.iter().all(Vec::is_empty) {
        Merged {
            items: Vec::new(),
            shares: vec![(0, 0); members.len()],
        }
    } else {
        merge(&tags)?
    };
    let mut items = vec!["/*".to_owned()];
    items.extend(tag_merge.items);
    let shares = own
        .iter()
        .zip(&tag_merge.shares)
        .enumerate()
        .map(|(i, (items, (tags_billed, _)))| {
            let billed = tags_billed + u32::from(i == 0);
            (billed, (items.len() as u32).saturating_sub(billed))
        })
        .collect();
    Ok(Merged { items, shares })
}

#[cfg(test)]
mod tests;
