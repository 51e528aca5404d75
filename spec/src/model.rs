//! The model specification: what the network is, as plain data.
//!
//! ```json
//! {
//!   "name": "cnn-small",
//!   "input": {"kind": "image", "channels": 1, "height": 28, "width": 28},
//!   "num_classes": 10,
//!   "layers": [
//!     {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
//!     {"type": "activation", "function": "relu"},
//!     {"type": "pool2d", "pool": "max", "kernel_size": 2},
//!     {"type": "flatten"},
//!     {"type": "linear", "out_features": 10}
//!   ]
//! }
//! ```

use serde::{Deserialize, Serialize};

/// What one sample looks like when it reaches the first layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputSpec {
    /// channels × height × width.
    Image {
        channels: u32,
        height: u32,
        width: u32,
    },
    /// A vector of numeric features.
    Tabular { features: u32 },
    /// `sequence_length` token ids in `[0, vocab_size)`.
    Text {
        vocab_size: u32,
        sequence_length: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Gelu,
    Silu,
    Tanh,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Gelu => "gelu",
            Self::Silu => "silu",
            Self::Tanh => "tanh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    Average,
}

/// How a residual block's input reaches its output.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SkipConnection {
    /// Added unchanged: the inner layers must keep the shape.
    #[default]
    Identity,
    /// A 1×1 convolution (images) or linear map (vectors, sequences) makes the shapes agree.
    Projection,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// One layer; `layers` apply in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    Conv2d {
        out_channels: u32,
        kernel_size: u32,
        #[serde(default = "one")]
        stride: u32,
        #[serde(default)]
        padding: u32,
        #[serde(default = "yes")]
        bias: bool,
        /// Expected input channels; 0 (or absent) means inferred.
        #[serde(default, skip_serializing_if = "is_zero")]
        in_channels: u32,
    },
    Conv1d {
        out_channels: u32,
        kernel_size: u32,
        #[serde(default = "one")]
        stride: u32,
        #[serde(default)]
        padding: u32,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default, skip_serializing_if = "is_zero")]
        in_channels: u32,
    },
    BatchNorm {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epsilon: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        momentum: Option<f64>,
    },
    LayerNorm {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epsilon: Option<f64>,
    },
    Activation {
        function: Activation,
    },
    Pool2d {
        pool: PoolKind,
        kernel_size: u32,
        /// Absent means `kernel_size`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<u32>,
        #[serde(default)]
        padding: u32,
    },
    GlobalAvgPool,
    Flatten,
    Dropout {
        probability: f64,
    },
    Linear {
        out_features: u32,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default, skip_serializing_if = "is_zero")]
        in_features: u32,
    },
    Residual {
        layers: Vec<Layer>,
        #[serde(default)]
        skip: SkipConnection,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        post_activation: Option<Activation>,
    },
    Embedding {
        embedding_dim: u32,
    },
    SequenceMeanPool,
}

impl Layer {
    /// The layer's type name as written in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Conv2d { .. } => "conv2d",
            Self::Conv1d { .. } => "conv1d",
            Self::BatchNorm { .. } => "batch_norm",
            Self::LayerNorm { .. } => "layer_norm",
            Self::Activation { .. } => "activation",
            Self::Pool2d { .. } => "pool2d",
            Self::GlobalAvgPool => "global_avg_pool",
            Self::Flatten => "flatten",
            Self::Dropout { .. } => "dropout",
            Self::Linear { .. } => "linear",
            Self::Residual { .. } => "residual",
            Self::Embedding { .. } => "embedding",
            Self::SequenceMeanPool => "sequence_mean_pool",
        }
    }

    /// A square conv2d with a bias, its input channels inferred.
    pub fn conv2d(out_channels: u32, kernel_size: u32, stride: u32, padding: u32) -> Self {
        Self::Conv2d {
            out_channels,
            kernel_size,
            stride,
            padding,
            bias: true,
            in_channels: 0,
        }
    }

    /// A linear layer with a bias, its input features inferred.
    pub fn linear(out_features: u32) -> Self {
        Self::Linear {
            out_features,
            bias: true,
            in_features: 0,
        }
    }

    pub fn activation(function: Activation) -> Self {
        Self::Activation { function }
    }

    pub fn relu() -> Self {
        Self::activation(Activation::Relu)
    }

    /// Non-overlapping `kernel_size`² max pooling (stride = kernel, no padding).
    pub fn max_pool(kernel_size: u32) -> Self {
        Self::Pool2d {
            pool: PoolKind::Max,
            kernel_size,
            stride: None,
            padding: 0,
        }
    }

    /// Batch normalisation with Burn's defaults.
    pub fn batch_norm() -> Self {
        Self::BatchNorm {
            epsilon: None,
            momentum: None,
        }
    }
}

/// A classification model as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default)]
    pub name: String,
    pub input: InputSpec,
    pub num_classes: u32,
    pub layers: Vec<Layer>,
}

impl ModelSpec {
    /// Parses the JSON form, with serde's message (line, column, field) on failure.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
