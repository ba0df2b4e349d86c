//! End to end, when things go wrong: the operator killed with SIGKILL at awkward moments,
//! CloudFront throttling, failing and slow, CloudFront's in-progress quota, an invalidation
//! slower than its timeout, and the API server and etcd restarting under the operator.
//!
//! The invariant everywhere: exactly one invalidation per object in CloudFront (matched by
//! CallerReference), and every object reaches the phase it should.

#[path = "e2e/support.rs"]
mod support;

use std::time::{Duration, Instant};

use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use cfinv_testenv::ControlPlaneUser;
use cloudfront_sim::{Completion, FaultConfig, InvalidationStatus, Operation, Simulator};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(45);

/// The operator is killed with SIGKILL (no chance to clean up) at every interesting point of an
/// object's life, and restarted each time; in the end every object is Completed with exactly one
/// invalidation in CloudFront.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_many_points_never_duplicates_an_invalidation() {
    const DIST: &str = "E2ECRASHSAFE01";
    let env = Env::start().await;
    let ns = env.namespace("crash").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    let mut objects: Vec<String> = Vec::new();

    // 1. CloudFront accepted the request, the status write did not happen: the crash window
    //    that CallerReference idempotency exists for. Made deterministic: the operator runs as
    //    the user `operator`, allowed to read objects but not to write their status, so every
    //    accepted CreateInvalidation is followed by a refused status write. It is killed in
    //    that state, then given the chart's permissions and restarted.
    env.grant_operator_user(
        "e2e-read-only",
        json!([{
            "apiGroups": ["cloudfront.invalidation.io"],
            "resources": ["cloudfrontinvalidations"],
            "verbs": ["get", "list", "watch"],
        }]),
    )
    .await;
    let mut op = Operator::start(
        &env,
        env.operator("crash", &sim, &ns)
            .kubeconfig(env.kubeconfig(ControlPlaneUser::Operator)),
    )
    .await;
    let mut window = Vec::new();
    for i in 0..3 {
        let name = format!("accepted-unrecorded-{i}");
        window.push(create(&api, &manifest(&name, DIST, &[&format!("/window/{i}")])).await);
        objects.push(name);
    }
    wait_for("CloudFront to hold the 3 invalidations", WAIT, || async {
        let records = sim.invalidations(DIST);
        let all = window.iter().all(|o| {
            records
                .iter()
                .any(|r| r.caller_reference == caller_reference(o))
        });
        if all {
            Ok(())
        } else {
            Err(format!("{} so far", records.len()))
        }
    })
    .await;
    // Each answer the operator could not record makes it ask again with the same
    // CallerReference: CloudFront answers with the existing invalidation (a replay).
    wait_for(
        "the operator to retry its unrecorded requests",
        WAIT,
        || async {
            let replays = sim.counters().distribution(DIST).idempotent_replays;
            if replays >= 3 {
                Ok(())
            } else {
                Err(format!("{replays} replays"))
            }
        },
    )
    .await;
    op.kill9().await;
    for o in &window {
        let now = api.get(&o.metadata.name.clone().unwrap()).await.unwrap();
        assert!(
            now.status
                .as_ref()
                .and_then(|s| s.invalidation_id.as_ref())
                .is_none(),
            "the status was written after all: {:?}",
            now.status
        );
    }
    env.bind_deploy_cluster_role_to_operator_user().await;
    op.restart().await;

    // 2. The same window without help: kill the instant CloudFront creates the invalidation,
    //    before the operator can record it (a race the kill usually wins).
    let mut won = 0;
    let replays_before = sim.counters().distribution(DIST).idempotent_replays;
    for i in 0..4 {
        let name = format!("race-{i}");
        let before = sim.counters().invalidations_created;
        create(&api, &manifest(&name, DIST, &[&format!("/race/{i}")])).await;
        objects.push(name.clone());
        let pid = op.pid().expect("running") as libc::pid_t;
        // Spin on a thread of its own (block_in_place hands this worker's tasks, the
        // simulator's among them, to another thread) and kill at the first sight of it.
        tokio::task::block_in_place(|| {
            let started = Instant::now();
            while sim.counters().invalidations_created == before {
                assert!(started.elapsed() < WAIT, "{name} never reached CloudFront");
                std::hint::spin_loop();
            }
            // SAFETY: kill(2) on our own child, which is not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        });
        op.kill9().await; // reap
        let obj = api.get(&name).await.expect("get");
        if obj.status.and_then(|s| s.invalidation_id).is_none() {
            won += 1;
        }
        op.restart().await;
    }
    eprintln!("[e2e] killed before the status write in {won} of 4 races");
    // Each race the kill won left an accepted, unrecorded invalidation: the restarted
    // operator must adopt it by replaying its CallerReference, never create a second one.
    wait_for(
        "the restarted operator to adopt every unrecorded invalidation",
        WAIT,
        || async {
            let replays = sim.counters().distribution(DIST).idempotent_replays - replays_before;
            if replays >= won {
                Ok(())
            } else {
                Err(format!("{replays} replays for {won} races won"))
            }
        },
    )
    .await;

    // 3. While polling: invalidations in progress, the operator dies, a new one picks them up
    //    from the status (no new CreateInvalidation).
    for round in 0..3 {
        let mut batch = Vec::new();
        for i in 0..2 {
            let name = format!("polling-{round}-{i}");
            create(
                &api,
                &manifest(&name, DIST, &[&format!("/poll/{round}/{i}")]),
            )
            .await;
            batch.push(name.clone());
            objects.push(name);
        }
        for name in &batch {
            let obj = wait_submitted(&api, name, WAIT).await;
            assert_eq!(obj.phase(), Phase::InProgress, "{name}: {:?}", obj.status);
        }
        let created = sim.counters().invalidations_created;
        let polled = sim.counters().calls_total(Operation::GetInvalidation)
            + sim.counters().calls_total(Operation::ListInvalidations);
        op.restart().await; // SIGKILL, then start
        // Wait for the new process to act on them (its first poll), then check it did not
        // submit again.
        wait_for("the restarted operator to poll", WAIT, || async {
            let c = sim.counters();
            let now = c.calls_total(Operation::GetInvalidation)
                + c.calls_total(Operation::ListInvalidations);
            if now > polled {
                Ok(())
            } else {
                Err("no poll yet".to_owned())
            }
        })
        .await;
        assert_eq!(sim.counters().invalidations_created, created);
    }

    // 4. During start-up, before the cache has synced.
    create(&api, &manifest("startup", DIST, &["/startup"])).await;
    objects.push("startup".to_owned());
    op.restart().await;
    op.restart().await;

    let done = wait_all_completed(&api, &objects, WAIT).await;
    let counters = sim.counters();
    assert_one_invalidation_per_object(&sim, DIST, &done);
    eprintln!(
        "[e2e] {} objects, {} restarts, {} invalidations, {} idempotent replays",
        done.len(),
        op.starts - 1,
        counters.invalidations_created,
        counters.distribution(DIST).idempotent_replays
    );
}

/// CloudFront throttles, fails with 500 and 503, drops connections and answers slowly; every
/// object still completes, once, with a bounded number of calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_throttling_5xx_and_latency() {
    const DIST: &str = "E2EFAULTS00001";
    const OBJECTS: usize = 8;
    const COMPLETION: Duration = Duration::from_secs(2);
    const POLL_MIN: Duration = Duration::from_millis(200);
    let faults = FaultConfig::none()
        .throttling(0.2)
        .internal_errors(0.1)
        .service_unavailable(0.1)
        .drop_connections(0.05)
        .latency(Duration::from_millis(150))
        .seed(8);
    let failure_rate = 0.45;
    let env = Env::start().await;
    let ns = env.namespace("faults").await;
    let api = env.api(&ns);
    let sim = Simulator::builder()
        .distribution(DIST)
        .completion(Completion::Fixed(COMPLETION))
        .faults(faults)
        .start()
        .await
        .expect("simulator");
    // A generous client-side rate limit, so that the bound below is the operator's own
    // discipline and not the limiter's.
    let op = Operator::start(
        &env,
        env.operator("faults", &sim, &ns)
            .arg("--aws-rate-limit=200"),
    )
    .await;
    let names: Vec<String> = (0..OBJECTS).map(|i| format!("faulty-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        create(
            &api,
            &manifest(name, DIST, &[&format!("/f/{i}"), "/shared"]),
        )
        .await;
    }
    let done = wait_all_completed(&api, &names, Duration::from_secs(60)).await;
    assert_one_invalidation_per_object(&sim, DIST, &done);

    let c = sim.counters();
    let creates = c.calls_total(Operation::CreateInvalidation);
    let polls =
        c.calls_total(Operation::GetInvalidation) + c.calls_total(Operation::ListInvalidations);
    let faulted: u64 = c
        .calls
        .values()
        .flat_map(|by_outcome| by_outcome.iter())
        .filter(|(outcome, _)| outcome.as_str() != "ok")
        .map(|(_, n)| n)
        .sum();
    // The bound. Without faults an object needs 1 CreateInvalidation and, polling no more
    // often than every POLL_MIN during the COMPLETION it takes CloudFront, at most
    // COMPLETION/POLL_MIN + 1 polls that see it in progress plus 1 that sees it done (a shared
    // ListInvalidations answering for several objects only lowers that). Each call fails
    // independently with probability `failure_rate` and is then retried, so the expected number
    // of calls is the fault-free number / (1 - failure_rate). Twice that leaves room for bad luck
    // and for idempotent replays after a stale read.
    let ideal_per_object = 1 + (COMPLETION.as_millis() / POLL_MIN.as_millis()) as u64 + 2;
    let bound = (2.0 * (OBJECTS as u64 * ideal_per_object) as f64 / (1.0 - failure_rate)) as u64;
    eprintln!(
        "[e2e] faults: {creates} CreateInvalidation + {polls} Get/ListInvalidations calls, \
         {faulted} of them faulted; bound {bound}; counters {:?}",
        c.calls
    );
    assert!(faulted > 0, "no fault was injected: {c:#?}");
    assert!(
        creates + polls <= bound,
        "{creates} + {polls} calls for {OBJECTS} objects exceed the bound {bound}: {c:#?}"
    );
    // And the CreateInvalidations alone: one per object / (1 - failure_rate), twice over.
    let create_bound = (2.0 * OBJECTS as f64 / (1.0 - failure_rate)) as u64;
    assert!(
        creates <= create_bound,
        "{creates} CreateInvalidation calls for {OBJECTS} objects exceed {create_bound}"
    );
    // Successful creates: one per object, plus replays that created nothing.
    assert_eq!(
        c.ok(Operation::CreateInvalidation),
        OBJECTS as u64 + c.distribution(DIST).idempotent_replays
    );
    // The operator's own count of its calls agrees with CloudFront's, operation by operation.
    let metrics = op.metrics().await;
    for operation in Operation::ALL {
        let calls = c.calls_total(operation);
        let counted = metric(
            &metrics,
            "cloudfront_invalidation_aws_calls_total",
            &[&format!("operation=\"{operation}\"")],
        )
        .unwrap_or(0.0) as u64;
        assert_eq!(
            counted, calls,
            "{operation}: metrics say {counted}, CloudFront saw {calls}"
        );
    }
}

