//! The catalog: every dataset dataset-svc knows by name, what it is, and where its samples
//! come from: original files (with the sha256 of each where a canonical value is pinned) read
//! from a folder and checked against those values, or a synthetic generator.

use std::path::Path;

use crate::error::DatasetError;
use crate::formats::read_stored;
use crate::raw::RawDataset;
use crate::sources::{self, CIFAR10, CIFAR100};
use crate::synthetic::Generator;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Synthetic,
    Vision,
    Tabular,
    Text,
}

/// One original file and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFile {
    pub file_name: &'static str,
    pub url: &'static str,
    /// The canonical file's sha256; `None` where no canonical value is pinned (the file is
    /// then read unverified, and the manifest says so).
    pub sha256: Option<&'static str>,
    /// 0 where unknown.
    pub size_bytes: u64,
    /// Whether `url` serves this very file, so dataset-svc can download it; otherwise the URL
    /// is a page or an archive to unpack by hand, as the README says.
    pub downloadable: bool,
}

/// Where a dataset's samples come from.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// Original files, read from a folder holding their file names.
    Files(fn(&Path) -> Result<RawDataset, DatasetError>),
    /// A synthetic generator.
    Generated(Generator),
}

#[derive(Debug, Clone, Copy)]
pub struct CatalogEntry {
    pub name: &'static str,
    pub family: Family,
    /// C, H, W for images, features for vectors; empty where preprocessing decides (tables,
    /// text). For generators, the default options' shape.
    pub input_shape: &'static [u32],
    /// For generators, the default options' classes.
    pub class_names: &'static [&'static str],
    /// The parts the source ships.
    pub source_splits: &'static [&'static str],
    /// The original files; empty for generators.
    pub sources: &'static [SourceFile],
    pub license: &'static str,
    pub description: &'static str,
    pub origin: Origin,
}

fn load_cifar10(folder: &Path) -> Result<RawDataset, DatasetError> {
    sources::cifar(
        folder,
        &CIFAR10,
        &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        &["test_batch.bin"],
    )
}

fn load_cifar100(folder: &Path) -> Result<RawDataset, DatasetError> {
    sources::cifar(folder, &CIFAR100, &["train.bin"], &["test.bin"])
}

/// A file the URL serves as it is.
const fn direct(
    file_name: &'static str,
    url: &'static str,
    sha256: Option<&'static str>,
    size_bytes: u64,
) -> SourceFile {
    SourceFile {
        file_name,
        url,
        sha256,
        size_bytes,
        downloadable: true,
    }
}

/// A file to fetch by hand (a sign-in page, or a member of an archive).
const fn by_hand(
    file_name: &'static str,
    url: &'static str,
    sha256: Option<&'static str>,
    size_bytes: u64,
) -> SourceFile {
    SourceFile {
        file_name,
        url,
        sha256,
        size_bytes,
        downloadable: false,
    }
}

