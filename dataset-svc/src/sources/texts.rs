//! Text datasets: GLUE's SST-2, CoLA and QNLI (TSV read with quoting off), and IMDB reviews
//! (the aclImdb folders or their tarball).

use std::path::Path;

use super::Originals;
use crate::error::{DatasetError, malformed};
use crate::formats::delimited::{Dialect, parse_delimited};
use crate::raw::{RawDataset, RawPart, Samples};

/// How one GLUE task lays out its TSV files.
struct GlueTask {
    name: &'static str,
    /// Column names when the files have no header line.
    headerless_columns: Option<&'static [&'static str]>,
    /// Columns joined (with " [SEP] ") into one document.
    text_columns: &'static [&'static str],
    label_column: &'static str,
    /// Label cells in class order.
    label_values: &'static [&'static str],
    class_names: &'static [&'static str],
    /// The train file and the dev file, which becomes the test part (GLUE hides test labels).
    train_files: &'static [&'static str],
}

const SST2: GlueTask = GlueTask {
    name: "sst2",
    headerless_columns: None,
    text_columns: &["sentence"],
    label_column: "label",
    label_values: &["0", "1"],
    class_names: &["negative", "positive"],
    train_files: &["train.tsv", "train_full.tsv"],
};

const COLA: GlueTask = GlueTask {
    name: "cola",
    headerless_columns: Some(&["source", "label", "original_label", "sentence"]),
    text_columns: &["sentence"],
    label_column: "label",
    label_values: &["0", "1"],
    class_names: &["unacceptable", "acceptable"],
    train_files: &["train.tsv", "in_domain_train.tsv"],
};

const QNLI: GlueTask = GlueTask {
    name: "qnli",
    headerless_columns: None,
    text_columns: &["question", "sentence"],
    label_column: "label",
    label_values: &["entailment", "not_entailment"],
    class_names: &["entailment", "not_entailment"],
    train_files: &["train.tsv"],
};

/// GLUE SST-2: `train.tsv` (or the same file named `train_full.tsv`) and `dev.tsv`, columns
/// `sentence` and `label` (0 negative, 1 positive).
pub fn sst2(folder: &Path) -> Result<RawDataset, DatasetError> {
    glue(folder, &SST2)
}

/// GLUE CoLA: `train.tsv` (or `in_domain_train.tsv`) and `dev.tsv`, no header; columns
/// source, label (1 acceptable), original mark, sentence.
pub fn cola(folder: &Path) -> Result<RawDataset, DatasetError> {
    glue(folder, &COLA)
}

/// GLUE QNLI: `train.tsv` and `dev.tsv` with a header (index, question, sentence, label);
/// question and sentence become one document.
pub fn qnli(folder: &Path) -> Result<RawDataset, DatasetError> {
    glue(folder, &QNLI)
}

fn glue(folder: &Path, task: &GlueTask) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let train_file = task
        .train_files
        .iter()
        .find(|file| originals.exists(file))
        .unwrap_or(&task.train_files[0]);
    let train = glue_part(&mut originals, train_file, task)?;
    let test = glue_part(&mut originals, "dev.tsv", task)?;
    Ok(RawDataset::read(
        task.name,
        task.class_names,
        train,
        Some(test),
        originals.checksums,
    ))
}

fn glue_part(
    originals: &mut Originals,
    file: &str,
    task: &GlueTask,
) -> Result<RawPart, DatasetError> {
    let (bytes, path) = originals.read(file)?;
    let dialect = Dialect {
        header: task.headerless_columns.is_none(),
        ..Dialect::TSV
    };
    let (mut columns, rows) = parse_delimited(&bytes, dialect, &path)?;
    if let Some(names) = task.headerless_columns {
        if columns.len() != names.len() {
            return Err(malformed(
                &path,
                "GLUE TSV",
                format!("{} columns, expected {names:?}", columns.len()),
            ));
        }
        columns = names.iter().map(|n| (*n).to_owned()).collect();
    }
    let position = |name: &str| {
        columns.iter().position(|c| c == name).ok_or_else(|| {
            malformed(
                &path,
                "GLUE TSV",
                format!("no {name:?} column among {columns:?}"),
            )
        })
    };
    let text: Vec<usize> = task
        .text_columns
        .iter()
        .map(|name| position(name))
        .collect::<Result<_, _>>()?;
    let label = position(task.label_column)?;
    let mut documents = Vec::with_capacity(rows.len());
    let mut labels = Vec::with_capacity(rows.len());
    for (line, row) in rows.iter().enumerate() {
        let cell = row[label].trim();
        let value = task
            .label_values
            .iter()
            .position(|v| *v == cell)
            .ok_or_else(|| {
                malformed(
                    &path,
                    "GLUE TSV",
                    format!(
                        "data row {} has the label {cell:?}, not one of {:?}",
                        line + 1,
                        task.label_values
                    ),
                )
            })?;
        let parts: Vec<&str> = text.iter().map(|i| row[*i].as_str()).collect();
        documents.push(parts.join(" [SEP] "));
        labels.push(value as i64);
    }
    Ok(RawPart {
        samples: Samples::Text(documents),
        labels,
    })
}

