//! A CloudFront simulator: an HTTP server that speaks the CloudFront REST-XML API (2020-05-31)
//! for `CreateInvalidation`, `GetInvalidation`, `ListInvalidations`, `GetDistribution`,
//! `GetDistributionConfig` and the
//! three distribution tenant invalidation operations
//! (`CreateInvalidationForDistributionTenant`, `GetInvalidationForDistributionTenant`,
//! `ListInvalidationsForDistributionTenant`), so
//! that unmodified clients (`aws-sdk-cloudfront`, boto3, the AWS CLI) can be pointed at it.
//!
//! It models the invalidation lifecycle on a scalable clock, caller-reference idempotency,
//! CloudFront's validation and in-progress quotas, per-distribution access denial and injected
//! faults, and counts what happened so tests can assert on it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use cloudfront_sim::{Completion, Simulator};
//!
//! let sim = Simulator::builder()
//!     .distribution("E2EXAMPLE")
//!     .completion(Completion::Fixed(Duration::from_secs(60)))
//!     .time_scale(60.0) // a simulated minute per real second
//!     .start()
//!     .await?;
//! let endpoint = sim.endpoint_url(); // give this to the SDK as endpoint_url
//! # let _ = endpoint;
//! let counters = sim.counters();
//! # let _ = counters;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See `docs/simulator.md` for the command line, the control endpoint and what is not modelled.

pub mod cli;
mod clock;
mod completion;
mod control;
mod counters;
mod errors;
mod faults;
mod operation;
mod paths;
mod server;
mod shared;
mod state;
mod xml;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use completion::Completion;
pub use control::PREFIX as CONTROL_PREFIX;
pub use counters::{CountersSnapshot, DistributionCounters, OUTCOME_DROPPED, OUTCOME_OK};
pub use errors::ApiError;
pub use faults::FaultConfig;
pub use operation::Operation;
pub use paths::{MAX_PATH_LENGTH, MAX_PATHS_PER_BATCH};
pub use state::{
    CallerReferenceConflict, DEFAULT_TAG_COMPLETION, InvalidationRecord, InvalidationStatus, Quotas,
};
pub use xml::{NAMESPACE, format_time};

use clock::ScaledClock;
use faults::FaultInjector;
use shared::{Core, Shared};
use state::{State, StateConfig};

/// Entry point: `Simulator::builder()`.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// A builder with no distributions, a fixed 30 s completion, time scale 1 and no faults,
    /// listening on an ephemeral port of 127.0.0.1.
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder::default()
    }
}

/// Configures and starts a simulator.
#[derive(Debug, Clone)]
pub struct SimulatorBuilder {
    listen: SocketAddr,
    distributions: Vec<String>,
    tenants: Vec<(String, String)>,
    cache_tags: Vec<(String, String)>,
    denied: Vec<String>,
    completion: Completion,
    tag_completion: Completion,
    time_scale: f64,
    quotas: Quotas,
    conflict: CallerReferenceConflict,
    faults: FaultConfig,
}

impl Default for SimulatorBuilder {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            distributions: Vec::new(),
            tenants: Vec::new(),
            cache_tags: Vec::new(),
            denied: Vec::new(),
            completion: Completion::default(),
            tag_completion: Completion::Fixed(state::DEFAULT_TAG_COMPLETION),
            time_scale: 1.0,
            quotas: Quotas::default(),
            conflict: CallerReferenceConflict::default(),
            faults: FaultConfig::none(),
        }
    }
}

impl SimulatorBuilder {
    /// The address to listen on (port 0: an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// A distribution that exists.
    pub fn distribution(mut self, id: impl Into<String>) -> Self {
        self.distributions.push(id.into());
        self
    }

