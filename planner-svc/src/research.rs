//! The research loop of one session: prepare the dataset, then propose → ValidateJob →
//! Evaluate → record → decide until the goal is achieved at the requested confidence (Holm–
//! Bonferroni across the session's candidates, through evaluator-svc's AssessExperiment), the
//! budget (candidates, total seeds, wall time) is spent, or StopResearch arrives. Everything
//! lives in the registry, so a session started again from its experiment id ([`Research::
//! load`]) continues where it was: candidates with an evaluation are history, a candidate
//! interrupted mid-evaluation is evaluated again (finished seeds are reused by the evaluator,
//! running ones adopted), nothing finished is repeated.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ra_proto::common::v1 as common;
use ra_proto::dataset::v1 as ds;
use ra_proto::evaluator::v1 as ev;
use ra_proto::planner::v1 as pb;
use ra_proto::registry::v1 as reg;
use ra_proto::sandbox::v1 as sb;
use ra_spec::{InputSpec, ModelSpec, TrainSpec};
use serde_json::json;
use tonic::{Code, Status};

mod answer;
mod candidate;
mod outcome;
mod requests;
mod resume;

use crate::error::PlannerError;
use crate::llm::Brief;
use crate::peers::Clients;
use crate::proposer::Proposer;
use crate::report;
use crate::session::SessionHandle;
use crate::session_config::SessionConfig;
use crate::strategy::{Context, HistoryEntry, Proposal};

/// One candidate of the session and what became of it.
#[derive(Debug, Clone)]
pub struct CandidateRecord {
    pub id: String,
    pub name: String,
    pub model: ModelSpec,
    pub train: TrainSpec,
    pub strategy: String,
    pub rationale: String,
    pub evaluation_id: String,
    pub aggregate: Option<common::Aggregate>,
    pub p_value: f64,
    pub decision: common::GoalDecision,
    pub explanation: String,
    /// Why it has no usable result (rejected, failed, interrupted); `None` when evaluated.
    pub failure: Option<String>,
    /// Holm-adjusted p-value from the latest assessment.
    pub adjusted_p_value: f64,
    /// Whether its seeds' validation curves were still improving at the last epoch (seen
    /// during this run's evaluation; false after a resume).
    pub improving: bool,
}

impl CandidateRecord {
    fn score(&self) -> Option<f64> {
        match (&self.failure, &self.aggregate) {
            (None, Some(aggregate)) if aggregate.n > 0 => Some(aggregate.mean),
            _ => None,
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone)]
pub enum End {
    Succeeded(String),
    Exhausted(String),
    /// An open-ended goal's budget is spent: the best candidate found, in words.
    Completed(String),
    Paused(String),
    /// `resumable`: the cause was outside the session (a peer unreachable).
    Failed {
        message: String,
        resumable: bool,
    },
}

fn session_error(context: &str, status: &Status) -> End {
    End::Failed {
        message: format!("{context}: {}", status.message()),
        resumable: matches!(
            status.code(),
            Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Unknown
        ),
    }
}

/// The dataset as the strategies need it.
#[derive(Debug, Clone)]
pub struct DatasetFacts {
    pub prepared_id: String,
    pub input: InputSpec,
    pub num_classes: u32,
    pub description: String,
    /// Samples of the train split (steps per epoch follow from it).
    pub train_samples: u64,
}

/// One session's loop.
pub struct Research {
    pub clients: Clients,
    pub handle: Arc<SessionHandle>,
    pub goal: common::ResearchGoal,
    pub config: SessionConfig,
    pub reports_dir: PathBuf,
    pub candidates: Vec<CandidateRecord>,
    /// Wall time spent before this run (earlier runs of a resumed session).
    pub elapsed_before: f64,
    pub started: Instant,
    pub seeds_used: u32,
    dataset: Option<DatasetFacts>,
    any_achieved: bool,
    best_candidate_id: String,
}

fn maximize(goal: &common::ResearchGoal) -> bool {
    goal.target
        .as_ref()
        .is_none_or(|t| t.direction != common::Direction::Minimize as i32)
}

impl Research {
    pub fn new(
        clients: Clients,
        handle: Arc<SessionHandle>,
        goal: common::ResearchGoal,
        config: SessionConfig,
        reports_dir: PathBuf,
    ) -> Self {
        Self {
            clients,
            handle,
            goal,
            config,
            reports_dir,
            candidates: Vec::new(),
            elapsed_before: 0.0,
            started: Instant::now(),
            seeds_used: 0,
            dataset: None,
            any_achieved: false,
            best_candidate_id: String::new(),
        }
    }

