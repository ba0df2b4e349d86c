//! `bench queue`: many objects queued on one distribution whose quota is full. Measures the
//! operator's CPU per queued object, to pin that admission costs the same per object whether
//! 1,000 or 10,000 wait (issue 11 item 11: no work proportional to everything cached on each
//! look).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};

use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use cloudfront_sim::{Completion, Operation, Simulator};

use super::env::{Env, create_all, invalidation};

#[derive(Args, Debug)]
pub struct QueueArgs {
    /// Objects queued behind the full quota (one wildcard path each).
    #[arg(long, default_value_t = 1000)]
    objects: usize,
    /// How long to watch the operator while they wait.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    wait: Duration,
    /// Extra flags for the operator (e.g. `--queue-recheck-interval=2s`); default: its own
    /// defaults, plus a high AWS rate limit.
    #[arg(long, allow_hyphen_values = true)]
    operator_arg: Vec<String>,
}

/// Phase of each object, as the watch last saw it.
fn watch_phases(client: &Client, namespace: &str) -> Arc<Mutex<HashMap<String, Phase>>> {
    let phases = Arc::new(Mutex::new(HashMap::new()));
    let api: Api<CloudFrontInvalidation> = Api::namespaced(client.clone(), namespace);
    let record = phases.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(obj)) = events.next().await {
            record
                .lock()
                .expect("phases lock")
                .insert(obj.name_any(), obj.phase());
        }
    });
    phases
}

async fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Option<usize>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if done().is_none() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("{what}: not after {timeout:?} ({:?} left)", done());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(phases: &Mutex<HashMap<String, Phase>>, prefix: &str, phase: Phase) -> usize {
    phases
        .lock()
        .expect("phases lock")
        .iter()
        .filter(|(n, p)| n.starts_with(prefix) && **p == phase)
        .count()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub async fn queue(a: QueueArgs) -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ns = env.namespace("bench-queue").await?;
    let dist = "EBENCHQUEUE01".to_owned();
    // Nothing completes by itself: the quota stays full until the benchmark frees it.
    let sim = Simulator::builder()
        .distribution(&dist)
        .completion(Completion::Fixed(Duration::from_secs(24 * 3600)))
        .start()
        .await?;
    let mut flags = vec!["--aws-rate-limit=1000".to_owned()];
    flags.extend(a.operator_arg.iter().cloned());
    let operator = env.operator(&ns, &sim.endpoint_url(), &flags).await?;
    let phases = watch_phases(&env.client, &ns);

    let holders = (0..15)
        .map(|i| invalidation(&format!("hold-{i:02}"), &dist, &[format!("/hold-{i}/*")]))
        .collect();
    create_all(&env.client, &ns, holders, 15).await?;
    wait_until("the quota to fill", Duration::from_secs(120), || {
        let n = count(&phases, "hold-", Phase::InProgress);
        (n < 15).then_some(15 - n)
    })
    .await?;

    let cpu_start = operator.cpu_seconds()?;
    let queued = (0..a.objects)
        .map(|i| invalidation(&format!("queued-{i:05}"), &dist, &[format!("/q-{i}/*")]))
        .collect();
    create_all(&env.client, &ns, queued, 64).await?;
    let took = wait_until(
        "every object to be Queued",
        Duration::from_secs(1800),
        || {
            let n = count(&phases, "queued-", Phase::Queued);
            (n < a.objects).then_some(a.objects - n)
        },
    )
    .await?;
    let cpu_queued = operator.cpu_seconds()?;
    let load_queued = load_average();

    tokio::time::sleep(a.wait).await;
    let cpu_waited = operator.cpu_seconds()?;
    let (rss, _) = operator.memory()?;

    // Free the 15 slots: the next 15 are admitted.
    let creates_before = sim.counters().calls_total(Operation::CreateInvalidation);
    sim.complete_all_now();
    let refill = wait_until(
        "15 queued objects to be admitted",
        Duration::from_secs(600),
        || {
            let n = count(&phases, "queued-", Phase::InProgress);
            (n < 15).then_some(15 - n)
        },
    )
    .await?;
    let cpu_refilled = operator.cpu_seconds()?;
    let counters = sim.counters();
    let refused = counters.calls(
        Operation::CreateInvalidation,
        "TooManyInvalidationsInProgress",
    );
    let creates = counters.calls_total(Operation::CreateInvalidation) - creates_before;

    let n = a.objects as f64;
    let queue_cpu = cpu_queued - cpu_start;
    let wait_cpu = cpu_waited - cpu_queued;
    println!(
        "queue: {} wildcard objects queued on one distribution behind 15 in progress; operator flags {:?}; \
         load average {load_queued} (1, 5, 15 min) when all were queued\n",
        a.objects, flags
    );
    println!(
        "| queued | queueing took (s) | operator CPU to queue them (s) | per object (ms) | CPU while {} waiting (s) | per object (ms) | slot freed → next admitted (s) | CPU for that (s) | Creates for 15 slots | TooManyInvalidationsInProgress | RSS (MiB) |",
        humantime::format_duration(a.wait)
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1} | {queue_cpu:.2} | {:.3} | {wait_cpu:.2} | {:.3} | {:.2} | {:.2} | {creates} | {refused} | {:.1} |",
        a.objects,
        took.as_secs_f64(),
        queue_cpu * 1000.0 / n,
        wait_cpu * 1000.0 / n,
        refill.as_secs_f64(),
        cpu_refilled - cpu_waited,
        rss as f64 / 1048576.0,
    );
    operator.stop().await;
    sim.shutdown().await;
    Ok(())
}
