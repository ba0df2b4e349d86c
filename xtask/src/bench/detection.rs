//! `bench detection`: detection delay and polling calls of this operator's schedule beside fixed
//! pollers, on the workloads users have (docs/benchmarks.md, section 1).
//!
//! Every schedule of a workload runs at the same time, each with its own simulator (same seed),
//! operator process and namespace, so they share the machine's load alike.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, ValueEnum};
use kube::{Api, ResourceExt};

use cfinv_api::crd::CloudFrontInvalidation;
use cfinv_cloudfront::polling::LogNormal;
use cloudfront_sim::{Completion, CountersSnapshot, Operation, Simulator, SimulatorHandle};

use super::{
    charts, distribution_ids,
    env::{Env, Finished, create_all, invalidation, real, wait_finished, watch_finished},
    fixed_flags, our_flags, secs_between,
};

#[derive(Args, Debug)]
pub struct DetectionArgs {
    /// Workloads to run, in this order.
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = [Workload::Lone, Workload::Sequential, Workload::Concurrent, Workload::Tags])]
    workload: Vec<Workload>,
    /// Invalidations per workload (default: the workload's own).
    #[arg(long)]
    invalidations: Option<usize>,
    /// Distributions (default: the workload's own).
    #[arg(long)]
    distributions: Option<usize>,
    /// Median completion time (simulated), log-normal (default: the workload's own).
    #[arg(long, value_parser = humantime::parse_duration)]
    median: Option<Duration>,
    /// Log-normal sigma of completion times (default: the workload's own).
    #[arg(long)]
    sigma: Option<f64>,
    /// Seed of the completion times (default: the workload's own).
    #[arg(long)]
    seed: Option<u64>,
    /// Completions that warm the model up before measuring (sequential workloads).
    #[arg(long)]
    warmup: Option<usize>,
    #[arg(long, default_value_t = 10.0)]
    scale: f64,
    /// The fixed pollers to compare with.
    #[arg(long, value_delimiter = ',', default_values = ["5s", "10s", "20s", "30s"],
          value_parser = humantime::parse_duration)]
    fixed: Vec<Duration>,
    /// Also run this operator with these `--poll-expected-calls` budgets (its curve beside the
    /// fixed pollers'), e.g. `--also-expected-calls 2.1,3,5`.
    #[arg(long, value_delimiter = ',')]
    also_expected_calls: Vec<f64>,
    /// More flags for this operator's `run`, replacing the bench's own of the same name (e.g.
    /// `--operator-flag=--poll-min-interval=200ms` for a build whose default differs).
    #[arg(long = "operator-flag", allow_hyphen_values = true)]
    operator_flags: Vec<String>,
    /// Where the Markdown tables and SVG charts are written.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// One invalidation per distribution, all at once, no history: the GitOps user's case.
    Lone,
    /// One distribution, invalidations one after another: the model has learned (warm).
    Sequential,
    /// 20 invalidations per distribution in flight at once: the shared ListInvalidations.
    Concurrent,
    /// Like `sequential`, with the completion times of tag invalidations (P95 25 s).
    Tags,
}

/// One workload's parameters.
#[derive(Clone, Debug)]
struct Spec {
    name: &'static str,
    invalidations: usize,
    distributions: usize,
    median: Duration,
    sigma: f64,
    seed: u64,
    /// One after another (else all at once).
    sequential: bool,
    /// Completions before measuring (sequential only).
    warmup: usize,
}

impl Workload {
    fn spec(self, a: &DetectionArgs) -> Spec {
        let base = match self {
            Workload::Lone => Spec {
                name: "lone",
                invalidations: 40,
                distributions: 40,
                median: Duration::from_secs(45),
                sigma: 0.5,
                seed: 7,
                sequential: false,
                warmup: 0,
            },
            Workload::Sequential => Spec {
                name: "sequential",
                invalidations: 50,
                distributions: 1,
                median: Duration::from_secs(45),
                sigma: 0.5,
                seed: 11,
                sequential: true,
                warmup: 20,
            },
            Workload::Concurrent => Spec {
                name: "concurrent",
                invalidations: 200,
                distributions: 10,
                median: Duration::from_secs(45),
                sigma: 0.5,
                seed: 42,
                sequential: false,
                warmup: 0,
            },
            // Median 12 s, sigma 0.45: 95th percentile 12·e^(1.645·0.45) = 25 s.
            Workload::Tags => Spec {
                name: "tags",
                invalidations: 50,
                distributions: 1,
                median: Duration::from_secs(12),
                sigma: 0.45,
                seed: 13,
                sequential: true,
                warmup: 20,
            },
        };
        let mut s = Spec {
            invalidations: a.invalidations.unwrap_or(base.invalidations),
            distributions: a.distributions.unwrap_or(base.distributions),
            median: a.median.unwrap_or(base.median),
            sigma: a.sigma.unwrap_or(base.sigma),
            seed: a.seed.unwrap_or(base.seed),
            warmup: a.warmup.unwrap_or(base.warmup),
            ..base
        };
        if !s.sequential {
            s.warmup = 0;
        }
        s.warmup = s.warmup.min(s.invalidations.saturating_sub(1));
        s
    }
}

