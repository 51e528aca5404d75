//! registry-svc binary: reads the configuration and serves until SIGTERM/SIGINT.

use clap::Parser;
use ra_serve::{ServiceArgs, serve_binary};
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
    serve_binary("registry-svc", RegistryConfig::default(), &cli.service, |config, listener, shutdown| async move {
        registry_svc::run(&config, listener, shutdown).await
    })
    .await?;
    Ok(())
}
