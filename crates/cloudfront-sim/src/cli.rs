//! `cloudfront-sim …`: the simulator as a standalone server (its arguments and main loop).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tracing::info;

use super::{CallerReferenceConflict, Completion, FaultConfig, Operation, Quotas, Simulator};

/// Parses `30s`, `1m 30s`, `2h`, `PT45S`, `250ms`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration (e.g. 45s, 2m, 1m 30s): {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("{s:?} is negative"))
}

/// Parses `LEFT=RIGHT`, both sides non-empty.
fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((left, right)) if !left.is_empty() && !right.is_empty() => {
            Ok((left.to_owned(), right.to_owned()))
        }
        _ => Err(format!("{s:?} is not of the form LEFT=RIGHT")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not a probability between 0 and 1"))
    }
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let scale: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if scale.is_finite() && scale > 0.0 {
        Ok(scale)
    } else {
        Err(format!("the time scale must be positive, got {scale}"))
    }
}

/// A CloudFront API simulator for tests and benchmarks.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    /// Address to listen on (port 0 picks a free port; the address is logged).
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,

    /// A distribution that exists (repeatable); every other id answers NoSuchDistribution.
    #[arg(long = "distribution", value_name = "ID", required = true)]
    pub distributions: Vec<String>,

    /// A distribution tenant of one of the distributions, as TENANT=DISTRIBUTION (repeatable),
    /// e.g. dt_2yMvQgam3QkJo2z54FDl91dk1AB=E2EXAMPLE; every other tenant id answers
    /// EntityNotFound.
    #[arg(long = "tenant", value_name = "TENANT=DISTRIBUTION", value_parser = parse_pair)]
    pub tenants: Vec<(String, String)>,
    /// Give a distribution a CacheTagConfig, as DISTRIBUTION=HEADER (repeatable), e.g.
    /// E2EXAMPLE=x-amz-meta-cache-tag.
    #[arg(long = "cache-tag-config", value_name = "DISTRIBUTION=HEADER", value_parser = parse_pair)]
    pub cache_tag_configs: Vec<(String, String)>,
    /// Simulated time a tag-only invalidation stays InProgress (CloudFront: under 25 s at P95).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub tag_completion_after: Duration,
    /// A distribution whose calls answer AccessDenied (repeatable).
    #[arg(long = "deny-access", value_name = "ID")]
    pub deny_access: Vec<String>,

    /// Simulated time an invalidation stays InProgress (e.g. 45s, 10m); with
    /// --completion-sigma it is the median of a log-normal distribution.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub completion_after: Duration,

    /// Draw completion delays from a log-normal distribution with this sigma (the standard
    /// deviation of the delay's logarithm) around the --completion-after median.
    #[arg(long, value_name = "SIGMA")]
    pub completion_sigma: Option<f64>,

    /// Simulated seconds per real second (60: a simulated minute per real second).
    #[arg(long, value_name = "FACTOR", default_value = "1", value_parser = parse_scale)]
    pub time_scale: f64,

    /// Seed of the random draws (completion delays and faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Individual-object paths allowed in progress per distribution.
    #[arg(long, default_value_t = 3000)]
    pub max_object_paths_in_progress: u64,

    /// Wildcard paths allowed in progress per distribution.
    #[arg(long, default_value_t = 15)]
    pub max_wildcard_paths_in_progress: u64,

    /// Answer to a caller reference reused with other paths.
    #[arg(long, value_enum, default_value = "batch-already-exists")]
    pub caller_reference_conflict: ConflictArg,

    /// Probability of answering Throttling.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_rate)]
    pub throttle_rate: f64,

    /// Probability of answering 500 InternalFailure.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_rate)]
    pub error_500_rate: f64,

    /// Probability of answering 503 ServiceUnavailable.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_rate)]
    pub error_503_rate: f64,

    /// Probability of closing the connection without answering.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_rate)]
    pub drop_rate: f64,

    /// Probability of answering 403 AccessDenied (with --fault-operation: an IAM policy that
    /// lacks that action, e.g. GetDistributionConfig).
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_rate)]
    pub access_denied_rate: f64,

    /// Real time added before every answer of the faulted operations (e.g. 200ms).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub latency: Duration,

    /// Operations the faults apply to (repeatable; default: all).
    #[arg(long = "fault-operation", value_name = "OPERATION")]
    pub fault_operations: Vec<Operation>,
}

