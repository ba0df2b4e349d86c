//! One reconcile: validate → submit once → poll → Completed / Failed (→ the slow follow-up of a
//! timed-out invalidation). This file gathers what the reconcile learns (the one CloudFront
//! call), writes the status, and only after that write runs the effects (metrics, the
//! completion model, the backoff); the decision itself is the pure
//! [`transition`](super::transition).
//!
//! Every reconcile makes at most one CloudFront call (two when a shared ListInvalidations fails
//! and GetInvalidation is asked instead) and at most one status write, writes only when
//! something changed, and never sleeps: waiting is a requeue. A submission that sent tags also
//! starts the background `CacheTagConfig` check ([`cache_tags`](super::cache_tags)), which
//! nothing waits for.

use std::{sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use kube::{
    Resource, ResourceExt,
    api::{Api, Patch, PatchParams},
    runtime::{controller::Action, events::Event},
};
use serde_json::json;
use tracing::{Span, field, info, instrument, warn};

use super::transition::{
    Effect, FollowUp, Inputs, Next, Observation, Submission, Transition, positive, transition,
};
use super::{Context, Error, cache_tags};
use crate::{
    scheduler::{Admission, CLOUDFRONT_QUOTA, Candidate, Usage},
    tenancy::Decision,
};
use cfinv_api::crd::{CloudFrontInvalidation, CloudFrontInvalidationStatus, Phase, Target};
use cfinv_api::paths;
use cfinv_cloudfront::polling::Kind;
use cfinv_cloudfront::{
    CloudFrontError, Disposition, FailureReason, InvalidationStatus, classify,
    classify_after_submission, create_operation, get_operation, list_operation,
};

/// The IAM actions the operator needs, as `deploy/iam-policy.json` grants them (a test keeps
/// the two equal): named in every AccessDenied message.
pub(crate) const IAM_ACTIONS: &[&str] = &[
    "cloudfront:CreateInvalidation",
    "cloudfront:GetInvalidation",
    "cloudfront:ListInvalidations",
];

/// The same for distribution tenants.
pub(crate) const IAM_TENANT_ACTIONS: &[&str] = &[
    "cloudfront:CreateInvalidationForDistributionTenant",
    "cloudfront:GetInvalidationForDistributionTenant",
    "cloudfront:ListInvalidationsForDistributionTenant",
];

#[instrument(skip_all, fields(
    object = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
    destination = %obj.spec.target().map(|t| t.label()).unwrap_or_default(),
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

async fn reconcile_inner(
    obj: &CloudFrontInvalidation,
    ctx: &Arc<Context>,
) -> Result<Action, Error> {
    let uid = obj.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let status = obj.status.clone().unwrap_or_default();
    if let Some(id) = &status.invalidation_id {
        Span::current().record("invalidation_id", id.as_str());
    }
    let now = ctx.now();
    // The deadline counts from status.startTime; until a write has saved it (writes may keep
    // failing), from when this process first saw the object.
    let started = match &status.start_time {
        Some(t) => {
            ctx.retries.forget_first_seen(&uid);
            t.0
        }
        None => ctx.retries.first_seen(&uid, now),
    };
    let deadline = started + SignedDuration::from_secs(obj.spec.timeout_seconds.into());

    let observation = if obj.phase().is_terminal() {
        follow_up(obj, ctx, &status, now).await
    } else if let Some(batch) = status.batch.clone() {
        // A batch member: its batch says what happens (no CloudFront call from here).
        super::coalesce::follow(obj, ctx, &uid, &status, &batch, now).await
    } else {
        match &status.invalidation_id {
            None if now >= deadline => Observation::Failed {
                reason: FailureReason::Timeout,
                message: unsubmitted_timeout_message(obj, &status),
            },
            None => submit(obj, ctx, &uid, &status).await,
            Some(id) => poll(obj, ctx, &status, id, now, deadline).await,
        }
    };
    let tag_check = match &observation {
        Observation::Submitted { submission, .. } => {
            cache_tags::distribution_to_check(&submission.target, &submission.paths)
                .map(|d| (d, submission.paths.clone()))
        }
        _ => None,
    };
    let (action, written) = apply(obj, ctx, &uid, status, observation, now, deadline).await?;
    // Only once the status holds the invalidation: a failed write means a replay, not a check.
    if let Some((distribution, items)) = tag_check {
        cache_tags::spawn_check(ctx, obj, distribution, items);
    }
    // A finished object (finished now, or before) with nothing left to ask CloudFront: its TTL
    // decides what comes next. Our own status write triggers no reconcile, so this is the
    // moment to schedule it.
    if written.phase.is_some_and(Phase::is_terminal) {
        let mut finished = obj.clone();
        finished.status = Some(written);
        if !follow_up_pending(&finished) {
            return super::ttl::after_finished(&finished, ctx, now).await;
        }
    }
    Ok(action)
}

/// A `Failed/Timeout` object whose invalidation CloudFront was still running: the slow
/// follow-up keeps asking until CloudFront reports it finished (it also still holds a slot).
pub(crate) fn follow_up_pending(obj: &CloudFrontInvalidation) -> bool {
    obj.status.as_ref().is_some_and(|s| {
        s.phase == Some(Phase::Failed)
            && s.invalidation_id.is_some()
            && s.cloud_front_status.as_deref() == Some("InProgress")
    })
}

/// Where the object's invalidation was (or is being) submitted: recorded in the status at the
/// first attempt (a spec edit on a server without CEL cannot redirect it), else the spec's one
/// target. `Err`: the spec names both targets or neither.
pub(crate) fn submitted_target(
    obj: &CloudFrontInvalidation,
) -> Result<Target, cfinv_api::crd::TargetError> {
    let status = obj.status.as_ref();
    if let Some(tenant) = status.and_then(|s| s.distribution_tenant_id.clone()) {
        return Ok(Target::Tenant(tenant));
    }
    if let Some(distribution) = status.and_then(|s| s.distribution_id.clone()) {
        return Ok(Target::Distribution(distribution));
    }
    obj.spec.target()
}

/// The scheduling and polling key of [`submitted_target`]: the target's id, whichever kind.
pub(crate) fn submitted_target_id(obj: &CloudFrontInvalidation) -> &str {
    let status = obj.status.as_ref();
    status
        .and_then(|s| s.distribution_tenant_id.as_deref())
        .or_else(|| status.and_then(|s| s.distribution_id.as_deref()))
        .unwrap_or_else(|| obj.spec.target_id())
}

/// What the invalidation carries, for the completion model: the items sent, else the spec's.
fn kind(obj: &CloudFrontInvalidation) -> Kind {
    match obj
        .status
        .as_ref()
        .and_then(|s| s.submitted_paths.as_deref())
    {
        Some(sent) => Kind::of(sent),
        None => Kind::of(&obj.spec.paths),
    }
}

/// What to send: what an earlier attempt recorded (a spec edit after it cannot change what may
/// already be in CloudFront), else the spec, validated and normalised. `Err`: why the spec
/// cannot be sent (its target or its paths). The second value counts paths normalisation left
/// out.
fn submission(
    obj: &CloudFrontInvalidation,
    status: &CloudFrontInvalidationStatus,
    uid: &str,
) -> Result<(Submission, usize), (FailureReason, String)> {
    let from_spec = paths::normalize(&obj.spec.paths);
    let recorded_target = match (&status.distribution_id, &status.distribution_tenant_id) {
        (_, Some(tenant)) => Some(Target::Tenant(tenant.clone())),
        (Some(distribution), None) => Some(Target::Distribution(distribution.clone())),
        (None, None) => None,
    };
    if let (Some(target), Some(caller_reference), Some(paths)) = (
        recorded_target,
        &status.caller_reference,
        &status.submitted_paths,
    ) {
        let dropped = match &from_spec {
            Ok(n) if &n.paths == paths => n.dropped.len(),
            _ => 0,
        };
        let recorded = Submission {
            target,
            caller_reference: caller_reference.clone(),
            paths: paths.clone(),
        };
        return Ok((recorded, dropped));
    }
    // Servers without CEL or `oneOf` admit both ids or neither: never guess which was meant.
    let target = obj
        .spec
        .target()
        .map_err(|e| (FailureReason::InvalidTarget, e.to_string()))?;
    let normalized =
        from_spec.map_err(|errors| (FailureReason::InvalidPaths, errors.to_string()))?;
    let caller_reference = obj
        .spec
        .caller_reference
        .clone()
        .unwrap_or_else(|| uid.to_owned());
    let dropped = normalized.dropped.len();
    Ok((
        Submission {
            target,
            caller_reference,
            paths: normalized.paths,
        },
        dropped,
    ))
}

/// Validate and normalise the paths, then send the one CreateInvalidation.
async fn submit(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    uid: &str,
    status: &CloudFrontInvalidationStatus,
) -> Observation {
    let (submission, dropped) = match submission(obj, status, uid) {
        Ok(s) => s,
        // Input we know CloudFront would reject never reaches it.
        Err((reason, message)) => return Observation::Failed { reason, message },
    };
    let namespace = obj.namespace().unwrap_or_default();
    let attempted = status.caller_reference.is_some();
    if !attempted {
        // Checked before the first request; a request that may have reached CloudFront is
        // followed through whatever the policy says now.
        match ctx
            .scheduling
            .tenancy
            .check_target(&namespace, &submission.target)
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
                    message: format!(
                        "waiting for the namespace cache to know namespace {namespace}, to check \
                         the tenancy policy"
                    ),
                    attempt: None,
                };
            }
        }
    }
    // Tenants are scheduled on their own budget (docs/tags-and-tenants.md, "Quotas"): the docs
    // do not say whether they share their distribution's; TooManyInvalidationsInProgress still
    // queues the object if they do.
    let target = submission.target.clone();
    let distribution = target.id().to_owned();
    let Some(candidate) = Candidate::new(obj, Usage::of(&submission.paths)) else {
        return Observation::Retry {
            message: "object has no metadata.uid yet".to_owned(),
            attempt: None,
        };
    };
    match ctx.scheduling.scheduler.admit(&distribution, &candidate) {
        Admission::Admit => {
            if let Some(window) = ctx.settings.coalesce_window
                && super::coalesce::mergeable(obj, status)
            {
                return super::coalesce::record(obj, ctx, &candidate, &submission, window).await;
            }
        }
        Admission::Wait { .. } => {
            return Observation::Queued {
                message: queued_message(&target),
                backoff: false,
                attempt: None,
            };
        }
        Admission::Never { usage } => {
            return Observation::Failed {
                reason: FailureReason::ExceedsQuota,
                message: format!(
                    "spec.paths: {} wildcard and {} other paths after normalisation, but CloudFront \
                     allows at most {} wildcard and {} other paths in progress per distribution, \
                     so it could never accept this request; split them over several \
                     CloudFrontInvalidations",
                    usage.wildcards,
                    usage.objects,
                    CLOUDFRONT_QUOTA.wildcards,
                    CLOUDFRONT_QUOTA.objects
                ),
            };
        }
    }
    let created = ctx
        .cloudfront
        .api
        .create_for(&target, &submission.caller_reference, &submission.paths)
        .await;
    match created {
        Ok(invalidation) => Observation::Submitted {
            invalidation,
            submission,
            dropped,
        },
        Err(err) => {
            // Refused by CloudFront's quota: the scheduler pauses wakes on this distribution;
            // any other error frees the slot it reserved.
            if classify(&err) == Disposition::Queue {
                ctx.scheduling.scheduler.refused(uid);
            } else {
                ctx.scheduling.scheduler.release(uid);
            }
            match classify(&err) {
                Disposition::Fail(reason) => Observation::Failed {
                    reason,
                    message: failure_message(
                        obj,
                        &target,
                        reason,
                        create_operation(&target).as_str(),
                        &err,
                    ),
                },
                Disposition::Queue => Observation::Queued {
                    message: queued_message(&target),
                    backoff: true,
                    attempt: Some(submission),
                },
                Disposition::Retry => Observation::Retry {
                    message: format!(
                        "{} failed, retrying: {err}",
                        create_operation(&target).as_str()
                    ),
                    attempt: Some(submission),
                },
            }
        }
    }
}

