//! quick-evaluator: one model trained over several seeds and judged with a confidence interval
//! and a t-test, embedded or against a running evaluator-svc.

use clap::Parser;
use ra_cli::quick::{QuickArgs, run};

fn main() -> std::process::ExitCode {
    ra_cli::multicall::main(quick_evaluator)
}

#[tokio::main]
async fn quick_evaluator() -> std::process::ExitCode {
    let args = QuickArgs::parse();
    let filter = if args.verbose { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quick-evaluator: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
