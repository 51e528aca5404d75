//! `csv:`, `tsv:` and `parquet:` tables: the header found (or `#header=yes|no`),
//! scikit-learn's layout (a first line "n_samples,n_features,class names…") recognised, the
//! label column chosen, every other column a feature typed later on the train split.

use std::collections::BTreeMap;
use std::path::Path;

use parquet::record::Field;
use ra_client::local_data::{LocalDataset, LocalKind};

use super::classes::{classes_of, label_column};
use super::{file_label, identity_name};
use crate::error::{DatasetError, bad_option, malformed};
use crate::formats::delimited::{Dialect, parse_delimited};
use crate::formats::{decompressed, read_stored};
use crate::raw::{RawDataset, RawPart, Samples};

const FORMAT: &str = "table";

/// A table's column names and rows of text cells, and the class names its first line gave
/// (scikit-learn's layout).
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    class_names: Option<Vec<String>>,
    /// The file line of data row 0 (1-based).
    first_line: usize,
}

pub(super) fn load(dataset: &LocalDataset, path: &Path) -> Result<RawDataset, DatasetError> {
    let (stored, sha256) = read_stored(path)?;
    let table = match dataset.kind {
        LocalKind::Parquet => parquet_table(stored, path)?,
        kind => {
            let bytes = decompressed(path, stored)?;
            let dialect = if kind == LocalKind::Tsv {
                Dialect::TSV
            } else {
                Dialect::CSV
            };
            delimited_table(&bytes, dialect, dataset.option("header"), path)?
        }
    };
    let Table {
        mut columns,
        rows,
        class_names,
        first_line,
    } = table;
    if rows.is_empty() {
        return Err(malformed(path, FORMAT, "it has a header but no data rows"));
    }
    let label = match &class_names {
        Some(_) if dataset.option("label").is_none() => columns.len() - 1,
        _ => label_column(&columns, dataset.option("label"), true, path, FORMAT)?,
    };
    if columns.len() < 2 {
        return Err(malformed(
            path,
            FORMAT,
            format!(
                "it has one column ({:?}): nothing to learn the label from",
                columns[0]
            ),
        ));
    }
    let label_name = columns.remove(label);
    let mut features = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len());
    for mut row in rows {
        values.push(row.remove(label));
        features.push(row);
    }
    let (names, labels) = match class_names {
        Some(names) => {
            let labels = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|l| (0..names.len() as i64).contains(l))
                        .ok_or_else(|| {
                            malformed(
                                path,
                                "scikit-learn CSV",
                                format!(
                                    "line {} has the label {v:?}, not a class index below {}",
                                    first_line + i,
                                    names.len()
                                ),
                            )
                        })
                })
                .collect::<Result<Vec<i64>, _>>()?;
            (names, labels)
        }
        None => classes_of(&values, &label_name, path, FORMAT, |i| first_line + i)?,
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(RawDataset::read(
        &identity_name(dataset, path),
        &names,
        RawPart {
            samples: Samples::Table {
                columns,
                rows: features,
            },
            labels,
        },
        None,
        BTreeMap::from([(file_label(path), sha256)]),
    ))
}

fn is_number(cell: &str) -> bool {
    let cell = cell.trim();
    !cell.is_empty() && cell.parse::<f64>().is_ok()
}

/// scikit-learn's first line: "n_samples,n_features,class names…" → those three.
fn sklearn_header(line: &str, delimiter: char) -> Option<(usize, usize, Vec<String>)> {
    let fields: Vec<&str> = line
        .trim_end_matches('\r')
        .split(delimiter)
        .map(str::trim)
        .collect();
    if fields.len() < 3 {
        return None;
    }
    let samples = fields[0].parse::<usize>().ok()?;
    let features = fields[1].parse::<usize>().ok()?;
    let names = &fields[2..];
    if names.iter().any(|n| n.is_empty() || is_number(n)) {
        return None;
    }
    Some((
        samples,
        features,
        names.iter().map(|n| (*n).to_owned()).collect(),
    ))
}

/// Whether the first row names the columns: a column whose first cell is not a number while
/// the rest of it is votes yes, a number over numbers votes no; without numeric columns the
/// first row is taken as a header (as most exported tables have one).
fn looks_like_header(rows: &[Vec<String>]) -> bool {
    let Some((first, rest)) = rows.split_first() else {
        return false;
    };
    let rest = &rest[..rest.len().min(200)];
    let mut votes = 0i64;
    for (j, cell) in first.iter().enumerate() {
        let numeric_below = !rest.is_empty()
            && rest.iter().filter(|row| is_number(&row[j])).count() * 2 > rest.len();
        if numeric_below {
            votes += if is_number(cell) { -1 } else { 1 };
        }
    }
    votes > 0 || (votes == 0 && first.iter().all(|c| !is_number(c)))
}

