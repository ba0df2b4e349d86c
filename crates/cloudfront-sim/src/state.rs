//! Distributions, invalidations, quotas and idempotency: the CloudFront semantics, free of I/O.
//!
//! Every method takes the simulated time `now` as an argument, so tests drive time by hand.
//! An invalidation's status is derived from its completion time: `InProgress` before it,
//! `Completed` from it on.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::completion::{Completion, CompletionSampler};
use super::counters::DistributionCounters;
use super::errors::ApiError;
use super::paths::{Batch, is_tag, is_wildcard};

/// Per-distribution limits on what may be in progress at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Individual-object (non-wildcard) paths in progress; CloudFront's default is 3,000.
    pub max_object_paths_in_progress: u64,
    /// Wildcard paths in progress; CloudFront's default is 15.
    pub max_wildcard_paths_in_progress: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_object_paths_in_progress: 3000,
            max_wildcard_paths_in_progress: 15,
        }
    }
}

/// What a caller reference reused with different paths is answered with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallerReferenceConflict {
    /// `InvalidationBatchAlreadyExists` (409), as the API reference documents.
    #[default]
    BatchAlreadyExists,
    /// `InvalidArgument` (400) "…caller reference that was used for a previous invalidation
    /// batch…", as users of the live service report it.
    InvalidArgument,
}

/// The status of an invalidation, as written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvalidationStatus {
    /// Still propagating.
    InProgress,
    /// Done.
    Completed,
}

impl InvalidationStatus {
    /// `InProgress` or `Completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationStatus::InProgress => "InProgress",
            InvalidationStatus::Completed => "Completed",
        }
    }
}

/// One invalidation, with the instants a benchmark needs (all on the simulated clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidationRecord {
    /// The id, `I` and 13 upper-case letters and digits.
    pub id: String,
    /// The distribution it belongs to.
    pub distribution_id: String,
    /// The distribution tenant it was created for (`CreateInvalidationForDistributionTenant`);
    /// `None` for the distribution's own invalidations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_tenant_id: Option<String>,
    /// The caller reference it was created with.
    pub caller_reference: String,
    /// The paths, in request order.
    pub paths: Vec<String>,
    /// When it was created (the `CreateTime` reported), millisecond precision.
    pub create_time: Timestamp,
    /// When it completes (or completed).
    pub completion_time: Timestamp,
    /// When a client was first told it is `Completed` (by `GetInvalidation`,
    /// `ListInvalidations` or a replayed `CreateInvalidation`), if yet.
    pub first_reported_completed: Option<Timestamp>,
    /// The status when this copy was taken.
    pub status: InvalidationStatus,
}

impl InvalidationRecord {
    fn status_at(&self, now: Timestamp) -> InvalidationStatus {
        if now >= self.completion_time {
            InvalidationStatus::Completed
        } else {
            InvalidationStatus::InProgress
        }
    }

    fn refresh(&mut self, now: Timestamp) {
        self.status = self.status_at(now);
    }

    /// Number of wildcard paths.
    pub fn wildcard_paths(&self) -> u64 {
        self.paths.iter().filter(|p| is_wildcard(p)).count() as u64
    }

    /// Number of cache tag items (`#tag`); they count with the individual-object paths.
    pub fn tag_items(&self) -> u64 {
        self.paths.iter().filter(|p| is_tag(p)).count() as u64
    }

    /// Number of individual-object paths.
    pub fn object_paths(&self) -> u64 {
        self.paths.len() as u64 - self.wildcard_paths()
    }
}

/// What `GetDistribution` reports about a distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionInfo {
    /// The id.
    pub id: String,
    /// `dxxxxxxxxxxxxx.cloudfront.net`.
    pub domain_name: String,
    /// The `ETag` of its configuration.
    pub etag: String,
    /// When it was added to the simulator.
    pub last_modified: Timestamp,
    /// Invalidations in progress now.
    pub in_progress_invalidation_batches: u64,
    /// `CacheTagConfig.HeaderName`, when the distribution has one.
    pub cache_tag_header: Option<String>,
}

/// The result of `CreateInvalidation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new invalidation.
    New(InvalidationRecord),
    /// The invalidation created before with the same caller reference and paths.
    Existing(InvalidationRecord),
}

impl Created {
    /// The invalidation, new or existing.
    pub fn record(&self) -> &InvalidationRecord {
        match self {
            Created::New(r) | Created::Existing(r) => r,
        }
    }
}

