//! Delimited text (CSV, GLUE's TSV): a header of column names, then rows with exactly as many
//! fields. Quoting is configurable because GLUE's files must be read with quoting off.

use std::path::Path;

use crate::error::{DatasetError, malformed};

#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    pub delimiter: u8,
    pub quoting: bool,
    /// Whether the first row names the columns.
    pub header: bool,
    /// Whether cells are trimmed of surrounding spaces (UCI's ", " separators).
    pub trim: bool,
}

impl Dialect {
    pub const CSV: Self = Self {
        delimiter: b',',
        quoting: true,
        header: true,
        trim: true,
    };
    pub const TSV: Self = Self {
        delimiter: b'\t',
        quoting: false,
        header: true,
        trim: false,
    };
}

/// Column names (or `column_0…` without a header) and every non-blank row; a row with another
/// number of fields is refused with its line number.
pub fn parse_delimited(
    bytes: &[u8],
    dialect: Dialect,
    path: &Path,
) -> Result<(Vec<String>, Vec<Vec<String>>), DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(dialect.delimiter)
        .quoting(dialect.quoting)
        .has_headers(false)
        .flexible(true)
        .trim(if dialect.trim {
            csv::Trim::All
        } else {
            csv::Trim::None
        })
        .from_reader(bytes);
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record =
            record.map_err(|error| malformed(path, "delimited text", error.to_string()))?;
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        let fields: Vec<String> = record.iter().map(str::to_owned).collect();
        match &columns {
            None if dialect.header => {
                columns = Some(fields);
                continue;
            }
            None => columns = Some((0..fields.len()).map(|i| format!("column_{i}")).collect()),
            Some(_) => {}
        }
        let expected = columns.as_ref().map_or(0, Vec::len);
        if fields.len() != expected {
            return Err(malformed(
                path,
                "delimited text",
                format!(
                    "line {} has {} fields, the header {expected}",
                    line + 1,
                    fields.len()
                ),
            ));
        }
        rows.push(fields);
    }
    let columns = columns.ok_or_else(|| malformed(path, "delimited text", "the file is empty"))?;
    Ok((columns, rows))
}
