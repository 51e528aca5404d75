//! Control groups for the process backend: v2 (unified) or v1, whichever the host offers and
//! lets us write; memory (swap included where it can), pids and a CPU quota per job, resource
//! samples, out-of-memory detection, killing every member, and removal. Jobs live under
//! `ra-sandbox-<instance>/<job>` (the instance named after the service's work folder) so that a
//! restarted service reaps what a crashed one left, and only that.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::limits::Limits;

const CPU_PERIOD_MICROS: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub fn label(self) -> &'static str {
        match self {
            Version::V1 => "cgroup-v1",
            Version::V2 => "cgroup-v2",
        }
    }
}

/// Where the host's hierarchies are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// The unified mount (usually `/sys/fs/cgroup`).
    V2(PathBuf),
    /// One mount per controller.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
        cpuacct: PathBuf,
    },
}

impl Hierarchy {
    /// The usable hierarchy under `mount_root` (normally `/sys/fs/cgroup`): v2 when its
    /// controllers include memory, pids and cpu, else v1 when those controllers are mounted.
    pub fn detect(mount_root: &Path) -> Option<Hierarchy> {
        let controllers = fs::read_to_string(mount_root.join("cgroup.controllers")).ok();
        if let Some(list) = controllers {
            let has = |name: &str| list.split_whitespace().any(|c| c == name);
            if has("memory") && has("pids") && has("cpu") {
                return Some(Hierarchy::V2(mount_root.to_path_buf()));
            }
        }
        // Root groups lack some control files (no pids.max at the root): look for the mounts.
        let find = |names: &[&str]| {
            names
                .iter()
                .map(|name| mount_root.join(name))
                .find(|dir| dir.join("cgroup.procs").exists())
        };
        Some(Hierarchy::V1 {
            memory: find(&["memory"])?,
            pids: find(&["pids"])?,
            cpu: find(&["cpu", "cpu,cpuacct"])?,
            cpuacct: find(&["cpuacct", "cpu,cpuacct"])?,
        })
    }

    pub fn version(&self) -> Version {
        match self {
            Hierarchy::V2(_) => Version::V2,
            Hierarchy::V1 { .. } => Version::V1,
        }
    }

    /// The `parent` folders of this hierarchy (one per distinct v1 mount).
    fn parents(&self, parent: &str) -> Vec<PathBuf> {
        let mut dirs = match self {
            Hierarchy::V2(root) => vec![root.join(parent)],
            Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            } => [memory, pids, cpu, cpuacct]
                .iter()
                .map(|d| d.join(parent))
                .collect(),
        };
        dirs.dedup();
        dirs
    }

    /// Creates the job's group, under `parent`, with its limits.
    pub fn create(&self, parent: &str, job_id: &str, limits: &Limits) -> Result<Cgroup, String> {
        let write = |dir: &Path, file: &str, value: String| {
            fs::write(dir.join(file), &value)
                .map_err(|e| format!("cannot set {}/{file} to {value}: {e}", dir.display()))
        };
        let quota = u64::from(limits.cpu_millis) * CPU_PERIOD_MICROS / 1_000;
        match self {
            Hierarchy::V2(root) => {
                let parent = root.join(parent);
                mkdir(&parent)?;
                // Delegate the controllers down to the jobs' groups.
                let _ = write(root, "cgroup.subtree_control", "+memory +pids +cpu".into());
                write(
                    &parent,
                    "cgroup.subtree_control",
                    "+memory +pids +cpu".into(),
                )?;
                let dir = parent.join(job_id);
                mkdir(&dir)?;
                let group = Cgroup {
                    version: Version::V2,
                    dirs: vec![dir.clone()],
                };
                let set = || -> Result<(), String> {
                    write(&dir, "memory.max", limits.memory_bytes.to_string())?;
                    let _ = write(&dir, "memory.swap.max", "0".into());
                    write(&dir, "pids.max", limits.max_processes.to_string())?;
                    write(&dir, "cpu.max", format!("{quota} {CPU_PERIOD_MICROS}"))
                };
                set().inspect_err(|_| group.remove())?;
                Ok(group)
            }
            Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            } => {
                let mut dirs: Vec<PathBuf> = Vec::new();
                for base in [memory, pids, cpu, cpuacct] {
                    let dir = base.join(parent).join(job_id);
                    if !dirs.contains(&dir) {
                        dirs.push(dir);
                    }
                }
                let group = Cgroup {
                    version: Version::V1,
                    dirs: dirs.clone(),
                };
                let set = || -> Result<(), String> {
                    for dir in &dirs {
                        mkdir(dir)?;
                    }
                    let memory = memory.join(parent).join(job_id);
                    write(
                        &memory,
                        "memory.limit_in_bytes",
                        limits.memory_bytes.to_string(),
                    )?;
                    // Swap accounting is often off; then the memory limit alone holds.
                    let _ = write(
                        &memory,
                        "memory.memsw.limit_in_bytes",
                        limits.memory_bytes.to_string(),
                    );
                    let pids = pids.join(parent).join(job_id);
                    write(&pids, "pids.max", limits.max_processes.to_string())?;
                    let cpu = cpu.join(parent).join(job_id);
                    write(&cpu, "cpu.cfs_period_us", CPU_PERIOD_MICROS.to_string())?;
                    write(&cpu, "cpu.cfs_quota_us", quota.to_string())
                };
                set().inspect_err(|_| group.remove())?;
                Ok(group)
            }
        }
    }

    /// Kills and removes every job group left under `parent` (by a service that crashed);
    /// returns how many were reaped.
    pub fn reap_leftovers(&self, parent: &str) -> usize {
        let mut names = std::collections::BTreeSet::new();
        for dir in self.parents(parent) {
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    if entry.path().is_dir() {
                        names.insert(entry.file_name().to_string_lossy().into_owned());
                    }
                }
            }
        }
        for name in &names {
            let group = Cgroup {
                version: self.version(),
                dirs: self.parents(parent).iter().map(|p| p.join(name)).collect(),
            };
            group.kill_all();
            group.remove();
        }
        names.len()
    }
}

