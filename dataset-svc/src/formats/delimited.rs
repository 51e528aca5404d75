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

/// Cells are whatever a file holds: any bytes get an answer, never a panic, and any Unicode
/// table written as CSV or TSV reads back cell for cell.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn cell() -> impl Strategy<Value = String> {
        "\\PC{0,12}|[ ,\"\t\r\n;é€𝄞\u{200b}]{0,6}|[0-9.eE+-]{1,8}"
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
            for dialect in [Dialect::CSV, Dialect::TSV] {
                if let Ok((columns, rows)) = parse_delimited(&bytes, dialect, Path::new("t.csv")) {
                    prop_assert!(rows.iter().all(|row| row.len() == columns.len()));
                }
            }
        }

        #[test]
        fn unicode_tables_read_back(
            width in 1..6usize,
            cells in proptest::collection::vec(cell(), 1..60),
        ) {
            let header: Vec<String> = (0..width).map(|i| format!("c{i}")).collect();
            let rows: Vec<Vec<String>> = cells
                .chunks(width)
                .filter(|row| row.len() == width)
                .map(|row| row.iter().map(|c| c.trim().to_owned()).collect())
                .filter(|row: &Vec<String>| row.iter().any(|c| !c.is_empty()))
                .collect();
            let mut writer = csv::WriterBuilder::new().quote_style(csv::QuoteStyle::Always).from_writer(Vec::new());
            writer.write_record(&header).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for row in &rows {
                writer.write_record(row).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let bytes = writer.into_inner().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (columns, read) = parse_delimited(&bytes, Dialect::CSV, Path::new("t.csv"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(columns, header);
            prop_assert_eq!(read, rows);
        }
    }
}
