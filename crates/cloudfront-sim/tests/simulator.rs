//! The CloudFront simulator driven in-process with the real `aws-sdk-cloudfront` client (and raw
//! HTTP where the SDK cannot go): lifecycle, idempotency, validation, quotas, access, pagination,
//! faults, counters and the control endpoint.

mod sim_support;

use std::time::{Duration, Instant};

use aws_sdk_cloudfront::config::http::HttpResponse;
use aws_sdk_cloudfront::error::{ProvideErrorMetadata, SdkError};
use cloudfront_sim::{
    CallerReferenceConflict, Completion, CountersSnapshot, FaultConfig, InvalidationStatus,
    OUTCOME_DROPPED, Operation, Quotas, Simulator, SimulatorHandle,
};
use sim_support::{FAKE_SIGV4, batch, batch_with_quantity, client, raw_request};

const DIST: &str = "E2EXAMPLE";

/// The error code and HTTP status of a failed SDK call.
fn code_status<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> (String, u16) {
    (
        err.code().unwrap_or("<none>").to_string(),
        err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
    )
}

async fn start(builder: cloudfront_sim::SimulatorBuilder) -> SimulatorHandle {
    builder.start().await.expect("simulator starts")
}

async fn basic() -> SimulatorHandle {
    start(
        Simulator::builder()
            .distribution(DIST)
            .completion(Completion::Fixed(Duration::from_secs(600))),
    )
    .await
}

fn calls(c: &CountersSnapshot, op: Operation, outcome: &str) -> u64 {
    c.calls(op, outcome)
}

#[tokio::test]
async fn lifecycle_in_progress_then_completed_on_the_scaled_clock() {
    // 120 simulated seconds at 60x: two real seconds.
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .completion(Completion::Fixed(Duration::from_secs(120)))
            .time_scale(60.0),
    )
    .await;
    let cf = client(&sim.endpoint_url(), 1);
    let started = Instant::now();
    let out = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("ref-1", &["/index.html", "/assets/*"]))
        .send()
        .await
        .unwrap();
    let inv = out.invalidation().expect("invalidation in the body");
    let id = inv.id().to_string();
    assert_eq!(inv.status(), "InProgress");
    assert_eq!(id.len(), 14, "I + 13 characters: {id}");
    assert!(
        id.starts_with('I')
            && id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{id}"
    );
    assert_eq!(
        out.location(),
        Some(
            format!(
                "{}/2020-05-31/distribution/{DIST}/invalidation/{id}",
                sim.endpoint_url()
            )
            .as_str()
        )
    );
    let batch_out = inv.invalidation_batch().unwrap();
    assert_eq!(batch_out.caller_reference(), "ref-1");
    assert_eq!(
        batch_out.paths().unwrap().items(),
        ["/index.html", "/assets/*"]
    );
    assert_eq!(batch_out.paths().unwrap().quantity(), 2);

    // CreateTime is on the simulated clock, to the millisecond.
    let create_time = inv.create_time();
    let record = sim.invalidations(DIST).pop().unwrap();
    assert_eq!(
        create_time.to_millis().unwrap(),
        record.create_time.as_millisecond()
    );
    assert_eq!(
        record.completion_time.duration_since(record.create_time),
        jiff::SignedDuration::from_secs(120)
    );
    let completes_real = sim.real_instant(record.completion_time);
    let until = completes_real.duration_since(started);
    assert!(
        // Two real seconds after the create call (which may itself be slow on a busy machine).
        // Wide enough for a loaded 2-core machine.
        until > Duration::from_millis(1900) && until < Duration::from_secs(30),
        "completes {until:?} after start"
    );

    let got = cf
        .get_invalidation()
        .distribution_id(DIST)
        .id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.invalidation().unwrap().status(), "InProgress");
    assert_eq!(sim.invalidations(DIST)[0].first_reported_completed, None);

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = cf
            .get_invalidation()
            .distribution_id(DIST)
            .id(&id)
            .send()
            .await
            .unwrap();
        if got.invalidation().unwrap().status() == "Completed" {
            break;
        }
        assert!(Instant::now() < deadline, "never completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900),
        "completed after {elapsed:?}, expected about 2 s"
    );
    let record = sim.invalidations(DIST).pop().unwrap();
    assert_eq!(record.status, InvalidationStatus::Completed);
    let seen = record
        .first_reported_completed
        .expect("the client was told it completed");
    let lag = seen.duration_since(record.completion_time);
    // Polling every 100 ms real is 6 s simulated; allow for a slow machine.
    assert!(
        lag >= jiff::SignedDuration::ZERO && lag < jiff::SignedDuration::from_secs(60),
        "noticed {lag:?} after completion"
    );
    // The simulated clock has run about 60x real time.
    let sim_elapsed = sim.now().duration_since(record.create_time).as_secs_f64();
    assert!(sim_elapsed >= 110.0, "simulated {sim_elapsed} s");

    let c = sim.counters();
    assert_eq!(c.ok(Operation::CreateInvalidation), 1);
    assert!(c.ok(Operation::GetInvalidation) >= 2);
    assert_eq!(c.invalidations_created, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn log_normal_completion_is_seeded_and_varies() {
    let delays = |seed| async move {
        let sim = start(Simulator::builder().distribution(DIST).completion(
            Completion::LogNormal {
                median: Duration::from_secs(45),
                sigma: 0.8,
                seed,
            },
        ))
        .await;
        let cf = client(&sim.endpoint_url(), 1);
        for i in 0..8 {
            cf.create_invalidation()
                .distribution_id(DIST)
                .invalidation_batch(batch(&format!("r{i}"), &["/a"]))
                .send()
                .await
                .unwrap();
        }
        sim.invalidations(DIST)
            .iter()
            .map(|r| r.completion_time.duration_since(r.create_time))
            .collect::<Vec<_>>()
    };
    let a = delays(7).await;
    assert_eq!(a, delays(7).await, "same seed, same delays");
    assert_ne!(a, delays(8).await, "another seed, other delays");
    let distinct: std::collections::BTreeSet<_> = a.iter().collect();
    assert!(distinct.len() > 1, "delays vary: {a:?}");
}

#[tokio::test]
async fn same_caller_reference_and_paths_returns_the_same_invalidation_unbilled() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);
    let first = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("deploy-42", &["/a", "/b/*"]))
        .send()
        .await
        .unwrap();
    // Same paths in another order: the same batch.
    let again = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("deploy-42", &["/b/*", "/a"]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        first.invalidation().unwrap().id(),
        again.invalidation().unwrap().id()
    );
    assert_eq!(again.location(), first.location());
    let list = cf
        .list_invalidations()
        .distribution_id(DIST)
        .send()
        .await
        .unwrap();
    assert_eq!(list.invalidation_list().unwrap().quantity(), 1);

    let c = sim.counters();
    assert_eq!(c.ok(Operation::CreateInvalidation), 2);
    assert_eq!(c.invalidations_created, 1);
    let d = c.distribution(DIST);
    assert_eq!(
        (
            d.invalidations_created,
            d.idempotent_replays,
            d.paths_billed,
            d.wildcard_paths_billed
        ),
        (1, 1, 2, 1)
    );
}