const MNIST_SOURCES: [SourceFile; 4] = [
    direct(
        "train-images-idx3-ubyte.gz",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        Some("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        9_912_422,
    ),
    direct(
        "train-labels-idx1-ubyte.gz",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        Some("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        28_881,
    ),
    direct(
        "t10k-images-idx3-ubyte.gz",
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        Some("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        1_648_877,
    ),
    direct(
        "t10k-labels-idx1-ubyte.gz",
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        Some("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        4_542,
    ),
];

const FASHION_SOURCES: [SourceFile; 4] = [
    direct(
        "train-images-idx3-ubyte.gz",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/train-images-idx3-ubyte.gz",
        None,
        26_421_880,
    ),
    direct(
        "train-labels-idx1-ubyte.gz",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/train-labels-idx1-ubyte.gz",
        None,
        29_515,
    ),
    direct(
        "t10k-images-idx3-ubyte.gz",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/t10k-images-idx3-ubyte.gz",
        None,
        4_422_102,
    ),
    direct(
        "t10k-labels-idx1-ubyte.gz",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/t10k-labels-idx1-ubyte.gz",
        None,
        5_148,
    ),
];

const KMNIST_SOURCES: [SourceFile; 4] = [
    direct(
        "train-images-idx3-ubyte.gz",
        "https://codh.rois.ac.jp/kmnist/dataset/kmnist/train-images-idx3-ubyte.gz",
        None,
        0,
    ),
    direct(
        "train-labels-idx1-ubyte.gz",
        "https://codh.rois.ac.jp/kmnist/dataset/kmnist/train-labels-idx1-ubyte.gz",
        None,
        0,
    ),
    direct(
        "t10k-images-idx3-ubyte.gz",
        "https://codh.rois.ac.jp/kmnist/dataset/kmnist/t10k-images-idx3-ubyte.gz",
        None,
        0,
    ),
    direct(
        "t10k-labels-idx1-ubyte.gz",
        "https://codh.rois.ac.jp/kmnist/dataset/kmnist/t10k-labels-idx1-ubyte.gz",
        None,
        0,
    ),
];

const SHAPES_DEFAULT_CLASSES: [&str; 5] = ["circle", "square", "triangle", "cross", "star"];

pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "synthetic",
        family: Family::Synthetic,
        input_shape: &[16],
        class_names: &["cluster_0", "cluster_1", "cluster_2", "cluster_3"],
        source_splits: &["train"],
        sources: &[],
        license: "generated (no licence needed)",
        description: "Gaussian clusters, one per class: size features (or a channels×size×size image), noise and difficulty set the overlap; offline, deterministic from the seed",
        origin: Origin::Generated(Generator::Clusters),
    },
    CatalogEntry {
        name: "shapes",
        family: Family::Synthetic,
        input_shape: &[3, 32, 32],
        class_names: &SHAPES_DEFAULT_CLASSES,
        source_splits: &["train"],
        sources: &[],
        license: "generated (no licence needed)",
        description: "procedurally drawn figures (circle, square, triangle, cross, star, ring, bar, half-disk) with random position, size, rotation, colours and noise; offline, deterministic from the seed",
        origin: Origin::Generated(Generator::Shapes),
    },
    CatalogEntry {
        name: "synthetic-tabular",
        family: Family::Synthetic,
        input_shape: &[],
        class_names: &["class_0", "class_1", "class_2"],
        source_splits: &["train"],
        sources: &[],
        license: "generated (no licence needed)",
        description: "a mixed table (size numeric columns, two categorical ones, missing cells) labelled by a hidden rule; offline, deterministic from the seed",
        origin: Origin::Generated(Generator::Tabular),
    },
    CatalogEntry {
        name: "synthetic-text",
        family: Family::Synthetic,
        input_shape: &[],
        class_names: &["topic_0", "topic_1", "topic_2", "topic_3"],
        source_splits: &["train"],
        sources: &[],
        license: "generated (no licence needed)",
        description: "documents of made-up words, each class with its own topic words among shared ones; offline, deterministic from the seed",
        origin: Origin::Generated(Generator::Text),
    },
    CatalogEntry {
        name: "digits",
        family: Family::Tabular,
        input_shape: &[64],
        class_names: &sources::DIGIT_CLASSES,
        source_splits: &["train"],
        sources: &[direct(
            "digits.csv.gz",
            "https://raw.githubusercontent.com/scikit-learn/scikit-learn/1.7.2/sklearn/datasets/data/digits.csv.gz",
            Some("09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"),
            57_523,
        )],
        license: "CC BY 4.0 (UCI Optical Recognition of Handwritten Digits)",
        description: "scikit-learn's 1,797 8×8 handwritten digits, pixel values 0-16, as 64 features",
        origin: Origin::Files(sources::digits),
    },
    CatalogEntry {
        name: "mnist",
        family: Family::Vision,
        input_shape: &[1, 28, 28],
        class_names: &sources::DIGIT_CLASSES,
        source_splits: &["train", "test"],
        sources: &MNIST_SOURCES,
        license: "CC BY-SA 3.0 (LeCun, Cortes, Burges)",
        description: "70,000 28×28 grey handwritten digits (60,000 train, 10,000 test), IDX format",
        origin: Origin::Files(sources::mnist),
    },
    CatalogEntry {
        name: "fashion-mnist",
        family: Family::Vision,
        input_shape: &[1, 28, 28],
        class_names: &sources::FASHION_CLASSES,
        source_splits: &["train", "test"],
        sources: &FASHION_SOURCES,
        license: "MIT (Zalando Research)",
        description: "70,000 28×28 grey Zalando article images in 10 classes, IDX format with MNIST's file names",
        origin: Origin::Files(sources::fashion_mnist),
    },
    CatalogEntry {
        name: "kmnist",
        family: Family::Vision,
        input_shape: &[1, 28, 28],
        class_names: &sources::KMNIST_CLASSES,
        source_splits: &["train", "test"],
        sources: &KMNIST_SOURCES,
        license: "CC BY-SA 4.0 (ROIS-DS Center for Open Data in the Humanities)",
        description: "70,000 28×28 grey Kuzushiji (cursive Japanese) characters in 10 classes, IDX format with MNIST's file names",
        origin: Origin::Files(sources::kmnist),
    },
    CatalogEntry {
        name: "cifar10",
        family: Family::Vision,
        input_shape: &[3, 32, 32],
        class_names: &sources::CIFAR10_CLASSES,
        source_splits: &["train", "test"],
        sources: &[direct(
            "cifar-10-binary.tar.gz",
            "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            None,
            170_052_171,
        )],
        license: "no formal licence (Krizhevsky 2009)",
        description: "60,000 32×32 colour images in 10 classes, binary version: data_batch_1-5.bin and test_batch.bin, loose or inside the tarball",
        origin: Origin::Files(load_cifar10),
    },
    CatalogEntry {
        name: "cifar100",
        family: Family::Vision,
        input_shape: &[3, 32, 32],
        class_names: &sources::CIFAR100_CLASSES,
        source_splits: &["train", "test"],
        sources: &[direct(
            "cifar-100-binary.tar.gz",
            "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
            None,
            168_513_733,
        )],
        license: "no formal licence (Krizhevsky 2009)",
        description: "60,000 32×32 colour images in 100 fine classes, binary version: train.bin and test.bin, loose or inside the tarball",
        origin: Origin::Files(load_cifar100),
    },
    CatalogEntry {
        name: "svhn",
        family: Family::Vision,
        input_shape: &[3, 32, 32],
        class_names: &sources::DIGIT_CLASSES,
        source_splits: &["train", "test"],
        sources: &[
            direct(
                "train_32x32.mat",
                "https://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                None,
                182_040_794,
            ),
            direct(
                "test_32x32.mat",
                "https://ufldl.stanford.edu/housenumbers/test_32x32.mat",
                None,
                64_275_384,
            ),
        ],
        license: "non-commercial use (Netzer et al. 2011)",
        description: "Street View House Numbers, cropped digits: 73,257 train and 26,032 test 32×32 colour images, MATLAB v5 files",
        origin: Origin::Files(sources::svhn),
    },
    CatalogEntry {
        name: "iris",
        family: Family::Tabular,
        input_shape: &[4],
        class_names: &sources::IRIS_CLASSES,
        source_splits: &["train"],
        sources: &[direct(
            "iris.csv",
            "https://raw.githubusercontent.com/scikit-learn/scikit-learn/1.7.2/sklearn/datasets/data/iris.csv",
            Some("f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449"),
            2_734,
        )],
        license: "CC BY 4.0 (UCI Iris, Fisher 1936)",
        description: "150 iris flowers, four measurements in cm, three species",
        origin: Origin::Files(sources::iris),
    },
    CatalogEntry {
        name: "titanic",
        family: Family::Tabular,
        input_shape: &[],
        class_names: &["died", "survived"],
        source_splits: &["train"],
        sources: &[by_hand(
            "train.csv",
            "https://www.kaggle.com/competitions/titanic/data",
            None,
            61_194,
        )],
        license: "Kaggle competition data",
        description: "891 Titanic passengers (class, sex, age, family, fare, port) and whether they survived",
        origin: Origin::Files(sources::titanic),
    },
    CatalogEntry {
        name: "adult",
        family: Family::Tabular,
        input_shape: &[],
        class_names: &["<=50K", ">50K"],
        source_splits: &["train", "test"],
        sources: &[
            direct(
                "adult.data",
                "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.data",
                None,
                3_974_305,
            ),
            direct(
                "adult.test",
                "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.test",
                None,
                2_003_153,
            ),
        ],
        license: "CC BY 4.0 (UCI Adult, Becker and Kohavi 1996)",
        description: "48,842 US census records (32,561 train, 16,281 test): 14 attributes, income above 50K or not",
        origin: Origin::Files(sources::adult),
    },
    CatalogEntry {
        name: "credit-card-fraud",
        family: Family::Tabular,
        input_shape: &[],
        class_names: &["legitimate", "fraud"],
        source_splits: &["train"],
        sources: &[by_hand(
            "creditcard.csv",
            "https://www.kaggle.com/datasets/mlg-ulb/creditcardfraud",
            None,
            0,
        )],
        license: "ODbL 1.0 (ULB Machine Learning Group)",
        description: "284,807 European card transactions of September 2013, 492 frauds (0.17 %): time, 28 PCA components, amount; heavily imbalanced, split stratified",
        origin: Origin::Files(sources::credit_card_fraud),
    },
    CatalogEntry {
        name: "sst2",
        family: Family::Text,
        input_shape: &[],
        class_names: &["negative", "positive"],
        source_splits: &["train", "test"],
        sources: &[
            by_hand(
                "train.tsv",
                "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                Some("48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
                3_806_081,
            ),
            by_hand(
                "dev.tsv",
                "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                Some("54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
                94_931,
            ),
        ],
        license: "no explicit licence (Socher et al. 2013, via GLUE)",
        description: "GLUE SST-2: 67,349 train and 872 dev movie-review sentences, positive or negative; dev becomes the test split",
        origin: Origin::Files(sources::sst2),
    },
    CatalogEntry {
        name: "cola",
        family: Family::Text,
        input_shape: &[],
        class_names: &["unacceptable", "acceptable"],
        source_splits: &["train", "test"],
        sources: &[
            by_hand(
                "train.tsv",
                "https://dl.fbaipublicfiles.com/glue/data/CoLA.zip",
                None,
                0,
            ),
            by_hand(
                "dev.tsv",
                "https://dl.fbaipublicfiles.com/glue/data/CoLA.zip",
                None,
                0,
            ),
        ],
        license: "no explicit licence (Warstadt et al. 2019, via GLUE)",
        description: "GLUE CoLA: 8,551 train and 1,043 dev English sentences, grammatically acceptable or not; dev becomes the test split",
        origin: Origin::Files(sources::cola),
    },
    CatalogEntry {
        name: "qnli",
        family: Family::Text,
        input_shape: &[],
        class_names: &["entailment", "not_entailment"],
        source_splits: &["train", "test"],
        sources: &[
            by_hand(
                "train.tsv",
                "https://dl.fbaipublicfiles.com/glue/data/QNLIv2.zip",
                None,
                0,
            ),
            by_hand(
                "dev.tsv",
                "https://dl.fbaipublicfiles.com/glue/data/QNLIv2.zip",
                None,
                0,
            ),
        ],
        license: "CC BY-SA 4.0 (SQuAD, via GLUE)",
        description: "GLUE QNLI: 104,743 train and 5,463 dev question/sentence pairs, whether the sentence answers the question; joined as one document with [SEP]",
        origin: Origin::Files(sources::qnli),
    },
    CatalogEntry {
        name: "imdb",
        family: Family::Text,
        input_shape: &[],
        class_names: &["negative", "positive"],
        source_splits: &["train", "test"],
        sources: &[direct(
            "aclImdb_v1.tar.gz",
            "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
            None,
            84_125_825,
        )],
        license: "no explicit licence (Maas et al. 2011)",
        description: "50,000 IMDB movie reviews (25,000 train, 25,000 test), positive or negative; the aclImdb folders or the tarball",
        origin: Origin::Files(sources::imdb),
    },
];

/// The entry called `name`, or an error naming the nearest catalog names.
pub fn lookup(name: &str) -> Result<&'static CatalogEntry, DatasetError> {
    if let Some(entry) = CATALOG.iter().find(|entry| entry.name == name) {
        return Ok(entry);
    }
    // Suggestions only for names of a plausible length (the distance is quadratic).
    let lowered: String = name.chars().take(64).collect::<String>().to_lowercase();
    let mut by_distance: Vec<(usize, &str)> = CATALOG
        .iter()
        .map(|entry| {
            let distance = strsim::levenshtein(&lowered, entry.name);
            (distance, entry.name)
        })
        .collect();
    by_distance.sort();
    let suggestions: Vec<String> = by_distance
        .iter()
        .filter(|(distance, _)| *distance <= 3)
        .take(3)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    Err(DatasetError::UnknownDataset {
        name: crate::error::shown(name),
        suggestions: if suggestions.is_empty() {
            format!(
                "the catalog has {}",
                CATALOG
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("did you mean {}?", suggestions.join(" or "))
        },
    })
}

impl CatalogEntry {
    /// Reads the originals from `folder` and checks every pinned sha256 (a pinned file is
    /// checked before it is parsed, so a wrong file is refused as such), unless
    /// `skip_checksums` (a partial or custom copy); `checksums_verified` tells whether every
    /// file read matched a pinned value. Generators are not read from anywhere: use
    /// [`crate::synthetic::generate`].
    pub fn load(&self, folder: &Path, skip_checksums: bool) -> Result<RawDataset, DatasetError> {
        let Origin::Files(load) = self.origin else {
            return Err(DatasetError::Unsupported(format!(
                "{} is generated, not read from files",
                self.name
            )));
        };
        if !skip_checksums {
            for source in self.sources {
                let path = folder.join(source.file_name);
                if let Some(expected) = source.sha256
                    && path.is_file()
                {
                    let (_, found) = read_stored(&path)?;
                    if found != expected {
                        return Err(DatasetError::Checksum {
                            path,
                            expected: expected.to_owned(),
                            found,
                        });
                    }
                }
            }
        }
        let mut raw = load(folder)?;
        let all_verified = raw.source_checksums.iter().all(|(file_name, sha256)| {
            self.sources
                .iter()
                .any(|source| source.file_name == file_name && source.sha256 == Some(sha256))
        });
        raw.checksums_verified = all_verified && !skip_checksums;
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Names come from goals and requests: any Unicode gets an answer that shows the name
        /// (shortened) and stays short.
        #[test]
        fn any_name_is_answered(name in "\\PC*|.{0,8}|[a-z0-9-]{1,10}|.{300,400}") {
            match lookup(&name) {
                Ok(entry) => proptest::prop_assert_eq!(entry.name, name.as_str()),
                Err(error) => {
                    let message = error.to_string();
                    let start: String = name.chars().take(20).collect();
                    let quoted = format!("{start:?}");
                    proptest::prop_assert!(
                        message.starts_with(&format!("unknown dataset {}", quoted.trim_end_matches('"'))),
                        "{message}"
                    );
                    proptest::prop_assert!(message.chars().count() < 800, "{}", message.len());
                }
            }
        }
    }

    #[test]
    fn names_are_unique_and_unknown_names_get_the_nearest() {
        let mut names: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        let error = lookup("minst").expect_err("unknown").to_string();
        assert!(error.contains("did you mean mnist"), "{error}");
        let error = lookup("imagenet").expect_err("unknown").to_string();
        assert!(
            error.contains("the catalog has synthetic, shapes"),
            "{error}"
        );
        assert_eq!(lookup("sst2").map(|e| e.family).ok(), Some(Family::Text));
    }

    #[test]
    fn pinned_checksums_are_lower_case_hex_sha256() {
        for entry in CATALOG {
            for source in entry.sources {
                if let Some(sha256) = source.sha256 {
                    assert_eq!(sha256.len(), 64, "{}", source.file_name);
                    assert!(
                        sha256
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                        "{}",
                        source.file_name
                    );
                }
                assert!(source.url.starts_with("https://"), "{}", source.url);
                assert!(
                    !source.downloadable || !source.url.ends_with(".zip"),
                    "{}",
                    source.url
                );
            }
        }
    }
}
