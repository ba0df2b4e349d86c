//! A `CloudFront` decorator that counts every call by operation and outcome. Tests assert on the
//! counts (each call is money or waiting for a user); a [`CallSink`] (the operator's metrics)
//! exports them.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
};

use super::layer::{Layer, Layered};
use super::{CloudFrontError, Operation};

/// Where each call is reported besides the counter: the operator's `aws_calls_total` metric.
pub trait CallSink: Send + Sync {
    fn record_call(&self, operation: &str, outcome: &str);
}

/// Calls made, keyed by operation and outcome (`"ok"` or the error label).
#[derive(Clone, Default)]
pub struct CallCounter {
    calls: Arc<Mutex<BTreeMap<(Operation, String), u64>>>,
    sink: Option<Arc<dyn CallSink>>,
}

impl std::fmt::Debug for CallCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCounter")
            .field("calls", &self.calls)
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

impl CallCounter {
    /// A counter that also reports every call to `sink`.
    pub fn with_sink(sink: Arc<dyn CallSink>) -> Self {
        Self {
            calls: Arc::default(),
            sink: Some(sink),
        }
    }

    pub fn record(&self, op: Operation, outcome: &str) {
        {
            let mut calls = self.calls.lock().expect("call counter lock");
            *calls.entry((op, outcome.to_owned())).or_default() += 1;
        }
        if let Some(sink) = &self.sink {
            sink.record_call(op.as_str(), outcome);
        }
    }

    /// Calls of one operation, whatever the outcome.
    pub fn calls(&self, op: Operation) -> u64 {
        let calls = self.calls.lock().expect("call counter lock");
        calls
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls of one operation with one outcome.
    pub fn outcome(&self, op: Operation, outcome: &str) -> u64 {
        let calls = self.calls.lock().expect("call counter lock");
        calls.get(&(op, outcome.to_owned())).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.calls.lock().expect("call counter lock").values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<(Operation, String), u64> {
        self.calls.lock().expect("call counter lock").clone()
    }
}

/// Records each call in a `CallCounter`: the [`Layer`] of [`Metered`].
pub struct Metering {
    counter: CallCounter,
}

/// Wraps a `CloudFront` and records each call in a `CallCounter`.
pub type Metered<C> = Layered<Metering, C>;

impl<C> Layered<Metering, C> {
    pub fn new(inner: C, counter: CallCounter) -> Self {
        Layered {
            layer: Metering { counter },
            inner,
        }
    }
}

impl Layer for Metering {
    async fn around<T: Send>(
        &self,
        op: Operation,
        call: impl Future<Output = Result<T, CloudFrontError>> + Send,
    ) -> Result<T, CloudFrontError> {
        let result = call.await;
        match &result {
            Ok(_) => self.counter.record(op, "ok"),
            Err(e) => self.counter.record(op, e.label()),
        }
        result
    }
}
