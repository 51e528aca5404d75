//! Write → open round trips, and every kind of damage is detected with a clear message.

use std::collections::BTreeMap;
use std::path::Path;

use ra_prepared::{
    FORMAT_VERSION, ManifestDraft, Normalization, PreparedDataset, PreparedError, SplitData,
    Verify, XData, XDtype, content_id, write_prepared,
};
use ra_spec::InputSpec;

fn draft() -> ManifestDraft {
    ManifestDraft {
        dataset: "tiny-images".into(),
        input: InputSpec::Image {
            channels: 1,
            height: 2,
            width: 3,
        },
        class_names: vec!["zero".into(), "one".into(), "two".into()],
        normalization: Normalization {
            mean: vec![100.0],
            std: vec![50.0],
        },
        source_checksums: BTreeMap::from([("images.bin".to_owned(), "ab".repeat(32))]),
        checksums_verified: true,
        options: serde_json::json!({"seed": 7, "val_fraction": 0.25}),
        created_at: "2026-11-26T00:00:00Z".into(),
    }
}

fn split(name: &str, n: usize) -> SplitData {
    SplitData {
        name: name.into(),
        x: XData::U8((0..n * 6).map(|i| (i * 7 % 256) as u8).collect()),
        y: (0..n).map(|i| (i % 3) as i64).collect(),
    }
}

fn write(root: &Path) -> PreparedDataset {
    let id = content_id("tiny-images", &draft().source_checksums, &draft().options);
    write_prepared(
        root,
        &id,
        draft(),
        vec![split("train", 12), split("val", 4), split("test", 5)],
    )
    .expect("write")
}

#[test]
fn a_written_dataset_opens_with_its_samples_and_manifest() {
    let root = tempfile::tempdir().expect("tempdir");
    let written = write(root.path());
    let opened =
        PreparedDataset::open(written.dir(), Verify::Checksums).expect("open with checksums");
    let manifest = opened.manifest();
    assert_eq!(manifest.format_version, FORMAT_VERSION);
    assert_eq!(manifest.x_dtype, XDtype::U8);
    assert_eq!(
        manifest.split("train").map(|s| s.class_counts.clone()),
        Some(vec![4, 4, 4])
    );
    assert_eq!(manifest.imbalance_ratio, 1.0);
    let train = opened.split("train").expect("train");
    assert_eq!((train.len(), train.sample_len()), (12, 6));
    let mut sample = vec![0f32; 6];
    train.sample_f32(2, &mut sample);
    let expected: Vec<f32> = (12..18).map(|i| (i * 7 % 256) as f32).collect();
    assert_eq!(sample, expected);
    assert_eq!(train.labels()[..4], [0, 1, 2, 0]);
    assert!(opened.has_split("test"));
    let missing = opened.split("holdout").expect_err("no such split");
    assert!(
        missing.to_string().contains("test, train, val"),
        "{missing}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary directory is left behind"
    );
}

#[test]
fn content_ids_are_deterministic_and_option_sensitive() {
    let a = content_id(
        "mnist",
        &draft().source_checksums,
        &serde_json::json!({"seed": 1}),
    );
    let b = content_id(
        "mnist",
        &draft().source_checksums,
        &serde_json::json!({"seed": 1}),
    );
    let c = content_id(
        "mnist",
        &draft().source_checksums,
        &serde_json::json!({"seed": 2}),
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.starts_with("mnist-"));
}

#[test]
fn damage_is_detected_and_named() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = write(root.path()).dir().to_path_buf();
    let train = dir.join("train.safetensors");
    let original = std::fs::read(&train).expect("read");

    // One flipped byte: sizes still agree, the checksum does not.
    let mut flipped = original.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    std::fs::write(&train, &flipped).expect("corrupt");
    PreparedDataset::open(&dir, Verify::Sizes).expect("sizes alone cannot see a flipped byte");
    let error = PreparedDataset::open(&dir, Verify::Checksums).expect_err("checksum");
    assert!(matches!(error, PreparedError::Mismatch { .. }), "{error}");
    assert!(error.to_string().contains("sha256"), "{error}");

    // Truncated.
    std::fs::write(&train, &original[..original.len() - 10]).expect("truncate");
    let error = PreparedDataset::open(&dir, Verify::Sizes).expect_err("size");
    assert!(
        error.to_string().contains("bytes, the manifest says"),
        "{error}"
    );

    // Missing.
    std::fs::remove_file(&train).expect("remove");
    let error = PreparedDataset::open(&dir, Verify::Sizes).expect_err("missing");
    assert!(error.to_string().contains("train.safetensors"), "{error}");
    std::fs::write(&train, &original).expect("restore");
    PreparedDataset::open(&dir, Verify::Checksums).expect("restored");

    // A newer format, and a manifest that is not one.
    let manifest_path = dir.join("manifest.json");
    let manifest = std::fs::read_to_string(&manifest_path).expect("manifest");
    let newer = manifest.replace(
        &format!("\"format_version\": {FORMAT_VERSION}"),
        "\"format_version\": 99",
    );
    std::fs::write(&manifest_path, newer).expect("stamp");
    let error = PreparedDataset::open(&dir, Verify::Sizes).expect_err("newer");
    assert!(
        matches!(error, PreparedError::NewerFormat { found: 99, .. }),
        "{error}"
    );
    std::fs::write(&manifest_path, "{\"format_version\": 1}").expect("gut");
    let error = PreparedDataset::open(&dir, Verify::Sizes).expect_err("not a manifest");
    assert!(matches!(error, PreparedError::Manifest { .. }), "{error}");
}

#[test]
fn inconsistent_splits_are_refused_before_anything_is_written() {
    let root = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(Vec<SplitData>, &str)> = vec![
        (vec![split("train", 4)], "needs a val split"),
        (
            vec![
                split("train", 4),
                SplitData {
                    y: vec![0, 1, 5],
                    ..split("val", 3)
                },
            ],
            "outside 0..3",
        ),
        (
            vec![
                split("train", 4),
                SplitData {
                    x: XData::U8(vec![0; 5]),
                    ..split("val", 1)
                },
            ],
            "6 per sample",
        ),
        (
            vec![
                split("train", 4),
                SplitData {
                    x: XData::F32(vec![0.0; 6]),
                    ..split("val", 1)
                },
            ],
            "stores F32 samples",
        ),
        (
            vec![split("train", 4), split("val", 2), split("holdout", 2)],
            "is not one of",
        ),
    ];
    for (splits, fragment) in cases {
        let error = write_prepared(root.path(), "case", draft(), splits).expect_err(fragment);
        assert!(
            error.to_string().contains(fragment),
            "{error} should mention {fragment}"
        );
    }
    assert!(
        std::fs::read_dir(root.path())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "nothing was written"
    );
}
