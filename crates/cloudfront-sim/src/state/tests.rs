//! The simulator's state: lifecycle, idempotency, validation and quotas.

use super::*;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn batch(reference: &str, paths: &[&str]) -> Batch {
    Batch {
        caller_reference: reference.into(),
        paths: paths.iter().map(|s| s.to_string()).collect(),
    }
}

fn state(completion_secs: u64) -> State {
    let mut s = State::new(StateConfig {
        completion: Completion::Fixed(Duration::from_secs(completion_secs)),
        ..Default::default()
    });
    s.add_distribution("EDIST", t(0));
    s
}

#[test]
fn lifecycle_follows_the_clock() {
    let mut s = state(60);
    let created = s
        .create_invalidation("EDIST", batch("r1", &["/a"]), t(0))
        .unwrap();
    let Created::New(rec) = created else {
        panic!("expected a new invalidation")
    };
    assert_eq!(rec.status, InvalidationStatus::InProgress);
    assert_eq!(rec.id.len(), 14);
    assert!(
        rec.id.starts_with('I')
            && rec.id[1..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );
    assert_eq!(rec.completion_time, t(60));
    assert_eq!(
        s.get_invalidation("EDIST", &rec.id, t(59)).unwrap().status,
        InvalidationStatus::InProgress
    );
    let done = s.get_invalidation("EDIST", &rec.id, t(61)).unwrap();
    assert_eq!(done.status, InvalidationStatus::Completed);
    assert_eq!(done.first_reported_completed, Some(t(61)));
    // The first report sticks.
    assert_eq!(
        s.get_invalidation("EDIST", &rec.id, t(90))
            .unwrap()
            .first_reported_completed,
        Some(t(61))
    );
    assert_eq!(
        s.distribution_info("EDIST", t(61))
            .unwrap()
            .in_progress_invalidation_batches,
        0
    );
}

#[test]
fn caller_reference_is_idempotent_and_conflicts_on_other_paths() {
    let mut s = state(60);
    let first = s
        .create_invalidation("EDIST", batch("r1", &["/a", "/b"]), t(0))
        .unwrap();
    let again = s
        .create_invalidation("EDIST", batch("r1", &["/b", "/a"]), t(1))
        .unwrap();
    assert!(matches!(again, Created::Existing(_)));
    assert_eq!(first.record().id, again.record().id);
    let err = s
        .create_invalidation("EDIST", batch("r1", &["/a"]), t(2))
        .unwrap_err();
    assert_eq!(
        (err.code, err.status.as_u16()),
        ("InvalidationBatchAlreadyExists", 409)
    );
    let c = &s.distribution_counters(t(2))["EDIST"];
    assert_eq!(
        (
            c.invalidations_created,
            c.idempotent_replays,
            c.paths_billed
        ),
        (1, 1, 2)
    );

    let mut s = State::new(StateConfig {
        conflict: CallerReferenceConflict::InvalidArgument,
        ..Default::default()
    });
    s.add_distribution("EDIST", t(0));
    s.create_invalidation("EDIST", batch("r1", &["/a"]), t(0))
        .unwrap();
    assert_eq!(
        s.create_invalidation("EDIST", batch("r1", &["/c"]), t(0))
            .unwrap_err()
            .code,
        "InvalidArgument"
    );
}

#[test]
fn wildcard_quota_is_independent_of_object_quota() {
    let mut s = state(100);
    let wild: Vec<String> = (0..15).map(|i| format!("/w{i}/*")).collect();
    let wild: Vec<&str> = wild.iter().map(String::as_str).collect();
    s.create_invalidation("EDIST", batch("w", &wild), t(0))
        .unwrap();
    let err = s
        .create_invalidation("EDIST", batch("w2", &["/x/*"]), t(1))
        .unwrap_err();
    assert_eq!(err.code, "TooManyInvalidationsInProgress");
    assert!(err.message.contains("wildcard"));
    // Object paths still go through while the wildcard quota is full.
    s.create_invalidation("EDIST", batch("o", &["/x"]), t(1))
        .unwrap();
    // After completion the quota is free again.
    s.create_invalidation("EDIST", batch("w3", &["/x/*"]), t(100))
        .unwrap();
    let c = &s.distribution_counters(t(100))["EDIST"];
    assert_eq!(c.peak_in_progress_wildcard_paths, 15);
    assert_eq!(c.peak_in_progress_invalidations, 2);
    assert_eq!(c.paths_billed, 17);
    assert_eq!(c.wildcard_paths_billed, 16);
}

#[test]
fn object_quota() {
    let mut s = state(100);
    let paths: Vec<String> = (0..3000).map(|i| format!("/o{i}")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    s.create_invalidation("EDIST", batch("a", &refs[..2999]), t(0))
        .unwrap();
    let err = s
        .create_invalidation("EDIST", batch("b", &refs[..2]), t(1))
        .unwrap_err();
    assert!(err.message.contains("individual"), "{err}");
    s.create_invalidation("EDIST", batch("c", &["/last", "/w/*"]), t(1))
        .unwrap();
    assert_eq!(
        s.create_invalidation("EDIST", batch("d", &["/one-more"]), t(1))
            .unwrap_err()
            .code,
        "TooManyInvalidationsInProgress"
    );
    // The wildcard quota is independent of the full object quota.
    s.create_invalidation("EDIST", batch("e", &["/w2/*"]), t(1))
        .unwrap();
    assert_eq!(
        s.distribution_counters(t(1))["EDIST"].peak_in_progress_object_paths,
        3000
    );
}

#[test]
fn access_and_existence() {
    let mut s = state(1);
    s.set_access_denied("EDIST", true);
    assert_eq!(
        s.create_invalidation("EDIST", batch("r", &["/a"]), t(0))
            .unwrap_err()
            .code,
        "AccessDenied"
    );
    assert_eq!(
        s.get_invalidation("ENONE", "I1", t(0)).unwrap_err().code,
        "NoSuchDistribution"
    );
    s.set_access_denied("EDIST", false);
    assert_eq!(
        s.get_invalidation("EDIST", "I1", t(0)).unwrap_err().code,
        "NoSuchInvalidation"
    );
}

#[test]
fn pagination_is_newest_first() {
    let mut s = state(10);
    let ids: Vec<String> = (0..5)
        .map(|i| {
            s.create_invalidation("EDIST", batch(&format!("r{i}"), &["/a"]), t(i))
                .unwrap()
                .record()
                .id
                .clone()
        })
        .collect();
    let p1 = s.list_invalidations("EDIST", None, 2, t(5)).unwrap();
    assert_eq!(
        p1.items.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&ids[4], &ids[3]]
    );
    assert!(p1.is_truncated);
    let p2 = s
        .list_invalidations("EDIST", p1.next_marker.as_deref(), 2, t(5))
        .unwrap();
    assert_eq!(p2.items[0].id, ids[2]);
    let p3 = s
        .list_invalidations("EDIST", p2.next_marker.as_deref(), 2, t(5))
        .unwrap();
    assert_eq!(
        (p3.items.len(), p3.is_truncated, p3.next_marker),
        (1, false, None)
    );
    assert!(
        s.list_invalidations("EDIST", Some("INOPE"), 2, t(5))
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn complete_all_now() {
    let mut s = state(1000);
    let id = s
        .create_invalidation("EDIST", batch("r", &["/a"]), t(0))
        .unwrap()
        .record()
        .id
        .clone();
    assert_eq!(s.complete_all(t(5)), 1);
    assert_eq!(
        s.get_invalidation("EDIST", &id, t(5)).unwrap().status,
        InvalidationStatus::Completed
    );
    assert_eq!(s.invalidations("EDIST", t(5))[0].completion_time, t(5));
}

#[test]
fn tenants_have_their_own_invalidations_and_caller_references() {
    let mut s = state(60);
    assert_eq!(s.add_tenant("dt_a", "EDIST"), Ok(true));
    assert_eq!(s.add_tenant("dt_a", "EDIST"), Ok(false));
    assert!(s.add_tenant("dt_b", "ENONE").is_err());
    let Created::New(mine) = s
        .create_invalidation_for_tenant("dt_a", batch("r1", &["/a"]), t(0))
        .unwrap()
    else {
        panic!("new")
    };
    assert_eq!(mine.distribution_tenant_id.as_deref(), Some("dt_a"));
    // The same caller reference on the distribution itself is another invalidation.
    let Created::New(own) = s
        .create_invalidation("EDIST", batch("r1", &["/b"]), t(0))
        .unwrap()
    else {
        panic!("a tenant's references are its own")
    };
    assert!(matches!(
        s.create_invalidation_for_tenant("dt_a", batch("r1", &["/a"]), t(1)),
        Ok(Created::Existing(r)) if r.id == mine.id
    ));
    // Each side sees only its own.
    assert_eq!(
        s.get_invalidation("EDIST", &mine.id, t(1))
            .unwrap_err()
            .code,
        "NoSuchInvalidation"
    );
    assert_eq!(
        s.get_invalidation_for_tenant("dt_a", &own.id, t(1))
            .unwrap_err()
            .code,
        "NoSuchInvalidation"
    );
    let listed = s
        .list_invalidations_for_tenant("dt_a", None, 100, t(1))
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, mine.id);
    assert_eq!(
        s.list_invalidations("EDIST", None, 100, t(1))
            .unwrap()
            .items
            .len(),
        1
    );
}

#[test]
fn unknown_or_denied_tenants_answer_entity_not_found_or_access_denied() {
    let mut s = state(60);
    let err = s
        .create_invalidation_for_tenant("dt_nope", batch("r", &["/a"]), t(0))
        .unwrap_err();
    assert_eq!((err.code, err.status.as_u16()), ("EntityNotFound", 404));
    assert_eq!(
        s.list_invalidations_for_tenant("dt_nope", None, 10, t(0))
            .unwrap_err()
            .code,
        "EntityNotFound"
    );
    s.add_tenant("dt_a", "EDIST").unwrap();
    s.set_access_denied("EDIST", true);
    assert_eq!(
        s.get_invalidation_for_tenant("dt_a", "I1", t(0))
            .unwrap_err()
            .code,
        "AccessDenied"
    );
}

#[test]
fn tenants_share_their_distributions_quota() {
    let mut s = State::new(StateConfig {
        completion: Completion::Fixed(Duration::from_secs(60)),
        quotas: Quotas {
            max_object_paths_in_progress: 3,
            max_wildcard_paths_in_progress: 1,
        },
        ..Default::default()
    });
    s.add_distribution("EDIST", t(0));
    s.add_tenant("dt_a", "EDIST").unwrap();
    s.create_invalidation("EDIST", batch("own", &["/a", "/b"]), t(0))
        .unwrap();
    // Two of three object paths are taken by the distribution itself; a tag counts as one.
    s.create_invalidation_for_tenant("dt_a", batch("t1", &["#tag"]), t(0))
        .unwrap();
    let err = s
        .create_invalidation_for_tenant("dt_a", batch("t2", &["/c"]), t(0))
        .unwrap_err();
    assert_eq!(err.code, "TooManyInvalidationsInProgress");
    s.create_invalidation_for_tenant("dt_a", batch("t3", &["/w/*"]), t(0))
        .unwrap();
    assert_eq!(
        s.create_invalidation("EDIST", batch("own2", &["/x/*"]), t(0))
            .unwrap_err()
            .code,
        "TooManyInvalidationsInProgress"
    );
}

#[test]
fn tag_only_batches_complete_on_the_tag_model() {
    let mut s = State::new(StateConfig {
        completion: Completion::Fixed(Duration::from_secs(60)),
        tag_completion: Completion::Fixed(Duration::from_secs(3)),
        ..Default::default()
    });
    s.add_distribution("EDIST", t(0));
    let tags = s
        .create_invalidation("EDIST", batch("tags", &["#a", "#b"]), t(0))
        .unwrap();
    assert_eq!(tags.record().completion_time, t(3));
    assert_eq!(tags.record().tag_items(), 2);
    assert_eq!(tags.record().wildcard_paths(), 0);
    let mixed = s
        .create_invalidation("EDIST", batch("mixed", &["#a", "/index.html"]), t(0))
        .unwrap();
    assert_eq!(mixed.record().completion_time, t(60), "paths set the pace");
}
