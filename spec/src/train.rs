//! The training recipe, as plain data, and its validation.
//!
//! ```json
//! {
//!   "optimizer": {"type": "adamw"},
//!   "learning_rate": 0.001,
//!   "schedule": {"type": "cosine", "min_learning_rate": 0.00001, "warmup_epochs": 1},
//!   "weight_decay": 0.0005,
//!   "batch_size": 64,
//!   "epochs": 10,
//!   "gradient_clip_norm": 1.0,
//!   "augmentation": {"random_crop_padding": 4, "horizontal_flip": true},
//!   "early_stopping_patience": 3
//! }
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    Adam {
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "adam_epsilon")]
        epsilon: f64,
    },
    /// Adam with decoupled weight decay.
    #[serde(rename = "adamw")]
    AdamW {
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "adam_epsilon")]
        epsilon: f64,
    },
    Sgd {
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn adam_epsilon() -> f64 {
    1e-8
}

impl Default for Optimizer {
    fn default() -> Self {
        Self::Adam {
            beta1: beta1(),
            beta2: beta2(),
            epsilon: adam_epsilon(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    #[default]
    Constant,
    /// Linear warm-up, then cosine decay to `min_learning_rate` at the last epoch.
    Cosine {
        #[serde(default)]
        min_learning_rate: f64,
        #[serde(default)]
        warmup_epochs: u32,
    },
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step { step_epochs: u32, gamma: f64 },
}

impl Schedule {
    /// The learning rate of `epoch` (0-based) out of `epochs`, from the base rate.
    pub fn learning_rate(&self, base: f64, epoch: u32, epochs: u32) -> f64 {
        match *self {
            Self::Constant => base,
            Self::Cosine {
                min_learning_rate,
                warmup_epochs,
            } => {
                if epoch < warmup_epochs {
                    return base * f64::from(epoch + 1) / f64::from(warmup_epochs + 1);
                }
                let span = epochs.saturating_sub(warmup_epochs).max(1);
                let progress = f64::from(epoch - warmup_epochs) / f64::from(span);
                min_learning_rate
                    + 0.5
                        * (base - min_learning_rate)
                        * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Self::Step { step_epochs, gamma } => {
                base * gamma.powi((epoch / step_epochs.max(1)) as i32)
            }
        }
    }
}

/// Training-time image augmentation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Augmentation {
    #[serde(default)]
    pub random_crop_padding: u32,
    #[serde(default)]
    pub horizontal_flip: bool,
}

impl Augmentation {
    pub fn is_none(&self) -> bool {
        self.random_crop_padding == 0 && !self.horizontal_flip
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    #[serde(default)]
    pub optimizer: Optimizer,
    pub learning_rate: f64,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub weight_decay: f64,
    pub batch_size: u32,
    pub epochs: u32,
    /// 0 disables clipping.
    #[serde(default)]
    pub gradient_clip_norm: f64,
    #[serde(default, skip_serializing_if = "Augmentation::is_none")]
    pub augmentation: Augmentation,
    #[serde(default)]
    pub label_smoothing: f64,
    /// Stop after this many epochs without a better validation loss; 0 disables.
    #[serde(default)]
    pub early_stopping_patience: u32,
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            optimizer: Optimizer::default(),
            learning_rate: 1e-3,
            schedule: Schedule::Constant,
            weight_decay: 0.0,
            batch_size: 64,
            epochs: 10,
            gradient_clip_norm: 0.0,
            augmentation: Augmentation::default(),
            label_smoothing: 0.0,
            early_stopping_patience: 0,
        }
    }
}

/// A refused TrainSpec: the field and the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("train.{field}: {message}")]
pub struct TrainSpecError {
    pub field: &'static str,
    pub message: String,
}

pub const MAX_BATCH_SIZE: u32 = 65_536;
pub const MAX_EPOCHS: u32 = 10_000;

fn check(
    ok: bool,
    field: &'static str,
    message: impl FnOnce() -> String,
) -> Result<(), TrainSpecError> {
    if ok {
        Ok(())
    } else {
        Err(TrainSpecError {
            field,
            message: message(),
        })
    }
}

fn in_unit(value: f64) -> bool {
    value.is_finite() && (0.0..1.0).contains(&value)
}

impl TrainSpec {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), TrainSpecError> {
        let lr = self.learning_rate;
        check(
            lr.is_finite() && lr > 0.0 && lr <= 10.0,
            "learning_rate",
            || format!("{lr} must be in (0, 10]; typical values are 1e-4 to 1e-1"),
        )?;
        check(
            (1..=MAX_BATCH_SIZE).contains(&self.batch_size),
            "batch_size",
            || format!("{} must be in 1..={MAX_BATCH_SIZE}", self.batch_size),
        )?;
        check((1..=MAX_EPOCHS).contains(&self.epochs), "epochs", || {
            format!("{} must be in 1..={MAX_EPOCHS}", self.epochs)
        })?;
        let wd = self.weight_decay;
        check(
            wd.is_finite() && (0.0..=1.0).contains(&wd),
            "weight_decay",
            || format!("{wd} must be in [0, 1]"),
        )?;
        let clip = self.gradient_clip_norm;
        check(
            clip.is_finite() && clip >= 0.0,
            "gradient_clip_norm",
            || format!("{clip} must be 0 (off) or positive"),
        )?;
        check(in_unit(self.label_smoothing), "label_smoothing", || {
            format!("{} must be in [0, 1)", self.label_smoothing)
        })?;
        check(
            self.augmentation.random_crop_padding <= 64,
            "augmentation.random_crop_padding",
            || {
                format!(
                    "{} must be at most 64 pixels",
                    self.augmentation.random_crop_padding
                )
            },
        )?;
        match self.optimizer {
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                epsilon,
            } => {
                check(in_unit(beta1), "optimizer.beta1", || {
                    format!("{beta1} must be in [0, 1)")
                })?;
                check(in_unit(beta2), "optimizer.beta2", || {
                    format!("{beta2} must be in [0, 1)")
                })?;
                check(
                    epsilon.is_finite() && epsilon > 0.0,
                    "optimizer.epsilon",
                    || format!("{epsilon} must be positive"),
                )?;
            }
            Optimizer::Sgd { momentum, .. } => {
                check(in_unit(momentum), "optimizer.momentum", || {
                    format!("{momentum} must be in [0, 1)")
                })?;
            }
        }
        match self.schedule {
            Schedule::Constant => {}
            Schedule::Cosine {
                min_learning_rate,
                warmup_epochs,
            } => {
                check(
                    min_learning_rate.is_finite() && (0.0..=lr).contains(&min_learning_rate),
                    "schedule.min_learning_rate",
                    || format!("{min_learning_rate} must be in [0, learning_rate = {lr}]"),
                )?;
                check(
                    warmup_epochs < self.epochs,
                    "schedule.warmup_epochs",
                    || {
                        format!(
                            "{warmup_epochs} must be fewer than the {} epochs",
                            self.epochs
                        )
                    },
                )?;
            }
            Schedule::Step { step_epochs, gamma } => {
                check(step_epochs >= 1, "schedule.step_epochs", || {
                    "must be at least 1".to_owned()
                })?;
                check(
                    gamma.is_finite() && gamma > 0.0 && gamma <= 1.0,
                    "schedule.gamma",
                    || format!("{gamma} must be in (0, 1]"),
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_defaults_and_validation() {
        let spec =
            TrainSpec::from_json(r#"{"learning_rate": 0.01, "batch_size": 32, "epochs": 3}"#)
                .expect("parses");
        assert_eq!(spec.optimizer, Optimizer::default());
        assert!(spec.validate().is_ok());
        let bad = TrainSpec {
            learning_rate: f64::NAN,
            ..spec.clone()
        };
        assert_eq!(bad.validate().expect_err("nan").field, "learning_rate");
        let bad = TrainSpec {
            optimizer: Optimizer::Sgd {
                momentum: 1.5,
                nesterov: false,
            },
            ..spec
        };
        assert_eq!(
            bad.validate().expect_err("momentum").field,
            "optimizer.momentum"
        );
        assert!(
            TrainSpec::from_json(
                r#"{"learning_rate": 0.01, "batch_size": 32, "epochs": 3, "lr": 1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let cosine = Schedule::Cosine {
            min_learning_rate: 0.0,
            warmup_epochs: 0,
        };
        assert!((cosine.learning_rate(0.1, 0, 10) - 0.1).abs() < 1e-12);
        assert!((cosine.learning_rate(0.1, 5, 10) - 0.05).abs() < 1e-12);
        let step = Schedule::Step {
            step_epochs: 2,
            gamma: 0.5,
        };
        assert!((step.learning_rate(0.1, 4, 10) - 0.025).abs() < 1e-12);
    }
}
