//! The end of an evaluation in its two shapes: the `EvaluationResult` a caller gets (undefined
//! statistics as NaN), and the registry's `Evaluation` record (finite numbers only: undefined
//! values are stored as 0, the p-value as 1, and restored when read back from `n`).
//!
//! Also where the failure policy's outcome is worded: which seeds failed and why, whether the
//! decision stands on the rest, or why the evaluation failed.

use std::fmt::Write as _;

use ra_proto::common::v1 as common;
use ra_proto::evaluator::v1 as pb;
use ra_proto::registry::v1 as reg;

use crate::decision::{Direction, Goal, Verdict};
use crate::plan::FailurePolicy;

/// Everything an evaluation ends with, before the failure policy is applied.
#[derive(Debug)]
pub struct Outcome {
    pub evaluation_id: String,
    pub experiment_id: String,
    pub candidate_id: String,
    pub seeds: Vec<pb::SeedResult>,
    pub target: Goal,
    pub verdict: Verdict,
    pub prune_reason: Option<String>,
    pub failure_policy: FailurePolicy,
}

pub fn target_proto(goal: &Goal) -> common::Target {
    common::Target {
        metric: goal.metric.clone(),
        threshold: goal.threshold,
        direction: match goal.direction {
            Direction::Maximize => common::Direction::Maximize,
            Direction::Minimize => common::Direction::Minimize,
        } as i32,
        open_ended: false,
    }
}

fn aggregate(goal: &Goal, verdict: &Verdict) -> common::Aggregate {
    let summary = &verdict.summary;
    common::Aggregate {
        metric: goal.metric.clone(),
        n: summary.n as u32,
        mean: summary.mean,
        std_dev: summary.std_dev,
        min: summary.min,
        max: summary.max,
        std_error: summary.std_error,
        ci_low: verdict.interval.low,
        ci_high: verdict.interval.high,
        confidence: verdict.confidence,
    }
}

impl Outcome {
    /// The result and, when the policy says the evaluation failed, the message of its error.
    pub fn conclude(self) -> (pb::EvaluationResult, Option<String>) {
        let failed: Vec<&pb::SeedResult> = self
            .seeds
            .iter()
            .filter(|seed| seed.state == common::TrialState::Failed as i32)
            .collect();
        let total = self.seeds.len();
        let finished = self.verdict.summary.n;
        let mut failures = String::new();
        for seed in &failed {
            let _ = write!(failures, "; seed {}: {}", seed.seed, seed.message);
        }
        let mut decision = self.verdict.decision;
        let mut p_value = self.verdict.p_value;
        let mut explanation = self.verdict.explanation.clone();
        let mut error = None;
        if let Some(reason) = &self.prune_reason {
            decision = common::GoalDecision::NotAchieved;
            p_value = 1.0;
            explanation = format!(
                "Stopped early — {reason}. The candidate's seeds did not finish, so no test was \
                 made; it is recorded as NOT ACHIEVED (p taken as 1)."
            );
        } else if !failed.is_empty() {
            let policy_fails = match self.failure_policy {
                FailurePolicy::FailFast => true,
                FailurePolicy::DecideOnRemaining => finished < 2,
            };
            if policy_fails {
                let rule = match self.failure_policy {
                    FailurePolicy::FailFast => {
                        "FAIL_FAST fails the evaluation on any failed seed".to_owned()
                    }
                    FailurePolicy::DecideOnRemaining => format!(
                        "DECIDE_ON_REMAINING needs at least 2 finished seeds and {finished} finished"
                    ),
                };
                explanation = format!(
                    "evaluation failed: {} of {total} seeds failed{failures}. Policy {rule}.",
                    failed.len()
                );
                error = Some(format!("evaluation {} {explanation}", self.evaluation_id));
                decision = common::GoalDecision::Undecided;
                p_value = f64::NAN;
            } else {
                explanation = format!(
                    "{} of {total} seeds failed and are left out{failures}. Decided on the {finished} \
                     that finished (policy DECIDE_ON_REMAINING): {explanation}",
                    failed.len()
                );
            }
        }
        let result = pb::EvaluationResult {
            evaluation_id: self.evaluation_id,
            experiment_id: self.experiment_id,
            candidate_id: self.candidate_id,
            target: Some(target_proto(&self.target)),
            aggregate: Some(aggregate(&self.target, &self.verdict)),
            decision: decision as i32,
            p_value,
            t_statistic: self.verdict.t_statistic,
            explanation,
            failed_seeds: failed.len() as u32,
            finished_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            seeds: self.seeds,
        };
        (result, error)
    }
}

