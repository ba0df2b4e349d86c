//! One reconcile: validate → submit once → poll → Completed / Failed. This file gathers what the
//! reconcile learns (the one CloudFront call) and runs the effects; the decision itself is the
//! pure [`transition`](super::transition).
//!
//! Every reconcile makes at most one CloudFront call and at most one status write, writes only
//! when something changed, and never sleeps: waiting is a requeue.

use std::{sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use kube::{
    Resource, ResourceExt,
    api::{Api, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
    },
};
use serde_json::json;
use tracing::{Span, field, info, instrument, warn};

use super::transition::{Effect, Inputs, Next, Observation, Transition, transition};
use super::{Context, Error};
use crate::{
    scheduler::{Admission, CLOUDFRONT_QUOTA, Candidate, Usage},
    tenancy::Decision,
};
use cfinv_api::crd::{CloudFrontInvalidation, CloudFrontInvalidationStatus};
use cfinv_api::paths;
use cfinv_cloudfront::{CloudFrontError, CreateInvalidation, Disposition, FailureReason, classify};

#[instrument(skip_all, fields(
    object = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
    distribution = %obj.spec.distribution_id,
    invalidation_id = field::Empty,
))]
pub async fn reconcile(
    obj: Arc<CloudFrontInvalidation>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(&obj, &ctx).await;
    ctx.observability
        .metrics
        .record_reconcile(result.is_ok(), started.elapsed());
    result
}

async fn reconcile_inner(obj: &CloudFrontInvalidation, ctx: &Context) -> Result<Action, Error> {
    let uid = obj.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let status = obj.status.clone().unwrap_or_default();
    if let Some(id) = &status.invalidation_id {
        Span::current().record("invalidation_id", id.as_str());
    }
    let now = Timestamp::now();

    if obj.phase().is_terminal() {
        ctx.retries.reset(&uid);
        note_spec_change_after_submit(obj, &status, ctx).await?;
        return super::ttl::after_finished(obj, ctx, now).await;
    }

    let started = status.start_time.as_ref().map_or(now, |t| t.0);
    let deadline = started + SignedDuration::from_secs(obj.spec.timeout_seconds.into());
    let observation = if now >= deadline {
        Observation::Failed {
            reason: FailureReason::Timeout,
            message: timeout_message(obj, &status),
        }
    } else {
        match &status.invalidation_id {
            None => submit(obj, ctx, &uid).await,
            Some(id) => poll(obj, ctx, id, now).await,
        }
    };
    apply(obj, ctx, &uid, status, observation, now, deadline).await
}

/// Validate and normalise the paths, then send the one CreateInvalidation.
async fn submit(obj: &CloudFrontInvalidation, ctx: &Context, uid: &str) -> Observation {
    let normalized = match paths::normalize(&obj.spec.paths) {
        Ok(n) => n,
        Err(errors) => {
            // Input we know CloudFront would reject never reaches it.
            return Observation::Failed {
                reason: FailureReason::InvalidPaths,
                message: errors.to_string(),
            };
        }
    };
    let namespace = obj.namespace().unwrap_or_default();
    match ctx
        .scheduling
        .tenancy
        .check(&namespace, &obj.spec.distribution_id)
    {
        Decision::Allowed => {}
        Decision::Denied(message) => {
            return Observation::Failed {
                reason: FailureReason::NotAllowed,
                message,
            };
        }
        Decision::NotYetKnown => {
            return Observation::Retry {
                message: "waiting for the namespace cache to check the tenancy policy".to_owned(),
            };
        }
    }
    let caller_reference = obj
        .spec
        .caller_reference
        .clone()
        .unwrap_or_else(|| uid.to_owned());
    let distribution = &obj.spec.distribution_id;
    let Some(candidate) = Candidate::new(obj, Usage::of(&normalized.paths)) else {
        return Observation::Retry {
            message: "object has no metadata.uid yet".to_owned(),
        };
    };
    match ctx.scheduling.scheduler.admit(distribution, &candidate) {
        Admission::Admit => {}
        Admission::Wait { .. } => {
            return Observation::Queued {
                message: queued_message(distribution),
                backoff: false,
            };
        }
        Admission::Never { usage } => {
            return Observation::Failed {
                reason: FailureReason::InvalidPaths,
                message: format!(
                    "spec.paths: {} wildcard and {} other paths after normalisation, but CloudFront \
                     allows at most {} wildcard and {} other paths in progress per distribution; \
                     split them over several CloudFrontInvalidations",
                    usage.wildcards,
                    usage.objects,
                    CLOUDFRONT_QUOTA.wildcards,
                    CLOUDFRONT_QUOTA.objects
                ),
            };
        }
    }
    let request = CreateInvalidation {
        distribution_id: distribution.clone(),
        caller_reference: caller_reference.clone(),
        paths: normalized.paths.clone(),
    };
    match ctx.cloudfront.api.create_invalidation(&request).await {
        Ok(invalidation) => Observation::Submitted {
            invalidation,
            normalized,
            caller_reference,
        },
        Err(err) => {
            if classify(&err) == Disposition::Queue {
                ctx.scheduling.scheduler.refused(uid);
            } else {
                ctx.scheduling.scheduler.release(uid);
            }
            step_for_error(obj, "CreateInvalidation", err)
        }
    }
}