#[tokio::test]
async fn same_caller_reference_with_other_paths_is_refused() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("deploy-1", &["/a"]))
        .send()
        .await
        .unwrap();
    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("deploy-1", &["/a", "/b"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_status(&err),
        ("InvalidationBatchAlreadyExists".to_string(), 409)
    );
    // Not in the SDK's model: no modeled variant matches, the code is still readable.
    let service_error = err.into_service_error();
    assert_eq!(service_error.code(), Some("InvalidationBatchAlreadyExists"));
    assert!(
        !service_error.is_invalid_argument()
            && !service_error.is_too_many_invalidations_in_progress()
    );
    let c = sim.counters();
    assert_eq!(
        calls(
            &c,
            Operation::CreateInvalidation,
            "InvalidationBatchAlreadyExists"
        ),
        1
    );
    assert_eq!(c.paths_billed(DIST), 1);

    // The alternative answer, as the live service has been reported to give it.
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .caller_reference_conflict(CallerReferenceConflict::InvalidArgument),
    )
    .await;
    let cf = client(&sim.endpoint_url(), 1);
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("deploy-1", &["/a"]))
        .send()
        .await
        .unwrap();
    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("deploy-1", &["/c"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("InvalidArgument".to_string(), 400));
    assert!(err.into_service_error().is_invalid_argument());
}