/// Ask CloudFront whether the invalidation is done. Past the deadline this is the one last
/// look that decides between Completed and Timeout.
async fn poll(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    status: &CloudFrontInvalidationStatus,
    id: &str,
    now: Timestamp,
    deadline: Timestamp,
) -> Observation {
    let target = match submitted_target(obj) {
        Ok(target) => target,
        Err(error) => {
            return Observation::Failed {
                reason: FailureReason::InvalidTarget,
                message: error.to_string(),
            };
        }
    };
    let distribution = target.id();
    let past_deadline = now >= deadline;
    let batch_interval = ctx.settings.poll.batch_interval;
    let in_flight = ctx.scheduling.scheduler.polling(distribution);
    let mut batched = !past_deadline && batch_interval.is_some() && in_flight >= 2;
    let mut operation = get_operation(&target).as_str().to_owned();
    let answer = match batch_interval.filter(|_| batched) {
        Some(max_age) => match ctx
            .cloudfront
            .board
            .completed_for(&*ctx.cloudfront.api, &target, id, max_age)
            .await
        {
            Ok(Some(true)) => Ok(InvalidationStatus::Completed),
            Ok(Some(false)) => Ok(InvalidationStatus::InProgress),
            // Not among the newest 100: ask for this one, on its own schedule.
            Ok(None) => {
                batched = false;
                get_status(ctx, &target, id).await
            }
            Err(e) => {
                // The shared list failed (throttled, or IAM lacks ListInvalidations): this
                // object still gets its answer, from GetInvalidation.
                warn!(
                    error = %e,
                    "{} failed, asking {} instead",
                    list_operation(&target).as_str(),
                    get_operation(&target).as_str()
                );
                get_status(ctx, &target, id).await
            }
        },
        None => get_status(ctx, &target, id).await,
    };
    if in_flight <= 1 {
        ctx.cloudfront.board.forget_target(&target);
    }
    match answer {
        Ok(InvalidationStatus::Completed) => Observation::Completed,
        Ok(_) if past_deadline => Observation::TimedOut {
            message: running_timeout_message(obj, id),
        },
        Ok(running) => {
            let submitted = status
                .create_time
                .as_ref()
                .or(status.start_time.as_ref())
                .map_or(now, |t| t.0);
            Observation::StillRunning {
                // CloudFront's CreateTime ahead of our clock is no time elapsed.
                since_submit: positive(now.duration_since(submitted)),
                sharing: if batched { in_flight } else { 1 },
                status: running,
            }
        }
        Err(err) => {
            if batched {
                operation = format!(
                    "{operation} (after {} failed)",
                    list_operation(&target).as_str()
                );
            }
            match classify_after_submission(&err) {
                Disposition::Fail(reason) => Observation::Failed {
                    reason,
                    message: failure_message(obj, &target, reason, &operation, &err),
                },
                _ => {
                    let hint = match classify(&err) {
                        Disposition::Fail(FailureReason::AccessDenied) => {
                            format!("; {}", iam_hint(&target))
                        }
                        _ => String::new(),
                    };
                    let late = if past_deadline {
                        " (spec.timeoutSeconds has passed: waiting for CloudFront to say whether \
                         the invalidation finished)"
                    } else {
                        ""
                    };
                    Observation::Retry {
                        message: format!("{operation} failed, retrying{late}: {err}{hint}"),
                        attempt: None,
                    }
                }
            }
        }
    }
}

