//! Coalescing, the members' side (docs/design/coalescing.md): an admitted object plans a batch
//! with the objects of its namespace waiting for the same target, claims each member (a status
//! write conditional on the resourceVersion the plan saw), then records the batch in one
//! create. From then on every member follows its batch's status; the batch controller
//! ([`super::batch`]) is the only one that calls CloudFront for it.

use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::reflector::ObjectRef,
};
use serde_json::json;
use tracing::{info, warn};

use super::Context;
use super::coalesce_transition::{BatchView, claim_expired};
use super::transition::{FollowUp, Observation, Submission, positive};
use crate::scheduler::{Candidate, PlannedMember};
use cfinv_api::batch::{
    self, BatchMember, BatchState, CloudFrontInvalidationBatch, CloudFrontInvalidationBatchSpec,
};
use cfinv_api::crd::{CloudFrontInvalidation, CloudFrontInvalidationStatus};
use cfinv_api::paths;
use cfinv_cloudfront::FailureReason;

/// Whether the object may be merged with others: the user chose no CallerReference, and it was
/// never sent on its own.
pub(super) fn mergeable(
    obj: &CloudFrontInvalidation,
    status: &CloudFrontInvalidationStatus,
) -> bool {
    obj.spec.caller_reference.is_none()
        && status.caller_reference.is_none()
        && status.batch.is_none()
        && status.invalidation_id.is_none()
}

fn queued(message: String) -> Observation {
    Observation::Queued {
        message,
        backoff: true,
        attempt: None,
    }
}

