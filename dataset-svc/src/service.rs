//! The service's logic in plain Rust: the catalog, preparation from the data folder into the
//! cache, the cache's entries, and batches of a prepared split. The gRPC adapter only converts.

use std::path::PathBuf;

use ra_prepared::{PreparedDataset, PreparedError, Verify, XDtype};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::catalog::{self, CatalogEntry};
use crate::config::DataSettings;
use crate::error::{DatasetError, bad_option};
use crate::prepare::{PrepareOptions, Report, prepare_reporting};

/// What a preparation request carries besides the options.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Read the originals from here instead of `data_dir/<name>`.
    pub source_dir: Option<PathBuf>,
    /// A partial or custom copy: pinned checksums are not enforced.
    pub skip_checksums: bool,
}

/// One batch of a split, `x` as little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchData {
    pub index: u64,
    pub x_shape: Vec<u64>,
    pub x_dtype: &'static str,
    pub x: Vec<u8>,
    pub y: Vec<i64>,
}

/// How to cut a split into batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchRequest {
    pub batch_size: usize,
    pub shuffle_seed: Option<u64>,
    /// Apply the manifest's normalisation and send f32.
    pub normalize: bool,
    /// 0 sends every batch.
    pub max_batches: u64,
}

#[derive(Debug, Clone)]
pub struct Datasets {
    settings: DataSettings,
}

impl Datasets {
    pub fn new(settings: DataSettings) -> Self {
        Self { settings }
    }

    pub fn catalog(&self) -> &'static [CatalogEntry] {
        catalog::CATALOG
    }

    pub fn describe(&self, name: &str) -> Result<&'static CatalogEntry, DatasetError> {
        if name.trim().is_empty() {
            return Err(bad_option(
                "name",
                "a dataset name is required; ListDatasets shows the catalog",
            ));
        }
        if name.starts_with("hf:") {
            return Err(DatasetError::Unsupported(
                "Hugging Face datasets (hf:<repo>) are not served yet".into(),
            ));
        }
        catalog::lookup(name)
    }

    /// Reads, verifies and prepares `name`, telling `report` each stage as it begins.
    pub fn prepare(
        &self,
        name: &str,
        origin: &Origin,
        options: &PrepareOptions,
        report: Report<'_>,
    ) -> Result<PreparedDataset, DatasetError> {
        let entry = self.describe(name)?;
        let folder = origin
            .source_dir
            .clone()
            .unwrap_or_else(|| self.settings.data_dir.join(entry.name));
        report(
            "parse",
            &format!("reading the originals in {}", folder.display()),
        );
        let raw = entry.load(&folder, origin.skip_checksums)?;
        prepare_reporting(&raw, options, &self.settings.cache_dir, report)
    }

    /// A cache entry, every file's sha256 checked.
    pub fn get_prepared(&self, prepared_id: &str) -> Result<PreparedDataset, DatasetError> {
        let dir = self.entry_dir(prepared_id)?;
        Ok(PreparedDataset::open(&dir, Verify::Checksums)?)
    }

    /// Every readable cache entry (of `dataset`, when given), by id.
    pub fn list_prepared(&self, dataset: &str) -> Result<Vec<PreparedDataset>, DatasetError> {
        let root = &self.settings.cache_dir;
        let entries = match std::fs::read_dir(root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(DatasetError::Io {
                    path: root.clone(),
                    source,
                });
            }
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden || !path.is_dir() {
                continue;
            }
            match PreparedDataset::open(&path, Verify::Sizes) {
                Ok(prepared) if dataset.is_empty() || prepared.manifest().dataset == dataset => {
                    found.push(prepared);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable cache entry")
                }
            }
        }
        found.sort_by(|a, b| a.manifest().prepared_id.cmp(&b.manifest().prepared_id));
        Ok(found)
    }

    /// Checks a batch request against the split, and returns the dataset and visiting order.
    pub fn plan_batches(
        &self,
        prepared_id: &str,
        split: &str,
        request: &BatchRequest,
    ) -> Result<(PreparedDataset, Vec<usize>), DatasetError> {
        let dir = self.entry_dir(prepared_id)?;
        let dataset = PreparedDataset::open(&dir, Verify::Sizes)?;
        let split_data = dataset.split(split)?;
        let sample_bytes = split_data.sample_len()
            * if request.normalize && split_data.dtype() != XDtype::I64 {
                4
            } else {
                split_data.dtype().bytes()
            };
        if request.batch_size == 0 {
            return Err(bad_option("batch_size", "must be at least 1"));
        }
        let batch_bytes = (sample_bytes * request.batch_size) as u64;
        if batch_bytes > self.settings.max_batch_bytes {
            return Err(bad_option(
                "batch_size",
                format!(
                    "{} samples of {sample_bytes} bytes make {batch_bytes} bytes, above the {} allowed per batch; ask for at most {}",
                    request.batch_size,
                    self.settings.max_batch_bytes,
                    self.settings.max_batch_bytes / sample_bytes.max(1) as u64
                ),
            ));
        }
        let mut order: Vec<usize> = (0..split_data.len()).collect();
        if let Some(seed) = request.shuffle_seed {
            order.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        Ok((dataset, order))
    }

    fn entry_dir(&self, prepared_id: &str) -> Result<PathBuf, DatasetError> {
        let valid = !prepared_id.is_empty()
            && prepared_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(bad_option(
                "prepared_id",
                format!("{prepared_id:?} is not a prepared id (letters, digits, '-', '_')"),
            ));
        }
        let dir = self.settings.cache_dir.join(prepared_id);
        if !dir.is_dir() {
            return Err(DatasetError::UnknownPrepared(prepared_id.to_owned()));
        }
        Ok(dir)
    }
}