/// `base` with every flag of `extra` replacing the one of the same name.
fn merge_flags(base: Vec<String>, extra: &[String]) -> Vec<String> {
    let name = |f: &str| f.split('=').next().unwrap_or_default().to_owned();
    let mut out: Vec<String> = base
        .into_iter()
        .filter(|f| !extra.iter().any(|e| name(e) == name(f)))
        .collect();
    out.extend(extra.iter().cloned());
    out
}

/// Which schedule a row measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// This operator with its defaults.
    Ours,
    /// This operator with another `--poll-expected-calls`.
    Budget,
    /// A fixed poller.
    Fixed,
}

/// One schedule's outcome on one workload.
pub struct Row {
    pub label: String,
    pub role: Role,
    /// Detection delay of each measured invalidation (simulated s): completion to the watch
    /// seeing `Completed`.
    pub delays: Vec<f64>,
    /// Of it, completion to the first poll answered `Completed`.
    pub poll_delays: Vec<f64>,
    pub gets: f64,
    pub lists: f64,
}

impl Row {
    pub fn mean(&self) -> f64 {
        mean(&self.delays)
    }
    pub fn calls(&self) -> f64 {
        self.gets + self.lists
    }
}

pub async fn detection(a: DetectionArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let env = Env::start().await?;
    let mut all = String::new();
    for workload in a.workload.clone() {
        let spec = workload.spec(&a);
        let ours = merge_flags(our_flags(a.scale), &a.operator_flags);
        let mut runs = vec![("this operator".to_owned(), Role::Ours, ours.clone())];
        for calls in &a.also_expected_calls {
            runs.push((
                format!("this operator, {calls} calls"),
                Role::Budget,
                merge_flags(ours.clone(), &[format!("--poll-expected-calls={calls}")]),
            ));
        }
        for every in &a.fixed {
            runs.push((
                format!("fixed {}", humantime::format_duration(*every)),
                Role::Fixed,
                fixed_flags(*every, a.scale),
            ));
        }
        let load_before = load_average();
        let rows = futures::future::try_join_all(
            runs.into_iter()
                .map(|(label, role, flags)| run_one(&env, &spec, a.scale, label, role, flags)),
        )
        .await?;
        let load = format!("{load_before}–{}", load_average());
        let report = report(&spec, a.scale, &rows, &a.out, &load)?;
        println!("{report}");
        all.push_str(&report);
        all.push('\n');
    }
    std::fs::write(a.out.join("detection.md"), all)?;
    Ok(())
}