/// Ask CloudFront whether the invalidation is done.
async fn poll(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    id: &str,
    now: Timestamp,
) -> Observation {
    let distribution = &obj.spec.distribution_id;
    let batch_interval = ctx.settings.poll.batch_interval;
    let in_flight = ctx.scheduling.scheduler.polling(distribution);
    let mut batched = batch_interval.is_some() && in_flight >= 2;
    let completed = match batch_interval.filter(|_| batched) {
        Some(max_age) => match ctx
            .cloudfront
            .board
            .completed(&*ctx.cloudfront.api, distribution, id, max_age)
            .await
        {
            Ok(Some(done)) => Ok(done),
            // Not among the newest 100: ask for this one, on its own schedule.
            Ok(None) => {
                batched = false;
                get_completed(ctx, distribution, id).await
            }
            Err(e) => Err(e),
        },
        None => get_completed(ctx, distribution, id).await,
    };
    if in_flight <= 1 {
        ctx.cloudfront.board.forget(distribution);
    }
    match completed {
        Ok(true) => Observation::Completed,
        Ok(false) => {
            let status = obj.status.as_ref();
            let submitted = status
                .and_then(|s| s.create_time.as_ref().or(s.start_time.as_ref()))
                .map_or(now, |t| t.0);
            let since_submit = now.duration_since(submitted).unsigned_abs();
            Observation::StillRunning {
                since_submit,
                batched,
            }
        }
        Err(err) => {
            let op = if batched {
                "ListInvalidations"
            } else {
                "GetInvalidation"
            };
            step_for_error(obj, op, err)
        }
    }
}

async fn get_completed(
    ctx: &Context,
    distribution: &str,
    id: &str,
) -> Result<bool, CloudFrontError> {
    let inv = ctx
        .cloudfront
        .api
        .get_invalidation(distribution, id)
        .await?;
    Ok(inv.status.is_completed())
}

fn queued_message(distribution: &str) -> String {
    format!(
        "waiting for a slot on distribution {distribution}: CloudFront allows 15 wildcard paths \
         and 3,000 other paths in progress at once"
    )
}

fn step_for_error(
    obj: &CloudFrontInvalidation,
    operation: &str,
    err: CloudFrontError,
) -> Observation {
    match classify(&err) {
        Disposition::Fail(reason) => Observation::Failed {
            reason,
            message: failure_message(obj, reason, operation, &err),
        },
        Disposition::Queue => Observation::Queued {
            message: queued_message(&obj.spec.distribution_id),
            backoff: true,
        },
        Disposition::Retry => Observation::Retry {
            message: format!("{operation} failed, retrying: {err}"),
        },
    }
}

