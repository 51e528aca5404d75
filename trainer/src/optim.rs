//! The optimizer a TrainSpec asks for, as one Burn `ModuleOptimizer`.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use ra_spec::{Optimizer, TrainSpec};

pub fn build_optimizer(spec: &TrainSpec) -> ModuleOptimizer {
    let clipping = (spec.gradient_clip_norm > 0.0)
        .then_some(GradientClippingConfig::Norm(spec.gradient_clip_norm as f32));
    let decay = (spec.weight_decay > 0.0).then(|| WeightDecayConfig::new(spec.weight_decay as f32));
    match spec.optimizer {
        Optimizer::Adam {
            beta1,
            beta2,
            epsilon,
        } => AdamConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(epsilon as f32)
            .with_weight_decay(decay)
            .with_grad_clipping(clipping)
            .init(),
        Optimizer::AdamW {
            beta1,
            beta2,
            epsilon,
        } => AdamWConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(epsilon as f32)
            .with_weight_decay(spec.weight_decay as f32)
            .with_grad_clipping(clipping)
            .init(),
        Optimizer::Sgd { momentum, nesterov } => SgdConfig::new()
            .with_momentum((momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
                    .with_nesterov(nesterov)
            }))
            .with_weight_decay(decay)
            .with_gradient_clipping(clipping)
            .init(),
    }
}
