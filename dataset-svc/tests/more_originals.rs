//! The rest of the catalog's real datasets: iris and Adult from `../shared/data`; the IDX
//! family, CIFAR-10 and CIFAR-100 tarballs, credit-card fraud, CoLA, QNLI and IMDB from
//! originals written here in their published layouts (the shared folder does not carry them).

mod common;

use common::{gzip, idx, message, tar_gz, write};
use dataset_svc::catalog::lookup;
use dataset_svc::{PrepareOptions, Samples, prepare, sources};
use ra_spec::InputSpec;
use ra_test_support::shared_data_or_skip;

fn class_counts(labels: &[i64], classes: usize) -> Vec<usize> {
    (0..classes as i64)
        .map(|c| labels.iter().filter(|l| **l == c).count())
        .collect()
}

#[test]
fn iris_and_adult_read_and_prepare_from_the_shared_originals() {
    let Some(data) = shared_data_or_skip("dataset-svc iris and Adult") else {
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let iris = lookup("iris")
        .expect("catalog")
        .load(&data.join("iris"), false)
        .expect("iris");
    assert!(
        iris.checksums_verified,
        "the shared iris.csv is scikit-learn's"
    );
    assert_eq!(class_counts(&iris.train.labels, 3), [50, 50, 50]);
    let iris = prepare(&iris, &PrepareOptions::default(), cache.path()).expect("prepare iris");
    assert_eq!(iris.manifest().input, InputSpec::Tabular { features: 4 });
    assert_eq!(
        iris.manifest().split("val").expect("val").class_counts,
        [10, 10, 10]
    );
    let mean = &iris.manifest().normalization.mean;
    assert!((5.6..6.1).contains(&mean[0]), "sepal length mean {mean:?}");

    let adult = sources::adult(&data.join("adult")).expect("adult");
    assert_eq!(adult.train.labels.len(), 32_561);
    assert_eq!(class_counts(&adult.train.labels, 2), [24_720, 7_841]);
    let test = adult.test.as_ref().expect("adult.test");
    assert_eq!(class_counts(&test.labels, 2), [12_435, 3_846]);
    let Samples::Table { columns, rows } = &adult.train.samples else {
        panic!("a table")
    };
    assert_eq!(columns.len(), 13, "14 attributes less fnlwgt: {columns:?}");
    assert_eq!(
        rows[0][0], "39",
        "the header line some copies carry is skipped"
    );
    let adult = prepare(&adult, &PrepareOptions::default(), cache.path()).expect("prepare adult");
    let manifest = adult.manifest();
    assert_eq!(manifest.split("test").expect("test").num_samples, 16_281);
    let ratio = manifest.imbalance_ratio;
    assert!((3.1..3.2).contains(&ratio), "imbalance {ratio}");
    let InputSpec::Tabular { features } = manifest.input else {
        panic!("tabular")
    };
    assert!((90..130).contains(&features), "one-hot width {features}");
}

#[test]
fn fashion_mnist_and_kmnist_read_the_idx_layout_with_their_own_classes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels: Vec<u8> = (0..20).map(|i| i % 10).collect();
    let mut label_file = idx([0, 0, 8, 1], &[20], 0);
    label_file.extend(&labels);
    for name in ["fashion-mnist", "kmnist"] {
        let folder = dir.path().join(name);
        write(
            &folder,
            "t10k-images-idx3-ubyte.gz",
            &gzip(&idx([0, 0, 8, 3], &[20, 28, 28], 20 * 784)),
        );
        write(&folder, "t10k-labels-idx1-ubyte.gz", &gzip(&label_file));
        let raw = lookup(name)
            .expect("catalog")
            .load(&folder, true)
            .expect(name);
        assert_eq!(raw.name, name);
        assert_eq!(raw.train.labels.len(), 20);
        assert!(raw.test.is_none(), "a partial copy: t10k becomes train");
        assert_eq!(raw.class_names.len(), 10);
    }
    let fashion = sources::fashion_mnist(&dir.path().join("fashion-mnist")).expect("fashion");
    assert_eq!(fashion.class_names[9], "ankle boot");
}

/// `n` CIFAR records: `label_bytes` label bytes (each = record index % classes), then
/// pixels all equal to the index.
fn cifar_records(n: usize, label_bytes: usize, classes: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in 0..n {
        bytes.extend(std::iter::repeat_n((i % classes) as u8, label_bytes));
        bytes.extend(std::iter::repeat_n(i as u8, 3 * 32 * 32));
    }
    bytes
}

