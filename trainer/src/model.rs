//! A Burn module assembled at run time from a [`ModelSpec`]: an enum of layers in a `Vec`, and a
//! forward pass that carries an enum of tensor ranks (images are `[B, C, H, W]`, vectors
//! `[B, F]`, sequences `[B, L, D]`, token ids `[B, L]`).

use crate::dropout::{DropoutStream, SeededDropout};
use burn::module::Module;
use burn::nn::activation::SiLU;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Embedding, EmbeddingConfig, Gelu, LayerNorm, LayerNormConfig,
    Linear, LinearConfig, PaddingConfig1d, PaddingConfig2d, Relu, Tanh,
};
use burn::tensor::{Device, Int, Tensor};
use ra_spec::{
    Activation, Budget, InputSpec, Layer, ModelSpec, PoolKind, Shape, SkipConnection, SpecError,
};

/// A parameter-free step: image → vector by averaging H×W.
#[derive(Module, Debug)]
pub struct GlobalAvgPool;

/// A parameter-free step: anything → one vector per sample.
#[derive(Module, Debug)]
pub struct Flatten;

/// A parameter-free step: sequence → vector by averaging positions.
#[derive(Module, Debug)]
pub struct SequenceMeanPool;

/// One layer of the network.
#[derive(Module, Debug)]
pub enum Block {
    Conv2d(Conv2d),
    Conv1d(Conv1d),
    BatchNorm(BatchNorm),
    LayerNorm(LayerNorm),
    Activation(ActivationFn),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    GlobalAvgPool(GlobalAvgPool),
    Flatten(Flatten),
    Dropout(SeededDropout),
    Linear(Linear),
    Residual(Residual),
    Embedding(Embedding),
    SequenceMeanPool(SequenceMeanPool),
}

/// An element-wise non-linearity.
#[derive(Module, Debug)]
pub enum ActivationFn {
    Relu(Relu),
    Gelu(Gelu),
    Silu(SiLU),
    Tanh(Tanh),
}

impl ActivationFn {
    fn new(function: Activation) -> Self {
        match function {
            Activation::Relu => Self::Relu(Relu::new()),
            Activation::Gelu => Self::Gelu(Gelu::new()),
            Activation::Silu => Self::Silu(SiLU::new()),
            Activation::Tanh => Self::Tanh(Tanh::new()),
        }
    }

    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Relu(f) => f.forward(x),
            Self::Gelu(f) => f.forward(x),
            Self::Silu(f) => f.forward(x),
            Self::Tanh(f) => f.forward(x),
        }
    }
}

/// How a residual block's input is brought to its output's shape.
#[derive(Module, Debug)]
pub enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

#[derive(Module, Debug)]
pub struct Residual {
    layers: Vec<Block>,
    projection: Option<Projection>,
    post_activation: Option<ActivationFn>,
}

/// The network: the layers in order, and the random stream its dropout layers draw from.
#[derive(Module, Debug)]
pub struct Network {
    layers: Vec<Block>,
    #[module(skip)]
    dropout: DropoutStream,
}

/// A batch between two layers.
#[derive(Debug, Clone)]
pub enum Activations {
    Image(Tensor<4>),
    Vector(Tensor<2>),
    Sequence(Tensor<3>),
    Tokens(Tensor<2, Int>),
}

impl Activations {
    fn kind(&self) -> &'static str {
        match self {
            Self::Image(_) => "image",
            Self::Vector(_) => "vector",
            Self::Sequence(_) => "sequence",
            Self::Tokens(_) => "token ids",
        }
    }
}

/// A forward pass met a tensor it cannot take; validation prevents this for valid specs.
#[derive(Debug, thiserror::Error)]
#[error("layer {layer} cannot take {got} input")]
pub struct ForwardError {
    pub layer: &'static str,
    pub got: &'static str,
}

