//! The state machine's decisions, as a pure function: the object's current status and what this
//! reconcile learned from CloudFront ([`Observation`]) in, the new status, the Events, the
//! requeue and the side effects ([`Transition`]) out. No I/O and no clock: `reconcile` gathers
//! the inputs, writes the status, and only then runs the effects, so every decision here is
//! testable with plain values and no effect happens for a status that was never written.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::{Event, EventType};

use super::conditions;
use cfinv_api::crd::{CloudFrontInvalidationStatus, Phase, Target};
use cfinv_api::paths;
use cfinv_cloudfront::polling::{PollSettings, Window};
use cfinv_cloudfront::{FailureReason, Invalidation, InvalidationStatus};

/// What the operator sends (or sent) to CloudFront for an object: recorded in the status at the
/// first submit attempt and used from then on, so that a spec edit on a server without CEL can
/// neither redirect nor duplicate the invalidation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Submission {
    pub target: Target,
    pub caller_reference: String,
    pub paths: Vec<String>,
}

/// What one reconcile learned.
#[derive(Debug)]
pub(super) enum Observation {
    /// CloudFront accepted the batch (or returned the one it already had for our
    /// CallerReference).
    Submitted {
        invalidation: Invalidation,
        submission: Submission,
        /// Paths left out by normalisation (duplicates, covered by a wildcard).
        dropped: usize,
    },
    /// CloudFront reports the invalidation done.
    Completed,
    /// Still in progress: ask again later.
    StillRunning {
        since_submit: Duration,
        /// How many in-flight invalidations the next look answers for (1: a Get; more: the
        /// distribution's shared List).
        sharing: usize,
        status: InvalidationStatus,
    },
    /// `spec.timeoutSeconds` passed and CloudFront, asked at the deadline, still runs it.
    TimedOut { message: String },
    /// The object will not complete.
    Failed {
        reason: FailureReason,
        message: String,
    },
    /// The distribution has no free in-progress slot; `backoff` when CloudFront said so (a
    /// writer outside this operator), else a plain recheck of this operator's own scheduler.
    /// `attempt`: what was sent, when a request reached CloudFront.
    Queued {
        message: String,
        backoff: bool,
        attempt: Option<Submission>,
    },
    /// A transient error; try again after a backoff. `attempt`: what was sent, when this was a
    /// CreateInvalidation (it may have reached CloudFront).
    Retry {
        message: String,
        attempt: Option<Submission>,
    },
    /// A finished object: nothing asked, nothing learned.
    Finished,
    /// A `Failed/Timeout` object whose invalidation CloudFront was still running: the slow
    /// follow-up look.
    FollowUp(FollowUp),
    /// Coalescing: admitted, waiting out `--coalesce-window` for more objects to merge with.
    Gathering { wait: Duration },
    /// Coalescing: this object's reconcile merged it (and maybe others) into a batch.
    Claimed {
        batch: String,
        claim_time: Timestamp,
        size: usize,
    },
    /// Coalescing: the object's claim named a batch that was never recorded (its planner
    /// stopped); the claim was released and the object waits again.
    Released { batch: String },
    /// Coalescing: what the object's batch shows.
    Batch(super::coalesce_transition::BatchView),
}

/// What the follow-up look at a timed-out invalidation found.
#[derive(Debug, PartialEq)]
pub(super) enum FollowUp {
    /// CloudFront finished it; `message` is the object's new message.
    Finished { message: String },
    /// Still running (or CloudFront could not be asked): look again later.
    StillRunning,
    /// CloudFront does not know it (any more): stop looking.
    Gone,
}

/// What the decision needs besides the status: the clock and the polling plan.
#[derive(Clone, Copy, Debug)]
pub(super) struct Inputs<'a> {
    pub now: Timestamp,
    pub deadline: Timestamp,
    /// `metadata.generation` of the object.
    pub generation: Option<i64>,
    pub poll: &'a PollSettings,
    /// The distribution's learned completion window.
    pub window: Window,
    /// How soon an object queued by this operator's scheduler looks again.
    pub queue_recheck: Duration,
    /// How often a timed-out invalidation CloudFront still runs is looked at again.
    pub follow_up: Duration,
}

