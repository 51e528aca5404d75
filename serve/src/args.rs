//! Command-line flags shared by every service binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Flags every service binary accepts; they override the config file and the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServiceArgs {
    /// Address to serve gRPC on (HOST:PORT); port 0 picks a free one.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file (also `RA_CONFIG`).
    #[arg(long, value_name = "FILE", env = "RA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log line format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter in `tracing` syntax, e.g. `info,registry_svc=debug`.
    #[arg(long, value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Ask the running service at the configured address for its health instead of serving:
    /// exit 0 when it answers SERVING, 1 otherwise (for container health checks and exec
    /// probes; a `FROM scratch` image has no other client).
    #[arg(long)]
    pub probe: bool,
}
