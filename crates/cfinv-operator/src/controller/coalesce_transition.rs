//! A batch member's decisions, as a pure function (part of [`transition`](super::transition)):
//! what the member's batch shows in, the member's own status out. The member never calls
//! CloudFront: its batch did, once for all members. Each member keeps its own deadline.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::Event;

use super::transition::{Effect, Inputs, Next, normal, positive, warning};
use cfinv_api::batch::BatchState;
use cfinv_api::crd::{CloudFrontInvalidationStatus, Phase, Target};
use cfinv_api::paths;
use cfinv_cloudfront::FailureReason;

/// What a member learns of its batch (from the batch record; no CloudFront call).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct BatchView {
    pub name: String,
    pub size: usize,
    /// The batch's uid: the CallerReference sent.
    pub caller_reference: String,
    pub target: Target,
    /// This member's own normalised items (never another member's).
    pub own_items: Vec<String>,
    pub billed: u32,
    pub covered: u32,
    pub state: Option<BatchState>,
    pub invalidation_id: Option<String>,
    pub create_time: Option<Timestamp>,
    pub failure: Option<(FailureReason, String)>,
    pub timeout_seconds: u32,
}

pub(super) fn recorded_message(batch: &str, size: usize) -> String {
    format!(
        "merged into batch {batch} with {} other object(s) of this namespace; waiting for \
         CloudFront to accept it",
        size.saturating_sub(1)
    )
}

/// The member's phase, reason and next look, writing the rest into `new`.
pub(super) fn member(
    new: &mut CloudFrontInvalidationStatus,
    old: &CloudFrontInvalidationStatus,
    view: BatchView,
    inputs: Inputs<'_>,
    events: &mut Vec<Event>,
    effects: &mut Vec<Effect>,
) -> (Phase, &'static str, Next) {
    let now = inputs.now;
    let until_deadline = positive(inputs.deadline.duration_since(now));
    let past_deadline = until_deadline.is_zero();
    let look_again = Next::After(inputs.queue_recheck.min(until_deadline));
    new.batch = Some(view.name.clone());
    new.batch_size = Some(view.size as u32);
    new.billed_paths = Some(view.billed);
    new.covered_paths = Some(view.covered);
    new.target = Some(view.target.label());
    match &view.target {
        Target::Distribution(id) => new.distribution_id = Some(id.clone()),
        Target::Tenant(id) => new.distribution_tenant_id = Some(id.clone()),
    }
    let tags = view.own_items.iter().filter(|p| paths::is_tag(p)).count();
    new.tag_count = Some(tags as u32);
    new.path_count = Some((view.own_items.len() - tags) as u32);
    new.submitted_paths = Some(view.own_items.clone());
    let batch = &view.name;
    let secs = view.timeout_seconds;
    let timeout = |new: &mut CloudFrontInvalidationStatus,
                   events: &mut Vec<Event>,
                   effects: &mut Vec<Effect>,
                   message: String| {
        let reason = FailureReason::Timeout;
        effects.push(Effect::ResetBackoff);
        effects.push(Effect::Failed {
            reason,
            message: message.clone(),
        });
        new.completion_time = Some(Time(now));
        events.push(warning(reason, &message));
        new.message = Some(message);
    };
    match view.state {
        None | Some(BatchState::Abandoned) if past_deadline => {
            timeout(
                new,
                events,
                effects,
                format!(
                    "CloudFront did not accept batch {batch} within spec.timeoutSeconds={secs}; \
                     the batch may still be sent (this object's items with it)"
                ),
            );
            (
                Phase::Failed,
                FailureReason::Timeout.as_str(),
                Next::AwaitChange,
            )
        }
        None | Some(BatchState::Abandoned) => {
            effects.push(Effect::Queued);
            new.message = Some(recorded_message(batch, view.size));
            (Phase::Queued, "Queued", look_again)
        }
        Some(state @ (BatchState::InProgress | BatchState::Completed)) => {
            let id = view.invalidation_id.clone().unwrap_or_default();
            new.caller_reference = Some(view.caller_reference.clone());
            new.invalidation_id = Some(id.clone());
            new.create_time = view.create_time.map(Time);
            if old.invalidation_id.as_deref() != Some(id.as_str()) {
                effects.push(Effect::ResetBackoff);
                effects.push(Effect::Accepted {
                    id: id.clone(),
                    billed: view.billed,
                    dropped: 0,
                });
                events.push(normal(
                    "Submitted",
                    format!(
                        "CloudFront accepted invalidation {id} for batch {batch} of {} object(s): \
                         {} of this object's {} item(s) billed to it, {} covered by another \
                         member",
                        view.size,
                        view.billed,
                        view.own_items.len(),
                        view.covered
                    ),
                ));
            }
            if state == BatchState::Completed {
                new.cloud_front_status = Some("Completed".to_owned());
                new.completion_time = Some(Time(now));
                let took = new
                    .start_time
                    .as_ref()
                    .map(|t| format!(" in {}s", positive(now.duration_since(t.0)).as_secs()))
                    .unwrap_or_default();
                let message =
                    format!("CloudFront completed invalidation {id} (batch {batch}){took}");
                events.push(normal("Completed", message.clone()));
                new.message = Some(message);
                (Phase::Completed, "Completed", Next::AwaitChange)
            } else if past_deadline {
                new.cloud_front_status = Some("InProgress".to_owned());
                timeout(
                    new,
                    events,
                    effects,
                    format!(
                        "invalidation {id} (batch {batch}) did not complete within \
                         spec.timeoutSeconds={secs}: CloudFront still reports it InProgress and \
                         keeps running it; the operator records when it finishes in \
                         status.cloudFrontStatus"
                    ),
                );
                (
                    Phase::Failed,
                    FailureReason::Timeout.as_str(),
                    Next::After(inputs.follow_up),
                )
            } else {
                new.cloud_front_status = Some("InProgress".to_owned());
                new.message = Some(format!(
                    "CloudFront is invalidating batch {batch} (invalidation {id}, {} object(s)); \
                     {} of this object's item(s) billed to it",
                    view.size, view.billed
                ));
                (Phase::InProgress, "InProgress", look_again)
            }
        }
        Some(BatchState::Failed) => {
            let (reason, message) = view.failure.clone().unwrap_or((
                FailureReason::UnexpectedError,
                "the batch failed".to_owned(),
            ));
            let message = format!("batch {batch}: {message}");
            effects.push(Effect::ResetBackoff);
            effects.push(Effect::Failed {
                reason,
                message: message.clone(),
            });
            new.completion_time = Some(Time(now));
            events.push(warning(reason, &message));
            new.message = Some(message);
            (Phase::Failed, reason.as_str(), Next::AwaitChange)
        }
    }
}

/// How long a claim may name a batch that is not recorded before it is released: twice the
/// longest a planner may take between its claims and its record (a record made later is never
/// submitted, see [`crate::controller::batch::STALE_PLAN`]).
pub(super) fn claim_expired(claim_time: Option<Timestamp>, now: Timestamp) -> bool {
    claim_time.is_none_or(|t| positive(now.duration_since(t)) > 2 * super::batch::STALE_PLAN)
}

#[cfg(test)]
#[path = "coalesce_transition_tests.rs"]
mod tests;
