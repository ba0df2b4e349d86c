//! What tests assert on: calls per operation and outcome, and per-distribution billing and peaks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::operation::Operation;

/// The outcome recorded for a call that was answered normally.
pub const OUTCOME_OK: &str = "ok";
/// The outcome recorded for a call whose connection the simulator closed without answering.
pub const OUTCOME_DROPPED: &str = "ConnectionDropped";

/// Per-distribution counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionCounters {
    /// New invalidations created (idempotent replays not included).
    pub invalidations_created: u64,
    /// `CreateInvalidation` calls answered with an existing invalidation (same caller reference
    /// and paths): nothing created, nothing billed.
    pub idempotent_replays: u64,
    /// Paths billed: every path of every new invalidation; a wildcard path counts as one.
    pub paths_billed: u64,
    /// Of `paths_billed`, the wildcard paths.
    pub wildcard_paths_billed: u64,
    /// The most invalidations that were in progress at once.
    pub peak_in_progress_invalidations: u64,
    /// The most wildcard paths that were in progress at once (quota: 15).
    pub peak_in_progress_wildcard_paths: u64,
    /// The most individual-object paths that were in progress at once (quota: 3,000).
    pub peak_in_progress_object_paths: u64,
    /// Invalidations in progress when the snapshot was taken.
    pub in_progress_invalidations: u64,
    /// Wildcard paths in progress when the snapshot was taken.
    pub in_progress_wildcard_paths: u64,
    /// Object paths in progress when the snapshot was taken.
    pub in_progress_object_paths: u64,
}

/// Calls per operation and outcome.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallCounters {
    calls: BTreeMap<Operation, BTreeMap<String, u64>>,
}

impl CallCounters {
    pub(crate) fn record(&mut self, op: Operation, outcome: &str) {
        *self
            .calls
            .entry(op)
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<Operation, BTreeMap<String, u64>> {
        self.calls.clone()
    }

    pub(crate) fn reset(&mut self) {
        self.calls.clear();
    }
}

/// A consistent copy of every counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// Calls per operation, then per outcome: `"ok"`, an error code (`"Throttling"`,
    /// `"NoSuchDistribution"`, …) or `"ConnectionDropped"`.
    pub calls: BTreeMap<Operation, BTreeMap<String, u64>>,
    /// New invalidations created, over all distributions.
    pub invalidations_created: u64,
    /// Per-distribution counters, for every distribution that exists.
    pub distributions: BTreeMap<String, DistributionCounters>,
}

impl CountersSnapshot {
    /// Calls of `op` that ended with `outcome`.
    pub fn calls(&self, op: Operation, outcome: &str) -> u64 {
        self.calls
            .get(&op)
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Calls of `op` whatever the outcome.
    pub fn calls_total(&self, op: Operation) -> u64 {
        self.calls.get(&op).map(|m| m.values().sum()).unwrap_or(0)
    }

    /// Calls of `op` answered normally.
    pub fn ok(&self, op: Operation) -> u64 {
        self.calls(op, OUTCOME_OK)
    }

    /// The counters of one distribution (all zero if it does not exist).
    pub fn distribution(&self, id: &str) -> DistributionCounters {
        self.distributions.get(id).cloned().unwrap_or_default()
    }

    /// Paths billed for one distribution.
    pub fn paths_billed(&self, id: &str) -> u64 {
        self.distribution(id).paths_billed
    }
}
