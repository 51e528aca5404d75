//! What every execution backend receives and hands back: a launch request (argv, environment,
//! the job's host folder, mounts, limits) and a launched job (its output as chunks, its exit,
//! the isolation that holds, and a control to sample, kill and finish it).

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use crate::docker::DockerControl;
use crate::events::{Enforcement, OutputStream, ResourceSample};
use crate::kubernetes::KubernetesControl;
use crate::limits::Limits;
use crate::process::ProcessControl;
use crate::workdir::WorkDir;

/// Everything a backend needs to start one job.
#[derive(Debug)]
pub struct Launch<'a> {
    pub job_id: &'a str,
    pub argv: Vec<String>,
    /// The job's complete environment.
    pub env: Vec<(String, String)>,
    pub work: &'a WorkDir,
    pub dataset_dir: Option<PathBuf>,
    /// Host path of `ra-trainer` for train jobs.
    pub trainer: Option<PathBuf>,
    /// A train job on a CUDA device (`libtorch-cuda`, `cuda`): it needs the host's GPUs.
    pub gpu: bool,
    /// The GPU it was given, when the host lists its GPUs (all of them otherwise).
    pub gpu_index: Option<u32>,
    pub limits: Limits,
}

/// How the job's process or container ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawExit {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The sandbox could not be set up; the job never ran.
    pub setup_error: Option<String>,
    pub peak_rss_bytes: u64,
    pub cpu_seconds: f64,
    /// The backend knows the kernel killed it for memory.
    pub oom_killed: bool,
    /// The backend's own deadline ended it (a Kubernetes Job's activeDeadlineSeconds).
    pub deadline_exceeded: bool,
}

impl RawExit {
    /// The job never ran: the sandbox (or the cluster) could not set it up, for `why`.
    pub fn setup_failed(why: impl Into<String>) -> Self {
        Self {
            setup_error: Some(why.into()),
            ..Self::default()
        }
    }
}

/// A running job.
pub struct Launched {
    pub output: mpsc::Receiver<(OutputStream, bytes::Bytes)>,
    pub exit: oneshot::Receiver<RawExit>,
    pub enforcement: Enforcement,
    pub control: Control,
    /// Resolves once the job's program runs (or has ended without running), for backends where
    /// that comes later than the launch (a Job's pod is scheduled, its image readied); `None`:
    /// it runs already.
    pub running: Option<oneshot::Receiver<()>>,
}

/// Backend-specific handle on a running job.
pub enum Control {
    Process(ProcessControl),
    Docker(DockerControl),
    Kubernetes(KubernetesControl),
}

impl Control {
    /// Kills the job and everything it started, now.
    pub async fn kill(&mut self) {
        match self {
            Control::Process(control) => control.kill(),
            Control::Docker(control) => control.kill().await,
            Control::Kubernetes(control) => control.kill().await,
        }
    }

    pub async fn sample(&mut self) -> Option<ResourceSample> {
        match self {
            Control::Process(control) => control.sample(),
            Control::Docker(control) => control.sample().await,
            Control::Kubernetes(control) => control.sample().await,
        }
    }

    /// After the exit: final counters folded into `exit`, and every trace of the job removed
    /// (cgroup, container; a trial Job stays for its TTL).
    pub async fn finish(self, exit: &mut RawExit) {
        match self {
            Control::Process(control) => control.finish(exit),
            Control::Docker(control) => control.finish(exit).await,
            Control::Kubernetes(control) => control.finish(exit).await,
        }
    }
}
