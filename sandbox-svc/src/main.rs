//! sandbox-svc binary: reads the configuration and serves until SIGTERM/SIGINT.

use clap::Parser;
use ra_serve::{ServiceArgs, serve_binary};
use sandbox_svc::SandboxConfig;

/// Research Agent's sandbox: untrusted training jobs checked, isolated, limited and watched (gRPC).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    serve_binary("sandbox-svc", SandboxConfig::default(), &cli.service, |config, listener, shutdown| async move {
        sandbox_svc::run(&config, listener, shutdown).await
    })
    .await?;
    Ok(())
}
