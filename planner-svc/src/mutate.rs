//! Mutations of a candidate for evolution, on the raw ModelSpec + TrainSpec (so candidates from
//! any strategy, an LLM's included, can be refined): wider, narrower, deeper, shallower, another
//! learning rate, dropout, normalisation, batch size, epochs. Each says what it changed; a
//! mutation that does not apply to a candidate returns `None`, and a mutated spec still goes
//! through `ra-spec` validation before it is proposed.

use ra_spec::{Layer, ModelSpec, TrainSpec};
use rand::Rng;

use crate::space::round2;

/// A mutated candidate and what changed, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub model: ModelSpec,
    pub train: TrainSpec,
    pub change: String,
}

/// Index of the final (classifier) linear layer: the last top-level Linear.
fn final_linear(layers: &[Layer]) -> Option<usize> {
    layers
        .iter()
        .rposition(|l| matches!(l, Layer::Linear { .. }))
}

fn scale(value: u32, factor: f64) -> u32 {
    ((f64::from(value) * factor).round() as u32).clamp(4, 4096)
}

/// Every width (channels, hidden units, embedding size) times `factor`, the classifier (layer
/// `keep`) kept; input sizes are left to inference.
fn rescale(layers: &[Layer], factor: f64, keep: Option<usize>) -> Vec<Layer> {
    let mut out = layers.to_vec();
    for (index, layer) in out.iter_mut().enumerate() {
        match layer {
            Layer::Conv2d {
                out_channels,
                in_channels,
                ..
            }
            | Layer::Conv1d {
                out_channels,
                in_channels,
                ..
            } => {
                *out_channels = scale(*out_channels, factor);
                *in_channels = 0;
            }
            Layer::Linear {
                out_features,
                in_features,
                ..
            } => {
                if Some(index) != keep {
                    *out_features = scale(*out_features, factor);
                }
                *in_features = 0;
            }
            Layer::Embedding { embedding_dim } => *embedding_dim = scale(*embedding_dim, factor),
            Layer::Residual { layers, .. } => *layers = rescale(layers, factor, None),
            _ => {}
        }
    }
    out
}

/// One more block like the last one: a residual block, a shape-keeping conv group, or a hidden
/// linear group before the classifier.
fn deeper(layers: &[Layer]) -> Option<(Vec<Layer>, &'static str)> {
    if let Some(last) = layers
        .iter()
        .rposition(|l| matches!(l, Layer::Residual { .. }))
    {
        let mut out = layers.to_vec();
        out.insert(last + 1, layers[last].clone());
        return Some((out, "deeper: one more residual block"));
    }
    let last_conv = layers.iter().rposition(|l| {
        matches!(l, Layer::Conv2d { kernel_size, stride: 1, padding, .. } if *kernel_size == 2 * padding + 1)
    });
    if let Some(start) = last_conv {
        let end = (start + 1..layers.len())
            .find(|&i| {
                !matches!(
                    layers[i],
                    Layer::BatchNorm { .. } | Layer::Activation { .. }
                )
            })
            .unwrap_or(layers.len());
        let mut out = layers.to_vec();
        let group: Vec<Layer> = layers[start..end].to_vec();
        out.splice(end..end, group);
        return Some((out, "deeper: one more convolution in the last stage"));
    }
    let classifier = final_linear(layers)?;
    let hidden = layers[..classifier]
        .iter()
        .rposition(|l| matches!(l, Layer::Linear { .. }))?;
    let mut out = layers.to_vec();
    let group: Vec<Layer> = layers[hidden..classifier].to_vec();
    out.splice(classifier..classifier, group);
    Some((out, "deeper: one more hidden layer"))
}

/// One block fewer: the last residual block (if several) or the last hidden linear group (if
/// several).
fn shallower(layers: &[Layer]) -> Option<(Vec<Layer>, &'static str)> {
    let residuals: Vec<usize> = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l, Layer::Residual { .. }))
        .map(|(i, _)| i)
        .collect();
    if residuals.len() >= 2 {
        let mut out = layers.to_vec();
        out.remove(residuals[residuals.len() - 1]);
        return Some((out, "shallower: one residual block fewer"));
    }
    let classifier = final_linear(layers)?;
    let hidden: Vec<usize> = layers[..classifier]
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l, Layer::Linear { .. }))
        .map(|(i, _)| i)
        .collect();
    if hidden.len() >= 2 {
        let mut out = layers.to_vec();
        out.drain(hidden[hidden.len() - 1]..classifier);
        return Some((out, "shallower: one hidden layer fewer"));
    }
    None
}

