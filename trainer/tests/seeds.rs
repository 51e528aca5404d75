//! Several seeds in one trainer process (`train --seeds`): each seed's records are exactly those
//! of the same seed trained alone, whatever the thread split; records carry their seed; weights
//! go to one folder per seed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{adam, records_by_seed, trainer, write_spec};
use dataset_svc::config::DataSettings;
use dataset_svc::service::{Datasets, Origin};
use dataset_svc::{DatasetConfig, PrepareOptions};
use ra_prepared::PreparedDataset;
use ra_spec::{Layer, ModelSpec};

/// 600 generated `shapes` images (offline), prepared through dataset-svc under `cache`.
fn shapes(cache: &Path) -> PreparedDataset {
    let datasets = Datasets::new(DataSettings {
        cache_dir: cache.to_path_buf(),
        ..DatasetConfig::default().data
    });
    let options = PrepareOptions {
        seed: 1,
        subset_size: Some(600),
        ..PrepareOptions::default()
    };
    datasets
        .prepare("shapes", &Origin::default(), &options, &mut |_| {})
        .expect("prepare shapes")
}

/// A CNN with every layer that draws random numbers or reduces across a batch: dropout, batch
/// norm, max pooling.
fn cnn(dataset: &PreparedDataset) -> ModelSpec {
    ModelSpec {
        name: "seeds-cnn".into(),
        input: dataset.manifest().input.clone(),
        num_classes: 5,
        layers: vec![
            Layer::conv2d(8, 3, 1, 1),
            Layer::batch_norm(),
            Layer::relu(),
            Layer::max_pool(2),
            Layer::Dropout { probability: 0.2 },
            Layer::Flatten,
            Layer::linear(32),
            Layer::relu(),
            Layer::Dropout { probability: 0.3 },
            Layer::linear(5),
        ],
    }
}

/// What a run printed: per seed, its records without the fields that measure time or memory.
type Records = BTreeMap<u64, Vec<serde_json::Value>>;

fn train(args: &[&str], spec: &Path, data: &Path, output: Option<&Path>) -> Records {
    let mut command = trainer();
    command
        .arg("train")
        .args(args)
        .arg("--spec")
        .arg(spec)
        .arg("--data")
        .arg(data);
    if let Some(output) = output {
        command.arg("--output").arg(output);
    }
    let output = command.output().expect("run ra-trainer");
    assert!(
        output.status.success(),
        "ra-trainer {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    records_by_seed(&output.stdout, u64::MAX)
}

#[test]
fn each_seed_of_a_multi_seed_run_matches_the_seed_run_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    let dataset = shapes(&root.path().join("cache"));
    let spec = write_spec(root.path(), &cnn(&dataset), &adam(2));
    let weights = root.path().join("weights");

    let together = train(
        &["--seeds", "3,5,9", "--threads", "2"],
        &spec,
        dataset.dir(),
        Some(&weights),
    );
    assert_eq!(together.keys().copied().collect::<Vec<_>>(), [3, 5, 9]);
    for (seed, records) in &together {
        let events: Vec<&str> = records.iter().filter_map(|r| r["event"].as_str()).collect();
        assert_eq!(events, ["epoch", "epoch", "final"], "seed {seed}");
        assert!(
            weights
                .join(format!("seed-{seed}/weights.safetensors"))
                .is_file(),
            "seed {seed}'s weights"
        );
    }
    assert_ne!(together[&3], together[&5], "other seeds, other metrics");

    // The same seeds again, split another way (three at once on three threads): identical.
    let again = train(
        &["--seeds", "9,3,5", "--threads", "3"],
        &spec,
        dataset.dir(),
        None,
    );
    assert_eq!(together, again);

    // Each seed alone, with one thread and with two: identical to its records in company.
    for seed in [3u64, 9] {
        for threads in ["1", "2"] {
            let alone = train(
                &["--seed", &seed.to_string(), "--threads", threads],
                &spec,
                dataset.dir(),
                None,
            );
            assert_eq!(
                alone[&u64::MAX],
                together[&seed],
                "seed {seed} alone on {threads} threads"
            );
        }
    }
}

#[test]
fn seed_and_seeds_cannot_both_be_given() {
    let output = trainer()
        .args([
            "train", "--seed", "1", "--seeds", "2,3", "--spec", "x", "--data", "y",
        ])
        .output()
        .expect("run ra-trainer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--seeds"), "{stderr}");
}