#[tokio::test]
async fn validation_errors_are_cloudfronts() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);
    let long = format!("/{}", "x".repeat(4000));
    for (i, path) in ["/assets/app.*.js", "", long.as_str(), "/**"]
        .into_iter()
        .enumerate()
    {
        let err = cf
            .create_invalidation()
            .distribution_id(DIST)
            .invalidation_batch(batch(&format!("bad-{i}"), &["/fine", path]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_status(&err),
            ("InvalidArgument".to_string(), 400),
            "path {:?}",
            &path[..path.len().min(20)]
        );
        assert!(err.into_service_error().is_invalid_argument());
    }
    // Exactly 4,000 characters is fine.
    let max = format!("/{}", "x".repeat(3999));
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("max-len", &[&max]))
        .send()
        .await
        .unwrap();

    let many: Vec<String> = (0..3001).map(|i| format!("/p/{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("big", &refs))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("BatchTooLarge".to_string(), 413));
    assert!(err.into_service_error().is_batch_too_large());

    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch_with_quantity("q", &["/a", "/b"], 3))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_status(&err),
        ("InconsistentQuantities".to_string(), 400)
    );
    assert!(err.into_service_error().is_inconsistent_quantities());

    // The SDK always sends a body; an empty POST needs raw HTTP.
    let path = format!("/2020-05-31/distribution/{DIST}/invalidation");
    let r = raw_request(sim.local_addr(), "POST", &path, &[FAKE_SIGV4], "").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("<Code>MissingBody</Code>") && r.body.contains("<Type>Sender</Type>"),
        "{}",
        r.body
    );
    let r = raw_request(
        sim.local_addr(),
        "POST",
        &path,
        &[FAKE_SIGV4],
        "<Nonsense/>",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("<Code>MalformedXML</Code>"), "{}", r.body);

    let c = sim.counters();
    assert_eq!(
        calls(&c, Operation::CreateInvalidation, "InvalidArgument"),
        4
    );
    assert_eq!(calls(&c, Operation::CreateInvalidation, "BatchTooLarge"), 1);
    assert_eq!(
        calls(&c, Operation::CreateInvalidation, "InconsistentQuantities"),
        1
    );
    assert_eq!(calls(&c, Operation::CreateInvalidation, "MissingBody"), 1);
    assert_eq!(calls(&c, Operation::CreateInvalidation, "MalformedXML"), 1);
    assert_eq!(c.ok(Operation::CreateInvalidation), 1);
    assert_eq!(c.paths_billed(DIST), 1, "refused batches are not billed");
}

#[tokio::test]
async fn wildcard_quota_applies_on_its_own() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);
    let wild: Vec<String> = (0..14).map(|i| format!("/w{i}/*")).collect();
    let wild: Vec<&str> = wild.iter().map(String::as_str).collect();
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("w14", &wild))
        .send()
        .await
        .unwrap();
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("w15", &["/last/*"]))
        .send()
        .await
        .unwrap();
    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("w16", &["/one-more/*"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_status(&err),
        ("TooManyInvalidationsInProgress".to_string(), 400)
    );
    assert!(
        err.into_service_error()
            .is_too_many_invalidations_in_progress()
    );
    // Individual paths are not held back by the full wildcard quota.
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("objects", &["/index.html"]))
        .send()
        .await
        .unwrap();

    let d = sim.counters().distribution(DIST);
    assert_eq!(d.peak_in_progress_wildcard_paths, 15);
    assert_eq!(d.peak_in_progress_object_paths, 1);
    assert_eq!(d.peak_in_progress_invalidations, 3);
    assert_eq!(d.in_progress_wildcard_paths, 15);

    // Once they complete, wildcards are accepted again.
    assert_eq!(sim.complete_all_now(), 3);
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("w16", &["/one-more/*"]))
        .send()
        .await
        .unwrap();
    let c = sim.counters();
    assert_eq!(
        calls(
            &c,
            Operation::CreateInvalidation,
            "TooManyInvalidationsInProgress"
        ),
        1
    );
    assert_eq!(c.distribution(DIST).paths_billed, 17);
    assert_eq!(c.distribution(DIST).wildcard_paths_billed, 16);
}

#[tokio::test]
async fn object_path_quota_applies_on_its_own() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);
    let paths: Vec<String> = (0..3000).map(|i| format!("/o/{i}")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("a", &refs[..2000]))
        .send()
        .await
        .unwrap();
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("b", &refs[2000..]))
        .send()
        .await
        .unwrap();
    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("c", &["/one-more"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_status(&err),
        ("TooManyInvalidationsInProgress".to_string(), 400)
    );
    assert!(
        err.message().unwrap_or_default().contains("individual"),
        "{:?}",
        err.message()
    );
    // Wildcards are not held back by the full object quota.
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("d", &["/*"]))
        .send()
        .await
        .unwrap();
    let d = sim.counters().distribution(DIST);
    assert_eq!(
        (
            d.peak_in_progress_object_paths,
            d.peak_in_progress_wildcard_paths
        ),
        (3000, 1)
    );
    assert_eq!(d.paths_billed, 3001);

    // A lower quota, as configured.
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .quotas(Quotas {
                max_object_paths_in_progress: 2,
                max_wildcard_paths_in_progress: 1,
            })
            .completion(Completion::Fixed(Duration::from_secs(600))),
    )
    .await;
    let cf = client(&sim.endpoint_url(), 1);
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("a", &["/1", "/2", "/*"]))
        .send()
        .await
        .unwrap();
    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("b", &["/3"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("TooManyInvalidationsInProgress"));
}