/// When to reconcile the object again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Only when the object changes.
    AwaitChange,
    /// After this long (already capped at the deadline where one applies).
    After(Duration),
    /// After the object's next retry backoff, capped at the deadline.
    Backoff,
}

/// Side effects of a transition, run by `reconcile` in order, after the status write.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Effect {
    /// The object made progress or finished: its next error starts a fresh backoff.
    ResetBackoff,
    /// CloudFront accepted the invalidation: bill its paths (metric) and log it.
    Accepted {
        id: String,
        billed: u32,
        dropped: usize,
    },
    /// CloudFront completed it: the detection and duration metrics, the completion model.
    Completed,
    /// Seen still running now (bounds the detection delay of the next look).
    SeenRunning,
    /// Failed for good: the failures metric.
    Failed {
        reason: FailureReason,
        message: String,
    },
    /// Waiting for a quota slot.
    Queued,
    /// A transient error; retrying.
    Retrying { message: String },
}

pub(super) struct Transition {
    pub status: CloudFrontInvalidationStatus,
    pub events: Vec<Event>,
    pub next: Next,
    pub effects: Vec<Effect>,
}

/// The new status, events, requeue and effects for `observation` on an object whose status is
/// `old`.
pub(super) fn transition(
    old: &CloudFrontInvalidationStatus,
    observation: Observation,
    inputs: Inputs<'_>,
) -> Transition {
    let mut events = Vec::new();
    if spec_changed_after_submit(old, inputs.generation) {
        events.push(spec_change_ignored());
    }
    let old_phase = old.phase.unwrap_or_default();
    if old_phase.is_terminal() {
        // A finished object stays finished, whatever is observed.
        return finished(old, observation, inputs, events);
    }

    let Inputs { now, deadline, .. } = inputs;
    let mut new = old.clone();
    new.start_time.get_or_insert(Time(now));
    new.observed_generation = inputs.generation;
    let until_deadline = positive(deadline.duration_since(now));
    let poll_after = |since_submit, sharing| {
        let next = inputs.poll.next_poll(since_submit, inputs.window, sharing);
        Next::After(next.min(until_deadline))
    };
    let mut effects = Vec::new();

    let (phase, reason, next) = match observation {
        Observation::Submitted {
            invalidation,
            submission,
            dropped,
        } => {
            let billed = submission.paths.len() as u32;
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::Accepted {
                id: invalidation.id.clone(),
                billed,
                dropped,
            });
            record(&mut new, submission);
            new.invalidation_id = Some(invalidation.id.clone());
            new.create_time = invalidation.create_time.map(Time);
            new.billed_paths = Some(billed);
            new.cloud_front_status = Some(status_text(&invalidation.status));
            let dropped_note = match dropped {
                0 => String::new(),
                n => format!("; {n} duplicate or covered path(s) dropped"),
            };
            events.push(normal(
                "Submitted",
                format!(
                    "CloudFront accepted invalidation {} of {billed} path(s){dropped_note}",
                    invalidation.id
                ),
            ));
            if invalidation.status.is_completed() {
                // Adopted after a crash, or CloudFront was quick: done already.
                effects.push(Effect::Completed);
                completed(&mut new, &invalidation.id, now);
                events.push(normal("Completed", new.message.clone().unwrap_or_default()));
                (Phase::Completed, "Completed", Next::AwaitChange)
            } else {
                new.message = Some(in_progress_message(&invalidation.id, billed));
                (
                    Phase::InProgress,
                    "InProgress",
                    poll_after(Duration::ZERO, 1),
                )
            }
        }
        Observation::Completed => {
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::Completed);
            let id = old.invalidation_id.clone().unwrap_or_default();
            new.cloud_front_status = Some(status_text(&InvalidationStatus::Completed));
            completed(&mut new, &id, now);
            events.push(normal("Completed", new.message.clone().unwrap_or_default()));
            (Phase::Completed, "Completed", Next::AwaitChange)
        }
        Observation::StillRunning {
            since_submit,
            sharing,
            status,
        } => {
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::SeenRunning);
            new.cloud_front_status = Some(status_text(&status));
            // Replaces a retry message left by an earlier failed poll.
            let id = old.invalidation_id.as_deref().unwrap_or_default();
            new.message = Some(in_progress_message(
                id,
                old.billed_paths.unwrap_or_default(),
            ));
            (
                Phase::InProgress,
                "InProgress",
                poll_after(since_submit, sharing),
            )
        }
        Observation::TimedOut { message } => {
            let reason = FailureReason::Timeout;
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::Failed {
                reason,
                message: message.clone(),
            });
            new.cloud_front_status = Some(status_text(&InvalidationStatus::InProgress));
            new.completion_time = Some(Time(now));
            new.message = Some(message.clone());
            events.push(warning(reason, &message));
            // CloudFront keeps running it: look now and then until it finishes, so the object
            // tells when it did (and quota accounting knows it still counts until then).
            (
                Phase::Failed,
                reason.as_str(),
                Next::After(inputs.follow_up),
            )
        }
        Observation::Failed { reason, message } => {
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::Failed {
                reason,
                message: message.clone(),
            });
            new.completion_time = Some(Time(now));
            new.message = Some(message.clone());
            events.push(warning(reason, &message));
            (Phase::Failed, reason.as_str(), Next::AwaitChange)
        }
        Observation::Queued {
            message,
            backoff,
            attempt,
        } => {
            effects.push(Effect::Queued);
            if let Some(attempt) = attempt {
                record(&mut new, attempt);
            }
            new.message = Some(message);
            let next = if backoff {
                Next::Backoff
            } else {
                Next::After(inputs.queue_recheck.min(until_deadline))
            };
            (Phase::Queued, "Queued", next)
        }
        Observation::Retry { message, attempt } => {
            effects.push(Effect::Retrying {
                message: message.clone(),
            });
            if let Some(attempt) = attempt {
                record(&mut new, attempt);
            }
            new.message = Some(message);
            (old_phase, old_phase.as_str(), Next::Backoff)
        }
        // Only finished objects are followed up or left alone; a running one is looked at.
        Observation::Finished | Observation::FollowUp(_) => {
            (old_phase, old_phase.as_str(), Next::Backoff)
        }
        Observation::Gathering { wait } => {
            effects.push(Effect::Queued);
            new.message = Some(format!(
                "waiting {}s for more objects to the same target, to send them as one \
                 invalidation (--coalesce-window)",
                wait.as_secs_f64().ceil()
            ));
            (
                Phase::Queued,
                "Queued",
                Next::After(wait.min(until_deadline)),
            )
        }
        Observation::Claimed {
            batch,
            claim_time,
            size,
        } => {
            effects.push(Effect::Queued);
            new.message = Some(super::coalesce_transition::recorded_message(&batch, size));
            new.batch = Some(batch);
            new.batch_claim_time = Some(Time(claim_time));
            (
                Phase::Queued,
                "Queued",
                Next::After(inputs.queue_recheck.min(until_deadline)),
            )
        }
        Observation::Released { batch } => {
            effects.push(Effect::Queued);
            new.batch = None;
            new.batch_claim_time = None;
            new.message = Some(format!(
                "batch {batch} was never recorded (the operator that planned it stopped); \
                 waiting for a slot again"
            ));
            (Phase::Queued, "Queued", Next::After(Duration::from_secs(1)))
        }
        Observation::Batch(view) => super::coalesce_transition::member(
            &mut new,
            old,
            view,
            inputs,
            &mut events,
            &mut effects,
        ),
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
    Transition {
        status: new,
        events,
        next,
        effects,
    }
}

