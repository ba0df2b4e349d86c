//! The state machine's decisions, as a pure function: the object's current status and what this
//! reconcile learned from CloudFront ([`Observation`]) in, the new status, the Event, the
//! requeue and the side effects ([`Transition`]) out. No I/O and no clock: `reconcile` gathers
//! the inputs and runs the effects, so every decision here is testable with plain values.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::{Event, EventType};

use super::conditions;
use cfinv_api::crd::{CloudFrontInvalidationStatus, Phase};
use cfinv_api::paths::NormalizedPaths;
use cfinv_cloudfront::polling::{PollSettings, Window};
use cfinv_cloudfront::{FailureReason, Invalidation};

/// What one reconcile learned.
#[derive(Debug)]
pub(super) enum Observation {
    /// CloudFront accepted the batch (or returned the one it already had for our
    /// CallerReference).
    Submitted {
        invalidation: Invalidation,
        normalized: NormalizedPaths,
        caller_reference: String,
    },
    /// CloudFront reports the invalidation done.
    Completed,
    /// Still in progress: ask again later.
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
}

/// When to reconcile the object again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Only when the object changes.
    AwaitChange,
    /// After this long (already capped at the deadline).
    After(Duration),
    /// After the object's next retry backoff, capped at the deadline.
    Backoff,
}

/// Side effects of a transition, run by `reconcile` in order.
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

/// The decision. (Not `Debug`: kube's `Event` is not.)
pub(super) struct Transition {
    pub status: CloudFrontInvalidationStatus,
    pub event: Option<Event>,
    pub next: Next,
    pub effects: Vec<Effect>,
}

/// The new status, event, requeue and effects for `observation` on an object whose status is
/// `old`.
pub(super) fn transition(
    old: &CloudFrontInvalidationStatus,
    observation: Observation,
    inputs: Inputs<'_>,
) -> Transition {
    let Inputs { now, deadline, .. } = inputs;
    let mut new = old.clone();
    new.start_time.get_or_insert(Time(now));
    new.observed_generation = inputs.generation;
    let until_deadline = deadline.duration_since(now).unsigned_abs();
    let poll_after = |since_submit, batched| {
        let next = inputs.poll.next_poll(since_submit, inputs.window, batched);
        Next::After(next.min(until_deadline))
    };
    let mut event = None;
    let mut effects = Vec::new();

    let (phase, reason, next) = match observation {
        Observation::Submitted {
            invalidation,
            normalized,
            caller_reference,
        } => {
            let billed = normalized.billed() as u32;
            let dropped = normalized.dropped.len();
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::Accepted {
                id: invalidation.id.clone(),
                billed,
                dropped,
            });
            new.invalidation_id = Some(invalidation.id.clone());
            new.caller_reference = Some(caller_reference);
            new.create_time = invalidation.create_time.map(Time);
            new.billed_paths = Some(billed);
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
                (Phase::Completed, "Completed", Next::AwaitChange)
            } else {
                new.message = Some(in_progress_message(&invalidation.id, billed));
                (
                    Phase::InProgress,
                    "InProgress",
                    poll_after(Duration::ZERO, false),
                )
            }
        }
        Observation::Completed => {
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::Completed);
            let id = old.invalidation_id.clone().unwrap_or_default();
            completed(&mut new, &id, now);
            event = Some(normal("Completed", new.message.clone().unwrap_or_default()));
            (Phase::Completed, "Completed", Next::AwaitChange)
        }
        Observation::StillRunning {
            since_submit,
            batched,
        } => {
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::SeenRunning);
            // Replaces a retry message left by an earlier failed poll.
            let id = old.invalidation_id.as_deref().unwrap_or_default();
            new.message = Some(in_progress_message(
                id,
                old.billed_paths.unwrap_or_default(),
            ));
            (
                Phase::InProgress,
                "InProgress",
                poll_after(since_submit, batched),
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
            event = Some(Event {
                type_: EventType::Warning,
                reason: reason.as_str().to_owned(),
                note: Some(truncate(&message, 1000)),
                action: "Invalidate".to_owned(),
                secondary: None,
            });
            (Phase::Failed, reason.as_str(), Next::AwaitChange)
        }
        Observation::Queued { message, backoff } => {
            effects.push(Effect::Queued);
            new.message = Some(message);
            let next = if backoff {
                Next::Backoff
            } else {
                Next::After(inputs.queue_recheck.min(until_deadline))
            };
            (Phase::Queued, "Queued", next)
        }
        Observation::Retry { message } => {
            effects.push(Effect::Retrying {
                message: message.clone(),
            });
            new.message = Some(message);
            let phase = old.phase.unwrap_or(Phase::Pending);
            (phase, phase.as_str(), Next::Backoff)
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
    Transition {
        status: new,
        event,
        next,
        effects,
    }
}

pub(super) fn in_progress_message(id: &str, billed: u32) -> String {
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
