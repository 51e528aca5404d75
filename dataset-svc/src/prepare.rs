//! The preparation: an optional stratified subset of the originals' train part, a stratified
//! train / val (/ test) split from a seed, preprocessing fitted on the train split only, and an
//! atomic write into the content-addressed cache. A cache hit is verified against every sha256;
//! a damaged entry is removed and rebuilt.

use std::collections::BTreeMap;
use std::path::Path;

use ra_prepared::{
    ManifestDraft, Normalization, PreparedDataset, SplitData, Verify, XData, content_id,
    write_prepared,
};
use ra_spec::InputSpec;
use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, bad_option};
use crate::hub::ColumnMapping;
use crate::progress::{Progress, Report};
use crate::raw::{RawDataset, RawPart, Samples};
use crate::split::stratified_partition;
use crate::synthetic::SyntheticOptions;
use crate::tabular::TabularEncoder;
use crate::text::{TextEncoder, TokenizerKind};

/// How to prepare a dataset; every field takes part in the content id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrepareOptions {
    /// Seed of the subset and split draws.
    pub seed: u64,
    /// Share of the (subset of the) train part held out as `val`.
    pub val_fraction: f64,
    /// Share held out as `test` when the source ships no test part of its own.
    pub test_fraction: f64,
    /// A stratified subset of the train part to use instead of all of it.
    pub subset_size: Option<usize>,
    /// Text: tokens per document after truncation or padding.
    pub sequence_length: usize,
    /// Text: a word enters the vocabulary when the train split has it this often.
    pub min_frequency: usize,
    /// Text: vocabulary size, the two reserved ids included.
    pub max_vocab: usize,
    /// Text: words or byte-pair-encoded sub-words (absent from ids when words, so the
    /// ids of earlier preparations stay as they were).
    #[serde(skip_serializing_if = "TokenizerKind::is_word")]
    pub tokenizer: TokenizerKind,
    /// Tabular: one-hot width cap per categorical column (the most frequent categories).
    pub max_categories: usize,
    /// What a synthetic generator drew (absent for real datasets, whose ids it leaves as
    /// they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticOptions>,
    /// The columns read from a Hugging Face dataset (absent for catalog datasets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hugging_face: Option<ColumnMapping>,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            val_fraction: 0.2,
            test_fraction: 0.0,
            subset_size: None,
            sequence_length: 64,
            min_frequency: 2,
            max_vocab: 30_000,
            tokenizer: TokenizerKind::Word,
            max_categories: 32,
            synthetic: None,
            hugging_face: None,
        }
    }
}

impl PrepareOptions {
    fn check(&self, raw: &RawDataset) -> Result<(), DatasetError> {
        let fraction = |value: f64| value.is_finite() && (0.0..1.0).contains(&value);
        if !fraction(self.val_fraction) || self.val_fraction == 0.0 {
            return Err(bad_option(
                "val_fraction",
                format!("{} must be above 0 and below 1", self.val_fraction),
            ));
        }
        if !fraction(self.test_fraction) {
            return Err(bad_option(
                "test_fraction",
                format!("{} must be in [0, 1)", self.test_fraction),
            ));
        }
        if raw.test.is_none() && self.val_fraction + self.test_fraction >= 1.0 {
            return Err(bad_option(
                "val_fraction",
                format!(
                    "val {} + test {} leave nothing to train on; they must sum below 1",
                    self.val_fraction, self.test_fraction
                ),
            ));
        }
        check_raw(raw)?;
        let available = raw.train.labels.len();
        if let Some(subset) = self.subset_size
            && (subset > available || subset < 2 * raw.class_names.len())
        {
            return Err(bad_option(
                "subset_size",
                format!(
                    "{subset} samples requested; {} has {available} train samples and needs at least two per class ({})",
                    raw.name,
                    2 * raw.class_names.len()
                ),
            ));
        }
        if matches!(raw.train.samples, Samples::Text(_))
            && (self.sequence_length == 0 || self.sequence_length > 4096 || self.max_vocab < 3)
        {
            return Err(bad_option(
                "sequence_length",
                "text needs a sequence_length of 1 to 4096 and a max_vocab of at least 3",
            ));
        }
        Ok(())
    }
}

