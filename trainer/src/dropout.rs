//! Dropout whose masks come from the run's own random stream, never from the backend's
//! process-wide generator (Burn's `Dropout` draws from it: flex keeps one generator for the whole
//! process, LibTorch too). Several seeds trained at once in one process therefore draw exactly
//! the masks each would draw alone, whatever the order their steps interleave in.

use std::sync::{Arc, Mutex, PoisonError};

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The random stream a network's dropout layers share; clones share it too (the optimizer's
/// step returns a new module that keeps drawing where the old one stopped).
#[derive(Clone, Debug)]
pub struct DropoutStream(Arc<Mutex<StdRng>>);

impl DropoutStream {
    /// A stream that starts at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))))
    }

    /// Restarts the stream at `seed` (every layer that shares it follows).
    pub fn reseed(&self, seed: u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = StdRng::seed_from_u64(seed);
    }

    /// `count` mask values: `scale` where kept (probability `keep`), 0 where dropped.
    fn mask(&self, count: usize, keep: f64, scale: f32) -> Vec<f32> {
        let mut rng = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (0..count)
            .map(|_| {
                if rng.random::<f64>() < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// Zeroes each element with probability `prob` during training (on an autodiff device) and
/// scales the kept ones by `1 / (1 - prob)`; the identity when evaluating.
#[derive(Module, Debug)]
pub struct SeededDropout {
    prob: f64,
    #[module(skip)]
    stream: DropoutStream,
}

impl SeededDropout {
    /// `prob` in [0, 1) (ra-spec's validation guarantees it).
    pub fn new(prob: f64, stream: DropoutStream) -> Self {
        Self { prob, stream }
    }

    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let device = input.device();
        if self.prob <= 0.0 || !device.is_autodiff() {
            return input;
        }
        let keep = 1.0 - self.prob;
        let shape = input.shape();
        let mask = self
            .stream
            .mask(shape.num_elements(), keep, (1.0 / keep) as f32);
        let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &device);
        input * mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn values(tensor: Tensor<2>) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().expect("f32 data")
    }

    #[test]
    fn masks_follow_the_stream_and_keep_the_expected_share() {
        let device = Device::flex().autodiff();
        let ones = || Tensor::<2>::ones([64, 64], &device);
        let dropout = SeededDropout::new(0.25, DropoutStream::new(7));
        let first = values(dropout.forward(ones()));
        let again = SeededDropout::new(0.25, DropoutStream::new(7));
        let same = values(again.forward(ones()));
        assert_eq!(first, same);
        let kept = first.iter().filter(|v| **v > 0.0).count() as f64 / first.len() as f64;
        assert!((kept - 0.75).abs() < 0.03, "kept {kept}");
        assert!(
            first
                .iter()
                .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6)
        );
        // A clone keeps drawing from the same stream: its next mask is a new one.
        let next = values(dropout.clone().forward(ones()));
        assert_ne!(first, next);
        // Reseeding restarts it.
        dropout.stream.reseed(7);
        let restarted = values(dropout.forward(ones()));
        assert_eq!(first, restarted);
    }

    #[test]
    fn evaluation_leaves_the_input_alone() {
        let device = Device::flex();
        let dropout = SeededDropout::new(0.5, DropoutStream::new(1));
        let x = Tensor::<2>::ones([4, 4], &device);
        let y = values(dropout.forward(x));
        assert!(y.iter().all(|v| *v == 1.0));
    }
}
