//! Validation by shape inference: every layer is checked against the shape it receives, and
//! reports its output shape, parameters, forward FLOPs and activation memory per sample.
//! Budgets cap the totals. A refusal names the layer (`4`, or `3.1` inside a residual block),
//! its type, the rule and the numbers: "layer 4 linear: expects 1568 input features, gets 3136".

use std::fmt;

use serde::Serialize;

use crate::model::{Activation, InputSpec, Layer, ModelSpec, PoolKind, SkipConnection};

/// Bytes of one activation element (f32).
const ELEMENT_BYTES: u64 = 4;
pub const MAX_LAYERS: usize = 512;
pub const MAX_DIMENSION: u64 = 1 << 24;
pub const MAX_CLASSES: u32 = 100_000;

/// The shape of one sample between two layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shape {
    Image {
        channels: u64,
        height: u64,
        width: u64,
    },
    Vector {
        features: u64,
    },
    /// `length` positions of `dim` features (after an embedding).
    Sequence {
        length: u64,
        dim: u64,
    },
    /// `length` token ids below `vocab`.
    Tokens {
        length: u64,
        vocab: u64,
    },
}

impl Shape {
    pub fn of_input(input: &InputSpec) -> Self {
        match *input {
            InputSpec::Image {
                channels,
                height,
                width,
            } => Self::Image {
                channels: channels.into(),
                height: height.into(),
                width: width.into(),
            },
            InputSpec::Tabular { features } => Self::Vector {
                features: features.into(),
            },
            InputSpec::Text {
                vocab_size,
                sequence_length,
            } => Self::Tokens {
                length: sequence_length.into(),
                vocab: vocab_size.into(),
            },
        }
    }

    pub fn dims(&self) -> Vec<u64> {
        match *self {
            Self::Image {
                channels,
                height,
                width,
            } => vec![channels, height, width],
            Self::Vector { features } => vec![features],
            Self::Sequence { length, dim } => vec![length, dim],
            Self::Tokens { length, .. } => vec![length],
        }
    }

    pub fn elements(&self) -> u64 {
        self.dims().iter().product()
    }

    fn describe(&self) -> String {
        match *self {
            Self::Image {
                channels,
                height,
                width,
            } => format!("a {channels}×{height}×{width} image"),
            Self::Vector { features } => format!("a vector of {features}"),
            Self::Sequence { length, dim } => format!("a sequence of {length}×{dim}"),
            Self::Tokens { length, .. } => format!("{length} token ids"),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.dims().iter().map(u64::to_string).collect();
        write!(f, "{}", dims.join("×"))
    }
}

/// Limits a model must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub max_parameters: u64,
    pub max_flops_per_sample: u64,
    pub max_activation_bytes_per_sample: u64,
}

impl Default for Budget {
    /// Generous defaults for a CPU sandbox.
    fn default() -> Self {
        Self {
            max_parameters: 100_000_000,
            max_flops_per_sample: 50_000_000_000,
            max_activation_bytes_per_sample: 1 << 30,
        }
    }
}

impl Budget {
    pub fn unlimited() -> Self {
        Self {
            max_parameters: u64::MAX,
            max_flops_per_sample: u64::MAX,
            max_activation_bytes_per_sample: u64::MAX,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    /// Position, `3.1` for the second layer inside residual block 3.
    pub index: String,
    pub kind: &'static str,
    pub output_shape: Shape,
    pub parameters: u64,
    pub flops: u64,
    pub activation_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecReport {
    pub layers: Vec<LayerReport>,
    pub parameters: u64,
    pub flops_per_sample: u64,
    pub activation_bytes_per_sample: u64,
    pub output_shape: Shape,
}

impl SpecReport {
    /// A rough training footprint: weights, gradients and two optimizer moments, plus the
    /// activations and their gradients for one batch.
    pub fn training_memory_bytes(&self, batch_size: u64) -> u64 {
        let weights = self.parameters.saturating_mul(4 * ELEMENT_BYTES);
        let activations = self
            .activation_bytes_per_sample
            .saturating_mul(2)
            .saturating_mul(batch_size);
        weights.saturating_add(activations)
    }
}

/// A refused spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// Layer position (`4`, `3.1`), `None` for rules about the whole model.
    pub layer: Option<String>,
    pub kind: Option<&'static str>,
    /// Machine-readable rule name ("input_features", "parameter_budget", …).
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.layer, self.kind) {
            (Some(layer), Some(kind)) => write!(
                f,
                "layer {layer} {kind}: {} (rule: {})",
                self.message, self.rule
            ),
            _ => write!(f, "model: {} (rule: {})", self.message, self.rule),
        }
    }
}

