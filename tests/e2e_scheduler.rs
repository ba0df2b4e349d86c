//! The quota scheduler's guarantees, end to end against the real API server and the operator
//! binary: never over CloudFront's in-progress quota (and so never refused by it when the
//! operator is the only writer), round-robin across namespaces so a flood cannot starve anyone,
//! and oldest first within a namespace.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use cloudfront_sim::{InvalidationRecord, Operation};
use kube::ResourceExt;
use support::*;

const DIST: &str = "E2ESCHEDULER01";

/// Records of `DIST` in the order CloudFront created them.
fn by_creation(sim: &cloudfront_sim::SimulatorHandle) -> Vec<InvalidationRecord> {
    let mut records = sim.invalidations(DIST);
    records.sort_by_key(|r| r.create_time);
    records
}

#[tokio::test]
async fn a_flooding_namespace_does_not_starve_a_quiet_one() {
    let env = Env::start().await;
    let flood = env.namespace("flood").await;
    let quiet = env.namespace("quiet").await;
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    let _op = Operator::start(
        &env,
        env.operator("fair", &sim, &flood)
            .all_namespaces()
            .arg("--aws-rate-limit=100")
            .arg("--queue-recheck-interval=200ms"),
    )
    .await;

    // 45 wildcard objects: three full waves of CloudFront's 15.
    let flood_api = env.api(&flood);
    let flood_names: Vec<String> = (0..45).map(|i| format!("flood-{i:02}")).collect();
    for (i, name) in flood_names.iter().enumerate() {
        create(&flood_api, &manifest(name, DIST, &[&format!("/f{i}/*")])).await;
    }
    wait_for(
        "the first wave to be in progress",
        Duration::from_secs(30),
        || async {
            let n = sim.invalidations(DIST).len();
            if n >= 15 {
                Ok(())
            } else {
                Err(format!("{n} created"))
            }
        },
    )
    .await;
    // One object from another namespace, created after the whole flood.
    let quiet_api = env.api(&quiet);
    let quiet_obj = create(&quiet_api, &manifest("lonely", DIST, &["/q/*"])).await;

    let mut done = wait_all_completed(&flood_api, &flood_names, Duration::from_secs(90)).await;
    done.extend(
        wait_all_completed(&quiet_api, &["lonely".to_owned()], Duration::from_secs(30)).await,
    );

    let records = by_creation(&sim);
    let quiet_uid = quiet_obj.uid().unwrap();
    let position = records
        .iter()
        .position(|r| r.caller_reference == quiet_uid)
        .expect("the quiet object was submitted");
    // Least-served first: it goes in the second wave (positions 15..29: slots free only when the
    // first wave completes), not behind the other 30 flood objects in the fourth as strict
    // arrival order would have it. Within a wave, objects are submitted as their rechecks come.
    assert!(
        (15..30).contains(&position),
        "the quiet namespace's object was the {}th submitted, outside the second wave",
        position + 1
    );
    let c = sim.counters();
    assert!(
        c.distribution(DIST).peak_in_progress_wildcard_paths <= 15,
        "{:#?}",
        c.distribution(DIST)
    );
    assert_eq!(
        c.calls(
            Operation::CreateInvalidation,
            "TooManyInvalidationsInProgress"
        ),
        0,
        "as the only writer the operator never asks beyond the quota"
    );
    assert_eq!(records.len(), 46, "one invalidation per object");
}