/// The originals must be usable at all: labels within the classes, as many labels as samples,
/// two samples per class or more to split, and one kind of sample throughout.
fn check_raw(raw: &RawDataset) -> Result<(), DatasetError> {
    let classes = raw.class_names.len();
    let parts = std::iter::once(("train", &raw.train)).chain(raw.test.iter().map(|t| ("test", t)));
    for (name, part) in parts {
        if part.labels.len() != part.samples.len() {
            return Err(bad_option(
                "dataset",
                format!(
                    "{} {name}: {} labels for {} samples",
                    raw.name,
                    part.labels.len(),
                    part.samples.len()
                ),
            ));
        }
        if let Some(label) = part
            .labels
            .iter()
            .find(|l| !(0..classes as i64).contains(l))
        {
            return Err(bad_option(
                "dataset",
                format!("{} {name}: label {label} outside 0..{classes}", raw.name),
            ));
        }
        if std::mem::discriminant(&part.samples) != std::mem::discriminant(&raw.train.samples) {
            return Err(bad_option(
                "dataset",
                format!(
                    "{} {name}: its samples are of another kind than train's",
                    raw.name
                ),
            ));
        }
    }
    if raw.train.labels.len() < 2 * classes.max(1) {
        return Err(bad_option(
            "dataset",
            format!(
                "{} has {} train samples; at least two per class ({}) are needed to split",
                raw.name,
                raw.train.labels.len(),
                2 * classes
            ),
        ));
    }
    Ok(())
}

/// Prepares `raw` under `cache_root` (or opens the verified cached copy).
pub fn prepare(
    raw: &RawDataset,
    options: &PrepareOptions,
    cache_root: &Path,
) -> Result<PreparedDataset, DatasetError> {
    prepare_reporting(raw, options, cache_root, &mut |_| {})
}

fn options_json(options: &PrepareOptions) -> Result<serde_json::Value, DatasetError> {
    serde_json::to_value(options)
        .map_err(|error| bad_option("options", format!("cannot be written as JSON: {error}")))
}

/// The content id of `dataset` made from originals with `checksums` and `options`.
pub fn prepared_id(
    dataset: &str,
    checksums: &BTreeMap<String, String>,
    options: &PrepareOptions,
) -> Result<String, DatasetError> {
    Ok(content_id(dataset, checksums, &options_json(options)?))
}

/// The verified cache entry `prepared_id`, if there is one; a damaged entry is removed (and
/// `None` returned, so that it is rebuilt).
pub fn cached(
    cache_root: &Path,
    prepared_id: &str,
    report: Report<'_>,
) -> Result<Option<PreparedDataset>, DatasetError> {
    let target = cache_root.join(prepared_id);
    if !target.exists() {
        return Ok(None);
    }
    match PreparedDataset::open(&target, Verify::Checksums) {
        Ok(dataset) => {
            report(Progress::at(
                "cache-hit",
                1.0,
                "verified every file of the cached copy",
            ));
            Ok(Some(dataset))
        }
        Err(error) => {
            report(Progress::at(
                "cache-hit",
                0.0,
                format!("damaged cached copy removed, rebuilding: {error}"),
            ));
            std::fs::remove_dir_all(&target).map_err(crate::error::io(&target))?;
            Ok(None)
        }
    }
}