/// A finished object: a `Failed/Timeout` one whose invalidation CloudFront was still running
/// gets a slow follow-up look (one GetInvalidation per `--timeout-follow-up-interval`) until
/// CloudFront reports it finished; anything else is left alone.
async fn follow_up(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    status: &CloudFrontInvalidationStatus,
    now: Timestamp,
) -> Observation {
    let (true, Some(id)) = (follow_up_pending(obj), &status.invalidation_id) else {
        return Observation::Finished;
    };
    if let Some(batch) = &status.batch {
        return Observation::FollowUp(super::coalesce::follow_up(ctx, obj, batch, now));
    }
    let Ok(target) = submitted_target(obj) else {
        return Observation::Finished;
    };
    match ctx.cloudfront.api.get_for(&target, id).await {
        Ok(inv) if inv.status.is_completed() => Observation::FollowUp(FollowUp::Finished {
            message: format!(
                "invalidation {id} did not complete within spec.timeoutSeconds={}; CloudFront \
                 completed it later (seen at {})",
                obj.spec.timeout_seconds,
                now.round(jiff::Unit::Second).unwrap_or(now)
            ),
        }),
        Ok(_) => Observation::FollowUp(FollowUp::StillRunning),
        Err(err) => match classify_after_submission(&err) {
            Disposition::Fail(_) => {
                warn!(error = %err, "CloudFront no longer knows the timed-out invalidation");
                Observation::FollowUp(FollowUp::Gone)
            }
            _ => Observation::FollowUp(FollowUp::StillRunning),
        },
    }
}