/// 20 objects with a wildcard path each for one distribution, whose quota is 15 wildcard paths
/// in progress: the extra ones wait as Queued, all complete, none fails, and CloudFront never
/// has more than 15 wildcard paths in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wildcards_wait_for_the_quota_of_fifteen() {
    const DIST: &str = "E2EQUOTA000001";
    let env = Env::start().await;
    let ns = env.namespace("quota").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    let _op = Operator::start(
        &env,
        env.operator("quota", &sim, &ns).arg("--aws-rate-limit=100"),
    )
    .await;
    let names: Vec<String> = (0..20).map(|i| format!("wildcard-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        create(&api, &manifest(name, DIST, &[&format!("/release-{i}/*")])).await;
    }
    // Some objects show that they wait for a slot.
    let queued = wait_for("an object to be Queued", WAIT, || async {
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let queued: Vec<&CloudFrontInvalidation> = list
            .items
            .iter()
            .filter(|o| o.phase() == Phase::Queued)
            .collect();
        match queued.first() {
            Some(o) => Ok((*o).clone()),
            None => Err(format!(
                "phases: {:?}",
                list.items.iter().map(|o| o.phase()).collect::<Vec<_>>()
            )),
        }
    })
    .await;
    let message = queued
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(message.contains("waiting for a slot"), "{message}");
    assert_eq!(
        condition(&queued, "Reconciling").map(|c| c.0).as_deref(),
        Some("True")
    );

    let done = wait_all_completed(&api, &names, Duration::from_secs(60)).await;
    assert_one_invalidation_per_object(&sim, DIST, &done);
    let c = sim.counters();
    let d = c.distribution(DIST);
    eprintln!(
        "[e2e] quota: peak {} wildcard paths in progress, {} TooManyInvalidationsInProgress",
        d.peak_in_progress_wildcard_paths,
        c.calls(
            Operation::CreateInvalidation,
            "TooManyInvalidationsInProgress"
        )
    );
    assert!(d.peak_in_progress_wildcard_paths <= 15, "{d:#?}");
    // Whether the operator holds objects back itself or lets CloudFront refuse them
    // (TooManyInvalidationsInProgress) is its business; both end here.
}

/// An invalidation slower than `spec.timeoutSeconds` ends Failed with reason Timeout at the
/// deadline, not before and not much after, and is then left alone.
///
/// The timeout counts from `status.startTime` in real time, and its minimum is 60 s. Rather
/// than wait a minute, the object's `status.startTime` is set 50 s in the past (a status
/// patch, before any operator runs): the state of an object the operator started 50 s ago.
/// The operator keeps a startTime it finds, so the deadline is 10 s away. CloudFront takes
/// 10 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_slower_than_its_timeout_fails_with_timeout_at_the_deadline() {
    const DIST: &str = "E2ETIMEOUT0001";
    let env = Env::start().await;
    let ns = env.namespace("timeout").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(600)).await;
    let mut m = manifest("slow", DIST, &["/slow/*"]);
    m["spec"]["timeoutSeconds"] = json!(60);
    env.kubectl.apply_json(&ns, &m).await.expect_ok("apply");

    let start = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(50))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap();
    let patch = json!({"status": {"startTime": start.to_string()}});
    env.kubectl
        .run(&[
            "patch",
            "-n",
            &ns,
            "cfinv",
            "slow",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .await
        .expect_ok("backdate status.startTime");
    let deadline = start + jiff::SignedDuration::from_secs(60);

    let _op = Operator::start(&env, env.operator("timeout", &sim, &ns)).await;
    let submitted = wait_submitted(&api, "slow", WAIT).await;
    assert_eq!(
        submitted
            .status
            .as_ref()
            .unwrap()
            .start_time
            .as_ref()
            .map(|t| t.0),
        Some(start),
        "the operator kept the startTime it found"
    );

    // Not before the deadline ...
    let until =
        deadline.duration_since(jiff::Timestamp::now()) - jiff::SignedDuration::from_secs(1);
    if until.is_positive() {
        tokio::time::sleep(until.unsigned_abs()).await;
    }
    let early = api.get("slow").await.unwrap();
    assert_eq!(early.phase(), Phase::InProgress, "{:?}", early.status);

    // ... and at it.
    let failed = wait_terminal(&api, "slow", Duration::from_secs(30)).await;
    let seen = jiff::Timestamp::now();
    let status = failed.status.clone().unwrap();
    assert_eq!(failed.phase(), Phase::Failed, "{status:?}");
    assert_eq!(
        condition(&failed, "Failed"),
        Some(("True".into(), "Timeout".into()))
    );
    assert_eq!(
        condition(&failed, "Stalled").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert_eq!(
        condition(&failed, "Ready").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(
        condition(&failed, "Completed").map(|c| c.0).as_deref(),
        Some("False")
    );
    let message = status.message.clone().unwrap_or_default();
    let id = status.invalidation_id.clone().unwrap_or_default();
    assert!(
        message.contains("timeoutSeconds=60")
            && message.contains("keeps running")
            && message.contains(&id),
        "{message}"
    );
    assert_eq!(status.cloud_front_status.as_deref(), Some("InProgress"));
    let completion = status.completion_time.expect("completionTime").0;
    let late = completion.duration_since(deadline);
    eprintln!("[e2e] timeout: Failed at {completion}, deadline {deadline} ({late:?} late)");
    // Never before the deadline; after it, within bounds wide enough for a loaded 2-core
    // machine (the look at the deadline is one GetInvalidation and one status write).
    assert!(
        late >= jiff::SignedDuration::from_secs(-1) && late <= jiff::SignedDuration::from_secs(15),
        "Failed at {completion}, deadline {deadline}"
    );
    assert!(seen.duration_since(deadline) <= jiff::SignedDuration::from_secs(20));

    // The Warning event.
    let events = env
        .kubectl
        .json(&[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector=reason=Timeout",
        ])
        .await;
    let items = events["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items
            .iter()
            .any(|e| e["type"] == "Warning" && e["involvedObject"]["name"] == "slow"),
        "{events:#}"
    );

    // CloudFront still has it running, and the operator stopped polling: only the slow
    // follow-up (--timeout-follow-up-interval, 5 minutes by default) asks again.
    let records = sim.invalidations(DIST);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, InvalidationStatus::InProgress);
    let gets = sim.counters().calls_total(Operation::GetInvalidation);
    // Absence cannot be awaited: watch for two poll intervals (--poll-max-interval=1s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.counters().calls_total(Operation::GetInvalidation), gets);
    assert_eq!(sim.counters().calls_total(Operation::CreateInvalidation), 1);
}

/// kube-apiserver restarts, etcd restarts, both restart, while objects are in flight and
/// while CloudFront completes them: nothing is missed, nothing is duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_and_etcd_restarts_miss_nothing_and_duplicate_nothing() {
    const DIST: &str = "E2EDISRUPT0001";
    let mut env = Env::start().await;
    let ns = env.namespace("disrupt").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(2)).await;
    let op = Operator::start(&env, env.operator("disrupt", &sim, &ns)).await;
    let mut names = Vec::new();
    let batch = |tag: &str| -> Vec<String> { (0..3).map(|i| format!("{tag}-{i}")).collect() };

    // A: in progress when the apiserver goes away; CloudFront completes them meanwhile, the
    // operator sees that and cannot write it down.
    let a = batch("before");
    for n in &a {
        create_retrying(&api, &manifest(n, DIST, &[&format!("/{n}")])).await;
    }
    for n in &a {
        wait_submitted(&api, n, WAIT).await;
    }
    names.extend(a.clone());
    env.cp.stop_apiserver().await;
    wait_for(
        "the operator to see batch A completed while the apiserver is down",
        WAIT,
        || async {
            let records = sim.invalidations(DIST);
            let seen = records
                .iter()
                .filter(|r| r.first_reported_completed.is_some())
                .count();
            if seen == a.len() {
                Ok(())
            } else {
                Err(format!("{seen} seen completed"))
            }
        },
    )
    .await;
    let t = Instant::now();
    env.cp.start_apiserver().await.expect("apiserver restart");
    eprintln!("[e2e] kube-apiserver back in {:.1?}", t.elapsed());

    // B: created right after the restart, maybe before the operator's watch is back.
    let b = batch("after-apiserver");
    for n in &b {
        create_retrying(&api, &manifest(n, DIST, &[&format!("/{n}")])).await;
    }
    names.extend(b);

    // C: etcd restarts under a running apiserver.
    let t = Instant::now();
    env.cp.restart_etcd().await.expect("etcd restart");
    eprintln!("[e2e] etcd back in {:.1?}", t.elapsed());
    let c = batch("after-etcd");
    for n in &c {
        create_retrying(&api, &manifest(n, DIST, &[&format!("/{n}")])).await;
    }
    names.extend(c);

    // D: both restart.
    let t = Instant::now();
    env.cp.restart().await.expect("control plane restart");
    eprintln!("[e2e] etcd + kube-apiserver back in {:.1?}", t.elapsed());
    let d = batch("after-both");
    for n in &d {
        create_retrying(&api, &manifest(n, DIST, &[&format!("/{n}")])).await;
    }
    names.extend(d);

    let done = wait_all_completed(&api, &names, Duration::from_secs(60)).await;
    assert_one_invalidation_per_object(&sim, DIST, &done);
    drop(op);
}

/// Where a chaos kill lands: right after the operator's CreateInvalidation reached CloudFront
/// (before it could record it), right after a status write (before its effects and its next
/// step), right after a poll (before it could record the answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KillPoint {
    Submit,
    StatusWrite,
    Poll,
    /// With coalescing: right after a batch record was created or its status written.
    BatchWrite,
}

/// The chaos suite: `kills` SIGKILLs spread over submit, status write and poll, over 24
/// objects on 2 distributions, with 20% of CloudFront calls throttled or failing with 5xx.
/// Zero duplicate invalidations, every object Completed, CloudFront calls per object bounded
/// and printed. `flags` are extra operator flags, so the same suite runs with other settings
/// (coalescing, when it exists) by one more test calling it.
async fn chaos(label: &str, flags: &[&str], kills: usize) {
    use std::collections::BTreeMap;
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};

    const DISTS: [&str; 2] = ["E2ECHAOSDIST01", "E2ECHAOSDIST02"];
    const OBJECTS: usize = 24;
    const TRIGGER_WAIT: Duration = Duration::from_secs(3);
    let started = Instant::now();
    let env = Env::start().await;
    let ns = env.namespace("chaos").await;
    let api = env.api(&ns);
    let sim = Simulator::builder()
        .distributions(DISTS)
        .completion(Completion::Fixed(Duration::from_secs(6)))
        .faults(
            FaultConfig::none()
                .throttling(0.1)
                .internal_errors(0.05)
                .service_unavailable(0.05)
                .seed(11),
        )
        .start()
        .await
        .expect("simulator");
    let mut options = env.operator(label, &sim, &ns).arg("--aws-rate-limit=100");
    for flag in flags {
        options = options.arg(*flag);
    }
    let mut op = Operator::start(&env, options).await;
    let coalescing = flags.contains(&"--coalesce=true");

    // Every change of a batch record (coalescing: its creation and its status writes).
    let batch_writes = Arc::new(AtomicU64::new(0));
    let batch_watch = {
        let batches: kube::Api<cfinv_api::batch::CloudFrontInvalidationBatch> =
            kube::Api::namespaced(env.admin.clone(), &ns);
        let writes = batch_writes.clone();
        tokio::spawn(async move {
            let mut events = watcher(batches, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                if event.is_ok() {
                    writes.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let points: &[KillPoint] = if coalescing {
        &[
            KillPoint::Submit,
            KillPoint::BatchWrite,
            KillPoint::StatusWrite,
            KillPoint::Poll,
        ]
    } else {
        &[KillPoint::Submit, KillPoint::StatusWrite, KillPoint::Poll]
    };

    // Every change of an object the API server reports (the operator's status writes).
    let writes = Arc::new(AtomicU64::new(0));
    let watch = {
        let (writes, api) = (writes.clone(), api.clone());
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                if event.is_ok() {
                    writes.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    let names: Vec<String> = (0..OBJECTS).map(|i| format!("chaos-{i:02}")).collect();
    let mut created = 0;
    let mut hit: BTreeMap<KillPoint, usize> = BTreeMap::new();
    let mut missed = 0;
    let mut k = 0;
    // Until `kills` kills landed on their event (a kill whose event did not come in time still
    // happens, and is counted apart), at most twice as many tries.
    while hit.values().sum::<usize>() < kills && k < 2 * kills {
        let point = points[k % points.len()];
        k += 1;
        // A new object before each submit kill point (more at the start), so submits keep
        // coming while the kills go on and earlier objects are still polled.
        if point == KillPoint::Submit && created < OBJECTS {
            let wave = if created == 0 {
                OBJECTS.saturating_sub(kills / points.len())
            } else {
                1
            };
            for _ in 0..wave.clamp(1, OBJECTS - created) {
                let dist = DISTS[created % 2];
                let name = &names[created];
                create(
                    &api,
                    &manifest(name, dist, &[&format!("/{name}"), "/shared/*"]),
                )
                .await;
                created += 1;
            }
        }
        let count = {
            let (sim, writes, batch_writes) = (&sim, writes.clone(), batch_writes.clone());
            move || match point {
                KillPoint::Submit => sim.counters().calls_total(Operation::CreateInvalidation),
                KillPoint::Poll => {
                    let c = sim.counters();
                    c.calls_total(Operation::GetInvalidation)
                        + c.calls_total(Operation::ListInvalidations)
                }
                KillPoint::StatusWrite => writes.load(Ordering::SeqCst),
                KillPoint::BatchWrite => batch_writes.load(Ordering::SeqCst),
            }
        };
        let pid = op.pid().expect("running") as libc::pid_t;
        let before = count();
        // Spin on a thread of its own and kill at the first sight of the event.
        let landed = tokio::task::block_in_place(|| {
            let t = Instant::now();
            while count() == before {
                if t.elapsed() > TRIGGER_WAIT {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            true
        });
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        if landed {
            *hit.entry(point).or_default() += 1;
        } else {
            missed += 1;
        }
        op.restart().await;
    }
    while created < OBJECTS {
        let name = &names[created];
        create(
            &api,
            &manifest(
                name,
                DISTS[created % 2],
                &[&format!("/{name}"), "/shared/*"],
            ),
        )
        .await;
        created += 1;
    }

    let done = wait_all_completed(&api, &names, Duration::from_secs(120)).await;
    watch.abort();
    batch_watch.abort();
    for dist in DISTS {
        let mine: Vec<CloudFrontInvalidation> = done
            .iter()
            .filter(|o| o.spec.distribution_id.as_deref() == Some(dist))
            .cloned()
            .collect();
        if coalescing {
            assert_one_invalidation_per_member(&sim, dist, &mine);
        } else {
            assert_one_invalidation_per_object(&sim, dist, &mine);
        }
    }
    let c = sim.counters();
    let per_object = |op: Operation| c.calls_total(op) as f64 / OBJECTS as f64;
    let total: u64 = Operation::ALL.iter().map(|o| c.calls_total(*o)).sum();
    let faulted: u64 = c
        .calls
        .values()
        .flat_map(|by_outcome| by_outcome.iter())
        .filter(|(outcome, _)| outcome.as_str() != "ok")
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "[e2e] chaos {label}: {} kills on their event ({hit:?}), {missed} more without it in {TRIGGER_WAIT:?}, \
         {OBJECTS} objects on {} distributions, {} invalidations, {} replays; CloudFront calls per \
         object: {:.1} CreateInvalidation, {:.1} GetInvalidation, {:.1} ListInvalidations, {:.1} in \
         all ({faulted} of {total} faulted); wall time {:.0?}",
        hit.values().sum::<usize>(),
        DISTS.len(),
        c.invalidations_created,
        DISTS
            .iter()
            .map(|d| c.distribution(d).idempotent_replays)
            .sum::<u64>(),
        per_object(Operation::CreateInvalidation),
        per_object(Operation::GetInvalidation),
        per_object(Operation::ListInvalidations),
        total as f64 / OBJECTS as f64,
        started.elapsed(),
    );
    assert!(faulted > 0, "no fault was injected");
    assert!(
        hit.values().sum::<usize>() >= kills,
        "too few kills landed on their event: {hit:?}"
    );
    for point in points {
        let n = hit.get(point).copied().unwrap_or(0);
        assert!(
            n >= kills / (2 * points.len()),
            "only {n} kills at {point:?}: {hit:?}"
        );
    }
    // The bound. Fault-free, an object needs 1 CreateInvalidation and, at most one look per
    // second (--poll-max-interval) during the 6 s CloudFront takes, about 8 polls. Every
    // restart can cost each object in flight one more CreateInvalidation (a replay) and one
    // more poll; about 8 objects are in flight at once here at most (the first wave of 6 and
    // one per three kills, completing in 6 s), so kills × 16 / OBJECTS per object. 20% of
    // calls fail and are retried: divide by 0.8. Twice all that leaves room for bad luck.
    let bound = 2.0 * (9.0 + kills as f64 * 16.0 / OBJECTS as f64) / 0.8;
    let calls = total as f64 / OBJECTS as f64;
    assert!(
        calls <= bound,
        "{calls:.1} calls per object exceed the bound {bound:.1}: {c:#?}"
    );
}

/// The chaos suite with the operator's default flags: 54 kill points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigkill_at_54_points_with_throttling_and_5xx() {
    chaos("default", &[], 54).await;
}

/// The same suite with coalescing on: kills also right after a batch record is created or its
/// status written. Every member Completed, each member's own path in exactly one invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigkill_at_56_points_with_coalescing_throttling_and_5xx() {
    chaos(
        "coalesce",
        &["--coalesce=true", "--coalesce-window=500ms"],
        56,
    )
    .await;
}

/// Coalescing's invariant: each member's own path (`/<name>`, unique to it) is in exactly one
/// invalidation, the one its status names, whose CallerReference is its batch's; every
/// invalidation holds only paths some member asked for.
fn assert_one_invalidation_per_member(
    sim: &cloudfront_sim::SimulatorHandle,
    distribution: &str,
    objects: &[CloudFrontInvalidation],
) {
    let records = sim.invalidations(distribution);
    let mut asked = std::collections::BTreeSet::new();
    for obj in objects {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let own = format!("/{name}");
        let mine: Vec<_> = records.iter().filter(|r| r.paths.contains(&own)).collect();
        assert_eq!(
            mine.len(),
            1,
            "{name} is in {} invalidations: {mine:#?}",
            mine.len()
        );
        let status = obj.status.clone().unwrap_or_default();
        assert_eq!(
            status.invalidation_id.as_deref(),
            Some(mine[0].id.as_str()),
            "{name}: status.invalidationId is not the invalidation holding its path"
        );
        assert_eq!(
            status.caller_reference.as_deref(),
            Some(mine[0].caller_reference.as_str())
        );
        asked.extend(obj.spec.paths.iter().map(|p| p.0.clone()));
    }
    for r in &records {
        assert!(
            r.paths.iter().all(|p| asked.contains(p)),
            "{distribution}: an invalidation nobody asked for: {r:#?}"
        );
    }
}
