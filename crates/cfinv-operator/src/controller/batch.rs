//! The batch records' controller (coalescing): drives each `CloudFrontInvalidationBatch` from
//! recorded to submitted to finished, one CloudFront call per reconcile, and deletes it once
//! every member is finished. The members follow their batch from its status
//! ([`super::coalesce`]); they never call CloudFront themselves.
//!
//! A record is submitted with its own uid as CallerReference and its immutable items, so a
//! submission repeated after a crash returns the invalidation CloudFront already has.

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{
        Controller, PredicateConfig, WatchStreamExt, controller::Action,
        controller::Config as ControllerConfig, predicates, reflector, watcher,
    },
};
use serde_json::json;
use tracing::{debug, info, instrument, warn};

use super::{Context, Error, WatchScope, transition::positive};
use cfinv_api::batch::{
    BatchState, CloudFrontInvalidationBatch, CloudFrontInvalidationBatchStatus,
};
use cfinv_api::crd::Target;
use cfinv_cloudfront::polling::Kind;
use cfinv_cloudfront::{Disposition, classify, classify_after_submission};

/// The longest a planner may take between claiming its members and recording their batch. A
/// record created later than this after its claims is never submitted (its claims may have been
/// released meanwhile); claims naming a batch that is not recorded are released after twice
/// this. Safety does not depend on the value, only how soon a stopped planner's members wait
/// again.
pub const STALE_PLAN: Duration = Duration::from_secs(15);
/// Tombstones are kept this long (they stop a stalled planner's record with the same name).
const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);
/// How often a finished batch checks whether its members are all finished, to be deleted.
const CLEANUP_RECHECK: Duration = Duration::from_secs(30);

/// The batch records' watch and controller; the watch also feeds the scheduler (batches hold
/// quota) and wakes members when their batch changes.
pub(super) fn controller(
    ctx: Arc<Context>,
    scope: &WatchScope,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl std::future::Future<Output = ()> {
    let api: Api<CloudFrontInvalidationBatch> = match scope {
        WatchScope::AllNamespaces => Api::all(ctx.client.clone()),
        WatchScope::Namespace(ns) => Api::namespaced(ctx.client.clone(), ns),
    };
    let (store, writer) = reflector::store();
    *ctx.batches.lock().expect("batches lock") = Some(store.clone());
    let index = ctx.scheduling.scheduler.clone();
    let events = watcher(api, watcher::Config::default())
        .inspect_ok(move |event| index.observe_batch(event))
        .reflect(writer)
        .default_backoff()
        .applied_objects()
        // Our own status writes do not trigger a reconcile (the requeue says when to look).
        .predicate_filter(predicates::generation, PredicateConfig::default());
    Controller::for_stream(events, store)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    debug!(batch = %obj, "batch no longer in the cache, nothing to do");
                }
                Err(e) => warn!(error = %e, "batch controller error"),
                Ok(_) => {}
            }
        })
}

/// What a batch needs next.
#[derive(Debug, PartialEq)]
enum Step {
    /// A tombstone or a finished batch: delete it once nobody needs it.
    Cleanup,
    /// Created too long after its claims: never submitted.
    Abandon,
    Submit,
    Poll(String),
}

fn step(b: &CloudFrontInvalidationBatch) -> Step {
    if b.is_finished() {
        return Step::Cleanup;
    }
    match b.status.as_ref().and_then(|s| s.invalidation_id.clone()) {
        Some(id) => Step::Poll(id),
        None if stale(b) => Step::Abandon,
        None => Step::Submit,
    }
}

/// A record created long after its claims (server time against the planner's claim time).
fn stale(b: &CloudFrontInvalidationBatch) -> bool {
    match (&b.metadata.creation_timestamp, &b.spec.claim_time) {
        (Some(created), Some(claimed)) => {
            positive(created.0.duration_since(claimed.0)) > STALE_PLAN
        }
        _ => true,
    }
}

#[instrument(skip_all, fields(batch = %format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any())))]
async fn reconcile(
    b: Arc<CloudFrontInvalidationBatch>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let uid = b.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let now = ctx.now();
    match step(&b) {
        Step::Cleanup => cleanup(&b, &ctx, now).await,
        Step::Abandon => {
            warn!("batch recorded too long after its members were claimed; never submitting it");
            write(
                &b,
                &ctx,
                CloudFrontInvalidationBatchStatus {
                    state: Some(BatchState::Abandoned),
                    message: Some(format!(
                        "recorded more than {}s after its members were claimed: never sent",
                        STALE_PLAN.as_secs()
                    )),
                    ..Default::default()
                },
            )
            .await?;
            Ok(Action::requeue(CLEANUP_RECHECK))
        }
        Step::Submit => submit(&b, &ctx, &uid, now).await,
        Step::Poll(id) => poll(&b, &ctx, &uid, &id, now).await,
    }
}