/// [`prepare`], telling `report` as each stage begins.
pub fn prepare_reporting(
    raw: &RawDataset,
    options: &PrepareOptions,
    cache_root: &Path,
    report: Report<'_>,
) -> Result<PreparedDataset, DatasetError> {
    options.check(raw)?;
    let options_json = options_json(options)?;
    let prepared_id = content_id(&raw.name, &raw.source_checksums, &options_json);
    if let Some(dataset) = cached(cache_root, &prepared_id, report)? {
        return Ok(dataset);
    }
    report(Progress::at(
        "preprocess",
        0.0,
        "splitting and fitting the preprocessing on train",
    ));
    let parts = draw_parts(raw, options);
    let (input, normalization, splits) = preprocess(options, parts, report)?;
    report(Progress::at("write", 0.0, "writing the splits"));
    let draft = ManifestDraft {
        dataset: raw.name.clone(),
        input,
        class_names: raw.class_names.clone(),
        normalization,
        source_checksums: raw.source_checksums.clone(),
        checksums_verified: raw.checksums_verified,
        options: options_json,
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let written = write_prepared(cache_root, &prepared_id, draft, splits)?;
    report(Progress::at(
        "write",
        1.0,
        format!("prepared {prepared_id}"),
    ));
    Ok(written)
}

/// The named parts (train, val, optional test) before preprocessing.
fn draw_parts(raw: &RawDataset, options: &PrepareOptions) -> Vec<(&'static str, RawPart)> {
    let classes = raw.class_names.len();
    let pool = match options.subset_size {
        Some(size) => {
            let parts = stratified_partition(&raw.train.labels, classes, &[size], options.seed);
            raw.train.select(&parts[0])
        }
        None => raw.train.clone(),
    };
    let n = pool.labels.len();
    let val = ((n as f64 * options.val_fraction).round() as usize).clamp(1, n - 1);
    let test = match raw.test {
        Some(_) => 0,
        None => (n as f64 * options.test_fraction).round() as usize,
    };
    let sizes: Vec<usize> = if test > 0 { vec![val, test] } else { vec![val] };
    let split_seed = options.seed.wrapping_add(1);
    let mut indices = stratified_partition(&pool.labels, classes, &sizes, split_seed);
    let train_indices = indices.pop().unwrap_or_default();
    let mut parts = vec![("train", pool.select(&train_indices))];
    parts.push(("val", pool.select(&indices[0])));
    if test > 0 {
        parts.push(("test", pool.select(&indices[1])));
    }
    if let Some(test_part) = &raw.test {
        parts.push(("test", test_part.clone()));
    }
    parts
}

/// The input description, the manifest's normalisation and the encoded splits; every statistic
/// comes from the train part, which `draw_parts` puts first.
fn preprocess(
    options: &PrepareOptions,
    parts: Vec<(&'static str, RawPart)>,
    report: Report<'_>,
) -> Result<(InputSpec, Normalization, Vec<SplitData>), DatasetError> {
    let total = parts.len();
    let mut encoded = 0;
    let mut split = |name: &str, x: XData, y: Vec<i64>| {
        encoded += 1;
        report(Progress::at(
            "preprocess",
            encoded as f64 / total as f64,
            format!("encoded {name}"),
        ));
        SplitData {
            name: name.to_owned(),
            x,
            y,
        }
    };
    Ok(match &parts[0].1.samples {
        Samples::Images {
            channels,
            height,
            width,
            pixels,
        } => {
            let input = InputSpec::Image {
                channels: *channels,
                height: *height,
                width: *width,
            };
            let plane_len = *height as usize * *width as usize;
            let normalization = channel_statistics(pixels, *channels as usize, plane_len);
            let splits = parts
                .into_iter()
                .map(|(name, part)| match part.samples {
                    Samples::Images { pixels, .. } => split(name, XData::U8(pixels), part.labels),
                    _ => split(name, XData::U8(Vec::new()), part.labels),
                })
                .collect();
            (input, normalization, splits)
        }
        Samples::Table { columns, rows } => {
            let features: Vec<usize> = (0..columns.len()).collect();
            let encoder = TabularEncoder::fit(columns, rows, &features, options.max_categories);
            let (mean, std) = encoder.normalization();
            let input = InputSpec::Tabular {
                features: encoder.width() as u32,
            };
            let splits = parts
                .into_iter()
                .map(|(name, part)| match &part.samples {
                    Samples::Table { rows, .. } => {
                        split(name, XData::F32(encoder.transform(rows)), part.labels)
                    }
                    _ => split(name, XData::F32(Vec::new()), part.labels),
                })
                .collect();
            (input, Normalization { mean, std }, splits)
        }
        Samples::Text(documents) => {
            let encoder = TextEncoder::fit(
                options.tokenizer,
                documents,
                options.min_frequency,
                options.max_vocab,
            )?;
            let input = InputSpec::Text {
                vocab_size: encoder.len() as u32,
                sequence_length: options.sequence_length as u32,
            };
            let mut splits = Vec::with_capacity(parts.len());
            for (name, part) in parts {
                let ids = match &part.samples {
                    Samples::Text(documents) => {
                        encoder.encode(documents, options.sequence_length)?
                    }
                    _ => Vec::new(),
                };
                splits.push(split(name, XData::I64(ids), part.labels));
            }
            (input, Normalization::default(), splits)
        }
        Samples::Features { width, values } => {
            let input = InputSpec::Tabular {
                features: *width as u32,
            };
            let normalization = feature_statistics(values, *width);
            let splits = parts
                .into_iter()
                .map(|(name, part)| match part.samples {
                    Samples::Features { values, .. } => {
                        split(name, XData::F32(values), part.labels)
                    }
                    _ => split(name, XData::F32(Vec::new()), part.labels),
                })
                .collect();
            (input, normalization, splits)
        }
    })
}

/// Per-feature mean and (population) standard deviation of `[n, width]` values.
fn feature_statistics(values: &[f32], width: usize) -> Normalization {
    let mut sums = vec![(0f64, 0f64); width];
    let rows = values.len() / width.max(1);
    for row in values.chunks(width.max(1)) {
        for (sum, value) in sums.iter_mut().zip(row) {
            sum.0 += f64::from(*value);
            sum.1 += f64::from(*value) * f64::from(*value);
        }
    }
    let count = rows.max(1) as f64;
    let (mut mean, mut std) = (Vec::with_capacity(width), Vec::with_capacity(width));
    for (sum, squares) in sums {
        let m = sum / count;
        let variance = (squares / count - m * m).max(0.0);
        mean.push(m);
        std.push(if variance > 0.0 { variance.sqrt() } else { 1.0 });
    }
    Normalization { mean, std }
}

/// Per-channel mean and (population) standard deviation of `[n, channels, plane_len]` pixels,
/// in raw 0-255 units.
fn channel_statistics(pixels: &[u8], channels: usize, plane_len: usize) -> Normalization {
    let mut sums = vec![(0f64, 0f64, 0usize); channels];
    for (plane_index, plane) in pixels.chunks(plane_len.max(1)).enumerate() {
        let entry = &mut sums[plane_index % channels.max(1)];
        for pixel in plane {
            let value = f64::from(*pixel);
            entry.0 += value;
            entry.1 += value * value;
            entry.2 += 1;
        }
    }
    let mut mean = Vec::with_capacity(channels);
    let mut std = Vec::with_capacity(channels);
    for (sum, squares, count) in sums {
        let count = count.max(1) as f64;
        let m = sum / count;
        let variance = (squares / count - m * m).max(0.0);
        mean.push(m);
        std.push(if variance > 0.0 { variance.sqrt() } else { 1.0 });
    }
    Normalization { mean, std }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_statistics_are_per_channel_over_all_images() {
        // Two 1×2 images with two channels: channel 0 holds 0, 2, 4, 6; channel 1 holds 10 × 4.
        let pixels = [0, 2, 10, 10, 4, 6, 10, 10];
        let stats = channel_statistics(&pixels, 2, 2);
        assert_eq!(stats.mean, [3.0, 10.0]);
        assert!((stats.std[0] - 5f64.sqrt()).abs() < 1e-12);
        assert_eq!(stats.std[1], 1.0, "a constant channel keeps a unit scale");
    }
}
