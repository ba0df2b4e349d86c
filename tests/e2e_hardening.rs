//! End to end, issue 11's state machine items: the operator binary against a real
//! kube-apiserver (v1.20, no CEL) and the CloudFront simulator, one test per item, each named
//! with its item number. Each fails on the operator before the fix.

#[path = "e2e/support.rs"]
mod support;

use std::time::{Duration, Instant};

use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use cfinv_testenv::ControlPlaneUser;
use cloudfront_sim::{
    CallerReferenceConflict, Completion, FaultConfig, InvalidationStatus, Operation, Simulator,
    SimulatorHandle,
};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

fn status_of(obj: &CloudFrontInvalidation) -> cfinv_api::crd::CloudFrontInvalidationStatus {
    obj.status.clone().unwrap_or_default()
}

/// Sets `status.startTime` `ago` in the past before any operator runs (a status patch), so a
/// 60 s timeout ends soon: the state of an object the operator started `ago` ago.
async fn backdate_start(env: &Env, ns: &str, name: &str, ago: i64) -> jiff::Timestamp {
    let start = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(ago))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap();
    let patch = json!({"status": {"startTime": start.to_string()}});
    env.kubectl
        .run(&[
            "patch",
            "-n",
            ns,
            "cfinv",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .await
        .expect_ok("backdate status.startTime");
    start
}

fn polls(sim: &SimulatorHandle) -> u64 {
    let c = sim.counters();
    c.calls_total(Operation::GetInvalidation) + c.calls_total(Operation::ListInvalidations)
}

/// Item 1: CloudFront completes the invalidation 4 s before the object's deadline, and the
/// operator's next planned look is at the deadline: it asks CloudFront there and the object is
/// Completed (it used to end Failed/Timeout without asking).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_completed_shortly_before_the_deadline_ends_completed() {
    const DIST: &str = "E2EITEM1DONE01";
    let env = Env::start().await;
    let ns = env.namespace("item1-done").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(6)).await;
    let mut m = manifest("nearly-late", DIST, &["/index.html"]);
    m["spec"]["timeoutSeconds"] = json!(60);
    env.kubectl.apply_json(&ns, &m).await.expect_ok("apply");
    backdate_start(&env, &ns, "nearly-late", 50).await;
    // Looks 30 s apart at least: after the submission the next look is the deadline's.
    let _op = Operator::start(
        &env,
        env.operator("item1-done", &sim, &ns)
            .set("--poll-min-interval", "30s")
            .set("--poll-max-interval", "30s"),
    )
    .await;
    let done = wait_terminal(&api, "nearly-late", WAIT).await;
    assert_eq!(done.phase(), Phase::Completed, "{:?}", done.status);
    assert_eq!(
        status_of(&done).cloud_front_status.as_deref(),
        Some("Completed")
    );
    let records = sim.invalidations(DIST);
    assert_eq!(records.len(), 1);
    assert!(records[0].completion_time < jiff::Timestamp::now());
}

/// Item 2: IAM denies the calls after the invalidation was accepted (a policy changed, or one
/// without ListInvalidations): the object keeps waiting, says what IAM must grant, and
/// completes once access is back (it used to end Failed/AccessDenied at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_access_denied_after_submission_is_retried_until_granted() {
    const DIST: &str = "E2EITEM2DENY01";
    let env = Env::start().await;
    let ns = env.namespace("item2-denied").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    let _op = Operator::start(&env, env.operator("item2-denied", &sim, &ns)).await;
    create(&api, &manifest("denied-later", DIST, &["/a"])).await;
    wait_submitted(&api, "denied-later", WAIT).await;
    sim.set_access_denied(DIST, true);
    let waiting = wait_for(
        "the operator to report AccessDenied and retry",
        WAIT,
        || async {
            let obj = api.get("denied-later").await.map_err(|e| e.to_string())?;
            let message = status_of(&obj).message.unwrap_or_default();
            if message.contains("AccessDenied") {
                Ok(obj)
            } else {
                Err(format!("phase {}, message {message}", obj.phase()))
            }
        },
    )
    .await;
    assert_eq!(waiting.phase(), Phase::InProgress, "{:?}", waiting.status);
    let message = status_of(&waiting).message.unwrap_or_default();
    for action in [
        "cloudfront:CreateInvalidation",
        "cloudfront:GetInvalidation",
        "cloudfront:ListInvalidations",
    ] {
        assert!(
            message.contains(action),
            "the hint lacks {action}: {message}"
        );
    }
    sim.set_access_denied(DIST, false);
    let done = wait_completed(&api, "denied-later", WAIT).await;
    assert_one_invalidation_per_object(&sim, DIST, &[done]);
}