impl SpecError {
    /// The top-level layer index, when the refusal is about a layer.
    pub fn layer_index(&self) -> Option<usize> {
        self.layer.as_ref()?.split('.').next()?.parse().ok()
    }
}

fn model_error(rule: &'static str, message: String) -> SpecError {
    SpecError {
        layer: None,
        kind: None,
        rule,
        message,
    }
}

/// A layer-level refusal before the position is known.
struct Refusal {
    rule: &'static str,
    message: String,
}

fn refuse<T>(rule: &'static str, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        rule,
        message: message.into(),
    })
}

fn mul(values: &[u64]) -> Result<u64, Refusal> {
    values
        .iter()
        .try_fold(1u64, |acc, v| acc.checked_mul(*v))
        .map_or_else(
            || {
                refuse(
                    "too_large",
                    "its size overflows 64-bit arithmetic; use smaller dimensions",
                )
            },
            Ok,
        )
}

fn add(values: &[u64]) -> Result<u64, Refusal> {
    values
        .iter()
        .try_fold(0u64, |acc, v| acc.checked_add(*v))
        .map_or_else(
            || {
                refuse(
                    "too_large",
                    "its cost overflows 64-bit arithmetic; use smaller dimensions",
                )
            },
            Ok,
        )
}

fn positive(name: &'static str, value: u32) -> Result<u64, Refusal> {
    if value == 0 {
        return refuse("positive", format!("{name} must be at least 1"));
    }
    if u64::from(value) > MAX_DIMENSION {
        return refuse(
            "too_large",
            format!("{name} = {value} is over {MAX_DIMENSION}"),
        );
    }
    Ok(value.into())
}

fn expect_in(name: &'static str, declared: u32, actual: u64) -> Result<(), Refusal> {
    if declared != 0 && u64::from(declared) != actual {
        return refuse(
            name,
            format!(
                "expects {declared} {}, gets {actual}",
                name.replace('_', " ")
            ),
        );
    }
    Ok(())
}

/// Output length of a convolution or pooling window along one axis.
fn window_output(
    size: u64,
    kernel: u64,
    stride: u64,
    padding: u64,
    what: &str,
) -> Result<u64, Refusal> {
    let padded = size + 2 * padding;
    if padded < kernel {
        return refuse(
            "kernel_too_large",
            format!("kernel {kernel} is larger than the {what} {size} plus padding 2×{padding}"),
        );
    }
    Ok((padded - kernel) / stride + 1)
}

/// The C, H, W of an image input; any other shape is refused.
fn image_dims(input: Shape) -> Result<(u64, u64, u64), Refusal> {
    match input {
        Shape::Image {
            channels,
            height,
            width,
        } => Ok((channels, height, width)),
        other => refuse(
            "needs_image",
            format!("expects a C×H×W image, gets {}", other.describe()),
        ),
    }
}

fn activation_flops(function: Activation) -> u64 {
    match function {
        Activation::Relu => 1,
        Activation::Silu | Activation::Tanh => 4,
        Activation::Gelu => 8,
    }
}

/// What one layer does to a shape: (output shape, parameters, FLOPs), or why it cannot.
fn infer(
    layer: &Layer,
    input: Shape,
    path: &str,
    reports: &mut Vec<LayerReport>,
) -> Result<(Shape, u64, u64), SpecError> {
    let at = |refusal: Refusal| SpecError {
        layer: Some(path.to_owned()),
        kind: Some(layer.kind()),
        rule: refusal.rule,
        message: refusal.message,
    };
    if let Layer::Residual {
        layers,
        skip,
        post_activation,
    } = layer
    {
        return infer_residual(layers, *skip, *post_activation, input, path, reports).map_err(
            |e| match e {
                ResidualError::Inner(error) => error,
                ResidualError::Here(refusal) => at(refusal),
            },
        );
    }
    infer_simple(layer, input).map_err(at)
}

