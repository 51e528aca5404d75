//! Preparing the real datasets of `../shared/data` (found through `RA_TEST_DATA`), the cache's
//! verification, Python's view of the files, and malformed originals and options refused with
//! the file and the rule.

use std::process::Command;

mod common;

use common::{gzip, idx, message, write};
use dataset_svc::{PrepareOptions, prepare, sources};
use ra_prepared::{PreparedDataset, Verify};
use ra_spec::InputSpec;
use ra_test_support::{shared_data_or_skip, skip_or_fail};

fn split_sizes(dataset: &PreparedDataset) -> Vec<(String, u64)> {
    dataset
        .manifest()
        .splits
        .iter()
        .map(|s| (s.name.clone(), s.num_samples))
        .collect()
}

fn sizes(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected
        .iter()
        .map(|(n, c)| ((*n).to_owned(), *c))
        .collect()
}

#[test]
fn digits_split_stratified_and_a_cache_hit_is_verified_and_a_damaged_entry_rebuilt() {
    let Some(data) = shared_data_or_skip("dataset-svc digits") else {
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let raw = sources::digits(&data.join("digits")).expect("digits");
    assert_eq!(raw.train.labels.len(), 1797);
    assert_eq!(
        raw.source_checksums["digits.csv.gz"],
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
    );
    let options = PrepareOptions {
        val_fraction: 0.2,
        test_fraction: 0.1,
        ..PrepareOptions::default()
    };
    let dataset = prepare(&raw, &options, cache.path()).expect("prepare");
    assert_eq!(
        split_sizes(&dataset),
        sizes(&[("train", 1258), ("val", 359), ("test", 180)])
    );
    assert_eq!(
        dataset.manifest().input,
        InputSpec::Tabular { features: 64 }
    );
    // Every class keeps its share in val: 1797 samples, 10 classes of 174-183 → 35 or 36 each.
    let val_counts = &dataset.manifest().split("val").expect("val").class_counts;
    assert!(
        val_counts.iter().all(|c| (35..=37).contains(c)),
        "{val_counts:?}"
    );

    let again = prepare(&raw, &options, cache.path()).expect("cache hit");
    assert_eq!(again.manifest(), dataset.manifest());
    let reseeded = PrepareOptions {
        seed: 9,
        ..options.clone()
    };
    let other = prepare(&raw, &reseeded, cache.path()).expect("another seed");
    assert_ne!(other.manifest().prepared_id, dataset.manifest().prepared_id);

    let val_file = dataset
        .dir()
        .join(&dataset.manifest().split("val").expect("val").file_name);
    let mut bytes = std::fs::read(&val_file).expect("read val");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&val_file, bytes).expect("damage val");
    assert!(PreparedDataset::open(dataset.dir(), Verify::Checksums).is_err());
    let rebuilt = prepare(&raw, &options, cache.path()).expect("rebuilt");
    PreparedDataset::open(rebuilt.dir(), Verify::Checksums).expect("whole again");
}