async fn get_status(
    ctx: &Context,
    target: &Target,
    id: &str,
) -> Result<InvalidationStatus, CloudFrontError> {
    let inv = ctx.cloudfront.api.get_for(target, id).await?;
    Ok(inv.status)
}

fn queued_message(target: &Target) -> String {
    format!(
        "waiting for a slot on {target}: CloudFront allows 15 wildcard paths and 3,000 other \
         paths (tags included) in progress at once"
    )
}

/// Decide ([`transition`]), write the status if it changed, and only then run the effects,
/// publish the events and return the requeue and the status as written. A failed write returns the error (the object is
/// retried with its backoff, which keeps growing) and runs no effect: nothing happened.
async fn apply(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    uid: &str,
    old: CloudFrontInvalidationStatus,
    observation: Observation,
    now: Timestamp,
    deadline: Timestamp,
) -> Result<(Action, CloudFrontInvalidationStatus), Error> {
    let distribution = submitted_target_id(obj).to_owned();
    let kind = kind(obj);
    let inputs = Inputs {
        now,
        deadline,
        generation: obj.meta().generation,
        poll: &ctx.settings.poll,
        window: ctx.cloudfront.model.window_kind(&distribution, kind),
        queue_recheck: ctx.settings.queue_recheck,
        follow_up: ctx.settings.follow_up,
    };
    let Transition {
        status: mut new,
        events,
        next,
        effects,
    } = transition(&old, observation, inputs);
    // `kubectl get` shows the target from the first reconcile, queued objects included (an
    // object that finished before the field existed is left as it is: no write for it).
    if new.target.is_none()
        && !old.phase.is_some_and(Phase::is_terminal)
        && let Ok(target) = submitted_target(obj)
    {
        new.target = Some(target.label());
    }

    if new != old {
        write_status(obj, ctx, &new).await?;
    }
    if new.phase.is_some_and(Phase::is_terminal) {
        ctx.retries.reset(uid);
    }
    let until_deadline = positive(deadline.duration_since(now));
    let requeue = match next {
        Next::AwaitChange => None,
        Next::After(delay) => Some(delay),
        Next::Backoff => {
            let delay = ctx.retries.next_delay(uid);
            // Capped at the deadline, which then decides; past it, the plain backoff.
            Some(if until_deadline.is_zero() {
                delay
            } else {
                delay.min(until_deadline)
            })
        }
    };
    for effect in effects {
        run_effect(ctx, uid, &distribution, kind, &old, effect, requeue, now);
    }
    for event in events {
        publish(obj, ctx, event).await;
    }
    Ok((
        requeue.map_or_else(Action::await_change, Action::requeue),
        new,
    ))
}

