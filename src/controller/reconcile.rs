//! The reconcile state machine: validate → submit once → poll → Completed / Failed.
//!
//! Every reconcile makes at most one CloudFront call and at most one status write, writes only
//! when something changed, and never sleeps: waiting is a requeue.

use std::{sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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

use super::{Context, Error, conditions};
use crate::{
    cloudfront::{
        CloudFrontError, CreateInvalidation, Disposition, FailureReason, Invalidation, classify,
    },
    crd::{CloudFrontInvalidation, CloudFrontInvalidationStatus, Phase},
    paths::{self, NormalizedPaths},
    scheduler::{Admission, CLOUDFRONT_QUOTA, Candidate, Usage},
    tenancy::Decision,
};

/// What one reconcile decided.
#[derive(Debug)]
enum Step {
    /// CloudFront accepted the batch (or returned the one it already had for our
    /// CallerReference).
    Submitted {
        invalidation: Invalidation,
        normalized: NormalizedPaths,
        caller_reference: String,
    },
    /// CloudFront reports the invalidation done.
    Completed,
    /// Still in progress: ask again later, write nothing.
    StillRunning {
        since_submit: Duration,
        batched: bool,
    },
    /// The object will not complete.
    Failed {
        reason: FailureReason,
        message: String,
    },
    /// The distribution has no free in-progress slot; `backoff` when CloudFront said so (a
    /// writer outside this operator), else a plain recheck of this operator's own scheduler.
    Queued { message: String, backoff: bool },
    /// A transient error; try again after a backoff.
    Retry { message: String },
}

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
    ctx.metrics
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
        ctx.forget(&uid);
        note_spec_change_after_submit(obj, &status, ctx).await?;
        return Ok(Action::await_change());
    }

    let started = status.start_time.as_ref().map_or(now, |t| t.0);
    let deadline = started + SignedDuration::from_secs(obj.spec.timeout_seconds.into());
    let step = if now >= deadline {
        Step::Failed {
            reason: FailureReason::Timeout,
            message: timeout_message(obj, &status),
        }
    } else {
        match &status.invalidation_id {
            None => submit(obj, ctx, &uid).await,
            Some(id) => poll(obj, ctx, id, now).await,
        }
    };
    apply(obj, ctx, &uid, status, step, now, deadline).await
}

