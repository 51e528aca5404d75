//! Search spaces per input kind, sampled at random: MLPs for tabular features; VGG-style CNNs
//! and small ResNets for images; an embedding bag or a 1-D convolution for text; and the
//! training recipe (optimizer, learning rate, schedule, batch size, epochs, weight decay).
//! Every sample comes with a description in words for the proposal's rationale.

use ra_spec::{
    Activation, InputSpec, Layer, ModelSpec, Optimizer, PoolKind, Schedule, SkipConnection,
    TrainSpec,
};
use rand::Rng;
use rand::seq::IndexedRandom;

/// A sampled model or recipe and what it is, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<T> {
    pub value: T,
    pub description: String,
}

/// Families the planner knows, as named in goals ("cnn", "resnet", "mlp", "text").
pub const FAMILIES: &[&str] = &["mlp", "cnn", "resnet", "text"];

/// The families that fit `input`.
pub fn families_for(input: &InputSpec) -> &'static [&'static str] {
    match input {
        InputSpec::Image { .. } => &["cnn", "resnet"],
        InputSpec::Tabular { .. } => &["mlp"],
        InputSpec::Text { .. } => &["text"],
    }
}

fn activation(rng: &mut impl Rng) -> Activation {
    *[
        Activation::Relu,
        Activation::Relu,
        Activation::Gelu,
        Activation::Silu,
    ]
    .choose(rng)
    .unwrap_or(&Activation::Relu)
}

fn pick<T: Copy>(rng: &mut impl Rng, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())]
}

fn act(function: Activation) -> Layer {
    Layer::Activation { function }
}

fn conv(out_channels: u32) -> Layer {
    Layer::conv2d(out_channels, 3, 1, 1)
}

fn batch_norm() -> Layer {
    Layer::BatchNorm {
        epsilon: None,
        momentum: None,
    }
}

fn mlp(rng: &mut impl Rng, num_classes: u32) -> (Vec<Layer>, String) {
    let depth = rng.random_range(1..=3);
    let width = pick(rng, &[32, 64, 128, 256]);
    let function = activation(rng);
    let dropout = pick(rng, &[0.0, 0.0, 0.1, 0.3]);
    let norm = rng.random_bool(0.3);
    let mut layers = Vec::new();
    for _ in 0..depth {
        layers.push(Layer::linear(width));
        if norm {
            layers.push(Layer::LayerNorm { epsilon: None });
        }
        layers.push(act(function));
        if dropout > 0.0 {
            layers.push(Layer::Dropout {
                probability: dropout,
            });
        }
    }
    layers.push(Layer::linear(num_classes));
    let description = format!(
        "MLP, {depth} hidden layer(s) of {width} ({}){}{}",
        function.name(),
        if norm { ", layer norm" } else { "" },
        if dropout > 0.0 {
            format!(", dropout {dropout}")
        } else {
            String::new()
        }
    );
    (layers, description)
}

fn vgg(rng: &mut impl Rng, side: u32, num_classes: u32) -> (Vec<Layer>, String) {
    // No more poolings than keep the image at least 2×2.
    let max_stages = (1..=3).filter(|s| side >> s >= 2).max().unwrap_or(1);
    let stages = rng.random_range(1..=max_stages);
    let base = pick(rng, &[16, 32, 64]);
    let convs = rng.random_range(1..=2);
    let norm = rng.random_bool(0.5);
    let function = activation(rng);
    let mut layers = Vec::new();
    let mut channels = base;
    for stage in 0..stages {
        for _ in 0..convs {
            layers.push(conv(channels));
            if norm {
                layers.push(batch_norm());
            }
            layers.push(act(function));
        }
        if side >> (stage + 1) >= 2 {
            layers.push(Layer::max_pool(2));
        }
        channels *= 2;
    }
    let hidden = pick(rng, &[64, 128]);
    let global = rng.random_bool(0.5);
    layers.push(if global {
        Layer::GlobalAvgPool
    } else {
        Layer::Flatten
    });
    layers.extend([
        Layer::linear(hidden),
        act(function),
        Layer::linear(num_classes),
    ]);
    let description = format!(
        "VGG-style CNN, {stages} stage(s) of {convs} conv(s) from {base} channels ({}){}, {} head with {hidden} hidden",
        function.name(),
        if norm { ", batch norm" } else { "" },
        if global { "global-average" } else { "flatten" }
    );
    (layers, description)
}