#[allow(clippy::too_many_arguments)]
fn run_effect(
    ctx: &Context,
    uid: &str,
    distribution: &str,
    kind: Kind,
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
            // A CallerReference replay returns the invalidation already billed.
            if ctx.observability.first_acceptance(uid, &id) {
                ctx.observability
                    .metrics
                    .record_billed(distribution, billed.into());
            }
        }
        Effect::Completed => {
            info!("CloudFront completed the invalidation");
            observe_completion(ctx, uid, distribution, kind, old, now);
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
    kind: Kind,
    old: &CloudFrontInvalidationStatus,
    now: Timestamp,
) {
    // CloudFront finished between the last look that saw it running (or the submission) and
    // now: the model learns the belief's own estimate inside that interval.
    let secs = |from: Timestamp, to: Timestamp| positive(to.duration_since(from)).as_secs_f64();
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
        let since = |t: Timestamp| Duration::from_secs_f64(secs(created.0, t));
        let took = ctx
            .cloudfront
            .model
            .window_kind(distribution, kind)
            .completed_within(seen.map_or(Duration::ZERO, since), since(now));
        ctx.cloudfront.model.observe_kind(distribution, kind, took);
    }
}

/// What to grant, in the words of `deploy/iam-policy.json`.
fn iam_hint(target: &Target) -> String {
    let actions = match target {
        Target::Distribution(_) => IAM_ACTIONS,
        Target::Tenant(_) => IAM_TENANT_ACTIONS,
    };
    format!(
        "the operator's IAM role needs {} on {target} (see deploy/iam-policy.json)",
        actions.join(", ")
    )
}

