//! Polling that learns, and polling that batches.
//!
//! - `CompletionModel`: per distribution (and per kind of invalidation), a log-normal belief
//!   about completion times: a prior (median `--poll-prior-median`, sigma 0.8: CloudFront's
//!   documented "usually under a minute, up to 10-15 minutes") updated with the completion times
//!   the operator has seen, older ones fading.
//! - `PollSettings::next_poll`: the schedule. With completion density f and survival S, a
//!   schedule polling at rate λ(t) costs mean delay ∫f/(2λ) and mean calls ∫λ·S; their product
//!   is smallest, ½(∫√(f·S) dt)², when λ is proportional to the square root of the hazard f/S.
//!   The schedule polls so, scaled to spend `expected_calls` per invalidation under the model:
//!   nothing before the model's 5th percentile, dense where completion is likely, sparse in the
//!   tail, and past the 99th percentile (the model is wrong, or the invalidation is a slow one)
//!   backing off by `growth` of the time past it.
//! - `StatusBoard`: when several invalidations of one distribution are in flight, one
//!   `ListInvalidations` (newest 100, with their statuses) answers for all of them, shared by the
//!   reconciles of that distribution for `batch_interval`. One call instead of one per object;
//!   the schedule polls such a group at √n times one invalidation's rate (the rate that
//!   minimises their summed delay at the same price per call), at most once per
//!   `batch_interval`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{CloudFront, CloudFrontError, Target};

/// Log-normal prior for a distribution never seen before (median: `PollSettings::prior_median`).
pub const DEFAULT_PRIOR_MEDIAN: Duration = Duration::from_secs(45);
/// Spread of the prior: wide on purpose, so a service twice as slow or fast as the prior's
/// median is still inside its window.
pub const PRIOR_SIGMA: f64 = 0.8;
/// Prior median for tag-only invalidations. AWS states tag invalidations complete "in under 25
/// seconds at P95" (What's New, 2026-04-29); with the prior's sigma the 95th percentile is
/// 3.7 times the median, so 7 s puts it at 26 s.
pub const TAG_PRIOR_MEDIAN: Duration = Duration::from_secs(7);
/// The prior counts as this many observations; real ones take over after a handful.
const PRIOR_WEIGHT: f64 = 1.0;
/// Observations fade so that the newest ~20 carry the estimate: a service that slows down (or
/// speeds up) is followed within a few dozen completions, and memory per distribution is O(1).
const MEMORY: f64 = 20.0;
/// z-score of the model's 5th percentile: no poll before it.
const Z_EARLY: f64 = -1.644_853_626_951_472_2;
/// z-score of the 99th percentile: past it, back off.
const Z_LATE: f64 = 2.326_347_874_040_840_8;

/// Exponentially weighted mean and spread of log completion times (weighted Welford).
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    weight: f64,
    mean: f64,
    /// Weighted sum of squared deviations from `mean`.
    m2: f64,
}

impl Seen {
    fn add(&mut self, x: f64) {
        let keep = 1.0 - 1.0 / MEMORY;
        self.weight *= keep;
        self.m2 *= keep;
        self.weight += 1.0;
        let delta = x - self.mean;
        self.mean += delta / self.weight;
        self.m2 += delta * (x - self.mean);
    }
}

/// What the operator has seen of completion times, per distribution and kind.
pub struct CompletionModel {
    prior_median: Duration,
    seen: Mutex<HashMap<(String, Kind), Seen>>,
}

impl Default for CompletionModel {
    fn default() -> Self {
        Self::new(DEFAULT_PRIOR_MEDIAN)
    }
}

/// The model's belief about one distribution's completion times: log-normal with `median` and
/// `sigma` (of the log), and the window where completion is likely (5th to 99th percentile).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub early: Duration,
    pub late: Duration,
    pub median: Duration,
    pub sigma: f64,
}

