//! Loaders of catalog datasets from a folder holding the original file names (the layout of
//! `RA_DATA_DIR` and `../shared/data`). A missing file is reported with the name to put where.
//! Checksums of what was read are recorded; checking them against the canonical ones is the
//! catalog's job. One module per family; this one holds what they share.

mod tables;
mod texts;
mod vision;

pub use tables::*;
pub use texts::*;
pub use vision::*;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DatasetError, malformed};
use crate::formats::delimited::{Dialect, parse_delimited};
use crate::formats::{decompressed, read_stored};
use crate::raw::{RawDataset, RawPart, Samples};

/// Reads the originals of a dataset, keeping their checksums.
pub(crate) struct Originals {
    folder: PathBuf,
    checksums: BTreeMap<String, String>,
}

impl Originals {
    fn new(folder: &Path) -> Self {
        Self {
            folder: folder.to_path_buf(),
            checksums: BTreeMap::new(),
        }
    }

    /// An original's content (gunzipped when its name ends in `.gz`), its checksum recorded.
    fn read(&mut self, file_name: &str) -> Result<(Vec<u8>, PathBuf), DatasetError> {
        let (stored, path) = self.read_stored(file_name)?;
        Ok((decompressed(&path, stored)?, path))
    }

    fn exists(&self, file_name: &str) -> bool {
        self.folder.join(file_name).is_file()
    }

    fn path(&self, file_name: &str) -> PathBuf {
        self.folder.join(file_name)
    }

    /// The members of the gzipped tarball `archive` whose path `keep` accepts, in archive
    /// order, each with its path inside the archive.
    fn read_tar_members(
        &mut self,
        archive: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, Vec<u8>)>, DatasetError> {
        let (stored, path) = self.read_stored(archive)?;
        let bad = |error: std::io::Error| malformed(&path, "gzipped tar", error.to_string());
        let mut tarball = tar::Archive::new(flate2::read::GzDecoder::new(stored.as_slice()));
        let mut members = Vec::new();
        for entry in tarball.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            if !entry.header().entry_type().is_file() || !keep(&name) {
                continue;
            }
            // The header's size is not trusted for the allocation; the bytes present are read.
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(bad)?;
            members.push((name, bytes));
        }
        Ok(members)
    }

    /// A file's bytes as stored (no gunzip), its checksum recorded.
    fn read_stored(&mut self, file_name: &str) -> Result<(Vec<u8>, PathBuf), DatasetError> {
        let path = self.folder.join(file_name);
        if !path.is_file() {
            return Err(DatasetError::MissingFile {
                path,
                file_name: file_name.to_owned(),
                folder: self.folder.clone(),
            });
        }
        let (stored, sha256) = read_stored(&path)?;
        self.checksums.insert(file_name.to_owned(), sha256);
        Ok((stored, path))
    }
}

/// The members of `archive` named `names` (matched on the path's end), in that order; a
/// missing member is refused by name.
fn tar_members_named(
    originals: &mut Originals,
    archive: &str,
    names: &[&str],
) -> Result<Vec<Vec<u8>>, DatasetError> {
    let members = originals.read_tar_members(archive, |path| {
        names
            .iter()
            .any(|name| path.ends_with(&format!("/{name}")) || path == *name)
    })?;
    names
        .iter()
        .map(|name| {
            members
                .iter()
                .find(|(path, _)| path.ends_with(&format!("/{name}")) || path == name)
                .map(|(_, bytes)| bytes.clone())
                .ok_or_else(|| {
                    malformed(
                        &originals.path(archive),
                        "dataset archive",
                        format!("it has no member {name}"),
                    )
                })
        })
        .collect()
}

/// The ten digit classes, in label order.
pub const DIGIT_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Moves column `label_index` out of every row, mapping it to a class index.
fn split_label_column(
    rows: Vec<Vec<String>>,
    label_index: usize,
    path: &Path,
    class_of: impl Fn(&str) -> Option<i64>,
) -> Result<(Vec<Vec<String>>, Vec<i64>), DatasetError> {
    let mut features = Vec::with_capacity(rows.len());
    let mut labels = Vec::with_capacity(rows.len());
    for (line, mut row) in rows.into_iter().enumerate() {
        let cell = row.remove(label_index);
        let label = class_of(cell.trim()).ok_or_else(|| {
            malformed(
                path,
                "labelled table",
                format!("data row {} has the unknown label {cell:?}", line + 1),
            )
        })?;
        labels.push(label);
        features.push(row);
    }
    Ok((features, labels))
}

/// A label cell that holds a class index below `classes`.
fn class_index(classes: usize) -> impl Fn(&str) -> Option<i64> {
    move |cell| {
        cell.parse::<i64>()
            .ok()
            .filter(|label| (0..classes as i64).contains(label))
    }
}

/// A table and its label column, the label mapped to class indices by `class_of` and the
/// `dropped` columns removed.
struct LabelledTable<'a> {
    label_column: &'a str,
    dropped: &'a [&'a str],
}

impl LabelledTable<'_> {
    fn split(
        &self,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        path: &Path,
        class_of: impl Fn(&str) -> Option<i64>,
    ) -> Result<RawPart, DatasetError> {
        let label_index = columns
            .iter()
            .position(|c| c == self.label_column)
            .ok_or_else(|| {
                malformed(
                    path,
                    "labelled table",
                    format!("no {:?} column among {columns:?}", self.label_column),
                )
            })?;
        let (rows, labels) = split_label_column(rows, label_index, path, class_of)?;
        let mut remaining: Vec<String> = columns;
        remaining.remove(label_index);
        let keep: Vec<usize> = (0..remaining.len())
            .filter(|i| !self.dropped.contains(&remaining[*i].as_str()))
            .collect();
        let rows = rows
            .into_iter()
            .map(|row| keep.iter().map(|i| row[*i].clone()).collect())
            .collect();
        let columns = keep.iter().map(|i| remaining[*i].clone()).collect();
        Ok(RawPart {
            samples: Samples::Table { columns, rows },
            labels,
        })
    }
}

/// A CSV with a header, a label column holding class indices, and columns to drop.
fn labelled_csv(
    folder: &Path,
    name: &str,
    file_name: &str,
    table: LabelledTable<'_>,
    class_names: &[&str],
) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let (bytes, path) = originals.read(file_name)?;
    let (columns, rows) = parse_delimited(&bytes, Dialect::CSV, &path)?;
    let part = table.split(columns, rows, &path, class_index(class_names.len()))?;
    Ok(RawDataset::read(
        name,
        class_names,
        part,
        None,
        originals.checksums,
    ))
}
