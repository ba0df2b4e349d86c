//! End to end, operating the operator: leader election between two processes (SIGKILL and
//! SIGTERM of the leader), the namespace-annotation tenancy policy, the HTTP endpoints, and
//! what its logs may and must contain.

#[path = "e2e/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cfinv_api::crd::Phase;
use cfinv_operator::tenancy::ALLOWED_DISTRIBUTIONS_ANNOTATION;
use cfinv_testenv::ControlPlaneUser;
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(45);
const LEASE: &str = "e2e-leader";

/// The chart's leader-election Role (charts/cloudfront-invalidation-operator/templates/rbac.yaml,
/// rendered only when leader election is on, so not in deploy/), bound to the user `operator`
/// in `namespace`. Together with deploy/rbac.yaml's ClusterRole that is everything the chart
/// grants an operator with leader election.
async fn grant_chart_leader_election_role(env: &Env, namespace: &str) {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "e2e-leader-election", "namespace": namespace},
        "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": [LEASE], "verbs": ["get", "patch", "update"]},
        ],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "e2e-leader-election", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-leader-election"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "operator"}],
    });
    for doc in [role, binding] {
        env.kubectl
            .apply_json(namespace, &doc)
            .await
            .expect_ok("leader-election RBAC");
    }
}

/// An operator with leader election on the Lease `LEASE` in `namespace`, as the user
/// `operator` with the chart's permissions.
fn elected(
    env: &Env,
    sim: &cloudfront_sim::SimulatorHandle,
    namespace: &str,
    instance: &str,
    lease_seconds: u64,
) -> OperatorOptions {
    env.operator(instance, sim, namespace)
        .kubeconfig(env.kubeconfig(ControlPlaneUser::Operator))
        .arg("--leader-election")
        .arg(format!("--leader-election-namespace={namespace}"))
        .arg(format!("--leader-election-lease-name={LEASE}"))
        .arg(format!("--leader-election-lease-duration={lease_seconds}"))
        .arg(format!("--instance={instance}"))
}

async fn wait_holder(env: &Env, namespace: &str, want: &str, timeout: Duration) {
    wait_for(&format!("{want} to hold the lease"), timeout, || async {
        match env.lease_holder(namespace, LEASE).await? {
            Some(h) if h == want => Ok(()),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await
}

async fn leader_gauge(op: &Operator) -> f64 {
    metric(&op.metrics().await, "cloudfront_invalidation_leader", &[]).expect("leader gauge")
}

async fn aws_calls(op: &Operator) -> f64 {
    metric(
        &op.metrics().await,
        "cloudfront_invalidation_aws_calls_total",
        &[],
    )
    .unwrap_or(0.0)
}

/// `reportingInstance` of every events.k8s.io Event about `object`.
async fn reporting_instances(env: &Env, namespace: &str, object: &str) -> BTreeSet<String> {
    let events = env
        .kubectl
        .json(&["get", "events.v1.events.k8s.io", "-n", namespace])
        .await;
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == object)
        .filter_map(|e| e["reportingInstance"].as_str().map(String::from))
        .collect()
}

/// Two replicas: exactly one reconciles; SIGKILL of the leader hands over within the lease
/// duration; objects created after the kill complete; no invalidation is duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_one_reconciles_and_a_standby_takes_over_after_sigkill() {
    const DIST: &str = "E2ELEADER00001";
    const LEASE_SECONDS: u64 = 5;
    let env = Env::start().await;
    let ns = env.namespace("leader").await;
    let api = env.api(&ns);
    env.bind_deploy_cluster_role_to_operator_user().await;
    grant_chart_leader_election_role(&env, &ns).await;
    let sim = simulator(&[DIST], Duration::from_secs(1)).await;

    let mut a = Operator::start(&env, elected(&env, &sim, &ns, "op-a", LEASE_SECONDS)).await;
    wait_holder(&env, &ns, "op-a", WAIT).await;
    let b = Operator::start(&env, elected(&env, &sim, &ns, "op-b", LEASE_SECONDS)).await;
    // A standby is ready: it must not be restarted or hidden.
    b.wait_ready().await;

    let first: Vec<String> = (0..3).map(|i| format!("first-{i}")).collect();
    for n in &first {
        create(&api, &manifest(n, DIST, &[&format!("/{n}")])).await;
    }
    let mut objects = wait_all_completed(&api, &first, WAIT).await;
    assert_eq!(leader_gauge(&a).await, 1.0);
    assert_eq!(leader_gauge(&b).await, 0.0);
    // Every call CloudFront saw came from the leader.
    let seen: u64 = sim.counters().calls.values().flat_map(|o| o.values()).sum();
    assert!(seen >= 3, "{:?}", sim.counters());
    assert_eq!(aws_calls(&a).await, seen as f64, "the leader did the work");
    assert_eq!(aws_calls(&b).await, 0.0, "the standby called CloudFront");
    for n in &first {
        let by = wait_for("the events of the leader", WAIT, || async {
            let by = reporting_instances(&env, &ns, n).await;
            if by.is_empty() {
                Err("no events yet".to_owned())
            } else {
                Ok(by)
            }
        })
        .await;
        assert_eq!(by, BTreeSet::from(["op-a".to_owned()]), "{n}");
    }

    // The leader dies without a word.
    let killed = Instant::now();
    a.kill9().await;
    let second: Vec<String> = (0..3).map(|i| format!("after-kill-{i}")).collect();
    for n in &second {
        create(&api, &manifest(n, DIST, &[&format!("/{n}")])).await;
    }
    wait_holder(&env, &ns, "op-b", Duration::from_secs(30)).await;
    let takeover = killed.elapsed();
    eprintln!("[e2e] standby took over {takeover:.1?} after SIGKILL (lease {LEASE_SECONDS} s)");
    // The lease expires at most LEASE_SECONDS after the kill; the standby then waits up to 1 s
    // more before it takes an expired lease (kube-lease-manager), plus API round trips.
    // Generous for a loaded 2-core machine; well under the 30 s the wait above allows.
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 10),
        "takeover took {takeover:?}"
    );
    objects.extend(wait_all_completed(&api, &second, WAIT).await);
    assert_eq!(leader_gauge(&b).await, 1.0);
    for n in &second {
        let by = reporting_instances(&env, &ns, n).await;
        assert_eq!(by, BTreeSet::from(["op-b".to_owned()]), "{n}");
    }
    assert_one_invalidation_per_object(&sim, DIST, &objects);
    // The new leader has synced its cache long ago: ready.
    let (code, body) = b.get("/readyz").await.expect("GET /readyz");
    assert_eq!(code, 200, "/readyz of the leader: {body}");
}

