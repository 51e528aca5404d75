//! The goal rules the planner and the evaluator share, so that they agree by construction: the
//! metrics ra-trainer reports with their natural direction, and the check of a
//! `common.v1.Target` (a known metric, a finite threshold, a direction that does not contradict
//! the metric's), and the experiment label that keeps a session budget changed while it ran.

use ra_proto::common::v1 as common;

/// The experiment label holding a session budget changed while it ran (UpdateBudget): the
/// planner writes it and applies it on resume; the dashboard shows it.
pub const BUDGET_LABEL: &str = "budget";

/// A budget as [`BUDGET_LABEL`] keeps it: `max_candidates=7,max_total_seeds=40,max_wall_seconds=900`.
pub fn budget_label(budget: &common::Budget) -> String {
    format!(
        "max_candidates={},max_total_seeds={},max_wall_seconds={}",
        budget.max_candidates, budget.max_total_seeds, budget.max_wall_seconds
    )
}

/// The budget a [`BUDGET_LABEL`] value holds; `None` when any of the three is missing or bad.
pub fn budget_from_label(label: &str) -> Option<common::Budget> {
    let mut budget = common::Budget::default();
    let mut seen = 0;
    for pair in label.split(',') {
        let (key, value) = pair.trim().split_once('=')?;
        match key {
            "max_candidates" => budget.max_candidates = value.parse().ok()?,
            "max_total_seeds" => budget.max_total_seeds = value.parse().ok()?,
            "max_wall_seconds" => budget.max_wall_seconds = value.parse().ok()?,
            _ => return None,
        }
        seen += 1;
    }
    (seen == 3).then_some(budget)
}

/// What a target asks for, in words after its metric: "> 0.9", "< 0.3", or for an open-ended
/// goal "as high as the budget finds" / "as low as the budget finds".
pub fn target_words(target: &common::Target) -> String {
    let minimize = target.direction == common::Direction::Minimize as i32;
    match (target.open_ended, minimize) {
        (true, true) => "as low as the budget finds".to_owned(),
        (true, false) => "as high as the budget finds".to_owned(),
        (false, true) => format!("< {}", target.threshold),
        (false, false) => format!("> {}", target.threshold),
    }
}

/// Whether larger or smaller values of the metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Maximize,
    Minimize,
}

impl Direction {
    /// Whether `value` is strictly better than `reference`.
    pub fn better(self, value: f64, reference: f64) -> bool {
        match self {
            Self::Maximize => value > reference,
            Self::Minimize => value < reference,
        }
    }

    pub fn comparison(self) -> &'static str {
        match self {
            Self::Maximize => ">",
            Self::Minimize => "<",
        }
    }

    /// As the contract spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Maximize => "MAXIMIZE",
            Self::Minimize => "MINIMIZE",
        }
    }
}

/// Metrics `ra-trainer` reports in its final record, with their direction.
pub const KNOWN_METRICS: &[(&str, Direction)] = &[
    ("val_accuracy", Direction::Maximize),
    ("val_loss", Direction::Minimize),
    ("val_macro_f1", Direction::Maximize),
    ("test_accuracy", Direction::Maximize),
    ("test_loss", Direction::Minimize),
    ("test_macro_f1", Direction::Maximize),
];

/// What the mean must beat.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub metric: String,
    pub threshold: f64,
    pub direction: Direction,
}

/// Why a target is refused; each message says what to write instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GoalError {
    #[error("target is missing: give a metric ({known}) and a threshold", known = known())]
    Missing,
    #[error("target.metric {metric:?} is not a metric ra-trainer reports; use one of: {known}", known = known())]
    UnknownMetric { metric: String },
    #[error("target.threshold is {0}; give a finite number")]
    NotFinite(f64),
    #[error("target.direction = {0} is not a known Direction")]
    UnknownDirection(i32),
    #[error(
        "target.direction = {given} contradicts {metric}, whose natural direction is {natural}: \
         leave direction unspecified or set it to {natural}",
        given = given.name(),
        natural = natural.name()
    )]
    Contradicts {
        metric: String,
        given: Direction,
        natural: Direction,
    },
}

