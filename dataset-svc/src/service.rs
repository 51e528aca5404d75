//! The service's logic in plain Rust: the catalog, preparation from the data folder into the
//! cache, the cache's entries, and batches of a prepared split. The gRPC adapter only converts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ra_prepared::{PreparedDataset, PreparedError, Verify, XDtype};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::cache::Cache;
use crate::catalog::{self, CatalogEntry, SourceFile};
use crate::config::DataSettings;
use crate::download::{Downloader, Fetch};
use crate::error::{DatasetError, bad_option};
use crate::hub::{self, ColumnMapping, HubDataset};
use crate::local;
use crate::prepare::{PrepareOptions, cached, prepare_reporting, prepared_id};
use crate::progress::{Progress, Report};
use crate::raw::RawDataset;
use crate::synthetic::{self, SyntheticOptions, SyntheticRequest};

/// What a preparation request carries besides the options.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Read the originals from here instead of `data_dir/<name>`.
    pub source_dir: Option<PathBuf>,
    /// A partial or custom copy: pinned checksums are not enforced.
    pub skip_checksums: bool,
    /// Never download for this request (the service's `data.offline` also forbids it).
    pub offline: bool,
    /// Synthetic generators' options, 0 meaning the generator's default; ignored for real
    /// datasets.
    pub synthetic: Option<SyntheticRequest>,
    /// Columns of a Hugging Face dataset; ignored for catalog datasets.
    pub hugging_face: Option<ColumnMapping>,
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
    /// Held while originals are downloaded, so that two preparations never write the same
    /// `.part` file.
    downloads: Arc<Mutex<()>>,
}

impl Datasets {
    pub fn new(settings: DataSettings) -> Self {
        Self {
            settings,
            downloads: Arc::new(Mutex::new(())),
        }
    }

