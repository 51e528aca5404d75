//! research-agent: a research goal in words taken to a statistically confirmed result, with
//! the services embedded in this process or running elsewhere.
//!
//! One file runs the whole laptop mode: this program is also the sandbox's `ra-sandbox-init`
//! and its `ra-trainer` (see [`ra_cli::multicall`]), chosen by the name it is started under or
//! by the hidden first arguments `sandbox-init` and `trainer`.

use clap::Parser;
use ra_cli::research::{Cli, run};

fn main() -> std::process::ExitCode {
    ra_cli::multicall::main(research_agent)
}

#[tokio::main]
async fn research_agent() -> std::process::ExitCode {
    let cli = Cli::parse();
    ra_serve::telemetry::init_tracing(ra_serve::LogFormat::Text, &cli.log_filter);
    match run(cli).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            eprintln!("research-agent: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
