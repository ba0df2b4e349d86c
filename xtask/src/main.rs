//! `cargo xtask …`: the developer's commands that are not part of the product, kept out of the
//! production binary and image: the sandbox (the whole product on this machine) and the
//! benchmarks (docs/benchmarks.md).

mod bench;
mod sandbox;

use clap::{Parser, Subcommand};

use cfinv_cloudfront::telemetry;

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t)]
    log_format: telemetry::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Everything on this machine: kube-apiserver + etcd, the CloudFront simulator and the
    /// operator (no cluster or AWS account needed).
    Sandbox(sandbox::SandboxArgs),
    /// Measure the performance claims against local pieces (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Both ring (kube) and aws-lc-rs (the AWS SDK) are linked; rustls needs one chosen for the
    // process or building a TLS client panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
