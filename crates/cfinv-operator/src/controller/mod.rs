//! The controller: a kube-runtime `Controller` over CloudFrontInvalidation objects, a `Context`
//! shared by every reconcile, and the `reconcile` / `error_policy` pair.

pub mod batch;
pub mod cache_tags;
mod coalesce;
mod coalesce_transition;
pub mod conditions;
mod reconcile;
#[cfg(test)]
mod tests;
mod transition;
mod ttl;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, StreamExt, TryStreamExt};
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller, PredicateConfig, WatchStreamExt,
        controller::Config as ControllerConfig,
        events::{Recorder, Reporter},
        predicates, reflector,
        watcher::{self, watcher},
    },
};
use rand::SeedableRng;
use tracing::{debug, info, warn};

pub use cfinv_cloudfront::backoff::RetrySettings;
pub use cfinv_cloudfront::polling::PollSettings;
pub(crate) use reconcile::submitted_target_id;
pub use reconcile::{error_policy, reconcile};

use crate::{health::Health, metrics::Metrics, scheduler::Scheduler, tenancy::TenancyGuard};
use cfinv_api::batch::CloudFrontInvalidationBatch;
use cfinv_api::crd::CloudFrontInvalidation;
use cfinv_cloudfront::CloudFront;
use cfinv_cloudfront::polling::{CompletionModel, StatusBoard};
use jiff::Timestamp;
use kube::runtime::reflector::Store;

/// Name the operator reports events and field ownership under.
pub const CONTROLLER_NAME: &str = "cloudfront-invalidation-operator";

/// Errors that end a reconcile early; `error_policy` requeues the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not write status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("could not delete the finished object: {0}")]
    Delete(#[source] kube::Error),
    #[error("object has no {0}")]
    MissingField(&'static str),
}

/// Tunables of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    pub poll: PollSettings,
    pub retry: RetrySettings,
    /// How often an object waiting for a quota slot (in this operator's scheduler) looks again,
    /// a safety net: the scheduler wakes it when its slot frees. No CloudFront call and no
    /// write is made while it waits.
    pub queue_recheck: Duration,
    /// How often an object that ended `Failed/Timeout` while CloudFront still ran its
    /// invalidation asks CloudFront again, until CloudFront reports it finished.
    pub follow_up: Duration,
    /// Delete finished objects this long after they finished, where
    /// `spec.ttlSecondsAfterFinished` is not set. `None`: keep them.
    pub ttl_after_finished: Option<Duration>,
    /// Coalescing (docs/coalescing.md): merge objects of one namespace and target that are
    /// ready together into one invalidation, waiting this long after an object's creation for
    /// others to join. `None`: off.
    pub coalesce_window: Option<Duration>,
    /// Escalation, per distribution (or tenant) id: more than this many wildcard paths waiting
    /// in one namespace go out as one `/*`. Empty: never.
    pub coalesce_escalate: std::collections::BTreeMap<String, u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll: PollSettings::default(),
            retry: RetrySettings::default(),
            queue_recheck: Duration::from_secs(30),
            follow_up: Duration::from_secs(300),
            ttl_after_finished: None,
            coalesce_window: None,
            coalesce_escalate: Default::default(),
        }
    }
}

/// Everything a reconcile needs, shared by all of them, grouped by concern.
pub struct Context {
    pub client: Client,
    /// A fixed "now" for unit tests; the system clock otherwise.
    fixed_now: Option<Timestamp>,
    pub recorder: Recorder,
    pub settings: Settings,
    pub cloudfront: CloudFrontAccess,
    pub scheduling: Scheduling,
    pub retries: Retries,
    pub observability: Observability,
    /// The batch records' cache (coalescing on; set when the controller starts).
    pub batches: Mutex<Option<Store<CloudFrontInvalidationBatch>>>,
}

