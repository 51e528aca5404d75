//! One session as the pages see it: every record of an experiment folded from the registry's
//! event stream (`WatchExperiment`) in order, so that a page load catches up with only the
//! events since the last one and a live page follows the same stream. Derived views — the
//! latest evaluation of each candidate, the leaderboard order, the best candidate, a
//! candidate's curves — are computed from it, never stored twice.

use std::collections::{BTreeMap, HashMap};

use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as reg;
use reg::experiment_event::Record;

/// A trial's points: metric name → step → value.
pub type Series = BTreeMap<String, BTreeMap<u64, f64>>;

#[derive(Debug, Clone, Default)]
pub struct SessionView {
    /// The position of the last event folded in (0: none).
    pub position: u64,
    pub experiment: reg::Experiment,
    /// In creation order.
    pub candidates: Vec<reg::Candidate>,
    candidate_index: HashMap<String, usize>,
    /// In creation order (ids are UUIDv7), each in its latest state.
    pub trials: Vec<reg::Trial>,
    trial_index: HashMap<String, usize>,
    pub metrics: HashMap<String, Series>,
    pub decisions: Vec<reg::Decision>,
    pub evaluations: Vec<reg::Evaluation>,
    pub artifacts: Vec<reg::Artifact>,
}

impl SessionView {
    /// Folds one event in; events at or before the current position are ignored (a replay
    /// that overlaps a live stream).
    pub fn apply(&mut self, event: reg::ExperimentEvent) {
        if event.position <= self.position {
            return;
        }
        self.position = event.position;
        let Some(record) = event.record else { return };
        match record {
            Record::Experiment(experiment) => self.experiment = experiment,
            Record::Candidate(candidate) => {
                upsert(
                    &mut self.candidates,
                    &mut self.candidate_index,
                    candidate.id.clone(),
                    candidate,
                );
            }
            Record::Trial(trial) => {
                upsert(
                    &mut self.trials,
                    &mut self.trial_index,
                    trial.id.clone(),
                    trial,
                );
            }
            Record::Metrics(batch) => {
                let series = self.metrics.entry(batch.trial_id).or_default();
                for point in batch.points {
                    series
                        .entry(point.name)
                        .or_default()
                        .insert(point.step, point.value);
                }
            }
            Record::Decision(decision) => self.decisions.push(decision),
            Record::Evaluation(evaluation) => self.evaluations.push(evaluation),
            Record::Artifact(artifact) => {
                if !self.artifacts.iter().any(|a| a.sha256 == artifact.sha256) {
                    self.artifacts.push(artifact);
                }
            }
        }
    }

    pub fn candidate(&self, id: &str) -> Option<&reg::Candidate> {
        self.candidate_index.get(id).map(|&i| &self.candidates[i])
    }

    pub fn trial(&self, id: &str) -> Option<&reg::Trial> {
        self.trial_index.get(id).map(|&i| &self.trials[i])
    }

    /// The trials of a candidate, in creation order.
    pub fn trials_of<'a>(&'a self, candidate_id: &'a str) -> impl Iterator<Item = &'a reg::Trial> {
        self.trials
            .iter()
            .filter(move |t| t.candidate_id == candidate_id)
    }

    /// The newest evaluation of a candidate: the one its standing is judged by.
    pub fn latest_evaluation(&self, candidate_id: &str) -> Option<&reg::Evaluation> {
        self.evaluations
            .iter()
            .rev()
            .find(|e| e.candidate_id == candidate_id)
    }

    pub fn target(&self) -> common::Target {
        self.experiment
            .goal
            .as_ref()
            .and_then(|g| g.target.clone())
            .unwrap_or_default()
    }

    /// Higher is better unless the goal says to minimise.
    pub fn maximise(&self) -> bool {
        maximises(&self.experiment)
    }

    /// Candidates with an evaluation, best mean first (by the goal's direction); those
    /// without one follow in creation order.
    pub fn ranked(&self) -> Vec<(&reg::Candidate, Option<&reg::Evaluation>)> {
        let maximise = self.maximise();
        let mut rows: Vec<_> = self
            .candidates
            .iter()
            .map(|c| (c, self.latest_evaluation(&c.id)))
            .collect();
        let key = |e: Option<&reg::Evaluation>| {
            e.and_then(|e| e.aggregate.as_ref())
                .filter(|a| a.n > 0 && a.mean.is_finite())
                .map(|a| if maximise { a.mean } else { -a.mean })
        };
        // Stable: equal means keep creation order.
        rows.sort_by(|a, b| match (key(a.1), key(b.1)) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        rows
    }

    /// The best evaluated candidate and its evaluation.
    pub fn best(&self) -> Option<(&reg::Candidate, &reg::Evaluation)> {
        self.ranked().into_iter().find_map(|(c, e)| {
            e.filter(|e| e.aggregate.as_ref().is_some_and(|a| a.n > 0))
                .map(|e| (c, e))
        })
    }

    /// The series `metric` of each trial of a candidate: (trial, points by step).
    pub fn curves<'a>(
        &'a self,
        candidate_id: &'a str,
        metric: &'a str,
    ) -> Vec<(&'a reg::Trial, Vec<(u64, f64)>)> {
        self.trials_of(candidate_id)
            .map(|trial| {
                let points = self
                    .metrics
                    .get(&trial.id)
                    .and_then(|series| series.get(metric))
                    .map(|s| s.iter().map(|(&step, &value)| (step, value)).collect())
                    .unwrap_or_default();
                (trial, points)
            })
            .collect()
    }

