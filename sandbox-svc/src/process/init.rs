//! `ra-sandbox-init`: the two stages that put a job into its sandbox (safe Rust only: each
//! stage is a fresh process, so no fork happens in a multi-threaded program).
//!
//! Stage 1 (started by the service, outside the namespaces): joins the job's cgroups, unshares
//! the mount, pid, network, ipc and uts namespaces (plus a user namespace when not root), starts
//! stage 2 as pid 1 of the new pid namespace, kills it when its standard input (the service's
//! lifeline) closes, waits, and writes an [`InitStatus`].
//!
//! Stage 2 (pid 1 inside): assembles a new root on a tmpfs — the system folders read-only, a
//! private `/dev`, a fresh `/proc`, the scratch directory read-write, the dataset and the
//! trainer read-only — pivots into it, sets rlimits, drops to an unprivileged user, sets
//! no-new-privileges and the seccomp filter, and executes the job with a clean environment. When
//! pid 1 ends, the kernel kills everything left in its namespace: no daemon outlives the job.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, UsageWho, getrusage, setrlimit};
use nix::sys::signal::{Signal, kill};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Pid, Uid, pivot_root, setgroups, sethostname, setresgid, setresuid};

use super::plan::{
    DATASET_MOUNT, InitPlan, InitStatus, SCRATCH_MOUNT, SETUP_FAILED_EXIT, TRAINER_MOUNT,
};
use super::seccomp;

/// The argument that selects stage 2.
const STAGE2_FLAG: &str = "--stage2";

/// Entry point of the `ra-sandbox-init` binary; returns the exit code.
pub fn main_with_args(args: &[String]) -> i32 {
    let (stage2, plan_json) = match args {
        [_, flag, plan] if flag == STAGE2_FLAG => (true, plan),
        [_, plan] => (false, plan),
        _ => {
            eprintln!(
                "ra-sandbox-init: started by sandbox-svc only (usage: ra-sandbox-init PLAN_JSON)"
            );
            return 2;
        }
    };
    let plan: InitPlan = match serde_json::from_str(plan_json) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("ra-sandbox-init: the plan is not valid: {error}");
            return 2;
        }
    };
    if stage2 {
        // Only returns on failure: success replaces this process with the job.
        let error = stage_two(&plan);
        eprintln!("ra-sandbox-init: {error}");
        SETUP_FAILED_EXIT
    } else {
        stage_one(&plan)
    }
}

fn stage_one(plan: &InitPlan) -> i32 {
    match enter_and_run(plan) {
        Ok(code) => code,
        Err(error) => {
            write_status(
                plan,
                &InitStatus {
                    setup_error: Some(error.clone()),
                    ..InitStatus::default()
                },
            );
            eprintln!("ra-sandbox-init: {error}");
            SETUP_FAILED_EXIT
        }
    }
}

fn enter_and_run(plan: &InitPlan) -> Result<i32, String> {
    let pid = std::process::id().to_string();
    for procs in &plan.cgroup_procs {
        fs::write(procs, &pid)
            .map_err(|e| format!("cannot join cgroup {}: {e}", procs.display()))?;
    }
    if !Uid::effective().is_root() {
        // A user namespace must be entered while single-threaded, so first.
        let (uid, gid) = (Uid::current(), Gid::current());
        unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| format!("cannot create a user namespace (needed when not root): {e}"))?;
        fs::write("/proc/self/setgroups", "deny")
            .and_then(|()| fs::write("/proc/self/uid_map", format!("0 {uid} 1")))
            .and_then(|()| fs::write("/proc/self/gid_map", format!("0 {gid} 1")))
            .map_err(|e| format!("cannot map the user namespace: {e}"))?;
    }
    // The lifeline: the service holds our stdin; when it closes (cancel, timeout, or the service
    // died) the job is killed, and with pid 1 gone the kernel kills the rest of its namespace.
    // The thread starts before the pid namespace is unshared: no thread can be made after.
    let job_pid = Arc::new(AtomicI32::new(0));
    let watched = job_pid.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {}
        let pid = watched.load(Ordering::SeqCst);
        if pid > 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::process::exit(SETUP_FAILED_EXIT);
    });
    let isolated = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    unshare(isolated).map_err(|e| format!("cannot create namespaces: {e}"))?;
    let plan_json = serde_json::to_string(plan).map_err(|e| e.to_string())?;
    let mut child = Command::new("/proc/self/exe")
        .arg0("ra-sandbox-init")
        .args([STAGE2_FLAG, &plan_json])
        .stdin(Stdio::null())
        .env_clear()
        .spawn()
        .map_err(|e| format!("cannot start the sandboxed process: {e}"))?;
    job_pid.store(child.id() as i32, Ordering::SeqCst);
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the job: {e}"))?;
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).ok();
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let result = InitStatus {
        exit_code: status.code(),
        signal: status.signal(),
        peak_rss_bytes: usage.map_or(0, |u| u.max_rss().max(0) as u64 * 1024),
        cpu_seconds: usage.map_or(0.0, |u| seconds(u.user_time()) + seconds(u.system_time())),
        setup_error: None,
    };
    write_status(plan, &result);
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