fn failure_message(
    obj: &CloudFrontInvalidation,
    target: &Target,
    reason: FailureReason,
    operation: &str,
    err: &CloudFrontError,
) -> String {
    let dist = target.id();
    let hint = match reason {
        FailureReason::DistributionTenantNotFound => format!(
            "distribution tenant {dist} does not exist in the AWS account the operator uses; check spec.distributionTenantId"
        ),
        FailureReason::DistributionNotFound => format!(
            "distribution {dist} does not exist in the AWS account the operator uses; check spec.distributionId"
        ),
        FailureReason::AccessDenied => iam_hint(target),
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

/// Past the deadline with an id, CloudFront asked at the deadline still runs it.
fn running_timeout_message(obj: &CloudFrontInvalidation, id: &str) -> String {
    format!(
        "invalidation {id} did not complete within spec.timeoutSeconds={}: CloudFront still \
         reports it InProgress and keeps running it (an invalidation cannot be cancelled); the \
         operator keeps checking and records CloudFront's status in status.cloudFrontStatus",
        obj.spec.timeout_seconds
    )
}

/// Past the deadline without an id: nothing was invalidated only if no request was sent.
fn unsubmitted_timeout_message(
    obj: &CloudFrontInvalidation,
    status: &CloudFrontInvalidationStatus,
) -> String {
    let secs = obj.spec.timeout_seconds;
    let target = status
        .distribution_tenant_id
        .as_ref()
        .map(|t| Target::Tenant(t.clone()))
        .or_else(|| status.distribution_id.clone().map(Target::Distribution));
    match (&status.caller_reference, target) {
        (Some(reference), Some(target)) => format!(
            "CloudFront did not confirm the invalidation within spec.timeoutSeconds={secs}; a \
             request was sent, so CloudFront may hold an invalidation with CallerReference \
             {reference:?} on {target} (see {})",
            list_operation(&target).as_str()
        ),
        _ => format!(
            "CloudFront did not accept the invalidation within spec.timeoutSeconds={secs}; no \
             request was sent, nothing was invalidated"
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

/// Errors that escape reconcile (status writes) are retried with a backoff that grows with
/// every failure (up to `--retry-max-delay`), so an object whose status cannot be written does
/// not replay its CloudFront call every second.
pub fn error_policy(obj: Arc<CloudFrontInvalidation>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = obj
        .uid()
        .map_or(Duration::from_secs(5), |uid| ctx.retries.next_delay(&uid));
    warn!(object = %obj.name_any(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
