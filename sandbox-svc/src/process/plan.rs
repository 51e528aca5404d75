//! The plan handed from the service to `ra-sandbox-init`: everything the isolated process needs
//! to know, as JSON on its command line (no secrets travel this way: the job's environment is
//! built from the allowlist only).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where things appear inside the sandbox.
pub const SCRATCH_MOUNT: &str = "/scratch";
pub const DATASET_MOUNT: &str = "/dataset";
pub const TRAINER_MOUNT: &str = "/opt/ra/ra-trainer";
/// The exit code of `ra-sandbox-init` when it could not set the sandbox up.
pub const SETUP_FAILED_EXIT: i32 = 125;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitPlan {
    pub argv: Vec<String>,
    /// The job's complete environment.
    pub env: Vec<(String, String)>,
    /// Host folder mounted read-write at [`SCRATCH_MOUNT`], the working directory.
    pub scratch_dir: PathBuf,
    /// Empty host folder where the new root is assembled (inside the job's mount namespace).
    pub root_dir: PathBuf,
    /// Prepared dataset mounted read-only at [`DATASET_MOUNT`].
    pub dataset_dir: Option<PathBuf>,
    /// The `ra-trainer` binary mounted read-only at [`TRAINER_MOUNT`].
    pub trainer: Option<PathBuf>,
    /// Host folders mounted read-only at the same place (the system's programs and libraries,
    /// and a train job's trainer's own library folders).
    pub read_only_paths: Vec<PathBuf>,
    /// Host device nodes (`/dev/nvidia*`) bound at the same place under the sandbox's `/dev`,
    /// for a train job on a GPU.
    pub devices: Vec<PathBuf>,
    /// `cgroup.procs` files the process joins before anything else.
    pub cgroup_procs: Vec<PathBuf>,
    pub rlimits: Rlimits,
    /// The unprivileged user and group the job runs as (when the service runs as root).
    pub uid: u32,
    pub gid: u32,
    /// Where the init writes how the job ended ([`InitStatus`]).
    pub status_file: PathBuf,
}

/// Kernel resource limits set just before the job starts; `None` leaves the limit alone
/// (a cgroup enforces it instead).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimits {
    pub open_files: u64,
    pub processes: Option<u64>,
    pub address_space: Option<u64>,
    pub file_size: Option<u64>,
}

/// How the job ended, as seen by its parent inside the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InitStatus {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The largest resident set of the job's processes (from `getrusage`), bytes.
    pub peak_rss_bytes: u64,
    pub cpu_seconds: f64,
    /// Set when the sandbox could not be set up (the job never ran).
    pub setup_error: Option<String>,
}