fn infer_simple(layer: &Layer, input: Shape) -> Result<(Shape, u64, u64), Refusal> {
    let elements = input.elements();
    match *layer {
        Layer::Conv2d {
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            in_channels,
        } => conv2d(
            input,
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            in_channels,
        ),
        Layer::Conv1d {
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            in_channels,
        } => conv1d(
            input,
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            in_channels,
        ),
        Layer::BatchNorm { epsilon, momentum } => batch_norm(input, epsilon, momentum),
        Layer::LayerNorm { epsilon } => layer_norm(input, epsilon),
        Layer::Activation { function } => {
            float_input(input)?;
            Ok((input, 0, mul(&[activation_flops(function), elements])?))
        }
        Layer::Pool2d {
            pool,
            kernel_size,
            stride,
            padding,
        } => pool2d(input, pool, kernel_size, stride, padding),
        Layer::GlobalAvgPool => match input {
            Shape::Image { channels, .. } => {
                Ok((Shape::Vector { features: channels }, 0, elements))
            }
            other => refuse(
                "needs_image",
                format!(
                    "averages an image over H×W, gets {}; use sequence_mean_pool on sequences",
                    other.describe()
                ),
            ),
        },
        Layer::Flatten => {
            float_input(input)?;
            Ok((Shape::Vector { features: elements }, 0, 0))
        }
        Layer::Dropout { probability } => {
            float_input(input)?;
            if !(probability.is_finite() && (0.0..1.0).contains(&probability)) {
                return refuse(
                    "probability",
                    format!("probability {probability} must be in [0, 1)"),
                );
            }
            Ok((input, 0, elements))
        }
        Layer::Linear {
            out_features,
            bias,
            in_features,
        } => linear(input, out_features, bias, in_features),
        Layer::Embedding { embedding_dim } => {
            let Shape::Tokens { length, vocab } = input else {
                return refuse(
                    "needs_tokens",
                    format!(
                        "looks up token ids and must come first on text input, gets {}",
                        input.describe()
                    ),
                );
            };
            let dim = positive("embedding_dim", embedding_dim)?;
            Ok((Shape::Sequence { length, dim }, mul(&[vocab, dim])?, 0))
        }
        Layer::SequenceMeanPool => match input {
            Shape::Sequence { dim, .. } => Ok((Shape::Vector { features: dim }, 0, elements)),
            other => refuse(
                "needs_sequence",
                format!(
                    "averages a sequence over its positions, gets {}",
                    other.describe()
                ),
            ),
        },
        Layer::Residual { .. } => refuse("nested", "residual blocks are handled by infer"),
    }
}

/// Refuses token ids where a layer needs floats (before the embedding).
fn float_input(input: Shape) -> Result<(), Refusal> {
    if let Shape::Tokens { .. } = input {
        return refuse(
            "needs_embedding",
            "gets token ids; text input must go through an embedding layer first",
        );
    }
    Ok(())
}

/// A 2-D convolution over an image: its output shape, parameters and FLOPs.
fn conv2d(
    input: Shape,
    out_channels: u32,
    kernel_size: u32,
    stride: u32,
    padding: u32,
    bias: bool,
    in_channels: u32,
) -> Result<(Shape, u64, u64), Refusal> {
    let (channels, height, width) = image_dims(input)?;
    expect_in("input_channels", in_channels, channels)?;
    let (out, k, s) = (
        positive("out_channels", out_channels)?,
        positive("kernel_size", kernel_size)?,
        positive("stride", stride)?,
    );
    let p = u64::from(padding);
    let oh = window_output(height, k, s, p, "height")?;
    let ow = window_output(width, k, s, p, "width")?;
    let params = add(&[mul(&[channels, out, k, k])?, if bias { out } else { 0 }])?;
    let flops = mul(&[2, channels, k, k, out, oh, ow])?;
    Ok((
        Shape::Image {
            channels: out,
            height: oh,
            width: ow,
        },
        params,
        flops,
    ))
}