fn as_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Builds one layer for an input of `shape`, returning it and its output shape.
fn build_layer(
    layer: &Layer,
    shape: Shape,
    device: &Device,
    dropout: &DropoutStream,
) -> (Block, Shape) {
    let output = ra_spec::shape::output_shape(layer, shape);
    let block = match *layer {
        Layer::Conv2d {
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            ..
        } => {
            let Shape::Image { channels, .. } = shape else {
                unreachable_shape()
            };
            let (k, s, p) = (kernel_size as usize, stride as usize, padding as usize);
            Block::Conv2d(
                Conv2dConfig::new([as_usize(channels), out_channels as usize], [k, k])
                    .with_stride([s, s])
                    .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                    .with_bias(bias)
                    .init(device),
            )
        }
        Layer::Conv1d {
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            ..
        } => {
            let Shape::Sequence { dim, .. } = shape else {
                unreachable_shape()
            };
            let p = padding as usize;
            Block::Conv1d(
                Conv1dConfig::new(as_usize(dim), out_channels as usize, kernel_size as usize)
                    .with_stride(stride as usize)
                    .with_padding(PaddingConfig1d::Explicit(p, p))
                    .with_bias(bias)
                    .init(device),
            )
        }
        Layer::BatchNorm { epsilon, momentum } => {
            let features = match shape {
                Shape::Image { channels, .. } => channels,
                Shape::Vector { features } => features,
                Shape::Sequence { dim, .. } => dim,
                Shape::Tokens { .. } => unreachable_shape(),
            };
            let mut config = BatchNormConfig::new(as_usize(features));
            if let Some(epsilon) = epsilon {
                config = config.with_epsilon(epsilon);
            }
            if let Some(momentum) = momentum {
                config = config.with_momentum(momentum);
            }
            Block::BatchNorm(config.init(device))
        }
        Layer::LayerNorm { epsilon } => {
            let features = match shape {
                Shape::Vector { features } => features,
                Shape::Sequence { dim, .. } => dim,
                _ => unreachable_shape(),
            };
            let mut config = LayerNormConfig::new(as_usize(features));
            if let Some(epsilon) = epsilon {
                config = config.with_epsilon(epsilon);
            }
            Block::LayerNorm(config.init(device))
        }
        Layer::Activation { function } => Block::Activation(ActivationFn::new(function)),
        Layer::Pool2d {
            pool,
            kernel_size,
            stride,
            padding,
        } => {
            let (k, p) = (kernel_size as usize, padding as usize);
            let s = stride.unwrap_or(kernel_size) as usize;
            match pool {
                PoolKind::Max => Block::MaxPool(
                    MaxPool2dConfig::new([k, k])
                        .with_strides([s, s])
                        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                        .init(),
                ),
                PoolKind::Average => Block::AvgPool(
                    AvgPool2dConfig::new([k, k])
                        .with_strides([s, s])
                        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                        .init(),
                ),
            }
        }
        Layer::GlobalAvgPool => Block::GlobalAvgPool(GlobalAvgPool),
        Layer::Flatten => Block::Flatten(Flatten),
        Layer::Dropout { probability } => {
            Block::Dropout(SeededDropout::new(probability, dropout.clone()))
        }
        Layer::Linear {
            out_features, bias, ..
        } => {
            let features = match shape {
                Shape::Vector { features } => features,
                Shape::Sequence { dim, .. } => dim,
                _ => unreachable_shape(),
            };
            Block::Linear(
                LinearConfig::new(as_usize(features), out_features as usize)
                    .with_bias(bias)
                    .init(device),
            )
        }
        Layer::Residual {
            ref layers,
            skip,
            post_activation,
        } => {
            let mut inner = Vec::with_capacity(layers.len());
            let mut inner_shape = shape;
            for layer in layers {
                let (block, next) = build_layer(layer, inner_shape, device, dropout);
                inner.push(block);
                inner_shape = next;
            }
            let projection = match skip {
                SkipConnection::Identity => None,
                SkipConnection::Projection => Some(build_projection(shape, inner_shape, device)),
            };
            Block::Residual(Residual {
                layers: inner,
                projection,
                post_activation: post_activation.map(ActivationFn::new),
            })
        }
        Layer::Embedding { embedding_dim } => {
            let Shape::Tokens { vocab, .. } = shape else {
                unreachable_shape()
            };
            Block::Embedding(
                EmbeddingConfig::new(as_usize(vocab), embedding_dim as usize).init(device),
            )
        }
        Layer::SequenceMeanPool => Block::SequenceMeanPool(SequenceMeanPool),
    };
    (block, output)
}

