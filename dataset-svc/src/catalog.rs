//! The catalog: every dataset dataset-svc knows by name, what it is, and the original files it
//! is made from, with the sha256 of each file where a canonical value is pinned. Loading a
//! dataset by name reads its originals from a folder and checks them against those values.

use std::path::Path;

use crate::error::DatasetError;
use crate::raw::RawDataset;
use crate::sources;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
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
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct CatalogEntry {
    pub name: &'static str,
    pub family: Family,
    /// C, H, W for images; empty where preprocessing decides (tables, text).
    pub input_shape: &'static [u32],
    pub class_names: &'static [&'static str],
    /// The parts the source ships.
    pub source_splits: &'static [&'static str],
    pub sources: &'static [SourceFile],
    pub license: &'static str,
    pub description: &'static str,
    /// Reads the originals from a folder holding their file names.
    load: fn(&Path) -> Result<RawDataset, DatasetError>,
}

fn load_cifar10(folder: &Path) -> Result<RawDataset, DatasetError> {
    sources::cifar10(
        folder,
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

pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "digits",
        family: Family::Tabular,
        input_shape: &[64],
        class_names: &sources::DIGIT_CLASSES,
        source_splits: &["train"],
        sources: &[SourceFile {
            file_name: "digits.csv.gz",
            url: "https://raw.githubusercontent.com/scikit-learn/scikit-learn/1.7.2/sklearn/datasets/data/digits.csv.gz",
            sha256: Some("09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"),
            size_bytes: 57_523,
        }],
        license: "CC BY 4.0 (UCI Optical Recognition of Handwritten Digits)",
        description: "scikit-learn's 1,797 8×8 handwritten digits, pixel values 0-16, as 64 features",
        load: sources::digits,
    },
    CatalogEntry {
        name: "mnist",
        family: Family::Vision,
        input_shape: &[1, 28, 28],
        class_names: &sources::DIGIT_CLASSES,
        source_splits: &["train", "test"],
        sources: &[
            SourceFile {
                file_name: "train-images-idx3-ubyte.gz",
                url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
                sha256: Some("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
                size_bytes: 9_912_422,
            },
            SourceFile {
                file_name: "train-labels-idx1-ubyte.gz",
                url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
                sha256: Some("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
                size_bytes: 28_881,
            },
            SourceFile {
                file_name: "t10k-images-idx3-ubyte.gz",
                url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
                sha256: Some("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
                size_bytes: 1_648_877,
            },
            SourceFile {
                file_name: "t10k-labels-idx1-ubyte.gz",
                url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
                sha256: Some("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
                size_bytes: 4_542,
            },
        ],
        license: "CC BY-SA 3.0 (LeCun, Cortes, Burges)",
        description: "70,000 28×28 grey handwritten digits (60,000 train, 10,000 test), IDX format",
        load: sources::mnist,
    },
    CatalogEntry {
        name: "cifar10",
        family: Family::Vision,
        input_shape: &[3, 32, 32],
        class_names: &sources::CIFAR10_CLASSES,
        source_splits: &["train", "test"],
        sources: &[SourceFile {
            file_name: "cifar-10-binary.tar.gz",
            url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            sha256: None,
            size_bytes: 170_052_171,
        }],
        license: "no formal licence (Krizhevsky 2009)",
        description: "60,000 32×32 colour images in 10 classes, binary version: data_batch_1-5.bin and test_batch.bin",
        load: load_cifar10,
    },
    CatalogEntry {
        name: "titanic",
        family: Family::Tabular,
        input_shape: &[],
        class_names: &["died", "survived"],
        source_splits: &["train"],
        sources: &[SourceFile {
            file_name: "train.csv",
            url: "https://www.kaggle.com/competitions/titanic/data",
            sha256: None,
            size_bytes: 61_194,
        }],
        license: "Kaggle competition data",
        description: "891 Titanic passengers (class, sex, age, family, fare, port) and whether they survived",
        load: sources::titanic,
    },
    CatalogEntry {
        name: "sst2",
        family: Family::Text,
        input_shape: &[],
        class_names: &["negative", "positive"],
        source_splits: &["train", "test"],
        sources: &[
            SourceFile {
                file_name: "train.tsv",
                url: "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                sha256: Some("48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
                size_bytes: 3_806_081,
            },
            SourceFile {
                file_name: "dev.tsv",
                url: "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                sha256: Some("54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
                size_bytes: 94_931,
            },
        ],
        license: "no explicit licence (Socher et al. 2013, via GLUE)",
        description: "GLUE SST-2: 67,349 train and 872 dev movie-review sentences, positive or negative; dev becomes the test split",
        load: sources::sst2,
    },
];

/// The entry called `name`, or an error naming the nearest catalog names.
pub fn lookup(name: &str) -> Result<&'static CatalogEntry, DatasetError> {
    if let Some(entry) = CATALOG.iter().find(|entry| entry.name == name) {
        return Ok(entry);
    }
    let mut by_distance: Vec<(usize, &str)> = CATALOG
        .iter()
        .map(|entry| {
            let distance = strsim::levenshtein(&name.to_lowercase(), entry.name);
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
        name: name.to_owned(),
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
    /// Reads the originals from `folder` and checks every pinned sha256, unless
    /// `skip_checksums` (a partial or custom copy); `checksums_verified` tells whether every
    /// file read matched a pinned value.
    pub fn load(&self, folder: &Path, skip_checksums: bool) -> Result<RawDataset, DatasetError> {
        let mut raw = (self.load)(folder)?;
        let mut all_verified = true;
        for (file_name, sha256) in &raw.source_checksums {
            let pinned = self
                .sources
                .iter()
                .find(|source| source.file_name == file_name)
                .and_then(|source| source.sha256);
            match pinned {
                Some(expected) if expected == sha256 => {}
                Some(expected) if !skip_checksums => {
                    return Err(DatasetError::Checksum {
                        path: folder.join(file_name),
                        expected: expected.to_owned(),
                        found: sha256.clone(),
                    });
                }
                _ => all_verified = false,
            }
        }
        raw.checksums_verified = all_verified && !skip_checksums;
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_unknown_names_get_the_nearest() {
        let mut names: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        let error = lookup("minst").expect_err("unknown").to_string();
        assert!(error.contains("did you mean mnist?"), "{error}");
        let error = lookup("imagenet").expect_err("unknown").to_string();
        assert!(error.contains("the catalog has digits, mnist"), "{error}");
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
            }
        }
    }
}
