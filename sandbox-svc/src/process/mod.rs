//! The `process` backend: the job runs as a child of `ra-sandbox-init` in fresh mount, pid,
//! network, ipc and uts namespaces, inside a cgroup (v2 or v1) when one can be made, else under
//! rlimits, with seccomp, no-new-privileges, an unprivileged user, a clean environment, and a
//! new root where only the scratch directory is writable.

pub mod cgroup;
pub mod init;
pub mod plan;
pub mod seccomp;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Control, Launch, Launched, RawExit};
use crate::events::{BackendKind, Enforcement, OutputStream, ResourceSample};
use cgroup::{Cgroup, Hierarchy};
use plan::{InitPlan, InitStatus, Rlimits};

/// The process backend's settings (`[sandbox.process]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessSettings {
    /// `ra-sandbox-init`; empty: beside the service's executable, else on PATH.
    pub init_path: PathBuf,
    /// Host folders visible read-only inside the sandbox (programs and libraries).
    pub read_only_paths: Vec<PathBuf>,
    /// The user and group jobs run as when the service is root.
    pub uid: u32,
    pub gid: u32,
    /// Where cgroup hierarchies are mounted; empty disables cgroups (rlimits only).
    pub cgroup_root: PathBuf,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        Self {
            init_path: PathBuf::new(),
            read_only_paths: [
                "/usr",
                "/bin",
                "/sbin",
                "/lib",
                "/lib32",
                "/lib64",
                "/etc/alternatives",
                "/etc/ld.so.cache",
                "/etc/ld.so.conf",
                "/etc/ld.so.conf.d",
                "/etc/localtime",
                "/etc/nsswitch.conf",
            ]
            .map(PathBuf::from)
            .to_vec(),
            uid: 65_534,
            gid: 65_534,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

#[derive(Debug)]
pub struct ProcessBackend {
    settings: ProcessSettings,
    /// The cgroup folder of this service instance (`ra-sandbox-<instance>`).
    group_parent: String,
    init: PathBuf,
    hierarchy: Option<Hierarchy>,
    /// Why there is no cgroup, for the log and the enforcement report.
    pub cgroup_note: Option<String>,
    /// Folders outside `read_only_paths` the trainer loads its libraries from (a LibTorch
    /// build's venv), visible read-only to train jobs.
    pub trainer_folders: Vec<PathBuf>,
}

impl ProcessBackend {
    /// Finds `ra-sandbox-init`, probes the cgroup hierarchy by creating and removing a group,
    /// reaps groups a crashed service left behind, and finds where `trainer` loads its
    /// libraries from.
    pub fn new(
        settings: ProcessSettings,
        instance: &str,
        trainer: Option<&Path>,
        runtime_folders: &[PathBuf],
    ) -> Result<Self, String> {
        let group_parent = format!("ra-sandbox-{instance}");
        let init = if settings.init_path.as_os_str().is_empty() {
            init::locate_binary("ra-sandbox-init").ok_or(
                "cannot find ra-sandbox-init beside this program or on PATH; run research-agent (which carries it), build it (cargo build -p sandbox-svc) or set sandbox.process.init_path",
            )?
        } else {
            settings.init_path.clone()
        };
        if !init.is_file() {
            return Err(format!(
                "sandbox.process.init_path {} is not a file",
                init.display()
            ));
        }
        let (hierarchy, cgroup_note) = probe_cgroups(&settings.cgroup_root, &group_parent);
        if let Some(hierarchy) = &hierarchy {
            let reaped = hierarchy.reap_leftovers(&group_parent);
            if reaped > 0 {
                tracing::warn!(reaped, "removed cgroups left by an earlier sandbox-svc");
            }
        }
        let mut trainer_folders = match trainer {
            Some(trainer) => crate::libraries::folders(trainer, &settings.read_only_paths)
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "the trainer's libraries are not all found");
                    Vec::new()
                }),
            None => Vec::new(),
        };
        let covered = [settings.read_only_paths.as_slice(), &trainer_folders].concat();
        trainer_folders.extend(crate::libraries::outside_folders(runtime_folders, &covered));
        if !trainer_folders.is_empty() {
            tracing::info!(folders = ?trainer_folders, "the trainer's own library folders are visible to train jobs");
        }
        Ok(Self {
            settings,
            group_parent,
            init,
            hierarchy,
            cgroup_note,
            trainer_folders,
        })
    }

    /// "cgroup-v2", "cgroup-v1" or "rlimit".
    pub fn resource_control(&self) -> &'static str {
        self.hierarchy
            .as_ref()
            .map_or("rlimit", |h| h.version().label())
    }

    pub fn launch(&self, launch: Launch<'_>) -> Result<Launched, String> {
        let limits = launch.limits;
        let cgroup = match &self.hierarchy {
            Some(hierarchy) => match hierarchy.create(&self.group_parent, launch.job_id, &limits) {
                Ok(group) => Some(group),
                Err(error) => {
                    tracing::warn!(%error, "no cgroup for this job; rlimits instead");
                    None
                }
            },
            None => None,
        };
        // A train job also sees the folders its trainer loads libraries from.
        let trainer_folders = match launch.trainer {
            Some(_) => self.trainer_folders.as_slice(),
            None => &[],
        };
        let plan = InitPlan {
            argv: launch.argv,
            env: launch.env,
            scratch_dir: launch.work.scratch.clone(),
            root_dir: launch.work.root_dir(),
            dataset_dir: launch.dataset_dir,
            trainer: launch.trainer,
            read_only_paths: [self.settings.read_only_paths.as_slice(), trainer_folders].concat(),
            devices: if launch.gpu {
                gpu_devices()
            } else {
                Vec::new()
            },
            cgroup_procs: cgroup.as_ref().map(Cgroup::procs_files).unwrap_or_default(),
            rlimits: Rlimits {
                open_files: limits.max_open_files.into(),
                processes: cgroup.is_none().then_some(limits.max_processes.into()),
                address_space: cgroup.is_none().then_some(limits.memory_bytes),
                file_size: (!launch.work.scratch_is_tmpfs).then_some(limits.scratch_bytes),
            },
            uid: self.settings.uid,
            gid: self.settings.gid,
            status_file: launch.work.status_file(),
        };
        let plan_json = serde_json::to_string(&plan).map_err(|e| e.to_string())?;
        // Started under its own name: a multi-call program (research-agent) picks its role
        // from argv[0].
        let spawned = Command::new(&self.init)
            .arg0(crate::multicall::INIT)
            .arg(plan_json)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                if let Some(group) = &cgroup {
                    group.remove();
                }
                return Err(format!("cannot start {}: {error}", self.init.display()));
            }
        };
        let pid = child.id().map(|id| Pid::from_raw(id as i32));
        let lifeline = child.stdin.take();
        let (output_tx, output) = mpsc::channel(64);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(stdout, OutputStream::Stdout, output_tx.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(stderr, OutputStream::Stderr, output_tx));
        }
        let (exit_tx, exit) = oneshot::channel();
        let status_file = plan.status_file.clone();
        tokio::spawn(async move {
            let waited = child.wait().await;
            let _ = exit_tx.send(read_status(&status_file, waited));
        });
        let enforcement = Enforcement {
            backend: BackendKind::Process,
            resource_control: cgroup
                .as_ref()
                .map_or("rlimit", |g| g.version().label())
                .to_owned(),
            seccomp: true,
            namespaces: namespaces(),
            network_isolated: true,
            scratch: if launch.work.scratch_is_tmpfs {
                "tmpfs"
            } else {
                "rlimit"
            }
            .to_owned(),
        };
        Ok(Launched {
            output,
            exit,
            enforcement,
            control: Control::Process(ProcessControl {
                pid,
                lifeline,
                cgroup,
            }),
            running: None,
        })
    }
}

