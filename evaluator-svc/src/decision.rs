//! The goal decision of one evaluation: from the per-seed values of the target metric to
//! ACHIEVED / NOT_ACHIEVED / UNDECIDED, with the p-value and the reasons in words.
//!
//! "Achieved" means the one-sided one-sample t-test of "the mean beats the threshold" is
//! significant at α = 1 − confidence; "not achieved" means the mirror test ("the mean is worse
//! than the threshold") is; otherwise the seeds cannot tell yet. Adaptive seeding looks at the
//! data up to `looks` times, so each look is tested at α / looks (Bonferroni over looks) and
//! the reported p-value is the raw one times `looks` (capped at 1): adding seeds while
//! undecided then cannot inflate the false-success rate, and "p < α" stays the rule.

use std::fmt::Write as _;

use ra_proto::common::v1::GoalDecision;

use crate::stats::{self, Interval, Summary};

pub use ra_client::goal::{Direction, Goal};

/// The decision with everything that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub summary: Summary,
    pub interval: Interval,
    pub confidence: f64,
    pub decision: GoalDecision,
    /// p-value of "the mean beats the threshold", adjusted for the looks; NaN for n < 2.
    pub p_value: f64,
    /// (mean − threshold) / standard error; NaN for n < 2, ±∞ for zero spread.
    pub t_statistic: f64,
    pub explanation: String,
}

