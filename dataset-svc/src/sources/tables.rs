//! Tabular datasets: scikit-learn's digits and iris, Kaggle's Titanic and credit-card fraud,
//! UCI Adult.

use std::path::Path;

use super::{
    DIGIT_CLASSES, LabelledTable, Originals, class_index, labelled_csv, split_label_column,
};
use crate::error::{DatasetError, malformed};
use crate::formats::delimited::{Dialect, parse_delimited};
use crate::raw::{RawDataset, RawPart, Samples};

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

/// Kaggle's Titanic `train.csv` (the labelled part; `test.csv` has no labels). Label
/// `Survived`; the identifier and free-text columns (`PassengerId`, `Name`, `Ticket`, `Cabin`)
/// are dropped.
pub fn titanic(folder: &Path) -> Result<RawDataset, DatasetError> {
    labelled_csv(
        folder,
        "titanic",
        "train.csv",
        LabelledTable {
            label_column: "Survived",
            dropped: &["PassengerId", "Name", "Ticket", "Cabin"],
        },
        &["died", "survived"],
    )
}

/// Kaggle's credit-card fraud table `creditcard.csv`: `Time`, `V1`…`V28` (PCA components),
/// `Amount`, and `Class` (1 = fraud, about 0.17 % of the rows).
pub fn credit_card_fraud(folder: &Path) -> Result<RawDataset, DatasetError> {
    labelled_csv(
        folder,
        "credit-card-fraud",
        "creditcard.csv",
        LabelledTable {
            label_column: "Class",
            dropped: &[],
        },
        &["legitimate", "fraud"],
    )
}

/// The iris classes, in label order.
pub const IRIS_CLASSES: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// scikit-learn's `iris.csv`: a first line "150,4,setosa,versicolor,virginica" (sample count,
/// feature count, class names), then four measurements in cm and the class index.
pub fn iris(folder: &Path) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let (bytes, path) = originals.read("iris.csv")?;
    let dialect = Dialect {
        header: true,
        ..Dialect::CSV
    };
    let (header, rows) = parse_delimited(&bytes, dialect, &path)?;
    if header.len() != 5 || header[2..] != IRIS_CLASSES {
        return Err(malformed(
            &path,
            "scikit-learn iris CSV",
            format!("the first line {header:?} is not \"150,4,setosa,versicolor,virginica\""),
        ));
    }
    let columns = [
        "sepal_length_cm",
        "sepal_width_cm",
        "petal_length_cm",
        "petal_width_cm",
        "species",
    ]
    .map(str::to_owned)
    .to_vec();
    let table = LabelledTable {
        label_column: "species",
        dropped: &[],
    };
    let part = table.split(columns, rows, &path, class_index(3))?;
    Ok(RawDataset::read(
        "iris",
        &IRIS_CLASSES,
        part,
        None,
        originals.checksums,
    ))
}

/// UCI Adult's columns, the label (`income`) last.
const ADULT_COLUMNS: [&str; 15] = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
];

/// UCI Adult: `adult.data` as the train part and `adult.test` as the test part, fields
/// separated by ", ", "?" for missing values, labels "<=50K" / ">50K" (with a trailing "." in
/// the test file). UCI's "|1x3 Cross validator" line and a header line that some copies add
/// are skipped; `fnlwgt` (a sampling weight, not a feature) is dropped.
pub fn adult(folder: &Path) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let mut read_part = |file: &str| -> Result<RawPart, DatasetError> {
        let (bytes, path) = originals.read(file)?;
        let text = String::from_utf8_lossy(&bytes);
        let kept: String = text
            .lines()
            .filter(|line| !line.starts_with('|') && !line.starts_with("age,"))
            .flat_map(|line| [line, "\n"])
            .collect();
        let dialect = Dialect {
            header: false,
            ..Dialect::CSV
        };
        let (columns, rows) = parse_delimited(kept.as_bytes(), dialect, &path)?;
        if columns.len() != ADULT_COLUMNS.len() {
            return Err(malformed(
                &path,
                "UCI Adult",
                format!(
                    "{} fields per row, expected {}",
                    columns.len(),
                    ADULT_COLUMNS.len()
                ),
            ));
        }
        let columns = ADULT_COLUMNS.map(str::to_owned).to_vec();
        let table = LabelledTable {
            label_column: "income",
            dropped: &["fnlwgt"],
        };
        table.split(columns, rows, &path, |cell| {
            match cell.trim_end_matches('.') {
                "<=50K" => Some(0),
                ">50K" => Some(1),
                _ => None,
            }
        })
    };
    let train = read_part("adult.data")?;
    let test = read_part("adult.test")?;
    Ok(RawDataset::read(
        "adult",
        &["<=50K", ">50K"],
        train,
        Some(test),
        originals.checksums,
    ))
}
