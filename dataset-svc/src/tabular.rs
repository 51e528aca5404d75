//! Tabular preprocessing fitted on the train split only: a column is numeric when every present
//! train cell parses as a number (of magnitude at most 1e30), otherwise categorical. Numeric
//! columns: missing cells imputed with the train median, plus a 0/1 "was missing" feature when
//! train had gaps; standardised by the train mean and standard deviation (as the manifest's
//! normalisation, applied by the reader). Categorical columns: missing cells imputed with the train mode, one-hot over the
//! train categories (the most frequent `max_categories`); a category unseen in train encodes
//! as all zeros.

use std::collections::BTreeMap;

/// Cells that mean "no value".
const MISSING: [&str; 5] = ["", "?", "NA", "nan", "NaN"];

fn is_missing(cell: &str) -> bool {
    MISSING.contains(&cell.trim())
}

/// Numbers beyond this magnitude are not numbers here: features are `f32`, and standardising
/// (`x - mean`) must not overflow it.
const MAX_MAGNITUDE: f64 = 1e30;

fn number(cell: &str) -> Option<f64> {
    cell.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && v.abs() <= MAX_MAGNITUDE)
}

#[derive(Debug, Clone, PartialEq)]
enum ColumnEncoding {
    Numeric {
        median: f64,
        mean: f64,
        std: f64,
        missing_indicator: bool,
    },
    Categorical {
        categories: Vec<String>,
        mode: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Column {
    name: String,
    /// Position in the rows given to `fit` and `transform`.
    index: usize,
    encoding: ColumnEncoding,
}

/// The fitted encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct TabularEncoder {
    columns: Vec<Column>,
}

impl TabularEncoder {
    /// Fits on the train rows; `feature_columns` are the positions to encode, in order.
    pub fn fit(
        column_names: &[String],
        rows: &[Vec<String>],
        feature_columns: &[usize],
        max_categories: usize,
    ) -> Self {
        let columns = feature_columns
            .iter()
            .map(|index| Column {
                name: column_names[*index].clone(),
                index: *index,
                encoding: fit_column(rows.iter().map(|row| row[*index].as_str()), max_categories),
            })
            .collect();
        Self { columns }
    }

    /// Features per sample.
    pub fn width(&self) -> usize {
        self.columns
            .iter()
            .map(|column| match &column.encoding {
                ColumnEncoding::Numeric {
                    missing_indicator, ..
                } => 1 + usize::from(*missing_indicator),
                ColumnEncoding::Categorical { categories, .. } => categories.len(),
            })
            .sum()
    }

    /// One name per feature: `age`, `age=missing`, `sex=female`, …
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width());
        for column in &self.columns {
            match &column.encoding {
                ColumnEncoding::Numeric {
                    missing_indicator, ..
                } => {
                    names.push(column.name.clone());
                    if *missing_indicator {
                        names.push(format!("{}=missing", column.name));
                    }
                }
                ColumnEncoding::Categorical { categories, .. } => {
                    names.extend(categories.iter().map(|c| format!("{}={c}", column.name)));
                }
            }
        }
        names
    }

    /// Per-feature mean and standard deviation for the manifest: train statistics for numeric
    /// features, (0, 1) for indicators and one-hot features, which stay as they are.
    pub fn normalization(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for column in &self.columns {
            match &column.encoding {
                ColumnEncoding::Numeric {
                    mean: m,
                    std: s,
                    missing_indicator,
                    ..
                } => {
                    mean.push(*m);
                    std.push(*s);
                    if *missing_indicator {
                        mean.push(0.0);
                        std.push(1.0);
                    }
                }
                ColumnEncoding::Categorical { categories, .. } => {
                    mean.extend(std::iter::repeat_n(0.0, categories.len()));
                    std.extend(std::iter::repeat_n(1.0, categories.len()));
                }
            }
        }
        (mean, std)
    }

    /// The unnormalised features of `rows`, `[rows.len(), width]` row-major.
    pub fn transform(&self, rows: &[Vec<String>]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.width());
        for row in rows {
            for column in &self.columns {
                let cell = row[column.index].as_str();
                match &column.encoding {
                    ColumnEncoding::Numeric {
                        median,
                        missing_indicator,
                        ..
                    } => {
                        let value = if is_missing(cell) { None } else { number(cell) };
                        out.push(value.unwrap_or(*median) as f32);
                        if *missing_indicator {
                            out.push(if value.is_none() { 1.0 } else { 0.0 });
                        }
                    }
                    ColumnEncoding::Categorical { categories, mode } => {
                        let cell = if is_missing(cell) { mode } else { cell.trim() };
                        out.extend(
                            categories
                                .iter()
                                .map(|category| if category == cell { 1.0 } else { 0.0 }),
                        );
                    }
                }
            }
        }
        out
    }
}

