//! Quota-aware admission: what fits, who goes first, who waits.

use super::*;
use cfinv_api::crd::{CloudFrontInvalidationSpec, CloudFrontInvalidationStatus};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn obj(
    ns: &str,
    uid: &str,
    age_s: i64,
    paths: &[&str],
    phase: Option<Phase>,
) -> CloudFrontInvalidation {
    let mut o = CloudFrontInvalidation::new(
        uid,
        CloudFrontInvalidationSpec {
            distribution_id: Some("E1".into()),
            distribution_tenant_id: None,
            paths: paths.iter().map(|p| (*p).into()).collect(),
            caller_reference: None,
            timeout_seconds: 900,
            ttl_seconds_after_finished: None,
        },
    );
    o.metadata.namespace = Some(ns.into());
    o.metadata.uid = Some(uid.into());
    o.metadata.generation = Some(1);
    o.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1_000_000 - age_s).unwrap()));
    if let Some(phase) = phase {
        o.status = Some(CloudFrontInvalidationStatus {
            phase: Some(phase),
            invalidation_id: (phase != Phase::Queued).then(|| format!("I-{uid}")),
            submitted_paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
            ..Default::default()
        });
    }
    o
}

/// A scheduler whose index has seen `objects` through a watch's initial list.
fn indexed(objects: &[CloudFrontInvalidation]) -> Scheduler {
    let s = Scheduler::default();
    s.observe(&watcher::Event::Init);
    for o in objects {
        s.observe(&watcher::Event::InitApply(o.clone()));
    }
    s.observe(&watcher::Event::InitDone);
    s
}

fn candidate(o: &CloudFrontInvalidation) -> Candidate {
    Candidate::new(o, spec_usage(o).unwrap()).unwrap()
}

fn decide(s: &Scheduler, objects: &[CloudFrontInvalidation], uid: &str) -> Admission {
    let me = objects
        .iter()
        .find(|o| o.uid().as_deref() == Some(uid))
        .unwrap();
    s.admit("E1", &candidate(me))
}

/// The object as the watch shows it after the operator's write.
fn with_phase(mut o: CloudFrontInvalidation, phase: Phase) -> CloudFrontInvalidation {
    let paths: Vec<String> = o.spec.paths.iter().map(|p| p.0.clone()).collect();
    let uid = o.uid().unwrap();
    o.status = Some(CloudFrontInvalidationStatus {
        phase: Some(phase),
        invalidation_id: (phase != Phase::Queued).then(|| format!("I-{uid}")),
        submitted_paths: Some(paths),
        ..Default::default()
    });
    o
}

#[test]
fn usage_counts_wildcards_and_objects_separately() {
    assert_eq!(
        Usage::of(&["/a", "/b/*", "/c*", "/d"]),
        Usage {
            wildcards: 2,
            objects: 2
        }
    );
}

#[test]
fn never_more_than_fifteen_wildcards_in_flight() {
    let objects: Vec<_> = (0..20)
        .map(|i| obj("web", &format!("u{i:02}"), 100 - i, &["/*"], None))
        .collect();
    let s = indexed(&objects);
    let admitted: Vec<_> = objects
        .iter()
        .filter(|o| decide(&s, &objects, &o.uid().unwrap()) == Admission::Admit)
        .map(|o| o.uid().unwrap())
        .collect();
    assert_eq!(admitted.len(), 15, "quota filled, not exceeded");
    assert_eq!(admitted[0], "u00", "oldest first");
    assert!(!admitted.contains(&"u19".to_owned()), "youngest waits");
}

#[test]
fn object_paths_and_wildcards_are_independent_quotas() {
    let mut objects: Vec<_> = (0..15)
        .map(|i| {
            obj(
                "web",
                &format!("w{i}"),
                100,
                &["/*"],
                Some(Phase::InProgress),
            )
        })
        .collect();
    objects.push(obj("web", "files", 10, &["/index.html", "/app.js"], None));
    objects.push(obj("web", "wild", 5, &["/img/*"], None));
    let s = indexed(&objects);
    assert_eq!(decide(&s, &objects, "files"), Admission::Admit);
    assert!(matches!(
        decide(&s, &objects, "wild"),
        Admission::Wait { .. }
    ));
}

