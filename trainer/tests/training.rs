//! Training on real data from `../shared/data` (found through `RA_TEST_DATA`), determinism,
//! save → load, parameter counts against ra-spec, and the binary's protocol and refusals.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::Module;
use burn::tensor::Device;
use ra_integration_tests::{skip_or_fail, test_data_dir};
use ra_prepared::{
    ManifestDraft, Normalization, PreparedDataset, SplitData, Verify, XData, write_prepared,
};
use ra_spec::{
    Activation, Budget, InputSpec, Layer, ModelSpec, Optimizer, PoolKind, SkipConnection, TrainSpec,
};
use ra_trainer::metrics::EpochRecord;
use ra_trainer::train::{load, predict};
use ra_trainer::{Network, Reporter, RunConfig, train};

struct Quiet;

impl Reporter for Quiet {
    fn epoch(&mut self, _: &EpochRecord) {}
    fn log(&mut self, _: &str) {}
}

/// The shared datasets folder, or a loud skip (a failure under RA_REQUIRE_TEST_DEPS=1).
fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = test_data_dir();
    if dir.is_none() {
        skip_or_fail(
            test,
            "the shared datasets folder is missing (set RA_TEST_DATA)",
        );
    }
    dir
}

/// scikit-learn's digits (8×8, 1797 samples) as a tabular prepared dataset, 80/20 split.
fn prepared_digits(root: &Path) -> Option<PreparedDataset> {
    let data = shared_data("trainer digits tests")?;
    let mut text = String::new();
    let file = std::fs::File::open(data.join("digits/digits.csv.gz")).expect("digits.csv.gz");
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("gunzip");
    let rows: Vec<Vec<f32>> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split(',')
                .map(|v| v.trim().parse::<f32>().expect("number"))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 1797);
    let (mut train_x, mut train_y, mut val_x, mut val_y) = (vec![], vec![], vec![], vec![]);
    for (index, row) in rows.iter().enumerate() {
        let (features, label) = row.split_at(64);
        if index % 5 == 0 {
            val_x.extend_from_slice(features);
            val_y.push(label[0] as i64);
        } else {
            train_x.extend_from_slice(features);
            train_y.push(label[0] as i64);
        }
    }
    let n = train_y.len() as f64;
    let mean: Vec<f64> = (0..64)
        .map(|f| {
            train_x
                .iter()
                .skip(f)
                .step_by(64)
                .map(|v| f64::from(*v))
                .sum::<f64>()
                / n
        })
        .collect();
    let std: Vec<f64> = (0..64)
        .map(|f| {
            let variance = train_x
                .iter()
                .skip(f)
                .step_by(64)
                .map(|v| (f64::from(*v) - mean[f]).powi(2))
                .sum::<f64>()
                / n;
            if variance > 0.0 { variance.sqrt() } else { 1.0 }
        })
        .collect();
    let draft = ManifestDraft {
        dataset: "digits".into(),
        input: InputSpec::Tabular { features: 64 },
        class_names: (0..10).map(|d| d.to_string()).collect(),
        normalization: Normalization { mean, std },
        source_checksums: BTreeMap::from([(
            "digits.csv.gz".to_owned(),
            "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22".to_owned(),
        )]),
        checksums_verified: false,
        options: serde_json::json!({"val_every": 5}),
        created_at: "2026-11-26T00:00:00Z".into(),
    };
    let splits = vec![
        SplitData {
            name: "train".into(),
            x: XData::F32(train_x),
            y: train_y,
        },
        SplitData {
            name: "val".into(),
            x: XData::F32(val_x),
            y: val_y,
        },
    ];
    Some(write_prepared(root, "digits-test", draft, splits).expect("prepare digits"))
}

/// Reads an IDX file (big-endian magic and dimensions, then u8 data) from a gzip.
fn read_idx(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("idx file"))
        .read_to_end(&mut bytes)
        .expect("gunzip");
    let word = |at: usize| {
        u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
    };
    let rank = bytes[3] as usize;
    let dims: Vec<usize> = (0..rank).map(|i| word(4 + 4 * i)).collect();
    let data = bytes[4 + 4 * rank..].to_vec();
    assert_eq!(
        data.len(),
        dims.iter().product::<usize>(),
        "{}",
        path.display()
    );
    (dims, data)
}

