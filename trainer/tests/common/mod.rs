//! What the trainer's test files share: a silent reporter, the shared datasets (or a loud
//! skip) prepared through dataset-svc, and the small spec builders.

#![allow(dead_code)] // each test file uses its own part of this module

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dataset_svc::{DatasetError, PrepareOptions, RawDataset, prepare, sources};
use ra_prepared::PreparedDataset;
use ra_spec::{InputSpec, Layer, ModelSpec, TrainSpec};
use ra_test_support::shared_data_or_skip;
use ra_trainer::metrics::EpochRecord;
use ra_trainer::{Reporter, RunConfig, RunOutcome, train};

pub struct Quiet;

impl Reporter for Quiet {
    fn epoch(&mut self, _: &EpochRecord) {}
    fn log(&mut self, _: &str) {}
}

/// Loads `folder` of the shared data with `load` and prepares it under `cache`.
pub fn prepared(
    test: &str,
    folder: &str,
    load: impl FnOnce(&Path) -> Result<RawDataset, DatasetError>,
    options: &PrepareOptions,
    cache: &Path,
) -> Option<PreparedDataset> {
    let data = shared_data_or_skip(test)?;
    let raw = load(&data.join(folder)).expect("read the originals");
    Some(prepare(&raw, options, cache).expect("prepare"))
}

/// scikit-learn's digits, 80 % train / 20 % val.
pub fn prepared_digits(cache: &Path) -> Option<PreparedDataset> {
    prepared(
        "trainer digits tests",
        "digits",
        sources::digits,
        &PrepareOptions::default(),
        cache,
    )
}

/// Trains `model` on `dataset` with `seed` on the flex backend, quietly.
pub fn run(
    model: ModelSpec,
    train_spec: TrainSpec,
    seed: u64,
    dataset: &PreparedDataset,
) -> RunOutcome {
    let config = RunConfig {
        model,
        train: train_spec,
        seed,
        device: burn::tensor::Device::flex(),
        output: None,
    };
    train(dataset, &config, &mut Quiet).expect("train")
}

pub fn adam(epochs: u32) -> TrainSpec {
    TrainSpec {
        learning_rate: 2e-3,
        batch_size: 32,
        epochs,
        ..TrainSpec::default()
    }
}

/// An MLP for the 64 digits features: 64 → 128 → 10 with dropout.
pub fn digits_mlp() -> ModelSpec {
    ModelSpec {
        name: "digits-mlp".into(),
        input: InputSpec::Tabular { features: 64 },
        num_classes: 10,
        layers: vec![
            Layer::linear(128),
            Layer::relu(),
            Layer::Dropout { probability: 0.1 },
            Layer::linear(10),
        ],
    }
}

/// The `ra-trainer` binary of this build.
pub fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ra-trainer"))
}

/// Writes `{"model": …, "train": …}` as `dir/spec.json`.
pub fn write_spec(dir: &Path, model: &ModelSpec, train: &TrainSpec) -> PathBuf {
    let path = dir.join("spec.json");
    let text = serde_json::json!({"model": model, "train": train}).to_string();
    std::fs::write(&path, text).expect("write spec");
    path
}

/// A `train` run's stdout as each seed's records (a one-seed run's under `alone`), without the
/// fields that measure time or memory.
pub fn records_by_seed(stdout: &[u8], alone: u64) -> BTreeMap<u64, Vec<serde_json::Value>> {
    let mut records = BTreeMap::<u64, Vec<serde_json::Value>>::new();
    for line in String::from_utf8_lossy(stdout).lines() {
        let mut record: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
        let object = record.as_object_mut().expect("an object");
        for timing in ["seconds", "samples_per_second", "peak_rss_bytes"] {
            object.remove(timing);
        }
        let seed = object.remove("seed").and_then(|seed| seed.as_u64());
        records
            .entry(seed.unwrap_or(alone))
            .or_default()
            .push(record);
    }
    records
}
