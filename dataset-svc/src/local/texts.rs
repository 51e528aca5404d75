//! `text:` files: JSONL (one object per line), TSV or CSV with a header, a text column (named
//! with `#text=`, else the usual names) and a label column (`#label=`, else the usual names).

use std::collections::BTreeMap;
use std::path::Path;

use ra_client::local_data::LocalDataset;

use super::classes::{classes_of, label_column};
use super::{file_label, identity_name};
use crate::error::{DatasetError, malformed};
use crate::formats::delimited::{Dialect, parse_delimited};
use crate::formats::{decompressed, read_stored};
use crate::raw::{RawDataset, RawPart, Samples};

const FORMAT: &str = "text table";
/// The names a text column usually has, in order of preference (compared ignoring case).
const TEXT_COLUMNS: [&str; 7] = [
    "text", "sentence", "content", "review", "document", "body", "message",
];

pub(super) fn load(dataset: &LocalDataset, path: &Path) -> Result<RawDataset, DatasetError> {
    let (stored, sha256) = read_stored(path)?;
    let bytes = decompressed(path, stored)?;
    let name = path.to_string_lossy().to_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let (columns, rows) = if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        json_lines(&bytes, path)?
    } else {
        let dialect = if name.ends_with(".tsv") || name.ends_with(".txt") {
            Dialect::TSV
        } else {
            Dialect::CSV
        };
        parse_delimited(&bytes, dialect, path)?
    };
    if rows.is_empty() {
        return Err(malformed(path, FORMAT, "it has no documents"));
    }
    let label = label_column(&columns, dataset.option("label"), false, path, FORMAT)?;
    let text = text_column(&columns, dataset.option("text"), label, path)?;
    let documents: Vec<String> = rows.iter().map(|row| row[text].clone()).collect();
    let values: Vec<String> = rows.iter().map(|row| row[label].clone()).collect();
    let (names, labels) = classes_of(&values, &columns[label], path, FORMAT, |i| i + 2)?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(RawDataset::read(
        &identity_name(dataset, path),
        &names,
        RawPart {
            samples: Samples::Text(documents),
            labels,
        },
        None,
        BTreeMap::from([(file_label(path), sha256)]),
    ))
}

fn text_column(
    columns: &[String],
    chosen: Option<&str>,
    label: usize,
    path: &Path,
) -> Result<usize, DatasetError> {
    let found = match chosen {
        Some(chosen) => columns
            .iter()
            .position(|c| c == chosen || c.eq_ignore_ascii_case(chosen)),
        None => TEXT_COLUMNS.iter().find_map(|usual| {
            columns
                .iter()
                .position(|c| c.trim().eq_ignore_ascii_case(usual))
        }),
    };
    let found = found.or_else(|| (columns.len() == 2).then_some(1 - label.min(1)));
    match found {
        Some(index) if index != label => Ok(index),
        _ => Err(malformed(
            path,
            FORMAT,
            format!(
                "it has no text column{}: its columns are {columns:?}; name it with #text=COLUMN",
                chosen.map(|c| format!(" {c:?}")).unwrap_or_default()
            ),
        )),
    }
}

/// JSON lines as a table: the first object's keys are the columns; every line must be an
/// object holding them (strings, numbers or booleans).
fn json_lines(bytes: &[u8], path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), DatasetError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| malformed(path, "JSON lines", format!("not UTF-8: {e}")))?;
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| malformed(path, "JSON lines", format!("line {number}: {e}")))?;
        let serde_json::Value::Object(object) = value else {
            return Err(malformed(
                path,
                "JSON lines",
                format!("line {number} is not a JSON object"),
            ));
        };
        let columns = columns.get_or_insert_with(|| object.keys().cloned().collect());
        let mut row = Vec::with_capacity(columns.len());
        for column in columns.iter() {
            let cell = match object.get(column) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::Bool(b)) => b.to_string(),
                Some(serde_json::Value::Null) | None => {
                    return Err(malformed(
                        path,
                        "JSON lines",
                        format!(
                            "line {number} has no {column:?} (the first line's keys are {columns:?})"
                        ),
                    ));
                }
                Some(_) => {
                    return Err(malformed(
                        path,
                        "JSON lines",
                        format!(
                            "line {number}: {column:?} holds a list or an object, not text or a label"
                        ),
                    ));
                }
            };
            row.push(cell);
        }
        rows.push(row);
    }
    let columns = columns.ok_or_else(|| malformed(path, "JSON lines", "the file is empty"))?;
    Ok((columns, rows))
}
