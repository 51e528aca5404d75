//! Training on real data from `../shared/data` (found through `RA_TEST_DATA`), determinism,
//! save → load, parameter counts against ra-spec, and the binary's protocol and refusals.

use std::path::Path;
use std::process::Command;

use burn::module::Module;
use burn::tensor::Device;
use dataset_svc::{PrepareOptions, sources};
use ra_prepared::{PreparedDataset, Verify};
use ra_spec::{
    Activation, Budget, InputSpec, Layer, ModelSpec, Optimizer, PoolKind, SkipConnection, TrainSpec,
};
use ra_trainer::train::{load, predict};
use ra_trainer::{Network, RunConfig, train};

mod common;

use common::{Quiet, adam, digits_mlp, prepared, prepared_digits, trainer, write_spec};

/// The MNIST test set (10,000 images; the shared copy has no train images) split 8,000 train /
/// 2,000 val.
fn prepared_mnist_test_set(cache: &Path) -> Option<PreparedDataset> {
    prepared(
        "trainer MNIST test",
        "mnist",
        sources::mnist,
        &PrepareOptions::default(),
        cache,
    )
}

#[test]
fn the_reference_cnn_on_mnist_reaches_95_percent_in_two_epochs() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(dataset) = prepared_mnist_test_set(root.path()) else {
        return;
    };
    let train_spec = TrainSpec {
        learning_rate: 1e-3,
        batch_size: 64,
        epochs: 2,
        ..TrainSpec::default()
    };
    let config = RunConfig {
        model: ra_trainer::bench::reference_cnn(),
        train: train_spec,
        seed: 1,
        device: Device::flex(),
        output: None,
    };
    let outcome = train(&dataset, &config, &mut Quiet).expect("train");
    let accuracy = outcome.final_record.val_accuracy;
    assert_eq!(outcome.epochs.len(), 2);
    assert!(
        accuracy >= 0.95,
        "val accuracy {accuracy:.4} < 0.95 after 2 epochs"
    );
}

#[test]
fn an_mlp_on_digits_reaches_95_percent() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(dataset) = prepared_digits(root.path()) else {
        return;
    };
    let config = RunConfig {
        model: digits_mlp(),
        train: adam(25),
        seed: 1,
        device: Device::flex(),
        output: None,
    };
    let outcome = train(&dataset, &config, &mut Quiet).expect("train");
    let accuracy = outcome.final_record.val_accuracy;
    assert!(accuracy >= 0.95, "val accuracy {accuracy:.4} < 0.95");
    assert!(
        outcome.epochs.first().map(|e| e.train_loss) > outcome.epochs.last().map(|e| e.train_loss)
    );
}

/// Each run in its own process: Burn's device seed is process-wide, so runs that share a
/// process (as tests do) would draw from one generator.
#[test]
fn the_same_seed_gives_identical_metrics_and_another_seed_does_not() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(dataset) = prepared_digits(root.path()) else {
        return;
    };
    let spec = write_spec(root.path(), &digits_mlp(), &adam(3));
    let run = |seed: &str| {
        let output = trainer()
            .args(["train", "--threads", "2", "--seed", seed, "--spec"])
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
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                let record: serde_json::Value = serde_json::from_str(line).expect("JSON record");
                (
                    record["train_loss"].to_string(),
                    record["val_loss"].to_string(),
                    record["val_accuracy"].to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = run("7");
    assert_eq!(first.len(), 4);
    assert_eq!(
        first,
        run("7"),
        "same spec, data and seed: identical metrics"
    );
    assert_ne!(first, run("8"), "another seed: other metrics");
}

#[test]
fn saved_weights_load_back_to_identical_predictions() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(dataset) = prepared_digits(root.path()) else {
        return;
    };
    let output = root.path().join("run");
    let mut model = digits_mlp();
    model.layers.insert(1, Layer::batch_norm());
    let train_spec = TrainSpec {
        optimizer: Optimizer::Sgd {
            momentum: 0.9,
            nesterov: true,
        },
        ..adam(2)
    };
    let config = RunConfig {
        model,
        train: train_spec,
        seed: 3,
        device: Device::flex(),
        output: Some(output.clone()),
    };
    let outcome = train(&dataset, &config, &mut Quiet).expect("train");
    let pipeline = ra_trainer::data::Pipeline::new(dataset.manifest(), &config.model.input, 10)
        .expect("pipeline");
    let val = dataset.split("val").expect("val");
    let (before, _) =
        predict(&outcome.model, &pipeline, val, None, &Device::flex()).expect("predict");
    let (spec, loaded) = load(&output, &Device::flex()).expect("load");
    assert_eq!(spec, config.model);
    let (after, _) = predict(&loaded, &pipeline, val, None, &Device::flex()).expect("predict");
    assert_eq!(before, after);
}

