//! `synthetic`: one Gaussian cluster per class. Class centres are drawn on a sphere whose
//! radius shrinks with the difficulty; samples are a centre plus `noise`-scaled Gaussian noise.
//! With `channels` > 0 the vector is laid out as a C×size×size image and quantised to 0-255.

use rand::Rng;

use super::{SyntheticOptions, gaussian};
use crate::raw::Samples;

pub(super) fn draw(
    options: &SyntheticOptions,
    labels: &[i64],
    rng: &mut impl Rng,
) -> (Samples, Vec<String>) {
    let width = if options.channels > 0 {
        options.channels * options.size * options.size
    } else {
        options.size
    };
    let separation = 4.0 * (1.0 - 0.75 * options.difficulty);
    let centres: Vec<Vec<f64>> = (0..options.num_classes)
        .map(|_| {
            let direction: Vec<f64> = (0..width).map(|_| gaussian(rng)).collect();
            let norm = direction
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            direction.iter().map(|v| v / norm * separation).collect()
        })
        .collect();
    let mut values = Vec::with_capacity(labels.len() * width);
    for label in labels {
        let centre = &centres[*label as usize];
        values.extend(centre.iter().map(|c| c + options.noise * gaussian(rng)));
    }
    let class_names = (0..options.num_classes)
        .map(|c| format!("cluster_{c}"))
        .collect();
    if options.channels == 0 {
        let values = values.into_iter().map(|v| v as f32).collect();
        return (Samples::Features { width, values }, class_names);
    }
    let pixels = values
        .into_iter()
        .map(|v| (128.0 + 32.0 * v).round().clamp(0.0, 255.0) as u8)
        .collect();
    let side = options.size as u32;
    let samples = Samples::Images {
        channels: options.channels as u32,
        height: side,
        width: side,
        pixels,
    };
    (samples, class_names)
}
