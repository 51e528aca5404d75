//! Research Agent's command-line programs and what they share.
//!
//! - [`stack`]: the embedded mode — the services started in this process on 127.0.0.1
//!   ephemeral ports, with real gRPC between them.
//! - [`research`]: `research-agent` — research sessions (run, resume, status, report, list)
//!   and the services (`serve`).
//! - [`quick`]: `quick-evaluator`, one model over seeds with the statistics.
//! - [`config`]: the embedded services' layered configuration, one file for all five.
//! - [`multicall`]: the programs that are also the sandbox's init and trainer.

pub mod config;
pub mod multicall;
pub mod quick;
pub mod research;
pub mod stack;

pub use stack::{Stack, StackOptions};
