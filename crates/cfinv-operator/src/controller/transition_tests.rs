//! The state machine's decisions with plain values: no Kubernetes, no CloudFront, no clock.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::*;
use cfinv_api::paths::normalize;
use cfinv_cloudfront::InvalidationStatus;
use cfinv_cloudfront::polling::CompletionModel;

const ID: &str = "I2J0I21PCUYOIK";

fn now() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

fn inputs<'a>(poll: &'a PollSettings, until_deadline: Duration) -> Inputs<'a> {
    Inputs {
        now: now(),
        deadline: now() + SignedDuration::try_from(until_deadline).unwrap(),
        generation: Some(1),
        poll,
        window: CompletionModel::default().window("E2EXAMPLE"),
        queue_recheck: Duration::from_secs(2),
    }
}

fn submitted(status: InvalidationStatus, paths: &[&str]) -> Observation {
    Observation::Submitted {
        invalidation: Invalidation {
            id: ID.to_owned(),
            status,
            create_time: Some(now()),
            caller_reference: Some("uid-1".to_owned()),
            paths: vec![],
        },
        normalized: normalize(paths).unwrap(),
        caller_reference: "uid-1".to_owned(),
    }
}

fn in_progress() -> CloudFrontInvalidationStatus {
    CloudFrontInvalidationStatus {
        phase: Some(Phase::InProgress),
        invalidation_id: Some(ID.to_owned()),
        billed_paths: Some(2),
        start_time: Some(Time(now() - SignedDuration::from_secs(30))),
        create_time: Some(Time(now() - SignedDuration::from_secs(29))),
        ..Default::default()
    }
}

#[test]
fn an_accepted_batch_records_what_was_sent_and_polls_at_the_planned_first_look() {
    let poll = PollSettings::default();
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        submitted(
            InvalidationStatus::InProgress,
            &["/a", "/a", "/img/*", "/img/x.png"],
        ),
        inputs(&poll, Duration::from_secs(900)),
    );
    let s = &t.status;
    assert_eq!(s.phase, Some(Phase::InProgress));
    assert_eq!(s.invalidation_id.as_deref(), Some(ID));
    assert_eq!(s.caller_reference.as_deref(), Some("uid-1"));
    assert_eq!(
        s.submitted_paths,
        Some(vec!["/a".to_owned(), "/img/*".to_owned()])
    );
    assert_eq!(s.billed_paths, Some(2));
    assert_eq!(s.start_time, Some(Time(now())));
    assert_eq!(s.observed_generation, Some(1));
    let first = poll.next_poll(Duration::ZERO, inputs(&poll, Duration::ZERO).window, false);
    assert_eq!(t.next, Next::After(first));
    let event = t.event.expect("a Submitted event");
    assert_eq!(event.reason, "Submitted");
    assert_eq!(
        event.note.as_deref(),
        Some(
            "CloudFront accepted invalidation I2J0I21PCUYOIK of 2 path(s); 2 duplicate or covered \
             path(s) dropped"
        )
    );
    assert_eq!(
        t.effects,
        vec![
            Effect::ResetBackoff,
            Effect::Accepted {
                id: ID.to_owned(),
                billed: 2,
                dropped: 2
            }
        ]
    );
}

#[test]
fn an_adopted_invalidation_that_is_already_done_completes_at_once() {
    let poll = PollSettings::default();
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        submitted(InvalidationStatus::Completed, &["/index.html"]),
        inputs(&poll, Duration::from_secs(900)),
    );
    assert_eq!(t.status.phase, Some(Phase::Completed));
    assert_eq!(t.status.completion_time, Some(Time(now())));
    assert_eq!(t.next, Next::AwaitChange);
}

#[test]
fn no_requeue_goes_past_the_deadline() {
    let poll = PollSettings::default();
    let t = transition(
        &in_progress(),
        Observation::StillRunning {
            since_submit: Duration::from_secs(30),
            batched: false,
        },
        inputs(&poll, Duration::from_millis(1500)),
    );
    assert_eq!(t.next, Next::After(Duration::from_millis(1500)));
    assert_eq!(t.effects, vec![Effect::ResetBackoff, Effect::SeenRunning]);
    assert!(
        t.event.is_none(),
        "a look that changes nothing publishes nothing"
    );
}

#[test]
fn a_retry_keeps_the_phase_and_backs_off() {
    let poll = PollSettings::default();
    let old = in_progress();
    let t = transition(
        &old,
        Observation::Retry {
            message: "GetInvalidation failed, retrying: Throttling".to_owned(),
        },
        inputs(&poll, Duration::from_secs(900)),
    );
    assert_eq!(t.status.phase, Some(Phase::InProgress));
    assert_eq!(t.status.invalidation_id, old.invalidation_id);
    assert_eq!(t.next, Next::Backoff);
    assert!(t.event.is_none());
    assert!(matches!(t.effects.as_slice(), [Effect::Retrying { .. }]));
}

#[test]
fn queued_by_our_scheduler_rechecks_and_queued_by_cloudfront_backs_off() {
    let poll = PollSettings::default();
    let queued = |backoff| {
        transition(
            &CloudFrontInvalidationStatus::default(),
            Observation::Queued {
                message: "waiting for a slot".to_owned(),
                backoff,
            },
            inputs(&poll, Duration::from_secs(900)),
        )
    };
    assert_eq!(queued(false).next, Next::After(Duration::from_secs(2)));
    assert_eq!(queued(true).next, Next::Backoff);
    assert_eq!(queued(true).status.phase, Some(Phase::Queued));
}

#[test]
fn a_failure_is_final_and_says_why_in_a_warning() {
    let poll = PollSettings::default();
    let t = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Failed {
            reason: FailureReason::InvalidPaths,
            message: "spec.paths[0]: ...".to_owned(),
        },
        inputs(&poll, Duration::from_secs(900)),
    );
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(t.status.completion_time, Some(Time(now())));
    assert_eq!(t.next, Next::AwaitChange);
    let event = t.event.expect("a warning event");
    assert_eq!(event.type_, EventType::Warning);
    assert_eq!(event.reason, "InvalidPaths");
    let failed = t
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .expect("a Failed condition");
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "InvalidPaths")
    );
}

#[test]
fn event_notes_are_cut_on_a_character_boundary() {
    let note = "é".repeat(600); // 1,200 bytes
    let cut = truncate(&note, 1000);
    assert!(cut.ends_with('…'));
    assert_eq!(cut.len(), 1000 + '…'.len_utf8());
}
