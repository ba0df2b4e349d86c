//! The controller: a kube-runtime `Controller` over CloudFrontInvalidation objects, a `Context`
//! shared by every reconcile, and the `reconcile` / `error_policy` pair.

pub mod conditions;
mod reconcile;
pub mod schedule;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use kube::{
    Api, Client,
    runtime::{
        Controller,
        controller::Config as ControllerConfig,
        events::{Recorder, Reporter},
        watcher,
    },
};
use rand::SeedableRng;
use tracing::{info, warn};

pub use reconcile::{error_policy, reconcile};
pub use schedule::{PollSettings, RetrySettings};

use crate::{cloudfront::CloudFront, crd::CloudFrontInvalidation};

/// Name the operator reports events and field ownership under.
pub const CONTROLLER_NAME: &str = "cloudfront-invalidation-operator";

/// Errors that end a reconcile early; `error_policy` requeues the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not write status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("object has no {0}")]
    MissingField(&'static str),
}

/// Tunables of the reconciler.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub poll: PollSettings,
    pub retry: RetrySettings,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub cloudfront: Arc<dyn CloudFront>,
    pub recorder: Recorder,
    pub settings: Settings,
    /// Consecutive retryable failures per object UID, for the backoff. Kept in memory: after a
    /// restart the backoff starts small again, which is harmless.
    attempts: Mutex<HashMap<String, u32>>,
    rng: Mutex<rand::rngs::StdRng>,
}

impl Context {
    pub fn new(
        client: Client,
        cloudfront: Arc<dyn CloudFront>,
        settings: Settings,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            cloudfront,
            settings,
            attempts: Mutex::default(),
            rng: Mutex::new(rand::rngs::StdRng::from_os_rng()),
        }
    }

    /// The next backoff delay for this object, counting the attempt.
    pub(crate) fn backoff(&self, uid: &str) -> Duration {
        let attempt = {
            let mut attempts = self.attempts.lock().expect("attempts lock");
            let n = attempts.entry(uid.to_owned()).or_default();
            *n += 1;
            *n - 1
        };
        let mut rng = self.rng.lock().expect("rng lock");
        self.settings.retry.delay(attempt, &mut *rng)
    }

    /// The object made progress or finished: its next error starts a fresh backoff.
    pub(crate) fn forget(&self, uid: &str) {
        self.attempts.lock().expect("attempts lock").remove(uid);
    }
}

/// Which objects to watch.
#[derive(Clone, Debug, Default)]
pub enum WatchScope {
    #[default]
    AllNamespaces,
    Namespace(String),
}

/// Run the controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(
    ctx: Arc<Context>,
    scope: WatchScope,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<CloudFrontInvalidation> = match &scope {
        WatchScope::AllNamespaces => Api::all(ctx.client.clone()),
        WatchScope::Namespace(ns) => Api::namespaced(ctx.client.clone(), ns),
    };
    info!(?scope, concurrency, "starting controller");
    Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller error");
            }
        })
        .await;
    info!("controller stopped");
}
