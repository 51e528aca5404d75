//! Writing a prepared dataset: validate the splits, write every file into a temporary
//! directory, sync, then rename the directory into place.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use ra_spec::InputSpec;
use safetensors::tensor::{Dtype, TensorView};
use sha2::{Digest, Sha256};

use crate::error::{PreparedError, io};
use crate::manifest::{FORMAT_VERSION, Manifest, Normalization, SplitInfo, XDtype, sample_shape};
use crate::reader::{PreparedDataset, Verify};

/// The samples of one split.
#[derive(Debug, Clone, PartialEq)]
pub enum XData {
    U8(Vec<u8>),
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl XData {
    fn dtype(&self) -> XDtype {
        match self {
            Self::U8(_) => XDtype::U8,
            Self::F32(_) => XDtype::F32,
            Self::I64(_) => XDtype::I64,
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::U8(values) => values.len(),
            Self::F32(values) => values.len(),
            Self::I64(values) => values.len(),
        }
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Self::U8(values) => values.clone(),
            Self::F32(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::I64(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitData {
    pub name: String,
    pub x: XData,
    pub y: Vec<i64>,
}

/// Everything the manifest says that the writer does not compute itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestDraft {
    pub dataset: String,
    pub input: InputSpec,
    pub class_names: Vec<String>,
    pub normalization: Normalization,
    pub source_checksums: BTreeMap<String, String>,
    pub checksums_verified: bool,
    pub options: serde_json::Value,
    /// RFC 3339 creation time.
    pub created_at: String,
}

const SPLIT_NAMES: [&str; 3] = ["train", "val", "test"];

fn invalid(message: impl Into<String>) -> PreparedError {
    PreparedError::Invalid(message.into())
}

fn check_split(
    split: &SplitData,
    sample_len: usize,
    classes: usize,
    dtype: XDtype,
) -> Result<Vec<u64>, PreparedError> {
    if !SPLIT_NAMES.contains(&split.name.as_str()) {
        return Err(invalid(format!(
            "split {:?} is not one of {SPLIT_NAMES:?}",
            split.name
        )));
    }
    if split.y.is_empty() {
        return Err(invalid(format!("split {} is empty", split.name)));
    }
    if split.x.dtype() != dtype {
        return Err(invalid(format!(
            "split {} stores {:?} samples, the others {dtype:?}",
            split.name,
            split.x.dtype()
        )));
    }
    if split.x.len() != split.y.len() * sample_len {
        return Err(invalid(format!(
            "split {} has {} labels but {} values; {} per sample are expected",
            split.name,
            split.y.len(),
            split.x.len(),
            sample_len
        )));
    }
    let mut counts = vec![0u64; classes];
    for (index, label) in split.y.iter().enumerate() {
        let class = usize::try_from(*label)
            .ok()
            .filter(|class| *class < classes)
            .ok_or_else(|| {
                invalid(format!(
                    "split {} sample {index} has label {label}, outside 0..{classes}",
                    split.name
                ))
            })?;
        counts[class] += 1;
    }
    if let XData::F32(values) = &split.x
        && let Some(position) = values.iter().position(|v| !v.is_finite())
    {
        return Err(invalid(format!(
            "split {} value {position} is not finite",
            split.name
        )));
    }
    Ok(counts)
}

fn write_split(
    dir: &Path,
    split: &SplitData,
    sample_shape: &[usize],
) -> Result<(String, u64, String), PreparedError> {
    let file_name = format!("{}.safetensors", split.name);
    let path = dir.join(&file_name);
    let n = split.y.len();
    let x_bytes = split.x.to_le_bytes();
    let y_bytes: Vec<u8> = split.y.iter().flat_map(|v| v.to_le_bytes()).collect();
    let x_dtype = match split.x.dtype() {
        XDtype::U8 => Dtype::U8,
        XDtype::F32 => Dtype::F32,
        XDtype::I64 => Dtype::I64,
    };
    let mut x_shape = vec![n];
    x_shape.extend_from_slice(sample_shape);
    let tensor_error =
        |error: safetensors::SafeTensorError| invalid(format!("split {}: {error}", split.name));
    let x = TensorView::new(x_dtype, x_shape, &x_bytes).map_err(tensor_error)?;
    let y = TensorView::new(Dtype::I64, vec![n], &y_bytes).map_err(tensor_error)?;
    let bytes = safetensors::serialize([("x", x), ("y", y)], None).map_err(tensor_error)?;
    let mut file = File::create(&path).map_err(io(&path))?;
    file.write_all(&bytes).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    Ok((
        file_name,
        bytes.len() as u64,
        hex::encode(Sha256::digest(&bytes)),
    ))
}

/// Writes the dataset atomically under `cache_root/prepared_id` and opens it. If another writer
/// finished the same id first, its (identical) result is opened instead.
pub fn write_prepared(
    cache_root: &Path,
    prepared_id: &str,
    draft: ManifestDraft,
    splits: Vec<SplitData>,
) -> Result<PreparedDataset, PreparedError> {
    if prepared_id.is_empty()
        || !prepared_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(format!(
            "prepared id {prepared_id:?} must be letters, digits, '-' and '_'"
        )));
    }
    for required in ["train", "val"] {
        if !splits.iter().any(|split| split.name == required) {
            return Err(invalid(format!(
                "a prepared dataset needs a {required} split"
            )));
        }
    }
    let classes = draft.class_names.len();
    if classes < 2 {
        return Err(invalid("at least two class names are needed"));
    }
    let shape = sample_shape(&draft.input);
    let sample_len: usize = shape.iter().product();
    let dtype = splits[0].x.dtype();
    let mut counts = Vec::with_capacity(splits.len());
    for split in &splits {
        counts.push(check_split(split, sample_len, classes, dtype)?);
    }
    std::fs::create_dir_all(cache_root).map_err(io(cache_root))?;
    let temp = cache_root.join(format!(".tmp-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir(&temp).map_err(io(&temp))?;
    let result = write_into(&temp, prepared_id, draft, &splits, counts, &shape, dtype);
    let manifest = match result {
        Ok(manifest) => manifest,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(error);
        }
    };
    let target = cache_root.join(prepared_id);
    if target.exists() {
        let _ = std::fs::remove_dir_all(&temp);
    } else if let Err(error) = std::fs::rename(&temp, &target) {
        let _ = std::fs::remove_dir_all(&temp);
        if !target.exists() {
            return Err(PreparedError::Io {
                path: target,
                source: error,
            });
        }
    }
    File::open(cache_root)
        .and_then(|dir| dir.sync_all())
        .map_err(io(cache_root))?;
    let opened = PreparedDataset::open(&target, Verify::Sizes)?;
    debug_assert_eq!(opened.manifest().prepared_id, manifest.prepared_id);
    Ok(opened)
}

fn write_into(
    dir: &Path,
    prepared_id: &str,
    draft: ManifestDraft,
    splits: &[SplitData],
    counts: Vec<Vec<u64>>,
    shape: &[usize],
    dtype: XDtype,
) -> Result<Manifest, PreparedError> {
    let mut infos = Vec::with_capacity(splits.len());
    for (split, class_counts) in splits.iter().zip(counts) {
        let (file_name, size_bytes, sha256) = write_split(dir, split, shape)?;
        infos.push(SplitInfo {
            name: split.name.clone(),
            num_samples: split.y.len() as u64,
            file_name,
            sha256,
            size_bytes,
            class_counts,
        });
    }
    let train_counts = infos
        .iter()
        .find(|info| info.name == "train")
        .map(|info| info.class_counts.clone())
        .unwrap_or_default();
    let largest = train_counts.iter().copied().max().unwrap_or(0);
    let smallest = train_counts
        .iter()
        .copied()
        .filter(|count| *count > 0)
        .min()
        .unwrap_or(1);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        prepared_id: prepared_id.to_owned(),
        dataset: draft.dataset,
        input: draft.input,
        x_dtype: dtype,
        class_names: draft.class_names,
        splits: infos,
        normalization: draft.normalization,
        source_checksums: draft.source_checksums,
        checksums_verified: draft.checksums_verified,
        options: draft.options,
        imbalance_ratio: largest as f64 / smallest as f64,
        created_at: draft.created_at,
    };
    let path = dir.join("manifest.json");
    let text = serde_json::to_vec_pretty(&manifest).map_err(|error| invalid(error.to_string()))?;
    let mut file = File::create(&path).map_err(io(&path))?;
    file.write_all(&text).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(manifest)
}
