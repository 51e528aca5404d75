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

fn main() -> anyhow::Result<()> {
    // This binary is its own ra-sandbox-init: the process backend starts it under that name.
    let argv0 = std::env::args_os().next();
    if sandbox_svc::multicall::started_as(argv0.as_deref(), &[sandbox_svc::multicall::INIT])
        .is_some()
    {
        let args: Vec<String> = std::env::args().collect();
        std::process::exit(sandbox_svc::process::init::main_with_args(&args));
    }
    sandbox_svc::multicall::provide(&[sandbox_svc::multicall::INIT]);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let cli = Cli::parse();
    serve_binary("sandbox-svc", SandboxConfig::default(), &cli.service, |config, listener, shutdown| async move {
        sandbox_svc::run(&config, listener, shutdown).await
    })
    .await?;
    Ok(())
}