/// Validate and normalise the paths, then send the one CreateInvalidation.
async fn submit(obj: &CloudFrontInvalidation, ctx: &Context, uid: &str) -> Step {
    let normalized = match paths::normalize(&obj.spec.paths) {
        Ok(n) => n,
        Err(errors) => {
            // Input we know CloudFront would reject never reaches it.
            return Step::Failed {
                reason: FailureReason::InvalidPaths,
                message: errors.to_string(),
            };
        }
    };
    let namespace = obj.namespace().unwrap_or_default();
    match ctx.tenancy.check(&namespace, &obj.spec.distribution_id) {
        Decision::Allowed => {}
        Decision::Denied(message) => {
            return Step::Failed {
                reason: FailureReason::NotAllowed,
                message,
            };
        }
        Decision::NotYetKnown => {
            return Step::Retry {
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
    let candidate = Candidate {
        uid: uid.to_owned(),
        namespace,
        created: obj
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        usage: Usage::of(&normalized.paths),
    };
    match ctx
        .scheduler
        .admit(distribution, &candidate, &ctx.cached(distribution))
    {
        Admission::Admit => {}
        Admission::Wait { .. } => {
            return Step::Queued {
                message: queued_message(distribution),
                backoff: false,
            };
        }
        Admission::Never { usage } => {
            return Step::Failed {
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
    match ctx.cloudfront.create_invalidation(&request).await {
        Ok(invalidation) => Step::Submitted {
            invalidation,
            normalized,
            caller_reference,
        },
        Err(err) => {
            ctx.scheduler.release(uid);
            step_for_error(obj, "CreateInvalidation", err)
        }
    }
}

/// Ask CloudFront whether the invalidation is done.
async fn poll(obj: &CloudFrontInvalidation, ctx: &Context, id: &str, now: Timestamp) -> Step {
    let distribution = &obj.spec.distribution_id;
    let batch_interval = ctx.settings.poll.batch_interval;
    let in_flight = ctx
        .cached(distribution)
        .iter()
        .filter(|o| o.phase() == Phase::InProgress)
        .count();
    let batched = batch_interval.is_some() && in_flight >= 2;
    let completed = match batch_interval.filter(|_| batched) {
        Some(max_age) => match ctx
            .board
            .completed(&*ctx.cloudfront, distribution, id, max_age)
            .await
        {
            Ok(Some(done)) => Ok(done),
            // Not among the newest 100: ask for this one.
            Ok(None) => get_completed(ctx, distribution, id).await,
            Err(e) => Err(e),
        },
        None => get_completed(ctx, distribution, id).await,
    };
    if in_flight <= 1 {
        ctx.board.forget(distribution);
    }
    match completed {
        Ok(true) => Step::Completed,
        Ok(false) => {
            let status = obj.status.as_ref();
            let submitted = status
                .and_then(|s| s.create_time.as_ref().or(s.start_time.as_ref()))
                .map_or(now, |t| t.0);
            let since_submit = now.duration_since(submitted).unsigned_abs();
            Step::StillRunning {
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
    let inv = ctx.cloudfront.get_invalidation(distribution, id).await?;
    Ok(inv.status.is_completed())
}

fn queued_message(distribution: &str) -> String {
    format!(
        "waiting for a slot on distribution {distribution}: CloudFront allows 15 wildcard paths \
         and 3,000 other paths in progress at once"
    )
}

fn step_for_error(obj: &CloudFrontInvalidation, operation: &str, err: CloudFrontError) -> Step {
    match classify(&err) {
        Disposition::Fail(reason) => Step::Failed {
            reason,
            message: failure_message(obj, reason, operation, &err),
        },
        Disposition::Queue => Step::Queued {
            message: queued_message(&obj.spec.distribution_id),
            backoff: true,
        },
        Disposition::Retry => Step::Retry {
            message: format!("{operation} failed, retrying: {err}"),
        },
    }
}

/// Turn the step into a status (written only if it changed), an event and the next requeue.
async fn apply(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    uid: &str,
    old: CloudFrontInvalidationStatus,
    step: Step,
    now: Timestamp,
    deadline: Timestamp,
) -> Result<Action, Error> {
    let mut new = old.clone();
    new.start_time.get_or_insert(Time(now));
    new.observed_generation = obj.meta().generation;
    let until_deadline = deadline.duration_since(now).unsigned_abs();
    let mut event = None;

    let (phase, reason, action) = match step {
        Step::Submitted {
            invalidation,
            normalized,
            caller_reference,
        } => {
            ctx.forget(uid);
            Span::current().record("invalidation_id", invalidation.id.as_str());
            let billed = normalized.billed();
            let dropped = normalized.dropped.len();
            info!(billed, dropped, "CloudFront accepted the invalidation");
            ctx.metrics
                .record_billed(&obj.spec.distribution_id, billed as u64);
            new.invalidation_id = Some(invalidation.id.clone());
            new.caller_reference = Some(caller_reference);
            new.create_time = invalidation.create_time.map(Time);
            new.billed_paths = Some(billed as u32);
            new.submitted_paths = Some(normalized.paths);
            let dropped_note = match dropped {
                0 => String::new(),
                n => format!("; {n} duplicate or covered path(s) dropped"),
            };
            event = Some(normal(
                "Submitted",
                format!(
                    "CloudFront accepted invalidation {} of {billed} path(s){dropped_note}",
                    invalidation.id
                ),
            ));
            if invalidation.status.is_completed() {
                // Adopted after a crash, or CloudFront was quick: done already.
                completed(&mut new, &invalidation.id, now);
                (Phase::Completed, "Completed", Action::await_change())
            } else {
                new.message = Some(in_progress_message(&invalidation.id, billed as u32));
                let window = ctx.model.window(&obj.spec.distribution_id);
                let next = ctx.settings.poll.next_poll(Duration::ZERO, window, false);
                (
                    Phase::InProgress,
                    "InProgress",
                    Action::requeue(next.min(until_deadline)),
                )
            }
        }
        Step::Completed => {
            ctx.forget(uid);
            let id = old.invalidation_id.clone().unwrap_or_default();
            info!("CloudFront completed the invalidation");
            observe_completion(ctx, uid, &obj.spec.distribution_id, &old, now);
            completed(&mut new, &id, now);
            event = Some(normal("Completed", new.message.clone().unwrap_or_default()));
            (Phase::Completed, "Completed", Action::await_change())
        }
        Step::StillRunning {
            since_submit,
            batched,
        } => {
            ctx.forget(uid);
            ctx.seen_running(uid, now);
            // Replaces a retry message left by an earlier failed poll.
            let id = old.invalidation_id.as_deref().unwrap_or_default();
            new.message = Some(in_progress_message(
                id,
                old.billed_paths.unwrap_or_default(),
            ));
            let window = ctx.model.window(&obj.spec.distribution_id);
            let next = ctx.settings.poll.next_poll(since_submit, window, batched);
            (
                Phase::InProgress,
                "InProgress",
                Action::requeue(next.min(until_deadline)),
            )
        }
        Step::Failed { reason, message } => {
            ctx.forget(uid);
            warn!(reason = reason.as_str(), %message, "invalidation failed");
            ctx.metrics.record_failure(reason.as_str());
            ctx.take_last_seen_running(uid);
            new.completion_time = Some(Time(now));
            new.message = Some(message.clone());
            event = Some(Event {
                type_: EventType::Warning,
                reason: reason.as_str().to_owned(),
                note: Some(truncate(&message, 1000)),
                action: "Invalidate".to_owned(),
                secondary: None,
            });
            (Phase::Failed, reason.as_str(), Action::await_change())
        }
        Step::Queued { message, backoff } => {
            let delay = if backoff {
                ctx.backoff(uid)
            } else {
                ctx.settings.queue_recheck
            };
            info!(retry_in = ?delay, "distribution busy, invalidation queued");
            new.message = Some(message);
            (
                Phase::Queued,
                "Queued",
                Action::requeue(delay.min(until_deadline)),
            )
        }
        Step::Retry { message } => {
            let delay = ctx.backoff(uid);
            warn!(retry_in = ?delay, %message, "CloudFront call failed, will retry");
            new.message = Some(message);
            let phase = old.phase.unwrap_or(Phase::Pending);
            (
                phase,
                phase.as_str(),
                Action::requeue(delay.min(until_deadline)),
            )
        }
    };

    new.phase = Some(phase);
    let message = new.message.clone().unwrap_or_default();
    new.conditions = conditions::for_phase(
        phase,
        reason,
        &message,
        new.observed_generation,
        &old.conditions,
        now,
    );

    if new != old {
        write_status(obj, ctx, &new).await?;
    }
    if let Some(event) = event {
        publish(obj, ctx, event).await;
    }
    Ok(action)
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
    let seen = ctx.take_last_seen_running(uid);
    if let Some(seen) = seen {
        // Unknown after a restart; the metric then skips this invalidation rather than guess.
        ctx.metrics.detection_delay.observe(secs(seen, now));
    }
    if let Some(created) = old.create_time.as_ref().or(old.start_time.as_ref()) {
        ctx.metrics
            .submit_to_completed
            .observe(secs(created.0, now));
        let finished = seen.map_or(now, |s| s + now.duration_since(s) / 2);
        ctx.model.observe(
            distribution,
            Duration::from_secs_f64(secs(created.0, finished)),
        );
    }
}

fn in_progress_message(id: &str, billed: u32) -> String {
    format!("CloudFront is invalidating {billed} path(s) (invalidation {id})")
}

fn completed(status: &mut CloudFrontInvalidationStatus, id: &str, now: Timestamp) {
    status.completion_time = Some(Time(now));
    let took = status
        .start_time
        .as_ref()
        .map(|t| format!(" in {}s", now.duration_since(t.0).as_secs().max(0)))
        .unwrap_or_default();
    status.message = Some(format!(
        "CloudFront completed invalidation {id} of {} path(s){took}",
        status.billed_paths.unwrap_or_default()
    ));
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

fn normal(reason: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.to_owned(),
        note: Some(truncate(&note, 1000)),
        action: "Invalidate".to_owned(),
        secondary: None,
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

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Errors that escape reconcile (status writes) are retried with backoff.
pub fn error_policy(obj: Arc<CloudFrontInvalidation>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = obj
        .uid()
        .map_or(Duration::from_secs(5), |uid| ctx.backoff(&uid));
    warn!(object = %obj.name_any(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
