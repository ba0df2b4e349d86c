//! Backoff for retryable errors. (The polling schedule of in-progress invalidations is in
//! [`crate::polling`].)

use std::time::Duration;

use rand::Rng;

/// Backoff for retryable errors (throttling, 5xx, network) and for waiting on a quota slot.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySettings {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl RetrySettings {
    /// Capped exponential backoff with "equal jitter": between half and all of
    /// `base * 2^attempt`, capped at `max`. Jitter keeps many objects that failed together from
    /// retrying together.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max);
        let half = exp / 2;
        half + exp.saturating_sub(half).mul_f64(rng.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let r = RetrySettings::default();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..40 {
            let d = r.delay(attempt, &mut rng);
            let exp = Duration::from_secs(1u64 << attempt.min(6)).min(r.max);
            assert!(
                d >= exp / 2 && d <= exp,
                "attempt {attempt}: {d:?} not in [{:?}, {exp:?}]",
                exp / 2
            );
        }
        let spread: std::collections::BTreeSet<_> =
            (0..20).map(|_| r.delay(5, &mut rng).as_millis()).collect();
        assert!(spread.len() > 10, "jitter spreads retries: {spread:?}");
    }
}
