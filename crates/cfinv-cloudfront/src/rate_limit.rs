//! One client-side rate limit shared by every CloudFront call of the process, so a burst of
//! objects queues here instead of drawing `Throttling` errors from CloudFront.

use std::num::NonZeroU32;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{
    CloudFront, CloudFrontError, CreateInvalidation, DistributionConfig, Invalidation,
    InvalidationPage,
};

pub struct RateLimited<C> {
    inner: C,
    limiter: DefaultDirectRateLimiter,
}

impl<C> RateLimited<C> {
    /// At most `per_second` calls per second on average, with bursts of the same size.
    pub fn new(inner: C, per_second: NonZeroU32) -> Self {
        Self {
            inner,
            limiter: RateLimiter::direct(Quota::per_second(per_second)),
        }
    }
}

#[async_trait]
impl<C: CloudFront> CloudFront for RateLimited<C> {
    async fn create_invalidation(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        self.limiter.until_ready().await;
        self.inner.create_invalidation(request).await
    }

    async fn get_invalidation(
        &self,
        distribution_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        self.limiter.until_ready().await;
        self.inner.get_invalidation(distribution_id, id).await
    }

    async fn list_invalidations(
        &self,
        distribution_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        self.limiter.until_ready().await;
        self.inner
            .list_invalidations(distribution_id, marker, max_items)
            .await
    }

    async fn create_invalidation_for_distribution_tenant(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        self.limiter.until_ready().await;
        self.inner
            .create_invalidation_for_distribution_tenant(request)
            .await
    }

    async fn get_invalidation_for_distribution_tenant(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        self.limiter.until_ready().await;
        self.inner
            .get_invalidation_for_distribution_tenant(tenant_id, id)
            .await
    }

    async fn list_invalidations_for_distribution_tenant(
        &self,
        tenant_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        self.limiter.until_ready().await;
        self.inner
            .list_invalidations_for_distribution_tenant(tenant_id, marker, max_items)
            .await
    }

    async fn get_distribution_config(
        &self,
        distribution_id: &str,
    ) -> Result<DistributionConfig, CloudFrontError> {
        self.limiter.until_ready().await;
        self.inner.get_distribution_config(distribution_id).await
    }
}
