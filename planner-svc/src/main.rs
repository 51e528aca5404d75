//! planner-svc binary: reads the configuration and serves until SIGTERM/SIGINT.

use clap::Parser;
use planner_svc::PlannerConfig;
use ra_serve::{ServiceArgs, serve_binary};

/// Research Agent's planner: research sessions from a goal to a confirmed result (gRPC).
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
        "planner-svc",
        PlannerConfig::default(),
        &cli.service,
        |config, listener, shutdown| async move {
            planner_svc::run(&config, listener, shutdown).await
        },
    )
    .await?;
    Ok(())
}
