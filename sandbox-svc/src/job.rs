//! What a job is, in plain Rust: training a ModelSpec on a prepared dataset, or running a
//! user's own command with input files; both with requested limits.

use std::collections::BTreeMap;

use ra_spec::{ModelSpec, TrainSpec};

use crate::limits::Limits;

/// Train a ModelSpec with `ra-trainer`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainJob {
    pub model: ModelSpec,
    pub train: TrainSpec,
    /// A prepared dataset of dataset-svc's cache, mounted read-only.
    pub prepared_dataset_id: String,
    pub seed: u64,
    /// Several seeds in one trainer process (`seed` then ignored); empty for one seed.
    pub seeds: Vec<u64>,
    pub save_weights: bool,
    /// Training device: "" (flex), "flex", "libtorch", "libtorch-cuda", "cuda" or "auto"; a
    /// job accepted by the queue carries the device chosen for it (`auto` resolved).
    pub device: String,
}

/// A file placed in the scratch directory before the command runs.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFile {
    /// Relative to the scratch directory; no `..`, not absolute.
    pub path: String,
    pub content: Vec<u8>,
    pub executable: bool,
}

/// A user's own program that speaks the metrics protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandJob {
    pub argv: Vec<String>,
    pub files: Vec<InputFile>,
    /// Extra environment; names must be on the allowlist.
    pub env: BTreeMap<String, String>,
    /// Optional prepared dataset, mounted read-only at `$RA_DATASET_DIR`.
    pub prepared_dataset_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    Train(TrainJob),
    Command(CommandJob),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub kind: JobKind,
    /// As requested: 0 asks for the default.
    pub limits: Limits,
}

impl Job {
    /// A train job's device (as chosen when it was accepted); none for a command job.
    pub fn train_device(&self) -> Option<&str> {
        match &self.kind {
            JobKind::Train(train) => Some(train.device.as_str()),
            JobKind::Command(_) => None,
        }
    }

    /// A train job on a CUDA device (`libtorch-cuda`, `cuda`): it needs a GPU.
    pub fn on_gpu(&self) -> bool {
        matches!(&self.kind, JobKind::Train(train) if ra_spec::device::on_gpu(&train.device))
    }
}
