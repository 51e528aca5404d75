//! The LibTorch backend (`--features tch`): training reaches the same bar as on flex, weights
//! trained on LibTorch load on flex with the same predictions, and the binary runs with
//! `--backend tch` (libtorch found through the rpath that build.rs records).

#![cfg(feature = "tch")]

use burn::tensor::Device;
use ra_trainer::backend::Backend;
use ra_trainer::train::{load, predict};
use ra_trainer::{RunConfig, train};

mod common;

use common::{Quiet, adam, digits_mlp, prepared_digits, records_by_seed, trainer, write_spec};

#[test]
fn an_mlp_trained_on_libtorch_reaches_95_percent_and_its_weights_load_on_flex() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(dataset) = prepared_digits(root.path()) else {
        return;
    };
    let tch = Backend::Tch.device().expect("built with tch");
    let output = root.path().join("run");
    let config = RunConfig {
        model: digits_mlp(),
        train: adam(25),
        seed: 1,
        device: tch.clone(),
        output: Some(output.clone()),
    };
    let outcome = train(&dataset, &config, &mut Quiet).expect("train on libtorch");
    let accuracy = outcome.final_record.val_accuracy;
    assert!(
        accuracy >= 0.95,
        "libtorch val accuracy {accuracy:.4} < 0.95"
    );

    let pipeline = ra_trainer::data::Pipeline::new(dataset.manifest(), &config.model.input, 10)
        .expect("pipeline");
    let val = dataset.split("val").expect("val");
    let (on_tch, _) = predict(&outcome.model, &pipeline, val, None, &tch).expect("predict");
    let (_, on_flex) = load(&output, &Device::flex()).expect("load on flex");
    let (from_flex, _) =
        predict(&on_flex, &pipeline, val, None, &Device::flex()).expect("predict on flex");
    let disagreements = on_tch
        .iter()
        .zip(&from_flex)
        .filter(|(a, b)| a != b)
        .count();
    // Float sums in another order may flip a near-tie, never more than a handful.
    assert!(
        disagreements <= 2,
        "{disagreements} of {} predictions differ between libtorch and flex",
        on_tch.len()
    );
}

#[test]
fn the_binary_trains_with_backend_tch() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(dataset) = prepared_digits(root.path()) else {
        return;
    };
    let spec = write_spec(root.path(), &digits_mlp(), &adam(2));
    let output = trainer()
        .args([
            "train",
            "--backend",
            "tch",
            "--threads",
            "2",
            "--seed",
            "3",
            "--spec",
        ])
        .arg(&spec)
        .arg("--data")
        .arg(dataset.dir())
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run ra-trainer");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(str::to_owned)
        .unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(&last).expect("final record");
    assert_eq!(record["event"], "final");
    assert!(
        record["val_accuracy"].as_f64().is_some_and(|a| a > 0.8),
        "{record}"
    );
}

#[test]
fn a_seed_trained_beside_others_on_libtorch_matches_it_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(dataset) = prepared_digits(root.path()) else {
        return;
    };
    // digits_mlp has a dropout layer: its masks must come from each seed's own stream.
    let spec = write_spec(root.path(), &digits_mlp(), &adam(2));
    // Each seed's records, without the fields that measure time or memory.
    let run = |seeds: &[&str]| -> std::collections::BTreeMap<u64, Vec<serde_json::Value>> {
        let output = trainer()
            .args(["train", "--backend", "tch", "--threads", "2"])
            .args(seeds)
            .arg("--spec")
            .arg(&spec)
            .arg("--data")
            .arg(dataset.dir())
            .output()
            .expect("run ra-trainer");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        records_by_seed(&output.stdout, 3)
    };
    let together = run(&["--seeds", "1,3"]);
    let alone = run(&["--seed", "3"]);
    assert_eq!(together.len(), 2);
    assert_eq!(together[&3].len(), 3, "two epochs and a final record");
    assert_eq!(together[&3], alone[&3]);
    assert_ne!(together[&1], together[&3]);
}
