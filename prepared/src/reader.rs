//! Reading a prepared dataset: the manifest is checked against the files, the splits are mapped
//! read-only, and samples are read straight out of the mapping.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use sha2::{Digest, Sha256};

use crate::error::{PreparedError, io};
use crate::manifest::{FORMAT_VERSION, Manifest, XDtype, sample_shape};

/// How much to check when opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Format version, file sizes, tensor shapes and dtypes, label range.
    Sizes,
    /// All of that and every file's sha256.
    Checksums,
}

/// One split, mapped read-only.
#[derive(Debug)]
pub struct Split {
    map: Mmap,
    x_range: Range<usize>,
    labels: Vec<i64>,
    sample_len: usize,
    dtype: XDtype,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_len
    }

    pub fn dtype(&self) -> XDtype {
        self.dtype
    }

    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// Sample `index` as stored: the little-endian bytes of its dtype.
    pub fn sample_bytes(&self, index: usize) -> &[u8] {
        let width = self.sample_len * self.dtype.bytes();
        let start = self.x_range.start + index * width;
        &self.map[start..start + width]
    }

    /// Sample `index` as f32 values (u8 pixels become 0-255 floats; token ids their value).
    pub fn sample_f32(&self, index: usize, out: &mut [f32]) {
        let bytes = self.sample_bytes(index);
        match self.dtype {
            XDtype::U8 => out
                .iter_mut()
                .zip(bytes)
                .for_each(|(o, b)| *o = f32::from(*b)),
            XDtype::F32 => out
                .iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            XDtype::I64 => out
                .iter_mut()
                .zip(bytes.chunks_exact(8))
                .for_each(|(o, b)| {
                    *o = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                }),
        }
    }

    /// Sample `index` as integers (token ids; u8 pixels as their value).
    pub fn sample_i64(&self, index: usize, out: &mut [i64]) {
        let bytes = self.sample_bytes(index);
        match self.dtype {
            XDtype::U8 => out
                .iter_mut()
                .zip(bytes)
                .for_each(|(o, b)| *o = i64::from(*b)),
            XDtype::F32 => out
                .iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
            XDtype::I64 => out
                .iter_mut()
                .zip(bytes.chunks_exact(8))
                .for_each(|(o, b)| {
                    *o = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                }),
        }
    }
}

#[derive(Debug)]
pub struct PreparedDataset {
    dir: PathBuf,
    manifest: Manifest,
    splits: BTreeMap<String, Split>,
}

fn mismatch(path: &Path, message: impl Into<String>) -> PreparedError {
    PreparedError::Mismatch {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl PreparedDataset {
    /// Opens and checks a prepared dataset directory.
    pub fn open(dir: &Path, verify: Verify) -> Result<Self, PreparedError> {
        let manifest_path = dir.join("manifest.json");
        let text = std::fs::read(&manifest_path).map_err(io(&manifest_path))?;
        let version = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| {
                value
                    .get("format_version")
                    .and_then(serde_json::Value::as_u64)
            });
        if let Some(found) = version
            && found > u64::from(FORMAT_VERSION)
        {
            return Err(PreparedError::NewerFormat {
                path: manifest_path,
                found: found as u32,
                supported: FORMAT_VERSION,
            });
        }
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|error| PreparedError::Manifest {
                path: manifest_path.clone(),
                message: error.to_string(),
            })?;
        let shape = sample_shape(&manifest.input);
        let sample_len: usize = shape.iter().product();
        let mut splits = BTreeMap::new();
        for info in &manifest.splits {
            let path = dir.join(&info.file_name);
            if info.file_name.contains('/') || info.file_name.contains("..") {
                return Err(mismatch(
                    &manifest_path,
                    format!(
                        "file name {:?} leaves the dataset directory",
                        info.file_name
                    ),
                ));
            }
            let file = File::open(&path).map_err(io(&path))?;
            let size = file.metadata().map_err(io(&path))?.len();
            if size != info.size_bytes {
                return Err(mismatch(
                    &path,
                    format!("{size} bytes, the manifest says {}", info.size_bytes),
                ));
            }
            // SAFETY: prepared datasets are immutable once renamed into place (a new preparation
            // writes a new directory), and the mapping is read-only; a file truncated behind our
            // back is the one hazard, and the size was checked just above.
            #[allow(unsafe_code)]
            let map = unsafe { Mmap::map(&file) }.map_err(io(&path))?;
            if verify == Verify::Checksums {
                let actual = hex::encode(Sha256::digest(&map[..]));
                if actual != info.sha256 {
                    return Err(mismatch(
                        &path,
                        format!("sha256 {actual}, the manifest says {}", info.sha256),
                    ));
                }
            }
            let split = read_split(
                &path,
                map,
                info.num_samples as usize,
                &shape,
                sample_len,
                manifest.x_dtype,
                manifest.num_classes(),
            )?;
            splits.insert(info.name.clone(), split);
        }
        for required in ["train", "val"] {
            if !splits.contains_key(required) {
                return Err(mismatch(
                    &manifest_path,
                    format!("no {required} split is listed"),
                ));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            splits,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn split(&self, name: &str) -> Result<&Split, PreparedError> {
        self.splits.get(name).ok_or_else(|| PreparedError::NoSplit {
            name: name.to_owned(),
            available: self.splits.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn has_split(&self, name: &str) -> bool {
        self.splits.contains_key(name)
    }
}

fn read_split(
    path: &Path,
    map: Mmap,
    n: usize,
    shape: &[usize],
    sample_len: usize,
    dtype: XDtype,
    classes: usize,
) -> Result<Split, PreparedError> {
    let (x_range, labels) = {
        let tensors = SafeTensors::deserialize(&map)
            .map_err(|error| mismatch(path, format!("not a safetensors file: {error}")))?;
        let x = tensors
            .tensor("x")
            .map_err(|_| mismatch(path, "no tensor x"))?;
        let y = tensors
            .tensor("y")
            .map_err(|_| mismatch(path, "no tensor y"))?;
        let expected_dtype = match dtype {
            XDtype::U8 => Dtype::U8,
            XDtype::F32 => Dtype::F32,
            XDtype::I64 => Dtype::I64,
        };
        let mut expected_shape = vec![n];
        expected_shape.extend_from_slice(shape);
        if x.dtype() != expected_dtype || x.shape() != expected_shape.as_slice() {
            return Err(mismatch(
                path,
                format!(
                    "x is {:?} {:?}, the manifest says {expected_dtype:?} {expected_shape:?}",
                    x.dtype(),
                    x.shape()
                ),
            ));
        }
        if y.dtype() != Dtype::I64 || y.shape() != [n] {
            return Err(mismatch(
                path,
                format!("y is {:?} {:?}, expected I64 [{n}]", y.dtype(), y.shape()),
            ));
        }
        let start = x.data().as_ptr() as usize - map.as_ptr() as usize;
        let labels: Vec<i64> = y
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        if let Some(bad) = labels
            .iter()
            .find(|label| !(0..classes as i64).contains(label))
        {
            return Err(mismatch(
                path,
                format!("label {bad} is outside 0..{classes}"),
            ));
        }
        (start..start + x.data().len(), labels)
    };
    Ok(Split {
        map,
        x_range,
        labels,
        sample_len,
        dtype,
    })
}
