//! sandbox-svc's configuration: the shared `[server]` section and `[sandbox]` (backends,
//! folders, queue, sampling, and the static-check policy with its limits).

use std::path::PathBuf;

use ra_serve::{ServerSettings, ServiceConfig};
use serde::{Deserialize, Serialize};

use crate::docker::DockerSettings;
use crate::events::BackendKind;
use crate::kubernetes::KubernetesSettings;
use crate::process::ProcessSettings;
use crate::validate::Policy;

/// The conventional sandbox-svc port.
pub const DEFAULT_PORT: u16 = 50053;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// The backend for jobs that do not name one: "process", "docker" or "kubernetes".
    pub backend: BackendKind,
    /// Set false to never contact Docker.
    pub docker_enabled: bool,
    /// Job folders (scratch directories) live here while jobs run.
    pub work_dir: PathBuf,
    /// Outputs of finished jobs are copied here, one folder per job.
    pub outputs_dir: PathBuf,
    /// dataset-svc's prepared-dataset cache (`data.cache_dir` there).
    pub dataset_cache_dir: PathBuf,
    /// `ra-trainer`; empty: beside this program, else on PATH.
    pub trainer_path: PathBuf,
    /// Jobs running at once; 0: the number of cores.
    pub max_concurrent_jobs: u32,
    /// GPU jobs (train jobs on libtorch-cuda or cuda) running at once on each GPU the host lists
    /// (`nvidia-smi`); the others wait in order.
    pub jobs_per_gpu: u32,
    /// Jobs waiting beyond the running ones before SubmitJob answers RESOURCE_EXHAUSTED.
    pub max_queued_jobs: u32,
    /// Finished jobs kept for GetJob / ListJobs / WatchJob (oldest forgotten first).
    pub max_finished_jobs: u32,
    /// Interval of resource samples, milliseconds.
    pub sample_interval_ms: u64,
    /// The most bytes of outputs copied out of one job.
    pub max_kept_output_bytes: u64,
    pub policy: Policy,
    pub process: ProcessSettings,
    pub docker: DockerSettings,
    pub kubernetes: KubernetesSettings,
}

impl SandboxSettings {
    /// Every path setting made absolute against `base` (see [`ServiceConfig::resolve_paths`]).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for path in [
            &mut self.work_dir,
            &mut self.outputs_dir,
            &mut self.dataset_cache_dir,
            &mut self.trainer_path,
            &mut self.process.init_path,
            &mut self.process.cgroup_root,
            &mut self.kubernetes.work_root,
        ] {
            ra_serve::absolute_path(path, base);
        }
        for path in &mut self.process.read_only_paths {
            ra_serve::absolute_path(path, base);
        }
    }
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            backend: BackendKind::Process,
            docker_enabled: true,
            work_dir: PathBuf::from(".research-agent/sandbox/jobs"),
            outputs_dir: PathBuf::from(".research-agent/sandbox/outputs"),
            dataset_cache_dir: PathBuf::from(".research-agent/datasets"),
            trainer_path: PathBuf::new(),
            max_concurrent_jobs: 0,
            jobs_per_gpu: 1,
            max_queued_jobs: 256,
            max_finished_jobs: 1_000,
            sample_interval_ms: 1_000,
            max_kept_output_bytes: 4 << 30,
            policy: Policy::default(),
            process: ProcessSettings::default(),
            docker: DockerSettings::default(),
            kubernetes: KubernetesSettings::default(),
        }
    }
}

impl SandboxSettings {
    /// `max_concurrent_jobs`, with 0 meaning the number of cores.
    pub fn concurrency(&self) -> usize {
        match self.max_concurrent_jobs {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    pub server: ServerSettings,
    pub sandbox: SandboxSettings,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            server: ServerSettings::with_port(DEFAULT_PORT),
            sandbox: SandboxSettings::default(),
        }
    }
}

impl ServiceConfig for SandboxConfig {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn resolve_paths(&mut self, base: &std::path::Path) {
        self.sandbox.resolve_paths(base);
    }

    fn validate(&self) -> Result<(), String> {
        let sandbox = &self.sandbox;
        for (name, path) in [
            ("work_dir", &sandbox.work_dir),
            ("outputs_dir", &sandbox.outputs_dir),
            ("dataset_cache_dir", &sandbox.dataset_cache_dir),
        ] {
            if path.as_os_str().is_empty() {
                return Err(format!("sandbox.{name} must not be empty"));
            }
        }
        if sandbox.sample_interval_ms < 10 {
            return Err("sandbox.sample_interval_ms must be at least 10".into());
        }
        if sandbox.max_finished_jobs == 0 {
            return Err("sandbox.max_finished_jobs must be above 0".into());
        }
        if !(1..=64).contains(&sandbox.jobs_per_gpu) {
            return Err(format!(
                "sandbox.jobs_per_gpu = {} must be in 1..=64",
                sandbox.jobs_per_gpu
            ));
        }
        sandbox.kubernetes.check(&sandbox.work_dir)?;
        sandbox
            .policy
            .limits
            .check()
            .map_err(|e| format!("sandbox.policy.{e}"))
    }
}