fn resnet(rng: &mut impl Rng, side: u32, num_classes: u32) -> (Vec<Layer>, String) {
    let width = pick(rng, &[16, 32, 64]);
    let blocks = rng.random_range(1..=3);
    let mut layers = vec![conv(width), batch_norm(), act(Activation::Relu)];
    if side >= 16 {
        layers.push(Layer::Pool2d {
            pool: PoolKind::Max,
            kernel_size: 2,
            stride: None,
            padding: 0,
        });
    }
    for _ in 0..blocks {
        layers.push(Layer::Residual {
            layers: vec![
                conv(width),
                batch_norm(),
                act(Activation::Relu),
                conv(width),
                batch_norm(),
            ],
            skip: SkipConnection::Identity,
            post_activation: Some(Activation::Relu),
        });
    }
    layers.extend([Layer::GlobalAvgPool, Layer::linear(num_classes)]);
    (
        layers,
        format!("small ResNet, {blocks} residual block(s) of {width} channels"),
    )
}

fn text(rng: &mut impl Rng, num_classes: u32) -> (Vec<Layer>, String) {
    let dim = pick(rng, &[32, 64, 128]);
    let hidden = pick(rng, &[32, 64, 128]);
    if rng.random_bool(0.5) {
        let layers = vec![
            Layer::Embedding { embedding_dim: dim },
            Layer::SequenceMeanPool,
            Layer::linear(hidden),
            act(Activation::Relu),
            Layer::linear(num_classes),
        ];
        (
            layers,
            format!("embedding bag ({dim}-d), mean pooled, {hidden} hidden"),
        )
    } else {
        let kernel = pick(rng, &[3, 5]);
        let layers = vec![
            Layer::Embedding { embedding_dim: dim },
            Layer::Conv1d {
                out_channels: hidden,
                kernel_size: kernel,
                stride: 1,
                padding: kernel / 2,
                bias: true,
                in_channels: 0,
            },
            act(Activation::Relu),
            Layer::SequenceMeanPool,
            Layer::linear(num_classes),
        ];
        (
            layers,
            format!(
                "embedding ({dim}-d) + 1-D convolution of {hidden} (kernel {kernel}), mean pooled"
            ),
        )
    }
}

/// A random model of `family` (one of [`families_for`] `input`) for `num_classes` classes.
pub fn sample_model(
    rng: &mut impl Rng,
    family: &str,
    input: &InputSpec,
    num_classes: u32,
) -> Sample<ModelSpec> {
    let side = match input {
        InputSpec::Image { height, width, .. } => (*height).min(*width),
        _ => 0,
    };
    let (layers, description) = match family {
        "cnn" => vgg(rng, side, num_classes),
        "resnet" => resnet(rng, side, num_classes),
        "text" => text(rng, num_classes),
        _ => mlp(rng, num_classes),
    };
    Sample {
        value: ModelSpec {
            name: format!("{family}-{:04x}", rng.random::<u16>()),
            input: input.clone(),
            num_classes,
            layers,
        },
        description,
    }
}

/// Steps per epoch a batch size should leave at least (on sets large enough for it).
pub const MIN_STEPS_PER_EPOCH: u64 = 16;
/// Sample-epochs a session's default epoch cap grows to on small training sets.
const SAMPLE_EPOCHS: u64 = 20_000;
/// The most epochs that growth allows.
const MAX_SCALED_EPOCHS: u32 = 40;