/// A number for people: four significant digits, no trailing noise.
pub fn show(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{value:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A p-value for people.
pub fn show_p(p: f64) -> String {
    if p > 0.0 && p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

/// Decides `goal` from the per-seed `values` at `confidence`, the `looks`-th look (1 for a
/// fixed number of seeds).
pub fn decide(values: &[f64], goal: &Goal, confidence: f64, looks: u32) -> Verdict {
    let summary = Summary::of(values);
    let interval = stats::mean_interval(&summary, confidence);
    let alpha = 1.0 - confidence;
    let looks = looks.max(1);
    let mut explanation = String::new();
    let level = format!("{:.0}%", confidence * 100.0);
    let metric = &goal.metric;
    let goal_text = format!(
        "mean {metric} {} {}",
        goal.direction.comparison(),
        show(goal.threshold)
    );
    let (decision, p_value, t_statistic) = match stats::one_sample(&summary, goal.threshold) {
        None if summary.n == 0 => {
            explanation.push_str("No seed finished, so there is nothing to decide on.");
            (GoalDecision::Undecided, f64::NAN, f64::NAN)
        }
        None => {
            let _ = write!(
                explanation,
                "{metric} = {} from a single seed. One seed gives no estimate of the seed-to-seed \
                 spread, so there is no confidence interval and no test: the goal ({goal_text}) \
                 stays UNDECIDED. Evaluate at least 2 seeds (5 or more for a useful interval).",
                show(summary.mean)
            );
            (GoalDecision::Undecided, f64::NAN, f64::NAN)
        }
        Some(test) => {
            let (p_beats, p_worse) = match goal.direction {
                Direction::Maximize => (test.p_greater, test.p_less),
                Direction::Minimize => (test.p_less, test.p_greater),
            };
            let adjusted_beats = (p_beats * f64::from(looks)).min(1.0);
            let adjusted_worse = (p_worse * f64::from(looks)).min(1.0);
            let _ = write!(
                explanation,
                "{metric} over {} seeds: mean {}, sd {}, {level} CI [{}, {}]. Goal: {goal_text}. ",
                summary.n,
                show(summary.mean),
                show(summary.std_dev),
                show(interval.low),
                show(interval.high),
            );
            if summary.zero_spread() {
                let _ = write!(
                    explanation,
                    "Every seed gave exactly the same value, so the t-test degenerates to \
                     comparing the mean with the threshold; this is only trustworthy if the seed \
                     truly changes nothing (check that training depends on the seed). "
                );
            } else {
                let _ = write!(
                    explanation,
                    "One-sided one-sample t-test: t = {} (df {}), ",
                    show(test.t),
                    test.df
                );
            }
            let looks_note = if looks > 1 {
                format!(
                    " (raw {} × {looks} looks: adaptive seeding tests each look at α/{looks})",
                    show_p(p_beats)
                )
            } else {
                String::new()
            };
            let decision = if adjusted_beats < alpha {
                let _ = write!(
                    explanation,
                    "p(beats) = {}{looks_note} < α = {}: ACHIEVED at {level} confidence.",
                    show_p(adjusted_beats),
                    show(alpha)
                );
                GoalDecision::Achieved
            } else if adjusted_worse < alpha || (summary.zero_spread() && p_worse == 0.0) {
                let _ = write!(
                    explanation,
                    "p(beats) = {}{looks_note}; the mean is significantly worse than the \
                     threshold (p(worse) = {} < α = {}): NOT ACHIEVED.",
                    show_p(adjusted_beats),
                    show_p(adjusted_worse),
                    show(alpha)
                );
                GoalDecision::NotAchieved
            } else if summary.zero_spread() {
                let _ = write!(
                    explanation,
                    "The mean equals the threshold and does not beat it: NOT ACHIEVED."
                );
                GoalDecision::NotAchieved
            } else {
                let _ = write!(
                    explanation,
                    "p(beats) = {}{looks_note}, p(worse) = {}: neither is below α = {}, so the \
                     seeds cannot tell yet: UNDECIDED. More seeds narrow the interval.",
                    show_p(adjusted_beats),
                    show_p(adjusted_worse),
                    show(alpha)
                );
                GoalDecision::Undecided
            };
            (decision, adjusted_beats, test.t)
        }
    };
    Verdict {
        summary,
        interval,
        confidence,
        decision,
        p_value,
        t_statistic,
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accuracy_goal(threshold: f64) -> Goal {
        Goal {
            metric: "val_accuracy".into(),
            threshold,
            direction: Direction::Maximize,
        }
    }

    #[test]
    fn clear_success_failure_and_doubt() {
        let values = [0.961, 0.958, 0.965, 0.962, 0.960];
        let achieved = decide(&values, &accuracy_goal(0.95), 0.95, 1);
        assert_eq!(achieved.decision, GoalDecision::Achieved, "{achieved:?}");
        assert!(achieved.p_value < 0.001);
        let missed = decide(&values, &accuracy_goal(0.97), 0.95, 1);
        assert_eq!(missed.decision, GoalDecision::NotAchieved, "{missed:?}");
        let doubt = decide(&values, &accuracy_goal(0.9615), 0.95, 1);
        assert_eq!(doubt.decision, GoalDecision::Undecided, "{doubt:?}");
    }

    #[test]
    fn minimising_mirrors_maximising() {
        let losses = [0.20, 0.22, 0.21, 0.19];
        let goal = Goal {
            metric: "val_loss".into(),
            threshold: 0.3,
            direction: Direction::Minimize,
        };
        assert_eq!(
            decide(&losses, &goal, 0.95, 1).decision,
            GoalDecision::Achieved
        );
        let goal = Goal {
            threshold: 0.1,
            ..goal
        };
        assert_eq!(
            decide(&losses, &goal, 0.95, 1).decision,
            GoalDecision::NotAchieved
        );
    }

    #[test]
    fn looks_scale_the_p_value() {
        let values = [0.96, 0.955, 0.958];
        let once = decide(&values, &accuracy_goal(0.95), 0.95, 1);
        let thrice = decide(&values, &accuracy_goal(0.95), 0.95, 3);
        assert!((thrice.p_value - (once.p_value * 3.0).min(1.0)).abs() < 1e-12);
        assert!(thrice.explanation.contains("3 looks"));
    }

    #[test]
    fn one_seed_and_identical_seeds_are_explained() {
        let one = decide(&[0.99], &accuracy_goal(0.5), 0.95, 1);
        assert_eq!(one.decision, GoalDecision::Undecided);
        assert!(one.p_value.is_nan() && one.explanation.contains("single seed"));
        let same = decide(&[0.9, 0.9, 0.9], &accuracy_goal(0.8), 0.95, 1);
        assert_eq!(same.decision, GoalDecision::Achieved);
        assert!(same.explanation.contains("exactly the same value"));
        let at = decide(&[0.9, 0.9], &accuracy_goal(0.9), 0.95, 1);
        assert_eq!(at.decision, GoalDecision::NotAchieved);
        assert_eq!(show(0.123456), "0.1235");
        assert_eq!(show(1.0 - 0.95), "0.05");
        assert_eq!(show(0.9), "0.9");
        assert_eq!(show(1234.56), "1235");
    }
}
