//! What a job reports while it runs and when it ends, in plain Rust (the gRPC layer converts
//! these into `JobEvent`s).

use std::collections::BTreeMap;

/// Which backend ran a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Process,
    Docker,
    Kubernetes,
}

impl BackendKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// Which isolation mechanisms actually held for a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Enforcement {
    pub backend: BackendKind,
    /// "cgroup-v2", "cgroup-v1", "rlimit", "docker" or "kubernetes".
    pub resource_control: String,
    pub seccomp: bool,
    pub namespaces: Vec<String>,
    pub network_isolated: bool,
    /// How the scratch-disk limit holds: "tmpfs" (a sized mount) or "rlimit" (file size only).
    pub scratch: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceSample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Why a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    Completed,
    Failed,
    Timeout,
    OutOfMemory,
    OutputLimit,
    Killed,
    Cancelled,
    Rejected,
}

impl ExitReason {
    pub fn succeeded(self) -> bool {
        self == ExitReason::Completed
    }
}

/// A file the job left in its output folder, copied out before the scratch was removed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    /// Host path of the copy.
    pub path: std::path::PathBuf,
    pub size_bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    pub output_bytes: u64,
}

/// How one seed of a job of several seeds ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeedOutcome {
    pub seed: u64,
    /// Its final record; empty when it failed or never finished.
    pub final_metrics: BTreeMap<String, f64>,
    /// Why it failed; empty otherwise.
    pub error: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub reason: ExitReason,
    pub exit_code: i32,
    /// The signal that ended it, 0 for none.
    pub signal: i32,
    /// Why it ended, for people.
    pub message: String,
    /// The metrics protocol's `{"event":"final",…}` record (numbers only).
    pub final_metrics: BTreeMap<String, f64>,
    /// A job of several seeds: how each ended, in the order the job listed them.
    pub seeds: Vec<SeedOutcome>,
    pub usage: Usage,
    pub outputs: Vec<JobOutput>,
    pub enforcement: Option<Enforcement>,
}

impl JobResult {
    /// A job that never ran.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            reason: ExitReason::Rejected,
            exit_code: 0,
            signal: 0,
            message: message.into(),
            final_metrics: BTreeMap::new(),
            seeds: Vec::new(),
            usage: Usage::default(),
            outputs: Vec::new(),
            enforcement: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Queued {
        position: u32,
    },
    Started(Enforcement),
    Log {
        stream: OutputStream,
        line: String,
    },
    Epoch {
        epoch: u64,
        metrics: BTreeMap<String, f64>,
        seconds: f64,
        /// The seed it belongs to, in a job of several seeds.
        seed: Option<u64>,
    },
    Resources(ResourceSample),
    Finished(JobResult),
}
