//! Researchers' own datasets, named `csv:PATH`, `tsv:PATH`, `parquet:PATH`, `images:DIR` or
//! `text:PATH` (the syntax is [`ra_client::local_data`]'s): where such a path may be read
//! (`data.local_roots`, uploads), the size cap (`data.local_max_bytes`), the loaders
//! ([`tables`], [`images`], [`texts`]), what DescribeDataset says of them, and their identity:
//! the files' sha256 and the name's options, never the path, key the prepared cache, so a
//! moved or renamed copy is the same dataset. [`upload`] keeps files sent by UploadDataset.

mod classes;
mod images;
mod tables;
mod texts;
pub mod upload;

use std::path::{Component, Path, PathBuf};

use ra_client::local_data::{LocalDataset, LocalKind, LocalNameError};

use crate::config::DataSettings;
use crate::error::{DatasetError, bad_option, io, shown};
use crate::raw::{RawDataset, Samples};

/// A local name checked: `Ok(None)` for names of another form.
pub fn parse(name: &str) -> Result<Option<LocalDataset>, DatasetError> {
    LocalDataset::parse(name).map_err(|LocalNameError { name, reason }| {
        bad_option("name", format!("dataset name {:?}: {reason}", shown(&name)))
    })
}

/// Where `dataset`'s files are on this machine, checked: present, of the right kind (a file,
/// or a folder for `images:`), and readable under `data.local_roots`.
pub fn resolve(settings: &DataSettings, dataset: &LocalDataset) -> Result<PathBuf, DatasetError> {
    let path = match dataset.upload() {
        Some((id, inside)) => upload::resolve(settings, id, inside)?,
        None => {
            let path = PathBuf::from(&dataset.path);
            if path.is_absolute() {
                path
            } else {
                std::env::current_dir().map_err(io(&path))?.join(path)
            }
        }
    };
    let folder = dataset.kind == LocalKind::Images;
    if !path.exists() {
        return Err(DatasetError::NotThere {
            path,
            hint: format!(
                "; {} names {} on the machine dataset-svc runs on (absolute, or relative to its working directory); a remote dataset-svc is sent the files with UploadDataset (research-agent run does it for you)",
                dataset.kind.scheme(),
                if folder {
                    "a folder with one sub-folder of images per class"
                } else {
                    "a file"
                }
            ),
        });
    }
    if folder != path.is_dir() {
        return Err(bad_option(
            "name",
            format!(
                "{} is {}; {}: names {}",
                path.display(),
                if path.is_dir() { "a folder" } else { "a file" },
                dataset.kind.scheme(),
                if folder {
                    "a folder (one sub-folder per class)"
                } else {
                    "a file"
                }
            ),
        ));
    }
    if dataset.upload().is_none() && !settings.local_roots.is_empty() {
        let real = path.canonicalize().map_err(io(&path))?;
        let allowed = settings
            .local_roots
            .iter()
            .filter_map(|root| root.canonicalize().ok())
            .any(|root| real.starts_with(root));
        if !allowed {
            return Err(DatasetError::Forbidden(format!(
                "{} is outside the folders this dataset-svc may read (data.local_roots: {}); upload the files instead (UploadDataset)",
                path.display(),
                settings
                    .local_roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(path)
}

/// Reads `dataset` (already resolved to `path`) into a [`RawDataset`], refusing files over
/// `data.local_max_bytes`.
pub fn load(
    settings: &DataSettings,
    dataset: &LocalDataset,
    path: &Path,
) -> Result<RawDataset, DatasetError> {
    let cap = settings.local_max_bytes;
    match dataset.kind {
        LocalKind::Images => images::load(dataset, path, cap),
        LocalKind::Text => {
            check_size(path, cap)?;
            texts::load(dataset, path)
        }
        LocalKind::Csv | LocalKind::Tsv | LocalKind::Parquet => {
            check_size(path, cap)?;
            tables::load(dataset, path)
        }
    }
}

fn check_size(path: &Path, cap: u64) -> Result<(), DatasetError> {
    let bytes = std::fs::metadata(path).map_err(io(path))?.len();
    if bytes > cap {
        return Err(DatasetError::TooLarge {
            what: path.display().to_string(),
            bytes,
            cap,
            setting: "data.local_max_bytes",
        });
    }
    Ok(())
}

/// The name a local dataset's prepared copies carry: the kind, the file or folder's own name
/// and the options, without the folders above it (the content is the identity).
fn identity_name(dataset: &LocalDataset, path: &Path) -> String {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dataset.path.clone());
    LocalDataset {
        path: base,
        ..dataset.clone()
    }
    .name()
}

/// A file's name for messages and checksums (its last component).
fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A relative path without `..`, root or prefix components.
fn is_plain_relative(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// What DescribeDataset says of a local dataset: read in full (within the size cap).
#[derive(Debug, Clone)]
pub struct LocalSummary {
    pub name: String,
    pub kind: LocalKind,
    pub path: PathBuf,
    pub raw: RawDataset,
    pub bytes: u64,
}

impl LocalSummary {
    pub fn input_shape(&self) -> Vec<u32> {
        match &self.raw.train.samples {
            Samples::Images {
                channels,
                height,
                width,
                ..
            } => vec![*channels, *height, *width],
            _ => Vec::new(),
        }
    }

    pub fn description(&self) -> String {
        let samples = self.raw.train.samples.len();
        let what = match &self.raw.train.samples {
            Samples::Table { columns, .. } => {
                format!("{samples} rows × {} feature columns", columns.len())
            }
            Samples::Images {
                channels,
                height,
                width,
                ..
            } => format!("{samples} images of {channels}×{height}×{width}"),
            Samples::Text(_) => format!("{samples} documents"),
            Samples::Features { width, .. } => format!("{samples} vectors of {width}"),
        };
        format!(
            "your own data: {what} in {} classes, read from {}",
            self.raw.class_names.len(),
            self.path.display()
        )
    }
}

/// Reads `name` in full for DescribeDataset.
pub fn describe(
    settings: &DataSettings,
    dataset: &LocalDataset,
) -> Result<LocalSummary, DatasetError> {
    let path = resolve(settings, dataset)?;
    let raw = load(settings, dataset, &path)?;
    let bytes = if path.is_dir() {
        images::folder_bytes(&path)?
    } else {
        std::fs::metadata(&path).map_err(io(&path))?.len()
    };
    Ok(LocalSummary {
        name: dataset.name(),
        kind: dataset.kind,
        path,
        raw,
        bytes,
    })
}