/// `batch_size` fitted to a training set of `train_samples` (0: unknown, unchanged): at most
/// the power of two that leaves [`MIN_STEPS_PER_EPOCH`] steps per epoch, at least 8.
pub fn fit_batch(batch_size: u32, train_samples: u64) -> u32 {
    if train_samples == 0 {
        return batch_size;
    }
    let most = (train_samples / MIN_STEPS_PER_EPOCH).max(8);
    let most = 1u64 << (63 - most.leading_zeros());
    batch_size
        .min(u32::try_from(most).unwrap_or(u32::MAX))
        .max(8)
}

/// A session's epoch cap for `train_samples` training samples: `default` on large sets, up
/// to [`MAX_SCALED_EPOCHS`] on small ones (about 20,000 sample-epochs).
pub fn epochs_for(train_samples: u64, default: u32) -> u32 {
    if train_samples == 0 {
        return default;
    }
    let wanted = u32::try_from(SAMPLE_EPOCHS / train_samples).unwrap_or(u32::MAX);
    wanted.clamp(default, MAX_SCALED_EPOCHS.max(default))
}

/// A random training recipe with at most `max_epochs` epochs.
pub fn sample_train(rng: &mut impl Rng, max_epochs: u32) -> Sample<TrainSpec> {
    let (optimizer, name, low, high) = match rng.random_range(0..3) {
        0 => (Optimizer::default(), "Adam", 3e-4, 1e-2),
        1 => (
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
            "AdamW",
            3e-4,
            1e-2,
        ),
        _ => (
            Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            "SGD (Nesterov 0.9)",
            1e-2,
            1e-1,
        ),
    };
    // Log-uniform learning rate, rounded to 2 significant digits.
    let exponent = rng.random_range(f64::log10(low)..f64::log10(high));
    let learning_rate = round2(10f64.powf(exponent));
    let cosine = rng.random_bool(0.5);
    let batch_size = pick(rng, &[32, 64, 128]);
    let epochs = rng.random_range(max_epochs.div_ceil(2).max(1)..=max_epochs.max(1));
    let weight_decay = pick(rng, &[0.0, 1e-4, 1e-3]);
    let train = TrainSpec {
        optimizer,
        learning_rate,
        schedule: if cosine {
            Schedule::Cosine {
                min_learning_rate: 0.0,
                warmup_epochs: 0,
            }
        } else {
            Schedule::Constant
        },
        weight_decay,
        batch_size,
        epochs,
        ..TrainSpec::default()
    };
    let description = format!(
        "{name} lr {learning_rate}{}, batch {batch_size}, {epochs} epoch(s){}",
        if cosine { " with cosine decay" } else { "" },
        if weight_decay > 0.0 {
            format!(", weight decay {weight_decay}")
        } else {
            String::new()
        }
    );
    Sample {
        value: train,
        description,
    }
}

/// `value` rounded to two significant digits.
pub fn round2(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let scale = 10f64.powi(1 - value.abs().log10().floor() as i32);
    (value * scale).round() / scale
}

#[cfg(test)]
mod scaling_tests {
    use super::*;

    #[test]
    fn batches_and_epochs_follow_the_training_set() {
        // iris: 120 training rows → batch 8 (15 steps per epoch), 40 epochs.
        assert_eq!(fit_batch(64, 120), 8);
        assert_eq!(epochs_for(120, 8), 40);
        // titanic: 712 rows → batch 32 (22 steps), 28 epochs.
        assert_eq!(fit_batch(64, 712), 32);
        assert_eq!(epochs_for(712, 8), 28);
        // Large sets keep what was asked.
        assert_eq!(fit_batch(64, 50_000), 64);
        assert_eq!(epochs_for(50_000, 8), 8);
        assert_eq!(fit_batch(64, 0), 64);
        assert_eq!(epochs_for(0, 8), 8);
        assert_eq!(fit_batch(64, 20), 8, "never below 8");
    }
}