fn finite_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() { value } else { fallback }
}

/// The registry record of a result.
pub fn record(result: &pb::EvaluationResult) -> reg::CreateEvaluationRequest {
    let aggregate = result.aggregate.clone().map(|a| common::Aggregate {
        mean: finite_or(a.mean, 0.0),
        std_dev: finite_or(a.std_dev, 0.0),
        min: finite_or(a.min, 0.0),
        max: finite_or(a.max, 0.0),
        std_error: finite_or(a.std_error, 0.0),
        ci_low: finite_or(a.ci_low, 0.0),
        ci_high: finite_or(a.ci_high, 0.0),
        ..a
    });
    let mut trial_ids: Vec<String> = Vec::new();
    for seed in &result.seeds {
        if !trial_ids.contains(&seed.trial_id) {
            trial_ids.push(seed.trial_id.clone());
        }
    }
    reg::CreateEvaluationRequest {
        id: result.evaluation_id.clone(),
        candidate_id: result.candidate_id.clone(),
        trial_ids,
        target: result.target.clone(),
        aggregate,
        decision: result.decision,
        p_value: finite_or(result.p_value, 1.0),
        explanation: result.explanation.clone(),
    }
}

/// A result read back from the registry record and its trials.
pub fn from_record(evaluation: reg::Evaluation, trials: Vec<reg::Trial>) -> pb::EvaluationResult {
    let mut aggregate = evaluation.aggregate.unwrap_or_default();
    if aggregate.n < 2 {
        aggregate.std_dev = f64::NAN;
        aggregate.std_error = f64::NAN;
        aggregate.ci_low = f64::NAN;
        aggregate.ci_high = f64::NAN;
        if aggregate.n == 0 {
            aggregate.mean = f64::NAN;
            aggregate.min = f64::NAN;
            aggregate.max = f64::NAN;
        }
    }
    let threshold = evaluation.target.as_ref().map_or(f64::NAN, |t| t.threshold);
    let t_statistic = if aggregate.n < 2 {
        f64::NAN
    } else {
        let difference = aggregate.mean - threshold;
        if aggregate.std_error == 0.0 && difference == 0.0 {
            f64::NAN
        } else {
            difference / aggregate.std_error
        }
    };
    let undecidable = aggregate.n < 2
        && evaluation.p_value == 1.0
        && evaluation.decision != common::GoalDecision::NotAchieved as i32;
    let failed_seeds = trials
        .iter()
        .filter(|t| t.state == common::TrialState::Failed as i32)
        .count() as u32;
    pb::EvaluationResult {
        evaluation_id: evaluation.id,
        experiment_id: evaluation.experiment_id,
        candidate_id: evaluation.candidate_id,
        seeds: trials.into_iter().map(seed_result).collect(),
        target: evaluation.target,
        aggregate: Some(aggregate),
        decision: evaluation.decision,
        p_value: if undecidable {
            f64::NAN
        } else {
            evaluation.p_value
        },
        t_statistic,
        explanation: evaluation.explanation,
        failed_seeds,
        finished_at: evaluation.created_at,
    }
}

/// The `metric` of every succeeded seed, in the order given: the values the statistics use.
pub fn succeeded_values<'a>(
    seeds: impl IntoIterator<Item = &'a pb::SeedResult>,
    metric: &str,
) -> Vec<f64> {
    seeds
        .into_iter()
        .filter(|seed| seed.state == common::TrialState::Succeeded as i32)
        .filter_map(|seed| seed.final_metrics.get(metric).copied())
        .collect()
}