fn build_projection(input: Shape, output: Shape, device: &Device) -> Projection {
    match (input, output) {
        (
            Shape::Image {
                channels: ci,
                height,
                width,
            },
            Shape::Image {
                channels: co,
                height: ho,
                width: wo,
            },
        ) => {
            let stride = (1..=height.max(width))
                .find(|s| (height - 1) / s + 1 == ho && (width - 1) / s + 1 == wo)
                .unwrap_or(1) as usize;
            Projection::Conv(
                Conv2dConfig::new([as_usize(ci), as_usize(co)], [1, 1])
                    .with_stride([stride, stride])
                    .with_bias(false)
                    .init(device),
            )
        }
        (Shape::Vector { features: fi }, Shape::Vector { features: fo })
        | (Shape::Sequence { dim: fi, .. }, Shape::Sequence { dim: fo, .. }) => Projection::Linear(
            LinearConfig::new(as_usize(fi), as_usize(fo))
                .with_bias(false)
                .init(device),
        ),
        _ => unreachable_shape(),
    }
}

/// Validation guarantees the shapes; reaching this is a bug in ra-spec's inference.
fn unreachable_shape() -> ! {
    panic!("ra-spec validated this spec, so every layer receives a shape it accepts")
}

impl Network {
    /// Validates the spec (without budgets) and builds the module on `device`; its parameters
    /// are drawn from the device's generator (seed it first), its dropout masks from a stream
    /// of its own ([`Network::seed_dropout`]).
    pub fn build(spec: &ModelSpec, device: &Device) -> Result<Self, SpecError> {
        ra_spec::validate_model(spec, &Budget::unlimited())?;
        let dropout = DropoutStream::new(0);
        let mut shape = Shape::of_input(&spec.input);
        let mut layers = Vec::with_capacity(spec.layers.len());
        for layer in &spec.layers {
            let (block, next) = build_layer(layer, shape, device, &dropout);
            layers.push(block);
            shape = next;
        }
        Ok(Self { layers, dropout })
    }

    /// Restarts the dropout layers' random stream at `seed`.
    pub fn seed_dropout(&self, seed: u64) {
        self.dropout.reseed(seed);
    }

    /// Logits `[B, classes]` for a batch.
    pub fn forward(&self, input: Activations) -> Result<Tensor<2>, ForwardError> {
        let mut x = input;
        for block in &self.layers {
            x = block.forward(x)?;
        }
        match x {
            Activations::Vector(logits) => Ok(logits),
            other => Err(ForwardError {
                layer: "output",
                got: other.kind(),
            }),
        }
    }
}

/// The input tensor kind a spec's first layer expects.
pub fn input_is_tokens(input: &InputSpec) -> bool {
    matches!(input, InputSpec::Text { .. })
}