/// SIGTERM: the leader finishes, releases the lease and exits 0 promptly, and the standby takes
/// over well before the lease would have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_and_exits_zero_promptly() {
    const DIST: &str = "E2ESIGTERM0001";
    // Long, so that a takeover by expiry (at least 20 s after the last renewal, which is at
    // most 10 s old) cannot pass for a takeover by release, even with the wide bound below.
    const LEASE_SECONDS: u64 = 30;
    let env = Env::start().await;
    let ns = env.namespace("sigterm").await;
    let api = env.api(&ns);
    env.bind_deploy_cluster_role_to_operator_user().await;
    grant_chart_leader_election_role(&env, &ns).await;
    let sim = simulator(&[DIST], Duration::from_secs(1)).await;

    let mut a = Operator::start(&env, elected(&env, &sim, &ns, "op-a", LEASE_SECONDS)).await;
    wait_holder(&env, &ns, "op-a", WAIT).await;
    let b = Operator::start(&env, elected(&env, &sim, &ns, "op-b", LEASE_SECONDS)).await;
    b.wait_ready().await;
    let before = create(&api, &manifest("before", DIST, &["/before"])).await;
    let before = wait_completed(&api, &before.metadata.name.unwrap(), WAIT).await;

    let signalled = Instant::now();
    let status = a.sigterm(Duration::from_secs(10)).await;
    let exited = signalled.elapsed();
    let status =
        status.unwrap_or_else(|| panic!("no exit 10 s after SIGTERM:\n{}", a.log_tail(20)));
    eprintln!("[e2e] leader exited {status} {exited:.1?} after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        a.log_tail(20)
    );
    // Wide enough for a loaded 2-core machine; the pod's grace period is 30 s.
    assert!(exited < Duration::from_secs(20), "took {exited:?} to exit");
    let holder = env.lease_holder(&ns, LEASE).await.expect("lease");
    assert_ne!(
        holder.as_deref(),
        Some("op-a"),
        "the lease was not released"
    );
    assert!(a.log().contains("lease released"), "{}", a.log_tail(20));

    let after = create(&api, &manifest("after", DIST, &["/after"])).await;
    wait_holder(&env, &ns, "op-b", Duration::from_secs(LEASE_SECONDS + 5)).await;
    let takeover = signalled.elapsed();
    eprintln!("[e2e] standby took over {takeover:.1?} after SIGTERM (lease {LEASE_SECONDS} s)");
    let after = wait_completed(&api, &after.metadata.name.unwrap(), WAIT).await;
    assert_one_invalidation_per_object(&sim, DIST, &[before, after]);
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS / 2),
        "the standby took over {takeover:?} after the leader released the lease: no faster \
         than waiting for a {LEASE_SECONDS} s lease to expire"
    );
}