/// A 1-D convolution over a sequence.
fn conv1d(
    input: Shape,
    out_channels: u32,
    kernel_size: u32,
    stride: u32,
    padding: u32,
    bias: bool,
    in_channels: u32,
) -> Result<(Shape, u64, u64), Refusal> {
    let Shape::Sequence { length, dim } = input else {
        return refuse(
            "needs_sequence",
            format!(
                "expects a sequence (after an embedding), gets {}",
                input.describe()
            ),
        );
    };
    expect_in("input_channels", in_channels, dim)?;
    let (out, k, s) = (
        positive("out_channels", out_channels)?,
        positive("kernel_size", kernel_size)?,
        positive("stride", stride)?,
    );
    let ol = window_output(length, k, s, u64::from(padding), "sequence length")?;
    let params = add(&[mul(&[dim, out, k])?, if bias { out } else { 0 }])?;
    let flops = mul(&[2, dim, k, out, ol])?;
    Ok((
        Shape::Sequence {
            length: ol,
            dim: out,
        },
        params,
        flops,
    ))
}

/// Batch normalisation over the channels (images) or features.
fn batch_norm(
    input: Shape,
    epsilon: Option<f64>,
    momentum: Option<f64>,
) -> Result<(Shape, u64, u64), Refusal> {
    let elements = input.elements();
    float_input(input)?;
    if epsilon.is_some_and(|e| !(e.is_finite() && e > 0.0 && e < 1.0)) {
        return refuse("epsilon", "epsilon must be in (0, 1)");
    }
    if momentum.is_some_and(|m| !(m.is_finite() && m > 0.0 && m < 1.0)) {
        return refuse("momentum", "momentum must be in (0, 1)");
    }
    let features = match input {
        Shape::Image { channels, .. } => channels,
        Shape::Vector { features } => features,
        Shape::Sequence { dim, .. } => dim,
        Shape::Tokens { .. } => 0,
    };
    // Scale and shift, plus the running mean and variance: Burn counts those as
    // parameters too, and they are part of the saved weights.
    Ok((input, 4 * features, mul(&[4, elements])?))
}

/// Layer normalisation over the last dimension of a vector or sequence.
fn layer_norm(input: Shape, epsilon: Option<f64>) -> Result<(Shape, u64, u64), Refusal> {
    let elements = input.elements();
    if epsilon.is_some_and(|e| !(e.is_finite() && e > 0.0 && e < 1.0)) {
        return refuse("epsilon", "epsilon must be in (0, 1)");
    }
    let features = match input {
        Shape::Vector { features } => features,
        Shape::Sequence { dim, .. } => dim,
        _ => {
            return refuse(
                "needs_vector",
                format!(
                    "normalises the last dimension of a vector or sequence, gets {}; use batch_norm on images",
                    input.describe()
                ),
            );
        }
    };
    Ok((input, 2 * features, mul(&[5, elements])?))
}

/// Max or average pooling over an image.
fn pool2d(
    input: Shape,
    pool: PoolKind,
    kernel_size: u32,
    stride: Option<u32>,
    padding: u32,
) -> Result<(Shape, u64, u64), Refusal> {
    let (channels, height, width) = image_dims(input)?;
    let k = positive("kernel_size", kernel_size)?;
    let s = positive("stride", stride.unwrap_or(kernel_size))?;
    let p = u64::from(padding);
    if 2 * p > k {
        return refuse(
            "padding",
            format!("padding {padding} must be at most half the kernel {kernel_size}"),
        );
    }
    let oh = window_output(height, k, s, p, "height")?;
    let ow = window_output(width, k, s, p, "width")?;
    let per_output = if pool == PoolKind::Max {
        k * k
    } else {
        k * k + 1
    };
    Ok((
        Shape::Image {
            channels,
            height: oh,
            width: ow,
        },
        0,
        mul(&[per_output, channels, oh, ow])?,
    ))
}

