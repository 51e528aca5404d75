//! registry-svc binary: reads the configuration and serves until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use ra_serve::{ServiceArgs, Shutdown, load_config, shutdown_signal};
use registry_svc::RegistryConfig;

/// Research Agent's system of record (gRPC, sled).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = load_config(RegistryConfig::default(), &cli.service, std::env::vars())?;
    ra_serve::telemetry::init_tracing(config.server.log_format, &config.server.log_filter);
    let listener = ra_serve::bind(&config.server).await?;
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.trigger();
    });
    registry_svc::run(&config, listener, shutdown)
        .await
        .context("registry-svc stopped with an error")?;
    Ok(())
}