/// One page of `ListInvalidations`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidationPage {
    /// The invalidations on this page.
    pub items: Vec<InvalidationRecord>,
    /// Whether more follow.
    pub is_truncated: bool,
    /// The marker for the next page (the id of the last item), when truncated.
    pub next_marker: Option<String>,
}

#[derive(Debug)]
struct Distribution {
    domain_name: String,
    etag: String,
    last_modified: Timestamp,
    /// `CacheTagConfig.HeaderName`, when the distribution has one.
    cache_tag_header: Option<String>,
    /// In creation order, the distribution's own and its tenants'.
    invalidations: Vec<InvalidationRecord>,
    /// (tenant, caller reference) → index: each tenant has its own caller references.
    by_caller_reference: HashMap<(Option<String>, String), usize>,
    counters: DistributionCounters,
}

impl Distribution {
    /// (invalidations, wildcard paths, object paths) in progress at `now`, tenants' included:
    /// the CloudFront docs do not say whether a tenant's invalidations count against its
    /// multi-tenant distribution's quota, and the simulator takes the conservative reading
    /// (they do; see docs/simulator.md).
    fn in_progress(&self, now: Timestamp) -> (u64, u64, u64) {
        self.invalidations
            .iter()
            .filter(|i| i.status_at(now) == InvalidationStatus::InProgress)
            .fold((0, 0, 0), |(n, w, o), i| {
                (n + 1, w + i.wildcard_paths(), o + i.object_paths())
            })
    }

    fn report(record: &mut InvalidationRecord, now: Timestamp) -> InvalidationRecord {
        record.refresh(now);
        if record.status == InvalidationStatus::Completed
            && record.first_reported_completed.is_none()
        {
            record.first_reported_completed = Some(now);
        }
        record.clone()
    }
}

/// Settings of the state machine.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// In-progress quotas.
    pub quotas: Quotas,
    /// Completion delays.
    pub completion: Completion,
    /// The answer to a caller reference reused with other paths.
    pub conflict: CallerReferenceConflict,
    /// Completion delays of tag-only invalidations (CloudFront: "under 25 seconds at P95").
    pub tag_completion: Completion,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            quotas: Quotas::default(),
            completion: Completion::default(),
            conflict: CallerReferenceConflict::default(),
            tag_completion: Completion::Fixed(DEFAULT_TAG_COMPLETION),
        }
    }
}

/// How long a tag-only invalidation stays in progress unless configured: AWS states "under 25
/// seconds at P95" for tag invalidations (What's New, 2026-04-29).
pub const DEFAULT_TAG_COMPLETION: Duration = Duration::from_secs(5);

/// Everything the simulator knows.
#[derive(Debug)]
pub struct State {
    distributions: BTreeMap<String, Distribution>,
    /// Distribution tenant id → its multi-tenant distribution.
    tenants: BTreeMap<String, String>,
    denied: BTreeSet<String>,
    quotas: Quotas,
    completion: CompletionSampler,
    tag_completion: CompletionSampler,
    conflict: CallerReferenceConflict,
    ids: StdRng,
    used_ids: HashSet<String>,
    invalidations_created: u64,
}

const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn random_chars(rng: &mut StdRng, n: usize, charset: &[u8]) -> String {
    (0..n)
        .map(|_| charset[rng.random_range(0..charset.len())] as char)
        .collect()
}

fn millis(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond())
        .expect("a valid timestamp stays valid truncated to milliseconds")
}

