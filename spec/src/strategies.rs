//! Proptest strategies of random model specs — valid and invalid alike, so that validation
//! and everything built on it (proto conversions, the trainer's modules) can be checked
//! against arbitrary input. Enabled by the `proptest` feature.

use proptest::prelude::*;

use crate::{Activation, InputSpec, Layer, ModelSpec, PoolKind, SkipConnection};

pub fn arb_activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Relu),
        Just(Activation::Gelu),
        Just(Activation::Silu),
        Just(Activation::Tanh)
    ]
}

pub fn arb_layer() -> impl Strategy<Value = Layer> {
    let leaf = prop_oneof![
        (0u32..40, 0u32..6, 0u32..3, 0u32..3, any::<bool>()).prop_map(|(o, k, s, p, bias)| {
            Layer::Conv2d {
                out_channels: o,
                kernel_size: k,
                stride: s,
                padding: p,
                bias,
                in_channels: 0,
            }
        }),
        (0u32..40, 0u32..6, 0u32..3, 0u32..3, any::<bool>()).prop_map(|(o, k, s, p, bias)| {
            Layer::Conv1d {
                out_channels: o,
                kernel_size: k,
                stride: s,
                padding: p,
                bias,
                in_channels: 0,
            }
        }),
        Just(Layer::BatchNorm {
            epsilon: None,
            momentum: None
        }),
        Just(Layer::LayerNorm { epsilon: None }),
        arb_activation().prop_map(|function| Layer::Activation { function }),
        (0u32..4, proptest::option::of(0u32..4), 0u32..3).prop_map(|(k, s, p)| Layer::Pool2d {
            pool: PoolKind::Max,
            kernel_size: k,
            stride: s,
            padding: p
        }),
        Just(Layer::GlobalAvgPool),
        Just(Layer::Flatten),
        (-0.5f64..1.5).prop_map(|probability| Layer::Dropout { probability }),
        (0u32..200, any::<bool>()).prop_map(|(o, bias)| Layer::Linear {
            out_features: o,
            bias,
            in_features: 0
        }),
        (0u32..64).prop_map(|embedding_dim| Layer::Embedding { embedding_dim }),
        Just(Layer::SequenceMeanPool),
    ];
    leaf.prop_recursive(2, 24, 4, |inner| {
        (proptest::collection::vec(inner, 0..4), any::<bool>()).prop_map(|(layers, projection)| {
            Layer::Residual {
                layers,
                skip: if projection {
                    SkipConnection::Projection
                } else {
                    SkipConnection::Identity
                },
                post_activation: None,
            }
        })
    })
}

pub fn arb_input() -> impl Strategy<Value = InputSpec> {
    prop_oneof![
        (0u32..4, 0u32..40, 0u32..40).prop_map(|(channels, height, width)| InputSpec::Image {
            channels,
            height,
            width
        }),
        (0u32..300).prop_map(|features| InputSpec::Tabular { features }),
        (0u32..2000, 0u32..100).prop_map(|(vocab_size, sequence_length)| InputSpec::Text {
            vocab_size,
            sequence_length
        }),
    ]
}

pub fn arb_spec() -> impl Strategy<Value = ModelSpec> {
    (
        arb_input(),
        0u32..20,
        proptest::collection::vec(arb_layer(), 0..10),
    )
        .prop_map(|(input, num_classes, layers)| ModelSpec {
            name: "random".into(),
            input,
            num_classes,
            layers,
        })
}

/// Specs that are valid by construction: every layer is drawn among those the current shape
/// accepts, with sizes that fit it, and the model ends in a linear layer onto the classes.
pub fn arb_valid_spec() -> impl Strategy<Value = ModelSpec> {
    let input = prop_oneof![
        (1u32..4, 2u32..20, 2u32..20).prop_map(|(channels, height, width)| InputSpec::Image {
            channels,
            height,
            width
        }),
        (1u32..100).prop_map(|features| InputSpec::Tabular { features }),
        (2u32..500, 1u32..20).prop_map(|(vocab_size, sequence_length)| InputSpec::Text {
            vocab_size,
            sequence_length
        }),
    ];
    (
        input,
        2u32..12,
        proptest::collection::vec(any::<u32>(), 0..32),
    )
        .prop_map(|(input, num_classes, genes)| grow_valid_spec(input, num_classes, &genes))
}

/// Reads the random choices one at a time.
struct Genes<'a>(std::slice::Iter<'a, u32>);

