//! Logging: human-readable text by default, JSON lines for log pipelines. Level from `RUST_LOG`
//! (default `info`).

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Targets that log signed requests (Authorization headers, the access key id, session tokens)
/// at debug/trace level. They are held at `info` whatever `RUST_LOG` asks for, so credentials and
/// signatures never reach a log.
const CREDENTIAL_BEARING_TARGETS: &[&str] = &[
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_http",
    "aws_config",
    "aws_credential_types",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// kube's client logs every non-2xx answer at ERROR, including the API server's 500s while it
/// starts; the operator reports the failures that matter itself, in words.
const NOISY_TARGETS: &[&str] = &["kube_client::client::builder"];

/// The filter from `RUST_LOG` (default `info`), with the credential-bearing targets capped.
pub fn filter() -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for target in CREDENTIAL_BEARING_TARGETS {
        filter = filter.add_directive(format!("{target}=info").parse().expect("a valid directive"));
    }
    for target in NOISY_TARGETS {
        filter = filter.add_directive(format!("{target}=off").parse().expect("a valid directive"));
    }
    filter
}

/// Install the global subscriber. Safe to call once per process.
pub fn init(format: LogFormat) {
    let filter = filter();
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}
