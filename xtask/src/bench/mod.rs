//! `bench`: the performance claims, measured against the real pieces (kube-apiserver + etcd,
//! the simulator, the operator binary as its own process). Results and how to reproduce them:
//! `docs/benchmarks.md`.
//!
//! Simulated time: CloudFront takes minutes, so a benchmark divides every duration — completion
//! times, poll intervals, the completion-time prior — by `--scale` and multiplies what it measures
//! back. All clocks stay real; fixed costs (API round trips) are magnified by the scale, which
//! makes the reported delays pessimistic, never optimistic.

mod charts;
mod detection;
mod env;
mod queue;

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use cloudfront_sim::{Completion, Operation, Simulator};
use env::{Env, create_all, flag, invalidation, real, wait_finished, watch_finished};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand, Debug)]
enum Which {
    /// Delay between CloudFront completing and the Completed condition, and polling calls, for
    /// this operator's schedule and fixed pollers side by side, on the workloads `lone`,
    /// `sequential`, `concurrent` and `tags`; writes Markdown and SVG charts to `--out`.
    Detection(detection::DetectionArgs),
    /// Wildcard objects on one distribution: makespan against the quota-bound ideal.
    Quota(QuotaArgs),
    /// Many objects across many distributions created at once.
    Burst(BurstArgs),
    /// Memory and idle CPU with many finished objects in the cache.
    Footprint(FootprintArgs),
    /// Many objects queued on one distribution whose quota is full: operator CPU per object.
    Queue(queue::QueueArgs),
}

/// What the quota benchmark's objects invalidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Workload {
    /// One distinct wildcard each (`/site-{i}/*`): nothing to share.
    Disjoint,
    /// `/index.html`, `/static/*` and one of five `/app{k}/*` each: what deploys of one site
    /// look like.
    Overlapping,
}

#[derive(Args, Debug)]
struct QuotaArgs {
    #[arg(long, default_value_t = 100)]
    objects: usize,
    #[arg(long, value_enum, default_value_t = Workload::Disjoint)]
    workload: Workload,
    /// `--coalesce-window` of the coalescing run (simulated).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    coalesce_window: Duration,
    /// A third run with escalation: more than this many wildcard paths waiting go out as `/*`
    /// (0: no such run).
    #[arg(long, default_value_t = 8)]
    escalate_above: u32,
    /// Completion time T of every invalidation (simulated).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    completion: Duration,
    #[arg(long, default_value_t = 10.0)]
    scale: f64,
    /// Where the chart of wildcard paths in progress over time is written.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct BurstArgs {
    #[arg(long, default_value_t = 1000)]
    objects: usize,
    #[arg(long, default_value_t = 50)]
    distributions: usize,
    #[arg(long, default_value = "45s", value_parser = humantime::parse_duration)]
    median: Duration,
    #[arg(long, default_value_t = 0.5)]
    sigma: f64,
    #[arg(long, default_value_t = 10.0)]
    scale: f64,
    /// `--coalesce-window` of the coalescing run (simulated).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    coalesce_window: Duration,
}

/// Coalescing off, then on, with its window scaled.
fn modes(window: Duration, scale: f64) -> [(&'static str, Vec<String>); 2] {
    [
        ("coalescing off (today)", Vec::new()),
        (
            "coalescing on",
            vec![
                "--coalesce=true".to_owned(),
                format!("--coalesce-window={}", flag(real(window, scale))),
            ],
        ),
    ]
}

#[derive(Args, Debug)]
struct FootprintArgs {
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// How long to watch an idle operator.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    idle: Duration,
    /// Each run adds its RSS to `footprint.tsv` here and redraws RSS against cached objects.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which {
        Which::Detection(a) => detection::detection(a).await,
        Which::Quota(a) => quota(a).await,
        Which::Burst(a) => burst(a).await,
        Which::Footprint(a) => footprint(a).await,
        Which::Queue(a) => queue::queue(a).await,
    }
}

