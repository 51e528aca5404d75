//! Files a client sends with UploadDataset, kept under `<data_dir>/uploads/<id>/`: written into
//! a private folder first and moved into place whole once every file is in, so a broken upload
//! leaves nothing. The id is a sha256 over every file's path and sha256 (the same files sent
//! twice are one upload); the size is capped by `data.local_max_bytes`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ra_client::local_data::{LocalDataset, LocalKind, UPLOAD_PREFIX};
use sha2::{Digest, Sha256};

use super::is_plain_relative;
use crate::config::DataSettings;
use crate::error::{DatasetError, bad_option, io, shown};

/// Most files one upload may hold.
const MAX_FILES: usize = 200_000;

/// Where `upload:ID/INSIDE` is, checked.
pub fn resolve(settings: &DataSettings, id: &str, inside: &str) -> Result<PathBuf, DatasetError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_option(
            "name",
            format!(
                "{UPLOAD_PREFIX}{} is not an upload id (UploadDataset answers with the name to use)",
                shown(id)
            ),
        ));
    }
    if inside.is_empty() || !is_plain_relative(Path::new(inside)) {
        return Err(bad_option(
            "name",
            format!("{:?} is not a path inside an upload", shown(inside)),
        ));
    }
    Ok(settings.uploads_dir().join(id).join(inside))
}

/// The one file being received: its chunks follow each other.
struct Receiving {
    path: String,
    target: PathBuf,
    file: std::fs::File,
    hash: Sha256,
}

/// An upload in progress: its private folder is removed unless [`Upload::finish`] moved it
/// into place.
pub struct Upload {
    kind: LocalKind,
    name: String,
    options: String,
    uploads: PathBuf,
    staging: Option<tempfile::TempDir>,
    current: Option<Receiving>,
    /// Files received whole, with their sha256.
    done: BTreeMap<String, String>,
    bytes: u64,
    cap: u64,
}

/// What an upload became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub name: String,
    pub id: String,
    pub bytes: u64,
    pub files: u32,
}

impl Upload {
    /// Checks the header and opens the private folder.
    pub fn start(
        settings: &DataSettings,
        kind: &str,
        name: &str,
        options: &str,
    ) -> Result<Self, DatasetError> {
        let probe = format!(
            "{kind}:{name}{}{options}",
            if options.is_empty() { "" } else { "#" }
        );
        let parsed = match super::parse(&probe)? {
            Some(parsed) => parsed,
            None => {
                return Err(bad_option(
                    "header.kind",
                    format!(
                        "{:?} is not a local kind; use csv, tsv, parquet, images or text",
                        shown(kind)
                    ),
                ));
            }
        };
        if name.is_empty() || name.contains(['/', '\\', '#']) || !is_plain_relative(Path::new(name))
        {
            return Err(bad_option(
                "header.name",
                format!("{:?} must be a plain file or folder name", shown(name)),
            ));
        }
        let uploads = settings.uploads_dir();
        std::fs::create_dir_all(&uploads).map_err(io(&uploads))?;
        let staging = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempdir_in(&uploads)
            .map_err(io(&uploads))?;
        Ok(Self {
            kind: parsed.kind,
            name: name.to_owned(),
            options: options.to_owned(),
            uploads,
            staging: Some(staging),
            current: None,
            done: BTreeMap::new(),
            bytes: 0,
            cap: settings.local_max_bytes,
        })
    }

    fn staging(&self) -> &Path {
        self.staging
            .as_ref()
            .map_or(self.uploads.as_path(), |s| s.path())
    }

    /// Appends `data` to the file at `path` (relative to the upload).
    pub fn write(&mut self, path: &str, data: &[u8]) -> Result<(), DatasetError> {
        let relative = Path::new(path);
        let expected_single = self.kind != LocalKind::Images;
        let fits = if expected_single {
            path == self.name
        } else {
            relative.components().count() == 2 && is_plain_relative(relative)
        };
        if !fits {
            return Err(bad_option(
                "chunk.path",
                if expected_single {
                    format!(
                        "{:?}: a {} upload holds the one file {:?}",
                        shown(path),
                        self.kind.scheme(),
                        self.name
                    )
                } else {
                    format!("{:?}: image uploads hold CLASS/FILE paths", shown(path))
                },
            ));
        }
        if self.current.as_ref().is_none_or(|c| c.path != path) {
            self.close()?;
            if self.done.contains_key(path) {
                return Err(bad_option(
                    "chunk.path",
                    format!(
                        "{:?} was already sent; a file's chunks must follow each other",
                        shown(path)
                    ),
                ));
            }
            if self.done.len() + 1 > MAX_FILES {
                return Err(bad_option(
                    "chunk",
                    format!("an upload holds at most {MAX_FILES} files"),
                ));
            }
            let target = self.target(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let file = std::fs::File::create(&target).map_err(io(&target))?;
            self.current = Some(Receiving {
                path: path.to_owned(),
                target,
                file,
                hash: Sha256::new(),
            });
        }
        self.bytes += data.len() as u64;
        if self.bytes > self.cap {
            return Err(DatasetError::TooLarge {
                what: "the upload".into(),
                bytes: self.bytes,
                cap: self.cap,
                setting: "data.local_max_bytes",
            });
        }
        let receiving = self
            .current
            .as_mut()
            .ok_or_else(|| bad_option("chunk.path", "internal: no open file"))?;
        receiving
            .file
            .write_all(data)
            .map_err(io(&receiving.target))?;
        receiving.hash.update(data);
        Ok(())
    }

    fn target(&self, path: &str) -> PathBuf {
        if self.kind == LocalKind::Images {
            self.staging().join(&self.name).join(path)
        } else {
            self.staging().join(path)
        }
    }

    /// Ends the file being received, if any, keeping its sha256.
    fn close(&mut self) -> Result<(), DatasetError> {
        if let Some(receiving) = self.current.take() {
            receiving.file.sync_all().map_err(io(&receiving.target))?;
            self.done
                .insert(receiving.path, hex::encode(receiving.hash.finalize()));
        }
        Ok(())
    }

    /// Moves the files into `uploads/<id>/` (or keeps the copy already there).
    pub fn finish(mut self) -> Result<Uploaded, DatasetError> {
        self.close()?;
        if self.done.is_empty() {
            return Err(bad_option("chunk", "the upload holds no file"));
        }
        let mut identity = Sha256::new();
        identity.update(format!("{}\n", self.kind.scheme()));
        for (path, sha256) in &self.done {
            identity.update(format!("{path} {sha256}\n"));
        }
        let id = hex::encode(identity.finalize())[..32].to_owned();
        let final_dir = self.uploads.join(&id);
        let staging = self
            .staging
            .take()
            .ok_or_else(|| bad_option("chunk", "internal: the upload was finished twice"))?;
        if !final_dir.exists() {
            let kept = staging.keep();
            if let Err(error) = std::fs::rename(&kept, &final_dir) {
                let _ = std::fs::remove_dir_all(&kept);
                if !final_dir.exists() {
                    return Err(io(&final_dir)(error));
                }
            }
        }
        let name = LocalDataset::parse(&format!(
            "{}:{UPLOAD_PREFIX}{id}/{}{}{}",
            self.kind.scheme(),
            self.name,
            if self.options.is_empty() { "" } else { "#" },
            self.options
        ))
        .ok()
        .flatten()
        .map(|d| d.name())
        .ok_or_else(|| bad_option("header", "internal: the upload's name does not parse"))?;
        Ok(Uploaded {
            name,
            id,
            bytes: self.bytes,
            files: self.done.len() as u32,
        })
    }
}