/// Batch `index` of `order` from `split` of `dataset`.
pub fn batch(
    dataset: &PreparedDataset,
    split: &str,
    order: &[usize],
    index: usize,
    request: &BatchRequest,
) -> Result<BatchData, PreparedError> {
    let data = dataset.split(split)?;
    let indices = order
        .chunks(request.batch_size)
        .nth(index)
        .unwrap_or_default();
    let sample_len = data.sample_len();
    let mut x_shape = vec![indices.len() as u64];
    x_shape.extend(
        ra_prepared::sample_shape(&dataset.manifest().input)
            .iter()
            .map(|d| *d as u64),
    );
    let y = indices.iter().map(|i| data.labels()[*i]).collect();
    if data.dtype() == XDtype::I64 {
        let mut ids = vec![0i64; sample_len];
        let mut x = Vec::with_capacity(indices.len() * sample_len * 8);
        for i in indices {
            data.sample_i64(*i, &mut ids);
            x.extend(ids.iter().flat_map(|v| v.to_le_bytes()));
        }
        return Ok(BatchData {
            index: index as u64,
            x_shape,
            x_dtype: XDtype::I64.name(),
            x,
            y,
        });
    }
    let mut values = vec![0f32; sample_len];
    let stats = &dataset.manifest().normalization;
    let group = if stats.mean.is_empty() {
        1
    } else {
        sample_len / stats.mean.len()
    };
    let raw_u8 = data.dtype() == XDtype::U8 && !request.normalize;
    let mut x = Vec::with_capacity(indices.len() * sample_len * if raw_u8 { 1 } else { 4 });
    for i in indices {
        data.sample_f32(*i, &mut values);
        if raw_u8 {
            x.extend(values.iter().map(|v| *v as u8));
            continue;
        }
        if request.normalize && !stats.mean.is_empty() {
            for (position, value) in values.iter_mut().enumerate() {
                let g = position / group.max(1);
                let std = if stats.std[g] > 0.0 {
                    stats.std[g]
                } else {
                    1.0
                };
                *value = ((f64::from(*value) - stats.mean[g]) / std) as f32;
            }
        }
        x.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    Ok(BatchData {
        index: index as u64,
        x_shape,
        x_dtype: if raw_u8 { XDtype::U8 } else { XDtype::F32 }.name(),
        x,
        y,
    })
}

/// The number of batches `request` yields from `samples` samples.
pub fn batch_count(samples: usize, request: &BatchRequest) -> usize {
    let all = samples.div_ceil(request.batch_size.max(1));
    match request.max_batches {
        0 => all,
        limit => all.min(usize::try_from(limit).unwrap_or(usize::MAX)),
    }
}
