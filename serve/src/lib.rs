//! The serving layer shared by every Research Agent service binary.
//!
//! - [`args`]: the flags every service takes (`--listen`, `--config`, `--log-format`).
//! - [`config`]: figment layering — built-in defaults < TOML file < `RA_*` environment < flags —
//!   with validation before anything starts.
//! - [`telemetry`]: tracing, human-readable text or JSON.
//! - [`server`]: binds, serves `grpc.health.v1` (NOT_SERVING until the service says it is ready),
//!   server reflection v1 and v1alpha, one tracing span per request, and shuts down gracefully.
//! - [`auth`]: TLS, bearer tokens and client certificates, and who may call which method.
//! - [`peers`]: health that follows the peers a service needs (SERVING only while they are).
//! - [`shutdown`]: SIGTERM/SIGINT as a future, and a token long streams watch to end early.
//! - [`binary`]: the body every service binary's `main` shares.

pub mod args;
pub mod auth;
pub mod binary;
pub mod config;
pub mod peers;
pub mod server;
pub mod shutdown;
pub mod telemetry;

pub use args::{LogFormat, ServiceArgs};
pub use binary::{BinaryError, serve_binary};
pub use config::{ConfigError, ServerSettings, ServiceConfig, absolute_path, load_config};
pub use peers::{Peer, watch_peers};
pub use server::{GrpcServer, ServeError, ServiceHealth, bind};
pub use shutdown::{Shutdown, shutdown_signal};