/// CloudFront: the API, what has been learned of its completion times, the shared
/// `ListInvalidations` answers, and which distributions can match tag items.
pub struct CloudFrontAccess {
    pub api: Arc<dyn CloudFront>,
    pub model: CompletionModel,
    pub board: StatusBoard,
    pub cache_tags: cache_tags::CacheTagConfigs,
}

/// Who may submit next: the quota scheduler (with its index of every object, fed by the
/// controller's watch) and the tenancy policy.
pub struct Scheduling {
    pub scheduler: Arc<Scheduler>,
    pub tenancy: TenancyGuard,
}

/// Consecutive retryable failures per object UID, for the backoff. Kept in memory: after a
/// restart the backoff starts small again, which is harmless.
pub struct Retries {
    settings: RetrySettings,
    attempts: Mutex<HashMap<String, u32>>,
    /// When this process first saw an object whose `status.startTime` is not written yet (its
    /// status writes fail): the deadline counts from here meanwhile.
    first_seen: Mutex<HashMap<String, Timestamp>>,
    rng: Mutex<rand::rngs::StdRng>,
}

impl Retries {
    fn new(settings: RetrySettings) -> Self {
        Self {
            settings,
            attempts: Mutex::default(),
            first_seen: Mutex::default(),
            rng: Mutex::new(rand::rngs::StdRng::from_os_rng()),
        }
    }

    /// Jitter from a seeded generator, so tests know every delay.
    #[cfg(test)]
    pub(crate) fn seeded(mut self, seed: u64) -> Self {
        self.rng = Mutex::new(rand::rngs::StdRng::seed_from_u64(seed));
        self
    }

    /// When this process first saw the object (now, the first time it is asked).
    pub(crate) fn first_seen(&self, uid: &str, now: Timestamp) -> Timestamp {
        *self
            .first_seen
            .lock()
            .expect("first-seen lock")
            .entry(uid.to_owned())
            .or_insert(now)
    }

    /// `status.startTime` is written: the memory is no longer needed.
    pub(crate) fn forget_first_seen(&self, uid: &str) {
        self.first_seen.lock().expect("first-seen lock").remove(uid);
    }

    fn forget(&self, uid: &str) {
        self.reset(uid);
        self.forget_first_seen(uid);
    }

    fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        self.attempts
            .lock()
            .expect("attempts lock")
            .retain(|uid, _| keep(uid.as_str()));
        self.first_seen
            .lock()
            .expect("first-seen lock")
            .retain(|uid, _| keep(uid.as_str()));
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.attempts.lock().expect("attempts lock").len()
            + self.first_seen.lock().expect("first-seen lock").len()
    }

    /// The next backoff delay for this object, counting the attempt.
    pub(crate) fn next_delay(&self, uid: &str) -> Duration {
        let attempt = {
            let mut attempts = self.attempts.lock().expect("attempts lock");
            let n = attempts.entry(uid.to_owned()).or_default();
            *n += 1;
            *n - 1
        };
        let mut rng = self.rng.lock().expect("rng lock");
        self.settings.delay(attempt, &mut *rng)
    }

    /// The object made progress or finished: its next error starts a fresh backoff.
    pub(crate) fn reset(&self, uid: &str) {
        self.attempts.lock().expect("attempts lock").remove(uid);
    }
}

/// Metrics, and what they need remembered between reconciles.
pub struct Observability {
    pub metrics: Arc<Metrics>,
    /// When each in-progress invalidation was last seen still running, to bound how late the
    /// operator noticed completion (the detection-delay metric).
    last_seen_running: Mutex<HashMap<String, Timestamp>>,
    /// The invalidation id billed per object UID, so that a CallerReference replay (the same
    /// invalidation handed back) is not billed again in the metrics.
    billed: Mutex<HashMap<String, String>>,
}

impl Observability {
    /// Remember that the invalidation was still running now.
    pub(crate) fn seen_running(&self, uid: &str, now: Timestamp) {
        self.last_seen_running
            .lock()
            .expect("last-seen lock")
            .insert(uid.to_owned(), now);
    }