/// `--tenancy namespace-annotation`: a namespace without the annotation gets NotAllowed and
/// CloudFront sees nothing; an annotated one works. The HTTP endpoints answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenancy_by_namespace_annotation_and_http_endpoints() {
    const DIST: &str = "E2ETENANCY0001";
    let env = Env::start().await;
    let denied_ns = env.namespace("tenant-denied").await;
    let other_ns = env.namespace("tenant-other").await;
    let allowed_ns = env.namespace("tenant-allowed").await;
    // The chart's permissions for this mode: deploy/rbac.yaml plus its namespace reader.
    env.bind_deploy_cluster_role_to_operator_user().await;
    env.grant_operator_user(
        "e2e-namespace-reader",
        json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}]),
    )
    .await;
    let sim = simulator(&[DIST, "E2EOTHERDIST01"], Duration::from_secs(1)).await;
    let op = Operator::start(
        &env,
        env.operator("tenancy", &sim, &denied_ns)
            .all_namespaces()
            .kubeconfig(env.kubeconfig(ControlPlaneUser::Operator))
            .arg("--tenancy=namespace-annotation"),
    )
    .await;
    env.kubectl
        .run(&[
            "annotate",
            "namespace",
            &other_ns,
            &format!("{ALLOWED_DISTRIBUTIONS_ANNOTATION}=E2EOTHERDIST01"),
        ])
        .await
        .expect_ok("annotate");

    for ns in [&denied_ns, &other_ns] {
        create(&env.api(ns), &manifest("not-mine", DIST, &["/index.html"])).await;
        let obj = wait_terminal(&env.api(ns), "not-mine", WAIT).await;
        assert_eq!(obj.phase(), Phase::Failed, "{ns}: {:?}", obj.status);
        assert_eq!(
            condition(&obj, "Failed"),
            Some(("True".into(), "NotAllowed".into()))
        );
        let message = obj.status.unwrap().message.unwrap_or_default();
        assert!(
            message.contains(&format!("kubectl annotate namespace {ns}")),
            "{message}"
        );
        let events = env
            .kubectl
            .json(&[
                "get",
                "events",
                "-n",
                ns,
                "--field-selector=reason=NotAllowed",
            ])
            .await;
        assert_eq!(events["items"][0]["type"], "Warning", "{events:#}");
    }
    let counters = sim.counters();
    assert!(
        counters.calls.is_empty(),
        "CloudFront was called: {counters:#?}"
    );

    env.kubectl
        .run(&[
            "annotate",
            "namespace",
            &allowed_ns,
            &format!("{ALLOWED_DISTRIBUTIONS_ANNOTATION}=E2EOTHERDIST01,{DIST}"),
        ])
        .await
        .expect_ok("annotate");
    let api = env.api(&allowed_ns);
    create(&api, &manifest("mine", DIST, &["/index.html"])).await;
    let done = wait_completed(&api, "mine", WAIT).await;
    assert_one_invalidation_per_object(&sim, DIST, &[done]);

    let metrics = op.metrics().await;
    let calls = metric(&metrics, "cloudfront_invalidation_aws_calls_total", &[]);
    assert!(calls.is_some_and(|n| n >= 2.0), "{metrics}");
    let not_allowed = metric(
        &metrics,
        "cloudfront_invalidation_failures_total",
        &["reason=\"NotAllowed\""],
    );
    assert_eq!(not_allowed, Some(2.0), "{metrics}");
    assert_eq!(op.get("/healthz").await, Ok((200, "ok".to_owned())));
    let (code, body) = op.get("/readyz").await.expect("GET /readyz");
    assert_eq!(
        code, 200,
        "/readyz after reconciles in two namespaces: {body}"
    );
}

