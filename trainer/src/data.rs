//! The input pipeline: samples straight from the memory-mapped split, normalised with the
//! manifest's train statistics, augmented on the fly, shuffled with the run's seed, and packed
//! into one tensor per batch.

use burn::tensor::{Device, Int, Tensor, TensorData};
use ra_prepared::{Manifest, Split, XDtype};
use ra_spec::{Augmentation, InputSpec};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::model::Activations;

/// How samples become network inputs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    input: InputSpec,
    /// Per channel (images) or per feature (tabular); empty for none.
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    sample_len: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("the model expects input {model:?}, the dataset provides {data:?}")]
    InputMismatch { model: InputSpec, data: InputSpec },
    #[error("the model has {model} outputs, the dataset {data} classes")]
    ClassMismatch { model: u32, data: usize },
    #[error("the manifest's normalisation has {got} values; {expected} were expected")]
    Normalization { got: usize, expected: usize },
    #[error("text input needs token ids (i64) in the prepared data, found {0:?}")]
    TokenDtype(XDtype),
}

impl Pipeline {
    pub fn new(
        manifest: &Manifest,
        model_input: &InputSpec,
        num_classes: u32,
    ) -> Result<Self, PipelineError> {
        if *model_input != manifest.input {
            return Err(PipelineError::InputMismatch {
                model: model_input.clone(),
                data: manifest.input.clone(),
            });
        }
        if num_classes as usize != manifest.num_classes() {
            return Err(PipelineError::ClassMismatch {
                model: num_classes,
                data: manifest.num_classes(),
            });
        }
        let groups = match manifest.input {
            InputSpec::Image { channels, .. } => channels as usize,
            InputSpec::Tabular { features } => features as usize,
            InputSpec::Text { .. } => {
                if manifest.x_dtype != XDtype::I64 {
                    return Err(PipelineError::TokenDtype(manifest.x_dtype));
                }
                0
            }
        };
        let stats = &manifest.normalization;
        if !stats.mean.is_empty() && (stats.mean.len() != groups || stats.std.len() != groups) {
            return Err(PipelineError::Normalization {
                got: stats.mean.len(),
                expected: groups,
            });
        }
        Ok(Self {
            input: manifest.input.clone(),
            mean: stats.mean.iter().map(|m| *m as f32).collect(),
            inv_std: stats
                .std
                .iter()
                .map(|s| if *s > 0.0 { (1.0 / s) as f32 } else { 1.0 })
                .collect(),
            sample_len: ra_prepared::sample_shape(&manifest.input).iter().product(),
        })
    }

    /// The network input and the labels of the samples at `indices`.
    pub fn batch(
        &self,
        split: &Split,
        indices: &[usize],
        augmentation: Option<(&Augmentation, &mut StdRng)>,
        device: &Device,
    ) -> (Activations, Tensor<1, Int>) {
        let labels: Vec<i64> = indices.iter().map(|i| split.labels()[*i]).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), device);
        let n = indices.len();
        let x = match self.input {
            InputSpec::Text {
                sequence_length, ..
            } => {
                let len = sequence_length as usize;
                let mut ids = vec![0i64; n * len];
                for (row, index) in ids.chunks_exact_mut(len).zip(indices) {
                    split.sample_i64(*index, row);
                }
                Activations::Tokens(Tensor::<2, Int>::from_data(
                    TensorData::new(ids, [n, len]),
                    device,
                ))
            }
            InputSpec::Tabular { features } => {
                let features = features as usize;
                let mut values = vec![0f32; n * features];
                for (row, index) in values.chunks_exact_mut(features).zip(indices) {
                    split.sample_f32(*index, row);
                    self.normalize(row, 1);
                }
                Activations::Vector(Tensor::<2>::from_data(
                    TensorData::new(values, [n, features]),
                    device,
                ))
            }
            InputSpec::Image {
                channels,
                height,
                width,
            } => {
                let (c, h, w) = (channels as usize, height as usize, width as usize);
                let mut values = vec![0f32; n * self.sample_len];
                let mut scratch = vec![0f32; self.sample_len];
                let mut augmentation = augmentation;
                for (row, index) in values.chunks_exact_mut(self.sample_len).zip(indices) {
                    match augmentation.as_mut() {
                        Some((augment, rng)) if !augment.is_none() => {
                            split.sample_f32(*index, &mut scratch);
                            self.normalize(&mut scratch, h * w);
                            augment_image(&scratch, row, (c, h, w), augment, rng);
                        }
                        _ => {
                            split.sample_f32(*index, row);
                            self.normalize(row, h * w);
                        }
                    }
                }
                Activations::Image(Tensor::<4>::from_data(
                    TensorData::new(values, [n, c, h, w]),
                    device,
                ))
            }
        };
        (x, y)
    }

    /// `(x - mean) / std` per group of `group_len` consecutive values (a channel plane, or one
    /// feature).
    fn normalize(&self, values: &mut [f32], group_len: usize) {
        if self.mean.is_empty() {
            return;
        }
        if group_len == 1 {
            for ((value, mean), inv_std) in values.iter_mut().zip(&self.mean).zip(&self.inv_std) {
                *value = (*value - mean) * inv_std;
            }
            return;
        }
        for ((plane, mean), inv_std) in values
            .chunks_exact_mut(group_len)
            .zip(&self.mean)
            .zip(&self.inv_std)
        {
            for value in plane {
                *value = (*value - mean) * inv_std;
            }
        }
    }
}

/// Random crop after zero padding (zero is the mean after normalisation) and a random
/// horizontal flip, from `source` into `target`.
fn augment_image(
    source: &[f32],
    target: &mut [f32],
    (c, h, w): (usize, usize, usize),
    augment: &Augmentation,
    rng: &mut StdRng,
) {
    let pad = augment.random_crop_padding as i32;
    let (dy, dx) = if pad > 0 {
        (
            rng.random_range(-pad..=pad) as isize,
            rng.random_range(-pad..=pad) as isize,
        )
    } else {
        (0, 0)
    };
    let flip = augment.horizontal_flip && rng.random_bool(0.5);
    for channel in 0..c {
        for y in 0..h {
            for x in 0..w {
                let sy = y as isize + dy;
                let sx_unflipped = if flip {
                    (w - 1 - x) as isize
                } else {
                    x as isize
                };
                let sx = sx_unflipped + dx;
                let value = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                    source[channel * h * w + sy as usize * w + sx as usize]
                } else {
                    0.0
                };
                target[channel * h * w + y * w + x] = value;
            }
        }
    }
}

/// The visiting order of one epoch.
pub fn epoch_order(len: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(rng);
    order
}
