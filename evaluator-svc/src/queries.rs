//! Questions about finished evaluations, answered from the registry: GetEvaluation, Compare
//! (Welch's t-test and Hedges' g between two evaluations) and AssessExperiment (did any
//! candidate reach the goal once the Holm–Bonferroni correction across the experiment's
//! candidates is applied).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::error::EvaluatorError;
use ra_proto::common::v1 as common;
use ra_proto::evaluator::v1 as pb;
use ra_proto::registry::v1 as reg;

use crate::decision::{Direction, show, show_p};
use crate::ledger::Ledger;
use crate::plan::{DEFAULT_CONFIDENCE, confidence as confidence_or_default};
use crate::report;
use crate::stats::{self, CompareError, Summary};

fn direction_of(target: Option<&common::Target>) -> Direction {
    match target.map(|t| t.direction()) {
        Some(common::Direction::Minimize) => Direction::Minimize,
        _ => Direction::Maximize,
    }
}

/// An evaluation and its trials.
pub async fn get_evaluation(
    ledger: &Ledger,
    id: &str,
) -> Result<pb::EvaluationResult, EvaluatorError> {
    if id.is_empty() {
        return Err(EvaluatorError::invalid(
            "evaluation_id is empty: give an eval_… id",
        ));
    }
    let evaluation = ledger.evaluation(id).await?;
    let mut trials = Vec::with_capacity(evaluation.trial_ids.len());
    for trial_id in &evaluation.trial_ids {
        trials.push(ledger.trial(trial_id).await?);
    }
    Ok(report::from_record(evaluation, trials))
}

/// Welch's t-test of evaluation a against b on a's target metric.
pub async fn compare(
    ledger: &Ledger,
    request: pb::CompareRequest,
) -> Result<pb::Comparison, EvaluatorError> {
    let confidence = confidence_or_default("confidence", request.confidence, DEFAULT_CONFIDENCE)?;
    if request.evaluation_a.is_empty() || request.evaluation_b.is_empty() {
        return Err(EvaluatorError::invalid(
            "evaluation_a and evaluation_b are both required (eval_… ids)",
        ));
    }
    if request.evaluation_a == request.evaluation_b {
        return Err(EvaluatorError::invalid(
            "evaluation_a and evaluation_b are the same evaluation: compare two different ones",
        ));
    }
    let a = get_evaluation(ledger, &request.evaluation_a).await?;
    let b = get_evaluation(ledger, &request.evaluation_b).await?;
    let metric = a
        .target
        .as_ref()
        .map(|t| t.metric.clone())
        .unwrap_or_default();
    let metric_b = b
        .target
        .as_ref()
        .map(|t| t.metric.clone())
        .unwrap_or_default();
    if metric != metric_b {
        return Err(EvaluatorError::invalid(format!(
            "the evaluations test different metrics ({metric} and {metric_b}); compare evaluations of the same metric"
        )));
    }
    let direction = direction_of(a.target.as_ref());
    let (values_a, values_b) = (
        report::succeeded_values(&a.seeds, &metric),
        report::succeeded_values(&b.seeds, &metric),
    );
    let (summary_a, summary_b) = (Summary::of(&values_a), Summary::of(&values_b));
    let test = stats::welch(&summary_a, &summary_b, confidence).map_err(|error| match error {
        CompareError::TooFew { group, n } => EvaluatorError::NotEnoughData(format!(
            "evaluation {} has {n} finished seed(s); Welch's t-test needs at least 2 in each",
            if group == "a" {
                &a.evaluation_id
            } else {
                &b.evaluation_id
            }
        )),
    })?;
    let alpha = 1.0 - confidence;
    let better = if test.p_two_sided < alpha {
        if direction.better(summary_a.mean, summary_b.mean) {
            "a"
        } else {
            "b"
        }
    } else {
        ""
    };
    let mut explanation = format!(
        "{metric}: a = {} (n {}) vs b = {} (n {}); difference {} with {:.0}% CI [{}, {}]; Welch's \
         t = {} (df {}), two-sided p = {}; Hedges' g = {}. ",
        show(summary_a.mean),
        summary_a.n,
        show(summary_b.mean),
        summary_b.n,
        show(test.difference),
        confidence * 100.0,
        show(test.interval.low),
        show(test.interval.high),
        show(test.t),
        show(test.df),
        show_p(test.p_two_sided),
        show(test.hedges_g),
    );
    let _ = match better {
        "" => write!(
            explanation,
            "Not significant at α = {}: neither is shown better.",
            show(alpha)
        ),
        winner => write!(
            explanation,
            "Significant at α = {}: {winner} is better.",
            show(alpha)
        ),
    };
    Ok(pb::Comparison {
        metric,
        mean_difference: test.difference,
        ci_low: test.interval.low,
        ci_high: test.interval.high,
        t_statistic: test.t,
        degrees_of_freedom: test.df,
        p_value: test.p_two_sided,
        hedges_g: test.hedges_g,
        better: better.to_owned(),
        explanation,
    })
}