/// Issue 11 item 12: an object-path request does not wait behind an older wildcard request
/// that cannot fit.
#[test]
fn an_object_request_does_not_wait_behind_a_wildcard_request_that_cannot_fit() {
    let mut objects: Vec<_> = (0..15)
        .map(|i| {
            obj(
                "web",
                &format!("w{i}"),
                100,
                &["/*"],
                Some(Phase::InProgress),
            )
        })
        .collect();
    // Older than the object-path request, and the wildcard quota is full.
    objects.push(obj("web", "wild", 50, &["/img/*"], None));
    objects.push(obj("web", "files", 10, &["/index.html"], None));
    let s = indexed(&objects);
    assert!(matches!(
        decide(&s, &objects, "wild"),
        Admission::Wait { .. }
    ));
    assert_eq!(decide(&s, &objects, "files"), Admission::Admit);
}

/// Issue 11 item 12, the reverse: a wildcard request does not wait behind an object-path
/// request too large for what is left of the 3,000.
#[test]
fn a_wildcard_request_does_not_wait_behind_an_object_request_that_cannot_fit() {
    let busy: Vec<String> = (0..2990).map(|i| format!("/f{i}.html")).collect();
    let busy: Vec<&str> = busy.iter().map(String::as_str).collect();
    let big: Vec<String> = (0..20).map(|i| format!("/g{i}.html")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let objects = vec![
        obj("web", "busy", 100, &busy, Some(Phase::InProgress)),
        obj("web", "big", 50, &big, None),
        obj("web", "wild", 10, &["/img/*"], None),
    ];
    let s = indexed(&objects);
    assert!(matches!(
        decide(&s, &objects, "big"),
        Admission::Wait { .. }
    ));
    assert_eq!(decide(&s, &objects, "wild"), Admission::Admit);
}

#[test]
fn a_slot_freed_by_completion_is_reused() {
    let mut objects: Vec<_> = (0..15)
        .map(|i| {
            obj(
                "web",
                &format!("w{i}"),
                100,
                &["/*"],
                Some(Phase::InProgress),
            )
        })
        .collect();
    objects.push(obj("web", "next", 1, &["/*"], None));
    let s = indexed(&objects);
    assert!(matches!(
        decide(&s, &objects, "next"),
        Admission::Wait { .. }
    ));
    objects[3].status.as_mut().unwrap().phase = Some(Phase::Completed);
    s.observe(&watcher::Event::Apply(objects[3].clone()));
    assert_eq!(decide(&s, &objects, "next"), Admission::Admit);
}

/// Issue 11 item 11: a queued object is woken when a slot frees (no fixed recheck needed), and
/// only the one whose turn it is.
#[tokio::test]
async fn a_freed_slot_wakes_the_next_queued_object() {
    let mut objects: Vec<_> = (0..15)
        .map(|i| {
            obj(
                "web",
                &format!("w{i:02}"),
                100,
                &["/*"],
                Some(Phase::InProgress),
            )
        })
        .collect();
    objects.push(obj("web", "first", 20, &["/a/*"], Some(Phase::Queued)));
    objects.push(obj("web", "second", 10, &["/b/*"], Some(Phase::Queued)));
    let s = indexed(&objects);
    let mut wakes = s.wakes();
    assert!(matches!(
        decide(&s, &objects, "first"),
        Admission::Wait { .. }
    ));
    objects[0].status.as_mut().unwrap().phase = Some(Phase::Completed);
    s.observe(&watcher::Event::Apply(objects[0].clone()));
    let woken = wakes.next().await.unwrap();
    assert_eq!(woken.name, "first");
    assert_eq!(woken.namespace.as_deref(), Some("web"));
    assert!(wakes.try_recv().is_err(), "only one slot freed");
    assert_eq!(decide(&s, &objects, "first"), Admission::Admit);
    assert!(matches!(
        decide(&s, &objects, "second"),
        Admission::Wait { .. }
    ));
}

#[test]
fn admissions_count_until_the_watch_catches_up_or_they_are_released() {
    let objects: Vec<_> = (0..16)
        .map(|i| obj("web", &format!("u{i:02}"), 100 - i, &["/*"], None))
        .collect();
    let s = indexed(&objects);
    for o in &objects[..15] {
        assert_eq!(decide(&s, &objects, &o.uid().unwrap()), Admission::Admit);
    }
    assert!(matches!(
        decide(&s, &objects, "u15"),
        Admission::Wait { .. }
    ));
    // The watch shows one submitted: still 15 in flight.
    s.observe(&watcher::Event::Apply(with_phase(
        objects[1].clone(),
        Phase::InProgress,
    )));
    assert!(matches!(
        decide(&s, &objects, "u15"),
        Admission::Wait { .. }
    ));
    // u00's CreateInvalidation failed (throttled): it gives its slot back, and being older it
    // is first in line for it again.
    s.release("u00");
    assert!(matches!(
        decide(&s, &objects, "u15"),
        Admission::Wait { .. }
    ));
    assert_eq!(decide(&s, &objects, "u00"), Admission::Admit);
    // Deleted after admission: its slot goes to the next.
    s.observe(&watcher::Event::Delete(objects[0].clone()));
    assert_eq!(decide(&s, &objects, "u15"), Admission::Admit);
}

#[test]
fn namespaces_take_turns_so_a_flood_does_not_starve_others() {
    let mut objects: Vec<_> = (0..40)
        .map(|i| obj("flood", &format!("f{i:02}"), 1000 - i, &["/*"], None))
        .collect();
    // Created after the whole flood, yet served in the first round.
    objects.push(obj("quiet", "q0", 1, &["/*"], None));
    let s = indexed(&objects);
    assert_eq!(decide(&s, &objects, "q0"), Admission::Admit);
}

#[test]
fn a_namespace_holding_slots_yields_to_one_holding_none() {
    let mut objects: Vec<_> = (0..14)
        .map(|i| {
            obj(
                "flood",
                &format!("in{i:02}"),
                500,
                &["/*"],
                Some(Phase::InProgress),
            )
        })
        .collect();
    // Older than the quiet object, but its namespace already holds 14 of 15 slots.
    objects.push(obj("flood", "f-wait", 100, &["/*"], None));
    objects.push(obj("quiet", "q0", 1, &["/*"], None));
    let s = indexed(&objects);
    assert_eq!(decide(&s, &objects, "q0"), Admission::Admit);
    assert!(matches!(
        decide(&s, &objects, "f-wait"),
        Admission::Wait { .. }
    ));
}

#[test]
fn a_large_request_is_not_overtaken_forever() {
    let mut objects: Vec<_> = (0..10)
        .map(|i| {
            obj(
                "web",
                &format!("w{i}"),
                100,
                &["/*"],
                Some(Phase::InProgress),
            )
        })
        .collect();
    let big: Vec<String> = (0..8).map(|i| format!("/big{i}/*")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    objects.push(obj("web", "big", 50, &big, None));
    objects.push(obj("web", "small", 10, &["/*"], None));
    let s = indexed(&objects);
    // 10 + 8 > 15: the older big request waits, and the younger small one waits behind it.
    assert!(matches!(
        decide(&s, &objects, "big"),
        Admission::Wait { .. }
    ));
    assert!(matches!(
        decide(&s, &objects, "small"),
        Admission::Wait { .. }
    ));
}

#[test]
fn a_request_over_the_quota_by_itself_can_never_run() {
    let many: Vec<String> = (0..16).map(|i| format!("/d{i}/*")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let objects = vec![obj("web", "huge", 1, &many, None)];
    let s = indexed(&objects);
    assert_eq!(
        decide(&s, &objects, "huge"),
        Admission::Never {
            usage: Usage {
                wildcards: 16,
                objects: 0
            }
        }
    );
}

/// Issue 11 item 13: a timed-out invalidation CloudFront still reports in progress holds its
/// slot, and stops holding it once CloudFront reports it finished.
#[test]
fn a_timed_out_invalidation_still_running_in_cloudfront_holds_its_slot() {
    let mut objects: Vec<_> = (0..15)
        .map(|i| {
            let mut o = obj(
                "web",
                &format!("t{i:02}"),
                100,
                &["/*"],
                Some(Phase::Failed),
            );
            o.status.as_mut().unwrap().cloud_front_status = Some("InProgress".into());
            o
        })
        .collect();
    objects.push(obj("web", "next", 1, &["/x/*"], None));
    let s = indexed(&objects);
    assert_eq!(s.in_flight("E1").wildcards, 15);
    assert_eq!(
        s.polling("E1"),
        0,
        "ours no longer: the follow-up poll owns them"
    );
    assert!(matches!(
        decide(&s, &objects, "next"),
        Admission::Wait { .. }
    ));
    objects[0].status.as_mut().unwrap().cloud_front_status = Some("Completed".into());
    s.observe(&watcher::Event::Apply(objects[0].clone()));
    assert_eq!(decide(&s, &objects, "next"), Admission::Admit);
}

/// Issue 11 item 13: what is in flight comes from the objects' status (a restarted operator
/// lists them), not from what this process admitted; until the first list is in, nothing is
/// admitted.
#[test]
fn a_restarted_scheduler_counts_in_flight_work_from_status() {
    let s = Scheduler::default();
    s.observe(&watcher::Event::Init);
    let waiting = obj("web", "new", 1, &["/n/*"], None);
    assert!(
        matches!(s.admit("E1", &candidate(&waiting)), Admission::Wait { .. }),
        "before the list is complete, in-flight work is unknown"
    );
    for i in 0..15 {
        let o = obj(
            "web",
            &format!("old{i:02}"),
            100,
            &["/*"],
            Some(Phase::InProgress),
        );
        s.observe(&watcher::Event::InitApply(o));
    }
    s.observe(&watcher::Event::InitApply(waiting.clone()));
    s.observe(&watcher::Event::InitDone);
    assert_eq!(s.in_flight("E1").wildcards, 15);
    assert!(matches!(
        s.admit("E1", &candidate(&waiting)),
        Admission::Wait { .. }
    ));
}

#[test]
fn a_relist_forgets_objects_deleted_while_the_watch_was_down() {
    let objects: Vec<_> = (0..15)
        .map(|i| {
            obj(
                "web",
                &format!("w{i:02}"),
                100,
                &["/*"],
                Some(Phase::InProgress),
            )
        })
        .collect();
    let s = indexed(&objects);
    assert_eq!(s.in_flight("E1").wildcards, 15);
    s.observe(&watcher::Event::Init);
    for o in &objects[5..] {
        s.observe(&watcher::Event::InitApply(o.clone()));
    }
    s.observe(&watcher::Event::InitDone);
    assert_eq!(s.in_flight("E1").wildcards, 10);
    let snapshot = s.snapshot();
    assert_eq!(snapshot.in_flight["E1"].invalidations, 10);
}

/// Issue 11 item 11: a queued object's paths are normalised once per spec generation, not on
/// every look; a status-only change reuses the cached usage.
#[test]
fn a_status_change_does_not_renormalise_the_spec() {
    let waiting = obj("web", "q", 1, &["/a/*", "/b"], Some(Phase::Queued));
    let s = indexed(std::slice::from_ref(&waiting));
    let mut changed = waiting.clone();
    // Same generation, different spec: only a new generation may change the usage (the API
    // server bumps it on every spec change), so the cached usage must be kept.
    changed.spec.paths = vec!["/c/*".into(), "/d/*".into()];
    changed.status.as_mut().unwrap().message = Some("still waiting".into());
    s.observe(&watcher::Event::Apply(changed.clone()));
    let state = s.state.lock().unwrap();
    let Role::Waiting { usage, .. } = &state.entries["q"].role else {
        panic!("not waiting")
    };
    assert_eq!(
        *usage,
        Usage {
            wildcards: 1,
            objects: 1
        }
    );
}

/// Issue 13: a cache tag counts as one individual path, never as a wildcard.
#[test]
fn tags_count_as_individual_paths_not_wildcards() {
    assert_eq!(
        Usage::of(&["#product:electronics", "/a", "/b/*"]),
        Usage {
            wildcards: 1,
            objects: 2
        }
    );
    // Sixteen tags fit (they would not if tags took wildcard slots); 15 wildcards in flight
    // do not hold them back.
    let tags: Vec<String> = (0..16).map(|i| format!("#tag-{i}")).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let mut objects: Vec<_> = (0..15)
        .map(|i| {
            obj(
                "web",
                &format!("w{i}"),
                100,
                &["/w/*"],
                Some(Phase::InProgress),
            )
        })
        .collect();
    objects.push(obj("web", "tags", 1, &tags, None));
    let s = indexed(&objects);
    assert_eq!(s.in_flight("E1").wildcards, 15);
    assert_eq!(decide(&s, &objects, "tags"), Admission::Admit);
}

/// The counts behind the quota gauges: wildcard paths in flight and objects Queued per
/// distribution, kept as objects move (a queued one submitted, another deleted).
#[test]
fn snapshot_counts_wildcards_in_flight_and_queued_objects() {
    let running = obj(
        "web",
        "r",
        10,
        &["/a/*", "/b/*", "/c.html"],
        Some(Phase::InProgress),
    );
    let waiting = obj("web", "q", 5, &["/d/*"], Some(Phase::Queued));
    let other = obj("shop", "q2", 4, &["/e"], Some(Phase::Queued));
    let s = indexed(&[running, waiting.clone(), other.clone()]);
    let snapshot = s.snapshot();
    assert_eq!(snapshot.in_flight["E1"].invalidations, 1);
    assert_eq!(snapshot.in_flight["E1"].wildcard_paths, 2);
    assert_eq!(snapshot.queued.get("E1"), Some(&2));

    let mut submitted = waiting;
    let status = submitted.status.as_mut().unwrap();
    status.phase = Some(Phase::InProgress);
    status.invalidation_id = Some("I-q".into());
    s.observe(&watcher::Event::Apply(submitted));
    s.observe(&watcher::Event::Delete(other));
    let snapshot = s.snapshot();
    assert_eq!(snapshot.in_flight["E1"].invalidations, 2);
    assert_eq!(snapshot.in_flight["E1"].wildcard_paths, 3);
    assert!(snapshot.queued.is_empty(), "{:?}", snapshot.queued);
}

// --- coalescing ----------------------------------------------------------------------------

/// A scheduler expecting batch records, whose index has seen `objects` and `batches`.
fn indexed_with_batches(
    objects: &[CloudFrontInvalidation],
    batches: &[CloudFrontInvalidationBatch],
) -> Scheduler {
    let s = Scheduler::default();
    s.expect_batches();
    s.observe(&watcher::Event::Init);
    for o in objects {
        s.observe(&watcher::Event::InitApply(o.clone()));
    }
    s.observe(&watcher::Event::InitDone);
    s.observe_batch(&watcher::Event::Init);
    for b in batches {
        s.observe_batch(&watcher::Event::InitApply(b.clone()));
    }
    s.observe_batch(&watcher::Event::InitDone);
    s
}

fn with_rv(mut o: CloudFrontInvalidation) -> CloudFrontInvalidation {
    o.metadata.resource_version = Some("7".into());
    o
}

fn me(o: &CloudFrontInvalidation) -> PlannedMember {
    PlannedMember {
        uid: o.uid().unwrap(),
        name: o.name_any(),
        created: created(o),
        resource_version: o.metadata.resource_version.clone(),
        paths: Arc::new(spec_paths(o).unwrap()),
    }
}

fn recorded(
    name: &str,
    items: &[&str],
    state: Option<cfinv_api::batch::BatchState>,
) -> CloudFrontInvalidationBatch {
    use cfinv_api::batch::{CloudFrontInvalidationBatchSpec, CloudFrontInvalidationBatchStatus};
    let mut b = CloudFrontInvalidationBatch::new(
        name,
        CloudFrontInvalidationBatchSpec {
            distribution_id: Some("E1".into()),
            distribution_tenant_id: None,
            members: Vec::new(),
            items: items.iter().map(|p| (*p).to_owned()).collect(),
            claim_time: None,
            abandoned: false,
        },
    );
    b.metadata.namespace = Some("web".into());
    b.status = state.map(|state| CloudFrontInvalidationBatchStatus {
        state: Some(state),
        ..Default::default()
    });
    b
}

#[test]
fn forty_objects_with_the_same_wildcard_plan_as_one_batch_holding_one_slot() {
    let objects: Vec<_> = (0..40)
        .map(|i| {
            with_rv(obj(
                "web",
                &format!("u{i:02}"),
                100 - i,
                &["/index.html", "/static/*"],
                None,
            ))
        })
        .collect();
    let s = indexed_with_batches(&objects, &[]);
    let first = &objects[0];
    assert_eq!(decide(&s, &objects, "u00"), Admission::Admit);
    let plan = s
        .plan("E1", &candidate(first), me(first), "b1", None)
        .expect("a plan");
    assert_eq!(
        plan.members.len(),
        40,
        "every waiting object of the namespace joins"
    );
    assert_eq!(plan.items, vec!["/index.html", "/static/*"]);
    assert_eq!(plan.members[0].uid, "u00", "oldest first");
    assert_eq!(
        s.in_flight("E1"),
        Usage {
            wildcards: 1,
            objects: 1
        }
    );
    // Members follow the batch: none is admitted on its own any more.
    assert!(matches!(
        decide(&s, &objects, "u05"),
        Admission::Wait { .. }
    ));
    // A second planner gets nothing (its candidate's slot went to the batch).
    assert!(
        s.plan("E1", &candidate(&objects[1]), me(&objects[1]), "b2", None)
            .is_none()
    );
}

#[test]
fn a_plan_takes_members_only_while_the_merged_items_fit_the_quota() {
    // 14 wildcards in flight: room for one more.
    let mut objects: Vec<_> = (0..14)
        .map(|i| {
            obj(
                "web",
                &format!("f{i:02}"),
                200,
                &[&format!("/busy{i}/*")],
                Some(Phase::InProgress),
            )
        })
        .collect();
    objects.push(with_rv(obj(
        "web",
        "a",
        50,
        &["/index.html", "/static/*"],
        None,
    )));
    objects.push(with_rv(obj(
        "web",
        "b",
        40,
        &["/index.html", "/app1/*"],
        None,
    )));
    objects.push(with_rv(obj(
        "web",
        "c",
        30,
        &["/static/x.css", "/about.html"],
        None,
    )));
    let s = indexed_with_batches(&objects, &[]);
    assert_eq!(decide(&s, &objects, "a"), Admission::Admit);
    let a = objects.iter().find(|o| o.name_any() == "a").unwrap();
    let plan = s.plan("E1", &candidate(a), me(a), "b1", None).unwrap();
    let uids: Vec<&str> = plan.members.iter().map(|m| m.uid.as_str()).collect();
    assert_eq!(
        uids,
        vec!["a", "c"],
        "b's /app1/* would be the 16th wildcard"
    );
    assert_eq!(plan.items, vec!["/index.html", "/static/*", "/about.html"]);
    assert_eq!(s.in_flight("E1").wildcards, 15);
}

#[test]
fn objects_of_other_namespaces_or_with_their_own_caller_reference_are_never_planned_in() {
    let mut objects = vec![
        with_rv(obj("web", "a", 50, &["/index.html"], None)),
        with_rv(obj("shop", "other-team", 40, &["/index.html"], None)),
    ];
    let mut own_ref = with_rv(obj("web", "own-ref", 30, &["/index.html"], None));
    own_ref.spec.caller_reference = Some("deploy-42".into());
    objects.push(own_ref);
    let s = indexed_with_batches(&objects, &[]);
    assert_eq!(decide(&s, &objects, "a"), Admission::Admit);
    let plan = s
        .plan("E1", &candidate(&objects[0]), me(&objects[0]), "b1", None)
        .unwrap();
    assert_eq!(plan.members.len(), 1, "{:?}", plan.members);
}

#[test]
fn live_batch_records_hold_quota_and_finished_ones_do_not() {
    let waiting: Vec<_> = (0..15)
        .map(|i| {
            with_rv(obj(
                "web",
                &format!("w{i:02}"),
                10,
                &[&format!("/w{i}/*")],
                None,
            ))
        })
        .collect();
    let live = recorded(
        "live",
        &["/a/*", "/b/*", "/c/*"],
        Some(cfinv_api::batch::BatchState::InProgress),
    );
    let done = recorded(
        "done",
        &["/d/*"],
        Some(cfinv_api::batch::BatchState::Completed),
    );
    let s = indexed_with_batches(&waiting, &[live.clone(), done]);
    assert_eq!(
        s.in_flight("E1").wildcards,
        3 + 12,
        "3 in the live batch, 12 admitted"
    );
    // The batch completes: its three slots free.
    let mut finished = live;
    finished.status.as_mut().unwrap().state = Some(cfinv_api::batch::BatchState::Completed);
    s.observe_batch(&watcher::Event::Apply(finished));
    assert_eq!(s.in_flight("E1").wildcards, 15);
}

#[test]
fn nothing_is_admitted_before_the_batch_records_are_listed() {
    let objects = vec![with_rv(obj("web", "a", 50, &["/index.html"], None))];
    let s = Scheduler::default();
    s.expect_batches();
    s.observe(&watcher::Event::Init);
    s.observe(&watcher::Event::InitApply(objects[0].clone()));
    s.observe(&watcher::Event::InitDone);
    assert!(matches!(decide(&s, &objects, "a"), Admission::Wait { .. }));
    s.observe_batch(&watcher::Event::Init);
    s.observe_batch(&watcher::Event::InitDone);
    assert_eq!(decide(&s, &objects, "a"), Admission::Admit);
}

#[test]
fn a_claimed_member_holds_nothing_itself_and_a_released_plan_frees_its_slot() {
    let objects: Vec<_> = (0..3)
        .map(|i| with_rv(obj("web", &format!("u{i}"), 10 - i, &["/*"], None)))
        .collect();
    let s = indexed_with_batches(&objects, &[]);
    assert_eq!(decide(&s, &objects, "u0"), Admission::Admit);
    let plan = s
        .plan("E1", &candidate(&objects[0]), me(&objects[0]), "b1", None)
        .unwrap();
    assert_eq!(s.in_flight("E1").wildcards, 1);
    // u1's claim failed; u0 and u2 were claimed (their status names the batch), no record.
    let mut claimed = objects[0].clone();
    claimed.status = Some(CloudFrontInvalidationStatus {
        batch: Some("b1".into()),
        ..Default::default()
    });
    s.observe(&watcher::Event::Apply(claimed));
    s.release_plan("E1", "web", &plan, &["u1"], false);
    assert_eq!(
        s.in_flight("E1").wildcards,
        1,
        "u1 admitted again on its own"
    );
    assert_eq!(decide(&s, &objects, "u1"), Admission::Admit);
}

#[test]
fn escalation_sends_everything_waiting_as_one_slash_star_only_above_the_limit() {
    let objects: Vec<_> = (0..20)
        .map(|i| {
            with_rv(obj(
                "web",
                &format!("u{i:02}"),
                100 - i,
                &[&format!("/site-{i}/*"), "#tag-a"],
                None,
            ))
        })
        .collect();
    let s = indexed_with_batches(&objects, &[]);
    assert_eq!(decide(&s, &objects, "u00"), Admission::Admit);
    let plan = s
        .plan(
            "E1",
            &candidate(&objects[0]),
            me(&objects[0]),
            "b1",
            Some(19),
        )
        .unwrap();
    assert!(plan.escalated);
    assert_eq!(
        plan.items,
        vec!["/*", "#tag-a"],
        "tags are not covered by /*"
    );
    assert_eq!(plan.members.len(), 20);
    assert_eq!(s.in_flight("E1").wildcards, 1);
    // At or below the limit: no escalation, what was asked for.
    let s = indexed_with_batches(&objects, &[]);
    assert_eq!(decide(&s, &objects, "u00"), Admission::Admit);
    let plan = s
        .plan(
            "E1",
            &candidate(&objects[0]),
            me(&objects[0]),
            "b1",
            Some(20),
        )
        .unwrap();
    assert!(!plan.escalated);
    assert_eq!(
        plan.members.len(),
        15,
        "the quota allows 15 distinct wildcards"
    );
}
