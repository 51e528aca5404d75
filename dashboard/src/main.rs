//! dashboard-svc binary: reads the configuration and serves HTTP until SIGTERM/SIGINT.

use clap::Parser;
use dashboard_svc::DashboardConfig;
use ra_serve::{ServiceArgs, serve_binary};

/// Research Agent's dashboard: research sessions in the browser (HTTP).
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
        "dashboard-svc",
        DashboardConfig::default(),
        &cli.service,
        |config, listener, shutdown| async move {
            dashboard_svc::run(&config, listener, shutdown).await
        },
    )
    .await?;
    Ok(())
}
