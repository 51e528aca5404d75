//! Reference models shared by benchmarks and tests, so that "the reference CNN" means one
//! network everywhere.

use crate::model::{InputSpec, Layer, ModelSpec};

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
