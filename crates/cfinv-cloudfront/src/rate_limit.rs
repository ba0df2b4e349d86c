//! One client-side rate limit shared by every CloudFront call of the process, so a burst of
//! objects queues here instead of drawing `Throttling` errors from CloudFront.

use std::{future::Future, num::NonZeroU32};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::layer::{Layer, Layered};
use super::{CloudFrontError, Operation};

/// Waits for the shared limiter before each call: the [`Layer`] of [`RateLimited`].
pub struct RateLimit {
    limiter: DefaultDirectRateLimiter,
}

/// Wraps a `CloudFront` so that its calls keep to one rate.
pub type RateLimited<C> = Layered<RateLimit, C>;

impl<C> Layered<RateLimit, C> {
    /// At most `per_second` calls per second on average, with bursts of the same size.
    pub fn new(inner: C, per_second: NonZeroU32) -> Self {
        Layered {
            layer: RateLimit {
                limiter: RateLimiter::direct(Quota::per_second(per_second)),
            },
            inner,
        }
    }
}

impl Layer for RateLimit {
    async fn around<T: Send>(
        &self,
        _: Operation,
        call: impl Future<Output = Result<T, CloudFrontError>> + Send,
    ) -> Result<T, CloudFrontError> {
        self.limiter.until_ready().await;
        call.await
    }
}