    /// Whether this is the first time this process sees invalidation `id` accepted for the
    /// object (remembering it).
    pub(crate) fn first_acceptance(&self, uid: &str, id: &str) -> bool {
        let mut billed = self.billed.lock().expect("billed lock");
        if billed.get(uid).is_some_and(|known| known == id) {
            return false;
        }
        billed.insert(uid.to_owned(), id.to_owned());
        true
    }

    fn forget(&self, uid: &str) {
        self.take_last_seen_running(uid);
        self.billed.lock().expect("billed lock").remove(uid);
    }

    fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        self.last_seen_running
            .lock()
            .expect("last-seen lock")
            .retain(|uid, _| keep(uid.as_str()));
        self.billed
            .lock()
            .expect("billed lock")
            .retain(|uid, _| keep(uid.as_str()));
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.last_seen_running.lock().expect("last-seen lock").len()
            + self.billed.lock().expect("billed lock").len()
    }

    /// The last time the invalidation was seen running, forgetting it.
    pub(crate) fn take_last_seen_running(&self, uid: &str) -> Option<Timestamp> {
        self.last_seen_running
            .lock()
            .expect("last-seen lock")
            .remove(uid)
    }
}

impl Context {
    pub fn new(client: Client, cloudfront: Arc<dyn CloudFront>, settings: Settings) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter(None)),
            client,
            cloudfront: CloudFrontAccess {
                api: cloudfront,
                model: CompletionModel::new(settings.poll.prior_median),
                board: StatusBoard::default(),
                cache_tags: cache_tags::CacheTagConfigs::new(cache_tags::LIFETIME),
            },
            scheduling: Scheduling {
                scheduler: Arc::default(),
                tenancy: TenancyGuard::open(),
            },
            retries: Retries::new(settings.retry.clone()),
            observability: Observability {
                metrics: Arc::default(),
                last_seen_running: Mutex::default(),
                billed: Mutex::default(),
            },
            fixed_now: None,
            batches: Mutex::default(),
            settings,
        }
    }

    /// Now, by the system clock (or the clock a unit test fixed).
    pub(crate) fn now(&self) -> Timestamp {
        self.fixed_now.unwrap_or_else(Timestamp::now)
    }

    #[cfg(test)]
    pub(crate) fn at(mut self, now: Timestamp) -> Self {
        self.fixed_now = Some(now);
        self
    }

    /// The object is gone: forget what was remembered about it.
    pub(crate) fn forget(&self, uid: &str) {
        self.retries.forget(uid);
        self.observability.forget(uid);
        self.scheduling.scheduler.release(uid);
    }

    /// After a (re)list: forget every object the cache no longer holds (deleted while the
    /// watch was down, so no delete event came).
    pub(crate) fn forget_absent(&self, store: &Store<CloudFrontInvalidation>) {
        let present: std::collections::HashSet<String> =
            store.state().iter().filter_map(|o| o.uid()).collect();
        let keep = |uid: &str| present.contains(uid);
        self.retries.retain(&keep);
        self.observability.retain(&keep);
    }

    /// What a watch event means for the per-object memory.
    pub(crate) fn on_watch_event(
        &self,
        event: &watcher::Event<CloudFrontInvalidation>,
        store: &Store<CloudFrontInvalidation>,
    ) {
        match event {
            watcher::Event::Delete(obj) => {
                if let Some(uid) = obj.uid() {
                    self.forget(&uid);
                }
            }
            watcher::Event::InitDone => self.forget_absent(store),
            _ => {}
        }
    }

    /// Name this replica in the events it publishes (the pod name).
    pub fn with_instance(mut self, instance: Option<String>) -> Self {
        self.recorder = Recorder::new(self.client.clone(), reporter(instance));
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.observability.metrics = metrics;
        self
    }

    pub fn with_tenancy(mut self, tenancy: TenancyGuard) -> Self {
        self.scheduling.tenancy = tenancy;
        self
    }
}

