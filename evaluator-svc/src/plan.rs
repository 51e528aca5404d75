//! An `EvaluateRequest` checked field by field and turned into a plan: which seeds in which
//! rounds, the goal, the confidence, the failure policy and the early-stopping rule. Every
//! refusal names the field, the value and what would be accepted.

use crate::error::EvaluatorError;
use ra_proto::common::v1 as common;
use ra_proto::evaluator::v1::{self as pb, evaluate_request};

use crate::decision::Goal;

pub use ra_client::goal::KNOWN_METRICS;

/// Confidence when the request leaves it at 0.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// Where the prepared dataset comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasetChoice {
    Prepared(String),
    Prepare {
        name: String,
        options: Box<ra_proto::dataset::v1::PrepareOptions>,
    },
}

/// What to do when seeds fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Decide on the seeds that finished if at least two did; fail otherwise.
    DecideOnRemaining,
    /// Any failed seed fails the evaluation.
    FailFast,
}

/// Percentile pruning of trials against the experiment's other candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruningRule {
    /// A trial must stay within the best `percentile` % of the others (50 = median pruning).
    pub percentile: f64,
    pub min_epochs: u64,
    pub min_trials: usize,
}

/// Seeds in rounds: the first round, then more rounds while undecided (adaptive seeding).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRounds {
    pub first: Vec<u64>,
    /// Seeds available to later rounds, in order.
    pub more: Vec<u64>,
    /// Seeds added per later round.
    pub step: usize,
}

impl SeedRounds {
    /// How many times the data may be looked at (the Bonferroni factor of adaptive seeding).
    pub fn looks(&self) -> u32 {
        if self.more.is_empty() {
            1
        } else {
            1 + self.more.len().div_ceil(self.step.max(1)) as u32
        }
    }

    /// The seeds of every round, first round first: the evaluation runs them in this order
    /// and stops after any round that decides.
    pub fn rounds(&self) -> Vec<Vec<u64>> {
        let mut rounds = vec![self.first.clone()];
        rounds.extend(self.more.chunks(self.step.max(1)).map(<[u64]>::to_vec));
        rounds
    }

    pub fn total(&self) -> usize {
        self.first.len() + self.more.len()
    }
}

/// A checked request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Absent when the request names a recorded candidate (its specs are used).
    pub model: Option<common::ModelSpec>,
    pub train: Option<common::TrainSpec>,
    pub dataset: DatasetChoice,
    pub seeds: SeedRounds,
    pub goal: Goal,
    pub confidence: f64,
    pub experiment_id: String,
    pub candidate_id: String,
    pub limits: Option<common::ResourceLimits>,
    pub failure_policy: FailurePolicy,
    pub pruning: Option<PruningRule>,
    /// The requested training device; "" for the configured default.
    pub device: String,
}

fn invalid(message: impl Into<String>) -> EvaluatorError {
    EvaluatorError::invalid(message)
}