/// A finished object: its phase and reason never change. It records a spec change, and a
/// timed-out one records what the follow-up look found.
fn finished(
    old: &CloudFrontInvalidationStatus,
    observation: Observation,
    inputs: Inputs<'_>,
    mut events: Vec<Event>,
) -> Transition {
    let mut new = old.clone();
    let mut next = Next::AwaitChange;
    match observation {
        Observation::FollowUp(FollowUp::Finished { message }) => {
            new.cloud_front_status = Some(status_text(&InvalidationStatus::Completed));
            events.push(normal("CompletedAfterTimeout", message.clone()));
            new.message = Some(message);
        }
        Observation::FollowUp(FollowUp::StillRunning) => next = Next::After(inputs.follow_up),
        Observation::FollowUp(FollowUp::Gone) => new.cloud_front_status = None,
        _ => {}
    }
    if inputs.generation.is_some() {
        new.observed_generation = inputs.generation;
    }
    let phase = old.phase.unwrap_or_default();
    let reason = old
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::FAILED && c.status == "True")
        .map_or(phase.as_str(), |c| c.reason.as_str())
        .to_owned();
    if new != *old {
        new.conditions = conditions::for_phase(
            phase,
            &reason,
            new.message.as_deref().unwrap_or_default(),
            new.observed_generation,
            &old.conditions,
            inputs.now,
        );
    }
    Transition {
        status: new,
        events,
        next,
        effects: Vec::new(),
    }
}