    fn id(&self) -> &str {
        &self.handle.id
    }

    fn budget(&self) -> common::Budget {
        self.goal.budget.unwrap_or_default()
    }

    /// The candidate that reached the goal after the Holm correction (the assessment's best),
    /// if one did.
    pub fn achieving_candidate(&self) -> Option<&CandidateRecord> {
        if !self.any_achieved {
            return None;
        }
        self.candidates
            .iter()
            .find(|c| c.id == self.best_candidate_id)
    }

    pub fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// Runs the session to its end and records how it ended.
    pub async fn run(mut self) {
        let end = match self.drive().await {
            Ok(end) | Err(end) => end,
        };
        let end = match end {
            End::Exhausted(reason) if self.open_ended() => self.answer(reason).await,
            other => other,
        };
        self.finish(end).await;
    }

    async fn drive(&mut self) -> Result<End, End> {
        self.handle
            .emit(pb::research_event::Event::GoalParsed(self.goal.clone()));
        self.load_history().await?;
        self.prepare_dataset().await?;
        let mut proposer = Proposer::new(
            &self.config.strategy,
            self.config
                .seed
                .wrapping_add(self.candidates.len() as u64 * 7919),
            &self.config.llm,
        )
        .map_err(|message| End::Failed {
            message,
            resumable: false,
        })?;
        // A candidate interrupted mid-evaluation by a crash or a stop is evaluated first.
        let interrupted: Vec<usize> = (0..self.candidates.len())
            .filter(|&i| {
                self.candidates[i].failure.as_deref() == Some(INTERRUPTED)
                    && self.candidates[i].evaluation_id.is_empty()
            })
            .collect();
        for index in interrupted {
            if let Some(end) = self.evaluate(index, true).await? {
                return Ok(end);
            }
        }
        if !self.candidates.is_empty() {
            self.assess().await?;
        }
        loop {
            if self.any_achieved {
                return Ok(self.success());
            }
            self.apply_budget_change().await?;
            if self.handle.stop.is_cancelled() {
                return Ok(self.paused());
            }
            if let Some(reason) = self.budget_spent() {
                return Ok(End::Exhausted(reason));
            }
            let index = self.propose(&mut proposer).await?;
            if !self.validate(index).await? {
                continue;
            }
            if let Some(end) = self.evaluate(index, false).await? {
                return Ok(end);
            }
            self.assess().await?;
            self.record_progress().await?;
        }
    }
}

/// The failure text of a candidate whose evaluation has not finished.
pub const INTERRUPTED: &str = "interrupted before its evaluation finished";

/// A registry evaluation applied to a candidate record.
pub fn apply_evaluation(record: &mut CandidateRecord, evaluation: &reg::Evaluation) {
    record.evaluation_id = evaluation.id.clone();
    record.aggregate = evaluation.aggregate.clone();
    record.p_value = evaluation.p_value;
    record.decision = evaluation.decision();
    record.explanation = evaluation.explanation.clone();
    record.failure = if evaluation.explanation.starts_with("evaluation failed") {
        Some(evaluation.explanation.clone())
    } else {
        None
    };
}

pub fn strategy_enum(name: &str) -> pb::Strategy {
    ra_client::strategy::from_name(name).unwrap_or(pb::Strategy::Unspecified)
}

/// A session over peers that nobody serves (closed 127.0.0.1 ports, one try per call), for the
/// unit tests of the loop's pieces.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::config::PlannerSettings;