/// Item 2: the shared ListInvalidations always fails; each object asks GetInvalidation
/// instead and completes (it used to retry the list until its timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_a_failing_list_falls_back_to_get() {
    const DIST: &str = "E2EITEM2LIST01";
    let env = Env::start().await;
    let ns = env.namespace("item2-list").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    sim.set_faults(
        FaultConfig::none()
            .throttling(1.0)
            .for_operations([Operation::ListInvalidations]),
    )
    .unwrap();
    let _op = Operator::start(&env, env.operator("item2-list", &sim, &ns)).await;
    let names: Vec<String> = (0..3).map(|i| format!("listed-{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        create(&api, &manifest(n, DIST, &[&format!("/l/{i}")])).await;
    }
    let done = wait_all_completed(&api, &names, WAIT).await;
    assert_one_invalidation_per_object(&sim, DIST, &done);
    let c = sim.counters();
    eprintln!(
        "[e2e] item 2: {} ListInvalidations (all throttled), {} GetInvalidation",
        c.calls_total(Operation::ListInvalidations),
        c.calls_total(Operation::GetInvalidation)
    );
    assert!(
        c.calls_total(Operation::GetInvalidation) >= 3,
        "{:?}",
        c.calls
    );
}

/// Item 3: the operator's own status write does not trigger a reconcile: a lone invalidation
/// costs one CreateInvalidation, and no poll comes before the planned first one.
///
/// With a prior median of 10 s the first look is planned at the 5th percentile, 10 s ×
/// e^(−1.645 × 0.8) ≈ 2.7 s after submission. The check stops at 2 s: later than an extra
/// reconcile after a write could come on any machine, earlier than the planned look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_a_lone_invalidation_costs_one_create_and_no_early_poll() {
    const DIST: &str = "E2EITEM3LONE01";
    let env = Env::start().await;
    let ns = env.namespace("item3").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(8)).await;
    let _op = Operator::start(
        &env,
        env.operator("item3", &sim, &ns)
            .set("--poll-prior-median", "10s")
            .set("--poll-max-interval", "30s"),
    )
    .await;
    create(&api, &manifest("lone", DIST, &["/lone"])).await;
    wait_for("CloudFront to hold the invalidation", WAIT, || async {
        match sim.counters().invalidations_created {
            0 => Err("not yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
    let created = sim.invalidations(DIST)[0].create_time;
    let created_real = sim.real_instant(created);
    let quiet_until = created_real + Duration::from_secs(2);
    while Instant::now() < quiet_until {
        assert_eq!(polls(&sim), 0, "a poll came before the planned first one");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = wait_completed(&api, "lone", WAIT).await;
    let c = sim.counters();
    assert_eq!(
        c.calls_total(Operation::CreateInvalidation),
        1,
        "{:?}",
        c.calls
    );
    assert_one_invalidation_per_object(&sim, DIST, &[done]);
}

/// Item 4: the operator may read objects but not write their status (RBAC without
/// `status`): each accepted CreateInvalidation is followed by a refused write. The replays
/// back off exponentially up to --retry-max-delay (they used to come every ~100 ms), and once
/// the write is allowed the object completes with exactly one invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item4_a_failing_status_write_backs_off() {
    const DIST: &str = "E2EITEM4RBAC01";
    const WINDOW: Duration = Duration::from_secs(10);
    let env = Env::start().await;
    let ns = env.namespace("item4").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(2)).await;
    env.grant_operator_user(
        "e2e-item4-read-only",
        json!([{
            "apiGroups": ["cloudfront.invalidation.io"],
            "resources": ["cloudfrontinvalidations"],
            "verbs": ["get", "list", "watch"],
        }]),
    )
    .await;
    let _op = Operator::start(
        &env,
        env.operator("item4", &sim, &ns)
            .kubeconfig(env.kubeconfig(ControlPlaneUser::Operator))
            .set("--retry-base-delay", "100ms")
            .set("--retry-max-delay", "2s"),
    )
    .await;
    create(&api, &manifest("unwritable", DIST, &["/u"])).await;
    wait_for("the first CreateInvalidation", WAIT, || async {
        match sim.counters().calls_total(Operation::CreateInvalidation) {
            0 => Err("none yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
    let started = Instant::now();
    let before = sim.counters().calls_total(Operation::CreateInvalidation);
    tokio::time::sleep(WINDOW).await; // counting calls over a window of time
    let replays = sim.counters().calls_total(Operation::CreateInvalidation) - before;
    let took = started.elapsed();
    // Backoff 0.1, 0.2, 0.4, 0.8, 1.6 s, then 2 s each (jitter: half to all of it): at most
    // 5 + 10/1 = 15 calls in 10 s even at the shortest jitter; a backoff reset before every
    // write makes it ~100.
    eprintln!("[e2e] item 4: {replays} CreateInvalidation replays in {took:.1?}");
    assert!(
        replays <= 15,
        "{replays} CreateInvalidation calls in {took:?}"
    );
    assert_eq!(sim.counters().invalidations_created, 1);

    env.bind_deploy_cluster_role_to_operator_user().await;
    let done = wait_completed(&api, "unwritable", WAIT).await;
    assert_one_invalidation_per_object(&sim, DIST, &[done]);
}

/// Item 5: on a server without CEL the spec can be edited while the object is Pending with a
/// retry (CloudFront throttled the first CreateInvalidation): the operator keeps to what it
/// sent (distribution, CallerReference, paths), warns SpecChangeIgnored, and exactly one
/// invalidation exists, on the original distribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item5_a_spec_edit_while_pending_with_retry_changes_nothing_sent() {
    const DIST: &str = "E2EITEM5SPEC01";
    const OTHER: &str = "E2EITEM5OTHER1";
    let env = Env::start().await;
    let ns = env.namespace("item5").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST, OTHER], Duration::from_secs(2)).await;
    sim.set_faults(
        FaultConfig::none()
            .throttling(1.0)
            .for_operations([Operation::CreateInvalidation]),
    )
    .unwrap();
    let _op = Operator::start(&env, env.operator("item5", &sim, &ns)).await;
    let obj = create(&api, &manifest("edited", DIST, &["/original"])).await;
    wait_for("the first attempt to be recorded", WAIT, || async {
        let obj = api.get("edited").await.map_err(|e| e.to_string())?;
        let s = status_of(&obj);
        match (&s.caller_reference, obj.phase()) {
            (Some(_), Phase::Pending) => Ok(()),
            _ => Err(format!("{s:?}")),
        }
    })
    .await;
    let patch = json!({"spec": {"distributionId": OTHER, "callerReference": "edited-reference",
        "paths": ["/edited"]}});
    env.kubectl
        .run(&[
            "patch",
            "-n",
            &ns,
            "cfinv",
            "edited",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .await
        .expect_ok("edit the spec (no CEL to refuse it)");
    wait_for("the SpecChangeIgnored event", WAIT, || async {
        let events = env
            .kubectl
            .json(&[
                "get",
                "events",
                "-n",
                &ns,
                "--field-selector=reason=SpecChangeIgnored",
            ])
            .await;
        match events["items"].as_array().map(Vec::len) {
            Some(n) if n > 0 => Ok(()),
            _ => Err("no event yet".to_owned()),
        }
    })
    .await;
    sim.set_faults(FaultConfig::none()).unwrap();
    let done = wait_completed(&api, "edited", WAIT).await;
    assert!(
        sim.invalidations(OTHER).is_empty(),
        "redirected to the edited distribution"
    );
    let records = sim.invalidations(DIST);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(
        records[0].caller_reference,
        obj.metadata.uid.clone().unwrap()
    );
    assert_eq!(records[0].paths, vec!["/original".to_owned()]);
    let s = status_of(&done);
    assert_eq!(s.distribution_id.as_deref(), Some(DIST));
    assert_eq!(s.invalidation_id.as_deref(), Some(records[0].id.as_str()));
}

/// Item 6: `--tenancy namespace-annotation`, and a Namespace (annotated) applied together with
/// an object in it: the object waits for the namespace cache and completes (it used to fail
/// NotAllowed when its watch event came before the namespace's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item6_a_namespace_and_its_object_in_one_apply_complete() {
    const DIST: &str = "E2EITEM6TENA01";
    let env = Env::start().await;
    env.bind_deploy_cluster_role_to_operator_user().await;
    env.grant_operator_user(
        "e2e-item6-namespace-reader",
        json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}]),
    )
    .await;
    let sim = simulator(&[DIST], Duration::from_secs(1)).await;
    let _op = Operator::start(
        &env,
        env.operator("item6", &sim, "unused")
            .all_namespaces()
            .kubeconfig(env.kubeconfig(ControlPlaneUser::Operator))
            .arg("--tenancy=namespace-annotation"),
    )
    .await;
    let ns = format!("item6-{}", std::process::id());
    let manifest = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  annotations:
    cloudfront.invalidation.io/allowed-distributions: {DIST}
---
apiVersion: cloudfront.invalidation.io/v1alpha1
kind: CloudFrontInvalidation
metadata:
  name: together
  namespace: {ns}
spec:
  distributionId: {DIST}
  paths: ["/together"]
"#
    );
    env.kubectl
        .apply("", &manifest)
        .await
        .expect_ok("apply both");
    let api = env.api(&ns);
    let done = wait_completed(&api, "together", WAIT).await;
    assert_one_invalidation_per_object(&sim, DIST, &[done]);
}

