//! The docker backend's image, built locally `FROM scratch` since no registry may be reachable:
//! `ra-trainer` at the trainer's mount, the shell programs, every shared library they load from
//! the system's folders (at the paths the dynamic linker resolves them to; those of a LibTorch
//! trainer's venv are bound in at run time instead), busybox with its applet links, and a few
//! small files.
//!
//! Files are read from disk while the build context streams to the engine, and the image's tag
//! is a digest of every entry's path, mode, and content (small files) or size and modification
//! time (files on disk), so that a new trainer or library gives a new image while an unchanged
//! one is found without reading it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::process::plan::{SCRATCH_MOUNT, TRAINER_MOUNT};

use super::LABEL;

/// What one entry of the image holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Written from memory.
    Bytes(Vec<u8>),
    /// Copied from this host file while the context streams.
    File(PathBuf),
    /// A symbolic link to this target.
    Link(String),
}

/// One entry: its path in the image, what it holds, its mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: PathBuf,
    pub content: Content,
    pub mode: u32,
}

/// Every entry of the image for `trainer`, `programs` and `busybox`, sorted by path; libraries
/// under `bound` (bound in at run time) are left out.
pub fn files(
    trainer: Option<&Path>,
    programs: &[PathBuf],
    busybox: &Path,
    bound: &[PathBuf],
) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    if busybox.is_file() {
        entries.extend(busybox_files(busybox)?);
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
        entries.push(Entry {
            path: target.clone(),
            content: Content::File(source.clone()),
            mode: 0o755,
        });
        libraries.extend(crate::libraries::loaded(source)?);
    }
    for library in libraries {
        if bound.iter().any(|folder| library.starts_with(folder)) {
            continue;
        }
        entries.push(Entry {
            content: Content::File(library.clone()),
            path: library,
            mode: 0o755,
        });
    }
    for (path, text) in [
        (
            "/etc/passwd",
            "root:x:0:0:root:/scratch:/bin/sh\nsandbox:x:65534:65534:sandbox:/scratch:/bin/sh\n",
        ),
        ("/etc/group", "root:x:0:\nsandbox:x:65534:\n"),
    ] {
        entries.push(Entry {
            path: PathBuf::from(path),
            content: Content::Bytes(text.as_bytes().to_vec()),
            mode: 0o644,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    Ok(entries)
}

/// `/usr/bin/busybox` and a link to it for each applet it lists. Only a static busybox is taken
/// (a dynamic one would need libraries this image does not carry).
fn busybox_files(busybox: &Path) -> Result<Vec<Entry>, String> {
    if !crate::libraries::loaded(busybox)?.is_empty() {
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
    let mut entries = vec![Entry {
        path: PathBuf::from("/usr/bin/busybox"),
        content: Content::File(busybox.to_path_buf()),
        mode: 0o755,
    }];
    for applet in String::from_utf8_lossy(&listed.stdout).lines() {
        let applet = applet.trim();
        let plain = !applet.is_empty()
            && applet
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '['))
            && applet != "busybox";
        if plain {
            entries.push(Entry {
                path: PathBuf::from("/usr/bin").join(applet),
                content: Content::Link("busybox".into()),
                mode: 0o777,
            });
        }
    }
    Ok(entries)
}

/// The image's tag: a digest of every entry (host files by size and modification time).
pub fn content_tag(entries: &[Entry]) -> Result<String, String> {
    let mut hasher = Sha256::new();
    for entry in entries {
        hasher.update(entry.path.to_string_lossy().as_bytes());
        hasher.update(entry.mode.to_le_bytes());
        match &entry.content {
            Content::Bytes(bytes) => hasher.update(Sha256::digest(bytes)),
            Content::Link(target) => hasher.update(format!("link {target}")),
            Content::File(source) => {
                let meta = std::fs::metadata(source)
                    .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .unwrap_or_default();
                hasher.update(source.to_string_lossy().as_bytes());
                hasher.update(meta.len().to_le_bytes());
                hasher.update(modified.as_nanos().to_le_bytes());
            }
        }
    }
    Ok(hex::encode(&hasher.finalize()[..8]))
}

/// Builds `image` from `entries`: the context is written to a temporary tar file, then
/// streamed to the engine.
pub async fn build(docker: &Docker, image: &str, entries: &[Entry]) -> Result<(), String> {
    let entries = entries.to_vec();
    let context = tokio::task::spawn_blocking(move || write_context(&entries))
        .await
        .map_err(|e| format!("writing the image context stopped: {e}"))??;
    let file = tokio::fs::File::open(context.path())
        .await
        .map_err(|e| format!("cannot read the image context: {e}"))?;
    let body = tokio_util::io::ReaderStream::new(file);
    let mut stream = docker.build_image(
        BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(image.to_owned()),
            rm: true,
            forcerm: true,
            labels: Some(HashMap::from([(LABEL.to_owned(), "image".to_owned())])),
            ..Default::default()
        },
        None,
        Some(bollard::body_try_stream(body)),
    );
    while let Some(step) = stream.next().await {
        let info = step.map_err(|e| format!("building the sandbox image failed: {e}"))?;
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(format!("building the sandbox image failed: {error}"));
        }
    }
    drop(context);
    Ok(())
}

