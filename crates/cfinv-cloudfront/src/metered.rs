//! A `CloudFront` decorator that counts every call by operation and outcome. Tests assert on the
//! counts (each call is money or waiting for a user); a [`CallSink`] (the operator's metrics)
//! exports them.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{
    CloudFront, CloudFrontError, CreateInvalidation, DistributionConfig, Invalidation,
    InvalidationPage, Operation,
};

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

/// Wraps a `CloudFront` and records each call in a `CallCounter`.
pub struct Metered<C> {
    inner: C,
    counter: CallCounter,
}

impl<C> Metered<C> {
    pub fn new(inner: C, counter: CallCounter) -> Self {
        Self { inner, counter }
    }

    fn observe<T>(&self, op: Operation, result: &Result<T, CloudFrontError>) {
        match result {
            Ok(_) => self.counter.record(op, "ok"),
            Err(e) => self.counter.record(op, e.label()),
        }
    }
}

#[async_trait]
impl<C: CloudFront> CloudFront for Metered<C> {
    async fn create_invalidation(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        let r = self.inner.create_invalidation(request).await;
        self.observe(Operation::CreateInvalidation, &r);
        r
    }

    async fn get_invalidation(
        &self,
        distribution_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        let r = self.inner.get_invalidation(distribution_id, id).await;
        self.observe(Operation::GetInvalidation, &r);
        r
    }

    async fn list_invalidations(
        &self,
        distribution_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        let r = self
            .inner
            .list_invalidations(distribution_id, marker, max_items)
            .await;
        self.observe(Operation::ListInvalidations, &r);
        r
    }

    async fn create_invalidation_for_distribution_tenant(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        let r = self
            .inner
            .create_invalidation_for_distribution_tenant(request)
            .await;
        self.observe(Operation::CreateInvalidationForDistributionTenant, &r);
        r
    }

    async fn get_invalidation_for_distribution_tenant(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        let r = self
            .inner
            .get_invalidation_for_distribution_tenant(tenant_id, id)
            .await;
        self.observe(Operation::GetInvalidationForDistributionTenant, &r);
        r
    }

    async fn list_invalidations_for_distribution_tenant(
        &self,
        tenant_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        let r = self
            .inner
            .list_invalidations_for_distribution_tenant(tenant_id, marker, max_items)
            .await;
        self.observe(Operation::ListInvalidationsForDistributionTenant, &r);
        r
    }

    async fn get_distribution_config(
        &self,
        distribution_id: &str,
    ) -> Result<DistributionConfig, CloudFrontError> {
        let r = self.inner.get_distribution_config(distribution_id).await;
        self.observe(Operation::GetDistributionConfig, &r);
        r
    }
}