    /// The session's budget: the one changed while it ran (the `budget` label planner-svc
    /// keeps), else the goal's.
    pub fn budget(&self) -> common::Budget {
        let changed = self
            .experiment
            .labels
            .get(ra_client::goal::BUDGET_LABEL)
            .and_then(|label| ra_client::goal::budget_from_label(label));
        changed
            .or_else(|| self.experiment.goal.as_ref().and_then(|g| g.budget))
            .unwrap_or_default()
    }

    /// Seconds the session has run (see [`elapsed_seconds`]).
    pub fn elapsed_seconds(&self) -> Option<f64> {
        elapsed_seconds(&self.experiment)
    }
}

/// Whether higher values of the experiment's target metric are better (unless it minimises).
pub fn maximises(experiment: &reg::Experiment) -> bool {
    experiment
        .goal
        .as_ref()
        .and_then(|g| g.target.as_ref())
        .is_none_or(|t| t.direction() != common::Direction::Minimize)
}

/// Seconds an experiment has run: the planner's `elapsed_seconds` label, else from its creation
/// to its last update.
pub fn elapsed_seconds(experiment: &reg::Experiment) -> Option<f64> {
    if let Some(recorded) = experiment
        .labels
        .get("elapsed_seconds")
        .and_then(|s| s.parse::<f64>().ok())
    {
        return Some(recorded);
    }
    let created = experiment.created_at.as_ref()?;
    let updated = experiment.updated_at.as_ref()?;
    Some(seconds_between(created, updated))
}

/// The goal in the researcher's words, or the experiment's name when it has none.
pub fn goal_text(experiment: &reg::Experiment) -> &str {
    experiment
        .goal
        .as_ref()
        .map(|g| g.text.as_str())
        .filter(|t| !t.is_empty())
        .unwrap_or(&experiment.name)
}

fn upsert<T>(list: &mut Vec<T>, index: &mut HashMap<String, usize>, id: String, value: T) {
    match index.get(&id) {
        Some(&i) => list[i] = value,
        None => {
            index.insert(id, list.len());
            list.push(value);
        }
    }
}

pub fn seconds_between(a: &prost_types::Timestamp, b: &prost_types::Timestamp) -> f64 {
    (b.seconds - a.seconds) as f64 + f64::from(b.nanos - a.nanos) * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: u64, record: Record) -> reg::ExperimentEvent {
        reg::ExperimentEvent {
            position,
            recorded_at: None,
            record: Some(record),
        }
    }

    fn evaluation(candidate: &str, mean: f64) -> Record {
        Record::Evaluation(reg::Evaluation {
            candidate_id: candidate.into(),
            aggregate: Some(common::Aggregate {
                n: 3,
                mean,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn candidate(id: &str) -> Record {
        Record::Candidate(reg::Candidate {
            id: id.into(),
            ..Default::default()
        })
    }

    #[test]
    fn folds_records_in_order_and_keeps_the_latest_state() {
        let mut view = SessionView::default();
        view.apply(event(1, candidate("cand_a")));
        let mut trial = reg::Trial {
            id: "trial_1".into(),
            candidate_id: "cand_a".into(),
            state: common::TrialState::Running as i32,
            ..Default::default()
        };
        view.apply(event(2, Record::Trial(trial.clone())));
        trial.state = common::TrialState::Succeeded as i32;
        view.apply(event(3, Record::Trial(trial)));
        view.apply(event(
            4,
            Record::Metrics(reg::AppendMetricsRequest {
                trial_id: "trial_1".into(),
                points: vec![common::MetricPoint {
                    name: "val_accuracy".into(),
                    step: 1,
                    value: 0.5,
                    wall_time: None,
                }],
            }),
        ));
        // A replayed event is not applied twice.
        view.apply(event(2, candidate("cand_b")));
        assert_eq!(view.position, 4);
        assert_eq!(view.candidates.len(), 1);
        assert_eq!(view.trials.len(), 1);
        assert_eq!(view.trials[0].state(), common::TrialState::Succeeded);
        assert_eq!(view.curves("cand_a", "val_accuracy")[0].1, vec![(1, 0.5)]);
    }

    #[test]
    fn ranks_by_the_goal_direction_and_puts_unevaluated_last() {
        let mut view = SessionView::default();
        for (i, id) in ["cand_a", "cand_b", "cand_c"].iter().enumerate() {
            view.apply(event(i as u64 + 1, candidate(id)));
        }
        view.apply(event(4, evaluation("cand_a", 0.5)));
        view.apply(event(5, evaluation("cand_c", 0.9)));
        let order = |view: &SessionView| -> Vec<String> {
            view.ranked().iter().map(|(c, _)| c.id.clone()).collect()
        };
        assert_eq!(order(&view), ["cand_c", "cand_a", "cand_b"]);
        view.experiment.goal = Some(common::ResearchGoal {
            target: Some(common::Target {
                metric: "val_loss".into(),
                threshold: 0.1,
                direction: common::Direction::Minimize as i32,
                open_ended: false,
            }),
            ..Default::default()
        });
        assert_eq!(order(&view), ["cand_a", "cand_c", "cand_b"]);
        assert_eq!(view.best().map(|(c, _)| c.id.as_str()), Some("cand_a"));
        // A newer evaluation replaces the candidate's standing.
        view.apply(event(6, evaluation("cand_c", 0.1)));
        assert_eq!(order(&view), ["cand_c", "cand_a", "cand_b"]);
    }
}
