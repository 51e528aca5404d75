//! A sensible model and training recipe per input kind, for when the user gives none: a small
//! CNN for images, an MLP for tabular features, an embedding bag for text.

use ra_spec::{Activation, InputSpec, Layer, ModelSpec, PoolKind, TrainSpec};

fn relu() -> Layer {
    Layer::Activation {
        function: Activation::Relu,
    }
}

fn linear(out_features: u32) -> Layer {
    Layer::Linear {
        out_features,
        bias: true,
        in_features: 0,
    }
}

fn conv(out_channels: u32) -> Layer {
    Layer::Conv2d {
        out_channels,
        kernel_size: 3,
        stride: 1,
        padding: 1,
        bias: true,
        in_channels: 0,
    }
}

/// The default model for `input` with `num_classes` classes.
pub fn model(input: &InputSpec, num_classes: u32) -> ModelSpec {
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
                layers.extend([conv(channels), relu()]);
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
            layers.extend([linear(64), relu(), linear(num_classes)]);
            ("default-cnn", layers)
        }
        InputSpec::Tabular { .. } => (
            "default-mlp",
            vec![
                linear(128),
                relu(),
                Layer::Dropout { probability: 0.1 },
                linear(64),
                relu(),
                linear(num_classes),
            ],
        ),
        InputSpec::Text { .. } => (
            "default-embedding-bag",
            vec![
                Layer::Embedding { embedding_dim: 64 },
                Layer::SequenceMeanPool,
                linear(64),
                relu(),
                linear(num_classes),
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

/// The default recipe: Adam at 1e-3, batch 64, `epochs` epochs.
pub fn train(epochs: u32) -> TrainSpec {
    TrainSpec {
        epochs,
        ..TrainSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_kind_gets_a_valid_model() {
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
            let spec = model(&input, 10);
            let report = ra_spec::validate_model(&spec, &ra_spec::Budget::default());
            assert!(report.is_ok(), "{input:?}: {report:?}");
        }
    }
}
