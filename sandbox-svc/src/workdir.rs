//! A job's host folder, `<work_dir>/<job id>/`: the scratch directory (a tmpfs of the job's
//! scratch size when the service may mount one, else a plain folder), the job's input files
//! and spec, the init's status file; the outputs copied out at the end; everything removed
//! afterwards, and whatever a crashed service left reaped at start-up.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use sha2::{Digest, Sha256};

use crate::events::JobOutput;
use crate::job::InputFile;

/// Folders inside the scratch directory.
pub const OUTPUT_SUBDIR: &str = "output";
pub const TMP_SUBDIR: &str = "tmp";

#[derive(Debug)]
pub struct WorkDir {
    pub dir: PathBuf,
    pub scratch: PathBuf,
    /// True when the scratch is a sized tmpfs (else only a file-size rlimit bounds it).
    pub scratch_is_tmpfs: bool,
}

impl WorkDir {
    /// Creates the folder and its scratch, owned by the job's user.
    pub fn create(
        work_root: &Path,
        job_id: &str,
        scratch_bytes: u64,
        uid: u32,
        gid: u32,
    ) -> Result<WorkDir, String> {
        let dir = work_root.join(job_id);
        let io = |what: &str, path: &Path| {
            let what = format!("{what} {}", path.display());
            move |e: std::io::Error| format!("{what}: {e}")
        };
        fs::create_dir_all(work_root).map_err(io("cannot create", work_root))?;
        fs::create_dir(&dir).map_err(io("cannot create", &dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))
            .map_err(io("cannot protect", &dir))?;
        let scratch = dir.join("scratch");
        fs::create_dir(&scratch).map_err(io("cannot create", &scratch))?;
        let options = format!("size={scratch_bytes},mode=0700,uid={uid},gid={gid}");
        let scratch_is_tmpfs = nix::unistd::Uid::effective().is_root()
            && mount(
                Some("tmpfs"),
                &scratch,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .is_ok();
        let work = WorkDir {
            dir,
            scratch,
            scratch_is_tmpfs,
        };
        let setup = || -> Result<(), String> {
            for sub in [OUTPUT_SUBDIR, TMP_SUBDIR] {
                let path = work.scratch.join(sub);
                fs::create_dir(&path).map_err(io("cannot create", &path))?;
                crate::process::init::hand_over(&path, uid, gid)
                    .map_err(io("cannot hand over", &path))?;
            }
            crate::process::init::hand_over(&work.scratch, uid, gid)
                .map_err(io("cannot hand over", &work.scratch))?;
            fs::create_dir(work.dir.join("root")).map_err(io("cannot create", &work.dir))
        };
        if let Err(error) = setup() {
            work.remove();
            return Err(error);
        }
        Ok(work)
    }

    /// Writes the job's input files (paths were validated as relative and plain).
    pub fn write_inputs(&self, files: &[InputFile], uid: u32, gid: u32) -> Result<(), String> {
        for file in files {
            let path = self.scratch.join(&file.path);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            fs::write(&path, &file.content)
                .map_err(|e| format!("cannot write input {}: {e}", file.path))?;
            let mode = if file.executable { 0o755 } else { 0o644 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("cannot set the mode of {}: {e}", file.path))?;
            if nix::unistd::Uid::effective().is_root() {
                let _ = std::os::unix::fs::chown(&path, Some(uid), Some(gid));
            }
        }
        Ok(())
    }

    pub fn status_file(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    pub fn root_dir(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Copies the regular files of the output folder (not links) into `destination`, at most
    /// `max_bytes` in all, with their sha256.
    pub fn collect_outputs(
        &self,
        destination: &Path,
        max_bytes: u64,
    ) -> Result<Vec<JobOutput>, String> {
        let source = self.scratch.join(OUTPUT_SUBDIR);
        let mut outputs = Vec::new();
        let mut total = 0u64;
        let entries = match fs::read_dir(&source) {
            Ok(entries) => entries,
            Err(_) => return Ok(outputs),
        };
        let mut names: Vec<_> = entries.flatten().collect();
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            total += meta.len();
            if total > max_bytes {
                return Err(format!(
                    "the job's outputs exceed {max_bytes} bytes; they were not kept"
                ));
            }
            fs::create_dir_all(destination)
                .map_err(|e| format!("cannot create {}: {e}", destination.display()))?;
            let target = destination.join(entry.file_name());
            let (size, sha256) = copy_hashed(&entry.path(), &target)?;
            outputs.push(JobOutput {
                path: target,
                size_bytes: size,
                sha256,
            });
        }
        Ok(outputs)
    }

    /// Unmounts the scratch and removes the folder.
    pub fn remove(&self) {
        remove_job_dir(&self.dir);
    }
}

fn copy_hashed(source: &Path, target: &Path) -> Result<(u64, String), String> {
    let mut input =
        fs::File::open(source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let mut output =
        fs::File::create(target).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = input
            .read(&mut buffer)
            .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        std::io::Write::write_all(&mut output, &buffer[..n])
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

fn remove_job_dir(dir: &Path) {
    let scratch = dir.join("scratch");
    // Lazy unmount: nothing holds it once the job's processes are gone.
    let _ = umount2(&scratch, MntFlags::MNT_DETACH);
    let _ = fs::remove_dir_all(dir);
}

/// Removes every job folder under `work_root` (left by a service that crashed); returns how
/// many there were.
pub fn reap_leftovers(work_root: &Path) -> usize {
    let Ok(entries) = fs::read_dir(work_root) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries.flatten() {
        if entry.path().is_dir() {
            remove_job_dir(&entry.path());
            count += 1;
        }
    }
    count
}