async fn run_one(
    env: &Env,
    spec: &Spec,
    scale: f64,
    label: String,
    role: Role,
    flags: Vec<String>,
) -> anyhow::Result<Row> {
    let ns = env.namespace(&format!("bench-{}", spec.name)).await?;
    let dists = distribution_ids(spec.distributions);
    let sim = Simulator::builder()
        .distributions(dists.clone())
        .completion(Completion::LogNormal {
            median: real(spec.median, scale),
            sigma: spec.sigma,
            seed: spec.seed,
        })
        .start()
        .await?;
    let operator = env.operator(&ns, &sim.endpoint_url(), &flags).await?;
    let finished = watch_finished(&env.client, &ns);
    let object = |i: usize| {
        let path = format!("/release/{i}/index.html");
        invalidation(&format!("inv-{i:05}"), &dists[i % dists.len()], &[path])
    };
    let budget = Duration::from_secs(1200);
    let (done, before) = if spec.sequential {
        let mut before = CountersSnapshot::default();
        for i in 0..spec.invalidations {
            if i == spec.warmup {
                before = sim.counters();
            }
            create_all(&env.client, &ns, vec![object(i)], 1).await?;
            wait_finished(&finished, i + 1, budget).await?;
        }
        (finished.lock().expect("finished lock").clone(), before)
    } else {
        let objects = (0..spec.invalidations).map(object).collect();
        create_all(&env.client, &ns, objects, 32).await?;
        (
            wait_finished(&finished, spec.invalidations, budget).await?,
            CountersSnapshot::default(),
        )
    };
    let row = measure(env, &ns, &sim, spec, scale, &done, &before, label, role).await;
    operator.stop().await;
    sim.shutdown().await;
    row
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    env: &Env,
    ns: &str,
    sim: &SimulatorHandle,
    spec: &Spec,
    scale: f64,
    done: &Finished,
    before: &CountersSnapshot,
    label: String,
    role: Role,
) -> anyhow::Result<Row> {
    let api: Api<CloudFrontInvalidation> = Api::namespaced(env.client.clone(), ns);
    let names: HashMap<String, String> = api
        .list(&Default::default())
        .await?
        .into_iter()
        .filter_map(|o| Some((o.uid()?, o.name_any())))
        .collect();
    let (mut delays, mut poll_delays) = (Vec::new(), Vec::new());
    for d in distribution_ids(spec.distributions) {
        for record in sim.invalidations(&d) {
            let name = &names[&record.caller_reference];
            let index: usize = name.trim_start_matches("inv-").parse()?;
            if index < spec.warmup {
                continue;
            }
            let (_, seen) = done[name];
            delays.push(secs_between(record.completion_time, seen) * scale);
            if let Some(first) = record.first_reported_completed {
                poll_delays.push(secs_between(record.completion_time, first) * scale);
            }
        }
    }
    let after = sim.counters();
    let measured = (spec.invalidations - spec.warmup) as f64;
    let per = |op| (after.calls_total(op) - before.calls_total(op)) as f64 / measured;
    Ok(Row {
        label,
        role,
        delays,
        poll_delays,
        gets: per(Operation::GetInvalidation),
        lists: per(Operation::ListInvalidations),
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1);
    v.get(((n as f64 * q).ceil() as usize).clamp(1, n) - 1)
        .copied()
        .unwrap_or_default()
}

/// Whether (delay, calls) `a` dominates `b`: lower delay at no more calls, or fewer calls at no
/// more delay.
pub fn dominates(a: (f64, f64), b: (f64, f64)) -> bool {
    (a.0 < b.0 && a.1 <= b.1) || (a.1 < b.1 && a.0 <= b.0)
}

/// The 1-minute load average, as the kernel reports it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn report(spec: &Spec, scale: f64, rows: &[Row], out: &Path, load: &str) -> anyhow::Result<String> {
    let limit = LogNormal::new(spec.median, spec.sigma).physical_limit();
    let mut md = String::new();
    let shape = if spec.sequential {
        format!(
            "one after another, the first {} warming the model up and not measured",
            spec.warmup
        )
    } else {
        "created at once".to_owned()
    };
    writeln!(
        md,
        "### `{}`: {} invalidations on {} distribution(s), {shape}\n",
        spec.name, spec.invalidations, spec.distributions
    )?;
    writeln!(
        md,
        "Completion log-normal(median {}, sigma {}), seed {}, scale {scale}; times are simulated \
         seconds; load average {load} (2 cores). Physical limit ½(∫√(f·S) dt)² = **{limit:.2} s·calls** (delay × calls no \
         schedule polling one invalidation at a time can beat).\n",
        humantime::format_duration(spec.median),
        spec.sigma,
        spec.seed
    )?;
    writeln!(
        md,
        "| schedule | mean delay (s) | p50 (s) | p95 (s) | max (s) | of the mean: until CloudFront answered Completed (s) | Get / inv | List / inv | calls / inv | delay × calls | ÷ limit |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in rows {
        let product = r.mean() * r.calls();
        writeln!(
            md,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} |",
            r.label,
            r.mean(),
            quantile(&r.delays, 0.5),
            quantile(&r.delays, 0.95),
            quantile(&r.delays, 1.0),
            mean(&r.poll_delays),
            r.gets,
            r.lists,
            r.calls(),
            product,
            product / limit
        )?;
    }
    writeln!(md)?;
    for ours in rows.iter().filter(|r| r.role != Role::Fixed) {
        for r in rows.iter().filter(|r| r.role == Role::Fixed) {
            let verdict = if dominates((ours.mean(), ours.calls()), (r.mean(), r.calls())) {
                "dominates"
            } else {
                "**does not dominate**"
            };
            writeln!(
                md,
                "- {} against {}: {verdict} ({:.2} s with {:.2} calls against {:.2} s with {:.2} calls)",
                ours.label,
                r.label,
                ours.mean(),
                ours.calls(),
                r.mean(),
                r.calls()
            )?;
        }
    }
    let cdf = out.join(format!("detection-{}-cdf.svg", spec.name));
    let tradeoff = out.join(format!("detection-{}-tradeoff.svg", spec.name));
    charts::delay_cdf(
        &cdf,
        &format!("Detection delay, workload {}", spec.name),
        rows,
    )?;
    charts::delay_vs_calls(
        &tradeoff,
        &format!("Delay against calls, workload {}", spec.name),
        rows,
        limit,
    )?;
    writeln!(
        md,
        "\n![CDF of detection delay, {0}]({1})\n![delay against calls, {0}]({2})",
        spec.name,
        file_name(&cdf),
        file_name(&tradeoff)
    )?;
    std::fs::write(out.join(format!("detection-{}.md", spec.name)), &md)?;
    Ok(md)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
