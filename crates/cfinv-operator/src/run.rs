//! `run`: the operator process. Wires the Kubernetes client, the CloudFront client, the HTTP
//! endpoint, leader election and the controller together, and shuts them down in order.

use std::{net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, reflector, watcher},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    controller::{self, Context, PollSettings, RetrySettings, Settings, WatchScope},
    health::Health,
    http,
    leader::{LeaderElection, LeaseSettings},
    metrics::Metrics,
    tenancy::{TenancyGuard, TenancyMode},
};
use cfinv_cloudfront::{AwsCloudFront, AwsOptions, CallCounter, Metered, RateLimited};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Send CloudFront requests here (the simulator, a proxy). Without it the SDK's
    /// `AWS_ENDPOINT_URL_CLOUDFRONT` applies, else the real CloudFront endpoint.
    #[arg(long, env = "CLOUDFRONT_ENDPOINT_URL")]
    pub cloudfront_endpoint_url: Option<String>,

    /// Shortest interval between two looks at one invalidation; with one invalidation in flight
    /// on a distribution, also the ceiling on that distribution's polls (one per interval).
    #[arg(long, env = "POLL_MIN_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_min_interval: Duration,

    /// Longest interval between two looks at one invalidation.
    #[arg(long, env = "POLL_MAX_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll_max_interval: Duration,

    /// Past the learned 99th percentile of completion times, the poll interval grows by this
    /// fraction of the time past it (`--poll-adaptive=false`: of the time since submission).
    #[arg(long, env = "POLL_GROWTH", default_value_t = 0.25)]
    pub poll_growth: f64,

    /// Learn each distribution's completion times and poll densely where completion is likely
    /// (false: a plain growing schedule).
    #[arg(long, env = "POLL_ADAPTIVE", default_value_t = true, action = clap::ArgAction::Set)]
    pub poll_adaptive: bool,

    /// Polling calls one invalidation costs on average when the learned completion times are
    /// right; the mean detection delay falls as 1/calls (docs/benchmarks.md).
    #[arg(long, env = "POLL_EXPECTED_CALLS", default_value_t = 12.0, value_parser = parse_expected_calls)]
    pub poll_expected_calls: f64,

    /// With two or more invalidations in flight on a distribution, one shared ListInvalidations
    /// at most this often answers for all of them ("0s": always GetInvalidation per object).
    #[arg(long, env = "POLL_BATCH_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll_batch_interval: Duration,

    /// Median completion time assumed for a distribution before any of its invalidations has
    /// been seen to complete.
    #[arg(long, env = "POLL_PRIOR_MEDIAN", default_value = "45s", value_parser = humantime::parse_duration)]
    pub poll_prior_median: Duration,

    /// How often an object waiting for a quota slot looks again, as a safety net: it is woken
    /// when its slot frees (no AWS call while waiting).
    #[arg(long, env = "QUEUE_RECHECK_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub queue_recheck_interval: Duration,

    /// After an object ends Failed/Timeout while CloudFront still runs its invalidation, ask
    /// CloudFront this often until it reports the invalidation finished, and record that in
    /// `status.cloudFrontStatus` (one GetInvalidation per such object per interval).
    #[arg(long, env = "TIMEOUT_FOLLOW_UP_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout_follow_up_interval: Duration,
    /// Delete finished objects (Completed or Failed) this long after they finished, where
    /// spec.ttlSecondsAfterFinished is not set (unset: keep them).
    #[arg(long, env = "TTL_AFTER_FINISHED", value_parser = humantime::parse_duration)]
    pub ttl_after_finished: Option<Duration>,

    /// Merge objects of one namespace and target that are ready to submit together into one
    /// CloudFront invalidation (docs/coalescing.md). Needs the CloudFrontInvalidationBatch CRD.
    #[arg(long, env = "COALESCE", default_value_t = false, action = clap::ArgAction::Set)]
    pub coalesce: bool,

    /// With --coalesce: how long after an object's creation its batch waits for more objects
    /// to join ("0s": only what is already queued when a slot frees).
    #[arg(long, env = "COALESCE_WINDOW", default_value = "2s", value_parser = humantime::parse_duration)]
    pub coalesce_window: Duration,

    /// With --coalesce, opt-in per distribution (or tenant): `ID=N` sends everything waiting
    /// in a namespace as one `/*` when more than N wildcard paths wait (comma-separated for
    /// several). Fewer paths billed and a shorter queue, against a load spike on the origin.
    #[arg(long, env = "COALESCE_ESCALATE", value_delimiter = ',', value_parser = parse_escalation)]
    pub coalesce_escalate: Vec<(String, u32)>,

    /// First backoff after a retryable CloudFront error (doubles per attempt, with jitter).
    #[arg(long, env = "RETRY_BASE_DELAY", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_base_delay: Duration,

    /// Longest backoff after retryable CloudFront errors.
    #[arg(long, env = "RETRY_MAX_DELAY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub retry_max_delay: Duration,

    /// How many objects are reconciled at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// CloudFront calls per second, shared by all objects (a burst queues instead of throttling).
    #[arg(long, env = "AWS_RATE_LIMIT", default_value_t = NonZeroU32::new(10).expect("non-zero"))]
    pub aws_rate_limit: NonZeroU32,

    /// Give up on one CloudFront call after this long (keep it under the pod's grace period).
    #[arg(long, env = "AWS_CALL_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub aws_call_timeout: Duration,

    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    pub http_bind_address: SocketAddr,

    /// Only the holder of a Lease reconciles; others wait as standbys. Needed with more than one
    /// replica.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// Namespace of the Lease (the chart passes the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,

    /// Name of the Lease.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE_NAME",
        default_value = "cloudfront-invalidation-operator"
    )]
    pub leader_election_lease_name: String,

    /// Seconds a lease stays valid after its last renewal: the longest a standby waits after the
    /// leader dies.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value_t = 15)]
    pub leader_election_lease_duration: u64,

    /// Which namespaces may invalidate which distributions.
    #[arg(long, env = "TENANCY", value_enum, default_value_t)]
    pub tenancy: TenancyMode,

    /// Identity in events and the Lease (the chart passes the pod name).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
}

