//! `manifest.json`: what the dataset is and how to check its files.

use std::collections::BTreeMap;

use ra_spec::InputSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The layout version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Element type of the `x` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XDtype {
    /// Raw pixels 0-255 (normalised by the reader with the manifest's statistics).
    U8,
    /// Already-numeric features.
    F32,
    /// Token ids.
    I64,
}

impl XDtype {
    /// The name in manifest.json and on the wire: "u8", "f32", "i64".
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::F32 => "f32",
            Self::I64 => "i64",
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F32 => 4,
            Self::I64 => 8,
        }
    }
}

/// Per-channel (images) or per-feature (tabular) statistics of the train split.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// "train", "val" or "test".
    pub name: String,
    pub num_samples: u64,
    pub file_name: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// Samples per class, indexed by class.
    pub class_counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub prepared_id: String,
    pub dataset: String,
    pub input: InputSpec,
    pub x_dtype: XDtype,
    pub class_names: Vec<String>,
    pub splits: Vec<SplitInfo>,
    pub normalization: Normalization,
    /// sha256 of each original file, by name.
    pub source_checksums: BTreeMap<String, String>,
    pub checksums_verified: bool,
    /// The preparation options, as given.
    pub options: serde_json::Value,
    /// Largest train class count over the smallest.
    pub imbalance_ratio: f64,
    /// RFC 3339.
    pub created_at: String,
}

impl Manifest {
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn split(&self, name: &str) -> Option<&SplitInfo> {
        self.splits.iter().find(|split| split.name == name)
    }
}

/// Shape of one sample of `x`.
pub fn sample_shape(input: &InputSpec) -> Vec<usize> {
    match *input {
        InputSpec::Image {
            channels,
            height,
            width,
        } => vec![channels as usize, height as usize, width as usize],
        InputSpec::Tabular { features } => vec![features as usize],
        InputSpec::Text {
            sequence_length, ..
        } => vec![sequence_length as usize],
    }
}

/// The content id of a preparation: a hash of the originals' checksums, the options and the
/// format version, so the same inputs always land in the same directory.
pub fn content_id(
    dataset: &str,
    source_checksums: &BTreeMap<String, String>,
    options: &serde_json::Value,
) -> String {
    let canonical = serde_json::json!({
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "sources": source_checksums,
        "options": options,
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    let slug: String = dataset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("{slug}-{}", &hex::encode(digest)[..24])
}
