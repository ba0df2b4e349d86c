//! End to end, through kubectl: the operator binary against a real kube-apiserver and the
//! CloudFront simulator. Happy path, admission of invalid manifests, the chart's RBAC, the
//! examples, and how the CRD can be installed on a server without CEL.

#[path = "e2e/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use cfinv_api::crd::Phase;
use cfinv_testenv::ControlPlaneUser;
use cloudfront_sim::{Operation, SimulatorHandle};
use kube::CustomResourceExt;
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(45);

const HAPPY_DIST: &str = "E2EHAPPYPATH01";
const HAPPY_MANIFEST: &str = r#"
apiVersion: cloudfront.invalidation.io/v1alpha1
kind: CloudFrontInvalidation
metadata:
  name: website-release
spec:
  distributionId: E2EHAPPYPATH01
  paths:
    - /index.html
    - index.html        # the same path without its leading slash: dropped as a duplicate
    - /static/*
    - /static/app.js    # covered by /static/*: dropped
    - /about
  timeoutSeconds: 120
"#;

/// Apply, `kubectl wait`, then every visible outcome: status, printer columns, events, and one
/// CreateInvalidation in CloudFront.
async fn happy_path(env: &Env, ns: &str, sim: &SimulatorHandle) {
    let kubectl = &env.kubectl;
    kubectl
        .apply(ns, HAPPY_MANIFEST)
        .await
        .expect_ok("kubectl apply");
    for condition in ["Completed", "Ready"] {
        kubectl
            .run(&[
                "wait",
                "-n",
                ns,
                &format!("--for=condition={condition}"),
                "--timeout=45s",
                "cloudfrontinvalidation/website-release",
            ])
            .await
            .expect_ok(&format!("kubectl wait --for=condition={condition}"));
    }

    // Status, as kubectl sees it.
    let obj = kubectl
        .json(&["get", "-n", ns, "cfinv", "website-release"])
        .await;
    let status = &obj["status"];
    let uid = obj["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(status["phase"], "Completed", "{status:#}");
    let records = sim.invalidations(HAPPY_DIST);
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(status["invalidationId"], record.id.as_str(), "{status:#}");
    assert_eq!(status["callerReference"], uid, "defaults to the UID");
    assert_eq!(record.caller_reference, uid);
    assert_eq!(status["billedPaths"], 3, "{status:#}");
    assert_eq!(
        status["submittedPaths"],
        json!(["/index.html", "/static/*", "/about"]),
        "{status:#}"
    );
    assert_eq!(record.paths, ["/index.html", "/static/*", "/about"]);
    assert_eq!(status["observedGeneration"], obj["metadata"]["generation"]);
    let time = |field: &str| {
        let text = status[field]
            .as_str()
            .unwrap_or_else(|| panic!("status.{field} missing: {status:#}"));
        text.parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("status.{field} {text:?}: {e}"))
    };
    let (start, create, completion) = (
        time("startTime"),
        time("createTime"),
        time("completionTime"),
    );
    // Kubernetes times have whole seconds; CloudFront's CreateTime has milliseconds.
    let second = jiff::SignedDuration::from_secs(1);
    assert!(start <= create + second, "start {start} create {create}");
    assert!(
        create <= completion + second,
        "create {create} completion {completion}"
    );
    assert!(
        completion.duration_since(create) >= jiff::SignedDuration::from_secs(1),
        "completed {completion} only {:?} after creation {create}; CloudFront needed 2 s",
        completion.duration_since(create)
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains(&record.id), "{message}");
    for (type_, want) in [
        ("Completed", "True"),
        ("Ready", "True"),
        ("Failed", "False"),
        ("Reconciling", "False"),
        ("Stalled", "False"),
    ] {
        let c = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
            .unwrap_or_else(|| panic!("no {type_} condition: {status:#}"));
        assert_eq!(c["status"], want, "{type_}: {c:#}");
        assert_eq!(c["observedGeneration"], obj["metadata"]["generation"]);
    }

    // Printer columns.
    let table = kubectl
        .run(&["get", "-n", ns, "cfinv"])
        .await
        .expect_ok("kubectl get cfinv");
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TARGET",
            "PHASE",
            "INVALIDATION",
            "ID",
            "PATHS",
            "TAGS",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let target = format!("distribution/{HAPPY_DIST}");
    assert_eq!(
        row[..6],
        [
            "website-release",
            target.as_str(),
            "Completed",
            record.id.as_str(),
            "3",
            "0"
        ],
        "{table}"
    );
    assert!(lines.next().is_none(), "one object only:\n{table}");

    // Events, as `kubectl describe` and `kubectl get events` show them.
    let events = wait_for("the Submitted and Completed events", WAIT, || async {
        let list = kubectl
            .run(&[
                "get",
                "events",
                "-n",
                ns,
                "--field-selector=involvedObject.name=website-release",
                "-o",
                "json",
            ])
            .await;
        if !list.success {
            return Err(list.stderr);
        }
        let list: Value = serde_json::from_str(&list.stdout).map_err(|e| e.to_string())?;
        let reasons: BTreeSet<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["reason"].as_str().map(String::from))
            .collect();
        if reasons.contains("Submitted") && reasons.contains("Completed") {
            Ok(list)
        } else {
            Err(format!("reasons so far: {reasons:?}"))
        }
    })
    .await;
    for event in events["items"].as_array().into_iter().flatten() {
        assert_eq!(event["type"], "Normal", "{event:#}");
        assert_eq!(event["involvedObject"]["kind"], "CloudFrontInvalidation");
        assert_eq!(event["involvedObject"]["uid"], uid);
    }
    let describe = kubectl
        .run(&["describe", "-n", ns, "cfinv", "website-release"])
        .await
        .expect_ok("kubectl describe");
    for needle in ["Submitted", "Completed", record.id.as_str(), "Events:"] {
        assert!(describe.contains(needle), "no {needle:?} in:\n{describe}");
    }

    // CloudFront saw exactly one request.
    let counters = sim.counters();
    assert_eq!(
        counters.calls_total(Operation::CreateInvalidation),
        1,
        "{counters:#?}"
    );
    assert_eq!(counters.invalidations_created, 1, "{counters:#?}");
    assert_eq!(counters.paths_billed(HAPPY_DIST), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_through_kubectl() {
    let env = Env::start().await;
    let ns = env.namespace("happy").await;
    let sim = simulator(&[HAPPY_DIST], Duration::from_secs(2)).await;
    let op = Operator::start(&env, env.operator("happy", &sim, &ns)).await;
    happy_path(&env, &ns, &sim).await;
    // Long synced by now: the readiness probe must say so.
    assert_eq!(op.get("/healthz").await, Ok((200, "ok".to_owned())));
    let (code, body) = op.get("/readyz").await.expect("GET /readyz");
    assert_eq!(code, 200, "/readyz after a completed reconcile: {body}");
}

/// The operator runs as the ordinary user `operator` with exactly the permissions of
/// `deploy/rbac.yaml`'s ClusterRole (the chart with default values) and the happy path passes:
/// list/watch, status writes and events are all allowed, and nothing in its log was forbidden.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_with_only_the_charts_rbac() {
    let env = Env::start().await;
    let ns = env.namespace("rbac").await;
    let as_operator = env.kubectl_as(ControlPlaneUser::Operator);
    let denied = as_operator
        .run(&[
            "auth",
            "can-i",
            "list",
            "cloudfrontinvalidations",
            "-n",
            &ns,
        ])
        .await;
    assert_eq!(denied.stdout.trim(), "no", "before the binding: {denied:?}");
    env.bind_deploy_cluster_role_to_operator_user().await;
    let allowed = as_operator
        .run(&[
            "auth",
            "can-i",
            "list",
            "cloudfrontinvalidations",
            "-n",
            &ns,
        ])
        .await;
    assert_eq!(
        allowed.stdout.trim(),
        "yes",
        "after the binding: {allowed:?}"
    );
    // The user cannot do more than the chart grants: no writes to the spec, no secrets.
    for verb_resource in [["update", "cloudfrontinvalidations"], ["get", "secrets"]] {
        let out = as_operator
            .run(&[
                "auth",
                "can-i",
                verb_resource[0],
                verb_resource[1],
                "-n",
                &ns,
            ])
            .await;
        assert_eq!(out.stdout.trim(), "no", "{verb_resource:?}: {out:?}");
    }

    let sim = simulator(&[HAPPY_DIST], Duration::from_secs(2)).await;
    let op = Operator::start(
        &env,
        env.operator("rbac", &sim, &ns)
            .kubeconfig(env.kubeconfig(ControlPlaneUser::Operator)),
    )
    .await;
    happy_path(&env, &ns, &sim).await;
    let log = op.log().to_lowercase();
    assert!(
        !log.contains("forbidden"),
        "the operator was refused something:\n{}",
        op.log_tail(40)
    );
}

/// One row of the admission table: a change to a valid manifest, and the field the rejection
/// must name. (kube-apiserver v1.20 names a list item's field `spec.paths`; newer servers say
/// `spec.paths[0]`, which contains it.)
struct Invalid {
    what: &'static str,
    field: &'static str,
    change: fn(&mut Value),
}

fn admission_table() -> Vec<Invalid> {
    vec![
        Invalid {
            what: "lower-case distribution id",
            field: "spec.distributionId",
            change: |m| m["spec"]["distributionId"] = json!("e2-lower"),
        },
        Invalid {
            what: "'*' in the middle of a path",
            field: "spec.paths",
            change: |m| m["spec"]["paths"] = json!(["/a*b"]),
        },
        Invalid {
            what: "3,001 paths",
            field: "spec.paths",
            change: |m| {
                m["spec"]["paths"] = (0..3001).map(|i| format!("/p/{i}")).collect();
            },
        },
        Invalid {
            what: "a 4,001-character path",
            field: "spec.paths",
            change: |m| m["spec"]["paths"] = json!([format!("/{}", "a".repeat(4000))]),
        },
        Invalid {
            what: "timeoutSeconds 30",
            field: "spec.timeoutSeconds",
            change: |m| m["spec"]["timeoutSeconds"] = json!(30),
        },
        Invalid {
            what: "timeoutSeconds 4000",
            field: "spec.timeoutSeconds",
            change: |m| m["spec"]["timeoutSeconds"] = json!(4000),
        },
        Invalid {
            what: "a 129-character callerReference",
            field: "spec.callerReference",
            change: |m| m["spec"]["callerReference"] = json!("r".repeat(129)),
        },
        Invalid {
            what: "no paths",
            field: "spec.paths",
            change: |m| m["spec"]["paths"] = json!([]),
        },
    ]
}

/// Every invalid manifest is refused by `kubectl apply` with a message naming the field; the
/// limits themselves are accepted (server-side dry run); CloudFront sees no call for any of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_rejected_at_admission() {
    const DIST: &str = "E2EADMISSION01";
    let env = Env::start().await;
    let ns = env.namespace("admission").await;
    let sim = simulator(&[DIST], Duration::from_secs(1)).await;
    let _op = Operator::start(&env, env.operator("admission", &sim, &ns)).await;

    let mut failures = Vec::new();
    for (i, row) in admission_table().into_iter().enumerate() {
        let mut m = manifest(&format!("invalid-{i}"), DIST, &["/index.html"]);
        (row.change)(&mut m);
        let out = env.kubectl.apply_json(&ns, &m).await;
        let text = format!("{}{}", out.stderr, out.stdout);
        let short: String = text.chars().take(300).collect();
        if out.success {
            failures.push(format!("{}: accepted: {short}", row.what));
        } else if !text.contains(row.field) {
            failures.push(format!(
                "{}: refused without naming {}: {short}",
                row.what, row.field
            ));
        } else {
            eprintln!("[e2e] {}: {}", row.what, short.trim());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The limits are allowed.
    type Change = fn(&mut Value);
    let limits: [(&str, Change); 5] = [
        ("3,000 paths", |m| {
            m["spec"]["paths"] = (0..3000).map(|i| format!("/p/{i}")).collect();
        }),
        ("a 4,000-character path", |m| {
            m["spec"]["paths"] = json!([format!("/{}", "a".repeat(3999))]);
        }),
        ("timeoutSeconds 60", |m| {
            m["spec"]["timeoutSeconds"] = json!(60)
        }),
        ("timeoutSeconds 3600", |m| {
            m["spec"]["timeoutSeconds"] = json!(3600)
        }),
        ("a 128-character callerReference and a trailing '*'", |m| {
            m["spec"]["callerReference"] = json!("r".repeat(128));
            m["spec"]["paths"] = json!(["/images/*", "/app.js*"]);
        }),
    ];
    for (what, change) in limits {
        let mut m = manifest("at-the-limit", DIST, &["/index.html"]);
        change(&mut m);
        let out = env
            .kubectl
            .run_with_stdin(
                &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
                Some(&m.to_string()),
            )
            .await;
        assert!(out.success, "{what} refused: {}", out.stderr);
    }

    // A valid object afterwards: once it is Completed the operator has seen everything there
    // was to see, and still CloudFront got exactly one request, for it.
    let valid = manifest("valid", DIST, &["/index.html"]);
    env.kubectl
        .apply_json(&ns, &valid)
        .await
        .expect_ok("apply the valid manifest");
    let api = env.api(&ns);
    let obj = wait_completed(&api, "valid", WAIT).await;
    let listed = env.kubectl.json(&["get", "-n", &ns, "cfinv"]).await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "only the valid object exists: {listed:#}"
    );
    assert_eq!(sim.counters().calls_total(Operation::CreateInvalidation), 1);
    assert_one_invalidation_per_object(&sim, DIST, std::slice::from_ref(&obj));

    // The spec is immutable. A server with CEL refuses the change; v1.20 cannot, so the
    // operator must say it ignores the change, and must not invalidate again.
    let patch = env
        .kubectl
        .run(&[
            "patch",
            "-n",
            &ns,
            "cfinv",
            "valid",
            "--type=merge",
            "-p",
            r#"{"spec":{"paths":["/changed"]}}"#,
        ])
        .await;
    if env.knows_cel() {
        assert!(!patch.success, "spec change accepted");
        assert!(patch.stderr.contains("immutable"), "{}", patch.stderr);
    } else {
        assert!(patch.success, "{}", patch.stderr);
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
            match events["items"].as_array().and_then(|i| i.first()) {
                Some(e) if e["type"] == "Warning" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        let changed = api.get("valid").await.expect("get");
        assert_eq!(changed.metadata.generation, Some(2));
        let status = changed.status.clone().expect("status");
        assert_eq!(status.observed_generation, Some(2), "{status:?}");
        assert_eq!(changed.phase(), Phase::Completed);
        assert_eq!(status.invalidation_id, obj.status.unwrap().invalidation_id);
        assert_eq!(sim.counters().calls_total(Operation::CreateInvalidation), 1);
    }
}

/// Every plain CloudFrontInvalidation manifest under examples/ (Helm templates skipped) applies
/// to a test namespace and reaches Completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_reach_completed() {
    let mut examples = Vec::new();
    let mut stack = vec![repo_path("examples")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if !is_yaml || text.contains("{{") {
                continue; // not YAML, or a Helm template
            }
            for doc in yaml_documents(&text) {
                if doc["kind"] == "CloudFrontInvalidation" {
                    examples.push((path.clone(), doc));
                }
            }
        }
    }
    examples.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        !examples.is_empty(),
        "no CloudFrontInvalidation manifest under examples/"
    );
    let ids = |field: &str| -> BTreeSet<String> {
        examples
            .iter()
            .filter_map(|(_, d)| d["spec"][field].as_str().map(str::to_owned))
            .collect()
    };
    let distributions = ids("distributionId");
    let tenants = ids("distributionTenantId");

    let env = Env::start().await;
    let ns = env.namespace("examples").await;
    let first = distributions
        .iter()
        .next()
        .expect("an example names a distribution");
    let mut sim = cloudfront_sim::Simulator::builder()
        .distributions(distributions.iter().cloned())
        .completion(cloudfront_sim::Completion::Fixed(Duration::from_secs(1)));
    // Tenant examples: tenants of the first example distribution.
    for tenant in &tenants {
        sim = sim.tenant(tenant.clone(), first.clone());
    }
    let sim = sim
        .start()
        .await
        .expect("cannot start the CloudFront simulator");
    let _op = Operator::start(&env, env.operator("examples", &sim, &ns)).await;

    let mut created = Vec::new();
    for (path, mut doc) in examples {
        if let Some(meta) = doc["metadata"].as_object_mut() {
            meta.remove("namespace"); // into the test namespace
        }
        // `generateName` needs `create`; a fixed name is applied, as the examples say.
        let verb = if doc["metadata"]["generateName"].is_string() {
            "create"
        } else {
            "apply"
        };
        let out = env
            .kubectl
            .run_with_stdin(
                &[verb, "-n", &ns, "-f", "-", "-o", "name"],
                Some(&doc.to_string()),
            )
            .await
            .expect_ok(&format!("kubectl {verb} {}", path.display()));
        let name = out.trim().rsplit('/').next().unwrap_or_default().to_owned();
        eprintln!("[e2e] {} -> {name}", path.display());
        created.push((path, name));
    }
    let api = env.api(&ns);
    for (path, name) in &created {
        let obj = wait_terminal(&api, name, WAIT).await;
        assert_eq!(
            obj.phase(),
            Phase::Completed,
            "{} ended {}: {:?}",
            path.display(),
            obj.phase(),
            obj.status
        );
    }
    assert_eq!(sim.counters().invalidations_created, created.len() as u64);
}

/// Which ways of installing the CRD work on a server without CEL (kube-apiserver v1.20), so
/// the docs and the chart can say so. The result is pinned here; if a newer server is used
/// (KUBEBUILDER_ASSETS), only the "works" half is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_install_methods() {
    let env = Env::start_without_crd().await;
    let crd = repo_path("crds/cloudfront.invalidation.io_cloudfrontinvalidations.yaml");
    let crd = crd.to_str().expect("utf-8 path");
    let knows_cel = env.knows_cel();

    // Plain `kubectl apply`: client-side validation does not know x-kubernetes-validations.
    let plain = env.kubectl.run(&["apply", "-f", crd]).await;
    eprintln!(
        "[e2e] kubectl apply: success={} {}",
        plain.success,
        plain.stderr.trim()
    );
    // Server-side apply.
    let server_side = env
        .kubectl
        .run(&["apply", "--server-side", "--validate=false", "-f", crd])
        .await;
    eprintln!(
        "[e2e] kubectl apply --server-side --validate=false: success={} {}",
        server_side.success,
        server_side.stderr.trim()
    );
    if !knows_cel {
        assert!(!plain.success, "plain apply unexpectedly worked");
        assert!(
            plain.stderr.contains("x-kubernetes-validations"),
            "{}",
            plain.stderr
        );
        assert!(
            !server_side.success,
            "server-side apply unexpectedly worked"
        );
        assert!(
            server_side.stderr.contains("field not declared in schema"),
            "{}",
            server_side.stderr
        );
    }
    if server_side.success {
        env.kubectl
            .run(&["delete", "-f", crd, "--wait=true"])
            .await
            .expect_ok("delete the CRD");
    }

    // What works: client-side apply without validation ...
    env.kubectl
        .run(&["apply", "--validate=false", "-f", crd])
        .await
        .expect_ok("kubectl apply --validate=false");
    env.kubectl
        .run(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            &format!("crd/{CRD_NAME}"),
        ])
        .await
        .expect_ok("Established");
    // ... and the kube client's create/replace (cfinv_testenv::install_crd), also over an existing CRD.
    cfinv_testenv::install_crd(&env.admin, cfinv_api::crd::CloudFrontInvalidation::crd())
        .await
        .expect("install_crd");

    let stored = env.kubectl.json(&["get", "crd", CRD_NAME]).await;
    let has_cel = stored.to_string().contains("x-kubernetes-validations");
    assert_eq!(
        has_cel, knows_cel,
        "CEL rules kept by the server: {has_cel}"
    );
    // Without CEL the OpenAPI pattern still refuses a '*' in the middle.
    let ns = env.namespace("crd").await;
    let out = env
        .kubectl
        .apply_json(&ns, &manifest("x", "E1", &["/a*b"]))
        .await;
    assert!(!out.success, "a '*' in the middle was accepted");
    eprintln!(
        "[e2e] on {}: server-side apply {}; client-side apply --validate=false and the kube \
         client's create/replace work",
        env.cp.apiserver_version(),
        if server_side.success {
            "works"
        } else {
            "is refused"
        }
    );
}