impl Window {
    /// The belief "log-normal with this median and sigma".
    pub fn log_normal(median: Duration, sigma: f64) -> Self {
        let m = median.as_secs_f64().max(0.001);
        let sigma = sigma.clamp(0.05, 3.0);
        Self {
            early: Duration::from_secs_f64(m * (Z_EARLY * sigma).exp()),
            late: Duration::from_secs_f64(m * (Z_LATE * sigma).exp()),
            median: Duration::from_secs_f64(m),
            sigma,
        }
    }

    /// The belief's best estimate of a completion time known to lie in (`after`, `until`]: the
    /// mean of log T under the belief restricted to that interval (a truncated normal), so a
    /// look that first saw `Completed` long after the last look that saw it running (or after
    /// submission, when no look did) is neither taken at its late end, which would teach the
    /// model its own detection delay, nor at a midpoint far from where completions happen.
    pub fn completed_within(&self, after: Duration, until: Duration) -> Duration {
        let (a, b) = (after.as_secs_f64(), until.as_secs_f64().max(1e-3));
        let d = self.dist();
        let z = |t: f64| {
            if t <= 0.0 {
                f64::NEG_INFINITY
            } else {
                (t.ln() - d.mu) / d.sigma
            }
        };
        let (alpha, beta) = (z(a.min(b)), z(b));
        let phi = |z: f64| {
            if z.is_finite() {
                (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
            } else {
                0.0
            }
        };
        let cdf = |z: f64| 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
        let mass = cdf(beta) - cdf(alpha);
        let estimate = if mass > 1e-9 {
            (d.mu + d.sigma * (phi(alpha) - phi(beta)) / mass).exp()
        } else {
            // The belief puts nothing there: it is wrong, take the interval's middle.
            (a + b) / 2.0
        };
        Duration::from_secs_f64(estimate.clamp(a.min(b), b))
    }

    fn dist(&self) -> LogNormal {
        LogNormal {
            mu: self.median.as_secs_f64().max(0.001).ln(),
            sigma: self.sigma,
        }
    }
}

/// What an invalidation carries, as far as its completion time goes: tag-only invalidations
/// complete far faster than those with paths, so each kind has its own prior and history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// At least one path (alone or mixed with tags: the paths set the pace).
    Paths,
    /// Cache tags only.
    TagsOnly,
}

impl Kind {
    /// The kind of a batch of items as sent.
    pub fn of<S: AsRef<str>>(items: &[S]) -> Self {
        if !items.is_empty() && items.iter().all(|i| cfinv_api::paths::is_tag(i.as_ref())) {
            Kind::TagsOnly
        } else {
            Kind::Paths
        }
    }
}

impl CompletionModel {
    pub fn new(prior_median: Duration) -> Self {
        Self {
            prior_median,
            seen: Mutex::default(),
        }
    }

    /// An invalidation of `distribution` took this long (submission to completion).
    pub fn observe(&self, distribution: &str, took: Duration) {
        self.observe_kind(distribution, Kind::Paths, took);
    }

    pub fn observe_kind(&self, distribution: &str, kind: Kind, took: Duration) {
        let x = took.as_secs_f64().max(0.1).ln();
        let mut seen = self.seen.lock().expect("model lock");
        seen.entry((distribution.to_owned(), kind))
            .or_default()
            .add(x);
    }

    /// The belief about `distribution`'s path invalidations.
    pub fn window(&self, distribution: &str) -> Window {
        self.window_kind(distribution, Kind::Paths)
    }

