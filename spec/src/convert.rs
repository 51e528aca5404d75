//! Conversions between the serde types and the `ra.common.v1` proto messages. Proto zero values
//! mean "default" where the contract says so (stride 0 → 1, pool stride 0 → kernel size,
//! epsilon 0 → the layer's default); a missing `oneof` or an unknown enum value is an error
//! naming the field.

use ra_proto::common::v1 as pb;

use crate::model::{Activation, InputSpec, Layer, ModelSpec, PoolKind, SkipConnection};
use crate::train::{Augmentation, Optimizer, Schedule, TrainSpec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConversionError {
    pub field: String,
    pub message: String,
}

fn missing(field: impl Into<String>, what: &str) -> ConversionError {
    ConversionError {
        field: field.into(),
        message: format!("is missing: give {what}"),
    }
}

fn nonzero_or(value: u32, default: u32) -> u32 {
    if value == 0 { default } else { value }
}

fn optional(value: f64) -> Option<f64> {
    (value != 0.0).then_some(value)
}

fn activation_from(raw: i32, field: &str) -> Result<Activation, ConversionError> {
    match pb::ActivationFunction::try_from(raw) {
        Ok(pb::ActivationFunction::Relu) => Ok(Activation::Relu),
        Ok(pb::ActivationFunction::Gelu) => Ok(Activation::Gelu),
        Ok(pb::ActivationFunction::Silu) => Ok(Activation::Silu),
        Ok(pb::ActivationFunction::Tanh) => Ok(Activation::Tanh),
        Ok(pb::ActivationFunction::Unspecified) | Err(_) => Err(ConversionError {
            field: field.to_owned(),
            message: format!("{raw} is not an activation: use RELU, GELU, SILU or TANH"),
        }),
    }
}

fn activation_to(function: Activation) -> pb::ActivationFunction {
    match function {
        Activation::Relu => pb::ActivationFunction::Relu,
        Activation::Gelu => pb::ActivationFunction::Gelu,
        Activation::Silu => pb::ActivationFunction::Silu,
        Activation::Tanh => pb::ActivationFunction::Tanh,
    }
}

impl TryFrom<&pb::InputSpec> for InputSpec {
    type Error = ConversionError;

    fn try_from(input: &pb::InputSpec) -> Result<Self, Self::Error> {
        use pb::input_spec::Kind;
        match input.kind.as_ref() {
            Some(Kind::Image(image)) => Ok(Self::Image {
                channels: image.channels,
                height: image.height,
                width: image.width,
            }),
            Some(Kind::Tabular(tabular)) => Ok(Self::Tabular {
                features: tabular.features,
            }),
            Some(Kind::Text(text)) => Ok(Self::Text {
                vocab_size: text.vocab_size,
                sequence_length: text.sequence_length,
            }),
            None => Err(missing("input.kind", "image, tabular or text")),
        }
    }
}

impl From<&InputSpec> for pb::InputSpec {
    fn from(input: &InputSpec) -> Self {
        use pb::input_spec::Kind;
        let kind = match *input {
            InputSpec::Image {
                channels,
                height,
                width,
            } => Kind::Image(pb::ImageInput {
                channels,
                height,
                width,
            }),
            InputSpec::Tabular { features } => Kind::Tabular(pb::TabularInput { features }),
            InputSpec::Text {
                vocab_size,
                sequence_length,
            } => Kind::Text(pb::TextInput {
                vocab_size,
                sequence_length,
            }),
        };
        Self { kind: Some(kind) }
    }
}

fn layer_from(layer: &pb::Layer, field: &str) -> Result<Layer, ConversionError> {
    use pb::layer::Kind;
    let kind = layer
        .kind
        .as_ref()
        .ok_or_else(|| missing(format!("{field}.kind"), "a layer type"))?;
    Ok(match kind {
        Kind::Conv2d(c) => Layer::Conv2d {
            out_channels: c.out_channels,
            kernel_size: c.kernel_size,
            stride: nonzero_or(c.stride, 1),
            padding: c.padding,
            bias: c.bias,
            in_channels: c.in_channels,
        },
        Kind::Conv1d(c) => Layer::Conv1d {
            out_channels: c.out_channels,
            kernel_size: c.kernel_size,
            stride: nonzero_or(c.stride, 1),
            padding: c.padding,
            bias: c.bias,
            in_channels: c.in_channels,
        },
        Kind::BatchNorm(b) => Layer::BatchNorm {
            epsilon: optional(b.epsilon),
            momentum: optional(b.momentum),
        },
        Kind::LayerNorm(l) => Layer::LayerNorm {
            epsilon: optional(l.epsilon),
        },
        Kind::Activation(a) => Layer::Activation {
            function: activation_from(a.function, &format!("{field}.activation.function"))?,
        },
        Kind::Pool2d(p) => Layer::Pool2d {
            pool: match pb::PoolKind::try_from(p.kind) {
                Ok(pb::PoolKind::Max) => PoolKind::Max,
                Ok(pb::PoolKind::Average) => PoolKind::Average,
                _ => {
                    return Err(ConversionError {
                        field: format!("{field}.pool2d.kind"),
                        message: format!("{} is not a pool kind: use MAX or AVERAGE", p.kind),
                    });
                }
            },
            kernel_size: p.kernel_size,
            stride: (p.stride != 0).then_some(p.stride),
            padding: p.padding,
        },
        Kind::GlobalAvgPool(_) => Layer::GlobalAvgPool,
        Kind::Flatten(_) => Layer::Flatten,
        Kind::Dropout(d) => Layer::Dropout {
            probability: d.probability,
        },
        Kind::Linear(l) => Layer::Linear {
            out_features: l.out_features,
            bias: l.bias,
            in_features: l.in_features,
        },
        Kind::Residual(r) => Layer::Residual {
            layers: r
                .layers
                .iter()
                .enumerate()
                .map(|(index, inner)| {
                    layer_from(inner, &format!("{field}.residual.layers[{index}]"))
                })
                .collect::<Result<_, _>>()?,
            skip: match pb::SkipConnection::try_from(r.skip) {
                Ok(pb::SkipConnection::Projection) => SkipConnection::Projection,
                Ok(pb::SkipConnection::Identity | pb::SkipConnection::Unspecified) => {
                    SkipConnection::Identity
                }
                Err(_) => {
                    return Err(ConversionError {
                        field: format!("{field}.residual.skip"),
                        message: format!("{} is not a skip connection", r.skip),
                    });
                }
            },
            post_activation: match r.post_activation {
                0 => None,
                raw => Some(activation_from(
                    raw,
                    &format!("{field}.residual.post_activation"),
                )?),
            },
        },
        Kind::Embedding(e) => Layer::Embedding {
            embedding_dim: e.embedding_dim,
        },
        Kind::SequenceMeanPool(_) => Layer::SequenceMeanPool,
    })
}

fn layer_to(layer: &Layer) -> pb::Layer {
    use pb::layer::Kind;
    let kind = match layer {
        Layer::Conv2d {
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            in_channels,
        } => Kind::Conv2d(pb::Conv2dLayer {
            out_channels: *out_channels,
            kernel_size: *kernel_size,
            stride: *stride,
            padding: *padding,
            bias: *bias,
            in_channels: *in_channels,
        }),
        Layer::Conv1d {
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            in_channels,
        } => Kind::Conv1d(pb::Conv1dLayer {
            out_channels: *out_channels,
            kernel_size: *kernel_size,
            stride: *stride,
            padding: *padding,
            bias: *bias,
            in_channels: *in_channels,
        }),
        Layer::BatchNorm { epsilon, momentum } => Kind::BatchNorm(pb::BatchNormLayer {
            epsilon: epsilon.unwrap_or(0.0),
            momentum: momentum.unwrap_or(0.0),
        }),
        Layer::LayerNorm { epsilon } => Kind::LayerNorm(pb::LayerNormLayer {
            epsilon: epsilon.unwrap_or(0.0),
        }),
        Layer::Activation { function } => Kind::Activation(pb::ActivationLayer {
            function: activation_to(*function) as i32,
        }),
        Layer::Pool2d {
            pool,
            kernel_size,
            stride,
            padding,
        } => Kind::Pool2d(pb::Pool2dLayer {
            kind: match pool {
                PoolKind::Max => pb::PoolKind::Max,
                PoolKind::Average => pb::PoolKind::Average,
            } as i32,
            kernel_size: *kernel_size,
            stride: stride.unwrap_or(0),
            padding: *padding,
        }),
        Layer::GlobalAvgPool => Kind::GlobalAvgPool(pb::GlobalAvgPoolLayer {}),
        Layer::Flatten => Kind::Flatten(pb::FlattenLayer {}),
        Layer::Dropout { probability } => Kind::Dropout(pb::DropoutLayer {
            probability: *probability,
        }),
        Layer::Linear {
            out_features,
            bias,
            in_features,
        } => Kind::Linear(pb::LinearLayer {
            out_features: *out_features,
            bias: *bias,
            in_features: *in_features,
        }),
        Layer::Residual {
            layers,
            skip,
            post_activation,
        } => Kind::Residual(pb::ResidualBlockLayer {
            layers: layers.iter().map(layer_to).collect(),
            skip: match skip {
                SkipConnection::Identity => pb::SkipConnection::Identity,
                SkipConnection::Projection => pb::SkipConnection::Projection,
            } as i32,
            post_activation: post_activation.map_or(0, |f| activation_to(f) as i32),
        }),
        Layer::Embedding { embedding_dim } => Kind::Embedding(pb::EmbeddingLayer {
            embedding_dim: *embedding_dim,
        }),
        Layer::SequenceMeanPool => Kind::SequenceMeanPool(pb::SequenceMeanPoolLayer {}),
    };
    pb::Layer { kind: Some(kind) }
}

impl TryFrom<&pb::ModelSpec> for ModelSpec {
    type Error = ConversionError;

    fn try_from(spec: &pb::ModelSpec) -> Result<Self, Self::Error> {
        let input = spec
            .input
            .as_ref()
            .ok_or_else(|| missing("input", "what one sample looks like"))?;
        Ok(Self {
            name: spec.name.clone(),
            input: InputSpec::try_from(input)?,
            num_classes: spec.num_classes,
            layers: spec
                .layers
                .iter()
                .enumerate()
                .map(|(index, layer)| layer_from(layer, &format!("layers[{index}]")))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<&ModelSpec> for pb::ModelSpec {
    fn from(spec: &ModelSpec) -> Self {
        Self {
            name: spec.name.clone(),
            input: Some((&spec.input).into()),
            num_classes: spec.num_classes,
            layers: spec.layers.iter().map(layer_to).collect(),
        }
    }
}

impl TryFrom<&pb::TrainSpec> for TrainSpec {
    type Error = ConversionError;

    fn try_from(spec: &pb::TrainSpec) -> Result<Self, Self::Error> {
        use pb::learning_rate_schedule::Kind as ScheduleKind;
        use pb::optimizer::Kind as OptimizerKind;
        let or = |value: f64, default: f64| if value == 0.0 { default } else { value };
        let optimizer = match spec.optimizer.as_ref().and_then(|o| o.kind.as_ref()) {
            None => Optimizer::default(),
            Some(OptimizerKind::Adam(a)) => Optimizer::Adam {
                beta1: or(a.beta1, 0.9),
                beta2: or(a.beta2, 0.999),
                epsilon: or(a.epsilon, 1e-8),
            },
            Some(OptimizerKind::Adamw(a)) => Optimizer::AdamW {
                beta1: or(a.beta1, 0.9),
                beta2: or(a.beta2, 0.999),
                epsilon: or(a.epsilon, 1e-8),
            },
            Some(OptimizerKind::Sgd(s)) => Optimizer::Sgd {
                momentum: s.momentum,
                nesterov: s.nesterov,
            },
        };
        let schedule = match spec.schedule.as_ref().and_then(|s| s.kind.as_ref()) {
            None | Some(ScheduleKind::Constant(_)) => Schedule::Constant,
            Some(ScheduleKind::Cosine(c)) => Schedule::Cosine {
                min_learning_rate: c.min_learning_rate,
                warmup_epochs: c.warmup_epochs,
            },
            Some(ScheduleKind::Step(s)) => Schedule::Step {
                step_epochs: s.step_epochs,
                gamma: s.gamma,
            },
        };
        let augmentation = spec
            .augmentation
            .as_ref()
            .map_or_else(Augmentation::default, |a| Augmentation {
                random_crop_padding: a.random_crop_padding,
                horizontal_flip: a.horizontal_flip,
            });
        Ok(Self {
            optimizer,
            learning_rate: spec.learning_rate,
            schedule,
            weight_decay: spec.weight_decay,
            batch_size: spec.batch_size,
            epochs: spec.epochs,
            gradient_clip_norm: spec.gradient_clip_norm,
            augmentation,
            label_smoothing: spec.label_smoothing,
            early_stopping_patience: spec.early_stopping_patience,
        })
    }
}

impl From<&TrainSpec> for pb::TrainSpec {
    fn from(spec: &TrainSpec) -> Self {
        use pb::learning_rate_schedule::Kind as ScheduleKind;
        use pb::optimizer::Kind as OptimizerKind;
        let optimizer = match spec.optimizer {
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            } => OptimizerKind::Adam(pb::AdamOptimizer {
                beta1,
                beta2,
                epsilon,
            }),
            Optimizer::AdamW {
                beta1,
                beta2,
                epsilon,
            } => OptimizerKind::Adamw(pb::AdamWOptimizer {
                beta1,
                beta2,
                epsilon,
            }),
            Optimizer::Sgd { momentum, nesterov } => {
                OptimizerKind::Sgd(pb::SgdOptimizer { momentum, nesterov })
            }
        };
        let schedule = match spec.schedule {
            Schedule::Constant => ScheduleKind::Constant(pb::ConstantSchedule {}),
            Schedule::Cosine {
                min_learning_rate,
                warmup_epochs,
            } => ScheduleKind::Cosine(pb::CosineSchedule {
                min_learning_rate,
                warmup_epochs,
            }),
            Schedule::Step { step_epochs, gamma } => {
                ScheduleKind::Step(pb::StepSchedule { step_epochs, gamma })
            }
        };
        Self {
            optimizer: Some(pb::Optimizer {
                kind: Some(optimizer),
            }),
            learning_rate: spec.learning_rate,
            schedule: Some(pb::LearningRateSchedule {
                kind: Some(schedule),
            }),
            weight_decay: spec.weight_decay,
            batch_size: spec.batch_size,
            epochs: spec.epochs,
            gradient_clip_norm: spec.gradient_clip_norm,
            augmentation: Some(pb::Augmentation {
                random_crop_padding: spec.augmentation.random_crop_padding,
                horizontal_flip: spec.augmentation.horizontal_flip,
            }),
            label_smoothing: spec.label_smoothing,
            early_stopping_patience: spec.early_stopping_patience,
        }
    }
}
