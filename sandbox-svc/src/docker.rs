//! The `docker` backend (through bollard): one container per job from a minimal image — built
//! locally `FROM scratch` with `ra-trainer`, a shell and the shared libraries they need when the
//! configured image is absent, since no registry may be reachable — with memory, nano-CPU and
//! pids limits, no network, a read-only root, all capabilities dropped, no-new-privileges, a
//! non-root user, the job's sized scratch tmpfs and the dataset (read-only) bound in. Output is
//! streamed from the logs; the container is always removed, and containers carrying the
//! sandbox label that a crashed service left are reaped at start-up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StatsOptions, WaitContainerOptions,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Control, Launch, Launched, RawExit};
use crate::events::{BackendKind, Enforcement, OutputStream, ResourceSample};
use crate::process::plan::{DATASET_MOUNT, SCRATCH_MOUNT, TRAINER_MOUNT};

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
        instance: &str,
    ) -> Result<Self, String> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(docker_error("cannot reach the Docker engine"))?;
        docker
            .ping()
            .await
            .map_err(docker_error("the Docker engine does not answer"))?;
        let backend = Self {
            docker,
            instance: instance.to_owned(),
            image: String::new(),
            user: settings.user.clone(),
        };
        let reaped = backend.reap_leftovers().await;
        if reaped > 0 {
            tracing::warn!(
                reaped,
                "removed sandbox containers left by an earlier sandbox-svc"
            );
        }
        let rootfs = image_files(trainer, &settings.shell_programs, &settings.busybox)?;
        let image = if settings.image.is_empty() {
            format!("research-agent-sandbox:{}", content_tag(&rootfs))
        } else {
            settings.image.clone()
        };
        if backend.docker.inspect_image(&image).await.is_err() {
            tracing::info!(%image, "building the sandbox image (FROM scratch)");
            backend.build(&image, &rootfs).await?;
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

    async fn build(&self, image: &str, rootfs: &[(PathBuf, Vec<u8>, u32)]) -> Result<(), String> {
        let context = build_context(rootfs)?;
        let mut stream = self.docker.build_image(
            BuildImageOptions {
                dockerfile: "Dockerfile".into(),
                t: Some(image.to_owned()),
                rm: true,
                forcerm: true,
                labels: Some(HashMap::from([(LABEL.to_owned(), "image".to_owned())])),
                ..Default::default()
            },
            None,
            Some(bollard::body_full(context.into())),
        );
        while let Some(step) = stream.next().await {
            let info = step.map_err(docker_error("building the sandbox image failed"))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(format!("building the sandbox image failed: {error}"));
            }
        }
        Ok(())
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

/// The mode of an image entry that is a symbolic link (its content is the link's target).
const SYMLINK_MODE: u32 = 0o120_777;

/// `(path in the image, content, mode)` of every file of a locally built image: the trainer,
/// the shell programs, the shared libraries they load, busybox with its applet links, and a
/// few small files.
fn image_files(
    trainer: Option<&Path>,
    programs: &[PathBuf],
    busybox: &Path,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    let mut files: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    if busybox.is_file() {
        files.extend(busybox_files(busybox)?);
    } else if !busybox.as_os_str().is_empty() {
        tracing::warn!(
            busybox = %busybox.display(),
            "no busybox: command jobs in the docker image get no ls, cat, … (install busybox-static or set sandbox.docker.busybox)"
        );
    }
    let mut binaries: Vec<(PathBuf, PathBuf)> = programs
        .iter()
        .filter(|p| p.exists())
        .map(|p| (p.clone(), p.clone()))
        .collect();
    if let Some(trainer) = trainer {
        binaries.push((trainer.to_path_buf(), PathBuf::from(TRAINER_MOUNT)));
    }
    let mut libraries = std::collections::BTreeSet::new();
    for (source, target) in &binaries {
        let content =
            std::fs::read(source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        files.push((target.clone(), content, 0o755));
        libraries.extend(shared_libraries(source)?);
    }
    for library in libraries {
        let content = std::fs::read(&library)
            .map_err(|e| format!("cannot read {}: {e}", library.display()))?;
        files.push((library, content, 0o755));
    }
    files.push((
        PathBuf::from("/etc/passwd"),
        b"root:x:0:0:root:/scratch:/bin/sh\nsandbox:x:65534:65534:sandbox:/scratch:/bin/sh\n"
            .to_vec(),
        0o644,
    ));
    files.push((
        PathBuf::from("/etc/group"),
        b"root:x:0:\nsandbox:x:65534:\n".to_vec(),
        0o644,
    ));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|a, b| a.0 == b.0);
    Ok(files)
}

/// `/usr/bin/busybox` and a link to it for each applet it lists. Only a static busybox is taken
/// (a dynamic one would need libraries this image does not carry).
fn busybox_files(busybox: &Path) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    if !shared_libraries(busybox)?.is_empty() {
        return Err(format!(
            "sandbox.docker.busybox {} is not statically linked; install Debian's busybox-static",
            busybox.display()
        ));
    }
    let listed = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("cannot run {} --list: {e}", busybox.display()))?;
    if !listed.status.success() {
        return Err(format!(
            "{} --list failed: {}",
            busybox.display(),
            listed.status
        ));
    }
    let content =
        std::fs::read(busybox).map_err(|e| format!("cannot read {}: {e}", busybox.display()))?;
    let mut files = vec![(PathBuf::from("/usr/bin/busybox"), content, 0o755)];
    for applet in String::from_utf8_lossy(&listed.stdout).lines() {
        let applet = applet.trim();
        let plain = !applet.is_empty()
            && applet
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '['))
            && applet != "busybox";
        if plain {
            files.push((
                PathBuf::from("/usr/bin").join(applet),
                b"busybox".to_vec(),
                SYMLINK_MODE,
            ));
        }
    }
    Ok(files)
}