/// The IMDB tarball's name.
pub const IMDB_ARCHIVE: &str = "aclImdb_v1.tar.gz";

/// IMDB reviews (Maas et al. 2011): `aclImdb/{train,test}/{neg,pos}/*.txt` as loose folders
/// or inside `aclImdb_v1.tar.gz`; the unlabelled `unsup` reviews are left out. Reviews keep
/// their file-name order within each folder, negatives first. The loose folders are
/// recorded as one checksum per folder (sha256 over each file's name and sha256).
pub fn imdb(folder: &Path) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let mut reviews: Vec<(String, Vec<u8>)> = if folder.join("aclImdb").is_dir() {
        loose_reviews(&mut originals, &folder.join("aclImdb"))?
    } else {
        originals.read_tar_members(IMDB_ARCHIVE, |path| review_slot(path).is_some())?
    };
    reviews.sort_by(|a, b| a.0.cmp(&b.0));
    let mut parts: [RawPart; 2] = std::array::from_fn(|_| RawPart {
        samples: Samples::Text(Vec::new()),
        labels: Vec::new(),
    });
    for (path, bytes) in reviews {
        let Some((split, label)) = review_slot(&path) else {
            continue;
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| malformed(&folder.join(&path), "IMDB review", "the text is not UTF-8"))?;
        let part = &mut parts[split];
        if let Samples::Text(documents) = &mut part.samples {
            documents.push(text.replace("<br />", " "));
        }
        part.labels.push(label);
    }
    let [train, test] = parts;
    if train.labels.is_empty() {
        return Err(malformed(
            &folder.join("aclImdb"),
            "IMDB folders",
            "no review under aclImdb/train/neg or aclImdb/train/pos",
        ));
    }
    let test = (!test.labels.is_empty()).then_some(test);
    Ok(RawDataset::read(
        "imdb",
        &["negative", "positive"],
        train,
        test,
        originals.checksums,
    ))
}

/// (part, label) of a review path `…aclImdb/<train|test>/<neg|pos>/<id>_<stars>.txt`.
fn review_slot(path: &str) -> Option<(usize, i64)> {
    let mut pieces = path.rsplit('/');
    let file = pieces.next()?;
    let label = match pieces.next()? {
        "neg" => 0,
        "pos" => 1,
        _ => return None,
    };
    let split = match pieces.next()? {
        "train" => 0,
        "test" => 1,
        _ => return None,
    };
    file.ends_with(".txt").then_some((split, label))
}

fn loose_reviews(
    originals: &mut Originals,
    root: &Path,
) -> Result<Vec<(String, Vec<u8>)>, DatasetError> {
    use sha2::{Digest, Sha256};
    let mut reviews = Vec::new();
    for split in ["train", "test"] {
        for label in ["neg", "pos"] {
            let dir = root.join(split).join(label);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".txt"))
                .collect();
            names.sort();
            let mut digest = Sha256::new();
            for name in names {
                let path = dir.join(&name);
                let bytes = std::fs::read(&path).map_err(crate::error::io(&path))?;
                digest.update(name.as_bytes());
                digest.update(Sha256::digest(&bytes));
                reviews.push((format!("aclImdb/{split}/{label}/{name}"), bytes));
            }
            originals.checksums.insert(
                format!("aclImdb/{split}/{label}/"),
                hex::encode(digest.finalize()),
            );
        }
    }
    Ok(reviews)
}