#[tokio::test]
async fn access_denied_and_unknown_resources() {
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .distribution("EDENIED")
            .deny_access("EDENIED"),
    )
    .await;
    let cf = client(&sim.endpoint_url(), 1);

    let err = cf
        .create_invalidation()
        .distribution_id("EDENIED")
        .invalidation_batch(batch("r", &["/a"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("AccessDenied".to_string(), 403));
    assert!(err.into_service_error().is_access_denied());
    let err = cf
        .get_invalidation()
        .distribution_id("EDENIED")
        .id("I123")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_access_denied());
    let err = cf
        .list_invalidations()
        .distribution_id("EDENIED")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_access_denied());
    let err = cf
        .get_distribution()
        .id("EDENIED")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_access_denied());

    let err = cf
        .create_invalidation()
        .distribution_id("EUNKNOWN")
        .invalidation_batch(batch("r", &["/a"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("NoSuchDistribution".to_string(), 404));
    assert!(err.into_service_error().is_no_such_distribution());
    let err = cf
        .get_invalidation()
        .distribution_id("EUNKNOWN")
        .id("I123")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_no_such_distribution());
    let err = cf
        .list_invalidations()
        .distribution_id("EUNKNOWN")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_no_such_distribution());
    let err = cf
        .get_distribution()
        .id("EUNKNOWN")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_no_such_distribution());

    let err = cf
        .get_invalidation()
        .distribution_id(DIST)
        .id("INOSUCHTHING01")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("NoSuchInvalidation".to_string(), 404));
    assert!(err.into_service_error().is_no_such_invalidation());

    // An invalidation of one distribution is not found through another.
    let id = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("r", &["/a"]))
        .send()
        .await
        .unwrap()
        .invalidation()
        .unwrap()
        .id()
        .to_string();
    sim.add_distribution("EOTHER");
    let err = cf
        .get_invalidation()
        .distribution_id("EOTHER")
        .id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_no_such_invalidation());

    // Access can be granted again at run time.
    sim.set_access_denied("EDENIED", false);
    cf.get_distribution().id("EDENIED").send().await.unwrap();

    let c = sim.counters();
    // The distribution operations; tenants answer EntityNotFound (their own tests).
    let distribution_operations = [
        Operation::CreateInvalidation,
        Operation::GetInvalidation,
        Operation::ListInvalidations,
        Operation::GetDistribution,
    ];
    for op in distribution_operations {
        assert_eq!(calls(&c, op, "AccessDenied"), 1, "{op}");
        assert_eq!(calls(&c, op, "NoSuchDistribution"), 1, "{op}");
    }
    assert_eq!(
        calls(&c, Operation::GetInvalidation, "NoSuchInvalidation"),
        2
    );
}

#[tokio::test]
async fn list_invalidations_paginates_newest_first() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);
    let mut ids = Vec::new();
    for i in 0..7 {
        let out = cf
            .create_invalidation()
            .distribution_id(DIST)
            .invalidation_batch(batch(&format!("r{i}"), &["/a"]))
            .send()
            .await
            .unwrap();
        ids.push(out.invalidation().unwrap().id().to_string());
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let page1 = cf
        .list_invalidations()
        .distribution_id(DIST)
        .max_items(3)
        .send()
        .await
        .unwrap();
    let list = page1.invalidation_list().unwrap();
    assert_eq!(
        (
            list.quantity(),
            list.max_items(),
            list.is_truncated(),
            list.marker()
        ),
        (3, 3, true, "")
    );
    assert_eq!(
        list.items().iter().map(|s| s.id()).collect::<Vec<_>>(),
        newest_first[..3]
    );
    assert_eq!(list.next_marker(), Some(newest_first[2].as_str()));
    assert!(list.items().iter().all(|s| s.status() == "InProgress"));

    let page2 = cf
        .list_invalidations()
        .distribution_id(DIST)
        .max_items(3)
        .marker(list.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    let list2 = page2.invalidation_list().unwrap();
    assert_eq!(list2.marker(), newest_first[2]);
    assert_eq!(
        list2.items().iter().map(|s| s.id()).collect::<Vec<_>>(),
        newest_first[3..6]
    );

    // The SDK's own paginator walks every page.
    let mut paginator = cf
        .list_invalidations()
        .distribution_id(DIST)
        .max_items(3)
        .into_paginator()
        .send();
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(page) = paginator.next().await {
        pages += 1;
        seen.extend(
            page.unwrap()
                .invalidation_list()
                .unwrap()
                .items()
                .iter()
                .map(|s| s.id().to_string()),
        );
    }
    assert_eq!((pages, seen), (3, newest_first.clone()));

    // Default page size is 100: everything at once, not truncated.
    let all = cf
        .list_invalidations()
        .distribution_id(DIST)
        .send()
        .await
        .unwrap();
    let all = all.invalidation_list().unwrap();
    assert_eq!(
        (
            all.quantity(),
            all.max_items(),
            all.is_truncated(),
            all.next_marker()
        ),
        (7, 100, false, None)
    );

    // An empty distribution lists nothing.
    sim.add_distribution("EEMPTY");
    let empty = cf
        .list_invalidations()
        .distribution_id("EEMPTY")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.invalidation_list().unwrap().quantity(), 0);
    assert!(empty.invalidation_list().unwrap().items().is_empty());

    // MaxItems that is not a positive number.
    let r = raw_request(
        sim.local_addr(),
        "GET",
        &format!("/2020-05-31/distribution/{DIST}/invalidation?MaxItems=abc"),
        &[FAKE_SIGV4],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("<Code>InvalidArgument</Code>"),
        "{}",
        r.body
    );

    let c = sim.counters();
    assert_eq!(c.ok(Operation::ListInvalidations), 7);
    assert_eq!(
        calls(&c, Operation::ListInvalidations, "InvalidArgument"),
        1
    );
}