#[test]
fn cifar_tarballs_are_read_in_place_and_cifar100_takes_the_fine_label() {
    let Some(data) = shared_data_or_skip("dataset-svc CIFAR tarballs") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let train =
        std::fs::read(data.join("cifar10_subset/data_batch_1_first2000.bin")).expect("train");
    let test = std::fs::read(data.join("cifar10_subset/test_batch_first1000.bin")).expect("test");
    let batches: Vec<(String, &[u8])> = (1..=5)
        .map(|i| {
            (
                format!("cifar-10-batches-bin/data_batch_{i}.bin"),
                train.as_slice(),
            )
        })
        .chain([(
            "cifar-10-batches-bin/test_batch.bin".to_owned(),
            test.as_slice(),
        )])
        .collect();
    let members: Vec<(&str, &[u8])> = batches.iter().map(|(p, b)| (p.as_str(), *b)).collect();
    write(dir.path(), "cifar-10-binary.tar.gz", &tar_gz(&members));
    let cifar10 = lookup("cifar10")
        .expect("catalog")
        .load(dir.path(), false)
        .expect("tarball");
    assert_eq!(cifar10.train.labels.len(), 10_000);
    assert_eq!(cifar10.train.labels[..4], [6, 9, 9, 4]);
    assert_eq!(
        cifar10.test.as_ref().expect("test").labels[..4],
        [3, 8, 8, 0]
    );
    assert!(
        cifar10
            .source_checksums
            .contains_key("cifar-10-binary.tar.gz")
    );
    assert!(
        !cifar10.checksums_verified,
        "no canonical sha256 is pinned for the tarball"
    );

    // CIFAR-100: <coarse><fine><pixels>; the fine label (here = coarse) is the class.
    let folder = dir.path().join("cifar100");
    let records = cifar_records(300, 2, 100);
    write(
        &folder,
        "cifar-100-binary.tar.gz",
        &tar_gz(&[
            ("cifar-100-binary/train.bin", &records),
            ("cifar-100-binary/test.bin", &records[..100 * 3074]),
        ]),
    );
    let cifar100 = sources::cifar(&folder, &sources::CIFAR100, &["train.bin"], &["test.bin"])
        .expect("cifar100");
    assert_eq!(cifar100.class_names.len(), 100);
    assert_eq!(cifar100.train.labels[..3], [0, 1, 2]);
    assert_eq!(cifar100.test.as_ref().expect("test").labels.len(), 100);

    // A damaged tarball and a missing member are refused by name.
    write(
        &folder,
        "cifar-100-binary.tar.gz",
        &gzip(b"not a tar archive at all"),
    );
    let error = message(sources::cifar(
        &folder,
        &sources::CIFAR100,
        &["train.bin"],
        &["test.bin"],
    ));
    assert!(error.contains("cifar-100-binary.tar.gz"), "{error}");
    write(
        &folder,
        "cifar-100-binary.tar.gz",
        &tar_gz(&[("cifar-100-binary/train.bin", &records)]),
    );
    let error = message(sources::cifar(
        &folder,
        &sources::CIFAR100,
        &["train.bin"],
        &["test.bin"],
    ));
    assert!(error.contains("no member test.bin"), "{error}");
}

#[test]
fn credit_card_fraud_keeps_its_imbalance_through_stratified_splits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("\"Time\",\"V1\",\"V2\",\"Amount\",\"Class\"\n");
    for i in 0..1_000 {
        let fraud = i % 100 == 0;
        csv.push_str(&format!(
            "{i},{:.3},{:.3},{:.2},\"{}\"\n",
            (i as f64).sin(),
            if fraud { 3.0 } else { (i as f64).cos() },
            10.0 + i as f64,
            u8::from(fraud)
        ));
    }
    write(dir.path(), "creditcard.csv", csv.as_bytes());
    let raw = sources::credit_card_fraud(dir.path()).expect("fraud");
    assert_eq!(class_counts(&raw.train.labels, 2), [990, 10]);
    let cache = tempfile::tempdir().expect("tempdir");
    let options = PrepareOptions {
        test_fraction: 0.2,
        ..PrepareOptions::default()
    };
    let prepared = prepare(&raw, &options, cache.path()).expect("prepare");
    let manifest = prepared.manifest();
    assert_eq!(manifest.imbalance_ratio, 99.0);
    for (split, expected) in [("train", [594, 6]), ("val", [198, 2]), ("test", [198, 2])] {
        assert_eq!(
            manifest.split(split).expect(split).class_counts,
            expected,
            "{split}"
        );
    }
}

