//! `synthetic-tabular`: `size` numeric columns and two categorical ones, with missing cells
//! (written "?", as real tables do), labelled by a hidden linear rule plus noise. The table is
//! text, so it goes through the same typing, imputation and one-hot encoding as a real CSV.

use rand::Rng;

use super::{SyntheticOptions, gaussian};
use crate::raw::Samples;

const COLOURS: [&str; 5] = ["red", "green", "blue", "yellow", "black"];
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

pub(super) fn draw(
    options: &SyntheticOptions,
    labels: &[i64],
    rng: &mut impl Rng,
) -> (Samples, Vec<String>) {
    let numeric = options.size;
    let classes = options.num_classes;
    let signal = 2.5 * (1.0 - 0.7 * options.difficulty);
    // Per class: a mean shift of every numeric column and a preferred colour and region.
    let shifts: Vec<Vec<f64>> = (0..classes)
        .map(|_| {
            (0..numeric)
                .map(|_| signal * gaussian(rng) / (numeric as f64).sqrt())
                .collect()
        })
        .collect();
    let missing_rate = 0.02 + 0.08 * options.difficulty;
    let mut columns: Vec<String> = (0..numeric).map(|i| format!("x{i}")).collect();
    columns.extend(["colour".to_owned(), "region".to_owned()]);
    let mut rows = Vec::with_capacity(labels.len());
    for label in labels {
        let class = *label as usize;
        let mut row = Vec::with_capacity(numeric + 2);
        for shift in &shifts[class] {
            let value = 10.0 + 3.0 * (shift + options.noise * gaussian(rng));
            row.push(format!("{value:.4}"));
        }
        let typical = rng.random_bool(0.75 - 0.35 * options.difficulty);
        let colour = if typical {
            COLOURS[class % COLOURS.len()]
        } else {
            COLOURS[rng.random_range(0..COLOURS.len())]
        };
        let region = REGIONS[(class + rng.random_range(0..2)) % REGIONS.len()];
        row.push(colour.to_owned());
        row.push(region.to_owned());
        for cell in &mut row {
            if rng.random_bool(missing_rate) {
                *cell = "?".to_owned();
            }
        }
        rows.push(row);
    }
    let class_names = (0..classes).map(|c| format!("class_{c}")).collect();
    (Samples::Table { columns, rows }, class_names)
}
