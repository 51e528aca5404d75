//! Early stopping: the learning curves of an experiment's trials, and the percentile rule that
//! stops a trial whose metric at an epoch is worse than the other candidates' trials were at
//! the same epoch.
//!
//! Only trials of *other* candidates are the reference (a candidate's own seeds are not an
//! independent yardstick). With percentile p, a trial survives an epoch if its value is within
//! the best p % of the reference values there (p = 50: median pruning, as in Optuna's
//! `MedianPruner`; p = 25 keeps only trials in the best quarter). Curves of finished trials are
//! read from the registry the first time an experiment is seen, then kept up to date by the
//! evaluations running in this process.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::decision::{Direction, Goal, show};
use crate::plan::PruningRule;

/// One trial's curve of one metric.
#[derive(Debug, Clone, Default)]
struct Curve {
    candidate_id: String,
    /// Value by epoch.
    values: HashMap<u64, f64>,
}

/// Curves keyed by (experiment, metric), then by trial.
#[derive(Debug, Default)]
pub struct CurveBook {
    curves: Mutex<HashMap<(String, String), HashMap<String, Curve>>>,
}

impl CurveBook {
    /// Whether the experiment's curves of `metric` have been loaded in this process.
    pub fn knows(&self, experiment_id: &str, metric: &str) -> bool {
        self.lock()
            .contains_key(&(experiment_id.to_owned(), metric.to_owned()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), HashMap<String, Curve>>> {
        self.curves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the experiment's curves of `metric` as loaded (possibly with none).
    pub fn mark_loaded(&self, experiment_id: &str, metric: &str) {
        self.lock()
            .entry((experiment_id.to_owned(), metric.to_owned()))
            .or_default();
    }

    /// Records `value` of `metric` at `epoch` of a trial.
    pub fn record(
        &self,
        experiment_id: &str,
        metric: &str,
        candidate_id: &str,
        trial_id: &str,
        epoch: u64,
        value: f64,
    ) {
        if !value.is_finite() {
            return;
        }
        let mut curves = self.lock();
        let curve = curves
            .entry((experiment_id.to_owned(), metric.to_owned()))
            .or_default()
            .entry(trial_id.to_owned())
            .or_insert_with(|| Curve {
                candidate_id: candidate_id.to_owned(),
                values: HashMap::new(),
            });
        curve.values.insert(epoch, value);
    }

    /// The reason to stop a trial of `candidate_id` whose `metric` is `value` at `epoch`, or
    /// `None` to let it go on.
    pub fn verdict(
        &self,
        experiment_id: &str,
        goal: &Goal,
        candidate_id: &str,
        epoch: u64,
        value: f64,
        rule: &PruningRule,
    ) -> Option<String> {
        let (metric, direction) = (goal.metric.as_str(), goal.direction);
        if epoch < rule.min_epochs {
            return None;
        }
        let references: Vec<f64> = {
            let curves = self.lock();
            curves
                .get(&(experiment_id.to_owned(), metric.to_owned()))?
                .values()
                .filter(|curve| curve.candidate_id != candidate_id)
                .filter_map(|curve| curve.values.get(&epoch).copied())
                .collect()
        };
        if references.len() < rule.min_trials {
            return None;
        }
        let bar = survival_bar(&references, direction, rule.percentile);
        let worse = match direction {
            Direction::Maximize => value < bar,
            Direction::Minimize => value > bar,
        };
        worse.then(|| {
            let kind = if rule.percentile == 50.0 {
                "median pruning".to_owned()
            } else {
                format!("percentile pruning: keep the best {} %", rule.percentile)
            };
            format!(
                "pruned at epoch {epoch}: {metric} = {} is worse than {} (the bar of the best {} % \
                 of {} other candidates' trials at that epoch; {kind})",
                show(value),
                show(bar),
                rule.percentile,
                references.len()
            )
        })
    }
}

/// The value a trial must reach to be within the best `percentile` % of `values`.
pub fn survival_bar(values: &[f64], direction: Direction, percentile: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let fraction = match direction {
        // The best p % are at the top: the bar is the (100 − p)-th percentile.
        Direction::Maximize => 1.0 - percentile / 100.0,
        Direction::Minimize => percentile / 100.0,
    };
    quantile(&sorted, fraction)
}

/// Linear-interpolation quantile of sorted values (NumPy's default method).
fn quantile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = fraction.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIAN: PruningRule = PruningRule {
        percentile: 50.0,
        min_epochs: 2,
        min_trials: 3,
    };

    #[test]
    fn median_pruning_against_other_candidates_only() {
        let book = CurveBook::default();
        for (trial, value) in [("t1", 0.6), ("t2", 0.7), ("t3", 0.8)] {
            book.record("exp", "val_accuracy", "other", trial, 2, value);
        }
        // Own seeds are not references.
        book.record("exp", "val_accuracy", "mine", "t4", 2, 0.1);
        let goal = Goal {
            metric: "val_accuracy".into(),
            threshold: 0.9,
            direction: Direction::Maximize,
        };
        let verdict = |epoch, value| book.verdict("exp", &goal, "mine", epoch, value, &MEDIAN);
        assert!(verdict(2, 0.65).is_some_and(|reason| reason.contains("median")));
        assert!(verdict(2, 0.75).is_none());
        assert!(verdict(1, 0.0).is_none(), "before min_epochs");
        assert!(verdict(3, 0.0).is_none(), "no references at epoch 3");
    }

    #[test]
    fn bars_follow_the_direction() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(survival_bar(&values, Direction::Maximize, 50.0), 3.0);
        assert_eq!(survival_bar(&values, Direction::Maximize, 25.0), 4.0);
        assert_eq!(survival_bar(&values, Direction::Minimize, 25.0), 2.0);
    }
}