impl RunArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            poll: PollSettings {
                min_interval: self.poll_min_interval,
                max_interval: self.poll_max_interval,
                growth: self.poll_growth,
                expected_calls: self.poll_expected_calls,
                adaptive: self.poll_adaptive,
                batch_interval: (!self.poll_batch_interval.is_zero())
                    .then_some(self.poll_batch_interval),
                prior_median: self.poll_prior_median,
            },
            retry: RetrySettings {
                base: self.retry_base_delay,
                max: self.retry_max_delay,
            },
            queue_recheck: self.queue_recheck_interval,
            follow_up: self.timeout_follow_up_interval,
            ttl_after_finished: self.ttl_after_finished,
            coalesce_window: self.coalesce.then_some(self.coalesce_window),
            coalesce_escalate: self.coalesce_escalate.iter().cloned().collect(),
        }
    }

    pub fn scope(&self) -> WatchScope {
        match &self.watch_namespace {
            Some(ns) if !ns.is_empty() => WatchScope::Namespace(ns.clone()),
            _ => WatchScope::AllNamespaces,
        }
    }

    /// `--instance`, or a random name (fixed once by `run`).
    fn identity(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                controller::CONTROLLER_NAME,
                uuid::Uuid::new_v4().simple()
            )
        })
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Resolve the identity once: Events and the Lease must name the same replica.
    let args = RunArgs {
        instance: Some(args.identity()),
        ..args
    };
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    });

    let metrics = Arc::new(Metrics::new());
    let health = Health::default();
    let server_stop = CancellationToken::new();
    let server = http::serve(
        args.http_bind_address,
        metrics.clone(),
        health.clone(),
        server_stop.clone(),
    )
    .await?;

    let client = Client::try_default().await?;
    let aws = AwsCloudFront::new(&AwsOptions {
        endpoint_url: args.cloudfront_endpoint_url.clone(),
        attempt_timeout: args.aws_call_timeout,
        ..AwsOptions::default()
    })
    .await;
    let cloudfront = RateLimited::new(
        Metered::new(aws, CallCounter::with_sink(metrics.clone())),
        args.aws_rate_limit,
    );

    let ctx = Arc::new(
        Context::new(client.clone(), Arc::new(cloudfront), args.settings())
            .with_instance(Some(args.identity()))
            .with_metrics(metrics.clone())
            .with_tenancy(tenancy_guard(&client, args.tenancy, stop.clone())),
    );
    info!(version = env!("CARGO_PKG_VERSION"), tenancy = ?args.tenancy,
          leader_election = args.leader_election, coalesce = args.coalesce,
          "operator starting");

    if args.leader_election {
        run_with_leader_election(&args, client, ctx, health, metrics, stop).await?;
    } else {
        metrics.leader.set(1);
        controller::run(
            ctx,
            args.scope(),
            args.concurrency,
            health,
            stop.cancelled_owned(),
        )
        .await;
    }

    server_stop.cancel();
    let _ = server.await;
    info!("operator stopped");
    Ok(())
}