#[tokio::test]
async fn oldest_first_within_a_namespace() {
    let env = Env::start().await;
    let ns = env.namespace("order").await;
    let sim = simulator(&[DIST], Duration::from_secs(2)).await;
    let _op = Operator::start(
        &env,
        env.operator("order", &sim, &ns)
            .arg("--aws-rate-limit=100")
            .arg("--queue-recheck-interval=200ms"),
    )
    .await;
    let api = env.api(&ns);
    // creationTimestamp has one-second resolution: the batches are created seconds apart.
    let older: Vec<String> = (0..20).map(|i| format!("older-{i:02}")).collect();
    let mut last_created = None;
    for (i, name) in older.iter().enumerate() {
        let obj = create(&api, &manifest(name, DIST, &[&format!("/o{i}/*")])).await;
        last_created = obj.metadata.creation_timestamp.map(|t| t.0);
    }
    // Wait for the API server's clock to pass the older batch's second (a condition, not a
    // sleep): it stamps the newer batch from then on.
    let last_created = last_created.expect("creationTimestamp");
    wait_for(
        "a new second for creationTimestamp",
        Duration::from_secs(10),
        || async {
            let now = jiff::Timestamp::now();
            if now.as_second() > last_created.as_second() {
                Ok(())
            } else {
                Err(format!("{now} still in the second of {last_created}"))
            }
        },
    )
    .await;
    let newer: Vec<String> = (0..20).map(|i| format!("newer-{i:02}")).collect();
    for (i, name) in newer.iter().enumerate() {
        create(&api, &manifest(name, DIST, &[&format!("/n{i}/*")])).await;
    }
    let all: Vec<String> = older.iter().chain(&newer).cloned().collect();
    let done = wait_all_completed(&api, &all, Duration::from_secs(60)).await;

    let uid_of = |name: &str| {
        done.iter()
            .find(|o| o.name_any() == name)
            .and_then(|o| o.uid())
            .unwrap()
    };
    let records = by_creation(&sim);
    let submitted_at = |name: &str| {
        let uid = uid_of(name);
        records
            .iter()
            .position(|r| r.caller_reference == uid)
            .unwrap()
    };
    // Waves of 15: the first holds only older objects, and the 5 older ones left go in the
    // second; newer ones never take a slot an older one is waiting for.
    let last_older = older.iter().map(|n| submitted_at(n)).max().unwrap();
    let first_newer = newer.iter().map(|n| submitted_at(n)).min().unwrap();
    assert!(
        first_newer >= 15,
        "a newer object was in the first wave (#{first_newer})"
    );
    assert!(
        last_older < 30,
        "an older object waited until the third wave (#{last_older})"
    );
    assert!(
        sim.counters()
            .distribution(DIST)
            .peak_in_progress_wildcard_paths
            <= 15
    );
}

