//! A dataset as read from its originals, before any preprocessing: samples of one kind, labels,
//! class names and the sha256 of every original file.

use std::collections::BTreeMap;

/// Samples of one part of the originals, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Raw pixels, `[n, channels, height, width]`, 0-255.
    Images {
        channels: u32,
        height: u32,
        width: u32,
        pixels: Vec<u8>,
    },
    /// Named columns of text cells (typed later on the train split), one row per sample.
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// One document per sample.
    Text(Vec<String>),
    /// Numeric feature vectors, `[n, width]` row-major, already typed (generated data).
    Features { width: usize, values: Vec<f32> },
}

impl Samples {
    pub fn len(&self) -> usize {
        match self {
            Self::Images {
                channels,
                height,
                width,
                pixels,
            } => pixels.len() / (*channels as usize * *height as usize * *width as usize).max(1),
            Self::Table { rows, .. } => rows.len(),
            Self::Text(documents) => documents.len(),
            Self::Features { width, values } => values.len() / (*width).max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        match self {
            Self::Images {
                channels,
                height,
                width,
                pixels,
            } => {
                let len = *channels as usize * *height as usize * *width as usize;
                let mut selected = Vec::with_capacity(indices.len() * len);
                for index in indices {
                    selected.extend_from_slice(&pixels[index * len..(index + 1) * len]);
                }
                Self::Images {
                    channels: *channels,
                    height: *height,
                    width: *width,
                    pixels: selected,
                }
            }
            Self::Table { columns, rows } => Self::Table {
                columns: columns.clone(),
                rows: indices.iter().map(|i| rows[*i].clone()).collect(),
            },
            Self::Text(documents) => {
                Self::Text(indices.iter().map(|i| documents[*i].clone()).collect())
            }
            Self::Features { width, values } => Self::Features {
                width: *width,
                values: indices
                    .iter()
                    .flat_map(|i| &values[i * width..(i + 1) * width])
                    .copied()
                    .collect(),
            },
        }
    }
}

/// One part of the originals ("train", or a "test" the source ships separately).
#[derive(Debug, Clone, PartialEq)]
pub struct RawPart {
    pub samples: Samples,
    /// Class index per sample.
    pub labels: Vec<i64>,
}

impl RawPart {
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            samples: self.samples.select(indices),
            labels: indices.iter().map(|i| self.labels[*i]).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RawDataset {
    /// Catalog name.
    pub name: String,
    pub class_names: Vec<String>,
    /// The part train and val are drawn from.
    pub train: RawPart,
    /// A held-out part shipped by the source (becomes the `test` split).
    pub test: Option<RawPart>,
    /// sha256 of every original file read, by file name.
    pub source_checksums: BTreeMap<String, String>,
    /// Whether every original was checked against the catalog's pinned sha256.
    pub checksums_verified: bool,
}

impl RawDataset {
    /// Originals as a loader read them: not yet checked against the catalog's pinned
    /// checksums (the catalog sets `checksums_verified`).
    pub fn read(
        name: &str,
        class_names: &[&str],
        train: RawPart,
        test: Option<RawPart>,
        source_checksums: BTreeMap<String, String>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            class_names: class_names.iter().map(|c| (*c).to_owned()).collect(),
            train,
            test,
            source_checksums,
            checksums_verified: false,
        }
    }
}