/// The shared libraries `binary` loads, from `ldd`.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let output = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| {
            format!(
                "cannot run ldd to find the libraries of {}: {e}",
                binary.display()
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn content_tag(files: &[(PathBuf, Vec<u8>, u32)]) -> String {
    let mut hasher = Sha256::new();
    for (path, content, mode) in files {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(mode.to_le_bytes());
        hasher.update(Sha256::digest(content));
    }
    hex::encode(&hasher.finalize()[..8])
}

/// A tar build context: the Dockerfile and `rootfs/`.
fn build_context(files: &[(PathBuf, Vec<u8>, u32)]) -> Result<Vec<u8>, String> {
    let dockerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\nUSER 65534:65534\nWORKDIR {SCRATCH_MOUNT}\nENV PATH=/opt/ra:/usr/bin:/bin\n"
    );
    let mut archive = tar::Builder::new(Vec::new());
    let mut append = |path: &str, content: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        archive
            .append_data(&mut header, path, content)
            .map_err(|e| format!("cannot build the image context: {e}"))
    };
    append("Dockerfile", dockerfile.as_bytes(), 0o644)?;
    let mut links = Vec::new();
    for (path, content, mode) in files {
        let inside = path.strip_prefix("/").unwrap_or(path);
        if *mode == SYMLINK_MODE {
            links.push((format!("rootfs/{}", inside.display()), content));
        } else {
            append(&format!("rootfs/{}", inside.display()), content, *mode)?;
        }
    }
    for dir in ["rootfs/scratch/.keep", "rootfs/dataset/.keep"] {
        append(dir, b"", 0o644)?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    archive
        .append_link(&mut header, "rootfs/tmp", "/scratch/tmp")
        .map_err(|e| format!("cannot build the image context: {e}"))?;
    for (path, target) in links {
        let target = String::from_utf8_lossy(target).into_owned();
        archive
            .append_link(&mut header, &path, &target)
            .map_err(|e| format!("cannot build the image context: {e}"))?;
    }
    archive
        .into_inner()
        .map_err(|e| format!("cannot build the image context: {e}"))
}