fn namespaces() -> Vec<String> {
    let mut names: Vec<String> = ["mount", "pid", "network", "ipc", "uts"]
        .map(str::to_owned)
        .to_vec();
    if !nix::unistd::Uid::effective().is_root() {
        names.push("user".into());
    }
    names
}

/// The host's NVIDIA device nodes (`/dev/nvidia0`, `/dev/nvidiactl`, `/dev/nvidia-uvm`, …, and
/// the `/dev/nvidia-caps` folder); none on a machine without the driver.
fn gpu_devices() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().starts_with("nvidia"))
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The hierarchy if a group can actually be made and removed here, else why not.
fn probe_cgroups(root: &Path, parent: &str) -> (Option<Hierarchy>, Option<String>) {
    if root.as_os_str().is_empty() {
        return (None, Some("cgroups disabled by configuration".into()));
    }
    let Some(hierarchy) = Hierarchy::detect(root) else {
        return (
            None,
            Some(format!(
                "no cgroup hierarchy with memory, pids and cpu under {}",
                root.display()
            )),
        );
    };
    let probe = format!("probe-{}", std::process::id());
    match hierarchy.create(
        parent,
        &probe,
        &crate::limits::LimitPolicy::default().defaults,
    ) {
        Ok(group) => {
            group.remove();
            (Some(hierarchy), None)
        }
        Err(error) => (None, Some(format!("cannot create a cgroup: {error}"))),
    }
}