/// Dropout added before the classifier, changed, or removed.
fn dropout(layers: &[Layer], rng: &mut impl Rng) -> Option<(Vec<Layer>, String)> {
    let has = layers.iter().any(|l| matches!(l, Layer::Dropout { .. }));
    if has {
        if rng.random_bool(0.5) {
            let out = layers
                .iter()
                .filter(|l| !matches!(l, Layer::Dropout { .. }))
                .cloned()
                .collect();
            return Some((out, "dropout removed".into()));
        }
        let probability = if rng.random_bool(0.5) { 0.1 } else { 0.4 };
        let out = layers
            .iter()
            .map(|l| match l {
                Layer::Dropout { .. } => Layer::Dropout { probability },
                other => other.clone(),
            })
            .collect();
        return Some((out, format!("dropout set to {probability}")));
    }
    let classifier = final_linear(layers)?;
    let mut out = layers.to_vec();
    out.insert(classifier, Layer::Dropout { probability: 0.2 });
    Some((out, "dropout 0.2 before the classifier".into()))
}

/// Normalisation removed, or added after every top-level convolution (batch norm) or hidden
/// linear layer (layer norm).
fn normalisation(layers: &[Layer]) -> Option<(Vec<Layer>, &'static str)> {
    let is_norm = |l: &Layer| matches!(l, Layer::BatchNorm { .. } | Layer::LayerNorm { .. });
    if layers.iter().any(is_norm) {
        return Some((
            layers.iter().filter(|l| !is_norm(l)).cloned().collect(),
            "normalisation removed",
        ));
    }
    let classifier = final_linear(layers)?;
    let mut out = Vec::with_capacity(layers.len() * 2);
    let mut added = false;
    for (index, layer) in layers.iter().enumerate() {
        out.push(layer.clone());
        match layer {
            Layer::Conv2d { .. } => {
                out.push(Layer::BatchNorm {
                    epsilon: None,
                    momentum: None,
                });
                added = true;
            }
            Layer::Linear { .. } if index != classifier => {
                out.push(Layer::LayerNorm { epsilon: None });
                added = true;
            }
            _ => {}
        }
    }
    added.then_some((
        out,
        "normalisation added (batch norm after convolutions, layer norm after hidden layers)",
    ))
}

/// Longer training (about twice the epochs, within `max_epochs`) for a candidate whose
/// curves were still improving at its last epoch; `None` at the cap.
pub fn lengthen(model: &ModelSpec, train: &TrainSpec, max_epochs: u32) -> Option<Mutation> {
    let epochs = (train.epochs.saturating_mul(2)).clamp(train.epochs + 1, max_epochs.max(1));
    if epochs <= train.epochs {
        return None;
    }
    Some(Mutation {
        model: model.clone(),
        train: TrainSpec {
            epochs,
            ..train.clone()
        },
        change: format!(
            "longer training, epochs {} → {epochs} (its validation curves were still improving at the last epoch)",
            train.epochs
        ),
    })
}

/// A random mutation of `model` + `train`, or `None` if the one drawn does not apply.
pub fn mutate(
    model: &ModelSpec,
    train: &TrainSpec,
    max_epochs: u32,
    train_samples: u64,
    rng: &mut impl Rng,
) -> Option<Mutation> {
    let layers = &model.layers;
    let mut new_model = model.clone();
    let mut new_train = train.clone();
    let change: String = match rng.random_range(0..8) {
        0 => {
            new_model.layers = rescale(layers, 2.0, final_linear(layers));
            "wider: every width ×2".into()
        }
        1 => {
            new_model.layers = rescale(layers, 0.5, final_linear(layers));
            "narrower: every width ÷2".into()
        }
        2 => {
            let (out, what) = deeper(layers)?;
            new_model.layers = out;
            what.into()
        }
        3 => {
            let (out, what) = shallower(layers)?;
            new_model.layers = out;
            what.into()
        }
        4 => {
            let factor = if rng.random_bool(0.5) { 3.0 } else { 1.0 / 3.0 };
            new_train.learning_rate = round2((train.learning_rate * factor).clamp(1e-5, 1.0));
            format!(
                "learning rate {} → {}",
                train.learning_rate, new_train.learning_rate
            )
        }
        5 => {
            let (out, what) = dropout(layers, rng)?;
            new_model.layers = out;
            what
        }
        6 => {
            let (out, what) = normalisation(layers)?;
            new_model.layers = out;
            what.into()
        }
        _ => {
            if rng.random_bool(0.5) {
                new_train.batch_size = crate::space::fit_batch(
                    if rng.random_bool(0.5) {
                        train.batch_size * 2
                    } else {
                        train.batch_size / 2
                    }
                    .clamp(8, 512),
                    train_samples,
                );
                format!("batch size {} → {}", train.batch_size, new_train.batch_size)
            } else {
                new_train.epochs = if rng.random_bool(0.5) {
                    train.epochs + 2
                } else {
                    train.epochs.saturating_sub(1)
                }
                .clamp(1, max_epochs.max(1));
                format!("epochs {} → {}", train.epochs, new_train.epochs)
            }
        }
    };
    if new_model == *model && new_train == *train {
        return None;
    }
    Some(Mutation {
        model: new_model,
        train: new_train,
        change,
    })
}