/// `--caller-reference-conflict` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConflictArg {
    /// InvalidationBatchAlreadyExists (409), as the API reference documents.
    BatchAlreadyExists,
    /// InvalidArgument (400), as users of the live service report.
    InvalidArgument,
}

impl SimulatorArgs {
    /// The fault configuration these flags describe.
    pub fn fault_config(&self) -> FaultConfig {
        FaultConfig::none()
            .for_operations(self.fault_operations.iter().copied())
            .throttling(self.throttle_rate)
            .internal_errors(self.error_500_rate)
            .service_unavailable(self.error_503_rate)
            .drop_connections(self.drop_rate)
            .access_denied(self.access_denied_rate)
            .latency(self.latency)
            .seed(self.seed)
    }

    /// The completion model these flags describe.
    pub fn completion(&self) -> Completion {
        match self.completion_sigma {
            None => Completion::Fixed(self.completion_after),
            Some(sigma) => Completion::LogNormal {
                median: self.completion_after,
                sigma,
                seed: self.seed,
            },
        }
    }
}

/// Runs the simulator until Ctrl-C (or SIGTERM), then shuts down gracefully.
pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    let mut builder = Simulator::builder()
        .listen(args.listen)
        .distributions(args.distributions.iter().cloned())
        .completion(args.completion())
        .time_scale(args.time_scale)
        .quotas(Quotas {
            max_object_paths_in_progress: args.max_object_paths_in_progress,
            max_wildcard_paths_in_progress: args.max_wildcard_paths_in_progress,
        })
        .caller_reference_conflict(match args.caller_reference_conflict {
            ConflictArg::BatchAlreadyExists => CallerReferenceConflict::BatchAlreadyExists,
            ConflictArg::InvalidArgument => CallerReferenceConflict::InvalidArgument,
        })
        .tag_completion(Completion::Fixed(args.tag_completion_after))
        .faults(args.fault_config());
    for (tenant, distribution) in &args.tenants {
        builder = builder.tenant(tenant.clone(), distribution.clone());
    }
    for (distribution, header) in &args.cache_tag_configs {
        builder = builder.cache_tag_config(distribution.clone(), header.clone());
    }
    for id in &args.deny_access {
        builder = builder.deny_access(id.clone());
    }
    let sim = builder
        .start()
        .await
        .context("starting the CloudFront simulator")?;
    info!(
        endpoint = %sim.endpoint_url(),
        "CloudFront simulator listening on {} (distributions: {}; completion: {:?}; time scale {}); control endpoint at {}{}",
        sim.endpoint_url(),
        args.distributions.join(", "),
        args.completion(),
        args.time_scale,
        sim.endpoint_url(),
        super::CONTROL_PREFIX,
    );
    shutdown_signal().await;
    info!("shutting down the CloudFront simulator");
    sim.shutdown().await;
    info!("CloudFront simulator stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SimulatorArgs,
    }

    #[test]
    fn flags_parse() {
        let w = Wrapper::try_parse_from([
            "x",
            "--listen",
            "127.0.0.1:0",
            "--distribution",
            "E1",
            "--distribution",
            "E2",
            "--completion-after",
            "1m 30s",
            "--completion-sigma",
            "0.5",
            "--time-scale",
            "60",
            "--throttle-rate",
            "0.1",
            "--latency",
            "250ms",
            "--fault-operation",
            "GetInvalidation",
            "--caller-reference-conflict",
            "invalid-argument",
        ])
        .unwrap();
        let a = w.args;
        assert_eq!(a.distributions, vec!["E1", "E2"]);
        assert_eq!(
            a.completion(),
            Completion::LogNormal {
                median: Duration::from_secs(90),
                sigma: 0.5,
                seed: 0
            }
        );
        let f = a.fault_config();
        assert_eq!(
            (f.throttling_rate, f.latency_ms, f.operations.clone()),
            (0.1, 250, vec![Operation::GetInvalidation])
        );
        assert_eq!(a.caller_reference_conflict, ConflictArg::InvalidArgument);
        assert!(
            Wrapper::try_parse_from(["x"]).is_err(),
            "a distribution is required"
        );
        assert!(
            Wrapper::try_parse_from(["x", "--distribution", "E1", "--drop-rate", "2"]).is_err()
        );
        assert!(
            Wrapper::try_parse_from(["x", "--distribution", "E1", "--completion-after", "soon"])
                .is_err()
        );
    }
}