    /// Distributions that exist.
    pub fn distributions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.distributions.extend(ids.into_iter().map(Into::into));
        self
    }

    /// A distribution tenant of `distribution` (which must be added too): the tenant
    /// operations answer for it, every other tenant id answers `EntityNotFound`.
    pub fn tenant(mut self, tenant: impl Into<String>, distribution: impl Into<String>) -> Self {
        self.tenants.push((tenant.into(), distribution.into()));
        self
    }

    /// Gives `distribution` a `CacheTagConfig` with this `HeaderName` (reported by
    /// GetDistribution and GetDistributionConfig). Tag items are accepted either way, as
    /// CloudFront accepts them; without a config they match nothing.
    pub fn cache_tag_config(
        mut self,
        distribution: impl Into<String>,
        header_name: impl Into<String>,
    ) -> Self {
        self.cache_tags
            .push((distribution.into(), header_name.into()));
        self
    }

    /// How long tag-only invalidations stay in progress (default: a fixed 5 s).
    pub fn tag_completion(mut self, completion: Completion) -> Self {
        self.tag_completion = completion;
        self
    }

    /// Every call on this distribution answers `AccessDenied` (whether it exists or not).
    pub fn deny_access(mut self, id: impl Into<String>) -> Self {
        self.denied.push(id.into());
        self
    }

    /// How long invalidations stay in progress, in simulated time.
    pub fn completion(mut self, completion: Completion) -> Self {
        self.completion = completion;
        self
    }

    /// How much faster than real time the simulated clock runs (60: a minute per second).
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale;
        self
    }

    /// In-progress quotas per distribution (defaults: 3,000 object paths, 15 wildcard paths).
    pub fn quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// The answer to a caller reference reused with other paths.
    pub fn caller_reference_conflict(mut self, conflict: CallerReferenceConflict) -> Self {
        self.conflict = conflict;
        self
    }

    /// Faults from the start.
    pub fn faults(mut self, faults: FaultConfig) -> Self {
        self.faults = faults;
        self
    }

    /// Binds the address and starts serving in a background task of the current runtime.
    pub async fn start(self) -> anyhow::Result<SimulatorHandle> {
        anyhow::ensure!(
            self.time_scale.is_finite() && self.time_scale > 0.0,
            "the time scale must be a positive number, got {}",
            self.time_scale
        );
        self.completion.validate().map_err(anyhow::Error::msg)?;
        self.tag_completion.validate().map_err(anyhow::Error::msg)?;
        self.faults.validate().map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let local_addr = listener.local_addr()?;
        let clock = ScaledClock::new(self.time_scale);
        let now = clock.now();
        let mut state = State::new(StateConfig {
            quotas: self.quotas,
            completion: self.completion,
            conflict: self.conflict,
            tag_completion: self.tag_completion,
        });
        for id in &self.distributions {
            state.add_distribution(id, now);
        }
        for (tenant, distribution) in &self.tenants {
            state
                .add_tenant(tenant, distribution)
                .map_err(anyhow::Error::msg)?;
        }
        for (distribution, header) in &self.cache_tags {
            state
                .set_cache_tag_header(distribution, Some(header.clone()))
                .map_err(anyhow::Error::msg)?;
        }
        for id in &self.denied {
            state.set_access_denied(id, true);
        }
        let core = Core {
            state,
            calls: Default::default(),
            faults: FaultInjector::new(self.faults),
        };
        let shared = Arc::new(Shared::new(core, clock, local_addr));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = server::router(shared.clone());
        let task = tokio::spawn(server::serve(listener, app, shutdown_rx));
        Ok(SimulatorHandle {
            shared,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server at once; [`SimulatorHandle::shutdown`]
/// lets calls in flight finish first.
#[derive(Debug)]
pub struct SimulatorHandle {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SimulatorHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// `http://127.0.0.1:PORT`, for the SDK's `endpoint_url` or `aws --endpoint-url`.
    pub fn endpoint_url(&self) -> String {
        self.shared.endpoint_url()
    }

    /// A consistent copy of every counter.
    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters()
    }

    /// Sets every counter back to zero (invalidations are kept).
    pub fn reset_counters(&self) {
        self.shared.reset_counters();
    }

    /// Replaces the fault configuration (and restarts its RNG from its seed).
    pub fn set_faults(&self, faults: FaultConfig) -> anyhow::Result<()> {
        faults.validate().map_err(anyhow::Error::msg)?;
        self.shared.lock().faults = FaultInjector::new(faults);
        Ok(())
    }

    /// The fault configuration in force.
    pub fn faults(&self) -> FaultConfig {
        self.shared.lock().faults.config().clone()
    }

    /// Adds a distribution; false if it already existed.
    pub fn add_distribution(&self, id: &str) -> bool {
        let now = self.shared.clock.now();
        self.shared.lock().state.add_distribution(id, now)
    }

    /// Adds a distribution tenant of an existing distribution; `Ok(false)` if it was there.
    pub fn add_tenant(&self, tenant: &str, distribution: &str) -> anyhow::Result<bool> {
        self.shared
            .lock()
            .state
            .add_tenant(tenant, distribution)
            .map_err(anyhow::Error::msg)
    }

    /// Sets or removes a distribution's `CacheTagConfig`.
    pub fn set_cache_tag_config(
        &self,
        distribution: &str,
        header: Option<&str>,
    ) -> anyhow::Result<()> {
        self.shared
            .lock()
            .state
            .set_cache_tag_header(distribution, header.map(str::to_owned))
            .map_err(anyhow::Error::msg)
    }

    /// Makes calls on a distribution answer `AccessDenied`, or stops doing so.
    pub fn set_access_denied(&self, id: &str, denied: bool) {
        self.shared.lock().state.set_access_denied(id, denied);
    }

    /// Every invalidation of a distribution, oldest first, with its creation and completion
    /// instants (simulated clock) and its status now. Reading them here does not count as a
    /// client seeing them.
    pub fn invalidations(&self, distribution_id: &str) -> Vec<InvalidationRecord> {
        let now = self.shared.clock.now();
        self.shared.lock().state.invalidations(distribution_id, now)
    }

    /// Completes every invalidation in progress now; returns how many.
    pub fn complete_all_now(&self) -> usize {
        let now = self.shared.clock.now();
        self.shared.lock().state.complete_all(now)
    }

    /// The simulated time now.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The real instant at which the simulated clock shows `t`, e.g. an invalidation's
    /// `completion_time`.
    pub fn real_instant(&self, t: Timestamp) -> Instant {
        self.shared.clock.real_instant(t)
    }

    /// The time scale.
    pub fn time_scale(&self) -> f64 {
        self.shared.clock.scale()
    }

    /// Stops accepting connections, lets calls in flight finish (5 s at most), and returns when
    /// the server has stopped.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