fn fit_column<'a>(cells: impl Iterator<Item = &'a str>, max_categories: usize) -> ColumnEncoding {
    let cells: Vec<&str> = cells.collect();
    let present: Vec<&str> = cells.iter().copied().filter(|c| !is_missing(c)).collect();
    let numbers: Vec<f64> = present.iter().filter_map(|c| number(c)).collect();
    if !present.is_empty() && numbers.len() == present.len() {
        let mut sorted = numbers.clone();
        sorted.sort_by(f64::total_cmp);
        let median = if sorted.len() % 2 == 1 {
            sorted[sorted.len() / 2]
        } else {
            (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
        };
        let missing = cells.len() - present.len();
        let imputed: Vec<f64> = numbers
            .iter()
            .copied()
            .chain(std::iter::repeat_n(median, missing))
            .collect();
        let mean = imputed.iter().sum::<f64>() / imputed.len() as f64;
        let variance =
            imputed.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / imputed.len() as f64;
        return ColumnEncoding::Numeric {
            median,
            mean,
            std: if variance > 0.0 { variance.sqrt() } else { 1.0 },
            missing_indicator: missing > 0,
        };
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for cell in &present {
        *counts.entry(cell.trim()).or_default() += 1;
    }
    let mut by_frequency: Vec<(&str, usize)> = counts.into_iter().collect();
    by_frequency.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mode = by_frequency.first().map_or("", |(c, _)| *c).to_owned();
    let mut categories: Vec<String> = by_frequency
        .into_iter()
        .take(max_categories.max(1))
        .map(|(c, _)| c.to_owned())
        .collect();
    categories.sort();
    ColumnEncoding::Categorical { categories, mode }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cells: &[[&str; 2]]) -> Vec<Vec<String>> {
        cells
            .iter()
            .map(|row| row.iter().map(|c| (*c).to_owned()).collect())
            .collect()
    }

    #[test]
    fn numeric_gaps_get_the_median_and_an_indicator_categories_one_hot() {
        let names = vec!["age".to_owned(), "sex".to_owned()];
        let train = rows(&[["20", "male"], ["", "female"], ["40", "male"], ["30", "?"]]);
        let encoder = TabularEncoder::fit(&names, &train, &[0, 1], 10);
        assert_eq!(
            encoder.feature_names(),
            ["age", "age=missing", "sex=female", "sex=male"]
        );
        let encoded = encoder.transform(&train);
        assert_eq!(&encoded[4..8], &[30.0, 1.0, 1.0, 0.0]);
        assert_eq!(&encoded[12..16], &[30.0, 0.0, 0.0, 1.0], "mode imputed");
        let unseen = encoder.transform(&rows(&[["50", "other"]]));
        assert_eq!(unseen, [50.0, 0.0, 0.0, 0.0]);
        let (mean, std) = encoder.normalization();
        assert_eq!(mean, [30.0, 0.0, 0.0, 0.0]);
        assert!((std[0] - 50f64.sqrt()).abs() < 1e-12);
        assert_eq!(&std[1..], &[1.0, 1.0, 1.0]);
    }
}

/// Any cells (numbers, gaps, arbitrary Unicode categories) encode to finite features of the
/// declared width, and the feature names name every one of them.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,10}",
            "[0-9]{1,4}(\\.[0-9]{1,3})?",
            Just(String::new()),
            Just("NaN".to_owned()),
            Just("1e999".to_owned()),
            Just("1e300".to_owned()),
            Just("-3.3e38".to_owned()),
            Just(" ?".to_owned()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_cells_encode_finite_features(
            width in 1..5usize,
            cells in proptest::collection::vec(cell(), 1..80),
            unseen in proptest::collection::vec(cell(), 5),
            max_categories in 0..8usize,
        ) {
            let names: Vec<String> = (0..width).map(|i| format!("列{i}")).collect();
            let train: Vec<Vec<String>> = cells.chunks_exact(width).map(<[String]>::to_vec).collect();
            prop_assume!(!train.is_empty());
            let encoder = TabularEncoder::fit(&names, &train, &(0..width).collect::<Vec<_>>(), max_categories);
            let test: Vec<Vec<String>> = unseen.chunks_exact(width).map(<[String]>::to_vec).collect();
            for rows in [&train, &test] {
                let features = encoder.transform(rows);
                prop_assert_eq!(features.len(), rows.len() * encoder.width());
                prop_assert!(features.iter().all(|v| v.is_finite()), "{:?}", features);
            }
            prop_assert_eq!(encoder.feature_names().len(), encoder.width());
            let (mean, std) = encoder.normalization();
            prop_assert_eq!(mean.len(), encoder.width());
            prop_assert!(std.iter().all(|s| s.is_finite() && *s > 0.0), "{:?}", std);
            prop_assert!(mean.iter().all(|m| m.is_finite()));
        }
    }
}
