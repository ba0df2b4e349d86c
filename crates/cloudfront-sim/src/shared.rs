//! The state the HTTP server, the control endpoint and the in-process handle share.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use super::clock::ScaledClock;
use super::counters::{CallCounters, CountersSnapshot};
use super::faults::FaultInjector;
use super::state::State;

/// Everything behind one lock, so counters are always consistent with the state.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) state: State,
    pub(crate) calls: CallCounters,
    pub(crate) faults: FaultInjector,
}

#[derive(Debug)]
pub(crate) struct Shared {
    core: Mutex<Core>,
    pub(crate) clock: ScaledClock,
    pub(crate) local_addr: SocketAddr,
}

impl Shared {
    pub(crate) fn new(core: Core, clock: ScaledClock, local_addr: SocketAddr) -> Self {
        Self {
            core: Mutex::new(core),
            clock,
            local_addr,
        }
    }

    /// The lock; a panic while holding it leaves plain data behind, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn counters(&self) -> CountersSnapshot {
        let now = self.clock.now();
        let core = self.lock();
        CountersSnapshot {
            calls: core.calls.snapshot(),
            invalidations_created: core.state.invalidations_created(),
            distributions: core.state.distribution_counters(now),
        }
    }

    pub(crate) fn reset_counters(&self) {
        let mut core = self.lock();
        core.calls.reset();
        core.state.reset_counters();
    }

    pub(crate) fn endpoint_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }
}