fn reporter(instance: Option<String>) -> Reporter {
    Reporter {
        controller: CONTROLLER_NAME.to_owned(),
        instance,
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
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<CloudFrontInvalidation> = match &scope {
        WatchScope::AllNamespaces => Api::all(ctx.client.clone()),
        WatchScope::Namespace(ns) => Api::namespaced(ctx.client.clone(), ns),
    };
    info!(?scope, concurrency, "starting controller");
    let scheduler = ctx.scheduling.scheduler.clone();
    // A new term rebuilds the index from the watch's first list.
    scheduler.reset();
    if ctx.settings.coalesce_window.is_some() {
        scheduler.expect_batches();
    }
    let wakes = scheduler.wakes();
    let default_ttl = ctx.settings.ttl_after_finished;
    // Our own reflector, so readiness can follow the watcher's InitDone (the initial list is in
    // the cache). Every event feeds the scheduler's index first; the cache then keeps only
    // objects reconcile still has work for, so finished objects cost a few bytes of index, not
    // a whole object each. The list is paged (the default 500 per page), so a cold start with
    // 100,000 objects never holds them all as one response.
    let (store, writer) = reflector::store();
    let synced = health.clone();
    let index = scheduler.clone();
    let (memory, cache) = (ctx.clone(), store.clone());
    let events = watcher(api, watcher::Config::default())
        .inspect_ok(move |event| index.observe(event))
        .try_filter_map(move |event| futures::future::ready(Ok(for_the_cache(event, default_ttl))))
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                memory.on_watch_event(event, &cache);
            }
            if matches!(event, Ok(watcher::Event::InitDone)) {
                info!("cache synced");
                synced.set_cache_synced(true);
            }
        })
        .default_backoff()
        .applied_objects()
        // Only spec changes (a new generation) and new objects trigger a reconcile: the
        // operator's own status writes do not, so a write neither causes an extra poll within
        // milliseconds nor skips the backoff the reconcile asked for. The reflector above still
        // sees every change, so reconciles read the current status; queued objects are woken by
        // the scheduler (`reconcile_on` below).
        .predicate_filter(predicates::generation, PredicateConfig::default());
    ctx.observability.metrics.register_cache(scheduler.clone());
    let shutdown = shutdown.shared();
    let batches = ctx
        .settings
        .coalesce_window
        .is_some()
        .then(|| batch::controller(ctx.clone(), &scope, concurrency, shutdown.clone()));
    let controller = Controller::for_stream(events, store);
    let members = controller
        .with_config(ControllerConfig::default().concurrency(concurrency))
        // The scheduler wakes a queued object when its slot frees.
        .reconcile_on(wakes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                // A finished object left the cache while a requeue for it was pending.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    debug!(object = %obj, "object no longer in the cache, nothing to do");
                }
                Err(e) => warn!(error = %e, "controller error"),
                Ok(_) => {}
            }
        });
    match batches {
        Some(batches) => {
            futures::future::join(members, batches).await;
        }
        None => members.await,
    }
    ctx.observability.metrics.unregister_cache();
    health.set_cache_synced(false);
    info!("controller stopped");
}

/// What the controller's cache receives of a watch event: finished objects with nothing left
/// to do are taken out of it (a delete for the cache; the object itself stays in Kubernetes).
fn for_the_cache(
    event: watcher::Event<CloudFrontInvalidation>,
    default_ttl: Option<Duration>,
) -> Option<watcher::Event<CloudFrontInvalidation>> {
    let idle = |obj: &CloudFrontInvalidation| {
        obj.phase().is_terminal()
            && !ttl::finished_needs_reconcile(obj, default_ttl)
            && !reconcile::follow_up_pending(obj)
    };
    match event {
        watcher::Event::InitApply(obj) if idle(&obj) => None,
        watcher::Event::Apply(obj) if idle(&obj) => Some(watcher::Event::Delete(obj)),
        event => Some(event),
    }
}