/// Standby until the lease is ours, reconcile while it is, give it back on shutdown.
async fn run_with_leader_election(
    args: &RunArgs,
    client: Client,
    ctx: Arc<Context>,
    health: Health,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let settings = LeaseSettings {
        namespace: args.leader_election_namespace.clone(),
        name: args.leader_election_lease_name.clone(),
        identity: args.identity(),
        duration_seconds: args.leader_election_lease_duration,
        grace_seconds: (args.leader_election_lease_duration / 3).max(1),
    };
    let mut election = LeaderElection::start(client, &settings).await?;
    loop {
        health.set_standby(true);
        metrics.leader.set(0);
        tokio::select! {
            () = stop.cancelled() => break,
            acquired = election.acquired() => acquired?,
        }
        info!(identity = %settings.identity, "became the leader, reconciling");
        health.set_standby(false);
        metrics.leader.set(1);
        let lost = CancellationToken::new();
        let until = {
            let (stop, lost) = (stop.clone(), lost.clone());
            async move {
                tokio::select! {
                    () = stop.cancelled() => {},
                    () = lost.cancelled() => {},
                }
            }
        };
        let controller = controller::run(
            ctx.clone(),
            args.scope(),
            args.concurrency,
            health.clone(),
            until,
        );
        tokio::pin!(controller);
        tokio::select! {
            () = &mut controller => {}
            result = election.lost() => {
                if result.is_ok() {
                    warn!("lost the leader lease, stopping reconciles");
                }
                lost.cancel();
                controller.await;
            }
        }
        if stop.is_cancelled() {
            break;
        }
    }
    metrics.leader.set(0);
    election.release().await;
    Ok(())
}

/// In annotation mode, watch Namespace metadata (a cache, not a call per reconcile).
fn tenancy_guard(client: &Client, mode: TenancyMode, stop: CancellationToken) -> TenancyGuard {
    match mode {
        TenancyMode::Open => TenancyGuard::open(),
        TenancyMode::NamespaceAnnotation => {
            let (reader, writer) = reflector::store();
            let stream = reflector(
                writer,
                watcher(
                    Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                    watcher::Config::default(),
                ),
            )
            .default_backoff()
            .touched_objects()
            .for_each(|r| async move {
                if let Err(e) = r {
                    warn!(error = %e, "namespace watch failed, retrying");
                }
            });
            tokio::spawn(async move {
                tokio::select! {
                    () = stream => {},
                    () = stop.cancelled() => {},
                }
            });
            TenancyGuard::namespace_annotation(reader)
        }
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("interrupted, shutting down"),
        () = term => info!("SIGTERM received, finishing in-flight work and shutting down"),
    }
}

/// `--coalesce-escalate`: `ID=N`, N wildcard paths waiting (at least 1).
fn parse_escalation(value: &str) -> Result<(String, u32), String> {
    let (id, n) = value.split_once('=').ok_or_else(|| {
        format!("{value:?} is not ID=N (a distribution or tenant id, = and a number)")
    })?;
    if id.is_empty() {
        return Err(format!(
            "{value:?}: the distribution or tenant id before = is empty"
        ));
    }
    let n: u32 = n
        .parse()
        .map_err(|_| format!("{value:?}: {n:?} after = is not a whole number"))?;
    if n == 0 {
        return Err(format!(
            "{value:?}: N must be at least 1 (0 would send /* for one wildcard)"
        ));
    }
    Ok((id.to_owned(), n))
}

/// `--poll-expected-calls`: at least the one call that sees `Completed`, and a sane ceiling.
fn parse_expected_calls(value: &str) -> Result<f64, String> {
    let calls: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    if !(1.0..=1000.0).contains(&calls) {
        return Err(format!(
            "{calls} is out of range: an invalidation costs at least 1 polling call, and at most 1000 are allowed"
        ));
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use clap::{Args, Command};

    use super::{RunArgs, parse_escalation, parse_expected_calls};

    #[test]
    fn an_escalation_policy_is_id_equals_a_positive_number() {
        assert_eq!(
            parse_escalation("E2QWRUHAPOMQZL=8"),
            Ok(("E2QWRUHAPOMQZL".to_owned(), 8))
        );
        assert!(parse_escalation("E2QW").unwrap_err().contains("ID=N"));
        assert!(parse_escalation("=3").unwrap_err().contains("empty"));
        assert!(
            parse_escalation("E2QW=x")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            parse_escalation("E2QW=0")
                .unwrap_err()
                .contains("at least 1")
        );
    }

    #[test]
    fn expected_calls_below_one_or_above_a_thousand_is_rejected_naming_the_rule() {
        assert_eq!(parse_expected_calls("12"), Ok(12.0));
        assert_eq!(parse_expected_calls("2.5"), Ok(2.5));
        for bad in ["0.5", "1001", "-3", "NaN"] {
            let err = parse_expected_calls(bad).unwrap_err();
            assert!(err.contains("out of range"), "{bad}: {err}");
        }
        assert!(
            parse_expected_calls("many")
                .unwrap_err()
                .contains("not a number")
        );
    }

    /// docs/configuration.md lists every flag of `run` with its environment variable.
    #[test]
    fn every_flag_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        let cmd = RunArgs::augment_args(Command::new("run"));
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" || long == "version" {
                continue;
            }
            assert!(
                doc.contains(&format!("`--{long}`")),
                "docs/configuration.md lacks --{long}"
            );
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(
                    doc.contains(&format!("`{env}`")),
                    "docs/configuration.md lacks {env}"
                );
            }
        }
    }
}