/// The MNIST test set (10,000 images) split 8,000 train / 2,000 val, pixels normalised with the
/// train split's mean and standard deviation.
fn prepared_mnist_test_set(root: &Path) -> Option<PreparedDataset> {
    let data = shared_data("trainer MNIST test")?;
    let (dims, pixels) = read_idx(&data.join("mnist/t10k-images-idx3-ubyte.gz"));
    let (_, labels) = read_idx(&data.join("mnist/t10k-labels-idx1-ubyte.gz"));
    assert_eq!(dims, [10_000, 28, 28]);
    let side = 28 * 28;
    let cut = 8_000;
    let train_pixels = &pixels[..cut * side];
    let mean = train_pixels.iter().map(|p| f64::from(*p)).sum::<f64>() / train_pixels.len() as f64;
    let variance = train_pixels
        .iter()
        .map(|p| (f64::from(*p) - mean).powi(2))
        .sum::<f64>()
        / train_pixels.len() as f64;
    let draft = ManifestDraft {
        dataset: "mnist".into(),
        input: InputSpec::Image {
            channels: 1,
            height: 28,
            width: 28,
        },
        class_names: (0..10).map(|d| d.to_string()).collect(),
        normalization: Normalization {
            mean: vec![mean],
            std: vec![variance.sqrt()],
        },
        source_checksums: BTreeMap::new(),
        checksums_verified: false,
        options: serde_json::json!({"source": "t10k only", "train": cut}),
        created_at: "2026-11-26T00:00:00Z".into(),
    };
    let labels: Vec<i64> = labels.iter().map(|l| i64::from(*l)).collect();
    let splits = vec![
        SplitData {
            name: "train".into(),
            x: XData::U8(train_pixels.to_vec()),
            y: labels[..cut].to_vec(),
        },
        SplitData {
            name: "val".into(),
            x: XData::U8(pixels[cut * side..].to_vec()),
            y: labels[cut..].to_vec(),
        },
    ];
    Some(write_prepared(root, "mnist-t10k-test", draft, splits).expect("prepare mnist"))
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

fn linear(out_features: u32) -> Layer {
    Layer::Linear {
        out_features,
        bias: true,
        in_features: 0,
    }
}

fn relu() -> Layer {
    Layer::Activation {
        function: Activation::Relu,
    }
}

fn digits_mlp() -> ModelSpec {
    ModelSpec {
        name: "digits-mlp".into(),
        input: InputSpec::Tabular { features: 64 },
        num_classes: 10,
        layers: vec![
            linear(128),
            relu(),
            Layer::Dropout { probability: 0.1 },
            linear(10),
        ],
    }
}

fn adam(epochs: u32) -> TrainSpec {
    TrainSpec {
        learning_rate: 2e-3,
        batch_size: 32,
        epochs,
        ..TrainSpec::default()
    }
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
    model.layers.insert(
        1,
        Layer::BatchNorm {
            epsilon: None,
            momentum: None,
        },
    );
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

fn conv(out_channels: u32, kernel_size: u32, stride: u32, padding: u32) -> Layer {
    Layer::Conv2d {
        out_channels,
        kernel_size,
        stride,
        padding,
        bias: true,
        in_channels: 0,
    }
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
                conv(16, 3, 1, 1),
                relu(),
                Layer::Pool2d {
                    pool: PoolKind::Max,
                    kernel_size: 2,
                    stride: None,
                    padding: 0,
                },
                conv(32, 3, 1, 1),
                relu(),
                Layer::Pool2d {
                    pool: PoolKind::Average,
                    kernel_size: 2,
                    stride: None,
                    padding: 0,
                },
                Layer::Flatten,
                linear(128),
                relu(),
                linear(10),
            ],
        },
        ModelSpec {
            name: "resnet".into(),
            input: image.clone(),
            num_classes: 5,
            layers: vec![
                conv(8, 3, 1, 1),
                Layer::BatchNorm {
                    epsilon: None,
                    momentum: None,
                },
                Layer::Residual {
                    layers: vec![
                        conv(16, 3, 2, 1),
                        Layer::BatchNorm {
                            epsilon: None,
                            momentum: None,
                        },
                        relu(),
                        conv(16, 3, 1, 1),
                    ],
                    skip: SkipConnection::Projection,
                    post_activation: Some(Activation::Relu),
                },
                Layer::Residual {
                    layers: vec![conv(16, 3, 1, 1), relu()],
                    skip: SkipConnection::Identity,
                    post_activation: None,
                },
                Layer::GlobalAvgPool,
                linear(5),
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
                    layers: vec![linear(32), relu()],
                    skip: SkipConnection::Projection,
                    post_activation: None,
                },
                Layer::SequenceMeanPool,
                Layer::BatchNorm {
                    epsilon: None,
                    momentum: None,
                },
                linear(2),
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

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ra-trainer"))
}

fn write_spec(dir: &Path, model: &ModelSpec, train: &TrainSpec) -> PathBuf {
    let path = dir.join("spec.json");
    let text = serde_json::json!({"model": model, "train": train}).to_string();
    std::fs::write(&path, text).expect("write spec");
    path
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

    let train_file = dataset.dir().join("train.safetensors");
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