fn sim_duration(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl State {
    /// An empty state.
    pub fn new(config: StateConfig) -> Self {
        Self {
            distributions: BTreeMap::new(),
            tenants: BTreeMap::new(),
            denied: BTreeSet::new(),
            quotas: config.quotas,
            completion: CompletionSampler::new(config.completion),
            tag_completion: CompletionSampler::new(config.tag_completion),
            conflict: config.conflict,
            ids: StdRng::from_os_rng(),
            used_ids: HashSet::new(),
            invalidations_created: 0,
        }
    }

    /// Adds a distribution; false if it already existed.
    pub fn add_distribution(&mut self, id: &str, now: Timestamp) -> bool {
        if self.distributions.contains_key(id) {
            return false;
        }
        let domain_name = format!(
            "d{}.cloudfront.net",
            random_chars(&mut self.ids, 13, b"abcdefghijklmnopqrstuvwxyz0123456789")
        );
        let etag = format!("E{}", random_chars(&mut self.ids, 13, ID_CHARS));
        self.distributions.insert(
            id.to_string(),
            Distribution {
                domain_name,
                etag,
                last_modified: millis(now),
                cache_tag_header: None,
                invalidations: Vec::new(),
                by_caller_reference: HashMap::new(),
                counters: DistributionCounters::default(),
            },
        );
        true
    }

    /// Adds distribution tenant `tenant` of distribution `distribution`; `Ok(false)` if it
    /// already existed (for that distribution).
    pub fn add_tenant(&mut self, tenant: &str, distribution: &str) -> Result<bool, String> {
        if !self.distributions.contains_key(distribution) {
            return Err(format!("no distribution {distribution}"));
        }
        match self.tenants.get(tenant) {
            Some(d) if d == distribution => Ok(false),
            Some(d) => Err(format!(
                "tenant {tenant} already belongs to distribution {d}"
            )),
            None => {
                self.tenants
                    .insert(tenant.to_string(), distribution.to_string());
                Ok(true)
            }
        }
    }

    /// Tenant id → distribution id, for every tenant.
    pub fn tenants(&self) -> BTreeMap<String, String> {
        self.tenants.clone()
    }

    /// Sets or removes a distribution's `CacheTagConfig` (the header its origin tags with).
    pub fn set_cache_tag_header(&mut self, id: &str, header: Option<String>) -> Result<(), String> {
        let dist = self
            .distributions
            .get_mut(id)
            .ok_or_else(|| format!("no distribution {id}"))?;
        dist.cache_tag_header = header;
        Ok(())
    }

    /// The distribution's `CacheTagConfig.HeaderName`, if it has one.
    pub fn cache_tag_header(&self, id: &str) -> Option<String> {
        self.distributions
            .get(id)
            .and_then(|d| d.cache_tag_header.clone())
    }

    /// `AccessDenied` for a denied tenant (or a tenant of a denied distribution),
    /// `EntityNotFound` for an unknown one; else the tenant's distribution.
    pub fn check_tenant(&self, tenant: &str) -> Result<String, ApiError> {
        if self.denied.contains(tenant) {
            return Err(ApiError::access_denied());
        }
        let distribution = self
            .tenants
            .get(tenant)
            .ok_or_else(|| ApiError::entity_not_found("distribution tenant"))?;
        if self.denied.contains(distribution) {
            return Err(ApiError::access_denied());
        }
        Ok(distribution.clone())
    }

    /// Makes every call on `id` answer `AccessDenied` (or stops doing so).
    pub fn set_access_denied(&mut self, id: &str, denied: bool) {
        if denied {
            self.denied.insert(id.to_string());
        } else {
            self.denied.remove(id);
        }
    }

    /// The ids that answer `AccessDenied`.
    pub fn denied_ids(&self) -> Vec<String> {
        self.denied.iter().cloned().collect()
    }

    /// The ids of the distributions that exist.
    pub fn distribution_ids(&self) -> Vec<String> {
        self.distributions.keys().cloned().collect()
    }

    /// `AccessDenied` for a denied distribution, `NoSuchDistribution` for an unknown one.
    pub fn check_distribution(&self, id: &str) -> Result<(), ApiError> {
        if self.denied.contains(id) {
            return Err(ApiError::access_denied());
        }
        if !self.distributions.contains_key(id) {
            return Err(ApiError::no_such_distribution());
        }
        Ok(())
    }

    fn new_id(&mut self) -> String {
        loop {
            let id = format!("I{}", random_chars(&mut self.ids, 13, ID_CHARS));
            if self.used_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// `CreateInvalidation`: idempotency by caller reference, then the quotas, then a new
    /// invalidation that completes after a delay drawn from the completion model (tag-only
    /// batches: from the tag completion model).
    pub fn create_invalidation(
        &mut self,
        distribution_id: &str,
        batch: Batch,
        now: Timestamp,
    ) -> Result<Created, ApiError> {
        self.check_distribution(distribution_id)?;
        self.create_in(distribution_id, None, batch, now)
    }

    /// `CreateInvalidationForDistributionTenant`: the same, on the tenant's distribution
    /// (shared quotas), with the tenant's own caller references.
    pub fn create_invalidation_for_tenant(
        &mut self,
        tenant: &str,
        batch: Batch,
        now: Timestamp,
    ) -> Result<Created, ApiError> {
        let distribution_id = self.check_tenant(tenant)?;
        self.create_in(&distribution_id, Some(tenant.to_string()), batch, now)
    }

    fn create_in(
        &mut self,
        distribution_id: &str,
        tenant: Option<String>,
        batch: Batch,
        now: Timestamp,
    ) -> Result<Created, ApiError> {
        let quotas = self.quotas;
        let conflict = self.conflict;
        let dist = self
            .distributions
            .get_mut(distribution_id)
            .ok_or_else(ApiError::no_such_distribution)?;
        let key = (tenant.clone(), batch.caller_reference.clone());
        if let Some(&index) = dist.by_caller_reference.get(&key) {
            let existing = &mut dist.invalidations[index];
            let mut before = existing.paths.clone();
            let mut requested = batch.paths.clone();
            before.sort();
            requested.sort();
            if before != requested {
                return Err(match conflict {
                    CallerReferenceConflict::BatchAlreadyExists => {
                        ApiError::invalidation_batch_already_exists()
                    }
                    CallerReferenceConflict::InvalidArgument => ApiError::caller_reference_reused(),
                });
            }
            let record = Distribution::report(existing, now);
            dist.counters.idempotent_replays += 1;
            return Ok(Created::Existing(record));
        }

        let new_wildcards = batch.paths.iter().filter(|p| is_wildcard(p)).count() as u64;
        let new_objects = batch.paths.len() as u64 - new_wildcards;
        let (running, wildcards, objects) = dist.in_progress(now);
        if new_wildcards > 0 && wildcards + new_wildcards > quotas.max_wildcard_paths_in_progress {
            return Err(ApiError::too_many_invalidations_in_progress(format!(
                "Processing your request will cause you to exceed the maximum number of in-progress wildcard invalidations \
                 ({wildcards} in progress + {new_wildcards} requested > {}).",
                quotas.max_wildcard_paths_in_progress
            )));
        }
        if new_objects > 0 && objects + new_objects > quotas.max_object_paths_in_progress {
            return Err(ApiError::too_many_invalidations_in_progress(format!(
                "Processing your request will cause you to exceed the maximum number of in-progress invalidations of individual paths \
                 ({objects} in progress + {new_objects} requested > {}).",
                quotas.max_object_paths_in_progress
            )));
        }

        let tags_only = batch.paths.iter().all(|p| is_tag(p));
        let delay = sim_duration(if tags_only {
            self.tag_completion.sample()
        } else {
            self.completion.sample()
        });
        let id = self.new_id();
        let create_time = millis(now);
        let completion_time = create_time.saturating_add(delay).expect("saturating");
        let mut record = InvalidationRecord {
            id,
            distribution_id: distribution_id.to_string(),
            distribution_tenant_id: tenant,
            caller_reference: batch.caller_reference.clone(),
            paths: batch.paths,
            create_time,
            completion_time,
            first_reported_completed: None,
            status: InvalidationStatus::InProgress,
        };
        let reported = Distribution::report(&mut record, now);
        self.invalidations_created += 1;
        let dist = self
            .distributions
            .get_mut(distribution_id)
            .expect("checked");
        dist.by_caller_reference
            .insert(key, dist.invalidations.len());
        dist.invalidations.push(record);
        let c = &mut dist.counters;
        c.invalidations_created += 1;
        c.paths_billed += new_wildcards + new_objects;
        c.wildcard_paths_billed += new_wildcards;
        if reported.status == InvalidationStatus::InProgress {
            c.peak_in_progress_invalidations = c.peak_in_progress_invalidations.max(running + 1);
            c.peak_in_progress_wildcard_paths = c
                .peak_in_progress_wildcard_paths
                .max(wildcards + new_wildcards);
            c.peak_in_progress_object_paths =
                c.peak_in_progress_object_paths.max(objects + new_objects);
        }
        Ok(Created::New(reported))
    }

    /// `GetInvalidation`: the distribution's own invalidations (not its tenants').
    pub fn get_invalidation(
        &mut self,
        distribution_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<InvalidationRecord, ApiError> {
        self.check_distribution(distribution_id)?;
        self.get_in(distribution_id, None, id, now)
    }

    /// `GetInvalidationForDistributionTenant`: that tenant's invalidations only.
    pub fn get_invalidation_for_tenant(
        &mut self,
        tenant: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<InvalidationRecord, ApiError> {
        let distribution_id = self.check_tenant(tenant)?;
        self.get_in(&distribution_id, Some(tenant), id, now)
    }

    fn get_in(
        &mut self,
        distribution_id: &str,
        tenant: Option<&str>,
        id: &str,
        now: Timestamp,
    ) -> Result<InvalidationRecord, ApiError> {
        let dist = self
            .distributions
            .get_mut(distribution_id)
            .ok_or_else(ApiError::no_such_distribution)?;
        let record = dist
            .invalidations
            .iter_mut()
            .find(|i| i.id == id && i.distribution_tenant_id.as_deref() == tenant)
            .ok_or_else(ApiError::no_such_invalidation)?;
        Ok(Distribution::report(record, now))
    }

    /// `ListInvalidations`: newest first; `marker` is the id of the last invalidation of the
    /// previous page. An unknown marker gives an empty, final page.
    pub fn list_invalidations(
        &mut self,
        distribution_id: &str,
        marker: Option<&str>,
        max_items: usize,
        now: Timestamp,
    ) -> Result<InvalidationPage, ApiError> {
        self.check_distribution(distribution_id)?;
        self.list_in(distribution_id, None, marker, max_items, now)
    }

    /// `ListInvalidationsForDistributionTenant`: that tenant's invalidations, newest first.
    pub fn list_invalidations_for_tenant(
        &mut self,
        tenant: &str,
        marker: Option<&str>,
        max_items: usize,
        now: Timestamp,
    ) -> Result<InvalidationPage, ApiError> {
        let distribution_id = self.check_tenant(tenant)?;
        self.list_in(&distribution_id, Some(tenant), marker, max_items, now)
    }

    fn list_in(
        &mut self,
        distribution_id: &str,
        tenant: Option<&str>,
        marker: Option<&str>,
        max_items: usize,
        now: Timestamp,
    ) -> Result<InvalidationPage, ApiError> {
        let dist = self
            .distributions
            .get_mut(distribution_id)
            .ok_or_else(ApiError::no_such_distribution)?;
        let newest_first: Vec<usize> = (0..dist.invalidations.len())
            .rev()
            .filter(|&i| dist.invalidations[i].distribution_tenant_id.as_deref() == tenant)
            .collect();
        let start = match marker {
            None | Some("") => 0,
            Some(m) => match newest_first
                .iter()
                .position(|&i| dist.invalidations[i].id == m)
            {
                Some(pos) => pos + 1,
                None => newest_first.len(),
            },
        };
        let rest = &newest_first[start..];
        let page: Vec<usize> = rest.iter().copied().take(max_items).collect();
        let is_truncated = rest.len() > page.len();
        let items: Vec<InvalidationRecord> = page
            .iter()
            .map(|&i| Distribution::report(&mut dist.invalidations[i], now))
            .collect();
        let next_marker = if is_truncated {
            items.last().map(|r| r.id.clone())
        } else {
            None
        };
        Ok(InvalidationPage {
            items,
            is_truncated,
            next_marker,
        })
    }

    /// `GetDistribution` and `GetDistributionConfig`.
    pub fn distribution_info(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<DistributionInfo, ApiError> {
        self.check_distribution(id)?;
        let dist = &self.distributions[id];
        Ok(DistributionInfo {
            id: id.to_string(),
            domain_name: dist.domain_name.clone(),
            etag: dist.etag.clone(),
            last_modified: dist.last_modified,
            in_progress_invalidation_batches: dist.in_progress(now).0,
            cache_tag_header: dist.cache_tag_header.clone(),
        })
    }

    /// Every invalidation of a distribution, oldest first, status as of `now` (no access check,
    /// and nothing counts as reported to a client).
    pub fn invalidations(&self, distribution_id: &str, now: Timestamp) -> Vec<InvalidationRecord> {
        self.distributions
            .get(distribution_id)
            .map(|d| {
                d.invalidations
                    .iter()
                    .map(|i| {
                        let mut i = i.clone();
                        i.refresh(now);
                        i
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Completes every invalidation still in progress, as of `now`; returns how many.
    pub fn complete_all(&mut self, now: Timestamp) -> usize {
        let now = millis(now);
        let mut n = 0;
        for dist in self.distributions.values_mut() {
            for inv in &mut dist.invalidations {
                if inv.completion_time > now {
                    inv.completion_time = now.max(inv.create_time);
                    n += 1;
                }
            }
        }
        n
    }

    /// New invalidations created over all distributions.
    pub fn invalidations_created(&self) -> u64 {
        self.invalidations_created
    }

    /// Per-distribution counters, with the in-progress figures as of `now`.
    pub fn distribution_counters(&self, now: Timestamp) -> BTreeMap<String, DistributionCounters> {
        self.distributions
            .iter()
            .map(|(id, d)| {
                let mut c = d.counters.clone();
                (
                    c.in_progress_invalidations,
                    c.in_progress_wildcard_paths,
                    c.in_progress_object_paths,
                ) = d.in_progress(now);
                (id.clone(), c)
            })
            .collect()
    }

    /// Forgets the counters (not the invalidations).
    pub fn reset_counters(&mut self) {
        self.invalidations_created = 0;
        for d in self.distributions.values_mut() {
            d.counters = DistributionCounters::default();
        }
    }
}

#[cfg(test)]
mod tests;
