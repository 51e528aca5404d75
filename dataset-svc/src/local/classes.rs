//! Label columns of researchers' files: which column is the label (named, by index, or the
//! usual names, else the last), and label values → classes (integers in numeric order, other
//! values sorted), refusing empty labels, a single class, and columns that look continuous.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{DatasetError, malformed};

/// The names a label column usually has, in order of preference (compared ignoring case).
pub(super) const LABEL_COLUMNS: [&str; 7] = [
    "label",
    "labels",
    "target",
    "class",
    "y",
    "category",
    "sentiment",
];

/// The most classes a label column may have.
const MAX_CLASSES: usize = 1_000;

/// The label column's index: `chosen` by name (exact, then ignoring case) or 0-based index;
/// else the first usual name; else `fallback_last` picks the last column (tables) or the
/// refusal says to name one (text).
pub(super) fn label_column(
    columns: &[String],
    chosen: Option<&str>,
    fallback_last: bool,
    path: &Path,
    format: &'static str,
) -> Result<usize, DatasetError> {
    if let Some(chosen) = chosen {
        if let Some(index) = columns.iter().position(|c| c == chosen) {
            return Ok(index);
        }
        if let Some(index) = columns.iter().position(|c| c.eq_ignore_ascii_case(chosen)) {
            return Ok(index);
        }
        if let Ok(index) = chosen.parse::<usize>()
            && index < columns.len()
        {
            return Ok(index);
        }
        return Err(malformed(
            path,
            format,
            format!(
                "it has no label column {chosen:?}; its columns are {columns:?} (name one, or give its 0-based index, with #label=)"
            ),
        ));
    }
    for usual in LABEL_COLUMNS {
        if let Some(index) = columns
            .iter()
            .position(|c| c.trim().eq_ignore_ascii_case(usual))
        {
            return Ok(index);
        }
    }
    if fallback_last && columns.len() >= 2 {
        return Ok(columns.len() - 1);
    }
    Err(malformed(
        path,
        format,
        format!(
            "it has no label column: none of its columns {columns:?} is named {}; name it with #label=COLUMN",
            LABEL_COLUMNS.join("/")
        ),
    ))
}

/// Class names and each sample's class index from label values (`line_of(i)` gives the
/// file line of value `i` for messages).
pub(super) fn classes_of(
    values: &[String],
    column: &str,
    path: &Path,
    format: &'static str,
    line_of: impl Fn(usize) -> usize,
) -> Result<(Vec<String>, Vec<i64>), DatasetError> {
    if let Some(empty) = values.iter().position(|v| v.trim().is_empty()) {
        return Err(malformed(
            path,
            format,
            format!(
                "line {} has no label (column {column:?} is empty); remove the row or fill it in",
                line_of(empty)
            ),
        ));
    }
    let distinct: BTreeSet<&str> = values.iter().map(|v| v.trim()).collect();
    if distinct.len() < 2 {
        return Err(malformed(
            path,
            format,
            format!(
                "the label column {column:?} holds a single class ({:?}); a classifier needs two or more",
                distinct.first().copied().unwrap_or_default()
            ),
        ));
    }
    let integers: Option<Vec<i64>> = distinct.iter().map(|v| v.parse::<i64>().ok()).collect();
    let looks_continuous = distinct.len() > MAX_CLASSES
        || (integers.is_none()
            && distinct.iter().all(|v| v.parse::<f64>().is_ok())
            && distinct.len() * 2 > values.len());
    if looks_continuous {
        return Err(malformed(
            path,
            format,
            format!(
                "the label column {column:?} has {} distinct values in {} rows: it looks like a continuous target, and only classification is supported; choose the label column with #label=COLUMN",
                distinct.len(),
                values.len()
            ),
        ));
    }
    // Every value is one of the classes (they were drawn from the values), so each finds its
    // index in one lookup.
    Ok(match integers {
        Some(mut numbers) => {
            numbers.sort_unstable();
            let index: BTreeMap<i64, i64> = numbers.iter().zip(0..).map(|(n, i)| (*n, i)).collect();
            let labels = values
                .iter()
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .ok()
                        .and_then(|n| index.get(&n).copied())
                        .unwrap_or(-1)
                })
                .collect();
            (numbers.iter().map(i64::to_string).collect(), labels)
        }
        None => {
            let index: BTreeMap<&str, i64> =
                distinct.iter().zip(0..).map(|(v, i)| (*v, i)).collect();
            let labels = values
                .iter()
                .map(|v| index.get(v.trim()).copied().unwrap_or(-1))
                .collect();
            (distinct.iter().map(|v| (*v).to_owned()).collect(), labels)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn integer_labels_sort_numerically_and_strings_alphabetically() {
        let path = Path::new("t.csv");
        let (names, labels) = classes_of(
            &strings(&["10", "2", "2", "10", "3"]),
            "y",
            path,
            "CSV",
            |i| i + 2,
        )
        .expect("classes");
        assert_eq!(names, ["2", "3", "10"]);
        assert_eq!(labels, [2, 0, 0, 2, 1]);
        let (names, labels) = classes_of(&strings(&["cat", "dog", "cat"]), "y", path, "CSV", |i| {
            i + 2
        })
        .expect("classes");
        assert_eq!(names, ["cat", "dog"]);
        assert_eq!(labels, [0, 1, 0]);
    }

    #[test]
    fn bad_label_columns_are_refused_with_the_line() {
        let path = Path::new("t.csv");
        let single = classes_of(&strings(&["a", "a"]), "y", path, "CSV", |i| i + 2);
        assert!(format!("{single:?}").contains("single class"));
        let empty = classes_of(&strings(&["a", " ", "b"]), "y", path, "CSV", |i| i + 2);
        assert!(
            format!("{empty:?}").contains("line 3 has no label"),
            "{empty:?}"
        );
        let continuous: Vec<String> = (0..40).map(|i| format!("{}.5", i)).collect();
        let refused = classes_of(&continuous, "price", path, "CSV", |i| i + 2);
        assert!(format!("{refused:?}").contains("continuous"), "{refused:?}");
        let columns = strings(&["a", "b"]);
        assert_eq!(
            label_column(&columns, None, true, path, "CSV").ok(),
            Some(1)
        );
        assert_eq!(
            label_column(&columns, Some("0"), true, path, "CSV").ok(),
            Some(0)
        );
        assert_eq!(
            label_column(&columns, Some("A"), true, path, "CSV").ok(),
            Some(0)
        );
        let none = label_column(&columns, None, false, path, "text");
        assert!(format!("{none:?}").contains("no label column"), "{none:?}");
        let named = label_column(&strings(&["Target", "x"]), None, true, path, "CSV");
        assert_eq!(named.ok(), Some(0));
    }
}
