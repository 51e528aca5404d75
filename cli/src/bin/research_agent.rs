//! research-agent: a research goal in words taken to a statistically confirmed result, with
//! the services embedded in this process or running elsewhere.

use clap::Parser;
use ra_cli::research::{Cli, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
