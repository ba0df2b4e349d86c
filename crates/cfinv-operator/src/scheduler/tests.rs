//! Quota-aware admission: what fits, who goes first, who waits.

use super::*;
use cfinv_api::crd::{CloudFrontInvalidationSpec, CloudFrontInvalidationStatus};
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
        },
    );
    o.metadata.namespace = Some(ns.into());
    o.metadata.uid = Some(uid.into());
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

fn decide(s: &Scheduler, cached: &[CloudFrontInvalidation], uid: &str) -> Admission {
    let me = cached
        .iter()
        .find(|o| o.uid().as_deref() == Some(uid))
        .unwrap();
    let cached: Vec<_> = cached.iter().cloned().map(std::sync::Arc::new).collect();
    s.admit("E1", &Candidate::of(me).unwrap(), &cached)
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
    let s = Scheduler::default();
    let cached: Vec<_> = (0..20)
        .map(|i| obj("web", &format!("u{i:02}"), 100 - i, &["/*"], None))
        .collect();
    let admitted: Vec<_> = cached
        .iter()
        .filter(|o| decide(&s, &cached, &o.uid().unwrap()) == Admission::Admit)
        .map(|o| o.uid().unwrap())
        .collect();
    assert_eq!(admitted.len(), 15, "quota filled, not exceeded");
    assert_eq!(admitted[0], "u00", "oldest first");
    assert!(!admitted.contains(&"u19".to_owned()), "youngest waits");
}

#[test]
fn object_paths_and_wildcards_are_independent_quotas() {
    let s = Scheduler::default();
    let mut cached: Vec<_> = (0..15)
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
    cached.push(obj("web", "files", 10, &["/index.html", "/app.js"], None));
    cached.push(obj("web", "wild", 5, &["/img/*"], None));
    assert_eq!(decide(&s, &cached, "files"), Admission::Admit);
    assert!(matches!(
        decide(&s, &cached, "wild"),
        Admission::Wait { .. }
    ));
}

#[test]
fn a_slot_freed_by_completion_is_reused() {
    let s = Scheduler::default();
    let mut cached: Vec<_> = (0..15)
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
    cached.push(obj("web", "next", 1, &["/*"], None));
    assert!(matches!(
        decide(&s, &cached, "next"),
        Admission::Wait { ahead: 0, .. }
    ));
    cached[3].status.as_mut().unwrap().phase = Some(Phase::Completed);
    assert_eq!(decide(&s, &cached, "next"), Admission::Admit);
}

#[test]
fn admissions_count_until_the_cache_catches_up_or_they_are_released() {
    let s = Scheduler::default();
    let cached: Vec<_> = (0..16)
        .map(|i| obj("web", &format!("u{i:02}"), 100 - i, &["/*"], None))
        .collect();
    for o in &cached[..15] {
        assert_eq!(decide(&s, &cached, &o.uid().unwrap()), Admission::Admit);
    }
    assert!(matches!(decide(&s, &cached, "u15"), Admission::Wait { .. }));
    s.release("u00"); // e.g. CloudFront said TooManyInvalidationsInProgress
    let rest: Vec<_> = cached[1..].to_vec();
    assert_eq!(decide(&s, &rest, "u15"), Admission::Admit);
}

#[test]
fn namespaces_take_turns_so_a_flood_does_not_starve_others() {
    let s = Scheduler::default();
    let mut cached: Vec<_> = (0..40)
        .map(|i| obj("flood", &format!("f{i:02}"), 1000 - i, &["/*"], None))
        .collect();
    // Created after the whole flood, yet served in the first round.
    cached.push(obj("quiet", "q0", 1, &["/*"], None));
    assert_eq!(decide(&s, &cached, "q0"), Admission::Admit);
}

#[test]
fn a_namespace_holding_slots_yields_to_one_holding_none() {
    let s = Scheduler::default();
    let mut cached: Vec<_> = (0..14)
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
    cached.push(obj("flood", "f-wait", 100, &["/*"], None));
    cached.push(obj("quiet", "q0", 1, &["/*"], None));
    assert_eq!(decide(&s, &cached, "q0"), Admission::Admit);
    assert!(matches!(
        decide(&s, &cached, "f-wait"),
        Admission::Wait { .. }
    ));
}

#[test]
fn a_large_request_is_not_overtaken_forever() {
    let s = Scheduler::default();
    let mut cached: Vec<_> = (0..10)
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
    cached.push(obj("web", "big", 50, &big, None));
    cached.push(obj("web", "small", 10, &["/*"], None));
    // 10 + 8 > 15: the older big request waits, and the younger small one waits behind it.
    assert!(matches!(
        decide(&s, &cached, "big"),
        Admission::Wait { ahead: 0, .. }
    ));
    assert!(matches!(
        decide(&s, &cached, "small"),
        Admission::Wait { ahead: 1, .. }
    ));
}

#[test]
fn a_request_over_the_quota_by_itself_can_never_run() {
    let s = Scheduler::default();
    let many: Vec<String> = (0..16).map(|i| format!("/d{i}/*")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let cached = vec![obj("web", "huge", 1, &many, None)];
    assert_eq!(
        decide(&s, &cached, "huge"),
        Admission::Never {
            usage: Usage {
                wildcards: 16,
                objects: 0
            }
        }
    );
}

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
    let mut cached: Vec<_> = (0..15)
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
    cached.push(obj("web", "tags", 1, &tags, None));
    assert_eq!(
        decide(&Scheduler::default(), &cached, "tags"),
        Admission::Admit
    );
}