/// Checks `request`; `max_seeds` is the configured cap on seeds per evaluation.
pub fn plan(request: pb::EvaluateRequest, max_seeds: u32) -> Result<Plan, EvaluatorError> {
    if request.candidate_id.is_empty() && (request.model.is_none() || request.train.is_none()) {
        return Err(invalid(
            "model and train are required unless candidate_id names a recorded candidate \
             (whose specs are then used)",
        ));
    }
    let dataset = match request.dataset {
        Some(evaluate_request::Dataset::PreparedDatasetId(id)) if !id.trim().is_empty() => {
            DatasetChoice::Prepared(id)
        }
        Some(evaluate_request::Dataset::DatasetRef(reference)) if !reference.name.is_empty() => {
            DatasetChoice::Prepare {
                name: reference.name,
                options: Box::new(reference.options.unwrap_or_default()),
            }
        }
        _ => {
            return Err(invalid(
                "dataset is missing: give prepared_dataset_id, or dataset_ref with a dataset \
                 name (for example \"digits\") to prepare through dataset-svc",
            ));
        }
    };
    let seeds = seed_rounds(request.seeds, max_seeds)?;
    let goal = goal(request.target)?;
    let confidence = confidence("confidence", request.confidence, DEFAULT_CONFIDENCE)?;
    let failure_policy = match pb::FailurePolicy::try_from(request.failure_policy) {
        Ok(pb::FailurePolicy::Unspecified | pb::FailurePolicy::DecideOnRemaining) => {
            FailurePolicy::DecideOnRemaining
        }
        Ok(pb::FailurePolicy::FailFast) => FailurePolicy::FailFast,
        Err(_) => {
            return Err(invalid(format!(
                "failure_policy = {} is not a known FailurePolicy",
                request.failure_policy
            )));
        }
    };
    let pruning = match request.early_stopping {
        Some(rule) if rule.enabled => Some(pruning_rule(&rule)?),
        _ => None,
    };
    ra_spec::device::check("device", &request.device, true).map_err(invalid)?;
    for (field, id) in [
        ("experiment_id", &request.experiment_id),
        ("candidate_id", &request.candidate_id),
    ] {
        if id.len() > 128 || id.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '_')) {
            return Err(invalid(format!(
                "{field} = {:?} is not a registry id (letters, digits and '_', such as cand_0192…)",
                id.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(Plan {
        model: request.model,
        train: request.train,
        dataset,
        seeds,
        goal,
        confidence,
        experiment_id: request.experiment_id,
        candidate_id: request.candidate_id,
        limits: request.limits,
        failure_policy,
        pruning,
        device: request.device,
    })
}

/// A confidence level from a request: 0 means `fallback`; otherwise it must lie in (0.5, 1).
pub fn confidence(field: &str, value: f64, fallback: f64) -> Result<f64, EvaluatorError> {
    if value == 0.0 {
        Ok(fallback)
    } else if value > 0.5 && value < 1.0 {
        Ok(value)
    } else {
        Err(invalid(format!(
            "{field} = {value} is outside (0.5, 1): give for example 0.95, or 0 for the default {fallback}"
        )))
    }
}

fn seed_rounds(
    seeds: Option<evaluate_request::Seeds>,
    max_seeds: u32,
) -> Result<SeedRounds, EvaluatorError> {
    let too_many = |count: usize| {
        invalid(format!(
            "{count} seeds requested; this evaluator allows at most {max_seeds} per evaluation \
             (evaluator.max_seeds)"
        ))
    };
    let counted = |count: u32, base: u64| -> Vec<u64> {
        (0..u64::from(count))
            .map(|i| base.wrapping_add(i))
            .collect()
    };
    let rounds = match seeds {
        Some(evaluate_request::Seeds::SeedList(list)) => {
            let mut seen = std::collections::HashSet::new();
            if let Some(repeated) = list.seeds.iter().find(|seed| !seen.insert(**seed)) {
                return Err(invalid(format!(
                    "seed_list lists seed {repeated} twice: each seed is one independent run"
                )));
            }
            SeedRounds {
                first: list.seeds,
                more: Vec::new(),
                step: 1,
            }
        }
        Some(evaluate_request::Seeds::SeedCount(count)) => {
            if count.count as usize > max_seeds as usize {
                return Err(too_many(count.count as usize));
            }
            SeedRounds {
                first: counted(count.count, count.base_seed),
                more: Vec::new(),
                step: 1,
            }
        }
        Some(evaluate_request::Seeds::Adaptive(adaptive)) => {
            if adaptive.initial_seeds < 2 {
                return Err(invalid(format!(
                    "adaptive.initial_seeds = {}: start with at least 2 seeds (a test needs a spread)",
                    adaptive.initial_seeds
                )));
            }
            if adaptive.max_seeds < adaptive.initial_seeds {
                return Err(invalid(format!(
                    "adaptive.max_seeds = {} is below initial_seeds = {}",
                    adaptive.max_seeds, adaptive.initial_seeds
                )));
            }
            if adaptive.max_seeds > max_seeds {
                return Err(too_many(adaptive.max_seeds as usize));
            }
            let all = counted(adaptive.max_seeds, 0);
            let initial = adaptive.initial_seeds as usize;
            SeedRounds {
                first: all[..initial].to_vec(),
                more: all[initial..].to_vec(),
                step: initial.div_ceil(2).max(1),
            }
        }
        None => {
            return Err(invalid(
                "no seeds: give seed_list, seed_count (count ≥ 1) or adaptive seeding",
            ));
        }
    };
    if rounds.first.is_empty() {
        return Err(invalid(
            "no seeds: the seed list is empty or the count is 0; give at least one seed (2 or \
             more for a confidence interval)",
        ));
    }
    if rounds.total() > max_seeds as usize {
        return Err(too_many(rounds.total()));
    }
    Ok(rounds)
}

/// The target checked: a metric ra-trainer reports, a finite threshold, the natural direction
/// (ra-client's rule, which the planner applies too).
pub fn goal(target: Option<common::Target>) -> Result<Goal, EvaluatorError> {
    ra_client::goal::check(target.as_ref()).map_err(|e| invalid(e.to_string()))
}

fn pruning_rule(rule: &pb::EarlyStopping) -> Result<PruningRule, EvaluatorError> {
    let percentile = if rule.percentile == 0.0 {
        50.0
    } else {
        rule.percentile
    };
    if !(percentile > 0.0 && percentile <= 100.0) {
        return Err(invalid(format!(
            "early_stopping.percentile = {} is outside (0, 100]; 50 is median pruning",
            rule.percentile
        )));
    }
    Ok(PruningRule {
        percentile,
        min_epochs: u64::from(rule.min_epochs.max(1)),
        min_trials: if rule.min_trials == 0 {
            3
        } else {
            rule.min_trials as usize
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::EvaluateRequest {
        pb::EvaluateRequest {
            model: Some(common::ModelSpec::default()),
            train: Some(common::TrainSpec::default()),
            dataset: Some(evaluate_request::Dataset::PreparedDatasetId("abc".into())),
            seeds: Some(evaluate_request::Seeds::SeedCount(pb::SeedCount {
                count: 3,
                base_seed: 10,
            })),
            target: Some(common::Target {
                metric: "val_accuracy".into(),
                threshold: 0.9,
                direction: 0,
                open_ended: false,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_request_becomes_a_plan() {
        let plan = plan(request(), 100).expect("valid");
        assert_eq!(plan.seeds.first, vec![10, 11, 12]);
        assert_eq!(plan.seeds.looks(), 1);
        assert_eq!(plan.confidence, 0.95);
        assert_eq!(plan.goal.direction, crate::decision::Direction::Maximize);
    }

    #[test]
    fn adaptive_rounds_count_their_looks() {
        let mut adaptive = request();
        adaptive.seeds = Some(evaluate_request::Seeds::Adaptive(pb::AdaptiveSeeding {
            initial_seeds: 4,
            max_seeds: 10,
        }));
        let plan = plan(adaptive, 100).expect("valid");
        assert_eq!(plan.seeds.first.len(), 4);
        assert_eq!((plan.seeds.more.len(), plan.seeds.step), (6, 2));
        assert_eq!(plan.seeds.looks(), 4);
        assert_eq!(plan.seeds.rounds().len(), 4);
        assert_eq!(plan.seeds.rounds()[3], vec![8, 9]);
    }

    #[test]
    fn bad_fields_are_named() {
        type Change = Box<dyn Fn(&mut pb::EvaluateRequest)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|r| r.seeds = None), "no seeds"),
            (
                Box::new(|r| {
                    r.seeds = Some(evaluate_request::Seeds::SeedList(pb::SeedList::default()))
                }),
                "no seeds",
            ),
            (Box::new(|r| r.confidence = 1.5), "confidence = 1.5"),
            (Box::new(|r| r.confidence = 0.3), "outside (0.5, 1)"),
            (
                Box::new(|r| {
                    if let Some(t) = r.target.as_mut() {
                        t.metric = "accuracy@5".into()
                    }
                }),
                "not a metric",
            ),
            (
                Box::new(|r| {
                    if let Some(t) = r.target.as_mut() {
                        t.threshold = f64::NAN
                    }
                }),
                "threshold is NaN",
            ),
            (Box::new(|r| r.dataset = None), "dataset is missing"),
            (
                Box::new(|r| {
                    r.seeds = Some(evaluate_request::Seeds::SeedCount(pb::SeedCount {
                        count: 1000,
                        base_seed: 0,
                    }))
                }),
                "at most 100",
            ),
        ];
        for (change, expected) in cases {
            let mut bad = request();
            change(&mut bad);
            let status = plan(bad, 100).expect_err(expected).into_status();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(
                status.message().contains(expected),
                "{expected:?} not in {:?}",
                status.message()
            );
        }
    }
}