#[test]
fn glue_cola_and_qnli_and_imdb_folders_and_tarball_read_as_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cola_rows = "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n\
                     gj04\t0\t*\tThe more we study verbs, the crazier they get get.\n";
    write(
        &dir.path().join("cola"),
        "train.tsv",
        cola_rows.repeat(5).as_bytes(),
    );
    write(&dir.path().join("cola"), "dev.tsv", cola_rows.as_bytes());
    let cola = sources::cola(&dir.path().join("cola")).expect("cola");
    assert_eq!(cola.train.labels[..2], [1, 0]);
    assert_eq!(cola.class_names, ["unacceptable", "acceptable"]);

    let qnli = "index\tquestion\tsentence\tlabel\n\
                0\tWhat came into force after the new constitution was herald?\tAs of that day, the new constitution heralding the Second Republic came into force.\tentailment\n\
                1\tWhat is the first major city in the stream of the Rhine?\tThe most important tributaries in this area are the Ill below of Strasbourg.\tnot_entailment\n";
    write(&dir.path().join("qnli"), "train.tsv", qnli.as_bytes());
    write(&dir.path().join("qnli"), "dev.tsv", qnli.as_bytes());
    let qnli_raw = sources::qnli(&dir.path().join("qnli")).expect("qnli");
    let Samples::Text(documents) = &qnli_raw.train.samples else {
        panic!("text")
    };
    assert!(
        documents[0].starts_with("What came into force") && documents[0].contains(" [SEP] As of")
    );
    assert_eq!(qnli_raw.train.labels, [0, 1]);
    write(
        &dir.path().join("qnli"),
        "dev.tsv",
        b"index\tquestion\tsentence\tlabel\n0\ta\tb\tmaybe\n",
    );
    let error = message(sources::qnli(&dir.path().join("qnli")));
    assert!(
        error.contains("dev.tsv") && error.contains("\"maybe\""),
        "{error}"
    );

    // IMDB: loose aclImdb folders, then the same reviews in the tarball: the same samples.
    let imdb = dir.path().join("imdb");
    let reviews = [
        (
            "aclImdb/train/pos/0_9.txt",
            "A wonderful film.<br />Loved it.",
        ),
        ("aclImdb/train/neg/1_2.txt", "Dull and far too long."),
        ("aclImdb/train/pos/2_8.txt", "Great acting."),
        ("aclImdb/train/neg/3_1.txt", "Awful."),
        ("aclImdb/test/pos/0_10.txt", "Superb."),
        ("aclImdb/test/neg/0_3.txt", "Boring."),
        ("aclImdb/train/unsup/0_0.txt", "Unlabelled, left out."),
    ];
    for (path, text) in reviews {
        write(&imdb, path, text.as_bytes());
    }
    let loose = sources::imdb(&imdb).expect("imdb folders");
    assert_eq!(loose.train.labels, [0, 0, 1, 1]);
    let Samples::Text(documents) = &loose.train.samples else {
        panic!("text")
    };
    assert_eq!(documents[2], "A wonderful film. Loved it.");
    assert_eq!(loose.test.as_ref().expect("test").labels, [0, 1]);
    let packed = tempfile::tempdir().expect("tempdir");
    let members: Vec<(&str, &[u8])> = reviews.iter().map(|(p, t)| (*p, t.as_bytes())).collect();
    write(packed.path(), "aclImdb_v1.tar.gz", &tar_gz(&members));
    let tarball = sources::imdb(packed.path()).expect("imdb tarball");
    assert_eq!(tarball.train, loose.train);
    assert_eq!(tarball.test, loose.test);
}