/// The tar build context (the Dockerfile and `rootfs/`) in a temporary file.
fn write_context(entries: &[Entry]) -> Result<tempfile::NamedTempFile, String> {
    let failed = |e: std::io::Error| format!("cannot write the image context: {e}");
    let file = tempfile::NamedTempFile::new().map_err(failed)?;
    let mut archive = tar::Builder::new(std::io::BufWriter::new(file.reopen().map_err(failed)?));
    let data = |archive: &mut tar::Builder<_>,
                path: &str,
                size: u64,
                mode: u32,
                reader: &mut dyn std::io::Read|
     -> Result<(), String> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(mode);
        header.set_cksum();
        archive
            .append_data(&mut header, path, reader)
            .map_err(failed)
    };
    let dockerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\nUSER 65534:65534\nWORKDIR {SCRATCH_MOUNT}\nENV PATH=/opt/ra:/usr/bin:/bin\n"
    );
    data(
        &mut archive,
        "Dockerfile",
        dockerfile.len() as u64,
        0o644,
        &mut dockerfile.as_bytes(),
    )?;
    let mut links = vec![("rootfs/tmp".to_owned(), "/scratch/tmp".to_owned())];
    for entry in entries {
        let inside = entry.path.strip_prefix("/").unwrap_or(&entry.path);
        let name = format!("rootfs/{}", inside.display());
        match &entry.content {
            Content::Bytes(bytes) => data(
                &mut archive,
                &name,
                bytes.len() as u64,
                entry.mode,
                &mut bytes.as_slice(),
            )?,
            Content::File(source) => {
                let mut file = std::fs::File::open(source)
                    .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
                let size = file
                    .metadata()
                    .map_err(|e| format!("cannot read {}: {e}", source.display()))?
                    .len();
                data(&mut archive, &name, size, entry.mode, &mut file)?;
            }
            Content::Link(target) => links.push((name, target.clone())),
        }
    }
    for keep in ["rootfs/scratch/.keep", "rootfs/dataset/.keep"] {
        data(&mut archive, keep, 0, 0o644, &mut std::io::empty())?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    for (path, target) in links {
        archive
            .append_link(&mut header, &path, &target)
            .map_err(failed)?;
    }
    let mut writer = archive.into_inner().map_err(failed)?;
    writer.flush().map_err(failed)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_holds_every_entry_and_the_tag_follows_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let library = dir.path().join("libx.so");
        std::fs::write(&library, b"\x7fELF not really").expect("write");
        let entries = vec![
            Entry {
                path: library.clone(),
                content: Content::File(library.clone()),
                mode: 0o755,
            },
            Entry {
                path: PathBuf::from("/etc/group"),
                content: Content::Bytes(b"root:x:0:\n".to_vec()),
                mode: 0o644,
            },
            Entry {
                path: PathBuf::from("/usr/bin/ls"),
                content: Content::Link("busybox".into()),
                mode: 0o777,
            },
        ];
        let context = write_context(&entries).expect("context");
        let mut archive = tar::Archive::new(std::fs::File::open(context.path()).expect("open"));
        let mut names: Vec<(String, u64)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (e.path().expect("path").display().to_string(), e.size())
            })
            .collect();
        names.sort();
        let inside = format!("rootfs{}", library.display());
        assert!(names.contains(&(inside, 15)), "{names:?}");
        assert!(names.iter().any(|(n, _)| n == "Dockerfile"));
        assert!(names.iter().any(|(n, _)| n == "rootfs/usr/bin/ls"));
        assert!(names.iter().any(|(n, _)| n == "rootfs/etc/group"));

        let before = content_tag(&entries).expect("tag");
        assert_eq!(content_tag(&entries).expect("tag"), before, "stable");
        std::fs::write(&library, b"\x7fELF another build, longer").expect("write");
        assert_ne!(
            content_tag(&entries).expect("tag"),
            before,
            "a new file, a new tag"
        );
        std::fs::remove_file(&library).expect("remove");
        assert!(content_tag(&entries).is_err(), "a missing file is named");
    }
}
