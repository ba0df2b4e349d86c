//! End to end, the two newer parts of CloudFront's invalidation API: cache-tag items and
//! distribution tenants, through the real API server, the operator binary and the simulator.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use cfinv_api::crd::Phase;
use cloudfront_sim::{Completion, Operation, Simulator};
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(90);
const DIST: &str = "E2ETAGS00001";
const TENANT: &str = "dt_2yMvQgam3QkJo2z54FDl91dk1AB";

fn tenant_manifest(name: &str, tenant: &str, paths: &[&str]) -> Value {
    json!({
        "apiVersion": "cloudfront.invalidation.io/v1alpha1",
        "kind": "CloudFrontInvalidation",
        "metadata": {"name": name},
        "spec": {"distributionTenantId": tenant, "paths": paths},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_tenants() {
    let env = Env::start().await;
    let ns = env.namespace("tags-tenants").await;
    let sim = Simulator::builder()
        .distribution(DIST)
        .tenant(TENANT, DIST)
        .cache_tag_config(DIST, "x-amz-meta-cache-tag")
        .completion(Completion::Fixed(Duration::from_secs(2)))
        .tag_completion(Completion::Fixed(Duration::from_secs(1)))
        .start()
        .await
        .expect("simulator");
    let _op = Operator::start(&env, env.operator("tags-tenants", &sim, &ns)).await;
    let api = env.api(&ns);

    // A mixed batch: the two spellings of one tag are one tag, sent as first written, and
    // never as a path.
    env.kubectl
        .apply_json(
            &ns,
            &manifest(
                "mixed",
                DIST,
                &[
                    "#product:electronics",
                    "#Product:Electronics",
                    "/index.html",
                ],
            ),
        )
        .await
        .expect_ok("mixed batch");
    let mixed = wait_completed(&api, "mixed", WAIT).await;
    let own: Vec<_> = sim
        .invalidations(DIST)
        .into_iter()
        .filter(|r| r.distribution_tenant_id.is_none())
        .collect();
    assert_eq!(own.len(), 1, "{own:#?}");
    assert_eq!(own[0].paths, vec!["#product:electronics", "/index.html"]);
    let status = mixed.status.clone().unwrap();
    assert_eq!(status.billed_paths, Some(2));
    assert_eq!((status.path_count, status.tag_count), (Some(1), Some(1)));
    assert_eq!(sim.counters().paths_billed(DIST), 2);

    // A tenant object completes through the tenant operations only.
    let before = sim.counters();
    env.kubectl
        .apply_json(
            &ns,
            &tenant_manifest("tenant", TENANT, &["/index.html", "#brand:acme"]),
        )
        .await
        .expect_ok("tenant object");
    let tenant = wait_completed(&api, "tenant", WAIT).await;
    let after = sim.counters();
    let delta = |op| after.calls_total(op) - before.calls_total(op);
    assert_eq!(delta(Operation::CreateInvalidationForDistributionTenant), 1);
    assert_eq!(delta(Operation::CreateInvalidation), 0);
    assert_eq!(
        delta(Operation::GetInvalidation) + delta(Operation::ListInvalidations),
        0
    );
    assert!(delta(Operation::GetInvalidationForDistributionTenant) >= 1);
    let records: Vec<_> = sim
        .invalidations(DIST)
        .into_iter()
        .filter(|r| r.distribution_tenant_id.as_deref() == Some(TENANT))
        .collect();
    assert_eq!(records.len(), 1, "{records:#?}");
    let status = tenant.status.clone().unwrap();
    assert_eq!(
        status.invalidation_id.as_deref(),
        Some(records[0].id.as_str())
    );
    assert_eq!(
        status.target.as_deref(),
        Some(format!("tenant/{TENANT}").as_str())
    );
    assert_eq!(status.distribution_tenant_id.as_deref(), Some(TENANT));

    // An unknown tenant: one call, then Failed with a reason naming the field.
    let before = sim.counters();
    env.kubectl
        .apply_json(
            &ns,
            &tenant_manifest("ghost", "dt_0000000000000000000000000", &["/index.html"]),
        )
        .await
        .expect_ok("unknown tenant object");
    let ghost = wait_terminal(&api, "ghost", WAIT).await;
    assert_eq!(ghost.phase(), Phase::Failed);
    assert_eq!(
        condition(&ghost, "Failed"),
        Some(("True".into(), "DistributionTenantNotFound".into()))
    );
    let message = ghost.status.clone().unwrap().message.unwrap_or_default();
    assert!(message.contains("spec.distributionTenantId"), "{message}");
    let after = sim.counters();
    let calls: u64 = Operation::ALL
        .iter()
        .map(|op| after.calls_total(*op) - before.calls_total(*op))
        .sum();
    assert_eq!(calls, 1, "one call for the unknown tenant: {after:#?}");
    assert_eq!(
        after.calls(
            Operation::CreateInvalidationForDistributionTenant,
            "EntityNotFound"
        ),
        1
    );

    // Both ids, or neither: refused at admission (CEL on 1.25+, the schema's oneOf before).
    let mut both = tenant_manifest("both", TENANT, &["/a"]);
    both["spec"]["distributionId"] = json!(DIST);
    let mut neither = manifest("neither", DIST, &["/a"]);
    neither["spec"]
        .as_object_mut()
        .unwrap()
        .remove("distributionId");
    let before = sim.counters();
    for m in [both, neither] {
        let out = env.kubectl.apply_json(&ns, &m).await;
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(!out.success, "{} accepted: {text}", m["metadata"]["name"]);
        assert!(
            text.contains("distributionId") || text.contains("oneOf"),
            "{} refused without naming the rule: {text}",
            m["metadata"]["name"]
        );
    }
    let after = sim.counters();
    let calls: u64 = Operation::ALL
        .iter()
        .map(|op| after.calls_total(*op) - before.calls_total(*op))
        .sum();
    assert_eq!(calls, 0);

    // `kubectl get` shows one target column for both kinds, and paths and tags sent.
    let table = env
        .kubectl
        .run(&["get", "cfinv", "-n", &ns])
        .await
        .expect_ok("kubectl get");
    eprintln!("[e2e] kubectl get cfinv:\n{table}");
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "NAME",
        "TARGET",
        "PHASE",
        "INVALIDATION ID",
        "PATHS",
        "TAGS",
        "AGE",
    ] {
        assert!(header.contains(column), "{column} missing: {header}");
    }
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}: {table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("mixed")[1..3],
        [format!("distribution/{DIST}").as_str(), "Completed"]
    );
    assert_eq!(
        row("tenant")[1..3],
        [format!("tenant/{TENANT}").as_str(), "Completed"]
    );
    assert_eq!(row("mixed")[4..6], ["1", "1"], "{table}");
}