#[tokio::test]
async fn get_distribution_reports_a_deployed_distribution_with_etag() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("r1", &["/a"]))
        .send()
        .await
        .unwrap();
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("r2", &["/b"]))
        .send()
        .await
        .unwrap();
    let out = cf.get_distribution().id(DIST).send().await.unwrap();
    let etag = out.e_tag().expect("ETag header");
    assert!(etag.starts_with('E') && etag.len() == 14, "{etag}");
    let d = out.distribution().unwrap();
    assert_eq!(d.id(), DIST);
    assert_eq!(d.status(), "Deployed");
    assert_eq!(
        d.arn(),
        format!("arn:aws:cloudfront::123456789012:distribution/{DIST}")
    );
    assert!(d.domain_name().ends_with(".cloudfront.net"));
    assert_eq!(d.in_progress_invalidation_batches(), 2);
    let config = d.distribution_config().expect("config");
    assert!(config.enabled());
    assert_eq!(config.origins().unwrap().quantity(), 1);
    assert_eq!(
        cf.get_distribution().id(DIST).send().await.unwrap().e_tag(),
        Some(etag),
        "stable ETag"
    );

    sim.complete_all_now();
    let out = cf.get_distribution().id(DIST).send().await.unwrap();
    assert_eq!(
        out.distribution()
            .unwrap()
            .in_progress_invalidation_batches(),
        0
    );
    assert_eq!(sim.counters().ok(Operation::GetDistribution), 3);
}

/// GetDistributionConfig in the shape the SDK parses: `CacheTagConfig.HeaderName` when the
/// distribution has one (also nested in GetDistribution), nothing when not, the same `ETag` as
/// GetDistribution, and `AccessDenied` when an IAM policy lacks the action (a fault).
#[tokio::test]
async fn get_distribution_config_reports_the_cache_tag_config_the_sdk_parses() {
    const TAGGED: &str = "E2TAGGED";
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .distribution(TAGGED)
            .cache_tag_config(TAGGED, "x-amz-meta-cache-tag"),
    )
    .await;
    let cf = client(&sim.endpoint_url(), 1);

    let out = cf
        .get_distribution_config()
        .id(TAGGED)
        .send()
        .await
        .unwrap();
    let config = out.distribution_config().expect("config");
    assert_eq!(
        config.cache_tag_config().map(|c| c.header_name()),
        Some("x-amz-meta-cache-tag")
    );
    assert!(config.enabled());
    assert_eq!(config.origins().unwrap().quantity(), 1);
    let distribution = cf.get_distribution().id(TAGGED).send().await.unwrap();
    assert_eq!(
        out.e_tag(),
        distribution.e_tag(),
        "one ETag per configuration"
    );
    assert_eq!(
        distribution
            .distribution()
            .and_then(|d| d.distribution_config())
            .and_then(|c| c.cache_tag_config())
            .map(|c| c.header_name()),
        Some("x-amz-meta-cache-tag")
    );

    let plain = cf.get_distribution_config().id(DIST).send().await.unwrap();
    assert_eq!(
        plain.distribution_config().unwrap().cache_tag_config(),
        None
    );

    let err = cf
        .get_distribution_config()
        .id("E9MISSING")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("NoSuchDistribution".into(), 404));

    sim.set_faults(
        FaultConfig::none()
            .access_denied(1.0)
            .for_operations([Operation::GetDistributionConfig]),
    )
    .unwrap();
    let err = cf
        .get_distribution_config()
        .id(TAGGED)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("AccessDenied".into(), 403));
    cf.create_invalidation()
        .distribution_id(TAGGED)
        .invalidation_batch(batch("r1", &["#product:electronics"]))
        .send()
        .await
        .expect("only GetDistributionConfig is denied");

    let c = sim.counters();
    assert_eq!(c.ok(Operation::GetDistributionConfig), 2);
    assert_eq!(
        calls(&c, Operation::GetDistributionConfig, "NoSuchDistribution"),
        1
    );
    assert_eq!(
        calls(&c, Operation::GetDistributionConfig, "AccessDenied"),
        1
    );
}