impl Block {
    fn name(&self) -> &'static str {
        match self {
            Self::Conv2d(_) => "conv2d",
            Self::Conv1d(_) => "conv1d",
            Self::BatchNorm(_) => "batch_norm",
            Self::LayerNorm(_) => "layer_norm",
            Self::Activation(_) => "activation",
            Self::MaxPool(_) | Self::AvgPool(_) => "pool2d",
            Self::GlobalAvgPool(_) => "global_avg_pool",
            Self::Flatten(_) => "flatten",
            Self::Dropout(_) => "dropout",
            Self::Linear(_) => "linear",
            Self::Residual(_) => "residual",
            Self::Embedding(_) => "embedding",
            Self::SequenceMeanPool(_) => "sequence_mean_pool",
        }
    }

    fn forward(&self, input: Activations) -> Result<Activations, ForwardError> {
        use Activations::{Image, Sequence, Tokens, Vector};
        let refuse = |got: &Activations| ForwardError {
            layer: self.name(),
            got: got.kind(),
        };
        Ok(match (self, input) {
            (Self::Conv2d(conv), Image(x)) => Image(conv.forward(x)),
            (Self::Conv1d(conv), Sequence(x)) => {
                Sequence(conv.forward(x.swap_dims(1, 2)).swap_dims(1, 2))
            }
            (Self::BatchNorm(norm), Image(x)) => Image(norm.forward(x)),
            (Self::BatchNorm(norm), Vector(x)) => {
                let [batch, features] = x.dims();
                Vector(
                    norm.forward(x.reshape([batch, features, 1]))
                        .reshape([batch, features]),
                )
            }
            (Self::BatchNorm(norm), Sequence(x)) => {
                Sequence(norm.forward(x.swap_dims(1, 2)).swap_dims(1, 2))
            }
            (Self::LayerNorm(norm), Vector(x)) => Vector(norm.forward(x)),
            (Self::LayerNorm(norm), Sequence(x)) => Sequence(norm.forward(x)),
            (Self::Activation(f), x) => {
                map_float(x, |t| f.forward(t), |t| f.forward(t), |t| f.forward(t))
                    .map_err(|x| refuse(&x))?
            }
            (Self::Dropout(f), x) => {
                map_float(x, |t| f.forward(t), |t| f.forward(t), |t| f.forward(t))
                    .map_err(|x| refuse(&x))?
            }
            (Self::MaxPool(pool), Image(x)) => Image(pool.forward(x)),
            (Self::AvgPool(pool), Image(x)) => Image(pool.forward(x)),
            (Self::GlobalAvgPool(_), Image(x)) => {
                let [batch, channels, _, _] = x.dims();
                Vector(x.mean_dim(3).mean_dim(2).reshape([batch, channels]))
            }
            (Self::Flatten(_), Image(x)) => {
                let [batch, c, h, w] = x.dims();
                Vector(x.reshape([batch, c * h * w]))
            }
            (Self::Flatten(_), Sequence(x)) => {
                let [batch, l, d] = x.dims();
                Vector(x.reshape([batch, l * d]))
            }
            (Self::Flatten(_), Vector(x)) => Vector(x),
            (Self::Linear(linear), Vector(x)) => Vector(linear.forward(x)),
            (Self::Linear(linear), Sequence(x)) => Sequence(linear.forward(x)),
            (Self::Residual(block), x) => block.forward(x)?,
            (Self::Embedding(embedding), Tokens(ids)) => Sequence(embedding.forward(ids)),
            (Self::SequenceMeanPool(_), Sequence(x)) => {
                let [batch, _, d] = x.dims();
                Vector(x.mean_dim(1).reshape([batch, d]))
            }
            (_, other) => return Err(refuse(&other)),
        })
    }
}

/// Applies an element-wise step to whichever float rank the batch has; token ids come back
/// unchanged as the error (they are what the step cannot take).
#[allow(clippy::result_large_err)]
fn map_float(
    x: Activations,
    image: impl FnOnce(Tensor<4>) -> Tensor<4>,
    vector: impl FnOnce(Tensor<2>) -> Tensor<2>,
    sequence: impl FnOnce(Tensor<3>) -> Tensor<3>,
) -> Result<Activations, Activations> {
    match x {
        Activations::Image(t) => Ok(Activations::Image(image(t))),
        Activations::Vector(t) => Ok(Activations::Vector(vector(t))),
        Activations::Sequence(t) => Ok(Activations::Sequence(sequence(t))),
        tokens @ Activations::Tokens(_) => Err(tokens),
    }
}

impl Residual {
    fn forward(&self, input: Activations) -> Result<Activations, ForwardError> {
        let mut x = input.clone();
        for block in &self.layers {
            x = block.forward(x)?;
        }
        let skip = match (&self.projection, input) {
            (None, skip) => skip,
            (Some(Projection::Conv(conv)), Activations::Image(t)) => {
                Activations::Image(conv.forward(t))
            }
            (Some(Projection::Linear(linear)), Activations::Vector(t)) => {
                Activations::Vector(linear.forward(t))
            }
            (Some(Projection::Linear(linear)), Activations::Sequence(t)) => {
                Activations::Sequence(linear.forward(t))
            }
            (Some(_), other) => {
                return Err(ForwardError {
                    layer: "residual",
                    got: other.kind(),
                });
            }
        };
        let sum = match (x, skip) {
            (Activations::Image(a), Activations::Image(b)) => Activations::Image(a + b),
            (Activations::Vector(a), Activations::Vector(b)) => Activations::Vector(a + b),
            (Activations::Sequence(a), Activations::Sequence(b)) => Activations::Sequence(a + b),
            (other, _) => {
                return Err(ForwardError {
                    layer: "residual",
                    got: other.kind(),
                });
            }
        };
        match &self.post_activation {
            Some(post) => map_float(
                sum,
                |t| post.forward(t),
                |t| post.forward(t),
                |t| post.forward(t),
            )
            .map_err(|other| ForwardError {
                layer: "residual",
                got: other.kind(),
            }),
            None => Ok(sum),
        }
    }
}
