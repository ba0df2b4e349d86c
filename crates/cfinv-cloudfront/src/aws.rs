//! The `CloudFront` trait on top of the official `aws-sdk-cloudfront` client.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_cloudfront::{
    Client,
    config::Credentials,
    error::{ProvideErrorMetadata, SdkError},
    types::{InvalidationBatch, Paths},
};
use jiff::Timestamp;

use super::{
    CloudFront, CloudFrontError, CreateInvalidation, DistributionConfig, Invalidation,
    InvalidationPage, InvalidationStatus, InvalidationSummary, Operation,
};

/// CloudFront is a global service whose requests are signed for us-east-1.
const CLOUDFRONT_REGION: &str = "us-east-1";

/// How to build the client. Credentials come from the default chain (environment, profile,
/// IRSA web identity, EKS Pod Identity, instance role) unless given here.
///
/// `Debug` is written by hand: it shows whether static credentials are set and the key id, never
/// the secret.
#[derive(Clone)]
pub struct AwsOptions {
    /// Send requests here instead of CloudFront (the simulator, a proxy). The SDK's own
    /// `AWS_ENDPOINT_URL_CLOUDFRONT` / `AWS_ENDPOINT_URL` are honoured when this is unset.
    pub endpoint_url: Option<String>,
    /// Attempts per call inside the SDK. The operator retries with its own backoff, so 1 keeps
    /// one logical call = one HTTP request and makes calls countable.
    pub max_attempts: u32,
    /// Give up on one attempt after this long.
    pub attempt_timeout: Duration,
    /// Static credentials (tests, the sandbox); `None` uses the default chain.
    pub static_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for AwsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsOptions")
            .field("endpoint_url", &self.endpoint_url)
            .field("max_attempts", &self.max_attempts)
            .field("attempt_timeout", &self.attempt_timeout)
            .field(
                "static_credentials",
                &self
                    .static_credentials
                    .as_ref()
                    .map(|(key_id, _)| format!("{key_id} / <secret redacted>")),
            )
            .finish()
    }
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            max_attempts: 1,
            attempt_timeout: Duration::from_secs(30),
            static_credentials: None,
        }
    }
}

/// `CloudFront` backed by `aws-sdk-cloudfront`.
#[derive(Clone, Debug)]
pub struct AwsCloudFront {
    client: Client,
}

impl AwsCloudFront {
    pub async fn new(options: &AwsOptions) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(CLOUDFRONT_REGION))
            .retry_config(RetryConfig::standard().with_max_attempts(options.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(options.attempt_timeout)
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            );
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((key, secret)) = &options.static_credentials {
            loader =
                loader.credentials_provider(Credentials::new(key, secret, None, None, "static"));
        }
        let config = loader.load().await;
        Self {
            client: Client::new(&config),
        }
    }

    pub fn from_client(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl CloudFront for AwsCloudFront {
    async fn create_invalidation(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&request.distribution_id)
            .invalidation_batch(batch(request)?)
            .send()
            .await
            .map_err(convert)?;
        answered(Operation::CreateInvalidation, out.invalidation)
    }

    async fn get_invalidation(
        &self,
        distribution_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        let out = self
            .client
            .get_invalidation()
            .distribution_id(distribution_id)
            .id(id)
            .send()
            .await
            .map_err(convert)?;
        answered(Operation::GetInvalidation, out.invalidation)
    }

    async fn list_invalidations(
        &self,
        distribution_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        let out = self
            .client
            .list_invalidations()
            .distribution_id(distribution_id)
            .set_marker(marker.map(str::to_owned))
            .set_max_items(max_items)
            .send()
            .await
            .map_err(convert)?;
        Ok(page(out.invalidation_list))
    }

    async fn create_invalidation_for_distribution_tenant(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        let out = self
            .client
            .create_invalidation_for_distribution_tenant()
            .id(&request.distribution_id)
            .invalidation_batch(batch(request)?)
            .send()
            .await
            .map_err(convert)?;
        answered(
            Operation::CreateInvalidationForDistributionTenant,
            out.invalidation,
        )
    }

    async fn get_invalidation_for_distribution_tenant(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        let out = self
            .client
            .get_invalidation_for_distribution_tenant()
            .distribution_tenant_id(tenant_id)
            .id(id)
            .send()
            .await
            .map_err(convert)?;
        answered(
            Operation::GetInvalidationForDistributionTenant,
            out.invalidation,
        )
    }

    async fn list_invalidations_for_distribution_tenant(
        &self,
        tenant_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        let out = self
            .client
            .list_invalidations_for_distribution_tenant()
            .id(tenant_id)
            .set_marker(marker.map(str::to_owned))
            .set_max_items(max_items)
            .send()
            .await
            .map_err(convert)?;
        Ok(page(out.invalidation_list))
    }

    async fn get_distribution_config(
        &self,
        distribution_id: &str,
    ) -> Result<DistributionConfig, CloudFrontError> {
        let out = self
            .client
            .get_distribution_config()
            .id(distribution_id)
            .send()
            .await
            .map_err(convert)?;
        let config = out.distribution_config.ok_or_else(|| {
            CloudFrontError::other("GetDistributionConfig answered without a DistributionConfig")
        })?;
        Ok(DistributionConfig {
            cache_tag_header: config
                .cache_tag_config
                .map(|c| c.header_name)
                .filter(|h| !h.is_empty()),
        })
    }
}

