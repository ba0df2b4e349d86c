//! Coalescing end to end, against the real API server, the operator binary and the simulator:
//! objects of one namespace and distribution that are ready together go out as one
//! invalidation; namespaces and objects with their own `spec.callerReference` never merge, and
//! no object's status or Events name another's paths. Every AWS call and Kubernetes write is
//! counted and printed.

#[path = "e2e/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use std::time::{Duration, Instant};

use cfinv_api::crd::CloudFrontInvalidation;
use cloudfront_sim::{Operation, SimulatorHandle};
use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use support::*;

const COALESCE: &str = "--coalesce=true";

/// Counts every change the API server reports for objects of `api` (the operator's writes).
fn count_writes(
    api: &Api<CloudFrontInvalidation>,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let writes = Arc::new(AtomicU64::new(0));
    let handle = {
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
    (writes, handle)
}

fn aws_calls(sim: &SimulatorHandle) -> String {
    let c = sim.counters();
    Operation::ALL
        .iter()
        .map(|op| format!("{op:?}={}", c.calls_total(*op)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every Event's note about objects of `namespace`, by object name.
async fn event_notes(env: &Env, namespace: &str) -> Vec<(String, String)> {
    let list = env
        .kubectl
        .json(&["get", "events.v1.events.k8s.io", "-n", namespace])
        .await;
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["regarding"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn status(obj: &CloudFrontInvalidation) -> cfinv_api::crd::CloudFrontInvalidationStatus {
    obj.status.clone().unwrap_or_default()
}

/// 40 objects with `/index.html` + `/static/*` on one distribution, created at once: one
/// round of CloudFront's completion time (the issue allows two), one wildcard in progress,
/// `/index.html` billed once (at most twice allowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_objects_sharing_paths_complete_within_two_rounds_billing_index_html_at_most_twice() {
    const DIST: &str = "E2ECOALESCE001";
    const T: Duration = Duration::from_secs(20);
    let env = Env::start().await;
    let ns = env.namespace("coalesce").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], T).await;
    let _op = Operator::start(
        &env,
        env.operator("coalesce", &sim, &ns)
            .arg("--aws-rate-limit=100")
            .arg(COALESCE)
            .arg("--coalesce-window=5s"),
    )
    .await;
    let (writes, watch) = count_writes(&api);
    let names: Vec<String> = (0..40).map(|i| format!("site-{i:02}")).collect();
    let started = Instant::now();
    let manifests: Vec<Value> = names
        .iter()
        .map(|n| manifest(n, DIST, &["/index.html", "/static/*"]))
        .collect();
    futures::future::join_all(manifests.iter().map(|m| create(&api, m))).await;
    let created_in = started.elapsed();
    let done = wait_all_completed(&api, &names, 3 * T).await;
    let took = started.elapsed();
    watch.abort();

    let records = sim.invalidations(DIST);
    let c = sim.counters();
    let d = c.distribution(DIST);
    let index_billed = records
        .iter()
        .filter(|r| r.paths.iter().any(|p| p == "/index.html"))
        .count();
    eprintln!(
        "[e2e] coalescing 40 objects: created in {created_in:.1?}, all Completed in {took:.1?} \
         (T = {T:?}); {} invalidations, peak {} wildcard paths in progress, {} paths billed \
         (/index.html {index_billed}x) against 80 asked for; AWS calls: {}; {} object writes seen",
        records.len(),
        d.peak_in_progress_wildcard_paths,
        d.paths_billed,
        aws_calls(&sim),
        writes.load(Ordering::SeqCst),
    );
    assert!(
        took <= 2 * T + Duration::from_secs(10),
        "took {took:?}, more than 2 rounds of T = {T:?} (+10 s for a loaded machine)"
    );
    assert!(d.peak_in_progress_wildcard_paths <= 15);
    assert!(index_billed <= 2, "/index.html billed {index_billed} times");
    // A replay with the same CallerReference (a requeue ahead of the cache) is allowed, a
    // second invalidation is not.
    assert!(c.calls_total(Operation::CreateInvalidation) as usize <= 2 * records.len());

    // Each member names its batch's invalidation and its share; the shares add up to the bill.
    let mut billed = 0;
    for obj in &done {
        let s = status(obj);
        let id = s.invalidation_id.clone().expect("an invalidation id");
        let record = records
            .iter()
            .find(|r| r.id == id)
            .expect("CloudFront's id");
        assert_eq!(
            s.caller_reference.as_deref(),
            Some(record.caller_reference.as_str())
        );
        assert!(s.batch.is_some(), "{:?}", s);
        assert_eq!(
            s.submitted_paths.as_deref(),
            Some(&["/index.html".to_owned(), "/static/*".to_owned()][..])
        );
        assert_eq!(
            s.billed_paths.unwrap() + s.covered_paths.unwrap(),
            2,
            "{}: {s:?}",
            obj.metadata.name.as_deref().unwrap_or_default()
        );
        billed += s.billed_paths.unwrap();
    }
    assert_eq!(
        u64::from(billed),
        d.paths_billed,
        "first come pays: the shares are the bill"
    );
    // The batch records are deleted once every member finished.
    let batches: Api<cfinv_api::batch::CloudFrontInvalidationBatch> =
        Api::namespaced(env.admin.clone(), &ns);
    wait_for(
        "the batch records to be deleted",
        Duration::from_secs(60),
        || async {
            let left = batches
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            if left.items.is_empty() {
                Ok(())
            } else {
                Err(format!("{} left", left.items.len()))
            }
        },
    )
    .await;
}

/// Objects of two namespaces on one distribution are never merged, and neither namespace's
/// statuses or Events name the other's paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_never_merged_and_no_path_of_one_appears_in_the_other() {
    const DIST: &str = "E2ECOALESCE002";
    let env = Env::start().await;
    let a = env.namespace("team-a").await;
    let b = env.namespace("team-b").await;
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    let _op = Operator::start(
        &env,
        env.operator("apart", &sim, &a)
            .all_namespaces()
            .arg(COALESCE)
            .arg("--coalesce-window=3s"),
    )
    .await;
    let (api_a, api_b) = (env.api(&a), env.api(&b));
    let mut names = Vec::new();
    for i in 0..3 {
        let name = format!("rel-{i}");
        create(
            &api_a,
            &manifest(
                &name,
                DIST,
                &["/index.html", &format!("/team-a/secret-{i}.html")],
            ),
        )
        .await;
        create(
            &api_b,
            &manifest(
                &name,
                DIST,
                &["/index.html", &format!("/team-b/private-{i}.html")],
            ),
        )
        .await;
        names.push(name);
    }
    let done_a = wait_all_completed(&api_a, &names, Duration::from_secs(60)).await;
    let done_b = wait_all_completed(&api_b, &names, Duration::from_secs(60)).await;
    let records = sim.invalidations(DIST);
    eprintln!(
        "[e2e] two namespaces: {} invalidations; AWS calls: {}",
        records.len(),
        aws_calls(&sim)
    );
    for r in &records {
        let teams: BTreeSet<&str> = r
            .paths
            .iter()
            .filter_map(|p| p.strip_prefix('/')?.split('/').next())
            .filter(|t| t.starts_with("team-"))
            .collect();
        assert_eq!(
            teams.len(),
            1,
            "one invalidation mixes namespaces: {:?}",
            r.paths
        );
    }
    let ids = |done: &[CloudFrontInvalidation]| -> BTreeSet<String> {
        done.iter()
            .filter_map(|o| status(o).invalidation_id)
            .collect()
    };
    assert!(ids(&done_a).is_disjoint(&ids(&done_b)));
    assert_eq!(
        ids(&done_a).len(),
        1,
        "team-a's three objects merged into one"
    );
    for (ns, done, foreign) in [(&a, &done_a, "team-b"), (&b, &done_b, "team-a")] {
        for obj in done {
            let text = serde_json::to_string(&obj.status).unwrap();
            assert!(
                !text.contains(foreign),
                "{ns}: a status names {foreign}'s paths: {text}"
            );
        }
        for (object, note) in event_notes(&env, ns).await {
            assert!(
                !note.contains(foreign),
                "{ns}/{object}: an Event names {foreign}'s paths: {note}"
            );
        }
    }
}

/// An object with its own `spec.callerReference` goes out alone, with that reference; the
/// others merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_with_its_own_caller_reference_is_never_merged() {
    const DIST: &str = "E2ECOALESCE003";
    let env = Env::start().await;
    let ns = env.namespace("own-ref").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    let _op = Operator::start(
        &env,
        env.operator("own-ref", &sim, &ns)
            .arg(COALESCE)
            .arg("--coalesce-window=3s"),
    )
    .await;
    let mut own: Value = manifest("pinned", DIST, &["/index.html", "/static/*"]);
    own["spec"]["callerReference"] = "deploy-42".into();
    create(&api, &own).await;
    create(
        &api,
        &manifest("free-1", DIST, &["/index.html", "/static/*"]),
    )
    .await;
    create(
        &api,
        &manifest("free-2", DIST, &["/index.html", "/static/*"]),
    )
    .await;
    let names = ["pinned", "free-1", "free-2"].map(String::from).to_vec();
    let done = wait_all_completed(&api, &names, Duration::from_secs(60)).await;
    let records = sim.invalidations(DIST);
    let pinned: Vec<_> = records
        .iter()
        .filter(|r| r.caller_reference == "deploy-42")
        .collect();
    assert_eq!(pinned.len(), 1, "{records:#?}");
    let p = &done[0];
    assert_eq!(
        status(p).invalidation_id.as_deref(),
        Some(pinned[0].id.as_str())
    );
    assert!(status(p).batch.is_none());
    assert_eq!(
        records.len(),
        2,
        "the pinned one alone, the two others together: {records:#?}"
    );
    assert_eq!(
        status(&done[1]).invalidation_id,
        status(&done[2]).invalidation_id
    );
}

/// First come pays: the older member is billed for what it brought, the younger only for what
/// nobody before it brought; a wildcard covers a younger member's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_show_the_shared_id_and_the_billing_split() {
    const DIST: &str = "E2ECOALESCE004";
    let env = Env::start().await;
    let ns = env.namespace("split").await;
    let api = env.api(&ns);
    let sim = simulator(&[DIST], Duration::from_secs(3)).await;
    let _op = Operator::start(
        &env,
        env.operator("split", &sim, &ns)
            .arg(COALESCE)
            .arg("--coalesce-window=4s"),
    )
    .await;
    create(
        &api,
        &manifest("first", DIST, &["/index.html", "/static/*"]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(
        &api,
        &manifest(
            "second",
            DIST,
            &["/index.html", "/static/app.js", "/about.html"],
        ),
    )
    .await;
    let names = ["first", "second"].map(String::from).to_vec();
    let done = wait_all_completed(&api, &names, Duration::from_secs(60)).await;
    let records = sim.invalidations(DIST);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(
        records[0].paths,
        vec!["/index.html", "/static/*", "/about.html"]
    );
    let (first, second) = (status(&done[0]), status(&done[1]));
    assert_eq!(
        first.invalidation_id.as_deref(),
        Some(records[0].id.as_str())
    );
    assert_eq!(second.invalidation_id, first.invalidation_id);
    assert_eq!(
        (first.billed_paths, first.covered_paths),
        (Some(2), Some(0))
    );
    assert_eq!(
        (second.billed_paths, second.covered_paths),
        (Some(1), Some(2))
    );
    assert_eq!(second.batch_size, Some(2));
    // Each shows its own items only.
    assert_eq!(
        second.submitted_paths.as_deref(),
        Some(
            &[
                "/index.html".to_owned(),
                "/static/app.js".to_owned(),
                "/about.html".to_owned()
            ][..]
        )
    );
    let notes = event_notes(&env, &ns).await;
    let batch = first.batch.clone().unwrap();
    assert!(
        notes.iter().any(|(o, n)| o == "second"
            && n.contains(&batch)
            && n.contains("1 of this object's 3 item(s) billed to it, 2 covered")),
        "{notes:#?}"
    );
}