fn known() -> String {
    KNOWN_METRICS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The natural direction of a metric ra-trainer reports.
pub fn natural_direction(metric: &str) -> Option<Direction> {
    KNOWN_METRICS
        .iter()
        .find(|(name, _)| *name == metric)
        .map(|(_, direction)| *direction)
}

/// The target checked: a metric ra-trainer reports, a finite threshold, the natural direction.
pub fn check(target: Option<&common::Target>) -> Result<Goal, GoalError> {
    let target = target.ok_or(GoalError::Missing)?;
    let natural = natural_direction(&target.metric).ok_or_else(|| GoalError::UnknownMetric {
        metric: target.metric.chars().take(64).collect(),
    })?;
    if !target.threshold.is_finite() {
        return Err(GoalError::NotFinite(target.threshold));
    }
    let direction = match common::Direction::try_from(target.direction) {
        Ok(common::Direction::Unspecified) => natural,
        Ok(common::Direction::Maximize) => Direction::Maximize,
        Ok(common::Direction::Minimize) => Direction::Minimize,
        Err(_) => return Err(GoalError::UnknownDirection(target.direction)),
    };
    if direction != natural {
        return Err(GoalError::Contradicts {
            metric: target.metric.clone(),
            given: direction,
            natural,
        });
    }
    Ok(Goal {
        metric: target.metric.clone(),
        threshold: target.threshold,
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(metric: &str, threshold: f64, direction: common::Direction) -> common::Target {
        common::Target {
            metric: metric.to_owned(),
            threshold,
            direction: direction as i32,
            open_ended: false,
        }
    }

    #[test]
    fn targets_are_said_in_words() {
        let mut loss = target("val_loss", 0.3, common::Direction::Minimize);
        assert_eq!(target_words(&loss), "< 0.3");
        loss.open_ended = true;
        assert_eq!(target_words(&loss), "as low as the budget finds");
        let accuracy = target("val_accuracy", 0.9, common::Direction::Maximize);
        assert_eq!(target_words(&accuracy), "> 0.9");
    }

    #[test]
    fn a_budget_survives_its_label() {
        let budget = common::Budget {
            max_candidates: 7,
            max_total_seeds: 40,
            max_wall_seconds: 900,
        };
        assert_eq!(budget_from_label(&budget_label(&budget)), Some(budget));
        for bad in [
            "",
            "max_candidates=7",
            "max_candidates=-1,max_total_seeds=1,max_wall_seconds=1",
            "x=1,y=2,z=3",
        ] {
            assert_eq!(budget_from_label(bad), None, "{bad}");
        }
    }

    #[test]
    fn targets_are_checked_with_the_natural_direction() {
        let goal = check(Some(&target(
            "val_loss",
            0.3,
            common::Direction::Unspecified,
        )))
        .expect("valid");
        assert_eq!(goal.direction, Direction::Minimize);
        assert!(goal.direction.better(0.2, 0.3));
        assert_eq!(check(None), Err(GoalError::Missing));
        let error = check(Some(&target(
            "val_acc",
            0.9,
            common::Direction::Unspecified,
        )))
        .expect_err("unknown");
        assert!(error.to_string().contains("val_accuracy"), "{error}");
        assert!(matches!(
            check(Some(&target(
                "val_accuracy",
                f64::NAN,
                common::Direction::Maximize
            ))),
            Err(GoalError::NotFinite(_))
        ));
        let error = check(Some(&target(
            "val_accuracy",
            0.9,
            common::Direction::Minimize,
        )))
        .expect_err("contradicts");
        assert!(error.to_string().contains("set it to MAXIMIZE"), "{error}");
        let mut odd = target("val_accuracy", 0.9, common::Direction::Maximize);
        odd.direction = 7;
        assert_eq!(check(Some(&odd)), Err(GoalError::UnknownDirection(7)));
    }
}