async fn submit(
    b: &CloudFrontInvalidationBatch,
    ctx: &Context,
    uid: &str,
    now: Timestamp,
) -> Result<Action, Error> {
    let Some(target) = b.spec.target() else {
        return Ok(Action::await_change());
    };
    match ctx
        .cloudfront
        .api
        .create_for(&target, uid, &b.spec.items)
        .await
    {
        Ok(inv) => {
            ctx.retries.reset(uid);
            let completed = inv.status.is_completed();
            info!(invalidation_id = %inv.id, members = b.spec.members.len(),
                  items = b.spec.items.len(), "CloudFront accepted the batch");
            if ctx.observability.first_acceptance(uid, &inv.id) {
                ctx.observability
                    .metrics
                    .record_billed(target.id(), b.spec.items.len() as u64);
            }
            write(
                b,
                ctx,
                CloudFrontInvalidationBatchStatus {
                    state: Some(if completed {
                        BatchState::Completed
                    } else {
                        BatchState::InProgress
                    }),
                    invalidation_id: Some(inv.id.clone()),
                    create_time: inv.create_time.map(Time),
                    completion_time: completed.then_some(Time(now)),
                    ..Default::default()
                },
            )
            .await?;
            Ok(Action::requeue(next_poll(b, &target, ctx, Duration::ZERO)))
        }
        Err(err) => match classify(&err) {
            Disposition::Fail(reason) => {
                warn!(reason = reason.as_str(), error = %err, "CloudFront refused the batch");
                write(
                    b,
                    ctx,
                    CloudFrontInvalidationBatchStatus {
                        state: Some(BatchState::Failed),
                        reason: Some(reason.as_str().to_owned()),
                        message: Some(format!("CloudFront refused the invalidation: {err}")),
                        completion_time: Some(Time(now)),
                        ..Default::default()
                    },
                )
                .await?;
                Ok(Action::requeue(CLEANUP_RECHECK))
            }
            // Throttled, over the quota (another writer), 5xx: the same request again later.
            _ => {
                let delay = ctx.retries.next_delay(uid);
                warn!(error = %err, retry_in = ?delay, "submitting the batch failed, will retry");
                Ok(Action::requeue(delay))
            }
        },
    }
}

