//! Running one job from start to end, whatever the backend: the static checks, the job's host
//! folder and inputs, the launch, the watch, the classification, the outputs copied out, and
//! the clean-up — in that order, however the job ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ra_prepared::{Manifest, PreparedDataset, Verify};
use tokio_util::sync::CancellationToken;

use crate::backend::Launch;
use crate::config::SandboxSettings;
use crate::docker::DockerBackend;
use crate::events::{BackendKind, Event, ExitReason, JobResult, SeedOutcome, Usage};
use crate::job::{Job, JobKind};
use crate::kubernetes::KubernetesBackend;
use crate::process::ProcessBackend;
use crate::process::plan::{DATASET_MOUNT, SCRATCH_MOUNT, TRAINER_MOUNT};
use crate::supervise::{Watched, classify, watch};
use crate::validate::{Validation, validate};
use crate::workdir::{OUTPUT_SUBDIR, TMP_SUBDIR, WorkDir};

/// The backends this service could bring up, and why the others are missing.
#[derive(Debug)]
pub struct Executor {
    pub settings: SandboxSettings,
    pub process: Result<ProcessBackend, String>,
    pub docker: Result<DockerBackend, String>,
    pub kubernetes: Result<KubernetesBackend, String>,
    pub trainer: Option<PathBuf>,
    /// The trainer's devices (asked once, at start).
    pub devices: crate::devices::Devices,
    /// The host's GPUs and the GPU jobs each may run at once.
    pub gpus: crate::gpus::GpuSlots,
}

/// Where a job runs besides its backend: the GPU it was given (when the host lists its GPUs),
/// and how many jobs share this host's cores as it starts (itself included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub gpu: Option<u32>,
    pub sharing: u32,
}

impl Default for Placement {
    fn default() -> Self {
        Self {
            gpu: None,
            sharing: 1,
        }
    }
}