/// A linear layer over a vector, or over each position of a sequence.
fn linear(
    input: Shape,
    out_features: u32,
    bias: bool,
    in_features: u32,
) -> Result<(Shape, u64, u64), Refusal> {
    let out = positive("out_features", out_features)?;
    let bias_params = if bias { out } else { 0 };
    match input {
        Shape::Vector { features } => {
            expect_in("input_features", in_features, features)?;
            Ok((
                Shape::Vector { features: out },
                add(&[mul(&[features, out])?, bias_params])?,
                mul(&[2, features, out])?,
            ))
        }
        Shape::Sequence { length, dim } => {
            expect_in("input_features", in_features, dim)?;
            Ok((
                Shape::Sequence { length, dim: out },
                add(&[mul(&[dim, out])?, bias_params])?,
                mul(&[2, length, dim, out])?,
            ))
        }
        Shape::Image { .. } => refuse(
            "needs_vector",
            format!(
                "expects a vector, gets {}; add flatten or global_avg_pool before it",
                input.describe()
            ),
        ),
        Shape::Tokens { .. } => refuse(
            "needs_embedding",
            "gets token ids; text input must go through an embedding layer first",
        ),
    }
}

enum ResidualError {
    Inner(SpecError),
    Here(Refusal),
}

fn infer_residual(
    layers: &[Layer],
    skip: SkipConnection,
    post_activation: Option<Activation>,
    input: Shape,
    path: &str,
    reports: &mut Vec<LayerReport>,
) -> Result<(Shape, u64, u64), ResidualError> {
    if layers.is_empty() {
        return Err(ResidualError::Here(Refusal {
            rule: "empty_block",
            message: "a residual block needs inner layers".into(),
        }));
    }
    let (output, mut params, mut flops) =
        infer_sequence(layers, input, Some(path), reports).map_err(ResidualError::Inner)?;
    let here = |refusal: Refusal| ResidualError::Here(refusal);
    match skip {
        SkipConnection::Identity => {
            if output != input {
                return Err(here(Refusal {
                    rule: "identity_skip",
                    message: format!(
                        "the inner layers turn {input} into {output}; an identity skip needs equal shapes: use \"skip\": \"projection\""
                    ),
                }));
            }
        }
        SkipConnection::Projection => {
            let (projection_params, projection_flops) =
                projection_cost(input, output).map_err(here)?;
            params = add(&[params, projection_params]).map_err(here)?;
            flops = add(&[flops, projection_flops]).map_err(here)?;
        }
    }
    let post = post_activation.map_or(0, activation_flops);
    flops = add(&[flops, mul(&[1 + post, output.elements()]).map_err(here)?]).map_err(here)?;
    Ok((output, params, flops))
}

/// A 1×1 convolution (images) or a linear map (vectors, sequences) from `input` to `output`.
fn projection_cost(input: Shape, output: Shape) -> Result<(u64, u64), Refusal> {
    match (input, output) {
        (
            Shape::Image {
                channels: ci,
                height: hi,
                width: wi,
            },
            Shape::Image {
                channels: co,
                height: ho,
                width: wo,
            },
        ) => {
            let fits = (1..=hi.max(wi)).any(|s| (hi - 1) / s + 1 == ho && (wi - 1) / s + 1 == wo);
            if !fits {
                return refuse(
                    "projection_skip",
                    format!("no 1×1 convolution stride maps {input} onto {output}"),
                );
            }
            Ok((mul(&[ci, co])?, mul(&[2, ci, co, ho, wo])?))
        }
        (Shape::Vector { features: fi }, Shape::Vector { features: fo }) => {
            Ok((mul(&[fi, fo])?, mul(&[2, fi, fo])?))
        }
        (
            Shape::Sequence {
                length: li,
                dim: di,
            },
            Shape::Sequence {
                length: lo,
                dim: do_,
            },
        ) if li == lo => Ok((mul(&[di, do_])?, mul(&[2, li, di, do_])?)),
        _ => refuse(
            "projection_skip",
            format!(
                "cannot project {} onto {}",
                input.describe(),
                output.describe()
            ),
        ),
    }
}

fn infer_sequence(
    layers: &[Layer],
    input: Shape,
    parent: Option<&str>,
    reports: &mut Vec<LayerReport>,
) -> Result<(Shape, u64, u64), SpecError> {
    let mut shape = input;
    let (mut params, mut flops) = (0u64, 0u64);
    for (index, layer) in layers.iter().enumerate() {
        let path = match parent {
            Some(parent) => format!("{parent}.{index}"),
            None => index.to_string(),
        };
        let position = reports.len();
        let (output, layer_params, layer_flops) = infer(layer, shape, &path, reports)?;
        let activation_bytes = output.elements().saturating_mul(ELEMENT_BYTES);
        reports.insert(
            position,
            LayerReport {
                index: path.clone(),
                kind: layer.kind(),
                output_shape: output,
                parameters: layer_params,
                flops: layer_flops,
                activation_bytes,
            },
        );
        params = params.saturating_add(layer_params);
        flops = flops.saturating_add(layer_flops);
        shape = output;
    }
    Ok((shape, params, flops))
}