/// Decide ([`transition`]), then run the effects, write the status if it changed, publish the
/// event and return the requeue.
async fn apply(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    uid: &str,
    old: CloudFrontInvalidationStatus,
    observation: Observation,
    now: Timestamp,
    deadline: Timestamp,
) -> Result<Action, Error> {
    let distribution = &obj.spec.distribution_id;
    let inputs = Inputs {
        now,
        deadline,
        generation: obj.meta().generation,
        poll: &ctx.settings.poll,
        window: ctx.cloudfront.model.window(distribution),
        queue_recheck: ctx.settings.queue_recheck,
    };
    let Transition {
        status: new,
        event,
        next,
        effects,
    } = transition(&old, observation, inputs);

    let until_deadline = deadline.duration_since(now).unsigned_abs();
    let requeue = match next {
        Next::AwaitChange => None,
        Next::After(delay) => Some(delay),
        Next::Backoff => Some(ctx.retries.next_delay(uid).min(until_deadline)),
    };
    for effect in effects {
        run_effect(ctx, uid, distribution, &old, effect, requeue, now);
    }
    if new != old {
        write_status(obj, ctx, &new).await?;
    }
    if let Some(event) = event {
        publish(obj, ctx, event).await;
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn run_effect(
    ctx: &Context,
    uid: &str,
    distribution: &str,
    old: &CloudFrontInvalidationStatus,
    effect: Effect,
    requeue: Option<Duration>,
    now: Timestamp,
) {
    let retry_in = requeue.unwrap_or_default();
    match effect {
        Effect::ResetBackoff => ctx.retries.reset(uid),
        Effect::Accepted {
            id,
            billed,
            dropped,
        } => {
            Span::current().record("invalidation_id", id.as_str());
            info!(billed, dropped, "CloudFront accepted the invalidation");
            ctx.observability
                .metrics
                .record_billed(distribution, billed.into());
        }
        Effect::Completed => {
            info!("CloudFront completed the invalidation");
            observe_completion(ctx, uid, distribution, old, now);
        }
        Effect::SeenRunning => ctx.observability.seen_running(uid, now),
        Effect::Failed { reason, message } => {
            warn!(reason = reason.as_str(), %message, "invalidation failed");
            ctx.observability.metrics.record_failure(reason.as_str());
            ctx.observability.take_last_seen_running(uid);
        }
        Effect::Queued => info!(?retry_in, "distribution busy, invalidation queued"),
        Effect::Retrying { message } => {
            warn!(?retry_in, %message, "CloudFront call failed, will retry");
        }
    }
}

fn observe_completion(
    ctx: &Context,
    uid: &str,
    distribution: &str,
    old: &CloudFrontInvalidationStatus,
    now: Timestamp,
) {
    // CloudFront finished between the last look that saw it running and now: the midpoint is
    // the best estimate for the completion-time model.
    let secs = |from: Timestamp, to: Timestamp| to.duration_since(from).as_secs_f64().max(0.0);
    let seen = ctx.observability.take_last_seen_running(uid);
    if let Some(seen) = seen {
        // Unknown after a restart; the metric then skips this invalidation rather than guess.
        ctx.observability
            .metrics
            .detection_delay
            .observe(secs(seen, now));
    }
    if let Some(created) = old.create_time.as_ref().or(old.start_time.as_ref()) {
        ctx.observability
            .metrics
            .submit_to_completed
            .observe(secs(created.0, now));
        let finished = seen.map_or(now, |s| s + now.duration_since(s) / 2);
        ctx.cloudfront.model.observe(
            distribution,
            Duration::from_secs_f64(secs(created.0, finished)),
        );
    }
}

fn failure_message(
    obj: &CloudFrontInvalidation,
    reason: FailureReason,
    operation: &str,
    err: &CloudFrontError,
) -> String {
    let dist = &obj.spec.distribution_id;
    let hint = match reason {
        FailureReason::DistributionNotFound => format!(
            "distribution {dist} does not exist in the AWS account the operator uses; check spec.distributionId"
        ),
        FailureReason::AccessDenied => format!(
            "the operator's IAM role may not invalidate distribution {dist}; grant cloudfront:CreateInvalidation and cloudfront:GetInvalidation on it"
        ),
        FailureReason::CallerReferenceConflict => format!(
            "CallerReference {:?} was already used for different paths; set a new spec.callerReference or create a new object",
            obj.caller_reference().unwrap_or_default()
        ),
        FailureReason::InvalidationNotFound => format!(
            "CloudFront does not know invalidation {:?} of distribution {dist}",
            obj.status
                .as_ref()
                .and_then(|s| s.invalidation_id.clone())
                .unwrap_or_default()
        ),
        _ => "CloudFront rejected the request".to_owned(),
    };
    format!("{hint} ({operation}: {err})")
}

fn timeout_message(obj: &CloudFrontInvalidation, status: &CloudFrontInvalidationStatus) -> String {
    let secs = obj.spec.timeout_seconds;
    match &status.invalidation_id {
        Some(id) => format!(
            "invalidation {id} did not complete within spec.timeoutSeconds={secs}; it may still \
             complete in CloudFront (an invalidation cannot be cancelled)"
        ),
        None => format!(
            "CloudFront did not accept the invalidation within spec.timeoutSeconds={secs}; \
             nothing was invalidated"
        ),
    }
}

async fn write_status(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    status: &CloudFrontInvalidationStatus,
) -> Result<(), Error> {
    let ns = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<CloudFrontInvalidation> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = Patch::Merge(json!({ "status": status }));
    api.patch_status(&obj.name_any(), &PatchParams::default(), &patch)
        .await
        .map_err(Error::WriteStatus)?;
    Ok(())
}

/// Events are best effort: losing one must not fail or repeat the reconcile.
async fn publish(obj: &CloudFrontInvalidation, ctx: &Context, event: Event) {
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(error = %e, reason = %event.reason, "could not publish event");
    }
}

/// Without CEL (Kubernetes before 1.25) the spec can still be edited; an invalidation that has
/// been sent cannot change, so say so once and record that the change was seen.
async fn note_spec_change_after_submit(
    obj: &CloudFrontInvalidation,
    status: &CloudFrontInvalidationStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let generation = obj.meta().generation;
    if generation.is_none() || status.observed_generation == generation {
        return Ok(());
    }
    let mut new = status.clone();
    new.observed_generation = generation;
    for c in &mut new.conditions {
        c.observed_generation = generation;
    }
    write_status(obj, ctx, &new).await?;
    publish(
        obj,
        ctx,
        Event {
            type_: EventType::Warning,
            reason: "SpecChangeIgnored".to_owned(),
            note: Some(
                "spec changed after the invalidation was sent; it cannot be changed. Create a new \
                 CloudFrontInvalidation to invalidate again"
                    .to_owned(),
            ),
            action: "Invalidate".to_owned(),
            secondary: None,
        },
    )
    .await;
    Ok(())
}

/// Errors that escape reconcile (status writes) are retried with backoff.
pub fn error_policy(obj: Arc<CloudFrontInvalidation>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = obj
        .uid()
        .map_or(Duration::from_secs(5), |uid| ctx.retries.next_delay(&uid));
    warn!(object = %obj.name_any(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
