//! Loaders of catalog datasets from a folder holding the original file names (the layout of
//! `RA_DATA_DIR` and `../shared/data`). A missing file is reported with the name to put where.
//! Checksums of what was read are recorded; checking them against the canonical ones is the
//! catalog's job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{DatasetError, malformed};
use crate::formats::cifar::parse_cifar_records;
use crate::formats::delimited::{Dialect, parse_delimited};
use crate::formats::idx::parse_idx_u8;
use crate::formats::read_original;
use crate::raw::{RawDataset, RawPart, Samples};

/// The CIFAR-10 classes, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Reads the originals of a dataset, keeping their checksums.
struct Originals {
    folder: PathBuf,
    checksums: BTreeMap<String, String>,
}

impl Originals {
    fn new(folder: &Path) -> Self {
        Self {
            folder: folder.to_path_buf(),
            checksums: BTreeMap::new(),
        }
    }

    fn read(&mut self, file_name: &str) -> Result<(Vec<u8>, PathBuf), DatasetError> {
        let path = self.folder.join(file_name);
        if !path.is_file() {
            return Err(DatasetError::MissingFile {
                path,
                file_name: file_name.to_owned(),
                folder: self.folder.clone(),
            });
        }
        let (bytes, sha256) = read_original(&path)?;
        self.checksums.insert(file_name.to_owned(), sha256);
        Ok((bytes, path))
    }

    fn exists(&self, file_name: &str) -> bool {
        self.folder.join(file_name).is_file()
    }
}

/// The ten digit classes, in label order.
pub const DIGIT_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// scikit-learn's 8×8 digits: `digits.csv.gz`, 64 pixel columns (0-16) then the label, no
/// header. Tabular, 10 classes.
pub fn digits(folder: &Path) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let (bytes, path) = originals.read("digits.csv.gz")?;
    let dialect = Dialect {
        header: false,
        ..Dialect::CSV
    };
    let (mut columns, rows) = parse_delimited(&bytes, dialect, &path)?;
    if columns.len() != 65 {
        return Err(malformed(
            &path,
            "digits CSV",
            format!("{} columns, expected 64 pixels and a label", columns.len()),
        ));
    }
    columns.pop();
    let (rows, labels) = split_label_column(rows, 64, &path, |cell| {
        cell.parse::<i64>().ok().filter(|l| (0..10).contains(l))
    })?;
    let columns = (0..64).map(|i| format!("pixel_{i}")).collect();
    Ok(RawDataset::read(
        "digits",
        &DIGIT_CLASSES,
        RawPart {
            samples: Samples::Table { columns, rows },
            labels,
        },
        None,
        originals.checksums,
    ))
}

/// Moves column `label_index` out of every row, mapping it to a class index.
fn split_label_column(
    rows: Vec<Vec<String>>,
    label_index: usize,
    path: &Path,
    class_of: impl Fn(&str) -> Option<i64>,
) -> Result<(Vec<Vec<String>>, Vec<i64>), DatasetError> {
    let mut features = Vec::with_capacity(rows.len());
    let mut labels = Vec::with_capacity(rows.len());
    for (line, mut row) in rows.into_iter().enumerate() {
        let cell = row.remove(label_index);
        let label = class_of(cell.trim()).ok_or_else(|| {
            malformed(
                path,
                "labelled table",
                format!("data row {} has the unknown label {cell:?}", line + 1),
            )
        })?;
        labels.push(label);
        features.push(row);
    }
    Ok((features, labels))
}

/// An IDX image file and its IDX label file (MNIST layout, gzip or not) as one part.
pub fn idx_part(
    originals_folder: &Path,
    images: &str,
    labels: &str,
    classes: usize,
) -> Result<(RawPart, BTreeMap<String, String>), DatasetError> {
    let mut originals = Originals::new(originals_folder);
    let (image_bytes, image_path) = originals.read(images)?;
    let (label_bytes, label_path) = originals.read(labels)?;
    let (dims, pixels) = parse_idx_u8(&image_bytes, &image_path)?;
    let (label_dims, label_values) = parse_idx_u8(&label_bytes, &label_path)?;
    if dims.len() != 3 || label_dims.len() != 1 || dims[0] != label_dims[0] {
        return Err(malformed(
            &image_path,
            "IDX",
            format!("images {dims:?} and labels {label_dims:?} do not pair up"),
        ));
    }
    if let Some(bad) = label_values.iter().find(|l| usize::from(**l) >= classes) {
        return Err(malformed(
            &label_path,
            "IDX",
            format!("label {bad} outside 0..{classes}"),
        ));
    }
    let part = RawPart {
        samples: Samples::Images {
            channels: 1,
            height: dims[1] as u32,
            width: dims[2] as u32,
            pixels,
        },
        labels: label_values.iter().map(|l| i64::from(*l)).collect(),
    };
    Ok((part, originals.checksums))
}