/// Whether the spec changed after a request may have reached CloudFront (any phase after the
/// first submit attempt): the change cannot apply and is only reported, once.
fn spec_changed_after_submit(old: &CloudFrontInvalidationStatus, generation: Option<i64>) -> bool {
    let attempted = old.invalidation_id.is_some() || old.caller_reference.is_some();
    attempted
        && generation.is_some()
        && old
            .observed_generation
            .is_some_and(|g| Some(g) != generation)
}

fn spec_change_ignored() -> Event {
    Event {
        type_: EventType::Warning,
        reason: "SpecChangeIgnored".to_owned(),
        note: Some(
            "spec changed after the invalidation was sent to CloudFront; it cannot be changed and \
             the operator keeps to what was sent (status.distributionId, status.callerReference, \
             status.submittedPaths). Create a new CloudFrontInvalidation to invalidate again"
                .to_owned(),
        ),
        action: "Invalidate".to_owned(),
        secondary: None,
    }
}

fn record(status: &mut CloudFrontInvalidationStatus, submission: Submission) {
    status.target = Some(submission.target.label());
    match submission.target {
        Target::Distribution(id) => status.distribution_id = Some(id),
        Target::Tenant(id) => status.distribution_tenant_id = Some(id),
    }
    status.caller_reference = Some(submission.caller_reference);
    let tags = submission.paths.iter().filter(|p| paths::is_tag(p)).count();
    status.tag_count = Some(tags as u32);
    status.path_count = Some((submission.paths.len() - tags) as u32);
    status.submitted_paths = Some(submission.paths);
}

/// CloudFront's word for a status, as `status.cloudFrontStatus` holds it.
pub(super) fn status_text(status: &InvalidationStatus) -> String {
    match status {
        InvalidationStatus::InProgress => "InProgress".to_owned(),
        InvalidationStatus::Completed => "Completed".to_owned(),
        InvalidationStatus::Other(s) => s.clone(),
    }
}

/// A signed duration as a wait: a negative one (a deadline passed, CloudFront's clock ahead of
/// ours) is no time at all, never time elapsed.
pub(super) fn positive(d: jiff::SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

pub(super) fn in_progress_message(id: &str, billed: u32) -> String {
    format!("CloudFront is invalidating {billed} path(s) (invalidation {id})")
}

pub(super) fn completed(status: &mut CloudFrontInvalidationStatus, id: &str, now: Timestamp) {
    status.completion_time = Some(Time(now));
    let took = status
        .start_time
        .as_ref()
        .map(|t| format!(" in {}s", positive(now.duration_since(t.0)).as_secs()))
        .unwrap_or_default();
    status.message = Some(format!(
        "CloudFront completed invalidation {id} of {} path(s){took}",
        status.billed_paths.unwrap_or_default()
    ));
}

pub(super) fn warning(reason: FailureReason, message: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.as_str().to_owned(),
        note: Some(truncate(message, 1000)),
        action: "Invalidate".to_owned(),
        secondary: None,
    }
}

pub(super) fn normal(reason: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.to_owned(),
        note: Some(truncate(&note, 1000)),
        action: "Invalidate".to_owned(),
        secondary: None,
    }
}

/// Event notes are bounded; cut on a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
#[path = "transition_tests.rs"]
mod tests;
