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
        follow_up: Duration::from_secs(300),
    }
}

fn submitted(status: InvalidationStatus, paths: &[&str]) -> Observation {
    let normalized = normalize(paths).unwrap();
    Observation::Submitted {
        invalidation: Invalidation {
            id: ID.to_owned(),
            status,
            create_time: Some(now()),
            caller_reference: Some("uid-1".to_owned()),
            paths: vec![],
        },
        dropped: normalized.dropped.len(),
        submission: Submission {
            target: Target::Distribution("E2EXAMPLE".to_owned()),
            caller_reference: "uid-1".to_owned(),
            paths: normalized.paths,
        },
    }
}

fn attempt() -> Submission {
    Submission {
        target: Target::Distribution("E2EXAMPLE".to_owned()),
        caller_reference: "uid-1".to_owned(),
        paths: vec!["/a".to_owned()],
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
    assert_eq!(s.distribution_id.as_deref(), Some("E2EXAMPLE"));
    assert_eq!(s.cloud_front_status.as_deref(), Some("InProgress"));
    let first = poll.next_poll(Duration::ZERO, inputs(&poll, Duration::ZERO).window, 1);
    assert_eq!(t.next, Next::After(first));
    assert_eq!(t.events.len(), 1);
    let event = &t.events[0];
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
            sharing: 1,
            status: InvalidationStatus::InProgress,
        },
        inputs(&poll, Duration::from_millis(1500)),
    );
    assert_eq!(t.next, Next::After(Duration::from_millis(1500)));
    assert_eq!(t.effects, vec![Effect::ResetBackoff, Effect::SeenRunning]);
    assert!(
        t.events.is_empty(),
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
            attempt: None,
        },
        inputs(&poll, Duration::from_secs(900)),
    );
    assert_eq!(t.status.phase, Some(Phase::InProgress));
    assert_eq!(t.status.invalidation_id, old.invalidation_id);
    assert_eq!(t.next, Next::Backoff);
    assert!(t.events.is_empty());
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
                attempt: None,
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
    let event = &t.events[0];
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

fn failed_timeout_running() -> CloudFrontInvalidationStatus {
    let poll = PollSettings::default();
    transition(
        &in_progress(),
        Observation::TimedOut {
            message: "invalidation I2J0I21PCUYOIK did not complete; CloudFront keeps running it"
                .to_owned(),
        },
        inputs(&poll, Duration::ZERO),
    )
    .status
}

/// Item 1: CloudFront still running it at the deadline ends Failed/Timeout, records that
/// CloudFront still runs it, and keeps looking, slowly.
#[test]
fn a_timeout_while_cloudfront_runs_it_records_that_and_follows_up() {
    let poll = PollSettings::default();
    let t = transition(
        &in_progress(),
        Observation::TimedOut {
            message: "m".to_owned(),
        },
        inputs(&poll, Duration::ZERO),
    );
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(t.status.cloud_front_status.as_deref(), Some("InProgress"));
    assert_eq!(t.next, Next::After(Duration::from_secs(300)));
    assert_eq!(t.events[0].reason, "Timeout");
    let failed = t
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "Timeout")
    );
}

/// Item 1: the follow-up records CloudFront's completion on the failed object, which stays
/// Failed, and then stops looking.
#[test]
fn the_follow_up_records_completion_and_never_reopens_the_object() {
    let poll = PollSettings::default();
    let old = failed_timeout_running();
    let t = transition(
        &old,
        Observation::FollowUp(FollowUp::Finished {
            message: "CloudFront completed it later".to_owned(),
        }),
        inputs(&poll, Duration::ZERO),
    );
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(t.status.cloud_front_status.as_deref(), Some("Completed"));
    assert_eq!(
        t.status.message.as_deref(),
        Some("CloudFront completed it later")
    );
    assert_eq!(t.next, Next::AwaitChange);
    assert_eq!(t.events[0].reason, "CompletedAfterTimeout");
    let failed = t
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "Timeout")
    );
    assert_eq!(failed.message, "CloudFront completed it later");

    let still = transition(
        &old,
        Observation::FollowUp(FollowUp::StillRunning),
        inputs(&poll, Duration::ZERO),
    );
    assert_eq!(still.status, old, "nothing new, nothing written");
    assert_eq!(still.next, Next::After(Duration::from_secs(300)));
}