/// A field of a JSON log line: the event's own, else the current span's.
fn field<'a>(line: &'a Value, key: &str) -> Option<&'a Value> {
    line.get(key)
        .or_else(|| line.get("span").and_then(|s| s.get(key)))
        .or_else(|| {
            line.get("spans")?
                .as_array()?
                .iter()
                .rev()
                .find_map(|s| s.get(key))
        })
}

/// `RUST_LOG=trace` and credentials that look like credentials: none of them, and no request
/// signature, reaches the log; the log lines about an object say which object, which
/// distribution and, once known, which invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_leak_no_credentials_and_carry_object_fields() {
    const DIST: &str = "E2ELOGS0000001";
    const KEY_ID: &str = "AKIADONOTLOG7EXAMPLE";
    const SECRET: &str = "SECRETdoNOTlog/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const SESSION: &str = "SESSIONdoNOTlogFwoGZXIvYXdzEXAMPLETOKEN";
    let env = Env::start().await;
    let ns = env.namespace("logs").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(1)).await;
    let op = Operator::start(
        &env,
        env.operator("logs", &sim, &ns)
            .env("RUST_LOG", "trace")
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_SESSION_TOKEN", SESSION),
    )
    .await;
    create(
        &api,
        &manifest("logged", DIST, &["/index.html", "/static/*"]),
    )
    .await;
    let done = wait_completed(&api, "logged", WAIT).await;
    let id = done
        .status
        .as_ref()
        .unwrap()
        .invalidation_id
        .clone()
        .unwrap();
    // The Completed event is the last thing the reconcile does.
    wait_for("the Completed event", WAIT, || async {
        let out = env
            .kubectl
            .json(&[
                "get",
                "events",
                "-n",
                &ns,
                "--field-selector=reason=Completed",
            ])
            .await;
        if out["items"].as_array().is_some_and(|i| !i.is_empty()) {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    let records = sim.invalidations(DIST);
    assert_eq!(records.len(), 1);

    let log = op.log();
    let lines = op.json_lines();
    assert!(
        lines.iter().any(|l| l["level"] == "TRACE"),
        "RUST_LOG=trace produced no TRACE line"
    );
    let kube_token =
        yaml_documents(&std::fs::read_to_string(env.kubeconfig(ControlPlaneUser::Admin)).unwrap())
            [0]["users"][0]["user"]["token"]
            .as_str()
            .expect("a token in the kubeconfig")
            .to_owned();
    for (what, needle) in [
        ("the secret access key", SECRET),
        ("the secret access key's start", "SECRETdoNOTlog"),
        ("the session token", SESSION),
        ("the session token's start", "SESSIONdoNOTlog"),
        ("the access key id", KEY_ID),
        ("a request signature", "Signature="),
        ("an Authorization header", "AWS4-HMAC-SHA256"),
        ("the Kubernetes bearer token", kube_token.as_str()),
    ] {
        if let Some(at) = log.find(needle) {
            let line = log[..at].rsplit('\n').next().unwrap_or_default();
            let end = log[at..].find('\n').map_or(log.len(), |e| at + e);
            panic!(
                "{what} is in the log ({} lines, {} bytes): {}",
                lines.len(),
                log.len(),
                &log[at - line.len()..end]
            );
        }
    }
    let unparsed: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("unparsed").is_some())
        .collect();
    assert!(
        unparsed.is_empty(),
        "lines that are not JSON: {unparsed:#?}"
    );

    let object = format!("{ns}/logged");
    let about: Vec<&Value> = lines
        .iter()
        .filter(|l| field(l, "object").and_then(Value::as_str) == Some(&object))
        .collect();
    assert!(!about.is_empty(), "no log line names {object}");
    for line in &about {
        // The span names where the invalidation goes: `distribution/<id>` or `tenant/<id>`.
        assert_eq!(
            field(line, "destination").and_then(Value::as_str),
            Some(format!("distribution/{DIST}").as_str()),
            "{line}"
        );
    }
    let accepted = about
        .iter()
        .position(|l| l["message"] == "CloudFront accepted the invalidation")
        .unwrap_or_else(|| panic!("no `accepted` line among {about:#?}"));
    let completed = about
        .iter()
        .position(|l| l["message"] == "CloudFront completed the invalidation")
        .unwrap_or_else(|| panic!("no `completed` line among {about:#?}"));
    assert!(accepted < completed);
    for line in &about[accepted..] {
        // A reconcile that started before the status held the id records it when CloudFront
        // answers; every later one starts with it.
        assert_eq!(
            field(line, "invalidation_id").and_then(Value::as_str),
            Some(id.as_str()),
            "{line}"
        );
    }
    eprintln!(
        "[e2e] logs: {} lines ({} bytes), {} about {object}; e.g. {}",
        lines.len(),
        log.len(),
        about.len(),
        about[accepted]
    );
}

/// Signals a running operator (SIGSTOP / SIGCONT: a process that stalls, as under a long GC
/// pause or a frozen node, then resumes).
fn signal(op: &Operator, sig: libc::c_int) {
    let pid = op.pid().expect("running") as libc::pid_t;
    // SAFETY: kill(2) on our own child, which has not been reaped.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// (name, labels) of every series a real Prometheus text parser reads from a scrape.
fn series(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the scrape parses");
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            (s.metric, labels)
        })
        .collect()
}

