//! `cloudfront-sim`: the CloudFront invalidation API on this machine, for tests, sandboxes and
//! CI pipelines (docs/simulator.md).

use clap::{Parser, ValueEnum};
use cloudfront_sim::cli::{SimulatorArgs, run};
use tracing_subscriber::EnvFilter;

/// Serve the CloudFront invalidation API locally (REST-XML, as CloudFront speaks it).
#[derive(Parser, Debug)]
#[command(name = "cloudfront-sim", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,

    #[command(flatten)]
    simulator: SimulatorArgs,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    run(cli.simulator).await
}