#[tokio::test]
async fn unsigned_requests_are_refused_as_cloudfront_does() {
    let sim = basic().await;
    let r = raw_request(
        sim.local_addr(),
        "GET",
        &format!("/2020-05-31/distribution/{DIST}"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("text/xml")
    );
    assert!(r.headers.contains_key("x-amz-request-id"));
    for part in [
        "<ErrorResponse xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">",
        "<Type>Sender</Type>",
        "<Code>MissingAuthenticationToken</Code>",
        "<RequestId>",
    ] {
        assert!(r.body.contains(part), "{part} missing: {}", r.body);
    }
    let r = raw_request(
        sim.local_addr(),
        "POST",
        &format!("/2020-05-31/distribution/{DIST}/invalidation"),
        &[("Authorization", "Basic dXNlcjpwYXNz")],
        "<InvalidationBatch/>",
    )
    .await;
    assert_eq!(r.status, 403);
    let c = sim.counters();
    assert_eq!(
        calls(&c, Operation::GetDistribution, "MissingAuthenticationToken"),
        1
    );
    assert_eq!(
        calls(
            &c,
            Operation::CreateInvalidation,
            "MissingAuthenticationToken"
        ),
        1
    );
    assert_eq!(c.invalidations_created, 0);
}

#[tokio::test]
async fn injected_throttling_500_and_503_for_chosen_operations() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);

    sim.set_faults(
        FaultConfig::none()
            .throttling(1.0)
            .for_operations([Operation::CreateInvalidation]),
    )
    .unwrap();
    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("r", &["/a"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("Throttling".to_string(), 400));
    assert_eq!(err.message(), Some("Rate exceeded"));
    // Other operations are untouched.
    cf.get_distribution().id(DIST).send().await.unwrap();

    sim.set_faults(FaultConfig::none().internal_errors(1.0))
        .unwrap();
    let err = cf.get_distribution().id(DIST).send().await.unwrap_err();
    assert_eq!(code_status(&err), ("InternalFailure".to_string(), 500));

    sim.set_faults(
        FaultConfig::none()
            .service_unavailable(1.0)
            .for_operations([Operation::GetInvalidation]),
    )
    .unwrap();
    let err = cf
        .get_invalidation()
        .distribution_id(DIST)
        .id("IX")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_status(&err), ("ServiceUnavailable".to_string(), 503));
    let err = cf.list_invalidations().distribution_id(DIST).send().await;
    assert!(err.is_ok());

    sim.set_faults(FaultConfig::none()).unwrap();
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("r", &["/a"]))
        .send()
        .await
        .unwrap();

    let c = sim.counters();
    assert_eq!(calls(&c, Operation::CreateInvalidation, "Throttling"), 1);
    assert_eq!(calls(&c, Operation::GetDistribution, "InternalFailure"), 1);
    assert_eq!(
        calls(&c, Operation::GetInvalidation, "ServiceUnavailable"),
        1
    );
    assert_eq!(c.ok(Operation::GetDistribution), 1);
    assert_eq!(
        c.invalidations_created, 1,
        "a throttled create creates nothing"
    );
}

#[tokio::test]
async fn a_retrying_client_gets_through_seeded_throttling_and_the_counters_show_it() {
    let sim = start(
        Simulator::builder().distribution(DIST).faults(
            FaultConfig::none()
                .throttling(0.5)
                .service_unavailable(0.2)
                .seed(3)
                .for_operations([Operation::GetDistribution]),
        ),
    )
    .await;
    let cf = client(&sim.endpoint_url(), 10);
    for _ in 0..5 {
        cf.get_distribution()
            .id(DIST)
            .send()
            .await
            .expect("retries get through");
    }
    let c = sim.counters();
    assert_eq!(c.ok(Operation::GetDistribution), 5);
    let faults = calls(&c, Operation::GetDistribution, "Throttling")
        + calls(&c, Operation::GetDistribution, "ServiceUnavailable");
    assert!(
        faults > 0,
        "with 70% faults over 5 successes some calls failed: {c:?}"
    );
    assert_eq!(c.calls_total(Operation::GetDistribution), 5 + faults);
}

