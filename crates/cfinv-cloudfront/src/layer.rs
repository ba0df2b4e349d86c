//! Decorators of a `CloudFront`: a [`Layer`] says once what it does around any call, and
//! [`Layered`] forwards every operation through it, so adding an operation touches one place
//! and a decorator never repeats the forwarding.

use std::future::Future;

use async_trait::async_trait;

use super::{
    CloudFront, CloudFrontError, CreateInvalidation, DistributionConfig, Invalidation,
    InvalidationPage, Operation,
};

/// What a decorator does around one call of operation `op`. `call` is the inner client's call,
/// not started yet: a layer may wait before it, look at its result, or both.
pub trait Layer: Send + Sync {
    fn around<T: Send>(
        &self,
        op: Operation,
        call: impl Future<Output = Result<T, CloudFrontError>> + Send,
    ) -> impl Future<Output = Result<T, CloudFrontError>> + Send;
}

/// A `CloudFront` whose every call goes through `layer` to `inner`.
pub struct Layered<L, C> {
    pub(crate) layer: L,
    pub(crate) inner: C,
}

#[async_trait]
impl<L: Layer, C: CloudFront> CloudFront for Layered<L, C> {
    async fn create_invalidation(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        let call = self.inner.create_invalidation(request);
        self.layer.around(Operation::CreateInvalidation, call).await
    }

    async fn get_invalidation(
        &self,
        distribution_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        let call = self.inner.get_invalidation(distribution_id, id);
        self.layer.around(Operation::GetInvalidation, call).await
    }

    async fn list_invalidations(
        &self,
        distribution_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        let call = self
            .inner
            .list_invalidations(distribution_id, marker, max_items);
        self.layer.around(Operation::ListInvalidations, call).await
    }

    async fn create_invalidation_for_distribution_tenant(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        let call = self
            .inner
            .create_invalidation_for_distribution_tenant(request);
        let op = Operation::CreateInvalidationForDistributionTenant;
        self.layer.around(op, call).await
    }

    async fn get_invalidation_for_distribution_tenant(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        let call = self
            .inner
            .get_invalidation_for_distribution_tenant(tenant_id, id);
        let op = Operation::GetInvalidationForDistributionTenant;
        self.layer.around(op, call).await
    }

    async fn list_invalidations_for_distribution_tenant(
        &self,
        tenant_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        let call = self
            .inner
            .list_invalidations_for_distribution_tenant(tenant_id, marker, max_items);
        let op = Operation::ListInvalidationsForDistributionTenant;
        self.layer.around(op, call).await
    }

    async fn get_distribution_config(
        &self,
        distribution_id: &str,
    ) -> Result<DistributionConfig, CloudFrontError> {
        let call = self.inner.get_distribution_config(distribution_id);
        self.layer
            .around(Operation::GetDistributionConfig, call)
            .await
    }
}