/// This operator's defaults, every duration divided by `scale`.
fn our_flags(scale: f64) -> Vec<String> {
    let s = |secs: f64| flag(real(Duration::from_secs_f64(secs), scale));
    vec![
        format!("--poll-min-interval={}", s(1.0)),
        format!("--poll-max-interval={}", s(30.0)),
        format!("--poll-batch-interval={}", s(2.0)),
        format!("--poll-prior-median={}", s(45.0)),
        format!("--queue-recheck-interval={}", s(30.0)),
        format!("--retry-base-delay={}", s(1.0)),
        format!("--retry-max-delay={}", s(60.0)),
        "--aws-rate-limit=1000".to_owned(),
    ]
}

/// A fixed poller (the AWS CLI waiter: 20 s, Terraform: 30 s), scaled.
fn fixed_flags(every: Duration, scale: f64) -> Vec<String> {
    let every = flag(real(every, scale));
    vec![
        format!("--poll-min-interval={every}"),
        format!("--poll-max-interval={every}"),
        "--poll-adaptive=false".to_owned(),
        "--poll-batch-interval=0s".to_owned(),
        "--aws-rate-limit=1000".to_owned(),
    ]
}

fn distribution_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("EBENCH{i:05}")).collect()
}

fn secs_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

async fn quota(a: QuotaArgs) -> anyhow::Result<()> {
    let env = Env::start().await?;
    let t = a.completion.as_secs_f64();
    let paths_of = |i: usize| -> Vec<String> {
        match a.workload {
            Workload::Disjoint => vec![format!("/site-{i}/*")],
            Workload::Overlapping => vec![
                "/index.html".to_owned(),
                "/static/*".to_owned(),
                format!("/app{}/*", i % 5),
            ],
        }
    };
    let asked: usize = (0..a.objects).map(|i| paths_of(i).len()).sum();
    let wildcards_each = paths_of(0).iter().filter(|p| p.ends_with('*')).count();
    let mut rows = Vec::new();
    let mut series = Vec::new();
    let mut runs: Vec<(String, Vec<String>)> = modes(a.coalesce_window, a.scale)
        .into_iter()
        .map(|(m, f)| (m.to_owned(), f))
        .collect();
    if a.escalate_above > 0 {
        let mut flags = runs[1].1.clone();
        flags.push(format!(
            "--coalesce-escalate=EBENCHQUOTA02={}",
            a.escalate_above
        ));
        runs.push((
            format!(
                "coalescing on, escalation above {} wildcards",
                a.escalate_above
            ),
            flags,
        ));
    }
    for (k, (mode, extra)) in runs.into_iter().enumerate() {
        let ns = env.namespace("bench-quota").await?;
        let dist = format!("EBENCHQUOTA0{k}");
        let sim = Simulator::builder()
            .distribution(&dist)
            .completion(Completion::Fixed(real(a.completion, a.scale)))
            .start()
            .await?;
        let mut flags = our_flags(a.scale);
        flags.extend(extra);
        let operator = env.operator(&ns, &sim.endpoint_url(), &flags).await?;
        let finished = watch_finished(&env.client, &ns);
        let objects = (0..a.objects)
            .map(|i| invalidation(&format!("obj-{i:04}"), &dist, &paths_of(i)))
            .collect();
        let start = Timestamp::now();
        create_all(&env.client, &ns, objects, 32).await?;
        let (done, in_progress) = tokio::join!(
            wait_finished(&finished, a.objects, Duration::from_secs(1800)),
            sample_wildcards_in_progress(&sim, &dist, &finished, a.objects, start, a.scale)
        );
        let done = done?;
        let last = done.values().map(|(_, t)| *t).max().unwrap_or(start);
        let makespan = secs_between(start, last) * a.scale;
        let counters = sim.counters();
        let d = counters.distribution(&dist);
        let failed = done.values().filter(|(p, _)| *p == Phase::Failed).count();
        rows.push(format!(
            "| {mode} | {makespan:.1} | {:.2} | {} | {} | {} | {} | {asked} | {failed} |",
            makespan / t,
            counters.calls(
                Operation::CreateInvalidation,
                "TooManyInvalidationsInProgress"
            ),
            d.peak_in_progress_wildcard_paths,
            d.invalidations_created,
            d.paths_billed,
        ));
        series.push((mode.clone(), in_progress));
        operator.stop().await;
        sim.shutdown().await;
    }
    std::fs::create_dir_all(&a.out)?;
    let workload = match a.workload {
        Workload::Disjoint => "disjoint",
        Workload::Overlapping => "overlapping",
    };
    charts::over_time(
        &a.out.join(format!("quota-{workload}-wildcards.svg")),
        &format!(
            "{} {workload} objects on one distribution, T = {}",
            a.objects,
            humantime::format_duration(a.completion)
        ),
        "wildcard paths in progress",
        &series,
        Some((15.0, "CloudFront's quota: 15 wildcard paths in progress")),
    )?;
    // One at a time, each object's wildcards take their own slots: ceil(n / (15 / w)) rounds.
    let per_round = (15 / wildcards_each.max(1)).max(1);
    println!(
        "quota ({workload}): {} objects on one distribution, {wildcards_each} wildcard(s) each, T = {}, \
         scale {}, coalescing window {}; without coalescing the ideal is ceil(n/{per_round}) = {} rounds of T\n",
        a.objects,
        humantime::format_duration(a.completion),
        a.scale,
        humantime::format_duration(a.coalesce_window),
        a.objects.div_ceil(per_round),
    );
    println!(
        "| mode | makespan (s) | makespan / T | TooManyInvalidationsInProgress | peak wildcard paths in progress | invalidations | paths billed | paths asked for | Failed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// Wildcard paths in progress on `dist` every 50 ms (real), until `n` objects finished: (simulated
/// s since `start`, paths).
async fn sample_wildcards_in_progress(
    sim: &cloudfront_sim::SimulatorHandle,
    dist: &str,
    finished: &std::sync::Arc<std::sync::Mutex<env::Finished>>,
    n: usize,
    start: Timestamp,
    scale: f64,
) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    loop {
        let paths = sim.counters().distribution(dist).in_progress_wildcard_paths;
        points.push((secs_between(start, Timestamp::now()) * scale, paths as f64));
        if finished.lock().expect("finished lock").len() >= n {
            return points;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn burst(a: BurstArgs) -> anyhow::Result<()> {
    let env = Env::start().await?;
    let mut rows = Vec::new();
    for (mode, extra) in modes(a.coalesce_window, a.scale) {
        let ns = env.namespace("bench-burst").await?;
        let dists = distribution_ids(a.distributions);
        let sim = Simulator::builder()
            .distributions(dists.clone())
            .completion(Completion::LogNormal {
                median: real(a.median, a.scale),
                sigma: a.sigma,
                seed: 7,
            })
            .start()
            .await?;
        let mut flags = our_flags(a.scale);
        flags.extend(extra);
        let operator = env.operator(&ns, &sim.endpoint_url(), &flags).await?;
        let cpu_before = operator.cpu_seconds()?;
        let finished = watch_finished(&env.client, &ns);
        let objects = (0..a.objects)
            .map(|i| {
                let paths = vec![format!("/app-{i}/index.html"), format!("/app-{i}/sw.js")];
                invalidation(&format!("burst-{i:05}"), &dists[i % dists.len()], &paths)
            })
            .collect();
        let start = Timestamp::now();
        create_all(&env.client, &ns, objects, 64).await?;
        let created = Timestamp::now();
        let done = wait_finished(&finished, a.objects, Duration::from_secs(1800)).await?;
        let last = done.values().map(|(_, t)| *t).max().unwrap_or(start);
        let cpu = operator.cpu_seconds()? - cpu_before;
        let (_, peak_rss) = operator.memory()?;
        let counters = sim.counters();
        let calls: u64 = counters.calls.values().flat_map(|m| m.values()).sum();
        let billed: u64 = dists.iter().map(|d| counters.paths_billed(d)).sum();
        let completed = done
            .values()
            .filter(|(p, _)| *p == Phase::Completed)
            .count();
        rows.push(format!(
            "| {mode} | {completed} | {:.1} | {:.1} | {:.2} | {:.3} | {billed} | {} | {cpu:.2} | {:.1} |",
            secs_between(start, created),
            secs_between(start, last) * a.scale,
            calls as f64 / a.objects as f64,
            counters.calls_total(Operation::CreateInvalidation) as f64 / a.objects as f64,
            2 * a.objects,
            peak_rss as f64 / 1048576.0,
        ));
        operator.stop().await;
        sim.shutdown().await;
    }
    println!(
        "burst: {} objects on {} distributions created at once, completion log-normal(median {}, sigma {}), scale {}, coalescing window {}\n",
        a.objects,
        a.distributions,
        humantime::format_duration(a.median),
        a.sigma,
        a.scale,
        humantime::format_duration(a.coalesce_window),
    );
    println!(
        "| mode | objects Completed | creating took (real s) | all Completed after (simulated s) | AWS calls / object | Create / object | paths billed | paths asked for | operator CPU (s) | operator peak RSS (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

async fn footprint(a: FootprintArgs) -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ns = env.namespace("bench-footprint").await?;
    let sim = Simulator::builder()
        .distribution("EBENCHIDLE01")
        .start()
        .await?;
    // Objects that finished earlier: created, then given a Completed status, before the
    // operator starts, so what is measured is an operator holding them, not processing them.
    let api: Api<CloudFrontInvalidation> = Api::namespaced(env.client.clone(), &ns);
    let objects: Vec<_> = (0..a.objects)
        .map(|i| {
            invalidation(
                &format!("done-{i:05}"),
                "EBENCHIDLE01",
                &[format!("/page-{i}.html"), "/index.html".to_owned()],
            )
        })
        .collect();
    create_all(&env.client, &ns, objects, 64).await?;
    let status = json!({"status": {"phase": "Completed", "invalidationId": "IBENCHDONE0001",
        "billedPaths": 2, "observedGeneration": 1, "message": "completed before the benchmark"}});
    futures::stream::iter(0..a.objects)
        .map(|i| {
            let (api, status) = (api.clone(), status.clone());
            async move {
                api.patch_status(
                    &format!("done-{i:05}"),
                    &PatchParams::default(),
                    &Patch::Merge(status),
                )
                .await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;

    let operator = env
        .operator(&ns, &sim.endpoint_url(), &our_flags(1.0))
        .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, peak) = operator.memory()?;
    let reconciles = |body: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with("cloudfront_invalidation_reconciles_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = reconciles(&operator.http("/metrics").await?.1);
    let cpu_before = operator.cpu_seconds()?;
    let calls_before = sim
        .counters()
        .calls
        .values()
        .flat_map(|m| m.values())
        .sum::<u64>();
    tokio::time::sleep(a.idle).await;
    let cpu = operator.cpu_seconds()? - cpu_before;
    let (rss_idle, _) = operator.memory()?;
    let after = reconciles(&operator.http("/metrics").await?.1);
    let calls = sim
        .counters()
        .calls
        .values()
        .flat_map(|m| m.values())
        .sum::<u64>()
        - calls_before;
    println!(
        "footprint: {} Completed objects in the cache, idle for {}\n",
        a.objects,
        humantime::format_duration(a.idle)
    );
    println!(
        "| RSS 5 s after ready (MiB) | peak RSS (MiB) | RSS after the idle window (MiB) | idle CPU (s over the window) | reconciles while idle | AWS calls while idle |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.1} | {:.1} | {:.1} | {cpu:.3} | {} | {calls} |",
        rss as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        rss_idle as f64 / 1048576.0,
        after - before,
    );
    charts::record_footprint(&a.out, a.objects, rss_idle as f64 / 1048576.0)?;
    operator.stop().await;
    sim.shutdown().await;
    Ok(())
}
