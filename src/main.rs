//! The production binary: the operator (`run`), its CRD (`crd`), and the one-shot CLI
//! (`invalidate`, `list`, `get`, `wait`). Nothing else ships in the image: the simulator, the sandbox and
//! the benchmarks live in their own crates (`cloudfront-sim`, `cargo xtask`).

use clap::{Parser, Subcommand};

use cfinv_cloudfront::telemetry;
use cfinv_operator::run;

/// Turns CloudFrontInvalidation resources into Amazon CloudFront invalidations.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t)]
    log_format: telemetry::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (in a cluster, or against the current kubeconfig).
    Run(run::RunArgs),
    /// Print the CustomResourceDefinitions as YAML (as deploy/crd.yaml holds them).
    Crd,
    /// Invalidate paths of a distribution without a cluster (one-shot; see docs/cli.md).
    Invalidate(cfinv_cli::InvalidateArgs),
    /// List recent invalidations of a distribution, newest first.
    List(cfinv_cli::ListArgs),
    /// Show one invalidation.
    Get(cfinv_cli::GetArgs),
    /// Wait until CloudFrontInvalidations in the cluster have finished (exit 0 Completed, 1
    /// Failed, 4 timeout): for pipelines and Helm hook Jobs (docs/gitops.md).
    Wait(cfinv_cli::WaitArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Both ring (kube) and aws-lc-rs (the AWS SDK) are linked; rustls needs one chosen for the
    // process or building a TLS client panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // `crd` prints YAML for a pipe: no log subscriber, nothing else on stdout.
    let logs = || telemetry::init(cli.log_format);
    match cli.command {
        Command::Crd => {
            print!(
                "{}---\n{}",
                cfinv_api::batch::crd_yaml(),
                cfinv_api::crd::crd_yaml()
            );
            Ok(())
        }
        Command::Run(args) => {
            logs();
            run::run(args).await
        }
        Command::Invalidate(args) => {
            logs();
            std::process::exit(cfinv_cli::invalidate(args).await.code())
        }
        Command::List(args) => {
            logs();
            std::process::exit(cfinv_cli::list(args).await.code())
        }
        Command::Get(args) => {
            logs();
            std::process::exit(cfinv_cli::get(args).await.code())
        }
        Command::Wait(args) => {
            logs();
            std::process::exit(cfinv_cli::wait(args).await.code())
        }
    }
}
