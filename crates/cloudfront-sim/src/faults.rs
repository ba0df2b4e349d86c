//! Fault injection: throttling, 500, 503, `AccessDenied`, added latency and dropped
//! connections, drawn from a seeded RNG for chosen operations.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::operation::Operation;

/// Which faults to inject. Rates are probabilities per call, drawn independently of each other
/// in this order: dropped connection, `Throttling`, 500, 503, `AccessDenied` (so their sum must
/// not exceed 1).
/// The latency is real time (not scaled) and is added before any answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// The operations the faults apply to; empty means every operation.
    pub operations: Vec<Operation>,
    /// Probability of a `Throttling` (400, "Rate exceeded") answer.
    pub throttling_rate: f64,
    /// Probability of an `InternalFailure` (500) answer.
    pub internal_error_rate: f64,
    /// Probability of a `ServiceUnavailable` (503) answer.
    pub service_unavailable_rate: f64,
    /// Probability of closing the connection without answering.
    pub drop_connection_rate: f64,
    /// Probability of an `AccessDenied` (403) answer: with rate 1 for one operation, an IAM
    /// policy that lacks that operation's action.
    pub access_denied_rate: f64,
    /// Real milliseconds added before answering.
    pub latency_ms: u64,
    /// The RNG seed; setting a configuration restarts the RNG from it.
    pub seed: u64,
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Restricts the faults to these operations.
    pub fn for_operations(mut self, ops: impl IntoIterator<Item = Operation>) -> Self {
        self.operations = ops.into_iter().collect();
        self
    }

    /// Sets the throttling rate.
    pub fn throttling(mut self, rate: f64) -> Self {
        self.throttling_rate = rate;
        self
    }

    /// Sets the 500 rate.
    pub fn internal_errors(mut self, rate: f64) -> Self {
        self.internal_error_rate = rate;
        self
    }

    /// Sets the 503 rate.
    pub fn service_unavailable(mut self, rate: f64) -> Self {
        self.service_unavailable_rate = rate;
        self
    }

    /// Sets the dropped-connection rate.
    pub fn drop_connections(mut self, rate: f64) -> Self {
        self.drop_connection_rate = rate;
        self
    }

    /// Sets the `AccessDenied` rate.
    pub fn access_denied(mut self, rate: f64) -> Self {
        self.access_denied_rate = rate;
        self
    }

    /// Sets the added latency.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency_ms = latency.as_millis().try_into().unwrap_or(u64::MAX);
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks that every rate is a probability and that they sum to at most 1.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("throttling_rate", self.throttling_rate),
            ("internal_error_rate", self.internal_error_rate),
            ("service_unavailable_rate", self.service_unavailable_rate),
            ("drop_connection_rate", self.drop_connection_rate),
            ("access_denied_rate", self.access_denied_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        let sum: f64 = rates.iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-9 {
            return Err(format!("the fault rates sum to {sum}, more than 1"));
        }
        Ok(())
    }

    fn applies_to(&self, op: Operation) -> bool {
        self.operations.is_empty() || self.operations.contains(&op)
    }
}

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// Close the connection without answering.
    DropConnection,
    /// `Throttling`.
    Throttling,
    /// 500 `InternalFailure`.
    InternalError,
    /// 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// 403 `AccessDenied`.
    AccessDenied,
}

/// Decides faults call by call.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    config: FaultConfig,
    rng: StdRng,
}

impl FaultInjector {
    pub(crate) fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self { config, rng }
    }

    pub(crate) fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// The added latency and the fault for one call of `op`.
    pub(crate) fn decide(&mut self, op: Operation) -> (Duration, Fault) {
        let c = &self.config;
        if !c.applies_to(op) {
            return (Duration::ZERO, Fault::None);
        }
        let latency = Duration::from_millis(c.latency_ms);
        let any = c.drop_connection_rate
            + c.throttling_rate
            + c.internal_error_rate
            + c.service_unavailable_rate
            + c.access_denied_rate;
        if any <= 0.0 {
            return (latency, Fault::None);
        }
        let roll: f64 = self.rng.random();
        let mut edge = 0.0;
        for (rate, fault) in [
            (c.drop_connection_rate, Fault::DropConnection),
            (c.throttling_rate, Fault::Throttling),
            (c.internal_error_rate, Fault::InternalError),
            (c.service_unavailable_rate, Fault::ServiceUnavailable),
            (c.access_denied_rate, Fault::AccessDenied),
        ] {
            edge += rate;
            if roll < edge {
                return (latency, fault);
            }
        }
        (latency, Fault::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_operations() {
        let mut f = FaultInjector::new(
            FaultConfig::none()
                .throttling(1.0)
                .for_operations([Operation::CreateInvalidation]),
        );
        assert_eq!(f.decide(Operation::CreateInvalidation).1, Fault::Throttling);
        assert_eq!(f.decide(Operation::GetInvalidation).1, Fault::None);

        // An IAM policy without one action: that operation is denied, every other answers.
        let mut f = FaultInjector::new(
            FaultConfig::none()
                .access_denied(1.0)
                .for_operations([Operation::GetDistributionConfig]),
        );
        assert_eq!(
            f.decide(Operation::GetDistributionConfig).1,
            Fault::AccessDenied
        );
        assert_eq!(f.decide(Operation::CreateInvalidation).1, Fault::None);

        let config = FaultConfig::none()
            .internal_errors(0.25)
            .service_unavailable(0.25)
            .seed(7);
        let run = || {
            let mut f = FaultInjector::new(config.clone());
            (0..1000)
                .map(|_| f.decide(Operation::GetInvalidation).1)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run(), "seeded");
        let count = |k| a.iter().filter(|&&x| x == k).count();
        assert!(
            (180..320).contains(&count(Fault::InternalError)),
            "{}",
            count(Fault::InternalError)
        );
        assert!((180..320).contains(&count(Fault::ServiceUnavailable)));
        assert_eq!(count(Fault::Throttling), 0);
    }

    #[test]
    fn validation() {
        assert!(FaultConfig::none().throttling(1.5).validate().is_err());
        assert!(
            FaultConfig::none()
                .throttling(0.6)
                .drop_connections(0.6)
                .validate()
                .is_err()
        );
        assert!(
            FaultConfig::none()
                .throttling(0.5)
                .drop_connections(0.5)
                .validate()
                .is_ok()
        );
        let json = r#"{"operations":["GetInvalidation"],"latency_ms":20}"#;
        let parsed: FaultConfig = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.latency_ms, 20);
        assert_eq!(parsed.operations, vec![Operation::GetInvalidation]);
        assert!(serde_json::from_str::<FaultConfig>(r#"{"throttle":1}"#).is_err());
    }
}
