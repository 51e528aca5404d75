//! dataset-svc binary: reads the configuration and serves until SIGTERM/SIGINT.

use clap::Parser;
use dataset_svc::DatasetConfig;
use ra_serve::{ServiceArgs, serve_binary};

/// Research Agent's datasets: catalog, verified preparation, batch streaming (gRPC).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    serve_binary("dataset-svc", DatasetConfig::default(), &cli.service, |config, listener, shutdown| async move {
        dataset_svc::run(&config, listener, shutdown).await
    })
    .await?;
    Ok(())
}