async fn poll(
    b: &CloudFrontInvalidationBatch,
    ctx: &Context,
    uid: &str,
    id: &str,
    now: Timestamp,
) -> Result<Action, Error> {
    let Some(target) = b.spec.target() else {
        return Ok(Action::await_change());
    };
    let status = b.status.clone().unwrap_or_default();
    let submitted = status
        .create_time
        .as_ref()
        .or(b.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    let since_submit = positive(now.duration_since(submitted));
    match ctx.cloudfront.api.get_for(&target, id).await {
        Ok(inv) if inv.status.is_completed() => {
            ctx.retries.reset(uid);
            info!(invalidation_id = %id, "CloudFront completed the batch");
            ctx.cloudfront
                .model
                .observe_kind(target.id(), Kind::of(&b.spec.items), since_submit);
            write(
                b,
                ctx,
                CloudFrontInvalidationBatchStatus {
                    state: Some(BatchState::Completed),
                    completion_time: Some(Time(now)),
                    ..status
                },
            )
            .await?;
            Ok(Action::requeue(CLEANUP_RECHECK))
        }
        Ok(_) => {
            ctx.retries.reset(uid);
            Ok(Action::requeue(next_poll(b, &target, ctx, since_submit)))
        }
        Err(err) => match classify_after_submission(&err) {
            Disposition::Fail(reason) => {
                warn!(reason = reason.as_str(), error = %err, "CloudFront does not know the batch's invalidation");
                write(
                    b,
                    ctx,
                    CloudFrontInvalidationBatchStatus {
                        state: Some(BatchState::Failed),
                        reason: Some(reason.as_str().to_owned()),
                        message: Some(format!("looking at invalidation {id} failed: {err}")),
                        completion_time: Some(Time(now)),
                        ..status
                    },
                )
                .await?;
                Ok(Action::requeue(CLEANUP_RECHECK))
            }
            _ => {
                let delay = ctx.retries.next_delay(uid);
                warn!(error = %err, retry_in = ?delay, "polling the batch failed, will retry");
                Ok(Action::requeue(delay))
            }
        },
    }
}

fn next_poll(
    b: &CloudFrontInvalidationBatch,
    target: &Target,
    ctx: &Context,
    since_submit: Duration,
) -> Duration {
    let window = ctx
        .cloudfront
        .model
        .window_kind(target.id(), Kind::of(&b.spec.items));
    ctx.settings.poll.next_poll(since_submit, window, 1)
}

/// A finished batch is deleted once every member is finished or gone (each member completes
/// itself from the batch's status first); a tombstone after [`TOMBSTONE_TTL`].
async fn cleanup(
    b: &CloudFrontInvalidationBatch,
    ctx: &Context,
    now: Timestamp,
) -> Result<Action, Error> {
    let age = b
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Duration::ZERO, |t| positive(now.duration_since(t.0)));
    let done = if b.spec.abandoned {
        age >= TOMBSTONE_TTL
    } else {
        b.spec
            .members
            .iter()
            .all(|m| ctx.scheduling.scheduler.finished_or_gone(&m.uid))
    };
    if !done {
        return Ok(Action::requeue(CLEANUP_RECHECK));
    }
    let ns = b
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<CloudFrontInvalidationBatch> = Api::namespaced(ctx.client.clone(), &ns);
    match api.delete(&b.name_any(), &DeleteParams::default()).await {
        Ok(_) => {
            if let Some(uid) = b.uid() {
                ctx.forget(&uid);
            }
            info!("every member finished, batch deleted");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(Error::Delete(e)),
    }
}

async fn write(
    b: &CloudFrontInvalidationBatch,
    ctx: &Context,
    status: CloudFrontInvalidationBatchStatus,
) -> Result<(), Error> {
    let ns = b
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<CloudFrontInvalidationBatch> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = Patch::Merge(json!({ "status": status }));
    api.patch_status(&b.name_any(), &PatchParams::default(), &patch)
        .await
        .map_err(Error::WriteStatus)?;
    Ok(())
}

fn error_policy(b: Arc<CloudFrontInvalidationBatch>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = b
        .uid()
        .map_or(Duration::from_secs(5), |uid| ctx.retries.next_delay(&uid));
    warn!(batch = %b.name_any(), error = %err, retry_in = ?delay, "batch reconcile failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfinv_api::batch::CloudFrontInvalidationBatchSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn batch(created: &str, claimed: Option<&str>) -> CloudFrontInvalidationBatch {
        let mut b = CloudFrontInvalidationBatch::new(
            "b",
            CloudFrontInvalidationBatchSpec {
                distribution_id: Some("E1".into()),
                distribution_tenant_id: None,
                members: Vec::new(),
                items: vec!["/a".into()],
                claim_time: claimed.map(|t| Time(t.parse().unwrap())),
                abandoned: false,
            },
        );
        b.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        b
    }

    #[test]
    fn a_record_made_soon_after_its_claims_is_submitted() {
        let b = batch("2026-01-01T00:00:05Z", Some("2026-01-01T00:00:00Z"));
        assert_eq!(step(&b), Step::Submit);
    }

    #[test]
    fn a_record_made_long_after_its_claims_or_without_claim_time_is_never_submitted() {
        let b = batch("2026-01-01T00:00:16Z", Some("2026-01-01T00:00:00Z"));
        assert_eq!(step(&b), Step::Abandon);
        assert_eq!(step(&batch("2026-01-01T00:00:00Z", None)), Step::Abandon);
    }

    #[test]
    fn a_submitted_record_is_polled_even_if_it_was_slow_to_be_made() {
        let mut b = batch("2026-01-01T00:01:00Z", Some("2026-01-01T00:00:00Z"));
        b.status = Some(CloudFrontInvalidationBatchStatus {
            state: Some(BatchState::InProgress),
            invalidation_id: Some("I1".into()),
            ..Default::default()
        });
        assert_eq!(step(&b), Step::Poll("I1".into()));
    }

    #[test]
    fn tombstones_and_finished_batches_are_only_cleaned_up() {
        let mut b = batch("2026-01-01T00:00:01Z", Some("2026-01-01T00:00:00Z"));
        b.spec.abandoned = true;
        assert_eq!(step(&b), Step::Cleanup);
        let mut b = batch("2026-01-01T00:00:01Z", Some("2026-01-01T00:00:00Z"));
        b.status = Some(CloudFrontInvalidationBatchStatus {
            state: Some(BatchState::Completed),
            invalidation_id: Some("I1".into()),
            ..Default::default()
        });
        assert_eq!(step(&b), Step::Cleanup);
    }
}
