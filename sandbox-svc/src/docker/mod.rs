//! The `docker` backend (through bollard): one container per job from a minimal image — built
//! locally `FROM scratch` with `ra-trainer`, a shell and the shared libraries they need when the
//! configured image is absent, since no registry may be reachable — with memory, nano-CPU and
//! pids limits, no network, a read-only root, all capabilities dropped, no-new-privileges, a
//! non-root user, the job's sized scratch tmpfs and the dataset (read-only) bound in — and, for
//! a train job, the folders outside the system's own that the trainer loads its libraries from
//! (a LibTorch build's torch venv, about 4 GB of CUDA libraries that no image should copy on
//! every trainer build), read-only at the same paths as on the host. Output is
//! streamed from the logs; the container is always removed, and containers carrying the
//! sandbox label that a crashed service left are reaped at start-up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, Mount, MountTypeEnum, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StatsOptions, WaitContainerOptions,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Control, Launch, Launched, RawExit};
use crate::events::{BackendKind, Enforcement, OutputStream, ResourceSample};
use crate::process::plan::{DATASET_MOUNT, SCRATCH_MOUNT};

mod image;

/// The label every sandbox container carries.
pub const LABEL: &str = "research-agent.sandbox";
const LABEL_JOB: &str = "research-agent.sandbox.job";
/// Which service instance (work folder) started the container.
const LABEL_INSTANCE: &str = "research-agent.sandbox.instance";

/// The docker backend's settings (`[sandbox.docker]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSettings {
    /// Image for jobs; empty: `research-agent-sandbox:<content hash>`, built locally from
    /// `ra-trainer` and `shell_programs` when absent.
    pub image: String,
    /// Programs copied into a locally built image with their libraries (for command jobs).
    pub shell_programs: Vec<PathBuf>,
    /// A static busybox copied into a locally built image as `/usr/bin/busybox` with a link per
    /// applet (`ls`, `cat`, `cp`, `grep`, `sed`, `awk`, …), so that command jobs have ordinary
    /// tools; Debian's `busybox-static` installs one at `/bin/busybox`. Empty, or not a file:
    /// none (the image then holds only the shell programs and the trainer).
    pub busybox: PathBuf,
    /// The user jobs run as inside the container.
    pub user: String,
}

impl Default for DockerSettings {
    fn default() -> Self {
        Self {
            image: String::new(),
            shell_programs: vec![PathBuf::from("/bin/bash"), PathBuf::from("/bin/sh")],
            busybox: PathBuf::from("/bin/busybox"),
            user: "65534:65534".into(),
        }
    }
}

#[derive(Debug)]
pub struct DockerBackend {
    docker: Docker,
    instance: String,
    image: String,
    user: String,
    /// The trainer's library folders outside the system's, bound read-only into train jobs.
    trainer_folders: Vec<PathBuf>,
}

