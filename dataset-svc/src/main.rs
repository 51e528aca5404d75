//! dataset-svc binary: reads the configuration and serves until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use dataset_svc::DatasetConfig;
use ra_serve::{ServiceArgs, Shutdown, load_config, shutdown_signal};

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
    let config = load_config(DatasetConfig::default(), &cli.service, std::env::vars())?;
    ra_serve::telemetry::init_tracing(config.server.log_format, &config.server.log_filter);
    let listener = ra_serve::bind(&config.server).await?;
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.trigger();
    });
    dataset_svc::run(&config, listener, shutdown)
        .await
        .context("dataset-svc stopped with an error")?;
    Ok(())
}