fn write_status(plan: &InitPlan, status: &InitStatus) {
    let temp = plan.status_file.with_extension("part");
    if let Ok(json) = serde_json::to_vec(status)
        && fs::write(&temp, json).is_ok()
    {
        let _ = fs::rename(&temp, &plan.status_file);
    }
}

/// Sets the sandbox up and executes the job; returns only on failure.
fn stage_two(plan: &InitPlan) -> String {
    if let Err(error) = assemble_root(plan).and_then(|()| restrict(plan)) {
        return error;
    }
    let Some((program, args)) = plan.argv.split_first() else {
        return "the job has no argv".into();
    };
    let error = Command::new(program)
        .args(args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .exec();
    format!("cannot execute {program:?}: {error}")
}

fn err(what: &str, path: &Path) -> impl FnOnce(nix::Error) -> String {
    let path = path.display().to_string();
    let what = what.to_owned();
    move |e| format!("{what} {path}: {e}")
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let path = path.display().to_string();
    let what = what.to_owned();
    move |e| format!("{what} {path}: {e}")
}

/// Inside the new mount namespace: builds the root and pivots into it.
fn assemble_root(plan: &InitPlan) -> Result<(), String> {
    let none = None::<&str>;
    let root = &plan.root_dir;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(err("cannot make private", Path::new("/")))?;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=16m,mode=0755"),
    )
    .map_err(err("cannot mount the root tmpfs on", root))?;
    for path in &plan.read_only_paths {
        bind_host_path(path, root)?;
    }
    let inside = |p: &str| root.join(p.trim_start_matches('/'));
    // /dev: a few harmless devices only.
    let dev = inside("/dev");
    mkdir(&dev)?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )
    .map_err(err("cannot mount", &dev))?;
    for device in ["null", "zero", "full", "random", "urandom"] {
        let target = dev.join(device);
        fs::write(&target, b"").map_err(io_err("cannot create", &target))?;
        let source = Path::new("/dev").join(device);
        mount(Some(&source), &target, none, MsFlags::MS_BIND, none)
            .map_err(err("cannot bind", &source))?;
    }
    // A GPU job's NVIDIA nodes: read-only binds that still open as devices (no `nodev`).
    for device in &plan.devices {
        let Some(name) = device.file_name() else {
            continue;
        };
        let target = dev.join(name);
        if device.is_dir() {
            mkdir(&target)?;
        } else {
            fs::write(&target, b"").map_err(io_err("cannot create", &target))?;
        }
        bind(device, &target, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(name)).map_err(io_err("cannot link", &dev.join(name)))?;
    }
    let scratch = inside(SCRATCH_MOUNT);
    mkdir(&scratch)?;
    mount(
        Some(&plan.scratch_dir),
        &scratch,
        none,
        MsFlags::MS_BIND,
        none,
    )
    .map_err(err("cannot bind the scratch directory", &plan.scratch_dir))?;
    symlink("/scratch/tmp", inside("/tmp")).map_err(io_err("cannot link", &inside("/tmp")))?;
    if let Some(dataset) = &plan.dataset_dir {
        let target = inside(DATASET_MOUNT);
        mkdir(&target)?;
        bind_read_only(dataset, &target)?;
    }
    if let Some(trainer) = &plan.trainer {
        let target = inside(TRAINER_MOUNT);
        if let Some(parent) = target.parent() {
            mkdir(parent)?;
        }
        fs::write(&target, b"").map_err(io_err("cannot create", &target))?;
        bind_read_only(trainer, &target)?;
    }
    let proc = inside("/proc");
    mkdir(&proc)?;
    mount(
        Some("proc"),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(err("cannot mount", &proc))?;
    let etc = inside("/etc");
    mkdir(&etc)?;
    let (uid, gid) = job_ids(plan);
    for (file, content) in [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/scratch:/bin/sh\nsandbox:x:{uid}:{gid}:sandbox:/scratch:/bin/sh\n"
            ),
        ),
        ("group", format!("root:x:0:\nsandbox:x:{gid}:\n")),
        ("hostname", "sandbox\n".to_owned()),
        ("hosts", "127.0.0.1 localhost sandbox\n".to_owned()),
    ] {
        let path = etc.join(file);
        if !path.exists() {
            fs::write(&path, content).map_err(io_err("cannot write", &path))?;
        }
    }
    let old_root = root.join(".old-root");
    mkdir(&old_root)?;
    pivot_root(root, &old_root).map_err(err("cannot pivot into", root))?;
    std::env::set_current_dir("/").map_err(io_err("cannot enter", Path::new("/")))?;
    umount2("/.old-root", MntFlags::MNT_DETACH)
        .map_err(err("cannot detach", Path::new("/.old-root")))?;
    fs::remove_dir("/.old-root").map_err(io_err("cannot remove", Path::new("/.old-root")))?;
    mount(
        none,
        "/",
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        none,
    )
    .map_err(err("cannot make read-only", Path::new("/")))?;
    sethostname("sandbox").map_err(|e| format!("cannot set the host name: {e}"))?;
    std::env::set_current_dir(SCRATCH_MOUNT)
        .map_err(io_err("cannot enter", Path::new(SCRATCH_MOUNT)))?;
    Ok(())
}