/// Item 7: reasons say what happened: a request larger than the in-progress quota fails
/// ExceedsQuota with no CloudFront call, and a CallerReference reused with other paths fails
/// CallerReferenceConflict in the live service's spelling (InvalidArgument) too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item7_quota_and_caller_reference_conflicts_have_their_own_reasons() {
    const DIST: &str = "E2EITEM7REAS01";
    let env = Env::start().await;
    let ns = env.namespace("item7").await;
    let api = env.api(&ns);
    let sim = Simulator::builder()
        .distribution(DIST)
        .completion(Completion::Fixed(Duration::from_secs(1)))
        .caller_reference_conflict(CallerReferenceConflict::InvalidArgument)
        .start()
        .await
        .expect("simulator");
    let _op = Operator::start(&env, env.operator("item7", &sim, &ns)).await;

    let wide: Vec<String> = (0..16).map(|i| format!("/wide-{i}/*")).collect();
    let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
    create(&api, &manifest("too-wide", DIST, &wide)).await;
    let failed = wait_terminal(&api, "too-wide", WAIT).await;
    assert_eq!(
        condition(&failed, "Failed"),
        Some(("True".into(), "ExceedsQuota".into()))
    );
    assert!(
        sim.counters().calls.is_empty(),
        "{:?}",
        sim.counters().calls
    );

    let mut first = manifest("first", DIST, &["/a"]);
    first["spec"]["callerReference"] = json!("release-7");
    create(&api, &first).await;
    wait_completed(&api, "first", WAIT).await;
    let mut second = manifest("second", DIST, &["/b"]);
    second["spec"]["callerReference"] = json!("release-7");
    create(&api, &second).await;
    let conflict = wait_terminal(&api, "second", WAIT).await;
    assert_eq!(
        condition(&conflict, "Failed"),
        Some(("True".into(), "CallerReferenceConflict".into())),
        "{:?}",
        conflict.status
    );
    assert_eq!(sim.invalidations(DIST).len(), 1);
}

