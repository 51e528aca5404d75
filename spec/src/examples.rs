//! Reference models shared by benchmarks and tests, so that "the reference CNN" means one
//! network everywhere, and the baseline per input kind that quick-evaluator uses when given no
//! model and the planner's evolution starts from.

use crate::model::{InputSpec, Layer, ModelSpec, PoolKind};
use crate::train::TrainSpec;

/// The trainer issue's reference CNN — conv 16, ReLU, max-pool 2, conv 32, ReLU, max-pool 2,
/// flatten, linear 128, ReLU, linear — for `input` (images) and `num_classes`. The first linear
/// layer's input size is inferred, so the same network fits any image size.
pub fn reference_cnn(input: InputSpec, num_classes: u32) -> ModelSpec {
    ModelSpec {
        name: "reference-cnn".into(),
        input,
        num_classes,
        layers: vec![
            Layer::conv2d(16, 3, 1, 1),
            Layer::relu(),
            Layer::max_pool(2),
            Layer::conv2d(32, 3, 1, 1),
            Layer::relu(),
            Layer::max_pool(2),
            Layer::Flatten,
            Layer::linear(128),
            Layer::relu(),
            Layer::linear(num_classes),
        ],
    }
}

/// The baseline model for `input` with `num_classes` classes: a small CNN for images, an MLP
/// for tabular features, an embedding bag for text — a known-good starting point.
pub fn baseline(input: &InputSpec, num_classes: u32) -> ModelSpec {
    let (name, layers) = match input {
        InputSpec::Image { height, width, .. } => {
            // Two conv–ReLU–pool stages (pooling only while the image stays at least 4×4), then
            // flatten into a small classifier, or average globally when that would be large.
            let pool = || Layer::Pool2d {
                pool: PoolKind::Max,
                kernel_size: 2,
                stride: None,
                padding: 0,
            };
            let (mut h, mut w) = (*height, *width);
            let mut layers = Vec::new();
            for channels in [16, 32] {
                layers.extend([Layer::conv2d(channels, 3, 1, 1), Layer::relu()]);
                if h.min(w) >= 8 {
                    layers.push(pool());
                    (h, w) = (h / 2, w / 2);
                }
            }
            let flattened = u64::from(h) * u64::from(w) * 32;
            layers.push(if flattened <= 8192 {
                Layer::Flatten
            } else {
                Layer::GlobalAvgPool
            });
            layers.extend([Layer::linear(64), Layer::relu(), Layer::linear(num_classes)]);
            ("default-cnn", layers)
        }
        InputSpec::Tabular { .. } => (
            "default-mlp",
            vec![
                Layer::linear(128),
                Layer::relu(),
                Layer::Dropout { probability: 0.1 },
                Layer::linear(64),
                Layer::relu(),
                Layer::linear(num_classes),
            ],
        ),
        InputSpec::Text { .. } => (
            "default-embedding-bag",
            vec![
                Layer::Embedding { embedding_dim: 64 },
                Layer::SequenceMeanPool,
                Layer::linear(64),
                Layer::relu(),
                Layer::linear(num_classes),
            ],
        ),
    };
    ModelSpec {
        name: name.into(),
        input: input.clone(),
        num_classes,
        layers,
    }
}

/// The baseline recipe: Adam at 1e-3, batch 64, `epochs` epochs.
pub fn baseline_train(epochs: u32) -> TrainSpec {
    TrainSpec {
        epochs,
        ..TrainSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Budget;

    #[test]
    fn every_input_kind_gets_a_valid_baseline() {
        let inputs = [
            InputSpec::Image {
                channels: 3,
                height: 32,
                width: 32,
            },
            InputSpec::Image {
                channels: 1,
                height: 8,
                width: 8,
            },
            InputSpec::Tabular { features: 64 },
            InputSpec::Text {
                vocab_size: 1000,
                sequence_length: 32,
            },
        ];
        for input in inputs {
            let spec = baseline(&input, 10);
            let report = crate::validate_model(&spec, &Budget::default());
            assert!(report.is_ok(), "{input:?}: {report:?}");
        }
    }
}