    /// The prior blended with what was seen (a normal model of log-times with the prior as
    /// `PRIOR_WEIGHT` pseudo-observations), widened for the uncertainty of the estimate itself.
    /// Each kind starts from its own prior.
    pub fn window_kind(&self, distribution: &str, kind: Kind) -> Window {
        let prior_median = match kind {
            Kind::Paths => self.prior_median,
            Kind::TagsOnly => TAG_PRIOR_MEDIAN.min(self.prior_median),
        };
        let prior_mu = prior_median.as_secs_f64().max(0.001).ln();
        let seen = self
            .seen
            .lock()
            .expect("model lock")
            .get(&(distribution.to_owned(), kind))
            .copied()
            .unwrap_or_default();
        let total = PRIOR_WEIGHT + seen.weight;
        let mu = (PRIOR_WEIGHT * prior_mu + seen.weight * seen.mean) / total;
        // Disagreement between the prior and the data widens the belief, so a service slower than
        // the prior is not polled as if it were known.
        let disagreement = PRIOR_WEIGHT * seen.weight / total * (seen.mean - prior_mu).powi(2);
        let var = (PRIOR_WEIGHT * PRIOR_SIGMA.powi(2) + seen.m2 + disagreement) / total;
        Window::log_normal(Duration::from_secs_f64(mu.exp()), var.sqrt())
    }
}

/// Log-normal completion times: density, survival, hazard.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogNormal {
    /// Mean of the log (ln of the median).
    pub mu: f64,
    /// Standard deviation of the log.
    pub sigma: f64,
}

impl LogNormal {
    pub fn new(median: Duration, sigma: f64) -> Self {
        Self {
            mu: median.as_secs_f64().max(0.001).ln(),
            sigma,
        }
    }

    fn z(&self, t: f64) -> f64 {
        (t.max(1e-9).ln() - self.mu) / self.sigma
    }

    /// Density at `t` seconds.
    pub fn pdf(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let z = self.z(t);
        (-0.5 * z * z).exp() / (self.sigma * t * (2.0 * std::f64::consts::PI).sqrt())
    }

    /// Probability of taking longer than `t` seconds.
    pub fn survival(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 1.0;
        }
        0.5 * libm::erfc(self.z(t) / std::f64::consts::SQRT_2)
    }

    /// Completion rate at `t` among those still running: f/S.
    pub fn hazard(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let s = self.survival(t);
        if s < 1e-250 {
            // Far in the tail the ratio is the Mills ratio: about z/(σt).
            return self.z(t).max(0.0) / (self.sigma * t);
        }
        self.pdf(t) / s
    }

    /// ∫√(f·S) dt over all t, in √seconds: the physical limit of delay × calls is half its
    /// square. Substituting t = e^(μ+σz) makes it a smooth integral over z.
    pub fn root_density_survival_integral(&self) -> f64 {
        const STEPS: usize = 400;
        let (lo, hi) = (-9.0, 9.0);
        let dz = (hi - lo) / STEPS as f64;
        let median = self.mu.exp();
        (0..STEPS)
            .map(|i| {
                let z: f64 = lo + (i as f64 + 0.5) * dz;
                let phi = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let surv = 0.5 * libm::erfc(z / std::f64::consts::SQRT_2);
                // f(t) dt = φ(z) dz, t = median·e^(σz): √(f S) dt = √(φ S σ t) dz.
                (phi * surv * self.sigma * median * (self.sigma * z).exp()).sqrt() * dz
            })
            .sum()
    }

    /// The least mean delay × mean calls any polling schedule can reach, ½(∫√(f·S) dt)².
    pub fn physical_limit(&self) -> f64 {
        0.5 * self.root_density_survival_integral().powi(2)
    }
}

/// How to poll one invalidation.
#[derive(Clone, Debug, PartialEq)]
pub struct PollSettings {
    /// The shortest interval between two looks at one invalidation: with one in flight per
    /// distribution, also the ceiling on polls per distribution (one per `min_interval`).
    pub min_interval: Duration,
    /// The longest interval.
    pub max_interval: Duration,
    /// Past the model's 99th percentile, the interval grows by this fraction of the time past
    /// it (the non-adaptive schedule: this fraction of the time since submission).
    pub growth: f64,
    /// Polling calls one invalidation costs on average if the model is right (more: lower
    /// delay; the delay falls as 1/calls).
    pub expected_calls: f64,
    /// Use the learned model; off: a plain growing schedule (`growth`, clamped).
    pub adaptive: bool,
    /// Share one ListInvalidations per distribution, at most this often, when two or more of
    /// its invalidations are in flight; `None`: always GetInvalidation.
    pub batch_interval: Option<Duration>,
    /// Median completion time assumed for a distribution not seen yet.
    pub prior_median: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
            growth: 0.25,
            expected_calls: 12.0,
            adaptive: true,
            batch_interval: Some(Duration::from_secs(2)),
            prior_median: DEFAULT_PRIOR_MEDIAN,
        }
    }
}