/// Items 1 and 13: still running at the deadline: Failed/Timeout naming the id and saying it
/// keeps running, `status.cloudFrontStatus` InProgress; the slow follow-up then records that
/// CloudFront finished, on the object that stays Failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_a_timed_out_invalidation_is_followed_up_until_cloudfront_finishes() {
    const DIST: &str = "E2EITEM1SLOW01";
    let env = Env::start().await;
    let ns = env.namespace("item1-slow").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(600)).await;
    let mut m = manifest("slow", DIST, &["/slow/*"]);
    m["spec"]["timeoutSeconds"] = json!(60);
    env.kubectl.apply_json(&ns, &m).await.expect_ok("apply");
    backdate_start(&env, &ns, "slow", 52).await;
    let _op = Operator::start(
        &env,
        env.operator("item1-slow", &sim, &ns)
            .set("--timeout-follow-up-interval", "1s"),
    )
    .await;
    let failed = wait_terminal(&api, "slow", WAIT).await;
    let s = status_of(&failed);
    assert_eq!(failed.phase(), Phase::Failed, "{s:?}");
    assert_eq!(
        condition(&failed, "Failed"),
        Some(("True".into(), "Timeout".into()))
    );
    let id = s.invalidation_id.clone().expect("an invalidation id");
    let message = s.message.clone().unwrap_or_default();
    assert!(
        message.contains(&id) && message.contains("keeps running"),
        "{message}"
    );
    assert_eq!(s.cloud_front_status.as_deref(), Some("InProgress"));
    assert_eq!(
        sim.invalidations(DIST)[0].status,
        InvalidationStatus::InProgress
    );

    sim.complete_all_now();
    let recorded = wait_for(
        "the follow-up to record CloudFront's completion",
        WAIT,
        || async {
            let obj = api.get("slow").await.map_err(|e| e.to_string())?;
            match status_of(&obj).cloud_front_status.as_deref() {
                Some("Completed") => Ok(obj),
                other => Err(format!("cloudFrontStatus {other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        recorded.phase(),
        Phase::Failed,
        "never back to non-terminal"
    );
    assert_eq!(
        condition(&recorded, "Failed"),
        Some(("True".into(), "Timeout".into()))
    );
    assert_eq!(sim.counters().calls_total(Operation::CreateInvalidation), 1);
}