impl Genes<'_> {
    /// A number in `low..=high`.
    fn pick(&mut self, low: u32, high: u32) -> u32 {
        let gene = self.0.next().copied().unwrap_or(0);
        low + gene % (high - low + 1)
    }
}

fn grow_valid_spec(input: InputSpec, num_classes: u32, genes: &[u32]) -> ModelSpec {
    use crate::shape::{Shape, output_shape};
    let mut genes = Genes(genes.iter());
    let mut shape = Shape::of_input(&input);
    let mut layers = Vec::new();
    let activation = |genes: &mut Genes| Layer::Activation {
        function: [
            Activation::Relu,
            Activation::Gelu,
            Activation::Silu,
            Activation::Tanh,
        ][genes.pick(0, 3) as usize],
    };
    let steps = genes.pick(0, 8);
    for _ in 0..steps {
        let layer = match shape {
            Shape::Tokens { .. } => Layer::Embedding {
                embedding_dim: genes.pick(1, 16),
            },
            Shape::Image {
                channels,
                height,
                width,
            } => {
                let small = height.min(width) as u32;
                match genes.pick(0, 7) {
                    0 | 1 => {
                        let padding = genes.pick(0, 1);
                        let kernel = genes.pick(1, 3).min(small + 2 * padding);
                        Layer::conv2d(genes.pick(1, 12), kernel, genes.pick(1, 2), padding)
                    }
                    2 => Layer::batch_norm(),
                    3 => activation(&mut genes),
                    4 if small >= 2 => Layer::Pool2d {
                        pool: if genes.pick(0, 1) == 0 {
                            PoolKind::Max
                        } else {
                            PoolKind::Average
                        },
                        kernel_size: 2,
                        stride: None,
                        padding: 0,
                    },
                    5 => Layer::Residual {
                        layers: vec![
                            Layer::conv2d(channels as u32, 3, 1, 1),
                            activation(&mut genes),
                        ],
                        skip: SkipConnection::Identity,
                        post_activation: None,
                    },
                    6 => Layer::Residual {
                        layers: vec![Layer::conv2d(genes.pick(1, 12), 3, 2, 1)],
                        skip: SkipConnection::Projection,
                        post_activation: Some(Activation::Relu),
                    },
                    _ => Layer::Dropout {
                        probability: f64::from(genes.pick(0, 5)) / 10.0,
                    },
                }
            }
            Shape::Vector { features } => match genes.pick(0, 5) {
                0 | 1 => Layer::linear(genes.pick(1, 64)),
                2 => Layer::batch_norm(),
                3 => Layer::LayerNorm { epsilon: None },
                4 => Layer::Residual {
                    layers: vec![Layer::linear(features as u32), activation(&mut genes)],
                    skip: SkipConnection::Identity,
                    post_activation: None,
                },
                _ => Layer::Residual {
                    layers: vec![Layer::linear(genes.pick(1, 64))],
                    skip: SkipConnection::Projection,
                    post_activation: None,
                },
            },
            Shape::Sequence { length, .. } => match genes.pick(0, 5) {
                0 => {
                    let padding = genes.pick(0, 1);
                    let kernel = genes.pick(1, 3).min(length as u32 + 2 * padding);
                    Layer::Conv1d {
                        out_channels: genes.pick(1, 16),
                        kernel_size: kernel,
                        stride: genes.pick(1, 2),
                        padding,
                        bias: genes.pick(0, 1) == 1,
                        in_channels: 0,
                    }
                }
                1 => Layer::linear(genes.pick(1, 32)),
                2 => Layer::LayerNorm { epsilon: None },
                3 => Layer::batch_norm(),
                4 => activation(&mut genes),
                _ => Layer::SequenceMeanPool,
            },
        };
        shape = output_shape(&layer, shape);
        layers.push(layer);
    }
    let to_vector = match shape {
        Shape::Tokens { .. } => vec![
            Layer::Embedding {
                embedding_dim: genes.pick(1, 16),
            },
            Layer::SequenceMeanPool,
        ],
        Shape::Image { .. } if genes.pick(0, 1) == 0 => vec![Layer::GlobalAvgPool],
        Shape::Image { .. } | Shape::Sequence { .. } => vec![Layer::Flatten],
        Shape::Vector { .. } => Vec::new(),
    };
    layers.extend(to_vector);
    layers.push(Layer::linear(num_classes));
    ModelSpec {
        name: "generated-valid".into(),
        input,
        num_classes,
        layers,
    }
}
