//! Liveness and readiness, as the chart's probes see them.
//!
//! `/healthz` answers while the process runs. `/readyz` answers 200 when the CloudFront client is
//! configured and either the controller's cache has synced (leader) or this replica is a
//! standby waiting for the lease: a standby is healthy and must not be restarted or hidden.

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
    cloudfront_configured: AtomicBool,
    cache_synced: AtomicBool,
    standby: AtomicBool,
}

impl Health {
    pub fn set_cloudfront_configured(&self, v: bool) {
        self.inner.cloudfront_configured.store(v, Ordering::Relaxed);
    }

    pub fn set_cache_synced(&self, v: bool) {
        self.inner.cache_synced.store(v, Ordering::Relaxed);
    }

    pub fn set_standby(&self, v: bool) {
        self.inner.standby.store(v, Ordering::Relaxed);
    }

    /// `Ok` when ready, else what is missing, in words.
    pub fn ready(&self) -> Result<&'static str, &'static str> {
        let f = &self.inner;
        if !f.cloudfront_configured.load(Ordering::Relaxed) {
            return Err("CloudFront client not configured yet");
        }
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
    fn ready_needs_cloudfront_and_a_synced_cache_or_standby() {
        let h = Health::default();
        assert!(h.ready().is_err());
        h.set_cloudfront_configured(true);
        assert_eq!(h.ready(), Err("cache not synced yet"));
        h.set_standby(true);
        assert!(h.ready().is_ok(), "a standby is ready");
        h.set_standby(false);
        h.set_cache_synced(true);
        assert!(h.ready().is_ok());
    }
}