/// The trainer's thread count: its CPU limit in whole cores, and on this host (process,
/// docker) no more than its share of the cores among the `sharing` jobs that run at once, so
/// that the threads of concurrent jobs add up to the cores instead of oversubscribing them. A
/// kubernetes trial runs on a node of its own choosing: its limit alone decides.
pub fn trainer_threads(backend: BackendKind, cpu_millis: u32, sharing: u32) -> u32 {
    let limit = cpu_millis.div_ceil(1_000).max(1);
    if backend == BackendKind::Kubernetes {
        return limit;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    limit.min((cores / sharing.max(1)).max(1))
}

impl Executor {
    /// Brings the backends up (each may fail on its own: a job asking for a missing backend is
    /// refused with the reason) and reaps job folders a crashed service left.
    pub async fn new(settings: SandboxSettings) -> Self {
        let reaped = crate::workdir::reap_leftovers(&settings.work_dir);
        if reaped > 0 {
            tracing::warn!(reaped, "removed job folders left by an earlier sandbox-svc");
        }
        let trainer = if settings.trainer_path.as_os_str().is_empty() {
            crate::process::init::locate_binary("ra-trainer")
        } else {
            // A path that is not a file is no trainer; `train_jobs_blocked_by` says so.
            Some(settings.trainer_path.clone()).filter(|path| path.is_file())
        };
        let devices = crate::devices::Devices::probe(trainer.as_deref()).await;
        let gpus = crate::gpus::GpuSlots::new(crate::gpus::probe().await, settings.jobs_per_gpu);
        if !gpus.gpus().is_empty() {
            tracing::info!(gpus = ?gpus.gpus(), jobs_per_gpu = settings.jobs_per_gpu, "GPUs");
        }
        let instance = instance_name(&settings.work_dir);
        let runtime_folders = devices.library_folders();
        let process = ProcessBackend::new(
            settings.process.clone(),
            &instance,
            trainer.as_deref(),
            &runtime_folders,
        );
        if let Ok(backend) = &process {
            tracing::info!(
                resource_control = backend.resource_control(),
                note = backend.cgroup_note.as_deref().unwrap_or(""),
                "process backend ready"
            );
        }
        let docker = if settings.docker_enabled {
            DockerBackend::new(
                &settings.docker,
                trainer.as_deref(),
                &runtime_folders,
                &instance,
            )
            .await
        } else {
            Err("the docker backend is disabled (sandbox.docker_enabled = false)".into())
        };
        if let Err(error) = &docker {
            tracing::info!(%error, "docker backend unavailable");
        }
        let kubernetes = if settings.kubernetes.enabled {
            KubernetesBackend::new(&settings.kubernetes, &settings.dataset_cache_dir).await
        } else {
            Err("the kubernetes backend is disabled (sandbox.kubernetes.enabled = false)".into())
        };
        match &kubernetes {
            Ok(backend) => {
                tracing::info!(namespace = backend.namespace(), "kubernetes backend ready")
            }
            Err(error) => tracing::info!(%error, "kubernetes backend unavailable"),
        }
        Self {
            settings,
            process,
            docker,
            kubernetes,
            trainer,
            devices,
            gpus,
        }
    }

    /// Why `kind` cannot run jobs, `None` when it can.
    pub fn unavailable(&self, kind: BackendKind) -> Option<&str> {
        match kind {
            BackendKind::Process => self.process.as_ref().err().map(String::as_str),
            BackendKind::Docker => self.docker.as_ref().err().map(String::as_str),
            BackendKind::Kubernetes => self.kubernetes.as_ref().err().map(String::as_str),
        }
    }

    /// Whether at least one backend can run jobs; else why none can (for health and the log).
    pub fn readiness(&self) -> Result<(), String> {
        match (&self.process, &self.docker, &self.kubernetes) {
            (Ok(_), _, _) | (_, Ok(_), _) | (_, _, Ok(_)) => Ok(()),
            (Err(process), Err(docker), Err(kubernetes)) => Err(format!(
                "no backend can run jobs — process: {process}; docker: {docker}; kubernetes: {kubernetes}"
            )),
        }
    }

    /// What keeps train jobs on the default backend from running, in words; `None` if nothing.
    pub fn train_jobs_blocked_by(&self) -> Option<String> {
        let mut missing = Vec::new();
        if let Some(why) = self.unavailable(self.settings.backend) {
            missing.push(format!(
                "the default backend ({}) is unavailable: {why}",
                self.settings.backend.label()
            ));
        }
        if self.trainer.is_none() {
            missing.push(if self.settings.trainer_path.as_os_str().is_empty() {
                "no trainer: cannot find ra-trainer beside this program or on PATH (run research-agent, which carries it, or set sandbox.trainer_path)"
                    .to_owned()
            } else {
                format!(
                    "no trainer: sandbox.trainer_path {} is not a file",
                    self.settings.trainer_path.display()
                )
            });
        }
        (!missing.is_empty()).then(|| missing.join("; "))
    }

    /// The prepared dataset's folder, if the id names one in the cache.
    pub fn dataset_dir(&self, id: &str) -> Option<PathBuf> {
        let plain = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !id.starts_with('.');
        plain
            .then(|| self.settings.dataset_cache_dir.join(id))
            .filter(|dir| dir.join("manifest.json").is_file())
    }

    fn manifest(&self, id: &str) -> Option<Manifest> {
        let dir = self.dataset_dir(id)?;
        PreparedDataset::open(&dir, Verify::Sizes)
            .ok()
            .map(|dataset| dataset.manifest().clone())
    }

    pub fn validate(&self, job: &Job) -> Validation {
        validate(job, &self.settings.policy, &|id| self.manifest(id))
    }

    /// The user and group jobs run as (and own their scratch folder).
    /// Who owns the job's scratch: the user its program runs as on `backend`.
    fn job_user(&self, backend: BackendKind) -> (u32, u32) {
        match backend {
            BackendKind::Kubernetes => {
                let k = &self.settings.kubernetes;
                (
                    u32::try_from(k.run_as_user).unwrap_or(self.settings.process.uid),
                    u32::try_from(k.run_as_group).unwrap_or(self.settings.process.gid),
                )
            }
            BackendKind::Process | BackendKind::Docker => {
                (self.settings.process.uid, self.settings.process.gid)
            }
        }
    }

    /// The configured default when `requested` is `None`.
    pub fn backend_kind(&self, requested: Option<BackendKind>) -> BackendKind {
        requested.unwrap_or(self.settings.backend)
    }

    /// Runs `job` to its end where `placement` puts it; every event goes to `emit`, the last
    /// one being `Finished`.
    pub async fn execute(
        &self,
        job_id: &str,
        job: &Job,
        backend: BackendKind,
        placement: Placement,
        cancel: &CancellationToken,
        emit: &mut (dyn FnMut(Event) + Send),
    ) -> JobResult {
        let result = self
            .execute_inner(job_id, job, backend, placement, cancel, emit)
            .await;
        emit(Event::Finished(result.clone()));
        result
    }

    async fn execute_inner(
        &self,
        job_id: &str,
        job: &Job,
        backend: BackendKind,
        placement: Placement,
        cancel: &CancellationToken,
        emit: &mut (dyn FnMut(Event) + Send),
    ) -> JobResult {
        let validation = self.validate(job);
        if !validation.ok() {
            let reasons: Vec<String> = validation
                .violations
                .iter()
                .map(|v| format!("{}: {}", v.rule, v.message))
                .collect();
            return JobResult::rejected(format!(
                "refused by the static checks: {}",
                reasons.join("; ")
            ));
        }
        let limits = validation.effective_limits;
        let (uid, gid) = self.job_user(backend);
        let work = match WorkDir::create(
            &self.settings.work_dir,
            job_id,
            limits.scratch_bytes,
            uid,
            gid,
        ) {
            Ok(work) => work,
            Err(error) => {
                return JobResult::rejected(format!("cannot prepare the job's folder: {error}"));
            }
        };
        let result = self
            .run_in(
                &work, job_id, job, backend, placement, &limits, cancel, emit,
            )
            .await;
        work.remove();
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_in(
        &self,
        work: &WorkDir,
        job_id: &str,
        job: &Job,
        backend: BackendKind,
        placement: Placement,
        limits: &crate::limits::Limits,
        cancel: &CancellationToken,
        emit: &mut (dyn FnMut(Event) + Send),
    ) -> JobResult {
        let gpu = placement.gpu;
        let prepared = match self.prepare(work, job, backend, limits, placement.sharing) {
            Ok(prepared) => prepared,
            Err(error) => return JobResult::rejected(error),
        };
        let mut env = prepared.env;
        // A process job sees every GPU node; CUDA is told which one is its own (a container
        // gets only its GPU).
        if let (BackendKind::Process, Some(index)) = (backend, gpu) {
            env.push(("CUDA_VISIBLE_DEVICES".into(), index.to_string()));
        }
        // Burn's CUDA backend opens the driver and NVRTC by name: from the folders it found
        // them in when asked (visible read-only to train jobs).
        if let Some(path) = job
            .train_device()
            .and_then(|device| self.devices.library_path(device))
        {
            env.push(("LD_LIBRARY_PATH".into(), path));
        }
        let launch = Launch {
            job_id,
            argv: prepared.argv,
            env,
            work,
            dataset_dir: prepared.dataset_dir,
            trainer: prepared.trainer,
            gpu: job.on_gpu(),
            gpu_index: gpu,
            limits: *limits,
        };
        let launched = match backend {
            BackendKind::Process => match &self.process {
                Ok(process) => process.launch(launch),
                Err(why) => Err(format!("the process backend is unavailable: {why}")),
            },
            BackendKind::Docker => match &self.docker {
                Ok(docker) => docker.launch(launch).await,
                Err(why) => Err(format!("the docker backend is unavailable: {why}")),
            },
            BackendKind::Kubernetes => match &self.kubernetes {
                Ok(kubernetes) => kubernetes.launch(launch).await,
                Err(why) => Err(format!("the kubernetes backend is unavailable: {why}")),
            },
        };
        let mut launched = match launched {
            Ok(launched) => launched,
            Err(error) => return JobResult::rejected(error),
        };
        let enforcement = launched.enforcement.clone();
        // `started` means the program runs: a Job's pod is scheduled and its container up.
        if let Some(running) = launched.running.take() {
            tokio::select! {
                _ = running => {}
                // Cancelled while waiting: the watch below sees it at once and kills.
                () = cancel.cancelled() => {}
            }
        }
        emit(Event::Started(enforcement.clone()));
        let interval = Duration::from_millis(self.settings.sample_interval_ms);
        let mut watched = watch(&mut launched, limits, interval, cancel, emit).await;
        launched.control.finish(&mut watched.exit).await;
        let (mut reason, mut message) = classify(&watched, limits);
        if reason == ExitReason::Failed && work.scratch_is_tmpfs && scratch_full(&work.scratch) {
            message.push_str(&format!(
                " (the scratch directory is full: limits.scratch_bytes = {})",
                limits.scratch_bytes
            ));
        }
        let mut outputs = Vec::new();
        if reason.succeeded() {
            let destination = self.settings.outputs_dir.join(job_id);
            match work.collect_outputs(&destination, self.settings.max_kept_output_bytes) {
                Ok(kept) => outputs = kept,
                Err(error) => {
                    reason = ExitReason::Failed;
                    message = error;
                }
            }
        }
        let seeds = seed_outcomes(job, &mut watched, &message);
        let exit = &watched.exit;
        JobResult {
            reason,
            exit_code: exit.exit_code.unwrap_or(0),
            signal: exit.signal.unwrap_or(0),
            message,
            final_metrics: watched.final_metrics,
            seeds,
            usage: Usage {
                wall_seconds: watched.wall_seconds,
                cpu_seconds: watched.cpu_seconds.max(exit.cpu_seconds),
                peak_rss_bytes: watched.peak_rss_bytes.max(exit.peak_rss_bytes),
                output_bytes: watched.output_bytes,
            },
            outputs,
            enforcement: Some(enforcement),
        }
    }

    /// Inputs into the scratch directory; the argv and environment of the job.
    fn prepare(
        &self,
        work: &WorkDir,
        job: &Job,
        backend: BackendKind,
        limits: &crate::limits::Limits,
        sharing: u32,
    ) -> Result<Prepared, String> {
        let (uid, gid) = self.job_user(backend);
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), "/opt/ra:/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), SCRATCH_MOUNT.into()),
            ("TMPDIR".into(), format!("{SCRATCH_MOUNT}/{TMP_SUBDIR}")),
            ("LANG".into(), "C.UTF-8".into()),
            (
                "RA_OUTPUT_DIR".into(),
                format!("{SCRATCH_MOUNT}/{OUTPUT_SUBDIR}"),
            ),
        ];
        let dataset_id = match &job.kind {
            JobKind::Train(train) => Some(train.prepared_dataset_id.as_str()),
            JobKind::Command(command) => command.prepared_dataset_id.as_deref(),
        };
        let dataset_dir = match dataset_id {
            Some(id) => {
                env.push(("RA_DATASET_DIR".into(), DATASET_MOUNT.into()));
                Some(
                    self.dataset_dir(id)
                        .ok_or_else(|| format!("no prepared dataset {id:?}"))?,
                )
            }
            None => None,
        };
        match &job.kind {
            JobKind::Train(train) => {
                let trainer = self.trainer.clone().ok_or(
                    "cannot find ra-trainer beside this program or on PATH; build it or set sandbox.trainer_path",
                )?;
                let spec = serde_json::json!({"model": train.model, "train": train.train});
                let spec_file = crate::job::InputFile {
                    path: "spec.json".into(),
                    content: serde_json::to_vec(&spec).map_err(|e| e.to_string())?,
                    executable: false,
                };
                work.write_inputs(&[spec_file], uid, gid)?;
                let threads = trainer_threads(backend, limits.cpu_millis, sharing);
                // The device as chosen when the job was accepted (`auto` resolved).
                let backend = match train.device.as_str() {
                    "libtorch" => "tch",
                    "libtorch-cuda" => "tch-cuda",
                    "" | "flex" => "flex",
                    other => other,
                };
                let mut argv: Vec<String> = [
                    TRAINER_MOUNT,
                    "train",
                    "--spec",
                    &format!("{SCRATCH_MOUNT}/spec.json"),
                    "--data",
                    DATASET_MOUNT,
                    "--threads",
                    &threads.to_string(),
                    "--backend",
                    backend,
                ]
                .map(str::to_owned)
                .to_vec();
                if train.seeds.is_empty() {
                    argv.extend(["--seed".to_owned(), train.seed.to_string()]);
                } else {
                    let seeds: Vec<String> = train.seeds.iter().map(u64::to_string).collect();
                    argv.extend(["--seeds".to_owned(), seeds.join(",")]);
                }
                if train.save_weights {
                    argv.push("--output".into());
                    argv.push(format!("{SCRATCH_MOUNT}/{OUTPUT_SUBDIR}"));
                }
                Ok(Prepared {
                    argv,
                    env,
                    dataset_dir,
                    trainer: Some(trainer),
                })
            }
            JobKind::Command(command) => {
                work.write_inputs(&command.files, uid, gid)?;
                env.extend(command.env.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(Prepared {
                    argv: command.argv.clone(),
                    env,
                    dataset_dir,
                    trainer: None,
                })
            }
        }
    }
}

/// How each seed of a job of several seeds ended, in the job's order: its final record, its
/// error, or — when it printed neither — the job's own end (`message`).
fn seed_outcomes(job: &Job, watched: &mut Watched, message: &str) -> Vec<SeedOutcome> {
    let JobKind::Train(train) = &job.kind else {
        return Vec::new();
    };
    train
        .seeds
        .iter()
        .map(|&seed| {
            let final_metrics = watched.seed_finals.remove(&seed).unwrap_or_default();
            let error = match watched.seed_errors.remove(&seed) {
                Some(error) => error,
                None if final_metrics.is_empty() => {
                    format!("the job ended before this seed finished: {message}")
                }
                None => String::new(),
            };
            SeedOutcome {
                seed,
                final_metrics,
                error,
            }
        })
        .collect()
}

/// A short name for this service instance, from its work folder: what a restarted instance
/// reaps (cgroups, containers) is what the same instance left, never another's.
fn instance_name(work_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let absolute = std::path::absolute(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    let digest = Sha256::digest(absolute.to_string_lossy().as_bytes());
    hex::encode(&digest[..6])
}

struct Prepared {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    dataset_dir: Option<PathBuf>,
    trainer: Option<PathBuf>,
}

/// True when the scratch filesystem has (almost) no space left.
fn scratch_full(scratch: &Path) -> bool {
    nix::sys::statvfs::statvfs(scratch)
        .map(|s| s.blocks_available() == 0 || s.blocks_available() * 100 < s.blocks())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threads_of_concurrent_jobs_add_up_to_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let big = 1_000 * cores * 4;
        assert_eq!(trainer_threads(BackendKind::Process, big, 1), cores);
        for sharing in 1..=cores {
            let each = trainer_threads(BackendKind::Docker, big, sharing);
            assert!(each * sharing <= cores, "{sharing} jobs × {each} threads");
            assert!(each >= 1);
        }
        // More jobs than cores: one thread each; a small CPU limit caps the share.
        assert_eq!(trainer_threads(BackendKind::Process, big, cores * 3), 1);
        assert_eq!(trainer_threads(BackendKind::Process, 1_000, 1), 1);
        assert_eq!(
            trainer_threads(BackendKind::Process, 1_500, 1),
            2.min(cores)
        );
        // A kubernetes trial runs elsewhere: its limit alone.
        assert_eq!(trainer_threads(BackendKind::Kubernetes, 3_000, 8), 3);
    }
}