/// The `InvalidationBatch` of a request (the same shape for distributions and tenants).
fn batch(request: &CreateInvalidation) -> Result<InvalidationBatch, CloudFrontError> {
    let paths = Paths::builder()
        .quantity(request.paths.len() as i32)
        .set_items(Some(request.paths.clone()))
        .build()
        .map_err(|e| CloudFrontError::other(e.to_string()))?;
    InvalidationBatch::builder()
        .paths(paths)
        .caller_reference(&request.caller_reference)
        .build()
        .map_err(|e| CloudFrontError::other(e.to_string()))
}

/// The invalidation of a Create or Get answer (distribution or tenant); CloudFront always
/// sends one, so its absence is an unreadable answer.
fn answered(
    op: Operation,
    invalidation: Option<aws_sdk_cloudfront::types::Invalidation>,
) -> Result<Invalidation, CloudFrontError> {
    invalidation
        .map(from_sdk)
        .ok_or_else(|| CloudFrontError::other(format!("{op} answered without an Invalidation")))
}

/// One page of either List operation.
fn page(list: Option<aws_sdk_cloudfront::types::InvalidationList>) -> InvalidationPage {
    let Some(list) = list else {
        return InvalidationPage::default();
    };
    let items = list
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|s| InvalidationSummary {
            id: s.id,
            status: InvalidationStatus::parse(&s.status),
            create_time: Some(timestamp(&s.create_time)),
        })
        .collect();
    let next_marker = if list.is_truncated {
        list.next_marker.filter(|m| !m.is_empty())
    } else {
        None
    };
    InvalidationPage { items, next_marker }
}

fn from_sdk(inv: aws_sdk_cloudfront::types::Invalidation) -> Invalidation {
    let (caller_reference, paths) = match inv.invalidation_batch {
        Some(batch) => (
            Some(batch.caller_reference),
            batch.paths.and_then(|p| p.items).unwrap_or_default(),
        ),
        None => (None, Vec::new()),
    };
    Invalidation {
        status: InvalidationStatus::parse(&inv.status),
        create_time: Some(timestamp(&inv.create_time)),
        id: inv.id,
        caller_reference,
        paths,
    }
}

fn timestamp(t: &aws_smithy_types::DateTime) -> Timestamp {
    Timestamp::new(t.secs(), t.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Reduce an SDK error to code, HTTP status and kind. The message never includes request
/// headers, so no credentials or signatures can leak into status messages or logs.
fn convert<E, R>(err: SdkError<E, R>) -> CloudFrontError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            CloudFrontError {
                kind: super::ErrorKind::Service,
                code: e.code().map(str::to_owned),
                message: e.message().unwrap_or("no message").to_owned(),
                http_status: Some(ctx.raw().status_code()),
            }
        }
        SdkError::TimeoutError(_) => CloudFrontError::timeout("CloudFront did not answer in time"),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            CloudFrontError::timeout("CloudFront did not answer in time")
        }
        SdkError::DispatchFailure(d) => {
            let chain = error_chain(&err).unwrap_or_else(|| format!("{d:?}"));
            if chain.to_ascii_lowercase().contains("credential") {
                // Not a network problem: say what is missing.
                CloudFrontError::other(format!("no AWS credentials could be loaded: {chain}"))
            } else {
                CloudFrontError::network(format!("could not reach CloudFront: {chain}"))
            }
        }
        SdkError::ResponseError(r) => {
            let mut e = CloudFrontError::other(format!(
                "CloudFront's answer could not be read: {}",
                error_chain(&err).unwrap_or_default()
            ));
            e.http_status = Some(r.raw().status_code());
            e
        }
        _ => CloudFrontError::other(
            error_chain(&err).unwrap_or_else(|| "the request could not be built".to_owned()),
        ),
    }
}

/// The HTTP status of a raw response, whatever the SDK's response type.
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// "outer: inner: innermost", the way people read error causes.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut parts = Vec::new();
    let mut cur = err.source();
    while let Some(e) = cur {
        parts.push(e.to_string());
        cur = e.source();
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options get logged (`?options`) and end up in panics; the secret must not.
    #[test]
    fn debug_output_never_contains_the_secret() {
        let options = AwsOptions {
            static_credentials: Some((
                "AKIAEXAMPLEKEYID".to_owned(),
                "s3cr3t-Value/xyz".to_owned(),
            )),
            ..AwsOptions::default()
        };
        let printed = format!("{options:?} {options:#?}");
        assert!(!printed.contains("s3cr3t-Value/xyz"), "{printed}");
        assert!(
            printed.contains("AKIAEXAMPLEKEYID"),
            "the key id helps debugging: {printed}"
        );
    }
}
