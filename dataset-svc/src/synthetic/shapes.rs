//! `shapes`: one geometric figure per image, drawn with random position, size, rotation and
//! colours on a random background, antialiased (4×4 samples per pixel), then Gaussian pixel
//! noise. Difficulty lowers the contrast, widens the range of sizes and adds clutter strokes.
//! Classes are figures a rotation cannot turn into one another.

use std::f64::consts::{PI, TAU};

use rand::Rng;

use super::{SyntheticOptions, gaussian};
use crate::raw::Samples;

/// The figures, in label order.
pub const SHAPE_NAMES: [&str; 8] = [
    "circle",
    "square",
    "triangle",
    "cross",
    "star",
    "ring",
    "bar",
    "half-disk",
];

/// Whether the point (u, v), in the figure's own frame scaled to a unit radius, is inside.
fn inside(shape: usize, u: f64, v: f64) -> bool {
    let radius = u.hypot(v);
    match shape {
        0 => radius <= 1.0,
        1 => u.abs().max(v.abs()) <= 0.75,
        2 => regular_polygon(u, v, 3, 1.0),
        3 => (u.abs() <= 0.28 && v.abs() <= 0.95) || (v.abs() <= 0.28 && u.abs() <= 0.95),
        4 => star(u, v),
        5 => (0.55..=1.0).contains(&radius),
        6 => u.abs() <= 1.0 && v.abs() <= 0.25,
        _ => radius <= 1.0 && v >= -0.1,
    }
}

/// Inside the regular `sides`-gon with circumradius `r` and a vertex at the top.
fn regular_polygon(u: f64, v: f64, sides: usize, r: f64) -> bool {
    let sector = TAU / sides as f64;
    let angle = v.atan2(u) - PI / 2.0;
    let within = angle.rem_euclid(sector) - sector / 2.0;
    // Distance to the edge along this direction.
    u.hypot(v) * within.cos() <= r * (sector / 2.0).cos()
}

/// A five-pointed star, outer radius 1 and inner radius 0.42.
fn star(u: f64, v: f64) -> bool {
    let (outer, inner) = (1.0, 0.42);
    let sector = TAU / 5.0;
    let angle = (v.atan2(u) - PI / 2.0).rem_euclid(sector);
    let half = sector / 2.0;
    // The edge from the outer point (angle 0) to the inner point (angle half), mirrored.
    let t = if angle <= half { angle } else { sector - angle };
    let (ax, ay) = (outer, 0.0);
    let (bx, by) = (inner * half.cos(), inner * half.sin());
    let (px, py) = (u.hypot(v) * t.cos(), u.hypot(v) * t.sin());
    // Inside when the point is on the origin's side of the edge a→b.
    let cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax);
    let origin_cross = (bx - ax) * (0.0 - ay) - (by - ay) * (0.0 - ax);
    cross * origin_cross >= 0.0
}

fn random_colour(rng: &mut impl Rng, channels: usize) -> Vec<f64> {
    (0..channels)
        .map(|_| rng.random_range(0.0..255.0))
        .collect()
}

/// A colour at least `contrast` away (mean absolute difference) from `background`.
fn contrasting_colour(rng: &mut impl Rng, background: &[f64], contrast: f64) -> Vec<f64> {
    loop {
        let colour = random_colour(rng, background.len());
        let distance = colour
            .iter()
            .zip(background)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / background.len() as f64;
        if distance >= contrast {
            return colour;
        }
    }
}