#[tokio::test]
async fn injected_latency_and_dropped_connections() {
    let sim = basic().await;
    let cf = client(&sim.endpoint_url(), 1);

    sim.set_faults(
        FaultConfig::none()
            .latency(Duration::from_secs(10))
            .for_operations([Operation::ListInvalidations]),
    )
    .unwrap();
    // The other operation answers while the delayed one still waits: no wall-clock bound that
    // a loaded machine could break, only the order of the two answers.
    let list = {
        let cf = cf.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            cf.list_invalidations()
                .distribution_id(DIST)
                .send()
                .await
                .unwrap();
            t.elapsed()
        })
    };
    cf.get_distribution().id(DIST).send().await.unwrap();
    assert!(!list.is_finished(), "latency only for the chosen operation");
    let waited = list.await.unwrap();
    assert!(waited >= Duration::from_secs(10), "{waited:?}");

    sim.set_faults(
        FaultConfig::none()
            .drop_connections(1.0)
            .for_operations([Operation::CreateInvalidation]),
    )
    .unwrap();
    let err = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("r", &["/a"]))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "a dropped connection is a transport failure, got {err:?}"
    );
    assert!(err.raw_response().is_none());

    let c = sim.counters();
    assert_eq!(calls(&c, Operation::CreateInvalidation, OUTCOME_DROPPED), 1);
    assert_eq!(c.invalidations_created, 0);
    // The server keeps serving other connections.
    sim.set_faults(FaultConfig::none()).unwrap();
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("r", &["/a"]))
        .send()
        .await
        .unwrap();
    assert!(
        sim.set_faults(FaultConfig::none().throttling(0.7).internal_errors(0.7))
            .is_err(),
        "rates over 1 are refused"
    );
}

#[tokio::test]
async fn control_endpoint_exposes_counters_faults_and_state_as_json() {
    let sim = basic().await;
    let addr = sim.local_addr();
    let cf = client(&sim.endpoint_url(), 1);
    cf.create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("r1", &["/a", "/b*"]))
        .send()
        .await
        .unwrap();

    let r = raw_request(addr, "GET", "/__simulator/counters", &[], "").await;
    assert_eq!(r.status, 200);
    let parsed: CountersSnapshot = serde_json::from_str(&r.body).unwrap();
    assert_eq!(parsed, sim.counters());
    let json = r.json();
    assert_eq!(json["calls"]["CreateInvalidation"]["ok"], 1);
    assert_eq!(json["distributions"][DIST]["paths_billed"], 2);
    assert_eq!(
        json["distributions"][DIST]["peak_in_progress_wildcard_paths"],
        1
    );

    // Faults at run time.
    let r = raw_request(
        addr,
        "PUT",
        "/__simulator/faults",
        &[],
        r#"{"throttling_rate": 1.0, "operations": ["GetDistribution"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(sim.faults().throttling_rate, 1.0);
    let err = cf.get_distribution().id(DIST).send().await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"));
    assert_eq!(
        raw_request(addr, "GET", "/__simulator/faults", &[], "")
            .await
            .json()["operations"][0],
        "GetDistribution"
    );
    let r = raw_request(
        addr,
        "PUT",
        "/__simulator/faults",
        &[],
        r#"{"throttling_rate": 2}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("between 0 and 1")
    );
    let r = raw_request(
        addr,
        "PUT",
        "/__simulator/faults",
        &[],
        r#"{"no_such_knob": 1}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        raw_request(addr, "DELETE", "/__simulator/faults", &[], "")
            .await
            .status,
        204
    );
    cf.get_distribution().id(DIST).send().await.unwrap();

    // Distributions and access.
    assert_eq!(
        raw_request(addr, "PUT", "/__simulator/distributions/ENEW", &[], "")
            .await
            .status,
        201
    );
    assert_eq!(
        raw_request(addr, "PUT", "/__simulator/distributions/ENEW", &[], "")
            .await
            .status,
        200
    );
    cf.get_distribution().id("ENEW").send().await.unwrap();
    assert_eq!(
        raw_request(
            addr,
            "PUT",
            "/__simulator/distributions/ENEW/access",
            &[],
            r#"{"denied": true}"#
        )
        .await
        .status,
        204
    );
    assert_eq!(
        cf.get_distribution()
            .id("ENEW")
            .send()
            .await
            .unwrap_err()
            .code(),
        Some("AccessDenied")
    );
    let listed = raw_request(addr, "GET", "/__simulator/distributions", &[], "")
        .await
        .json();
    assert_eq!(
        listed["distributions"],
        serde_json::json!(["E2EXAMPLE", "ENEW"])
    );
    assert_eq!(listed["access_denied"], serde_json::json!(["ENEW"]));

    // Invalidations with their instants; complete them all.
    let invs = raw_request(
        addr,
        "GET",
        &format!("/__simulator/distributions/{DIST}/invalidations"),
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(invs[0]["status"], "InProgress");
    assert_eq!(invs[0]["paths"], serde_json::json!(["/a", "/b*"]));
    assert!(invs[0]["completion_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        raw_request(
            addr,
            "GET",
            "/__simulator/distributions/ENOPE/invalidations",
            &[],
            ""
        )
        .await
        .status,
        404
    );
    assert_eq!(
        raw_request(addr, "POST", "/__simulator/complete-all", &[], "")
            .await
            .json()["completed"],
        1
    );
    assert_eq!(
        sim.invalidations(DIST)[0].status,
        InvalidationStatus::Completed
    );

    let status = raw_request(addr, "GET", "/__simulator/status", &[], "")
        .await
        .json();
    assert_eq!(status["endpoint_url"], sim.endpoint_url());
    assert_eq!(status["time_scale"], 1.0);

    assert_eq!(
        raw_request(addr, "POST", "/__simulator/counters/reset", &[], "")
            .await
            .status,
        204
    );
    assert_eq!(sim.counters().calls_total(Operation::CreateInvalidation), 0);
    assert_eq!(sim.counters().distribution(DIST).paths_billed, 0);
    // The control endpoint is not a CloudFront call and counts nothing.
    assert!(sim.counters().calls.is_empty());
}

#[tokio::test]
async fn unknown_paths_and_shutdown() {
    let sim = basic().await;
    let addr = sim.local_addr();
    let r = raw_request(addr, "GET", "/2020-05-31/nothing-here", &[FAKE_SIGV4], "").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("<ErrorResponse"), "{}", r.body);
    sim.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );

    let sim = basic().await;
    let addr = sim.local_addr();
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after drop"
    );
}