/// Item 1: whatever is observed, a finished object's phase never changes.
#[test]
fn a_finished_object_never_becomes_unfinished() {
    let poll = PollSettings::default();
    let mut completed = in_progress();
    completed.phase = Some(Phase::Completed);
    for old in [completed, failed_timeout_running()] {
        let observations = || {
            vec![
                submitted(InvalidationStatus::InProgress, &["/a"]),
                Observation::StillRunning {
                    since_submit: Duration::from_secs(1),
                    sharing: 1,
                    status: InvalidationStatus::InProgress,
                },
                Observation::Retry {
                    message: "m".to_owned(),
                    attempt: None,
                },
                Observation::Queued {
                    message: "m".to_owned(),
                    backoff: true,
                    attempt: None,
                },
                Observation::Completed,
                Observation::Finished,
            ]
        };
        for observation in observations() {
            let what = format!("{observation:?}");
            let t = transition(&old, observation, inputs(&poll, Duration::from_secs(10)));
            assert_eq!(t.status.phase, old.phase, "{what}");
            assert!(t.effects.is_empty(), "{what}");
        }
    }
}

/// Item 5: a spec edit after the first submit attempt, even one that got no answer
/// (Pending with a retry), is warned about once and changes nothing that was recorded.
#[test]
fn a_spec_change_after_a_submit_attempt_is_ignored_with_one_warning() {
    let poll = PollSettings::default();
    let pending = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Retry {
            message: "CreateInvalidation failed, retrying: Throttling".to_owned(),
            attempt: Some(attempt()),
        },
        inputs(&poll, Duration::from_secs(900)),
    )
    .status;
    assert_eq!(pending.phase, Some(Phase::Pending));
    assert_eq!(pending.caller_reference.as_deref(), Some("uid-1"));
    assert_eq!(pending.distribution_id.as_deref(), Some("E2EXAMPLE"));
    assert_eq!(pending.submitted_paths, Some(vec!["/a".to_owned()]));

    let mut edited = inputs(&poll, Duration::from_secs(900));
    edited.generation = Some(2);
    let t = transition(
        &pending,
        Observation::Retry {
            message: "again".to_owned(),
            attempt: Some(attempt()),
        },
        edited,
    );
    let reasons: Vec<&str> = t.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["SpecChangeIgnored"]);
    assert_eq!(t.status.observed_generation, Some(2));
    let again = transition(
        &t.status,
        Observation::Retry {
            message: "again".to_owned(),
            attempt: Some(attempt()),
        },
        edited,
    );
    assert!(again.events.is_empty(), "warned once");

    // Before any attempt (queued by the scheduler) an edit is simply taken.
    let queued = transition(
        &CloudFrontInvalidationStatus::default(),
        Observation::Queued {
            message: "m".to_owned(),
            backoff: false,
            attempt: None,
        },
        inputs(&poll, Duration::from_secs(900)),
    )
    .status;
    let t = transition(
        &queued,
        Observation::Queued {
            message: "m".to_owned(),
            backoff: false,
            attempt: None,
        },
        edited,
    );
    assert!(t.events.is_empty());
}

/// Item 7: a negative duration (CloudFront's clock ahead of ours, a passed deadline) is no
/// time, never elapsed time.
#[test]
fn negative_durations_are_zero_not_elapsed_time() {
    assert_eq!(positive(SignedDuration::from_secs(-30)), Duration::ZERO);
    assert_eq!(
        positive(SignedDuration::from_secs(30)),
        Duration::from_secs(30)
    );
    let poll = PollSettings::default();
    // Past the deadline a retry is not capped to zero (a busy loop) by the transition.
    let t = transition(
        &in_progress(),
        Observation::Retry {
            message: "m".to_owned(),
            attempt: None,
        },
        inputs(&poll, Duration::ZERO),
    );
    assert_eq!(t.next, Next::Backoff);
}