    fn closed_url() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        format!("http://127.0.0.1:{port}")
    }

    pub fn research(goal: common::ResearchGoal) -> Research {
        let url = closed_url();
        let settings = PlannerSettings {
            registry_url: url.clone(),
            evaluator_url: url.clone(),
            dataset_url: url.clone(),
            sandbox_url: url,
            retry: ra_client::RetrySettings {
                attempts: 1,
                initial_backoff_ms: 1,
                max_backoff_ms: 1,
            },
            ..PlannerSettings::default()
        };
        let clients =
            Clients::connect_lazy(&settings, &ra_client::Credentials::none()).expect("valid URLs");
        let handle = SessionHandle::new(pb::ResearchStatus {
            research_id: ra_client::ids::EntityKind::Experiment.new_id(),
            ..Default::default()
        });
        Research::new(
            clients,
            handle,
            goal,
            SessionConfig::default(),
            std::env::temp_dir(),
        )
    }

    pub fn goal(direction: common::Direction) -> common::ResearchGoal {
        common::ResearchGoal {
            dataset: "digits".into(),
            target: Some(common::Target {
                metric: "val_accuracy".into(),
                threshold: 0.9,
                direction: direction as i32,
                open_ended: false,
            }),
            confidence: 0.95,
            num_seeds: 3,
            budget: Some(common::Budget {
                max_candidates: 3,
                max_total_seeds: 10,
                max_wall_seconds: 3_600,
            }),
            ..Default::default()
        }
    }

    pub fn candidate(name: &str, mean: Option<f64>) -> CandidateRecord {
        let input = InputSpec::Tabular { features: 64 };
        CandidateRecord {
            id: ra_client::ids::EntityKind::Candidate.new_id(),
            name: name.into(),
            model: ra_spec::examples::baseline(&input, 10),
            train: ra_spec::examples::baseline_train(2),
            strategy: "evolution".into(),
            rationale: String::new(),
            evaluation_id: String::new(),
            aggregate: mean.map(|mean| common::Aggregate {
                n: 3,
                mean,
                ..Default::default()
            }),
            p_value: 1.0,
            decision: common::GoalDecision::Undecided,
            explanation: String::new(),
            failure: None,
            adjusted_p_value: 1.0,
            improving: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_failures_make_a_session_resumable_and_refusals_do_not() {
        for (status, resumable) in [
            (Status::unavailable("down"), true),
            (Status::resource_exhausted("busy"), true),
            (Status::deadline_exceeded("slow"), true),
            (Status::invalid_argument("bad spec"), false),
            (Status::failed_precondition("no trainer"), false),
        ] {
            match session_error("evaluating", &status) {
                End::Failed {
                    message,
                    resumable: r,
                } => {
                    assert_eq!(r, resumable, "{status:?}");
                    assert!(message.starts_with("evaluating: "), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn strategies_map_to_the_contract_and_evaluations_to_records() {
        for name in crate::config::STRATEGIES {
            assert_ne!(strategy_enum(name), pb::Strategy::Unspecified, "{name}");
        }
        assert_eq!(strategy_enum("gradient"), pb::Strategy::Unspecified);
        let mut record = fixture::candidate("c01", None);
        let mut evaluation = reg::Evaluation {
            id: "eval_1".into(),
            aggregate: Some(common::Aggregate {
                n: 3,
                mean: 0.8,
                ..Default::default()
            }),
            p_value: 0.2,
            explanation: "evaluation failed: 3 of 3 seeds failed".into(),
            ..Default::default()
        };
        apply_evaluation(&mut record, &evaluation);
        assert_eq!(
            record.failure.as_deref(),
            Some(evaluation.explanation.as_str())
        );
        assert_eq!(record.score(), None, "a failed evaluation has no score");
        evaluation.explanation = "mean 0.8 …".into();
        apply_evaluation(&mut record, &evaluation);
        assert_eq!((record.failure.clone(), record.score()), (None, Some(0.8)));
        assert!(maximize(&fixture::goal(common::Direction::Maximize)));
        assert!(!maximize(&fixture::goal(common::Direction::Minimize)));
    }
}