fn mkdir(path: &Path) -> Result<(), String> {
    fs::create_dir_all(path).map_err(io_err("cannot create", path))
}

/// Mirrors a host path (folder, file or symbolic link) read-only inside `root`.
fn bind_host_path(path: &Path, root: &Path) -> Result<(), String> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    let target = root.join(path.strip_prefix("/").unwrap_or(path));
    if let Some(parent) = target.parent() {
        mkdir(parent)?;
    }
    if meta.file_type().is_symlink() {
        let link = fs::read_link(path).map_err(io_err("cannot read", path))?;
        return symlink(link, &target).map_err(io_err("cannot link", &target));
    }
    if meta.is_dir() {
        mkdir(&target)?;
    } else {
        fs::write(&target, b"").map_err(io_err("cannot create", &target))?;
    }
    bind_read_only(path, &target)
}

/// Binds `source` at `target` and remounts it read-only, keeping the flags the kernel locks.
fn bind_read_only(source: &Path, target: &Path) -> Result<(), String> {
    bind(
        source,
        target,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
}

/// Binds `source` at `target` and remounts it with `restrictions`, keeping the flags the
/// kernel locks.
fn bind(source: &Path, target: &Path, restrictions: MsFlags) -> Result<(), String> {
    let none = None::<&str>;
    mount(
        Some(source),
        target,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(err("cannot bind", source))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | restrictions;
    if let Ok(stat) = statvfs(target) {
        let kept = stat.flags();
        for (fs_flag, ms_flag) in [
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if kept.contains(fs_flag) {
                flags |= ms_flag;
            }
        }
    }
    mount(none, target, none, flags, none).map_err(err("cannot make read-only", target))
}

fn job_ids(plan: &InitPlan) -> (u32, u32) {
    if Uid::effective().is_root() && !in_user_namespace() {
        (plan.uid, plan.gid)
    } else {
        (0, 0)
    }
}

/// True when this process runs in a user namespace of its own making (not root on the host).
fn in_user_namespace() -> bool {
    fs::read_to_string("/proc/self/uid_map")
        .map(|map| !map.split_whitespace().eq(["0", "0", "4294967295"]))
        .unwrap_or(false)
}

/// Resource limits, then the unprivileged user, then no-new-privileges and seccomp.
fn restrict(plan: &InitPlan) -> Result<(), String> {
    let limits = &plan.rlimits;
    let set = |resource: Resource, value: u64, name: &str| {
        setrlimit(resource, value, value).map_err(|e| format!("cannot limit {name}: {e}"))
    };
    set(Resource::RLIMIT_NOFILE, limits.open_files, "open files")?;
    set(Resource::RLIMIT_CORE, 0, "core dumps")?;
    if let Some(processes) = limits.processes {
        set(Resource::RLIMIT_NPROC, processes, "processes")?;
    }
    if let Some(bytes) = limits.address_space {
        set(Resource::RLIMIT_AS, bytes, "address space")?;
    }
    if let Some(bytes) = limits.file_size {
        set(Resource::RLIMIT_FSIZE, bytes, "file size")?;
    }
    let (uid, gid) = job_ids(plan);
    if uid != 0 {
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        setgroups(&[gid]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
        setresgid(gid, gid, gid).map_err(|e| format!("cannot change group: {e}"))?;
        setresuid(uid, uid, uid).map_err(|e| format!("cannot drop to user {uid}: {e}"))?;
    }
    // Credentials changed above, which clears the parent-death signal: set it now.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| format!("cannot set the parent-death signal: {e}"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("cannot set no_new_privs: {e}"))?;
    seccomp::apply()
}

/// Makes a freshly created scratch folder usable by the job's user.
pub fn hand_over(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    if Uid::effective().is_root() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// Where the helper program `name` (`ra-sandbox-init`, `ra-trainer`) is: the running executable
/// when it carries that helper ([`crate::multicall`]), else beside it (or one folder up, for
/// test binaries under `deps/`), else on `PATH`.
pub fn locate_binary(name: &str) -> Option<PathBuf> {
    if let Some(this) = crate::multicall::this_program_as(name) {
        return Some(this);
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(name), dir.parent()?.join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
}