fn delimited_table(
    bytes: &[u8],
    dialect: Dialect,
    header: Option<&str>,
    path: &Path,
) -> Result<Table, DatasetError> {
    let text_start = bytes.iter().position(|b| *b == b'\n');
    let first_line = String::from_utf8_lossy(&bytes[..text_start.unwrap_or(bytes.len())]);
    if header.is_none()
        && let Some((samples, features, names)) =
            sklearn_header(&first_line, dialect.delimiter as char)
        && let Some(start) = text_start
    {
        let no_header = Dialect {
            header: false,
            ..dialect
        };
        let (columns, rows) = parse_delimited(&bytes[start + 1..], no_header, path)?;
        if columns.len() != features + 1 {
            return Err(malformed(
                path,
                "scikit-learn CSV",
                format!(
                    "the first line says {features} features, but the rows have {} fields (features and a label)",
                    columns.len()
                ),
            ));
        }
        if rows.len() != samples {
            return Err(malformed(
                path,
                "scikit-learn CSV",
                format!(
                    "the first line says {samples} samples, but the file has {} rows (truncated?)",
                    rows.len()
                ),
            ));
        }
        let mut columns: Vec<String> = (0..features).map(|i| format!("feature_{i}")).collect();
        columns.push("target".into());
        return Ok(Table {
            columns,
            rows,
            class_names: Some(names),
            first_line: 2,
        });
    }
    let no_header = Dialect {
        header: false,
        ..dialect
    };
    let (placeholder, mut rows) = parse_delimited(bytes, no_header, path)?;
    let has_header = match header.map(str::to_ascii_lowercase).as_deref() {
        None | Some("auto") => looks_like_header(&rows),
        Some("yes" | "true" | "1") => true,
        Some("no" | "false" | "0") => false,
        Some(other) => {
            return Err(bad_option(
                "name",
                format!("#header={other:?}: write header=yes, header=no or leave it out"),
            ));
        }
    };
    let columns = if has_header && !rows.is_empty() {
        unique_names(rows.remove(0))
    } else {
        placeholder
    };
    Ok(Table {
        columns,
        rows,
        class_names: None,
        first_line: if has_header { 2 } else { 1 },
    })
}

/// Column names made non-empty and unique (`name_2`, …).
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let base = if name.trim().is_empty() {
                format!("column_{i}")
            } else {
                name.trim().to_owned()
            };
            let mut candidate = base.clone();
            let mut n = 2;
            while !seen.insert(candidate.clone()) {
                candidate = format!("{base}_{n}");
                n += 1;
            }
            candidate
        })
        .collect()
}

fn parquet_table(stored: Vec<u8>, path: &Path) -> Result<Table, DatasetError> {
    let (rows, _) = crate::hub::read_rows(stored, path)?;
    let columns: Vec<String> = rows
        .first()
        .map(|row| row.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    if columns.is_empty() {
        return Err(malformed(path, "parquet", "it has no rows"));
    }
    let mut cells = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if row.len() != columns.len() {
            return Err(malformed(
                path,
                "parquet",
                format!(
                    "row {} has {} fields, the schema {}",
                    i + 1,
                    row.len(),
                    columns.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(row.len());
        for (name, field) in row {
            out.push(cell(field).ok_or_else(|| {
                malformed(
                    path,
                    "parquet",
                    format!(
                        "column {name:?} holds nested or binary values, which a table cannot use"
                    ),
                )
            })?);
        }
        cells.push(out);
    }
    Ok(Table {
        columns,
        rows: cells,
        class_names: None,
        first_line: 1,
    })
}

/// A parquet value as a table cell (empty for null); `None` for nested or binary values.
fn cell(field: &Field) -> Option<String> {
    Some(match field {
        Field::Null => String::new(),
        Field::Bool(b) => b.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        Field::Str(s) => s.clone(),
        Field::Float16(v) => v.to_string(),
        Field::Decimal(_) | Field::Date(_) | Field::TimeMillis(_) | Field::TimeMicros(_) => {
            field.to_string()
        }
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => field.to_string(),
        Field::Bytes(_) | Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn headers_are_found_from_the_cells() {
        assert!(looks_like_header(&rows("a,b,label\n1,2,x\n3,4,y")));
        assert!(!looks_like_header(&rows("1,2,0\n3,4,1")));
        assert!(looks_like_header(&rows("name,colour\ncat,red\ndog,blue")));
        assert!(!looks_like_header(&rows("1.5,x\n2.5,y")));
    }

    #[test]
    fn the_scikit_learn_first_line_is_recognised() {
        assert_eq!(
            sklearn_header("150,4,setosa,versicolor,virginica", ','),
            Some((
                150,
                4,
                vec!["setosa".into(), "versicolor".into(), "virginica".into()]
            ))
        );
        assert_eq!(sklearn_header("a,b,label", ','), None);
        assert_eq!(sklearn_header("1,2,3", ','), None);
        assert_eq!(
            unique_names(vec!["a".into(), "".into(), "a".into()]),
            ["a", "column_1", "a_2"]
        );
    }
}
