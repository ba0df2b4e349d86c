//! A batch member's decisions with plain values: what its batch shows in, its status out.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::runtime::events::EventType;

use super::super::transition::{Effect, Inputs, Next, Observation, transition};
use super::*;
use cfinv_cloudfront::polling::{CompletionModel, PollSettings};

fn now() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

fn inputs(poll: &PollSettings, until_deadline: i64) -> Inputs<'_> {
    Inputs {
        now: now(),
        deadline: now() + SignedDuration::from_secs(until_deadline),
        generation: Some(1),
        poll,
        window: CompletionModel::default().window("E2EXAMPLE"),
        queue_recheck: Duration::from_secs(2),
        follow_up: Duration::from_secs(300),
    }
}

fn view(state: Option<BatchState>) -> BatchView {
    BatchView {
        name: "e2example-0123456789".to_owned(),
        size: 40,
        caller_reference: "batch-uid".to_owned(),
        target: Target::Distribution("E2EXAMPLE".to_owned()),
        own_items: vec!["/index.html".to_owned(), "/static/*".to_owned()],
        billed: 0,
        covered: 2,
        state,
        invalidation_id: state.map(|_| "I2J0I21PCUYOIK".to_owned()),
        create_time: Some(now()),
        failure: None,
        timeout_seconds: 900,
    }
}

#[test]
fn a_member_of_a_recorded_batch_waits_queued_naming_the_batch() {
    let poll = PollSettings::default();
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Batch(view(None)),
        inputs(&poll, 900),
    );
    assert_eq!(t.status.phase, Some(Phase::Queued));
    assert_eq!(t.status.batch.as_deref(), Some("e2example-0123456789"));
    assert!(t.status.invalidation_id.is_none());
    assert!(t.status.caller_reference.is_none(), "nothing was sent yet");
    assert!(
        t.status
            .message
            .as_deref()
            .unwrap()
            .contains("e2example-0123456789 with 39 other object(s)")
    );
    assert_eq!(t.next, Next::After(Duration::from_secs(2)));
}

#[test]
fn an_accepted_batch_gives_each_member_the_shared_id_its_own_items_and_its_share() {
    let poll = PollSettings::default();
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Batch(view(Some(BatchState::InProgress))),
        inputs(&poll, 900),
    );
    let s = &t.status;
    assert_eq!(s.phase, Some(Phase::InProgress));
    assert_eq!(s.invalidation_id.as_deref(), Some("I2J0I21PCUYOIK"));
    assert_eq!(s.caller_reference.as_deref(), Some("batch-uid"));
    assert_eq!(
        s.submitted_paths.as_deref(),
        Some(&["/index.html".to_owned(), "/static/*".to_owned()][..])
    );
    assert_eq!((s.billed_paths, s.covered_paths), (Some(0), Some(2)));
    assert_eq!(s.batch_size, Some(40));
    assert_eq!(s.path_count, Some(2));
    let submitted = t
        .events
        .iter()
        .find(|e| e.reason == "Submitted")
        .expect("a Submitted event");
    let note = submitted.note.as_deref().unwrap();
    assert!(
        note.contains("batch e2example-0123456789 of 40 object(s)"),
        "{note}"
    );
    assert!(
        note.contains("0 of this object's 2 item(s) billed to it, 2 covered"),
        "{note}"
    );
    assert!(t.effects.contains(&Effect::Accepted {
        id: "I2J0I21PCUYOIK".to_owned(),
        billed: 0,
        dropped: 0
    }));
    // Seen again: no second Submitted event, no second billing.
    let again = transition(
        &t.status,
        Observation::Batch(view(Some(BatchState::InProgress))),
        inputs(&poll, 800),
    );
    assert!(again.events.is_empty());
    assert!(
        !again
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Accepted { .. }))
    );
}

#[test]
fn a_completed_batch_completes_the_member_even_if_it_never_saw_it_in_progress() {
    let poll = PollSettings::default();
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Batch(view(Some(BatchState::Completed))),
        inputs(&poll, 900),
    );
    assert_eq!(t.status.phase, Some(Phase::Completed));
    assert_eq!(t.status.invalidation_id.as_deref(), Some("I2J0I21PCUYOIK"));
    assert_eq!(t.status.cloud_front_status.as_deref(), Some("Completed"));
    assert_eq!(t.next, Next::AwaitChange);
    assert!(t.events.iter().any(|e| e.reason == "Completed"));
}

#[test]
fn each_member_keeps_its_own_deadline_while_the_batch_runs() {
    let poll = PollSettings::default();
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Batch(view(Some(BatchState::InProgress))),
        inputs(&poll, 0),
    );
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(t.status.cloud_front_status.as_deref(), Some("InProgress"));
    assert_eq!(t.next, Next::After(Duration::from_secs(300)), "followed up");
    let warning = t
        .events
        .iter()
        .find(|e| e.type_ == EventType::Warning)
        .unwrap();
    assert_eq!(warning.reason, "Timeout");
    // Not submitted yet at the deadline: Timeout too, saying the batch may still go out.
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Batch(view(None)),
        inputs(&poll, 0),
    );
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert!(t.status.message.unwrap().contains("may still be sent"));
}

#[test]
fn a_failed_batch_fails_every_member_with_the_batchs_reason() {
    let poll = PollSettings::default();
    let mut v = view(Some(BatchState::Failed));
    v.invalidation_id = None;
    v.failure = Some((FailureReason::AccessDenied, "denied".to_owned()));
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Batch(v),
        inputs(&poll, 900),
    );
    assert_eq!(t.status.phase, Some(Phase::Failed));
    let failed = t
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason, "AccessDenied");
    assert!(
        t.status
            .message
            .unwrap()
            .contains("batch e2example-0123456789: denied")
    );
}

#[test]
fn claims_expire_after_twice_the_longest_planning_time() {
    let claimed = now() - SignedDuration::from_secs(10);
    assert!(!claim_expired(Some(claimed), now()));
    let claimed = now() - SignedDuration::from_secs(31);
    assert!(claim_expired(Some(claimed), now()));
    assert!(
        claim_expired(None, now()),
        "a claim without its time is released"
    );
}