/// MNIST: the train files as the train part and the t10k files as the test part; with only the
/// t10k files present (a partial copy), they become the train part and there is no test part.
pub fn mnist(folder: &Path) -> Result<RawDataset, DatasetError> {
    const TRAIN: (&str, &str) = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
    const TEST: (&str, &str) = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");
    let (test, mut checksums) = idx_part(folder, TEST.0, TEST.1, 10)?;
    let originals = Originals::new(folder);
    let (train, test) = if originals.exists(TRAIN.0) {
        let (train, train_checksums) = idx_part(folder, TRAIN.0, TRAIN.1, 10)?;
        checksums.extend(train_checksums);
        (train, Some(test))
    } else {
        (test, None)
    };
    Ok(RawDataset::read(
        "mnist",
        &DIGIT_CLASSES,
        train,
        test,
        checksums,
    ))
}

/// CIFAR-10 binary batches: the given train files as the train part, the test files (if any)
/// as the test part. The full set is `data_batch_1.bin` … `data_batch_5.bin` and
/// `test_batch.bin`; a subset in the same layout works the same way.
pub fn cifar10(
    folder: &Path,
    train_files: &[&str],
    test_files: &[&str],
) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let mut read_part = |files: &[&str]| -> Result<RawPart, DatasetError> {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for file in files {
            let (bytes, path) = originals.read(file)?;
            let (p, l) = parse_cifar_records(&bytes, 1, 0, 10, &path)?;
            pixels.extend(p);
            labels.extend(l);
        }
        Ok(RawPart {
            samples: Samples::Images {
                channels: 3,
                height: 32,
                width: 32,
                pixels,
            },
            labels,
        })
    };
    let train = read_part(train_files)?;
    let test = if test_files.is_empty() {
        None
    } else {
        Some(read_part(test_files)?)
    };
    Ok(RawDataset::read(
        "cifar10",
        &CIFAR10_CLASSES,
        train,
        test,
        originals.checksums,
    ))
}

/// Kaggle's Titanic `train.csv` (the labelled part; `test.csv` has no labels). Label
/// `Survived`; the identifier and free-text columns (`PassengerId`, `Name`, `Ticket`, `Cabin`)
/// are dropped.
pub fn titanic(folder: &Path) -> Result<RawDataset, DatasetError> {
    labelled_csv(
        folder,
        "titanic",
        "train.csv",
        "Survived",
        &["PassengerId", "Name", "Ticket", "Cabin"],
        &["died", "survived"],
    )
}

/// A CSV with a header, a label column holding class indices, and columns to drop.
fn labelled_csv(
    folder: &Path,
    name: &str,
    file_name: &str,
    label_column: &str,
    dropped: &[&str],
    class_names: &[&str],
) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let (bytes, path) = originals.read(file_name)?;
    let (columns, rows) = parse_delimited(&bytes, Dialect::CSV, &path)?;
    let label_index = columns
        .iter()
        .position(|c| c == label_column)
        .ok_or_else(|| {
            malformed(
                &path,
                "labelled table",
                format!("no {label_column:?} column among {columns:?}"),
            )
        })?;
    let classes = class_names.len() as i64;
    let (rows, labels) = split_label_column(rows, label_index, &path, |cell| {
        cell.parse::<i64>()
            .ok()
            .filter(|l| (0..classes).contains(l))
    })?;
    let mut remaining: Vec<String> = columns;
    remaining.remove(label_index);
    let keep: Vec<usize> = (0..remaining.len())
        .filter(|i| !dropped.contains(&remaining[*i].as_str()))
        .collect();
    let rows = rows
        .into_iter()
        .map(|row| keep.iter().map(|i| row[*i].clone()).collect())
        .collect();
    let columns = keep.iter().map(|i| remaining[*i].clone()).collect();
    Ok(RawDataset::read(
        name,
        class_names,
        RawPart {
            samples: Samples::Table { columns, rows },
            labels,
        },
        None,
        originals.checksums,
    ))
}

/// GLUE SST-2: `train.tsv` (or the same file named `train_full.tsv`) as the train part and
/// `dev.tsv` as the test part (GLUE's own test labels are hidden). TSV with quoting off,
/// columns `sentence` and `label`.
pub fn sst2(folder: &Path) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let train_file = if originals.exists("train.tsv") {
        "train.tsv"
    } else {
        "train_full.tsv"
    };
    let mut read_part = |file: &str| -> Result<RawPart, DatasetError> {
        let (bytes, path) = originals.read(file)?;
        let (columns, rows) = parse_delimited(&bytes, Dialect::TSV, &path)?;
        let position = |name: &str| {
            columns.iter().position(|c| c == name).ok_or_else(|| {
                malformed(
                    &path,
                    "GLUE TSV",
                    format!("no {name:?} column among {columns:?}"),
                )
            })
        };
        let (sentence, label) = (position("sentence")?, position("label")?);
        let mut documents = Vec::with_capacity(rows.len());
        let mut labels = Vec::with_capacity(rows.len());
        for (line, row) in rows.iter().enumerate() {
            let value = match row[label].trim() {
                "0" => 0,
                "1" => 1,
                other => {
                    return Err(malformed(
                        &path,
                        "GLUE TSV",
                        format!("data row {} has the label {other:?}, not 0 or 1", line + 1),
                    ));
                }
            };
            documents.push(row[sentence].clone());
            labels.push(value);
        }
        Ok(RawPart {
            samples: Samples::Text(documents),
            labels,
        })
    };
    let train = read_part(train_file)?;
    let test = read_part("dev.tsv")?;
    Ok(RawDataset::read(
        "sst2",
        &["negative", "positive"],
        train,
        Some(test),
        originals.checksums,
    ))
}