pub(super) fn draw(
    options: &SyntheticOptions,
    labels: &[i64],
    rng: &mut impl Rng,
) -> (Samples, Vec<String>) {
    let (side, channels) = (options.size, options.channels);
    let difficulty = options.difficulty;
    let plane = side * side;
    let mut pixels = Vec::with_capacity(labels.len() * channels * plane);
    let mut image = vec![0f64; channels * plane];
    for label in labels {
        let background = random_colour(rng, channels);
        let contrast = 110.0 - 80.0 * difficulty;
        let foreground = contrasting_colour(rng, &background, contrast);
        for (c, value) in background.iter().enumerate() {
            image[c * plane..(c + 1) * plane].fill(*value);
        }
        let smallest = 0.35 - 0.17 * difficulty;
        let scale = side as f64 * rng.random_range(smallest..0.42);
        let margin = scale * 1.02;
        let centre_x = rng.random_range(margin..(side as f64 - margin).max(margin + 1e-9));
        let centre_y = rng.random_range(margin..(side as f64 - margin).max(margin + 1e-9));
        let rotation = rng.random_range(0.0..TAU);
        let (sin, cos) = rotation.sin_cos();
        let shape = *label as usize;
        paint(&mut image, side, &foreground, |x, y| {
            let (dx, dy) = ((x - centre_x) / scale, (y - centre_y) / scale);
            inside(shape, dx * cos + dy * sin, -dx * sin + dy * cos)
        });
        let strokes = (difficulty * 4.0).round() as usize;
        for _ in 0..strokes {
            let colour = random_colour(rng, channels);
            let (x0, y0) = (
                rng.random_range(0.0..side as f64),
                rng.random_range(0.0..side as f64),
            );
            let angle = rng.random_range(0.0..TAU);
            let (length, thickness) = (side as f64 * 0.3, 0.6);
            paint(&mut image, side, &colour, |x, y| {
                let (dx, dy) = (x - x0, y - y0);
                let along = dx * angle.cos() + dy * angle.sin();
                let across = -dx * angle.sin() + dy * angle.cos();
                (0.0..length).contains(&along) && across.abs() <= thickness
            });
        }
        let sigma = options.noise * 255.0 * (0.5 + difficulty);
        pixels.extend(
            image
                .iter()
                .map(|v| (v + sigma * gaussian(rng)).round().clamp(0.0, 255.0) as u8),
        );
    }
    let samples = Samples::Images {
        channels: channels as u32,
        height: side as u32,
        width: side as u32,
        pixels,
    };
    let names = SHAPE_NAMES[..options.num_classes]
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    (samples, names)
}

/// Blends `colour` into every pixel by the share of its 4×4 sub-samples that `covers`.
fn paint(image: &mut [f64], side: usize, colour: &[f64], covers: impl Fn(f64, f64) -> bool) {
    const SUB: usize = 4;
    let plane = side * side;
    for row in 0..side {
        for column in 0..side {
            let mut hits = 0;
            for sy in 0..SUB {
                for sx in 0..SUB {
                    let x = column as f64 + (sx as f64 + 0.5) / SUB as f64;
                    let y = row as f64 + (sy as f64 + 0.5) / SUB as f64;
                    hits += usize::from(covers(x, y));
                }
            }
            if hits == 0 {
                continue;
            }
            let coverage = hits as f64 / (SUB * SUB) as f64;
            for (c, value) in colour.iter().enumerate() {
                let pixel = &mut image[c * plane + row * side + column];
                *pixel = *pixel * (1.0 - coverage) + value * coverage;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_differ_where_expected() {
        assert!(inside(0, 0.0, 0.9) && !inside(0, 0.8, 0.8));
        assert!(inside(1, 0.7, 0.7) && !inside(1, 0.0, 0.9));
        assert!(inside(2, 0.0, 0.9) && !inside(2, 0.0, -0.9));
        assert!(inside(3, 0.0, 0.9) && !inside(3, 0.5, 0.5));
        assert!(inside(4, 0.0, 0.95) && inside(4, 0.0, 0.0) && !inside(4, 0.0, -0.95));
        assert!(!inside(5, 0.0, 0.0) && inside(5, 0.0, 0.8));
        assert!(inside(6, 0.9, 0.0) && !inside(6, 0.0, 0.9));
        assert!(inside(7, 0.0, 0.9) && !inside(7, 0.0, -0.9));
    }

    #[test]
    fn a_figure_is_drawn_in_the_foreground_colour() {
        let options = SyntheticOptions {
            num_samples: 1,
            num_classes: 2,
            size: 16,
            channels: 1,
            noise: 0.0,
            difficulty: 0.0,
        };
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
        let (samples, names) = draw(&options, &[0], &mut rng);
        assert_eq!(names, ["circle", "square"]);
        let Samples::Images { pixels, .. } = samples else {
            panic!("images expected");
        };
        let (low, high) = (
            pixels.iter().min().copied().unwrap_or(0),
            pixels.iter().max().copied().unwrap_or(0),
        );
        assert!(high - low >= 100, "contrast {low}..{high}");
    }
}
