//! Helpers shared by the simulator's integration tests: an `aws-sdk-cloudfront` client for
//! any endpoint, batch builders, and a minimal raw HTTP/1.1 client for requests the SDK cannot
//! make (unsigned, empty body) and for the JSON control endpoint.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_cloudfront::config::retry::RetryConfig;
use aws_sdk_cloudfront::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client with test credentials, region us-east-1 and the given endpoint; `attempts` of 1
/// disables retries so call counts are exact (more: standard retries with millisecond back-off).
pub fn client(endpoint: &str, attempts: u32) -> aws_sdk_cloudfront::Client {
    let retry = if attempts <= 1 {
        RetryConfig::disabled()
    } else {
        RetryConfig::standard()
            .with_max_attempts(attempts)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(20))
    };
    let config = aws_sdk_cloudfront::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDSIMULATORTEST",
            "simulator-secret",
            None,
            None,
            "test",
        ))
        .retry_config(retry)
        .build();
    aws_sdk_cloudfront::Client::from_conf(config)
}

/// A batch with `Quantity` = number of paths.
pub fn batch(reference: &str, paths: &[&str]) -> InvalidationBatch {
    batch_with_quantity(reference, paths, paths.len() as i32)
}

/// A batch with any `Quantity`.
pub fn batch_with_quantity(reference: &str, paths: &[&str], quantity: i32) -> InvalidationBatch {
    InvalidationBatch::builder()
        .caller_reference(reference)
        .paths(
            Paths::builder()
                .quantity(quantity)
                .set_items(Some(paths.iter().map(|p| p.to_string()).collect()))
                .build()
                .expect("quantity is set"),
        )
        .build()
        .expect("paths and caller reference are set")
}

/// A raw HTTP answer.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8(buf).expect("utf-8 answer");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A header that makes the simulator treat a raw request as SigV4-signed (it does not check
/// signatures).
pub const FAKE_SIGV4: (&str, &str) = (
    "Authorization",
    "AWS4-HMAC-SHA256 Credential=AKIDSIMULATORTEST/20240101/us-east-1/cloudfront/aws4_request, SignedHeaders=host, Signature=00",
);