fn assert_no_duplicates(text: &str) {
    let mut seen = BTreeSet::new();
    for s in series(text) {
        assert!(seen.insert(s.clone()), "duplicate series {s:?} in\n{text}");
    }
    let mut families = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(
            families.insert(line.to_owned()),
            "duplicate family {line:?} in\n{text}"
        );
    }
}

/// Item 9: one process is elected, stalls and loses the lease to the other, resumes as a
/// standby, and is elected again when the other dies. As a standby it exports no cache
/// gauges; after its second election its scrape has no duplicate family or series (a real
/// Prometheus parser reads it), and it reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item9_metrics_survive_two_elections() {
    const DIST: &str = "E2EITEM9ELEC01";
    const LEASE_SECONDS: u64 = 5;
    let env = Env::start().await;
    let ns = env.namespace("item9").await;
    let api = env.api(&ns);
    env.bind_deploy_cluster_role_to_operator_user().await;
    grant_chart_leader_election_role(&env, &ns).await;
    let sim = simulator(&[DIST], Duration::from_secs(1)).await;

    let a = Operator::start(&env, elected(&env, &sim, &ns, "op-a", LEASE_SECONDS)).await;
    wait_holder(&env, &ns, "op-a", WAIT).await;
    create(&api, &manifest("first", DIST, &["/first"])).await;
    wait_completed(&api, "first", WAIT).await;
    let mut b = Operator::start(&env, elected(&env, &sim, &ns, "op-b", LEASE_SECONDS)).await;

    // A stalls past its lease; B takes over; A resumes and finds it lost the lease.
    signal(&a, libc::SIGSTOP);
    wait_holder(&env, &ns, "op-b", Duration::from_secs(30)).await;
    signal(&a, libc::SIGCONT);
    wait_for("op-a to notice it is a standby", WAIT, || async {
        let v = leader_gauge(&a).await;
        if v == 0.0 {
            Ok(())
        } else {
            Err(format!("leader gauge {v}"))
        }
    })
    .await;
    let standby = a.metrics().await;
    assert_no_duplicates(&standby);
    for gauge in [
        "cloudfront_invalidation_objects",
        "cloudfront_invalidation_in_flight",
        "cloudfront_invalidation_in_flight_paths",
    ] {
        assert!(
            series(&standby).iter().all(|(name, _)| name != gauge),
            "the standby exports {gauge}:\n{standby}"
        );
    }

    // B dies: A is elected a second time.
    b.kill9().await;
    wait_holder(&env, &ns, "op-a", Duration::from_secs(30)).await;
    create(&api, &manifest("second", DIST, &["/second"])).await;
    wait_completed(&api, "second", WAIT).await;
    let leader = a.metrics().await;
    assert_eq!(leader_gauge(&a).await, 1.0);
    assert_no_duplicates(&leader);
    let objects: f64 = series(&leader)
        .iter()
        .filter(|(name, _)| name == "cloudfront_invalidation_objects")
        .count() as f64;
    assert!(
        objects >= 1.0,
        "the leader exports its cache gauges:\n{leader}"
    );
    assert_eq!(
        metric(
            &leader,
            "cloudfront_invalidation_objects",
            &["phase=\"Completed\""]
        ),
        Some(2.0),
        "{leader}"
    );
}