impl PollSettings {
    /// A fixed poller: the AWS CLI waiter (every 20 s), Terraform (every 30 s), for comparison.
    pub fn fixed(every: Duration) -> Self {
        Self {
            min_interval: every,
            max_interval: every,
            growth: 0.0,
            expected_calls: 1.0,
            adaptive: false,
            batch_interval: None,
            prior_median: DEFAULT_PRIOR_MEDIAN,
        }
    }

    /// Wait this long before looking again, `since_submit` after submission. `sharing`: how
    /// many in-flight invalidations the next call answers for (1: a `GetInvalidation`; two or
    /// more: the distribution's shared `ListInvalidations`).
    pub fn next_poll(&self, since_submit: Duration, window: Window, sharing: usize) -> Duration {
        let max = self.max_interval.max(self.min_interval);
        let batch = self
            .batch_interval
            .filter(|_| sharing >= 2)
            .map(|b| b.max(Duration::from_millis(1)));
        if !self.adaptive {
            let next = since_submit
                .mul_f64(self.growth)
                .clamp(self.min_interval, max);
            return batch.map_or(next, |b| next.min(b));
        }
        let first = self.first_poll(window);
        if since_submit < first {
            // Completion is not plausible yet (or, on a small budget, not likely enough to spend
            // a call on): look when it becomes so. May exceed `max_interval`: no look is due yet.
            return (first - since_submit).max(self.min_interval);
        }
        let past_late = since_submit.saturating_sub(window.late);
        let sharing = batch.map_or(1, |_| sharing);
        let next = self
            .root_hazard_step(since_submit, window, max, sharing)
            .max(past_late.mul_f64(self.growth))
            .clamp(self.min_interval, max);
        // A shared List is refreshed at most once per batch interval: looking more often would
        // read the same answer.
        batch.map_or(next, |b| next.max(b))
    }

    /// When the first look is due: the model's 5th percentile, or later when the budget is so
    /// small that the schedule's intensity reaches one poll only later.
    pub fn first_poll(&self, window: Window) -> Duration {
        window
            .early
            .max(self.root_hazard_step(Duration::ZERO, window, window.late, 1))
    }

    /// The step Δ with ∫ k·√(sharing·hazard) = 1 over [t, t+Δ] (one poll per unit of the
    /// schedule's intensity), k chosen so that one invalidation polled alone costs
    /// `expected_calls` under the model; at most `cap`. One call that answers for `sharing`
    /// invalidations buys `sharing` times the delay, so at the same price per call the rate
    /// that minimises their summed delay is k·√(Σ hazards): √sharing times one's.
    fn root_hazard_step(
        &self,
        since_submit: Duration,
        window: Window,
        cap: Duration,
        sharing: usize,
    ) -> Duration {
        let model = window.dist();
        // The last call (the one that sees Completed) is extra to ∫λS: half a call on average.
        let k = (self.expected_calls - 0.5).max(0.1) / model.root_density_survival_integral()
            * (sharing.max(1) as f64).sqrt();
        let t0 = since_submit.as_secs_f64();
        let cap = cap.as_secs_f64();
        let dt = (self.min_interval.as_secs_f64() / 4.0).clamp(0.01, 1.0);
        let (mut step, mut acc) = (0.0, 0.0);
        while step < cap {
            let rate = k * model.hazard(t0 + step + dt / 2.0).sqrt();
            if acc + rate * dt >= 1.0 {
                // Where inside this slice the intensity reaches one poll.
                step += (1.0 - acc) / rate.max(f64::MIN_POSITIVE);
                return Duration::from_secs_f64(step.min(cap));
            }
            acc += rate * dt;
            step += dt;
        }
        Duration::from_secs_f64(cap)
    }
}