/// Issue 11 item 11: a queued object is woken when a slot frees, not by a fixed recheck. With
/// the safety-net recheck an hour away, the 16th wildcard object still goes as soon as one of
/// the first 15 completes.
#[tokio::test]
async fn a_freed_slot_wakes_a_queued_object() {
    let env = Env::start().await;
    let ns = env.namespace("wake").await;
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    let _op = Operator::start(
        &env,
        env.operator("wake", &sim, &ns)
            .arg("--aws-rate-limit=100")
            .arg("--queue-recheck-interval=1h"),
    )
    .await;
    let api = env.api(&ns);
    let names: Vec<String> = (0..16).map(|i| format!("wake-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        create(&api, &manifest(name, DIST, &[&format!("/w{i}/*")])).await;
    }
    // Generous for a loaded machine, and far below the hour of the recheck.
    wait_all_completed(&api, &names, Duration::from_secs(120)).await;
    let c = sim.counters();
    assert_eq!(c.calls_total(Operation::CreateInvalidation), 16, "{c:#?}");
    assert!(c.distribution(DIST).peak_in_progress_wildcard_paths <= 15);
}

/// Issue 11 item 12: an object-path request does not wait behind a wildcard request that
/// cannot fit (the two quotas are independent), and the wildcard request keeps its turn.
#[tokio::test]
async fn an_object_path_request_does_not_wait_behind_a_wildcard_request() {
    let env = Env::start().await;
    let ns = env.namespace("lanes").await;
    // Long enough that nothing completes during the test.
    let sim = simulator(&[DIST], Duration::from_secs(600)).await;
    let _op = Operator::start(
        &env,
        env.operator("lanes", &sim, &ns)
            .arg("--aws-rate-limit=100")
            .arg("--queue-recheck-interval=200ms"),
    )
    .await;
    let api = env.api(&ns);
    for i in 0..15 {
        create(
            &api,
            &manifest(&format!("full-{i:02}"), DIST, &[&format!("/f{i}/*")]),
        )
        .await;
    }
    for i in 0..15 {
        wait_submitted(&api, &format!("full-{i:02}"), Duration::from_secs(60)).await;
    }
    create(&api, &manifest("wild", DIST, &["/more/*"])).await;
    wait_for(
        "the wildcard request to be queued",
        Duration::from_secs(30),
        || async {
            let obj = api.get("wild").await.map_err(|e| e.to_string())?;
            match obj.phase() {
                cfinv_api::crd::Phase::Queued => Ok(()),
                p => Err(format!("phase {p}")),
            }
        },
    )
    .await;
    // creationTimestamp has one-second resolution: make the object-path request unambiguously
    // younger, so that only independent quotas (not a tie broken by uid) let it go first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(&api, &manifest("files", DIST, &["/index.html", "/app.js"])).await;
    wait_submitted(&api, "files", Duration::from_secs(30)).await;
    let wild = api.get("wild").await.unwrap();
    assert_eq!(
        wild.phase(),
        cfinv_api::crd::Phase::Queued,
        "{:?}",
        wild.status
    );
    let c = sim.counters();
    assert_eq!(
        c.calls(
            Operation::CreateInvalidation,
            "TooManyInvalidationsInProgress"
        ),
        0
    );
    assert_eq!(c.calls_total(Operation::CreateInvalidation), 16, "{c:#?}");
}

/// Issue 11 item 13: invalidations that timed out on our side while CloudFront still runs
/// them hold their slots, and a restarted operator counts them from status (it never saw them
/// admitted): the next object waits without asking CloudFront, and goes once CloudFront has
/// finished them.
#[tokio::test]
async fn timed_out_invalidations_still_running_hold_their_slots_across_a_restart() {
    let env = Env::start().await;
    let ns = env.namespace("held").await;
    let sim = simulator(&[DIST], Duration::from_secs(600)).await;
    let mut op = Operator::start(
        &env,
        env.operator("held", &sim, &ns)
            .arg("--aws-rate-limit=100")
            .arg("--queue-recheck-interval=200ms"),
    )
    .await;
    let api = env.api(&ns);
    let names: Vec<String> = (0..15).map(|i| format!("late-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        create(&api, &manifest(name, DIST, &[&format!("/l{i}/*")])).await;
    }
    for name in &names {
        wait_submitted(&api, name, Duration::from_secs(60)).await;
    }
    // As the state machine leaves a timed-out invalidation: Failed, CloudFront still running.
    op.kill9().await;
    for name in &names {
        let status = serde_json::json!({"status": {
            "phase": "Failed",
            "cloudFrontStatus": "InProgress",
            "completionTime": jiff::Timestamp::now().to_string(),
            "message": "timed out (set by the test)"}});
        api.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(status),
        )
        .await
        .unwrap();
    }
    op.restart().await;
    create(&api, &manifest("next", DIST, &["/next/*"])).await;
    wait_for(
        "the next object to be queued",
        Duration::from_secs(30),
        || async {
            let obj = api.get("next").await.map_err(|e| e.to_string())?;
            match obj.phase() {
                cfinv_api::crd::Phase::Queued => Ok(()),
                p => Err(format!("phase {p}")),
            }
        },
    )
    .await;
    let c = sim.counters();
    assert_eq!(
        c.calls_total(Operation::CreateInvalidation),
        15,
        "the full quota was counted from status: no submission tried: {c:#?}"
    );

    // CloudFront finishes them, and the follow-up poll records it.
    sim.complete_all_now();
    for name in &names {
        let status = serde_json::json!({"status": {"cloudFrontStatus": "Completed"}});
        api.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(status),
        )
        .await
        .unwrap();
    }
    wait_submitted(&api, "next", Duration::from_secs(30)).await;
    assert_eq!(
        sim.counters().calls(
            Operation::CreateInvalidation,
            "TooManyInvalidationsInProgress"
        ),
        0
    );
}