    /// The download lock; a panic of an earlier holder does not poison downloads for good.
    fn download_guard(&self) -> MutexGuard<'_, ()> {
        self.downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
            return Err(DatasetError::Unsupported(format!(
                "{name} is a Hugging Face dataset, not a catalog entry: describe it with describe_hub"
            )));
        }
        if local::parse(name)?.is_some() {
            return Err(DatasetError::Unsupported(format!(
                "{} names your own files, not a catalog entry: describe it with describe_local",
                crate::error::shown(name)
            )));
        }
        catalog::lookup(name)
    }

    /// A Hugging Face dataset reference, checked.
    pub fn describe_hub(&self, name: &str) -> Result<HubDataset, DatasetError> {
        HubDataset::parse(name)
    }

    /// A researcher's own dataset, read in full: what DescribeDataset says of it.
    pub fn describe_local(&self, name: &str) -> Result<local::LocalSummary, DatasetError> {
        let dataset =
            local::parse(name)?.ok_or_else(|| bad_option("name", "not a local dataset name"))?;
        local::describe(&self.settings, &dataset)
    }

    /// Starts receiving an upload of a researcher's files.
    pub fn start_upload(
        &self,
        kind: &str,
        name: &str,
        options: &str,
    ) -> Result<local::upload::Upload, DatasetError> {
        local::upload::Upload::start(&self.settings, kind, name, options)
    }

    /// Reads (or generates), verifies and prepares `name`, telling `report` how it goes.
    pub fn prepare(
        &self,
        name: &str,
        origin: &Origin,
        options: &PrepareOptions,
        report: Report<'_>,
    ) -> Result<PreparedDataset, DatasetError> {
        if name.starts_with("hf:") {
            return self.prepare_hub(name, origin, options, report);
        }
        if let Some(dataset) = local::parse(name)? {
            let path = local::resolve(&self.settings, &dataset)?;
            report(Progress::at(
                "parse",
                0.0,
                format!("reading {}", path.display()),
            ));
            let raw = local::load(&self.settings, &dataset, &path)?;
            report(Progress::at(
                "parse",
                1.0,
                format!(
                    "read {} samples in {} classes",
                    raw.train.samples.len(),
                    raw.class_names.len()
                ),
            ));
            let options = PrepareOptions {
                synthetic: None,
                hugging_face: None,
                ..options.clone()
            };
            return self.prepare_raw(&raw, &options, report);
        }
        let entry = self.describe(name)?;
        let mut options = options.clone();
        options.hugging_face = None;
        let raw = match entry.origin {
            catalog::Origin::Generated(generator) => {
                let request = origin.synthetic.clone().unwrap_or_default();
                let resolved = SyntheticOptions::resolve(generator, &request)?;
                options.synthetic = Some(resolved.clone());
                let id = prepared_id(entry.name, &synthetic::identity(generator), &options)?;
                if let Some(hit) = cached(&self.settings.cache_dir, &id, report)? {
                    self.cache().touch(&hit.manifest().prepared_id);
                    return Ok(hit);
                }
                report(Progress::at(
                    "generate",
                    0.0,
                    format!("drawing {} samples of {name}", resolved.num_samples),
                ));
                synthetic::generate(generator, &resolved, options.seed)
            }
            catalog::Origin::Files(_) => {
                options.synthetic = None;
                let folder = origin
                    .source_dir
                    .clone()
                    .unwrap_or_else(|| self.settings.data_dir.join(entry.name));
                report(Progress::at(
                    "parse",
                    0.0,
                    format!("reading the originals in {}", folder.display()),
                ));
                let raw = match entry.load(&folder, origin.skip_checksums) {
                    Err(missing @ DatasetError::MissingFile { .. })
                        if origin.source_dir.is_none() =>
                    {
                        self.obtain(entry, &folder, origin.offline, missing, report)?;
                        entry.load(&folder, origin.skip_checksums)?
                    }
                    other => other?,
                };
                report(Progress::at(
                    "parse",
                    1.0,
                    format!("read {} original file(s)", raw.source_checksums.len()),
                ));
                raw
            }
        };
        self.prepare_raw(&raw, &options, report)
    }

    /// Prepares originals already read: the cache entry, its last use, the size cap.
    fn prepare_raw(
        &self,
        raw: &RawDataset,
        options: &PrepareOptions,
        report: Report<'_>,
    ) -> Result<PreparedDataset, DatasetError> {
        let prepared = prepare_reporting(raw, options, &self.settings.cache_dir, report)?;
        let id = &prepared.manifest().prepared_id;
        self.cache().touch(id);
        let evicted = self.cache().enforce_cap(id)?;
        if !evicted.is_empty() {
            let ids: Vec<&str> = evicted.iter().map(|e| e.prepared_id.as_str()).collect();
            report(Progress::at(
                "write",
                1.0,
                format!(
                    "the cache was over its cap of {} bytes: evicted {}",
                    self.settings.cache_max_bytes,
                    ids.join(", ")
                ),
            ));
        }
        Ok(prepared)
    }

    /// Reads a Hugging Face dataset's parquet files (from `source_dir`, the data folder, the
    /// local Hugging Face cache, or the Hub) and prepares it.
    fn prepare_hub(
        &self,
        name: &str,
        origin: &Origin,
        options: &PrepareOptions,
        report: Report<'_>,
    ) -> Result<PreparedDataset, DatasetError> {
        let dataset = HubDataset::parse(name)?;
        let folder = match &origin.source_dir {
            Some(dir) => dir.clone(),
            None => self.hub_folder(&dataset, origin.offline, report)?,
        };
        report(Progress::at(
            "parse",
            0.0,
            format!("reading the parquet files in {}", folder.display()),
        ));
        let mapping = origin.hugging_face.clone().unwrap_or_default();
        let raw = hub::load(&folder, &dataset, &mapping)?;
        let options = PrepareOptions {
            synthetic: None,
            hugging_face: Some(mapping),
            ..options.clone()
        };
        self.prepare_raw(&raw, &options, report)
    }

    /// Where `dataset`'s parquet files are: `<data_dir>/hf/<repo>` when it holds some, else
    /// the newest snapshot in the local Hugging Face cache, else downloaded from the Hub's
    /// parquet listing into `<data_dir>/hf/<repo>/<config>/<split>/NNNN.parquet`.
    fn hub_folder(
        &self,
        dataset: &HubDataset,
        offline: bool,
        report: Report<'_>,
    ) -> Result<PathBuf, DatasetError> {
        let local = dataset.folder_in(&self.settings.data_dir);
        let has_files = |folder: &Path| {
            hub::parquet_files(folder, dataset).is_ok_and(|files| files.contains_key("train"))
        };
        if local.is_dir() && has_files(&local) {
            return Ok(local);
        }
        let hf_home = std::env::var_os("HF_HOME").map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/huggingface"))
        });
        if let Some(snapshot) = hf_home.and_then(|home| dataset.cached_snapshot(&home))
            && has_files(&snapshot)
        {
            return Ok(snapshot);
        }
        if offline || self.settings.offline {
            return Err(DatasetError::NeedOriginals(format!(
                "{} is not on this machine and downloads are off: put its parquet files into {} (e.g. {}/train-00000-of-00001.parquet), or name their folder in source_dir",
                dataset.name(),
                local.display(),
                dataset.config.as_deref().unwrap_or("data")
            )));
        }
        let _downloading = self.download_guard();
        let downloader = self.downloader();
        let hub = self.settings.hub_url.trim_end_matches('/');
        let listing_url = format!("{hub}/api/datasets/{}/parquet", dataset.repo);
        let listing =
            downloader
                .get_json(&listing_url)?
                .ok_or_else(|| DatasetError::UnknownDataset {
                    name: dataset.name(),
                    suggestions: format!(
                        "the Hub has no public dataset repo {} ({listing_url})",
                        dataset.repo
                    ),
                })?;
        let configs: Vec<&String> = listing
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        let config = match &dataset.config {
            Some(config) => config.clone(),
            None if configs.len() == 1 => configs[0].clone(),
            None if configs.iter().any(|c| *c == "default") => "default".to_owned(),
            None => {
                return Err(bad_option(
                    "name",
                    format!(
                        "{} has several configurations {configs:?}; name one as hf:{}:<config>",
                        dataset.name(),
                        dataset.repo
                    ),
                ));
            }
        };
        let Some(splits) = listing[&config].as_object() else {
            return Err(DatasetError::UnknownDataset {
                name: dataset.name(),
                suggestions: format!("its configurations are {configs:?}"),
            });
        };
        for (split, urls) in splits {
            let urls: Vec<&str> = urls
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str())
                .collect();
            for (index, url) in urls.iter().enumerate() {
                let destination = local
                    .join(&config)
                    .join(split)
                    .join(format!("{index:04}.parquet"));
                if destination.is_file() {
                    continue;
                }
                report(Progress::bytes("download", 0, 0, (*url).to_owned()));
                let fetch = Fetch {
                    url,
                    sha256: None,
                    size_bytes: 0,
                };
                downloader.fetch(fetch, &destination, report)?;
            }
        }
        Ok(local)
    }

    fn downloader(&self) -> Downloader {
        Downloader::new(
            self.settings.download_attempts,
            Duration::from_millis(200),
            self.settings.max_download_bytes,
        )
    }

    fn cache(&self) -> Cache {
        Cache::new(&self.settings.cache_dir, self.settings.cache_max_bytes)
    }

    /// Removes a cache entry; returns the bytes freed.
    pub fn delete_prepared(&self, prepared_id: &str) -> Result<u64, DatasetError> {
        self.entry_dir(prepared_id)?;
        self.cache().delete(prepared_id)
    }

    /// Puts the originals of `entry` that `folder` lacks in place by downloading them, or
    /// says which files to put where when that is not allowed or not possible. `missing` is
    /// the loader's refusal, returned as it is when every catalog file is there already.
    fn obtain(
        &self,
        entry: &CatalogEntry,
        folder: &Path,
        offline: bool,
        missing: DatasetError,
        report: Report<'_>,
    ) -> Result<(), DatasetError> {
        let absent: Vec<&SourceFile> = entry
            .sources
            .iter()
            .filter(|source| !folder.join(source.file_name).is_file())
            .collect();
        if absent.is_empty() {
            return Err(missing);
        }
        let listing = |files: &[&SourceFile]| {
            files
                .iter()
                .map(|s| format!("{} (from {})", s.file_name, s.url))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if offline || self.settings.offline {
            return Err(DatasetError::NeedOriginals(format!(
                "{} is not prepared and downloads are off: put {} into {} (or name a folder in source_dir)",
                entry.name,
                listing(&absent),
                folder.display()
            )));
        }
        let by_hand: Vec<&SourceFile> =
            absent.iter().copied().filter(|s| !s.downloadable).collect();
        if !by_hand.is_empty() {
            return Err(DatasetError::NeedOriginals(format!(
                "{} cannot be downloaded automatically: fetch {} by hand (unpack archives) and put the files into {}",
                entry.name,
                listing(&by_hand),
                folder.display()
            )));
        }
        let _downloading = self.download_guard();
        let downloader = self.downloader();
        for source in absent {
            if folder.join(source.file_name).is_file() {
                continue; // fetched by a preparation that held the lock before this one
            }
            let url = if self.settings.mirror_url.is_empty() {
                source.url.to_owned()
            } else {
                format!(
                    "{}/{}/{}",
                    self.settings.mirror_url.trim_end_matches('/'),
                    entry.name,
                    source.file_name
                )
            };
            report(Progress::bytes(
                "download",
                0,
                source.size_bytes,
                url.clone(),
            ));
            let fetch = Fetch {
                url: &url,
                sha256: source.sha256,
                size_bytes: source.size_bytes,
            };
            downloader.fetch(fetch, &folder.join(source.file_name), report)?;
        }
        Ok(())
    }

    /// A cache entry, every file's sha256 checked.
    pub fn get_prepared(&self, prepared_id: &str) -> Result<PreparedDataset, DatasetError> {
        let dir = self.entry_dir(prepared_id)?;
        let dataset = PreparedDataset::open(&dir, Verify::Checksums)?;
        self.cache().touch(prepared_id);
        Ok(dataset)
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
        self.cache().touch(prepared_id);
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

/// Batch `index` of `order` from `split` of `dataset`: the samples as stored (raw bytes
/// copied from the mapped file), or, with `normalize`, as f32 with the manifest's
/// normalisation applied (token ids are never normalised).
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
    if !request.normalize || data.dtype() == XDtype::I64 {
        let mut x = Vec::with_capacity(indices.len() * sample_len * data.dtype().bytes());
        for i in indices {
            x.extend_from_slice(data.sample_bytes(*i));
        }
        return Ok(BatchData {
            index: index as u64,
            x_shape,
            x_dtype: data.dtype().name(),
            x,
            y,
        });
    }
    let (offset, scale) = normalisation_per_value(&dataset.manifest().normalization, sample_len);
    let mut values = vec![0f32; sample_len];
    let mut x = vec![0u8; indices.len() * sample_len * 4];
    for (i, out) in indices.iter().zip(x.chunks_exact_mut(sample_len * 4)) {
        data.sample_f32(*i, &mut values);
        for (((bytes, value), offset), scale) in out
            .chunks_exact_mut(4)
            .zip(&values)
            .zip(&offset)
            .zip(&scale)
        {
            bytes.copy_from_slice(&((value - offset) * scale).to_le_bytes());
        }
    }
    Ok(BatchData {
        index: index as u64,
        x_shape,
        x_dtype: XDtype::F32.name(),
        x,
        y,
    })
}

/// The manifest's mean and 1/std (one per channel or feature) spread over every value of a
/// sample; no statistics leave values as they are.
fn normalisation_per_value(
    stats: &ra_prepared::Normalization,
    sample_len: usize,
) -> (Vec<f32>, Vec<f32>) {
    if stats.mean.is_empty() {
        return (vec![0.0; sample_len], vec![1.0; sample_len]);
    }
    let group = (sample_len / stats.mean.len()).max(1);
    (0..sample_len)
        .map(|position| {
            let g = (position / group).min(stats.mean.len() - 1);
            let std = if stats.std[g] > 0.0 {
                stats.std[g]
            } else {
                1.0
            };
            (stats.mean[g] as f32, (1.0 / std) as f32)
        })
        .unzip()
}

/// The number of batches `request` yields from `samples` samples.
pub fn batch_count(samples: usize, request: &BatchRequest) -> usize {
    let all = samples.div_ceil(request.batch_size.max(1));
    match request.max_batches {
        0 => all,
        limit => all.min(usize::try_from(limit).unwrap_or(usize::MAX)),
    }
}