fn docker_error(what: &str) -> impl FnOnce(bollard::errors::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl DockerBackend {
    /// Connects to the local engine, reaps leftover sandbox containers and makes sure the image
    /// exists (building it from `trainer` when it does not).
    pub async fn new(
        settings: &DockerSettings,
        trainer: Option<&Path>,
        runtime_folders: &[PathBuf],
        instance: &str,
    ) -> Result<Self, String> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(docker_error("cannot reach the Docker engine"))?;
        docker
            .ping()
            .await
            .map_err(docker_error("the Docker engine does not answer"))?;
        let system = crate::libraries::SYSTEM_FOLDERS.map(PathBuf::from);
        let mut trainer_folders = match trainer {
            Some(trainer) => crate::libraries::folders(trainer, &system)?,
            None => Vec::new(),
        };
        // The libraries a device opens at run time (the CUDA driver comes with the NVIDIA
        // container runtime; NVRTC from where the trainer found it).
        let covered = [system.as_slice(), &trainer_folders].concat();
        trainer_folders.extend(crate::libraries::outside_folders(runtime_folders, &covered));
        let backend = Self {
            docker,
            instance: instance.to_owned(),
            image: String::new(),
            user: settings.user.clone(),
            trainer_folders,
        };
        let reaped = backend.reap_leftovers().await;
        if reaped > 0 {
            tracing::warn!(
                reaped,
                "removed sandbox containers left by an earlier sandbox-svc"
            );
        }
        let rootfs = image::files(
            trainer,
            &settings.shell_programs,
            &settings.busybox,
            &backend.trainer_folders,
        )?;
        let image = if settings.image.is_empty() {
            format!("research-agent-sandbox:{}", image::content_tag(&rootfs)?)
        } else {
            settings.image.clone()
        };
        if backend.docker.inspect_image(&image).await.is_err() {
            tracing::info!(%image, "building the sandbox image (FROM scratch)");
            image::build(&backend.docker, &image, &rootfs).await?;
        }
        Ok(Self { image, ..backend })
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    async fn reap_leftovers(&self) -> usize {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_INSTANCE}={}", self.instance)],
        )]);
        let listed = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .unwrap_or_default();
        let mut count = 0;
        for container in listed {
            if let Some(id) = container.id {
                remove(&self.docker, &id).await;
                count += 1;
            }
        }
        count
    }

    pub async fn launch(&self, launch: Launch<'_>) -> Result<Launched, String> {
        let name = format!("ra-sandbox-{}", launch.job_id);
        let scratch_is_tmpfs = launch.work.scratch_is_tmpfs;
        let body = self.container_body(&launch);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(docker_error("cannot create the container"))?;
        let id = created.id;
        if let Err(error) = self
            .docker
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            remove(&self.docker, &id).await;
            return Err(format!("cannot start the container: {error}"));
        }
        let output = self.follow_output(&id);
        let exit = self.wait_exit(&id);
        // Docker's own stats stream (one record a second), read in the background: a request
        // per sample inline with the output slowed the output stream to a halt.
        let latest = Arc::new(Mutex::new(None));
        let sampler = tokio::spawn(sample_stream(
            self.docker.clone(),
            id.clone(),
            latest.clone(),
        ));
        Ok(Launched {
            output,
            exit,
            enforcement: Enforcement {
                backend: BackendKind::Docker,
                resource_control: "docker".into(),
                seccomp: true,
                namespaces: ["mount", "pid", "network", "ipc", "uts"]
                    .map(str::to_owned)
                    .to_vec(),
                network_isolated: true,
                scratch: if scratch_is_tmpfs {
                    "tmpfs"
                } else {
                    "unbounded"
                }
                .into(),
            },
            control: Control::Docker(DockerControl {
                docker: self.docker.clone(),
                id,
                latest,
                sampler,
            }),
            running: None,
        })
    }

    /// The container: the job's command and environment in the image, as the sandbox user,
    /// with the limits, no network, a read-only root, no capabilities, the scratch folder
    /// read-write and the dataset read-only.
    fn container_body(&self, launch: &Launch<'_>) -> ContainerCreateBody {
        let limits = launch.limits;
        let mut binds = vec![format!(
            "{}:{SCRATCH_MOUNT}:rw",
            launch.work.scratch.display()
        )];
        if let Some(dataset) = &launch.dataset_dir {
            binds.push(format!("{}:{DATASET_MOUNT}:ro", dataset.display()));
        }
        let host_config = HostConfig {
            memory: Some(limits.memory_bytes as i64),
            memory_swap: Some(limits.memory_bytes as i64),
            nano_cpus: Some(i64::from(limits.cpu_millis) * 1_000_000),
            pids_limit: Some(i64::from(limits.max_processes)),
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            binds: Some(binds),
            mounts: launch.trainer.is_some().then(|| {
                self.trainer_folders
                    .iter()
                    .map(|folder| Mount {
                        target: Some(folder.display().to_string()),
                        source: Some(folder.display().to_string()),
                        typ: Some(MountTypeEnum::BIND),
                        read_only: Some(true),
                        ..Default::default()
                    })
                    .collect()
            }),
            // A GPU job gets the host's GPUs through the NVIDIA container runtime.
            device_requests: launch.gpu.then(|| {
                vec![DeviceRequest {
                    driver: Some("nvidia".into()),
                    // The GPU this job was given, else every GPU.
                    count: launch.gpu_index.is_none().then_some(-1),
                    device_ids: launch.gpu_index.map(|index| vec![index.to_string()]),
                    capabilities: Some(vec![vec!["gpu".into()]]),
                    ..Default::default()
                }]
            }),
            ulimits: Some(vec![
                ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(i64::from(limits.max_open_files)),
                    hard: Some(i64::from(limits.max_open_files)),
                },
                ResourcesUlimits {
                    name: Some("core".into()),
                    soft: Some(0),
                    hard: Some(0),
                },
            ]),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(launch.argv.clone()),
            env: Some(launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: Some(self.user.clone()),
            working_dir: Some(SCRATCH_MOUNT.into()),
            hostname: Some("sandbox".into()),
            network_disabled: Some(true),
            labels: Some(HashMap::from([
                (LABEL.to_owned(), "job".to_owned()),
                (LABEL_JOB.to_owned(), launch.job_id.to_owned()),
                (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            ])),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    /// The container's stdout and stderr as they come.
    fn follow_output(&self, id: &str) -> mpsc::Receiver<(OutputStream, bytes::Bytes)> {
        let (output_tx, output) = mpsc::channel(64);
        let mut logs = self.docker.logs(
            id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        tokio::spawn(async move {
            while let Some(chunk) = logs.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(error) => {
                        tracing::warn!(%error, "reading the container's output failed");
                        break;
                    }
                };
                let (stream, message) = match chunk {
                    bollard::container::LogOutput::StdErr { message } => {
                        (OutputStream::Stderr, message)
                    }
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => {
                        (OutputStream::Stdout, message)
                    }
                    bollard::container::LogOutput::StdIn { .. } => continue,
                };
                if output_tx.send((stream, message)).await.is_err() {
                    break;
                }
            }
        });
        output
    }

    /// How the container ends, once it does.
    fn wait_exit(&self, id: &str) -> oneshot::Receiver<RawExit> {
        let (exit_tx, exit) = oneshot::channel();
        let docker = self.docker.clone();
        let waited_id = id.to_owned();
        tokio::spawn(async move {
            let mut wait = docker.wait_container(
                &waited_id,
                Some(WaitContainerOptions {
                    condition: "not-running".into(),
                }),
            );
            let code = match wait.next().await {
                Some(Ok(response)) => Some(response.status_code),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Some(code)
                }
                _ => None,
            };
            let _ = exit_tx.send(exit_from_code(code));
        });
        exit
    }
}

