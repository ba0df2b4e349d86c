//! When to ask CloudFront again: the polling schedule for in-progress invalidations and the
//! backoff for retryable errors. Pure functions of elapsed time, so a restarted operator picks
//! up the same schedule without remembering anything.

use std::time::Duration;

use rand::Rng;

/// Polling of `GetInvalidation`: frequent at first (most invalidations finish in under a
/// minute), backing off to a cap (some take 10-15 minutes).
#[derive(Clone, Debug, PartialEq)]
pub struct PollSettings {
    /// The shortest interval, used right after submission.
    pub min_interval: Duration,
    /// The longest interval.
    pub max_interval: Duration,
    /// The interval grows as this fraction of the time since submission.
    pub growth: f64,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            growth: 0.25,
        }
    }
}

impl PollSettings {
    /// Wait this long before the next `GetInvalidation`, given the time since submission.
    pub fn next_poll(&self, since_submit: Duration) -> Duration {
        since_submit
            .mul_f64(self.growth)
            .clamp(self.min_interval, self.max_interval.max(self.min_interval))
    }
}

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
    fn polling_starts_at_the_minimum_and_grows_to_the_cap() {
        let p = PollSettings::default();
        assert_eq!(p.next_poll(Duration::ZERO), Duration::from_secs(5));
        assert_eq!(
            p.next_poll(Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        assert_eq!(
            p.next_poll(Duration::from_secs(600)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn polling_makes_no_more_calls_than_the_cli_waiter_over_ten_minutes() {
        // The AWS CLI waiter polls every 20 s: 30 calls in 10 minutes.
        let p = PollSettings::default();
        let (mut t, mut calls) = (Duration::ZERO, 0);
        while t < Duration::from_secs(600) {
            t += p.next_poll(t);
            calls += 1;
        }
        assert!(calls <= 30, "{calls} polls in 10 minutes");
    }

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