/// A trial as a seed result.
pub fn seed_result(trial: reg::Trial) -> pb::SeedResult {
    pb::SeedResult {
        seed: trial.seed,
        trial_id: trial.id,
        state: trial.state,
        exit_reason: trial.exit_reason,
        final_metrics: trial.final_metrics,
        usage: trial.usage,
        message: trial.message,
        device: trial.device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::decide;

    fn goal() -> Goal {
        Goal {
            metric: "val_accuracy".into(),
            threshold: 0.8,
            direction: Direction::Maximize,
        }
    }

    fn seed(seed: u64, value: Option<f64>) -> pb::SeedResult {
        pb::SeedResult {
            seed,
            trial_id: format!("trial_{seed}"),
            state: if value.is_some() {
                common::TrialState::Succeeded
            } else {
                common::TrialState::Failed
            } as i32,
            final_metrics: value
                .map(|v| [("val_accuracy".to_owned(), v)].into())
                .unwrap_or_default(),
            message: if value.is_none() {
                "the job ran out of memory".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    fn outcome(seeds: Vec<pb::SeedResult>, policy: FailurePolicy) -> Outcome {
        let values: Vec<f64> = seeds
            .iter()
            .filter_map(|s| s.final_metrics.get("val_accuracy").copied())
            .collect();
        Outcome {
            evaluation_id: "eval_1".into(),
            experiment_id: "exp_1".into(),
            candidate_id: "cand_1".into(),
            verdict: decide(&values, &goal(), 0.95, 1),
            seeds,
            target: goal(),
            prune_reason: None,
            failure_policy: policy,
        }
    }

    #[test]
    fn remaining_seeds_decide_when_at_least_two_finished() {
        let seeds = vec![
            seed(0, Some(0.91)),
            seed(1, None),
            seed(2, Some(0.92)),
            seed(3, Some(0.90)),
        ];
        let (result, error) = outcome(seeds, FailurePolicy::DecideOnRemaining).conclude();
        assert!(error.is_none());
        assert_eq!(result.failed_seeds, 1);
        assert_eq!(result.decision, common::GoalDecision::Achieved as i32);
        assert!(
            result.explanation.starts_with("1 of 4 seeds failed"),
            "{}",
            result.explanation
        );
        assert!(
            result
                .explanation
                .contains("seed 1: the job ran out of memory")
        );
    }

    #[test]
    fn too_few_finished_or_fail_fast_fails_the_evaluation() {
        let seeds = vec![seed(0, Some(0.91)), seed(1, None), seed(2, None)];
        let (result, error) = outcome(seeds, FailurePolicy::DecideOnRemaining).conclude();
        let error = error.expect("fails");
        assert!(
            error.contains("eval_1") && error.contains("needs at least 2"),
            "{error}"
        );
        assert_eq!(result.decision, common::GoalDecision::Undecided as i32);
        let seeds = vec![seed(0, Some(0.91)), seed(1, Some(0.93)), seed(2, None)];
        let (_, error) = outcome(seeds, FailurePolicy::FailFast).conclude();
        assert!(error.expect("fails").contains("FAIL_FAST"));
    }

    #[test]
    fn records_are_finite_and_read_back_as_nan() {
        let (result, _) =
            outcome(vec![seed(0, Some(0.9))], FailurePolicy::DecideOnRemaining).conclude();
        assert!(result.p_value.is_nan());
        let record = record(&result);
        assert_eq!(record.p_value, 1.0);
        let aggregate = record.aggregate.expect("aggregate");
        assert_eq!((aggregate.std_dev, aggregate.ci_low), (0.0, 0.0));
        let stored = reg::Evaluation {
            id: record.id,
            aggregate: Some(aggregate),
            p_value: record.p_value,
            decision: record.decision,
            target: record.target,
            ..Default::default()
        };
        let back = from_record(stored, Vec::new());
        assert!(back.p_value.is_nan() && back.t_statistic.is_nan());
        assert!(back.aggregate.expect("aggregate").ci_low.is_nan());
    }
}
