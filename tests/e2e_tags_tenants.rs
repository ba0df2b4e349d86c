//! End to end, the two newer parts of CloudFront's invalidation API: cache-tag items and
//! distribution tenants, through the real API server, the operator binary and the simulator.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use cfinv_api::crd::Phase;
use cloudfront_sim::{Completion, FaultConfig, Operation, Simulator};
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

/// The `reason` of every Event about object `name`, as `kubectl get events` lists them.
async fn event_reasons(env: &Env, ns: &str, name: &str) -> Vec<(String, String)> {
    let selector = format!("--field-selector=involvedObject.name={name}");
    let list = env
        .kubectl
        .json(&["get", "events", "-n", ns, &selector])
        .await;
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "NoCacheTagConfig")
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Tags sent to a distribution without a CacheTagConfig match nothing: a Warning Event says so
/// (one GetDistributionConfig per distribution, none for paths alone), and when the call is
/// denied the operator stays silent. Every object completes as CloudFront reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_tag_config_warning() {
    const PLAIN: &str = "E2ENOTAGCFG1";
    const TAGGED: &str = "E2ETAGCFG001";
    const DENIED: &str = "E2EDENIED001";
    let env = Env::start().await;
    let ns = env.namespace("cache-tag-config").await;
    let sim = Simulator::builder()
        .distribution(PLAIN)
        .distribution(TAGGED)
        .distribution(DENIED)
        .cache_tag_config(TAGGED, "x-amz-meta-cache-tag")
        .completion(Completion::Fixed(Duration::from_secs(2)))
        .tag_completion(Completion::Fixed(Duration::from_secs(1)))
        .start()
        .await
        .expect("simulator");
    let op = Operator::start(&env, env.operator("cache-tag-config", &sim, &ns)).await;
    let api = env.api(&ns);
    let config_calls = || sim.counters().calls_total(Operation::GetDistributionConfig);
    let apply = |name: &'static str, dist: &'static str, paths: &'static [&'static str]| {
        let (env, ns) = (&env, &ns);
        async move {
            env.kubectl
                .apply_json(ns, &manifest(name, dist, paths))
                .await
                .expect_ok(name);
        }
    };

    // Paths alone: never a GetDistributionConfig, even on a distribution without the config.
    apply("paths-only", PLAIN, &["/index.html", "/static/*"]).await;
    wait_completed(&api, "paths-only", WAIT).await;
    assert_eq!(config_calls(), 0, "paths alone never read the config");
    assert!(event_reasons(&env, &ns, "paths-only").await.is_empty());

    // Tags on a distribution without CacheTagConfig: one Warning Event, and Completed.
    apply("no-config", PLAIN, &["#product:electronics", "/index.html"]).await;
    let done = wait_completed(&api, "no-config", WAIT).await;
    assert_eq!(done.phase(), Phase::Completed);
    let events = wait_for("the NoCacheTagConfig event", WAIT, || async {
        let events = event_reasons(&env, &ns, "no-config").await;
        if events.is_empty() {
            Err("no event yet".to_owned())
        } else {
            Ok(events)
        }
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "Warning");
    assert!(
        events[0]
            .1
            .contains(&format!("distribution {PLAIN} has no CacheTagConfig"))
            && events[0].1.contains("#product:electronics")
            && events[0].1.contains("match nothing"),
        "{events:?}"
    );
    assert_eq!(config_calls(), 1);

    // With a CacheTagConfig: no Event.
    apply("with-config", TAGGED, &["#product:electronics"]).await;
    wait_completed(&api, "with-config", WAIT).await;
    wait_for(
        "the GetDistributionConfig of the tagged distribution",
        WAIT,
        || async {
            if config_calls() == 2 {
                Ok(())
            } else {
                Err(format!("{} calls", config_calls()))
            }
        },
    )
    .await;
    // The check ran (its one call was answered); give its Event time to show up, if any.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(event_reasons(&env, &ns, "with-config").await.is_empty());

    // Denied (an IAM policy without cloudfront:GetDistribution): no Event, both Completed,
    // exactly one GetDistributionConfig for the two objects.
    sim.set_faults(
        FaultConfig::none()
            .access_denied(1.0)
            .for_operations([Operation::GetDistributionConfig]),
    )
    .unwrap();
    let before = sim.counters();
    apply("denied-1", DENIED, &["#brand:acme"]).await;
    apply("denied-2", DENIED, &["#brand:other", "/about.html"]).await;
    for name in ["denied-1", "denied-2"] {
        let done = wait_completed(&api, name, WAIT).await;
        assert_eq!(done.phase(), Phase::Completed, "{name}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = sim.counters();
    let delta = |op: Operation, outcome: &str| after.calls(op, outcome) - before.calls(op, outcome);
    assert_eq!(
        after.calls_total(Operation::GetDistributionConfig)
            - before.calls_total(Operation::GetDistributionConfig),
        1,
        "one call for both objects: {after:#?}"
    );
    assert_eq!(delta(Operation::GetDistributionConfig, "AccessDenied"), 1);
    assert_eq!(delta(Operation::CreateInvalidation, "ok"), 2);
    for name in ["denied-1", "denied-2"] {
        assert!(event_reasons(&env, &ns, name).await.is_empty(), "{name}");
    }
    let log = op.log();
    let said = format!("could not read the CacheTagConfig of distribution {DENIED}");
    assert_eq!(log.matches(&said).count(), 1, "logged once, in words");

    // Every call the operator made, by its own count, matches what CloudFront saw.
    let metrics = op.metrics().await;
    let counted = metric(
        &metrics,
        "cloudfront_invalidation_aws_calls_total",
        &["operation=\"GetDistributionConfig\""],
    )
    .unwrap_or(0.0) as u64;
    assert_eq!(counted, after.calls_total(Operation::GetDistributionConfig));
}
