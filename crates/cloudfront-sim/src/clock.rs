//! Simulated time: real time since start, multiplied by a time scale.
//!
//! With a time scale of 60 a simulated minute passes in one real second. Every time the
//! simulator reports (`CreateTime`, completion instants) is on this simulated clock, which starts
//! at the real wall-clock time when the simulator starts, so reported times stay consistent with
//! each other and with the configured completion delays.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// A clock whose simulated time runs `scale` times faster than real time.
#[derive(Debug, Clone)]
pub struct ScaledClock {
    real_origin: Instant,
    sim_origin: Timestamp,
    scale: f64,
}

impl ScaledClock {
    /// Starts a clock now; `scale` must be finite and positive.
    pub fn new(scale: f64) -> Self {
        assert!(
            scale.is_finite() && scale > 0.0,
            "time scale must be finite and positive, got {scale}"
        );
        Self {
            real_origin: Instant::now(),
            sim_origin: Timestamp::now(),
            scale,
        }
    }

    /// The time scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The simulated time now.
    pub fn now(&self) -> Timestamp {
        let elapsed = self.real_origin.elapsed().mul_f64(self.scale);
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX);
        self.sim_origin
            .saturating_add(elapsed)
            .expect("adding a duration to a timestamp saturates")
    }

    /// The real instant at which the simulated clock shows `t` (the start instant for earlier `t`).
    pub fn real_instant(&self, t: Timestamp) -> Instant {
        let sim = t.duration_since(self.sim_origin);
        if sim.is_negative() {
            return self.real_origin;
        }
        let sim = Duration::try_from(sim).unwrap_or(Duration::MAX);
        self.real_origin + sim.div_f64(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_time_runs_faster_and_maps_back_to_real_instants() {
        let clock = ScaledClock::new(60.0);
        let t0 = clock.now();
        std::thread::sleep(Duration::from_millis(50));
        let advanced = clock.now().duration_since(t0);
        // 50 ms real is at least 3 s simulated.
        assert!(
            advanced >= SignedDuration::from_secs(3),
            "advanced {advanced:?}"
        );
        let minute_later = t0 + SignedDuration::from_secs(60);
        let real = clock.real_instant(minute_later);
        let from_origin = real.duration_since(clock.real_origin);
        assert!(
            from_origin >= Duration::from_millis(990) && from_origin <= Duration::from_millis(1010),
            "{from_origin:?}"
        );
    }
}