#[test]
fn sst2_with_bpe_sub_words_is_deterministic_and_bounded_by_the_vocabulary_size() {
    let Some(data) = shared_data_or_skip("dataset-svc BPE") else {
        return;
    };
    let raw = sources::sst2(&data.join("sst2")).expect("sst2");
    let options = PrepareOptions {
        subset_size: Some(3_000),
        max_vocab: 1_500,
        sequence_length: 32,
        tokenizer: dataset_svc::text::TokenizerKind::Bpe,
        ..PrepareOptions::default()
    };
    let (first, second) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let bpe = prepare(&raw, &options, first.path()).expect("bpe");
    let InputSpec::Text {
        vocab_size,
        sequence_length,
    } = bpe.manifest().input
    else {
        panic!("text")
    };
    assert!(
        (500..=1_500).contains(&vocab_size),
        "vocabulary {vocab_size}"
    );
    assert_eq!(sequence_length, 32);
    assert_eq!(bpe.manifest().options["tokenizer"], "bpe");
    let again = prepare(&raw, &options, second.path()).expect("again");
    assert_eq!(again.manifest().prepared_id, bpe.manifest().prepared_id);
    let hashes = |d: &ra_prepared::PreparedDataset| {
        d.manifest()
            .splits
            .iter()
            .map(|s| s.sha256.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(hashes(&again), hashes(&bpe));
    let words = PrepareOptions {
        tokenizer: dataset_svc::text::TokenizerKind::Word,
        ..options
    };
    let word_level = prepare(&raw, &words, first.path()).expect("words");
    assert_ne!(
        word_level.manifest().prepared_id,
        bpe.manifest().prepared_id
    );
    // Sub-words leave fewer unknown ids in the dev sentences than a word vocabulary of the
    // same size.
    let unknown_share = |d: &ra_prepared::PreparedDataset| {
        let test = d.split("test").expect("test");
        let mut row = vec![0i64; 32];
        let (mut unknown, mut tokens) = (0usize, 0usize);
        for i in 0..test.len() {
            test.sample_i64(i, &mut row);
            unknown += row.iter().filter(|id| **id == 1).count();
            tokens += row.iter().filter(|id| **id != 0).count();
        }
        unknown as f64 / tokens as f64
    };
    assert!(unknown_share(&bpe) < unknown_share(&word_level));
}

/// One MATLAB v5 data element: tag (type, size) and the data padded to 8 bytes.
fn mat_element(data_type: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = data_type.to_le_bytes().to_vec();
    bytes.extend((data.len() as u32).to_le_bytes());
    bytes.extend(data);
    bytes.resize(bytes.len().next_multiple_of(8), 0);
    bytes
}

/// A MATLAB v5 numeric matrix: class 9 (uint8, data miUINT8) or 6 (double, data miDOUBLE).
fn mat_matrix(name: &str, dims: &[i32], class: u32, data: &[u8]) -> Vec<u8> {
    let mut content = mat_element(6, &[class.to_le_bytes(), 0u32.to_le_bytes()].concat());
    content.extend(mat_element(
        5,
        &dims
            .iter()
            .flat_map(|d| d.to_le_bytes())
            .collect::<Vec<_>>(),
    ));
    content.extend(mat_element(1, name.as_bytes()));
    content.extend(mat_element(if class == 9 { 2 } else { 9 }, data));
    mat_element(14, &content)
}

/// An SVHN-layout file: X 32×32×3×n (pixel value = the channel × 10 + sample, column-major)
/// and y n×1 doubles.
fn svhn_mat(labels: &[f64]) -> Vec<u8> {
    let n = labels.len();
    let mut header = b"MATLAB 5.0 MAT-file, written by the dataset-svc tests".to_vec();
    header.resize(116, b' ');
    header.extend([0u8; 8]);
    header.extend([0x00, 0x01, b'I', b'M']);
    let mut pixels = vec![0u8; 32 * 32 * 3 * n];
    for sample in 0..n {
        for c in 0..3 {
            for w in 0..32 {
                for h in 0..32 {
                    let value = if h == 0 && w == 1 {
                        200
                    } else {
                        (c * 10 + sample) as u8
                    };
                    pixels[h + 32 * (w + 32 * (c + 3 * sample))] = value;
                }
            }
        }
    }
    header.extend(mat_matrix("X", &[32, 32, 3, n as i32], 9, &pixels));
    let y: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    header.extend(mat_matrix("y", &[n as i32, 1], 6, &y));
    header
}

#[test]
fn svhn_reads_matlab_v5_column_major_images_and_maps_label_10_to_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels: Vec<f64> = (0..20).map(|i| f64::from(i % 10 + 1)).collect();
    write(dir.path(), "train_32x32.mat", &svhn_mat(&labels));
    write(dir.path(), "test_32x32.mat", &svhn_mat(&labels[..10]));
    let raw = lookup("svhn")
        .expect("catalog")
        .load(dir.path(), false)
        .expect("svhn");
    assert_eq!(raw.train.labels[..10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
    assert_eq!(raw.test.as_ref().expect("test").labels.len(), 10);
    let Samples::Images {
        channels,
        height,
        width,
        pixels,
    } = &raw.train.samples
    else {
        panic!("images")
    };
    assert_eq!((*channels, *height, *width), (3, 32, 32));
    let sample = 3;
    let image = &pixels[sample * 3072..(sample + 1) * 3072];
    assert_eq!(image[1024 + 5], 13, "channel 1 of sample 3");
    assert_eq!(
        image[1], 200,
        "row 0, column 1 (transposed from column-major)"
    );
    assert_eq!(image[32], 3, "row 1, column 0");

    write(dir.path(), "test_32x32.mat", &svhn_mat(&[11.0]));
    let error = message(sources::svhn(dir.path()));
    assert!(
        error.contains("test_32x32.mat") && error.contains("not 1-10"),
        "{error}"
    );
    write(
        dir.path(),
        "test_32x32.mat",
        b"MATLAB 5.0 MAT-file, truncated",
    );
    let error = message(sources::svhn(dir.path()));
    assert!(error.contains("test_32x32.mat"), "{error}");
}
