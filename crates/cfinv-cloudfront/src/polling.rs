//! Polling that learns, and polling that batches.
//!
//! - `CompletionModel`: per distribution, a log-normal fit of the completion times the operator
//!   has seen, starting from a prior (median 45 s, sigma 0.8: CloudFront's documented "usually
//!   under a minute, up to 10-15 minutes"). The schedule asks rarely before completion is
//!   plausible, densely while it is likely, and backs off past the tail.
//! - `StatusBoard`: when several invalidations of one distribution are in flight, one
//!   `ListInvalidations` (newest 100, with their statuses) answers for all of them, shared by the
//!   reconciles of that distribution for `batch_interval`. One call instead of one per object.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{CloudFront, CloudFrontError, Target};

/// Log-normal prior for a distribution never seen before (median: `PollSettings::prior_median`).
pub const DEFAULT_PRIOR_MEDIAN: Duration = Duration::from_secs(45);
/// Prior median for tag-only invalidations. AWS states tag invalidations complete "in under 25
/// seconds at P95" (What's New, 2026-04-29); with the prior's sigma the 95th percentile is
/// 3.7 times the median, so 7 s puts it at 26 s.
pub const TAG_PRIOR_MEDIAN: Duration = Duration::from_secs(7);
const PRIOR_SIGMA: f64 = 0.8;
/// The prior counts as this many observations; real ones take over after a handful.
const PRIOR_WEIGHT: f64 = 3.0;
/// Observations kept per distribution (the newest).
const HISTORY: usize = 100;
/// z-scores of the 5th and 95th percentiles.
const Z95: f64 = 1.645;

/// What the operator has seen of completion times, per distribution.
pub struct CompletionModel {
    prior_median: Duration,
    seen: Mutex<HashMap<String, VecDeque<f64>>>,
}

impl Default for CompletionModel {
    fn default() -> Self {
        Self::new(DEFAULT_PRIOR_MEDIAN)
    }
}

/// The window where completion is likely: 5th to 95th percentile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub early: Duration,
    pub late: Duration,
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

    /// The history key of a distribution's invalidations of one kind.
    fn key(distribution: &str, kind: Kind) -> std::borrow::Cow<'_, str> {
        match kind {
            Kind::Paths => distribution.into(),
            Kind::TagsOnly => format!("{distribution}#tags").into(),
        }
    }

    /// [`observe`](Self::observe) for one kind of invalidation.
    pub fn observe_kind(&self, distribution: &str, kind: Kind, took: Duration) {
        self.observe(&Self::key(distribution, kind), took);
    }

    /// [`window`](Self::window) for one kind of invalidation, from that kind's prior.
    pub fn window_kind(&self, distribution: &str, kind: Kind) -> Window {
        let prior = match kind {
            Kind::Paths => self.prior_median,
            Kind::TagsOnly => TAG_PRIOR_MEDIAN.min(self.prior_median),
        };
        self.window_with_prior(&Self::key(distribution, kind), prior)
    }

    pub fn observe(&self, distribution: &str, took: Duration) {
        let secs = took.as_secs_f64().max(0.1);
        let mut seen = self.seen.lock().expect("model lock");
        let history = seen.entry(distribution.to_owned()).or_default();
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(secs.ln());
    }

    /// Posterior-style blend of the prior and the observed log-times.
    pub fn window(&self, distribution: &str) -> Window {
        self.window_with_prior(distribution, self.prior_median)
    }

    fn window_with_prior(&self, distribution: &str, prior_median: Duration) -> Window {
        let prior_mu = prior_median.as_secs_f64().max(0.001).ln();
        let seen = self.seen.lock().expect("model lock");
        let logs = seen
            .get(distribution)
            .map(|h| h.iter().copied().collect::<Vec<_>>())
            .unwrap_or_default();
        let n = logs.len() as f64;
        let mu = (PRIOR_WEIGHT * prior_mu + logs.iter().sum::<f64>()) / (PRIOR_WEIGHT + n);
        let var = (PRIOR_WEIGHT * PRIOR_SIGMA.powi(2)
            + logs.iter().map(|l| (l - mu).powi(2)).sum::<f64>())
            / (PRIOR_WEIGHT + n);
        let sigma = var.sqrt();
        Window {
            early: Duration::from_secs_f64((mu - Z95 * sigma).exp()),
            late: Duration::from_secs_f64((mu + Z95 * sigma).exp()),
        }
    }
}

/// How to poll one invalidation.
#[derive(Clone, Debug, PartialEq)]
pub struct PollSettings {
    /// The shortest interval between two looks at one invalidation.
    pub min_interval: Duration,
    /// The longest interval.
    pub max_interval: Duration,
    /// Past the likely window, the interval grows as this fraction of the time since submission.
    pub growth: f64,
    /// Polls spread over the likely window (more: lower delay, more calls).
    pub polls_per_window: u32,
    /// Use the learned window; off: a plain growing schedule (`growth`, clamped).
    pub adaptive: bool,
    /// Share one ListInvalidations per distribution this often when two or more of its
    /// invalidations are in flight; `None`: always GetInvalidation.
    pub batch_interval: Option<Duration>,
    /// Median completion time assumed for a distribution not seen yet.
    pub prior_median: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
            growth: 0.25,
            polls_per_window: 6,
            adaptive: true,
            batch_interval: Some(Duration::from_secs(2)),
            prior_median: DEFAULT_PRIOR_MEDIAN,
        }
    }
}

impl PollSettings {
    /// The AWS CLI waiter's schedule (every 20 s), or Terraform's (every 30 s): for comparison.
    pub fn fixed(every: Duration) -> Self {
        Self {
            min_interval: every,
            max_interval: every,
            growth: 0.0,
            polls_per_window: 1,
            adaptive: false,
            batch_interval: None,
            prior_median: DEFAULT_PRIOR_MEDIAN,
        }
    }

    /// Wait this long before looking again, `since_submit` after submission.
    pub fn next_poll(&self, since_submit: Duration, window: Window, batched: bool) -> Duration {
        let growing = since_submit.mul_f64(self.growth);
        let interval = if !self.adaptive {
            growing
        } else if since_submit < window.early {
            // Completion is not plausible yet: look when it becomes so.
            window.early - since_submit
        } else if since_submit < window.late {
            (window.late - window.early) / self.polls_per_window.max(1)
        } else {
            growing
        };
        let mut next = interval.clamp(self.min_interval, self.max_interval.max(self.min_interval));
        if batched && (since_submit >= window.early || !self.adaptive) {
            // Inside the window a shared List answers for everyone: looking often costs no
            // extra calls per object.
            if let Some(batch) = self.batch_interval {
                next = next.min(batch.max(Duration::from_millis(1)));
            }
        }
        next
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
