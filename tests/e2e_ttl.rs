//! `spec.ttlSecondsAfterFinished` and `--ttl-after-finished`, end to end against the real API
//! server, the simulator and the operator binary: finished objects are deleted that long after
//! they finished and not before, unfinished ones never, nor one whose invalidation CloudFront
//! still reports in progress; the operator-wide default applies only where the spec is silent.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use jiff::{SignedDuration, Timestamp};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use support::*;

const DIST: &str = "E2ETTL0000001";

fn with_ttl(name: &str, paths: &[&str], ttl: u32) -> serde_json::Value {
    let mut m = manifest(name, DIST, paths);
    m["spec"]["ttlSecondsAfterFinished"] = json!(ttl);
    m
}

/// Watches `name` (polling) until it is gone; returns when it was first seen gone and the last
/// copy seen before that.
async fn wait_deleted(
    api: &Api<CloudFrontInvalidation>,
    name: &str,
    timeout: Duration,
) -> (Timestamp, CloudFrontInvalidation) {
    let started = std::time::Instant::now();
    let mut last = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(obj)) => last = Some(obj),
            Ok(None) => break,
            Err(e) => eprintln!("reading {name}: {e}"),
        }
        assert!(
            started.elapsed() < timeout,
            "{name} not deleted after {timeout:?}; last seen: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (
        Timestamp::now(),
        last.unwrap_or_else(|| panic!("{name} was never seen")),
    )
}

fn finished_at(obj: &CloudFrontInvalidation) -> Timestamp {
    obj.status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(|| panic!("no completionTime in {:?}", obj.status))
}

/// A finished object goes after its TTL and not before; an unfinished one with a TTL of 0 stays
/// as long as CloudFront works on it.
#[tokio::test]
async fn finished_objects_are_deleted_after_the_ttl_and_unfinished_ones_kept() {
    let env = Env::start().await;
    let ns = env.namespace("ttl").await;
    let sim = simulator(&[DIST], Duration::from_secs(6)).await;
    let op = Operator::start(&env, env.operator("ttl", &sim, &ns)).await;
    let api = env.api(&ns);

    create(&api, &with_ttl("running", &["/r"], 0)).await;
    create(&api, &with_ttl("done", &["/d"], 8)).await;
    wait_submitted(&api, "running", Duration::from_secs(30)).await;
    // While CloudFront works on it, a TTL of 0 does not delete it.
    let records = sim.invalidations(DIST);
    let completes = records
        .iter()
        .map(|r| r.completion_time)
        .min()
        .expect("submitted");
    while Timestamp::now() + SignedDuration::from_millis(500) < completes {
        let obj = api.get_opt("running").await.unwrap();
        assert!(
            obj.is_some_and(|o| !o.phase().is_terminal()),
            "unfinished and already gone (or finished early)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (gone, last) = wait_deleted(&api, "running", Duration::from_secs(60)).await;
    assert!(
        gone >= completes,
        "deleted before CloudFront completed it: {last:?}"
    );

    let (gone, last) = wait_deleted(&api, "done", Duration::from_secs(90)).await;
    assert_eq!(last.phase(), Phase::Completed, "{:?}", last.status);
    let finished = finished_at(&last);
    assert!(
        gone >= finished + SignedDuration::from_secs(8),
        "deleted {} after finishing, before its 8 s TTL",
        gone.duration_since(finished)
    );
    let metrics = op.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "cloudfront_invalidation_ttl_deletions_total",
            &["phase=\"Completed\""]
        ),
        Some(2.0),
        "{metrics}"
    );
}

/// `--ttl-after-finished` applies where the spec says nothing; a spec value wins, longer or
/// shorter.
#[tokio::test]
async fn the_operator_default_applies_only_where_the_spec_is_silent() {
    let env = Env::start().await;
    let ns = env.namespace("ttl-default").await;
    let sim = simulator(&[DIST], Duration::from_secs(1)).await;
    let _op = Operator::start(
        &env,
        env.operator("ttl-default", &sim, &ns)
            .arg("--ttl-after-finished=2s"),
    )
    .await;
    let api = env.api(&ns);
    create(&api, &with_ttl("keep", &["/k"], 3600)).await;
    create(&api, &with_ttl("spec", &["/s"], 6)).await;
    create(&api, &manifest("silent", DIST, &["/q"])).await;

    let (gone, last) = wait_deleted(&api, "silent", Duration::from_secs(60)).await;
    let finished = finished_at(&last);
    assert!(gone >= finished + SignedDuration::from_secs(2));
    let (gone, last) = wait_deleted(&api, "spec", Duration::from_secs(60)).await;
    let finished = finished_at(&last);
    assert!(
        gone >= finished + SignedDuration::from_secs(6),
        "the spec's 6 s did not win over the default 2 s"
    );
    // Finished as early as the others, and its own TTL is an hour.
    let keep = api.get("keep").await.unwrap();
    assert_eq!(keep.phase(), Phase::Completed, "{:?}", keep.status);
}

/// A timed-out invalidation CloudFront still reports in progress is never deleted, whatever the
/// TTL: it still holds CloudFront's quota. Once CloudFront reports it finished, it goes.
#[tokio::test]
async fn a_timed_out_invalidation_still_running_in_cloudfront_is_not_deleted() {
    let env = Env::start().await;
    let ns = env.namespace("ttl-running").await;
    let sim = simulator(&[DIST], Duration::from_secs(600)).await;
    let mut op = Operator::start(
        &env,
        env.operator("ttl-running", &sim, &ns)
            .arg("--ttl-after-finished=1s")
            .arg("--timeout-follow-up-interval=1s"),
    )
    .await;
    let api = env.api(&ns);
    create(&api, &manifest("late", DIST, &["/late"])).await;
    wait_submitted(&api, "late", Duration::from_secs(30)).await;
    // As the state machine leaves an invalidation that timed out while CloudFront keeps
    // working on it.
    op.kill9().await;
    let patch = Patch::Merge(json!({"status": {
        "phase": "Failed",
        "cloudFrontStatus": "InProgress",
        "completionTime": Timestamp::now().to_string(),
        "message": "timed out (set by the test)"}}));
    api.patch_status("late", &PatchParams::default(), &patch)
        .await
        .unwrap();
    // One that fails without reaching CloudFront (unknown distribution): the TTL removes it,
    // which shows the restarted operator has run its TTL over both.
    create(&api, &manifest("other", "E2ETTLUNKNOWN", &["/other"])).await;
    op.restart().await;
    let (_, other) = wait_deleted(&api, "other", Duration::from_secs(60)).await;
    assert_eq!(other.metadata.name.as_deref(), Some("other"));
    let late = api.get("late").await.unwrap();
    assert_eq!(late.phase(), Phase::Failed, "{:?}", late.status);

    // CloudFront finishes it; the operator's follow-up poll records that, and only then does
    // the TTL delete it.
    sim.complete_all_now();
    let (_, late) = wait_deleted(&api, "late", Duration::from_secs(60)).await;
    assert_eq!(
        late.status.and_then(|s| s.cloud_front_status).as_deref(),
        Some("Completed"),
        "deleted only once CloudFront reported it finished"
    );
}