fn mkdir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// One job's group (one folder for v2, one per controller for v1).
#[derive(Debug, Clone)]
pub struct Cgroup {
    version: Version,
    dirs: Vec<PathBuf>,
}

/// What the group's counters say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
    pub peak_memory_bytes: u64,
}

impl Cgroup {
    pub fn version(&self) -> Version {
        self.version
    }

    /// The `cgroup.procs` files a process writes its pid into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    fn read(&self, file: &str) -> Option<String> {
        self.dirs
            .iter()
            .map(|d| d.join(file))
            .find(|p| p.exists())
            .and_then(|p| fs::read_to_string(p).ok())
    }

    fn read_number(&self, file: &str) -> Option<u64> {
        self.read(file)?.trim().parse().ok()
    }

    /// `key value` lines (cpu.stat, memory.events, memory.oom_control).
    fn read_key(&self, file: &str, key: &str) -> Option<u64> {
        self.read(file)?.lines().find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == key).then(|| value.trim().parse().ok())?
        })
    }

    pub fn usage(&self) -> Usage {
        match self.version {
            Version::V2 => Usage {
                cpu_seconds: self.read_key("cpu.stat", "usage_usec").unwrap_or(0) as f64 / 1e6,
                memory_bytes: self.read_number("memory.current").unwrap_or(0),
                peak_memory_bytes: self.read_number("memory.peak").unwrap_or(0),
            },
            Version::V1 => Usage {
                cpu_seconds: self.read_number("cpuacct.usage").unwrap_or(0) as f64 / 1e9,
                memory_bytes: self.read_number("memory.usage_in_bytes").unwrap_or(0),
                peak_memory_bytes: self.read_number("memory.max_usage_in_bytes").unwrap_or(0),
            },
        }
    }

    /// True when the kernel's OOM killer acted inside the group.
    pub fn oom_killed(&self) -> bool {
        let kills = match self.version {
            Version::V2 => self.read_key("memory.events", "oom_kill"),
            Version::V1 => self.read_key("memory.oom_control", "oom_kill"),
        };
        kills.is_some_and(|n| n > 0)
    }

    fn members(&self) -> Vec<i32> {
        self.dirs
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }

    /// SIGKILLs every member until none is left (a fork bomb may add members meanwhile).
    pub fn kill_all(&self) {
        if self.version == Version::V2
            && let Some(dir) = self.dirs.first()
            && fs::write(dir.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for _ in 0..100 {
            let members = self.members();
            if members.is_empty() {
                return;
            }
            for pid in members {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes the group's folders once their members are gone (retrying briefly).
    pub fn remove(&self) {
        for dir in &self.dirs {
            for _ in 0..200 {
                if !dir.exists() || fs::remove_dir(dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
