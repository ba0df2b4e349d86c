//! Liveness and readiness, as the chart's probes see them.
//!
//! `/healthz` answers while the process runs. `/readyz` answers 200 when the controller's cache
//! has synced (leader) or this replica is a standby waiting for the lease: a standby is healthy
//! and must not be restarted or hidden. There is no CloudFront check: building the client
//! proves nothing, and asking CloudFront just for readiness would cost calls; CloudFront's
//! answers show in the `aws_calls_total` metric and in each object's status instead.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

#[derive(Clone, Debug, Default)]
pub struct Health {
    inner: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    cache_synced: AtomicBool,
    standby: AtomicBool,
}

impl Health {
    pub fn set_cache_synced(&self, v: bool) {
        self.inner.cache_synced.store(v, Ordering::Relaxed);
    }

    pub fn set_standby(&self, v: bool) {
        self.inner.standby.store(v, Ordering::Relaxed);
    }

    /// `Ok` when ready, else what is missing, in words.
    pub fn ready(&self) -> Result<&'static str, &'static str> {
        let f = &self.inner;
        if f.standby.load(Ordering::Relaxed) {
            return Ok("standby: waiting for the leader lease");
        }
        if f.cache_synced.load(Ordering::Relaxed) {
            Ok("leader: cache synced")
        } else {
            Err("cache not synced yet")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_a_synced_cache_or_standby() {
        let h = Health::default();
        assert_eq!(h.ready(), Err("cache not synced yet"));
        h.set_standby(true);
        assert!(h.ready().is_ok(), "a standby is ready");
        h.set_standby(false);
        assert_eq!(h.ready(), Err("cache not synced yet"));
        h.set_cache_synced(true);
        assert_eq!(h.ready(), Ok("leader: cache synced"));
    }
}
