//! evaluator-svc binary: reads the configuration and serves until SIGTERM/SIGINT.

use clap::Parser;
use evaluator_svc::EvaluatorConfig;
use ra_serve::{ServiceArgs, serve_binary};

/// Research Agent's evaluator: candidates trained over seeds and judged with statistics (gRPC).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    serve_binary(
        "evaluator-svc",
        EvaluatorConfig::default(),
        &cli.service,
        |config, listener, shutdown| async move {
            evaluator_svc::run(&config, listener, shutdown).await
        },
    )
    .await?;
    Ok(())
}
