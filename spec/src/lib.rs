//! Models and training recipes as data.
//!
//! - [`model`]: [`ModelSpec`] — an input, a class count and an ordered list of [`Layer`]s.
//! - [`train`]: [`TrainSpec`] — optimizer, learning rate and schedule, batch size, epochs, ….
//! - [`candidate`]: [`CandidateSpec`] — the two together, as people write a candidate down.
//! - [`device`]: the training devices by name (`flex`, `libtorch`, `libtorch-cuda`, `cuda`).
//! - [`examples`]: reference models shared by benchmarks and tests.
//! - [`convert`]: lossless conversions to and from the `ra.common.v1` proto messages.
//! - `strategies` (feature `proptest`): random specs for property tests.
//! - [`shape`]: validation by shape inference, layer by layer, with parameters, FLOPs and
//!   activation memory per layer, and budgets on all three. Every refusal names the layer index
//!   and the rule that was broken.
//!
//! The JSON form (serde) is what people and LLMs write; the proto form is what travels on the
//! wire. No Burn here: `ra-trainer` builds modules from these types.

pub mod candidate;
pub mod convert;
pub mod device;
pub mod examples;
pub mod model;
pub mod shape;
#[cfg(feature = "proptest")]
pub mod strategies;
pub mod train;

pub use candidate::CandidateSpec;
pub use convert::ConversionError;
pub use model::{Activation, InputSpec, Layer, ModelSpec, PoolKind, SkipConnection};
pub use shape::{Budget, LayerReport, Shape, SpecError, SpecReport, validate_model};
pub use train::{Augmentation, Optimizer, Schedule, TrainSpec, TrainSpecError};