/// Statuses of a distribution's newest invalidations, refreshed at most once per interval and
/// shared by all reconciles of that distribution.
#[derive(Default)]
pub struct StatusBoard {
    boards: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Board>>>>,
}

#[derive(Default)]
struct Board {
    fetched: Option<Instant>,
    completed: HashMap<String, bool>,
    /// Ids a fresh, full page did not contain: older than the newest 100. An id only moves
    /// down the list, so these are asked with GetInvalidation from then on, never by listing
    /// again (when they were seen missing, to forget them eventually).
    off_page: HashMap<String, Instant>,
}

/// How long an id is remembered as off the newest page (longer than any object's timeout).
const OFF_PAGE_MEMORY: Duration = Duration::from_secs(2 * 3600);

impl StatusBoard {
    /// Whether invalidation `id` is completed, from a ListInvalidations of its distribution no
    /// older than `max_age`. `Ok(None)`: not on the newest page (more than 100 newer ones):
    /// ask GetInvalidation instead, on the object's own schedule. Such an id costs one extra
    /// List once, never a List on every poll.
    pub async fn completed(
        &self,
        cloudfront: &dyn CloudFront,
        distribution: &str,
        id: &str,
        max_age: Duration,
    ) -> Result<Option<bool>, CloudFrontError> {
        let target = Target::Distribution(distribution.to_owned());
        self.completed_for(cloudfront, &target, id, max_age).await
    }

    /// [`completed`](Self::completed) for a distribution or a tenant: a tenant's board is
    /// filled by ListInvalidationsForDistributionTenant.
    pub async fn completed_for(
        &self,
        cloudfront: &dyn CloudFront,
        target: &Target,
        id: &str,
        max_age: Duration,
    ) -> Result<Option<bool>, CloudFrontError> {
        let board = self
            .boards
            .lock()
            .expect("boards lock")
            .entry(Self::key(target))
            .or_default()
            .clone();
        // One refresh at a time per distribution: concurrent reconciles wait and share it.
        let mut board = board.lock().await;
        if board.off_page.contains_key(id) {
            return Ok(None);
        }
        let fresh = board.fetched.is_some_and(|t| t.elapsed() < max_age);
        if !fresh || !board.completed.contains_key(id) {
            let page = cloudfront.list_for(target, None, Some(100)).await?;
            let full = page.next_marker.is_some();
            board.completed = page
                .items
                .into_iter()
                .map(|s| (s.id, s.status.is_completed()))
                .collect();
            let now = Instant::now();
            board.fetched = Some(now);
            board
                .off_page
                .retain(|_, seen| now.duration_since(*seen) < OFF_PAGE_MEMORY);
            if full && !board.completed.contains_key(id) {
                board.off_page.insert(id.to_owned(), now);
            }
        }
        Ok(board.completed.get(id).copied())
    }

    /// Forget a distribution with nothing in flight, so the map does not grow forever.
    pub fn forget(&self, distribution: &str) {
        self.forget_target(&Target::Distribution(distribution.to_owned()));
    }

    /// [`forget`](Self::forget) for a distribution or a tenant.
    pub fn forget_target(&self, target: &Target) {
        self.boards
            .lock()
            .expect("boards lock")
            .remove(&Self::key(target));
    }

    /// Distribution ids and tenant ids never collide (`dt_` and a lowercase letter), but the
    /// key says which is which all the same.
    fn key(target: &Target) -> String {
        match target {
            Target::Distribution(id) => id.clone(),
            Target::Tenant(id) => format!("tenant/{id}"),
        }
    }
}

#[cfg(test)]
mod board_tests;
#[cfg(test)]
mod tests;
