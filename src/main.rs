use clap::{Parser, Subcommand};

use cloudfront_invalidation_operator::{crd, run, telemetry};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
    }
}