fn check_input(input: &InputSpec) -> Result<(), SpecError> {
    let dims: &[(&str, u32)] = match input {
        InputSpec::Image {
            channels,
            height,
            width,
        } => &[
            ("channels", *channels),
            ("height", *height),
            ("width", *width),
        ],
        InputSpec::Tabular { features } => &[("features", *features)],
        InputSpec::Text {
            vocab_size,
            sequence_length,
        } => &[
            ("vocab_size", *vocab_size),
            ("sequence_length", *sequence_length),
        ],
    };
    for (name, value) in dims {
        if *value == 0 || u64::from(*value) > MAX_DIMENSION {
            return Err(model_error(
                "input",
                format!("input.{name} = {value} must be in 1..={MAX_DIMENSION}"),
            ));
        }
    }
    Ok(())
}

fn count_layers(layers: &[Layer]) -> usize {
    layers
        .iter()
        .map(|layer| match layer {
            Layer::Residual { layers, .. } => 1 + count_layers(layers),
            _ => 1,
        })
        .sum()
}

/// The output shape of `layer` on `input`, for a layer that validation accepted (an invalid
/// pair gives back `input`).
pub fn output_shape(layer: &Layer, input: Shape) -> Shape {
    let mut reports = Vec::new();
    infer(layer, input, "0", &mut reports).map_or(input, |(shape, _, _)| shape)
}

/// Validates a model: input, every layer's shape rule, the output, and the budget.
pub fn validate_model(spec: &ModelSpec, budget: &Budget) -> Result<SpecReport, SpecError> {
    check_input(&spec.input)?;
    if !(2..=MAX_CLASSES).contains(&spec.num_classes) {
        return Err(model_error(
            "num_classes",
            format!(
                "num_classes = {} must be in 2..={MAX_CLASSES}",
                spec.num_classes
            ),
        ));
    }
    if spec.layers.is_empty() {
        return Err(model_error(
            "no_layers",
            "the model has no layers; end with a linear layer of num_classes outputs".into(),
        ));
    }
    let total = count_layers(&spec.layers);
    if total > MAX_LAYERS {
        return Err(model_error(
            "too_many_layers",
            format!("{total} layers (counting inside residual blocks); at most {MAX_LAYERS}"),
        ));
    }
    let mut layers = Vec::with_capacity(total);
    let (output, parameters, flops) = infer_sequence(
        &spec.layers,
        Shape::of_input(&spec.input),
        None,
        &mut layers,
    )?;
    if output
        != (Shape::Vector {
            features: spec.num_classes.into(),
        })
    {
        return Err(model_error(
            "output",
            format!(
                "the last layer outputs {}, but the model must end with {} logits (num_classes): end with a linear layer of out_features {}",
                output.describe(),
                spec.num_classes,
                spec.num_classes
            ),
        ));
    }
    let activation_bytes: u64 = layers
        .iter()
        .map(|report| report.activation_bytes)
        .fold(0u64, u64::saturating_add);
    if parameters > budget.max_parameters {
        return Err(model_error(
            "parameter_budget",
            format!(
                "{parameters} parameters; the budget allows {}",
                budget.max_parameters
            ),
        ));
    }
    if flops > budget.max_flops_per_sample {
        return Err(model_error(
            "flops_budget",
            format!(
                "{flops} FLOPs per sample; the budget allows {}",
                budget.max_flops_per_sample
            ),
        ));
    }
    if activation_bytes > budget.max_activation_bytes_per_sample {
        return Err(model_error(
            "memory_budget",
            format!(
                "{activation_bytes} bytes of activations per sample; the budget allows {}",
                budget.max_activation_bytes_per_sample
            ),
        ));
    }
    Ok(SpecReport {
        layers,
        parameters,
        flops_per_sample: flops,
        activation_bytes_per_sample: activation_bytes,
        output_shape: output,
    })
}
