//! How long an invalidation stays `InProgress` (in simulated time).

use std::time::Duration;

use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};

/// The completion delay model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// Every invalidation completes this long after it was created.
    Fixed(Duration),
    /// Delays drawn from a log-normal distribution with the given median and shape `sigma`
    /// (the standard deviation of the delay's logarithm), from an RNG seeded with `seed`.
    /// Field notes put typical CloudFront invalidations at 30–60 s with a tail to 10–15 minutes:
    /// a median of 45 s with sigma 0.8 gives a 95th percentile of about 2.5 minutes.
    LogNormal {
        /// The median delay.
        median: Duration,
        /// The shape; 0 makes every delay the median.
        sigma: f64,
        /// The seed, so that runs are reproducible.
        seed: u64,
    },
}

impl Default for Completion {
    fn default() -> Self {
        Completion::Fixed(Duration::from_secs(30))
    }
}

impl Completion {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Completion::Fixed(_) => Ok(()),
            Completion::LogNormal { median, sigma, .. } => {
                if median.is_zero() {
                    return Err("log-normal completion needs a median above zero".into());
                }
                if !sigma.is_finite() || *sigma < 0.0 {
                    return Err(format!(
                        "log-normal sigma must be finite and not negative, got {sigma}"
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Draws completion delays.
#[derive(Debug)]
pub(crate) struct CompletionSampler {
    model: Completion,
    rng: StdRng,
}

impl CompletionSampler {
    pub(crate) fn new(model: Completion) -> Self {
        let seed = match &model {
            Completion::Fixed(_) => 0,
            Completion::LogNormal { seed, .. } => *seed,
        };
        Self {
            model,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next delay.
    pub(crate) fn sample(&mut self) -> Duration {
        match &self.model {
            Completion::Fixed(d) => *d,
            Completion::LogNormal { median, sigma, .. } => {
                let dist = LogNormal::new(median.as_secs_f64().ln(), *sigma)
                    .expect("validated parameters");
                let secs: f64 = dist.sample(&mut self.rng);
                Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_is_fixed() {
        let mut s = CompletionSampler::new(Completion::Fixed(Duration::from_secs(7)));
        assert_eq!(s.sample(), Duration::from_secs(7));
        assert_eq!(s.sample(), Duration::from_secs(7));
    }

    #[test]
    fn log_normal_is_seeded_and_centred_on_the_median() {
        let model = Completion::LogNormal {
            median: Duration::from_secs(45),
            sigma: 0.8,
            seed: 42,
        };
        let draw = |n| {
            let mut s = CompletionSampler::new(model.clone());
            (0..n).map(|_| s.sample()).collect::<Vec<_>>()
        };
        let a = draw(2001);
        assert_eq!(a, draw(2001), "same seed, same delays");
        let mut sorted = a.clone();
        sorted.sort();
        let median = sorted[1000].as_secs_f64();
        assert!((38.0..53.0).contains(&median), "median {median}");
        assert!(
            sorted[0] < Duration::from_secs(20) && sorted[2000] > Duration::from_secs(120),
            "spread"
        );
    }

    #[test]
    fn zero_sigma_gives_the_median() {
        let mut s = CompletionSampler::new(Completion::LogNormal {
            median: Duration::from_secs(10),
            sigma: 0.0,
            seed: 1,
        });
        let d = s.sample().as_secs_f64();
        assert!((d - 10.0).abs() < 1e-6, "{d}");
    }

    #[test]
    fn validation() {
        assert!(
            Completion::LogNormal {
                median: Duration::ZERO,
                sigma: 1.0,
                seed: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            Completion::LogNormal {
                median: Duration::from_secs(1),
                sigma: -1.0,
                seed: 0
            }
            .validate()
            .is_err()
        );
        assert!(Completion::Fixed(Duration::ZERO).validate().is_ok());
    }
}
