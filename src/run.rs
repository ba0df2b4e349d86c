//! `run`: the operator process. Wires the Kubernetes client, the CloudFront client and the
//! controller together.

use std::{sync::Arc, time::Duration};

use clap::Args;
use tracing::info;

use crate::{
    cloudfront::{AwsCloudFront, AwsOptions},
    controller::{self, Context, PollSettings, RetrySettings, Settings, WatchScope},
};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Send CloudFront requests here (the simulator, a proxy). Without it the SDK's
    /// `AWS_ENDPOINT_URL_CLOUDFRONT` applies, else the real CloudFront endpoint.
    #[arg(long, env = "CLOUDFRONT_ENDPOINT_URL")]
    pub cloudfront_endpoint_url: Option<String>,

    /// Shortest interval between GetInvalidation polls of one invalidation.
    #[arg(long, env = "POLL_MIN_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_min_interval: Duration,

    /// Longest interval between GetInvalidation polls of one invalidation.
    #[arg(long, env = "POLL_MAX_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll_max_interval: Duration,

    /// The poll interval grows as this fraction of the time since submission.
    #[arg(long, env = "POLL_GROWTH", default_value_t = 0.25)]
    pub poll_growth: f64,

    /// First backoff after a retryable CloudFront error (doubles per attempt, with jitter).
    #[arg(long, env = "RETRY_BASE_DELAY", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_base_delay: Duration,

    /// Longest backoff after retryable CloudFront errors.
    #[arg(long, env = "RETRY_MAX_DELAY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub retry_max_delay: Duration,

    /// How many objects are reconciled at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Identity in events (defaults to the pod name in the chart).
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
            },
            retry: RetrySettings {
                base: self.retry_base_delay,
                max: self.retry_max_delay,
            },
        }
    }

    pub fn scope(&self) -> WatchScope {
        match &self.watch_namespace {
            Some(ns) if !ns.is_empty() => WatchScope::Namespace(ns.clone()),
            _ => WatchScope::AllNamespaces,
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let cloudfront = AwsCloudFront::new(&AwsOptions {
        endpoint_url: args.cloudfront_endpoint_url.clone(),
        ..AwsOptions::default()
    })
    .await;
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(cloudfront),
        args.settings(),
        args.instance.clone(),
    ));
    info!(version = env!("CARGO_PKG_VERSION"), "operator starting");
    controller::run(ctx, args.scope(), args.concurrency, shutdown_signal()).await;
    Ok(())
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
        () = term => info!("SIGTERM received, shutting down"),
    }
}