/// Holm–Bonferroni across the latest evaluation of every candidate of an experiment.
pub async fn assess(
    ledger: &Ledger,
    request: pb::AssessExperimentRequest,
) -> Result<pb::ExperimentAssessment, EvaluatorError> {
    if request.experiment_id.is_empty() {
        return Err(EvaluatorError::invalid(
            "experiment_id is empty: give an exp_… id",
        ));
    }
    let experiment = ledger.experiment(&request.experiment_id).await?;
    let goal_confidence = experiment
        .goal
        .as_ref()
        .map(|g| g.confidence)
        .filter(|c| *c > 0.5 && *c < 1.0)
        .unwrap_or(DEFAULT_CONFIDENCE);
    let confidence = confidence_or_default("confidence", request.confidence, goal_confidence)?;
    let alpha = 1.0 - confidence;
    // The latest evaluation per candidate (ids sort by creation time).
    let mut latest: BTreeMap<String, reg::Evaluation> = BTreeMap::new();
    for evaluation in ledger.evaluations(&experiment.id).await? {
        match latest.get(&evaluation.candidate_id) {
            Some(kept) if kept.id > evaluation.id => {}
            _ => {
                latest.insert(evaluation.candidate_id.clone(), evaluation);
            }
        }
    }
    if latest.is_empty() {
        return Ok(pb::ExperimentAssessment {
            candidates: Vec::new(),
            any_achieved: false,
            best_candidate_id: String::new(),
            explanation: format!("experiment {} has no evaluations yet", experiment.id),
        });
    }
    let evaluations: Vec<reg::Evaluation> = latest.into_values().collect();
    let p_values: Vec<f64> = evaluations.iter().map(|e| e.p_value).collect();
    let adjusted = stats::holm(&p_values);
    let mut candidates = Vec::with_capacity(evaluations.len());
    let mut best: Option<(&reg::Evaluation, bool)> = None;
    for (evaluation, adjusted_p) in evaluations.iter().zip(&adjusted) {
        let achieved = *adjusted_p < alpha;
        let decision = if achieved {
            common::GoalDecision::Achieved
        } else if evaluation.decision == common::GoalDecision::NotAchieved as i32 {
            common::GoalDecision::NotAchieved
        } else {
            common::GoalDecision::Undecided
        };
        candidates.push(pb::CandidateAssessment {
            candidate_id: evaluation.candidate_id.clone(),
            evaluation_id: evaluation.id.clone(),
            p_value: evaluation.p_value,
            adjusted_p_value: *adjusted_p,
            decision: decision as i32,
        });
        let mean = |e: &reg::Evaluation| e.aggregate.as_ref().map_or(f64::NAN, |a| a.mean);
        let replace = match best {
            None => true,
            Some((kept, kept_achieved)) => {
                (achieved && !kept_achieved)
                    || (achieved == kept_achieved
                        && direction_of(evaluation.target.as_ref())
                            .better(mean(evaluation), mean(kept)))
            }
        };
        if replace {
            best = Some((evaluation, achieved));
        }
    }
    let achieved: Vec<&pb::CandidateAssessment> = candidates
        .iter()
        .filter(|c| c.decision == common::GoalDecision::Achieved as i32)
        .collect();
    let m = candidates.len();
    let explanation = match achieved.as_slice() {
        [] => format!(
            "No candidate reached the goal after the Holm–Bonferroni correction across {m} \
             candidate(s) at α = {} (smallest adjusted p = {}).",
            show(alpha),
            show_p(adjusted.iter().copied().fold(f64::INFINITY, f64::min))
        ),
        some => format!(
            "{} of {m} candidate(s) reached the goal after the Holm–Bonferroni correction at α = \
             {}: {}.",
            some.len(),
            show(alpha),
            some.iter()
                .map(|c| format!(
                    "{} (p = {}, adjusted {})",
                    c.candidate_id,
                    show_p(c.p_value),
                    show_p(c.adjusted_p_value)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok(pb::ExperimentAssessment {
        any_achieved: !achieved.is_empty(),
        best_candidate_id: best
            .map(|(e, _)| e.candidate_id.clone())
            .unwrap_or_default(),
        candidates,
        explanation,
    })
}