#[test]
fn mnist_partial_copy_cifar_subset_titanic_and_sst2_prepare_from_their_originals() {
    let Some(data) = shared_data_or_skip("dataset-svc originals") else {
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");

    let mnist = sources::mnist(&data.join("mnist")).expect("mnist t10k");
    assert!(mnist.test.is_none(), "only the t10k files are present");
    let mnist = prepare(&mnist, &PrepareOptions::default(), cache.path()).expect("mnist");
    assert_eq!(
        split_sizes(&mnist),
        sizes(&[("train", 8000), ("val", 2000)])
    );
    let mean = mnist.manifest().normalization.mean[0];
    assert!((30.0..36.0).contains(&mean), "MNIST pixel mean {mean}");

    let cifar = sources::cifar10(
        &data.join("cifar10_subset"),
        &["data_batch_1_first2000.bin"],
        &["test_batch_first1000.bin"],
    )
    .expect("cifar subset");
    assert_eq!(cifar.train.labels[..4], [6, 9, 9, 4]);
    assert_eq!(cifar.test.as_ref().expect("test").labels[..4], [3, 8, 8, 0]);
    let cifar = prepare(&cifar, &PrepareOptions::default(), cache.path()).expect("cifar");
    assert_eq!(
        split_sizes(&cifar),
        sizes(&[("train", 1600), ("val", 400), ("test", 1000)])
    );
    assert_eq!(cifar.manifest().normalization.mean.len(), 3);
    let test = cifar.split("test").expect("test split");
    let mut first = vec![0f32; 3 * 32 * 32];
    test.sample_f32(0, &mut first);
    assert_eq!(&first[..5], &[158.0, 159.0, 165.0, 166.0, 160.0]);

    let titanic = sources::titanic(&data.join("titanic")).expect("titanic");
    let Some(dataset_svc::Samples::Table { columns, .. }) = Some(&titanic.train.samples) else {
        unreachable!()
    };
    assert_eq!(
        columns,
        &["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
    );
    let titanic = prepare(&titanic, &PrepareOptions::default(), cache.path()).expect("titanic");
    let counts = |name: &str| {
        titanic
            .manifest()
            .split(name)
            .expect("split")
            .class_counts
            .clone()
    };
    assert_eq!(
        counts("train")
            .iter()
            .zip(counts("val"))
            .map(|(a, b)| a + b)
            .collect::<Vec<_>>(),
        [549, 342]
    );
    // Pclass, Sex ×2, Age, Age=missing, SibSp, Parch, Fare, Embarked ×3.
    assert_eq!(
        titanic.manifest().input,
        InputSpec::Tabular { features: 11 }
    );

    let sst2 = sources::sst2(&data.join("sst2")).expect("sst2");
    assert_eq!(sst2.train.labels.len(), 67_349);
    assert_eq!(sst2.test.as_ref().expect("dev").labels.len(), 872);
    let options = PrepareOptions {
        subset_size: Some(20_000),
        val_fraction: 0.1,
        sequence_length: 48,
        ..PrepareOptions::default()
    };
    let sst2 = prepare(&sst2, &options, cache.path()).expect("sst2");
    assert_eq!(
        split_sizes(&sst2),
        sizes(&[("train", 18_000), ("val", 2_000), ("test", 872)])
    );
    let InputSpec::Text {
        vocab_size,
        sequence_length,
    } = sst2.manifest().input
    else {
        panic!("text input expected")
    };
    assert_eq!(sequence_length, 48);
    assert!(
        (5_000..30_000).contains(&vocab_size),
        "vocabulary {vocab_size}"
    );
}

/// The interpreter for the Python check: `RA_PYTHON`, else `python3`.
fn python_with_safetensors() -> Option<String> {
    let python = std::env::var("RA_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import safetensors.numpy, numpy"])
        .output();
    match probe {
        Ok(output) if output.status.success() => Some(python),
        _ => {
            skip_or_fail(
                "prepared files read from Python",
                "no Python with the safetensors and numpy packages (set RA_PYTHON)",
            );
            None
        }
    }
}

#[test]
fn python_reads_the_prepared_files_with_the_safetensors_package() {
    let Some(data) = shared_data_or_skip("prepared files read from Python") else {
        return;
    };
    let Some(python) = python_with_safetensors() else {
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let raw = sources::digits(&data.join("digits")).expect("digits");
    let dataset = prepare(&raw, &PrepareOptions::default(), cache.path()).expect("prepare");
    let script = r#"
import json, sys
from safetensors.numpy import load_file
root = sys.argv[1]
manifest = json.load(open(root + "/manifest.json"))
out = {}
for split in manifest["splits"]:
    tensors = load_file(root + "/" + split["file_name"])
    out[split["name"]] = [list(tensors["x"].shape), str(tensors["x"].dtype), list(tensors["y"].shape), str(tensors["y"].dtype), float(tensors["x"][0][5])]
print(json.dumps(out))
"#;
    let output = Command::new(python)
        .args(["-c", script])
        .arg(dataset.dir())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("python printed JSON");
    let train = dataset.split("train").expect("train");
    let mut first = vec![0f32; 64];
    train.sample_f32(0, &mut first);
    assert_eq!(
        seen["train"],
        serde_json::json!([
            [train.len(), 64],
            "float32",
            [train.len()],
            "int64",
            first[5]
        ])
    );
    assert_eq!(
        seen["val"][0],
        serde_json::json!([dataset.split("val").expect("val").len(), 64])
    );
}

#[test]
fn malformed_originals_are_refused_with_the_file_and_the_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let images = "t10k-images-idx3-ubyte.gz";
    let labels = "t10k-labels-idx1-ubyte.gz";
    let good_labels = gzip(&idx([0, 0, 8, 1], &[2], 2));

    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    cases.push((
        "missing file",
        message(sources::mnist(d)),
        "put the original file t10k-images-idx3-ubyte.gz into",
    ));

    write(d, images, &gzip(&idx([8, 0, 8, 3], &[2, 2, 2], 8)));
    write(d, labels, &good_labels);
    cases.push(("bad IDX magic", message(sources::mnist(d)), "bad magic"));

    write(d, images, &gzip(&idx([0, 0, 8, 3], &[2, 2, 2], 7)));
    cases.push((
        "truncated IDX",
        message(sources::mnist(d)),
        "need 8 data bytes, the file has 7",
    ));

    write(d, images, &gzip(&idx([0, 0, 0x0d, 3], &[2, 2, 2], 8)));
    cases.push(("float IDX", message(sources::mnist(d)), "element type 0x0d"));

    write(d, images, &gzip(&idx([0, 0, 8, 3], &[3, 2, 2], 12)));
    cases.push((
        "images and labels disagree",
        message(sources::mnist(d)),
        "do not pair up",
    ));

    write(d, images, b"not gzip at all");
    cases.push((
        "bad gzip",
        message(sources::mnist(d)),
        "not a valid gzip file",
    ));

    write(d, "batch.bin", &vec![0u8; 3073 * 2 - 1]);
    cases.push((
        "CIFAR record length",
        message(sources::cifar10(d, &["batch.bin"], &[])),
        "not a whole number of 3073-byte records",
    ));

    let mut bad_label = vec![0u8; 3073];
    bad_label[0] = 10;
    write(d, "batch.bin", &bad_label);
    cases.push((
        "CIFAR label",
        message(sources::cifar10(d, &["batch.bin"], &[])),
        "record 0 has label 10",
    ));

    write(d, "train.csv", b"PassengerId,Survived,Pclass\n1,0,3\n2,1\n");
    cases.push((
        "ragged CSV",
        message(sources::titanic(d)),
        "line 3 has 2 fields, the header 3",
    ));

    write(d, "train.csv", b"PassengerId,Pclass\n1,3\n");
    cases.push((
        "label column missing",
        message(sources::titanic(d)),
        "no \"Survived\" column",
    ));

    write(d, "train.csv", b"PassengerId,Survived,Pclass\n1,7,3\n");
    cases.push((
        "unknown label",
        message(sources::titanic(d)),
        "unknown label \"7\"",
    ));

    write(d, "train.tsv", b"sentence\tlabel\ngood film\t1\n");
    write(d, "dev.tsv", b"sentence\tlabel\nbad film\tpositive\n");
    cases.push((
        "SST-2 label",
        message(sources::sst2(d)),
        "label \"positive\", not one of [\"0\", \"1\"]",
    ));

    let mut failures = Vec::new();
    for (case, got, expected) in &cases {
        if !got.contains(expected) {
            failures.push(format!("{case}: expected …{expected}…, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn impossible_options_are_refused_and_nothing_is_written() {
    let Some(data) = shared_data_or_skip("dataset-svc bad options") else {
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let raw = sources::digits(&data.join("digits")).expect("digits");
    let cases = [
        (
            PrepareOptions {
                subset_size: Some(5000),
                ..PrepareOptions::default()
            },
            "subset_size: 5000 samples requested; digits has 1797",
        ),
        (
            PrepareOptions {
                subset_size: Some(10),
                ..PrepareOptions::default()
            },
            "at least two per class (20)",
        ),
        (
            PrepareOptions {
                val_fraction: 0.6,
                test_fraction: 0.4,
                ..PrepareOptions::default()
            },
            "must sum below 1",
        ),
        (
            PrepareOptions {
                val_fraction: 0.0,
                ..PrepareOptions::default()
            },
            "val_fraction: 0 must be above 0",
        ),
        (
            PrepareOptions {
                val_fraction: f64::NAN,
                ..PrepareOptions::default()
            },
            "val_fraction: NaN",
        ),
        (
            PrepareOptions {
                test_fraction: -0.1,
                ..PrepareOptions::default()
            },
            "test_fraction: -0.1 must be in [0, 1)",
        ),
    ];
    let mut tiny = raw.clone();
    tiny.train = tiny.train.select(&[0, 1, 2]);
    let mut mislabelled = raw.clone();
    mislabelled.train.labels[7] = 10;
    let mut short = raw.clone();
    short.train.labels.pop();
    for (dataset, expected) in [
        (
            tiny,
            "digits has 3 train samples; at least two per class (20)",
        ),
        (mislabelled, "digits train: label 10 outside 0..10"),
        (short, "digits train: 1796 labels for 1797 samples"),
    ] {
        let got = message(prepare(&dataset, &PrepareOptions::default(), cache.path()));
        assert!(got.contains(expected), "expected …{expected}…, got {got}");
    }
    for (options, expected) in cases {
        let got = message(prepare(&raw, &options, cache.path()));
        assert!(got.contains(expected), "expected …{expected}…, got {got}");
    }
    let entries = std::fs::read_dir(cache.path()).map_or(0, Iterator::count);
    assert_eq!(entries, 0, "the cache holds nothing after refusals");
}

#[test]
fn the_catalog_verifies_pinned_checksums_and_refuses_an_altered_copy() {
    let Some(data) = shared_data_or_skip("dataset-svc catalog") else {
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let digits = dataset_svc::catalog::lookup("digits").expect("in the catalog");
    let raw = digits
        .load(&data.join("digits"), false)
        .expect("canonical digits");
    assert!(raw.checksums_verified);
    let prepared = prepare(&raw, &PrepareOptions::default(), cache.path()).expect("prepare");
    assert!(prepared.manifest().checksums_verified);

    // The shared MNIST copy holds the canonical t10k files: verified.
    let mnist = dataset_svc::catalog::lookup("mnist").expect("in the catalog");
    assert!(
        mnist
            .load(&data.join("mnist"), false)
            .expect("t10k")
            .checksums_verified
    );
    // Its SST-2 train file is named train_full.tsv, which the catalog does not pin: unverified.
    let sst2 = dataset_svc::catalog::lookup("sst2").expect("in the catalog");
    assert!(
        !sst2
            .load(&data.join("sst2"), false)
            .expect("sst2")
            .checksums_verified
    );

    // The same rows compressed again: other bytes, so another sha256.
    let copy = tempfile::tempdir().expect("tempdir");
    let path = data.join("digits/digits.csv.gz");
    let (stored, _) = dataset_svc::formats::read_stored(&path).expect("read digits");
    let rows = dataset_svc::formats::decompressed(&path, stored).expect("gunzip digits");
    write(copy.path(), "digits.csv.gz", &gzip(&rows));
    let error = digits
        .load(copy.path(), false)
        .expect_err("altered copy")
        .to_string();
    assert!(
        error.contains("the canonical file 09f66e6d") && error.contains("checksum checks off"),
        "{error}"
    );
    let unchecked = digits.load(copy.path(), true).expect("checks off");
    assert!(!unchecked.checksums_verified);
    assert_eq!(unchecked.train, raw.train);
}