/// Docker reports a signal death as 128 + the signal number.
fn exit_from_code(code: Option<i64>) -> RawExit {
    match code {
        Some(code) if (129..=192).contains(&code) => RawExit {
            signal: Some((code - 128) as i32),
            ..RawExit::default()
        },
        Some(code) => RawExit {
            exit_code: Some(code as i32),
            ..RawExit::default()
        },
        None => RawExit {
            setup_error: Some("lost the container before it reported an exit".into()),
            ..RawExit::default()
        },
    }
}

async fn remove(docker: &Docker, id: &str) {
    let _ = docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await;
}

/// Keeps the latest resource sample of container `id` in `latest` until its stats end.
async fn sample_stream(docker: Docker, id: String, latest: Arc<Mutex<Option<ResourceSample>>>) {
    let mut stats = docker.stats(
        &id,
        Some(StatsOptions {
            stream: true,
            one_shot: false,
        }),
    );
    let mut peak = 0;
    while let Some(Ok(stats)) = stats.next().await {
        let Some(memory) = stats.memory_stats else {
            continue;
        };
        let rss = memory.usage.unwrap_or(0);
        peak = peak.max(memory.max_usage.unwrap_or(rss)).max(rss);
        let cpu = stats
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let sample = ResourceSample {
            cpu_seconds: cpu as f64 / 1e9,
            rss_bytes: rss,
            peak_rss_bytes: peak,
        };
        *latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(sample);
    }
}

/// The handle on a running container.
pub struct DockerControl {
    docker: Docker,
    id: String,
    latest: Arc<Mutex<Option<ResourceSample>>>,
    sampler: tokio::task::JoinHandle<()>,
}

impl DockerControl {
    pub async fn kill(&mut self) {
        let _ = self
            .docker
            .kill_container(
                &self.id,
                Some(KillContainerOptions {
                    signal: "SIGKILL".into(),
                }),
            )
            .await;
    }

    pub async fn sample(&mut self) -> Option<ResourceSample> {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn finish(self, exit: &mut RawExit) {
        self.sampler.abort();
        if let Ok(inspect) = self
            .docker
            .inspect_container(
                &self.id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            && let Some(state) = inspect.state
        {
            exit.oom_killed = state.oom_killed.unwrap_or(false);
        }
        if let Some(sample) = *self.latest.lock().unwrap_or_else(|p| p.into_inner()) {
            exit.peak_rss_bytes = exit.peak_rss_bytes.max(sample.peak_rss_bytes);
            exit.cpu_seconds = exit.cpu_seconds.max(sample.cpu_seconds);
        }
        remove(&self.docker, &self.id).await;
    }
}