async fn pump(
    mut source: impl tokio::io::AsyncRead + Unpin,
    stream: OutputStream,
    sink: mpsc::Sender<(OutputStream, bytes::Bytes)>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n) = source.read(&mut buffer).await {
        if n == 0
            || sink
                .send((stream, bytes::Bytes::copy_from_slice(&buffer[..n])))
                .await
                .is_err()
        {
            break;
        }
    }
}

fn read_status(status_file: &Path, waited: std::io::Result<std::process::ExitStatus>) -> RawExit {
    use std::os::unix::process::ExitStatusExt;
    let status: Option<InitStatus> = std::fs::read(status_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match status {
        Some(status) => RawExit {
            exit_code: status.exit_code,
            signal: status.signal,
            setup_error: status.setup_error,
            peak_rss_bytes: status.peak_rss_bytes,
            cpu_seconds: status.cpu_seconds,
            ..RawExit::default()
        },
        // The init itself was killed (cancel, timeout) before it could report.
        None => match waited {
            Ok(exit) => RawExit {
                exit_code: exit.code(),
                signal: exit.signal(),
                ..RawExit::default()
            },
            Err(error) => RawExit {
                setup_error: Some(format!("cannot wait for ra-sandbox-init: {error}")),
                ..RawExit::default()
            },
        },
    }
}

/// The handle on a running process job.
pub struct ProcessControl {
    pid: Option<Pid>,
    lifeline: Option<ChildStdin>,
    cgroup: Option<Cgroup>,
}

impl ProcessControl {
    pub fn kill(&mut self) {
        // Closing the lifeline makes the init kill the job; SIGKILL on the init kills it through
        // its parent-death signal; the cgroup catches anything else.
        self.lifeline = None;
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if let Some(group) = &self.cgroup {
            group.kill_all();
        }
    }

    pub fn sample(&mut self) -> Option<ResourceSample> {
        let usage = self.cgroup.as_ref()?.usage();
        Some(ResourceSample {
            cpu_seconds: usage.cpu_seconds,
            rss_bytes: usage.memory_bytes,
            peak_rss_bytes: usage.peak_memory_bytes,
        })
    }

    pub fn finish(mut self, exit: &mut RawExit) {
        self.lifeline = None;
        if let Some(group) = self.cgroup.take() {
            let usage = group.usage();
            exit.oom_killed = group.oom_killed();
            exit.cpu_seconds = exit.cpu_seconds.max(usage.cpu_seconds);
            exit.peak_rss_bytes = exit.peak_rss_bytes.max(usage.peak_memory_bytes);
            group.kill_all();
            group.remove();
        }
    }
}