#[tokio::test]
async fn invalid_configuration_is_refused_at_start() {
    assert!(Simulator::builder().time_scale(0.0).start().await.is_err());
    assert!(
        Simulator::builder()
            .completion(Completion::LogNormal {
                median: Duration::ZERO,
                sigma: 1.0,
                seed: 0
            })
            .start()
            .await
            .is_err()
    );
    assert!(
        Simulator::builder()
            .faults(FaultConfig::none().drop_connections(1.5))
            .start()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_command_line_serves_logs_in_words_and_stops_on_ctrl_c() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloudfront-sim"))
        .args([
            "--listen",
            &listen,
            "--distribution",
            DIST,
            "--deny-access",
            "EDENIED",
        ])
        .args([
            "--completion-after",
            "1m",
            "--time-scale",
            "60",
            "--throttle-rate",
            "1",
            "--fault-operation",
            "GetDistribution",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the simulator did not listen on {listen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoint = format!("http://{listen}");
    let cf = client(&endpoint, 1);
    let out = cf
        .create_invalidation()
        .distribution_id(DIST)
        .invalidation_batch(batch("cli-1", &["/a"]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.invalidation().unwrap().status(), "InProgress");
    let err = cf.get_distribution().id(DIST).send().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("Throttling"),
        "--throttle-rate for --fault-operation GetDistribution"
    );
    let err = cf
        .get_invalidation()
        .distribution_id("EDENIED")
        .id("I1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));
    let counters = raw_request(
        listen.parse().unwrap(),
        "GET",
        "/__simulator/counters",
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(counters["calls"]["CreateInvalidation"]["ok"], 1);
    assert_eq!(counters["calls"]["GetDistribution"]["Throttling"], 1);

    // Ctrl-C: SIGINT to the process we started, by its id.
    let pid = child.id().expect("running").to_string();
    let status = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("exits within 15 s of Ctrl-C")
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "exit {:?}:\n{log}", output.status);
    for words in [
        format!("listening on http://{listen}"),
        format!("CreateInvalidation on {DIST}: created I"),
        format!("GetDistribution on {DIST}: injected fault, answering Throttling"),
        "GetInvalidation on EDENIED answered AccessDenied (403)".to_string(),
        "CloudFront simulator stopped".to_string(),
    ] {
        assert!(log.contains(&words), "{words:?} not in the log:\n{log}");
    }
}