/// The admitted object plans, claims and records its batch (or waits out the window first).
pub(super) async fn record(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    candidate: &Candidate,
    submission: &Submission,
    window: std::time::Duration,
) -> Observation {
    let now = ctx.now();
    let created = obj
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let waited = positive(now.duration_since(created));
    if waited < window {
        return Observation::Gathering {
            wait: window - waited,
        };
    }
    let target = &submission.target;
    let name = format!(
        "{}-{}",
        target.id().to_ascii_lowercase().replace('_', "-"),
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let mine = PlannedMember {
        uid: candidate.uid.clone(),
        name: candidate.name.clone(),
        created: candidate.created,
        resource_version: obj.metadata.resource_version.clone(),
        paths: std::sync::Arc::new(submission.paths.clone()),
    };
    let scheduler = &ctx.scheduling.scheduler;
    let escalate_above = ctx.settings.coalesce_escalate.get(target.id()).copied();
    let Some(plan) = scheduler.plan(target.id(), candidate, mine, &name, escalate_above) else {
        return queued(format!("waiting for a slot on {target}"));
    };
    let ns = candidate.namespace.clone();
    let api: Api<CloudFrontInvalidation> = Api::namespaced(ctx.client.clone(), &ns);
    let claim_time = Timestamp::now();
    // Each claim holds only if the member did not change since the plan saw it.
    let claims = join_all(plan.members.iter().map(|m| {
        let api = api.clone();
        let name = name.clone();
        async move {
            let Some(rv) = &m.resource_version else {
                return false;
            };
            let patch = Patch::Merge(json!({
                "metadata": {"resourceVersion": rv},
                "status": {"batch": name, "batchClaimTime": Time(claim_time)},
            }));
            api.patch_status(&m.name, &PatchParams::default(), &patch)
                .await
                .is_ok()
        }
    }))
    .await;
    let claimed: Vec<&PlannedMember> = plan
        .members
        .iter()
        .zip(&claims)
        .filter(|(_, ok)| **ok)
        .map(|(m, _)| m)
        .collect();
    let lost: Vec<&str> = plan
        .members
        .iter()
        .zip(&claims)
        .filter(|(_, ok)| !**ok)
        .map(|(m, _)| m.uid.as_str())
        .collect();
    if claimed.is_empty() {
        scheduler.release_plan(target.id(), &ns, &plan, &lost, false);
        return queued(format!(
            "waiting for a slot on {target} (the objects planned into a batch changed meanwhile)"
        ));
    }
    scheduler.release_plan(target.id(), &ns, &plan, &lost, true);
    let own: Vec<Vec<String>> = claimed.iter().map(|m| m.paths.to_vec()).collect();
    let merged = if plan.escalated {
        batch::merge_escalated(&own)
    } else {
        batch::merge(&own)
    };
    let merged = match merged {
        Ok(m) => m,
        // Every member's items were normalised already; this cannot fail. Should it, the
        // claims expire and the members wait again.
        Err(e) => return queued(format!("could not merge the batch's items: {e}")),
    };
    let mut spec = CloudFrontInvalidationBatchSpec {
        distribution_id: None,
        distribution_tenant_id: None,
        members: claimed
            .iter()
            .zip(&merged.shares)
            .map(|(m, (billed, covered))| BatchMember {
                uid: m.uid.clone(),
                name: m.name.clone(),
                billed_paths: *billed,
                covered_paths: *covered,
            })
            .collect(),
        items: merged.items,
        claim_time: Some(Time(claim_time)),
        abandoned: false,
    };
    spec.set_target(target);
    let record = CloudFrontInvalidationBatch::new(&name, spec);
    let batches: Api<CloudFrontInvalidationBatch> = Api::namespaced(ctx.client.clone(), &ns);
    let size = claimed.len();
    let me_claimed = claimed.iter().any(|m| m.uid == candidate.uid);
    match batches.create(&PostParams::default(), &record).await {
        Ok(_) => {
            info!(batch = %name, members = size, items = record.spec.items.len(),
                  escalated = plan.escalated,
                  "recorded a batch of objects to send as one invalidation");
        }
        Err(e) => {
            // The claims are released once they expire; nothing was sent.
            warn!(batch = %name, error = %e, "could not record the batch");
            scheduler.release_plan(target.id(), &ns, &plan, &[], false);
        }
    }
    if me_claimed {
        Observation::Claimed {
            batch: name,
            claim_time,
            size,
        }
    } else {
        queued(format!("waiting for a slot on {target}"))
    }
}

fn batch_of(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Option<Option<std::sync::Arc<CloudFrontInvalidationBatch>>> {
    let store = ctx.batches.lock().expect("batches lock").clone()?;
    Some(store.get(&ObjectRef::new(name).within(ns)))
}

/// A claimed member: what its batch says, or the release of a claim whose batch will never be
/// sent.
pub(super) async fn follow(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    uid: &str,
    status: &CloudFrontInvalidationStatus,
    name: &str,
    now: Timestamp,
) -> Observation {
    let ns = obj.namespace().unwrap_or_default();
    let Some(found) = batch_of(ctx, &ns, name) else {
        return queued(format!(
            "merged into batch {name}, but coalescing is off (--coalesce-window): the batch is \
             not driven until it is turned on again"
        ));
    };
    if !ctx.scheduling.scheduler.batches_synced() {
        return queued(format!(
            "merged into batch {name}; reading the batch records"
        ));
    }
    match found {
        Some(b)
            if b.is_finished()
                && b.state() != Some(BatchState::Completed)
                && b.state() != Some(BatchState::Failed) =>
        {
            release(obj, ctx, name).await
        }
        Some(b) => match b.member(uid) {
            Some(member) => Observation::Batch(view(obj, status, &b, member)),
            // Recorded without this object (its claim came too late): not a member.
            None => release(obj, ctx, name).await,
        },
        None if claim_expired(status.batch_claim_time.as_ref().map(|t| t.0), now) => {
            // Make sure the batch can never be recorded, then release the claim.
            let batches: Api<CloudFrontInvalidationBatch> =
                Api::namespaced(ctx.client.clone(), &ns);
            let tombstone = CloudFrontInvalidationBatch::new(
                name,
                CloudFrontInvalidationBatchSpec {
                    distribution_id: None,
                    distribution_tenant_id: None,
                    members: Vec::new(),
                    items: Vec::new(),
                    claim_time: None,
                    abandoned: true,
                },
            );
            match batches.create(&PostParams::default(), &tombstone).await {
                Ok(_) => release(obj, ctx, name).await,
                // Recorded after all, or tombstoned by someone else: the cache will tell.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    queued(format!("merged into batch {name}; waiting for its record"))
                }
                Err(e) => Observation::Retry {
                    message: format!("could not release the claim of batch {name}: {e}"),
                    attempt: None,
                },
            }
        }
        None => queued(format!(
            "merged into batch {name}; waiting for the batch to be recorded"
        )),
    }
}

async fn release(obj: &CloudFrontInvalidation, ctx: &Context, name: &str) -> Observation {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<CloudFrontInvalidation> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = Patch::Merge(json!({"status": {"batch": null, "batchClaimTime": null}}));
    match api
        .patch_status(&obj.name_any(), &PatchParams::default(), &patch)
        .await
    {
        Ok(_) => {
            info!(batch = %name, "released the claim of a batch that will never be sent");
            Observation::Released {
                batch: name.to_owned(),
            }
        }
        Err(e) => Observation::Retry {
            message: format!("could not release the claim of batch {name}: {e}"),
            attempt: None,
        },
    }
}

fn view(
    obj: &CloudFrontInvalidation,
    status: &CloudFrontInvalidationStatus,
    b: &CloudFrontInvalidationBatch,
    member: &BatchMember,
) -> BatchView {
    let own_items = status.submitted_paths.clone().unwrap_or_else(|| {
        paths::normalize(&obj.spec.paths)
            .map(|n| n.paths)
            .unwrap_or_default()
    });
    let s = b.status.clone().unwrap_or_default();
    let failure = (s.state == Some(BatchState::Failed)).then(|| {
        let reason = s
            .reason
            .as_deref()
            .and_then(|r| FailureReason::ALL.into_iter().find(|x| x.as_str() == r))
            .unwrap_or(FailureReason::UnexpectedError);
        (reason, s.message.clone().unwrap_or_default())
    });
    BatchView {
        name: b.name_any(),
        size: b.spec.members.len(),
        caller_reference: b.uid().unwrap_or_default(),
        target: b
            .spec
            .target()
            .unwrap_or(cfinv_api::crd::Target::Distribution(String::new())),
        own_items,
        billed: member.billed_paths,
        covered: member.covered_paths,
        state: s.state,
        invalidation_id: s.invalidation_id,
        create_time: s.create_time.map(|t| t.0),
        failure,
        timeout_seconds: obj.spec.timeout_seconds,
    }
}

/// The follow-up look of a member that timed out while its batch ran: the batch says.
pub(super) fn follow_up(
    ctx: &Context,
    obj: &CloudFrontInvalidation,
    name: &str,
    now: Timestamp,
) -> FollowUp {
    let ns = obj.namespace().unwrap_or_default();
    match batch_of(ctx, &ns, name).flatten() {
        Some(b) if b.state() == Some(BatchState::Completed) => FollowUp::Finished {
            message: format!(
                "batch {name} did not complete within spec.timeoutSeconds={}; CloudFront \
                 completed it later (seen at {})",
                obj.spec.timeout_seconds,
                now.round(jiff::Unit::Second).unwrap_or(now)
            ),
        },
        Some(b) if !b.is_finished() => FollowUp::StillRunning,
        _ => FollowUp::Gone,
    }
}
