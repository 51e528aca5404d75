//! ra-trainer: the only crate that depends on Burn.
//!
//! - [`model`]: a Burn module assembled at run time from a `ModelSpec`.
//! - [`data`]: the input pipeline over a memory-mapped prepared dataset.
//! - [`dropout`]: dropout masks from each run's own random stream.
//! - [`optim`]: Adam, AdamW, SGD with momentum, weight decay and gradient clipping.
//! - [`seeds`]: several seeds trained at once in one process, the cores split between them.
//! - [`train`]: the training loop, evaluation, early stopping, saving and loading weights.
//! - [`metrics`]: the metrics protocol records (JSON lines) and the scores they carry.
//! - [`backend`]: the Burn device for `--backend flex|tch`.
//! - [`bench`]: throughput against the PyTorch reference.
//! - [`cli`]: the `ra-trainer` command line, shared by its binary and `research-agent`.

pub mod backend;
pub mod bench;
pub mod cli;
pub mod data;
pub mod dropout;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod seeds;
pub mod train;

pub use model::Network;
pub use train::{Reporter, RunConfig, RunOutcome, TrainError, train};