#[test]
fn parameter_counts_agree_with_the_built_modules() {
    let image = InputSpec::Image {
        channels: 3,
        height: 16,
        width: 16,
    };
    let specs = vec![
        ModelSpec {
            name: "reference-cnn".into(),
            input: InputSpec::Image {
                channels: 1,
                height: 28,
                width: 28,
            },
            num_classes: 10,
            layers: vec![
                Layer::conv2d(16, 3, 1, 1),
                Layer::relu(),
                Layer::Pool2d {
                    pool: PoolKind::Max,
                    kernel_size: 2,
                    stride: None,
                    padding: 0,
                },
                Layer::conv2d(32, 3, 1, 1),
                Layer::relu(),
                Layer::Pool2d {
                    pool: PoolKind::Average,
                    kernel_size: 2,
                    stride: None,
                    padding: 0,
                },
                Layer::Flatten,
                Layer::linear(128),
                Layer::relu(),
                Layer::linear(10),
            ],
        },
        ModelSpec {
            name: "resnet".into(),
            input: image.clone(),
            num_classes: 5,
            layers: vec![
                Layer::conv2d(8, 3, 1, 1),
                Layer::batch_norm(),
                Layer::Residual {
                    layers: vec![
                        Layer::conv2d(16, 3, 2, 1),
                        Layer::batch_norm(),
                        Layer::relu(),
                        Layer::conv2d(16, 3, 1, 1),
                    ],
                    skip: SkipConnection::Projection,
                    post_activation: Some(Activation::Relu),
                },
                Layer::Residual {
                    layers: vec![Layer::conv2d(16, 3, 1, 1), Layer::relu()],
                    skip: SkipConnection::Identity,
                    post_activation: None,
                },
                Layer::GlobalAvgPool,
                Layer::linear(5),
            ],
        },
        ModelSpec {
            name: "text".into(),
            input: InputSpec::Text {
                vocab_size: 300,
                sequence_length: 12,
            },
            num_classes: 2,
            layers: vec![
                Layer::Embedding { embedding_dim: 16 },
                Layer::Conv1d {
                    out_channels: 24,
                    kernel_size: 3,
                    stride: 1,
                    padding: 1,
                    bias: true,
                    in_channels: 0,
                },
                Layer::Activation {
                    function: Activation::Gelu,
                },
                Layer::LayerNorm { epsilon: None },
                Layer::Residual {
                    layers: vec![Layer::linear(32), Layer::relu()],
                    skip: SkipConnection::Projection,
                    post_activation: None,
                },
                Layer::SequenceMeanPool,
                Layer::batch_norm(),
                Layer::linear(2),
            ],
        },
    ];
    for spec in specs {
        let report = ra_spec::validate_model(&spec, &Budget::default()).expect("valid");
        let network = Network::build(&spec, &Device::flex()).expect("build");
        assert_eq!(
            network.num_params() as u64,
            report.parameters,
            "{}",
            spec.name
        );
    }
}

