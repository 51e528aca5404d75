//! Research Agent's command-line programs and what they share.
//!
//! - [`stack`]: the embedded mode — the services started in this process on 127.0.0.1
//!   ephemeral ports, with real gRPC between them.
//! - [`quick`]: `quick-evaluator`, one model over seeds with the statistics.
//! - [`defaults`]: a sensible model and recipe per input kind.

pub mod defaults;
pub mod quick;
pub mod stack;

pub use stack::{Stack, StackOptions};
