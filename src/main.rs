use clap::{Parser, Subcommand};

use cloudfront_invalidation_operator::{bench, cli, crd, run, sandbox, simulator, telemetry};

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
    /// Print the CustomResourceDefinition as YAML.
    Crd,
    /// Everything on this machine: kube-apiserver + etcd, the CloudFront simulator and the
    /// operator (no cluster or AWS account needed).
    Sandbox(sandbox::SandboxArgs),
    /// Measure the performance claims against local pieces (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// Serve the CloudFront invalidation API locally (see docs/simulator.md).
    Simulator(simulator::cli::SimulatorArgs),
    /// Invalidate paths of a distribution without a cluster (one-shot; see docs/cli.md).
    Invalidate(cli::InvalidateArgs),
    /// List recent invalidations of a distribution, newest first.
    List(cli::ListArgs),
    /// Show one invalidation.
    Get(cli::GetArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Both ring (kube) and aws-lc-rs (the AWS SDK) are linked; rustls needs one chosen for the
    // process or building a TLS client panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", crd::crd_yaml());
            Ok(())
        }
        Command::Run(args) => {
            telemetry::init(cli.log_format);
            run::run(args).await
        }
        Command::Bench(args) => {
            telemetry::init(cli.log_format);
            bench::run(args).await
        }
        Command::Sandbox(args) => {
            telemetry::init(cli.log_format);
            sandbox::run(args).await
        }
        Command::Simulator(args) => {
            telemetry::init(cli.log_format);
            simulator::cli::run(args).await
        }
        Command::Invalidate(args) => {
            telemetry::init(cli.log_format);
            std::process::exit(cli::invalidate(args).await.code())
        }
        Command::List(args) => {
            telemetry::init(cli.log_format);
            std::process::exit(cli::list(args).await.code())
        }
        Command::Get(args) => {
            telemetry::init(cli.log_format);
            std::process::exit(cli::get(args).await.code())
        }
    }
}