#[test]
fn the_binary_speaks_the_metrics_protocol_and_refuses_corrupt_data() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(dataset) = prepared_digits(root.path()) else {
        return;
    };
    let spec = write_spec(root.path(), &digits_mlp(), &adam(2));
    let output = trainer()
        .args(["train", "--seed", "4", "--threads", "2", "--spec"])
        .arg(&spec)
        .arg("--data")
        .arg(dataset.dir())
        .arg("--output")
        .arg(root.path().join("weights"))
        .output()
        .expect("run ra-trainer");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every stdout line is a JSON record"))
        .collect();
    assert_eq!(records.len(), 3, "two epochs and a final record");
    assert_eq!(records[0]["event"], "epoch");
    assert_eq!(records[1]["epoch"], 2);
    for key in [
        "train_loss",
        "val_loss",
        "val_accuracy",
        "seconds",
        "samples_per_second",
    ] {
        assert!(records[0][key].is_number(), "epoch record lacks {key}");
    }
    assert_eq!(records[2]["event"], "final");
    assert_eq!(records[2]["parameters"], 64 * 128 + 128 + 128 * 10 + 10);
    assert!(records[2]["peak_rss_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(root.path().join("weights/weights.safetensors").is_file());

    let train_file = dataset
        .dir()
        .join(&dataset.manifest().split("train").expect("train").file_name);
    let mut bytes = std::fs::read(&train_file).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&train_file, bytes).expect("corrupt");
    PreparedDataset::open(dataset.dir(), Verify::Sizes).expect("a flipped byte keeps the size");
    let output = trainer()
        .args(["train", "--verify-checksums", "--spec"])
        .arg(&spec)
        .arg("--data")
        .arg(dataset.dir())
        .output()
        .expect("run ra-trainer");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sha256") && stderr.contains("train.safetensors"),
        "{stderr}"
    );
}

#[test]
fn validate_prints_the_table_or_the_refusal() {
    let root = tempfile::tempdir().expect("tempdir");
    let spec = write_spec(root.path(), &digits_mlp(), &adam(1));
    let output = trainer()
        .arg("validate")
        .arg("--spec")
        .arg(&spec)
        .output()
        .expect("run");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("8320") && stdout.contains("total: 9610 parameters"),
        "{stdout}"
    );

    let mut bad = digits_mlp();
    bad.layers.insert(0, Layer::Flatten);
    bad.layers.insert(
        1,
        Layer::Pool2d {
            pool: PoolKind::Max,
            kernel_size: 2,
            stride: None,
            padding: 0,
        },
    );
    let spec = write_spec(root.path(), &bad, &adam(1));
    let output = trainer()
        .arg("validate")
        .arg("--spec")
        .arg(&spec)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("layer 1 pool2d: expects a C×H×W image, gets a vector of 64"),
        "{stderr}"
    );

    let spec = write_spec(
        root.path(),
        &digits_mlp(),
        &TrainSpec {
            learning_rate: -1.0,
            ..adam(1)
        },
    );
    let output = trainer()
        .arg("validate")
        .arg("--spec")
        .arg(&spec)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("train.learning_rate"));
}

/// `RA_PYTHON` (else `python3`) when it has torch; a loud skip otherwise.
fn python_with_torch(test: &str) -> Option<String> {
    let python = std::env::var("RA_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import torch"]).output();
    if probe.is_ok_and(|output| output.status.success()) {
        return Some(python);
    }
    ra_test_support::skip_or_fail(test, "no Python with torch (set RA_PYTHON)");
    None
}

#[test]
fn bench_prints_every_row_with_ratios_against_pytorch() {
    let Some(python) = python_with_torch("ra-trainer bench") else {
        return;
    };
    let output = trainer()
        .args(["bench", "--steps", "2", "--warmup", "1", "--repeats", "2"])
        .args(["--python", &python, "--torch-script"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../bench/torch_reference.py"
        ))
        .output()
        .expect("run ra-trainer bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for row in [
        "reference-cnn",
        "mlp-784-256-10",
        "pytorch",
        "input pipeline",
    ] {
        assert!(stdout.contains(row), "no {row} row in\n{stdout}");
    }
    assert!(stdout.contains("PyTorch 2."), "{stdout}");
    assert!(
        !stdout.contains("n/a"),
        "every row has its ratio:\n{stdout}"
    );
}
