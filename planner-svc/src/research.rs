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
use serde::{Deserialize, Serialize};
use serde_json::json;
use tonic::{Code, Status};

use crate::config::LlmConfig;
use crate::llm::Brief;
use crate::peers::Clients;
use crate::proposer::Proposer;
use crate::report;
use crate::session::SessionHandle;
use crate::strategy::{Context, HistoryEntry, Proposal};

/// Everything fixed for a session; stored as the experiment's `config_json` so that a resumed
/// session runs with the same settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SessionConfig {
    pub strategy: String,
    pub seed: u64,
    pub llm: LlmConfig,
    pub max_epochs: u32,
    pub max_parameters: u64,
    pub max_flops_per_sample: u64,
    pub offline: bool,
    /// `ResourceLimits` of every job, hex-encoded protobuf; empty for the sandbox's defaults.
    #[serde(default)]
    pub limits: String,
    /// `EarlyStopping`, hex-encoded protobuf; empty for none.
    #[serde(default)]
    pub early_stopping: String,
    pub planner_version: String,
}

pub fn to_hex(message: &impl prost::Message) -> String {
    message
        .encode_to_vec()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn from_hex<M: prost::Message + Default>(text: &str) -> Result<Option<M>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or("not hex")?;
    M::decode(bytes.as_slice())
        .map(Some)
        .map_err(|error| error.to_string())
}

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

    fn paused(&self) -> End {
        let reason = self.handle.stop_reason();
        End::Paused(if reason.is_empty() {
            "stopped on request".into()
        } else {
            format!("stopped: {reason}")
        })
    }

    fn success(&self) -> End {
        let best = self
            .candidates
            .iter()
            .find(|c| c.id == self.best_candidate_id);
        End::Succeeded(match best {
            Some(best) => format!(
                "goal achieved by {} ({}): {}",
                best.name, best.id, best.explanation
            ),
            None => "goal achieved".into(),
        })
    }

    /// Why the budget is spent, if it is.
    fn budget_spent(&self) -> Option<String> {
        let budget = self.budget();
        if self.candidates.len() as u32 >= budget.max_candidates {
            return Some(format!(
                "candidate budget spent: {} of {} candidates proposed",
                self.candidates.len(),
                budget.max_candidates
            ));
        }
        let remaining = budget.max_total_seeds.saturating_sub(self.seeds_used);
        if remaining < self.goal.num_seeds {
            return Some(format!(
                "seed budget spent: {} of {} seeds used, fewer than the {} a candidate needs",
                self.seeds_used, budget.max_total_seeds, self.goal.num_seeds
            ));
        }
        let elapsed = self.elapsed();
        if elapsed >= budget.max_wall_seconds as f64 {
            return Some(format!(
                "wall-time budget spent: {elapsed:.0} s of {} s",
                budget.max_wall_seconds
            ));
        }
        None
    }

    /// Reads the session's candidates, evaluations, decisions and trials from the registry.
    async fn load_history(&mut self) -> Result<(), End> {
        let records = &self.clients.records;
        let id = self.handle.id.clone();
        let candidates = records
            .candidates(&id)
            .await
            .map_err(|s| session_error("reading the session's candidates", &s))?;
        let evaluations = records
            .ledger
            .evaluations(&id)
            .await
            .map_err(|s| session_error("reading the session's evaluations", &s))?;
        let decisions = records
            .decisions(&id)
            .await
            .map_err(|s| session_error("reading the session's decisions", &s))?;
        let mut latest: HashMap<String, reg::Evaluation> = HashMap::new();
        for evaluation in evaluations {
            match latest.get(&evaluation.candidate_id) {
                Some(kept) if kept.id > evaluation.id => {}
                _ => {
                    latest.insert(evaluation.candidate_id.clone(), evaluation);
                }
            }
        }
        // Candidates set aside without an evaluation: refused by the sandbox, or whose
        // evaluation was refused; they are history, not interrupted work.
        let rejected: HashMap<String, String> = decisions
            .into_iter()
            .filter(|d| d.action == "reject" || d.action == "evaluation_failed")
            .map(|d| (d.candidate_id, d.reasoning))
            .collect();
        self.candidates = candidates
            .into_iter()
            .filter_map(|candidate| {
                let model = ModelSpec::try_from(candidate.model.as_ref()?).ok()?;
                let train = TrainSpec::try_from(candidate.train.as_ref()?).ok()?;
                let mut record = CandidateRecord {
                    id: candidate.id.clone(),
                    name: model.name.clone(),
                    model,
                    train,
                    strategy: candidate.strategy,
                    rationale: candidate.rationale,
                    evaluation_id: String::new(),
                    aggregate: None,
                    p_value: 1.0,
                    decision: common::GoalDecision::Undecided,
                    explanation: String::new(),
                    failure: Some(INTERRUPTED.into()),
                    adjusted_p_value: 1.0,
                };
                if let Some(evaluation) = latest.get(&candidate.id) {
                    apply_evaluation(&mut record, evaluation);
                } else if let Some(reason) = rejected.get(&candidate.id) {
                    record.failure = Some(reason.clone());
                }
                Some(record)
            })
            .collect();
        self.refresh_seeds_used().await?;
        Ok(())
    }

    async fn refresh_seeds_used(&mut self) -> Result<(), End> {
        let trials = self
            .clients
            .records
            .ledger
            .trials(&self.handle.id, "")
            .await
            .map_err(|s| session_error("reading the session's trials", &s))?;
        self.seeds_used = trials.len() as u32;
        let seeds_used = self.seeds_used;
        let evaluated = self
            .candidates
            .iter()
            .filter(|c| !c.evaluation_id.is_empty())
            .count() as u32;
        self.handle.update_status(|status| {
            status.seeds_used = seeds_used;
            status.candidates_evaluated = evaluated;
        });
        Ok(())
    }

    async fn prepare_dataset(&mut self) -> Result<(), End> {
        let request = ds::PrepareDatasetRequest {
            name: self.goal.dataset.clone(),
            options: Some(ds::PrepareOptions {
                offline: self.config.offline,
                ..Default::default()
            }),
        };
        let mut client = self.clients.peers.dataset.clone();
        let mut stream = client
            .prepare_dataset(request)
            .await
            .map_err(|s| session_error(&format!("preparing dataset {}", self.goal.dataset), &s))?
            .into_inner();
        let mut manifest = None;
        while let Some(event) = stream.next().await {
            let event = event.map_err(|s| {
                session_error(&format!("preparing dataset {}", self.goal.dataset), &s)
            })?;
            if let Some(ds::prepare_dataset_event::Event::Manifest(m)) = event.event {
                manifest = Some(m);
            }
        }
        let manifest = manifest.ok_or_else(|| End::Failed {
            message: format!(
                "dataset-svc ended the preparation of {} without a manifest",
                self.goal.dataset
            ),
            resumable: true,
        })?;
        let input = manifest
            .input
            .as_ref()
            .ok_or("no input")
            .and_then(|i| InputSpec::try_from(i).map_err(|_| "bad input"))
            .map_err(|problem| End::Failed {
                message: format!(
                    "the manifest of {} has {problem} description",
                    manifest.prepared_id
                ),
                resumable: false,
            })?;
        let sizes: Vec<String> = manifest
            .splits
            .iter()
            .map(|s| format!("{} {}", s.name, s.num_samples))
            .collect();
        let mut classes: Vec<&str> = manifest
            .class_names
            .iter()
            .take(12)
            .map(String::as_str)
            .collect();
        if manifest.class_names.len() > 12 {
            classes.push("…");
        }
        let description = format!(
            "{} input, {} classes ({}), samples: {}",
            serde_json::to_string(&input).unwrap_or_default(),
            manifest.class_names.len(),
            classes.join(", "),
            sizes.join(", ")
        );
        self.dataset = Some(DatasetFacts {
            prepared_id: manifest.prepared_id.clone(),
            input,
            num_classes: manifest.class_names.len() as u32,
            description,
        });
        Ok(())
    }

    fn dataset(&self) -> Result<&DatasetFacts, End> {
        self.dataset.as_ref().ok_or_else(|| End::Failed {
            message: "the dataset is not prepared".into(),
            resumable: true,
        })
    }

    fn brief(&self, facts: &DatasetFacts) -> Brief {
        let target = self.goal.target.clone().unwrap_or_default();
        let mut table = String::new();
        if !self.candidates.is_empty() {
            table.push_str("| # | name | strategy | mean | 95% CI | n | outcome |\n|---|---|---|---|---|---|---|\n");
            // The most recent candidates only: the prompt stays bounded in long sessions.
            let skip = self.candidates.len().saturating_sub(HISTORY_IN_PROMPT);
            for (i, c) in self.candidates.iter().enumerate().skip(skip) {
                let (mean, ci, n) = match &c.aggregate {
                    Some(a) if a.n > 0 => (
                        format!("{:.4}", a.mean),
                        format!("[{:.4}, {:.4}]", a.ci_low, a.ci_high),
                        a.n.to_string(),
                    ),
                    _ => ("–".into(), "–".into(), "0".into()),
                };
                let outcome = c.failure.clone().unwrap_or_else(|| {
                    format!("{:?} (p = {:.3})", c.decision, c.p_value).to_lowercase()
                });
                table.push_str(&format!(
                    "| {} | {} | {} | {mean} | {ci} | {n} | {} |\n",
                    i + 1,
                    c.name,
                    c.strategy,
                    outcome.replace('|', "/").replace('\n', " ")
                ));
                table.push_str(&format!(
                    "|   | spec: {} | train: {} | | | | |\n",
                    serde_json::to_string(&c.model.layers).unwrap_or_default(),
                    serde_json::to_string(&c.train).unwrap_or_default()
                ));
            }
        }
        Brief {
            goal_text: self.goal.text.clone(),
            target: format!(
                "{} {} {} at {:.0}% confidence",
                target.metric,
                if maximize(&self.goal) { ">" } else { "<" },
                target.threshold,
                self.goal.confidence * 100.0
            ),
            dataset: self.goal.dataset.clone(),
            dataset_description: facts.description.clone(),
            history_table: table,
        }
    }

    /// Proposes, records and announces the next candidate; returns its index.
    async fn propose(&mut self, proposer: &mut Proposer) -> Result<usize, End> {
        let facts = self.dataset()?.clone();
        let history: Vec<HistoryEntry> = self
            .candidates
            .iter()
            .map(|c| HistoryEntry {
                model: c.model.clone(),
                train: c.train.clone(),
                score: c.score(),
                failure: c.failure.clone(),
            })
            .collect();
        let budget = ra_spec::Budget {
            max_parameters: self.config.max_parameters,
            max_flops_per_sample: self.config.max_flops_per_sample,
            ..ra_spec::Budget::default()
        };
        let context = Context {
            input: &facts.input,
            num_classes: facts.num_classes,
            family: Some(self.goal.model_family.as_str()).filter(|f| !f.is_empty()),
            history: &history,
            budget: &budget,
            max_epochs: self.config.max_epochs,
            maximize: maximize(&self.goal),
        };
        let brief = self.brief(&facts);
        let (proposal, notes) =
            proposer
                .next(&context, &brief)
                .await
                .map_err(|error| End::Failed {
                    message: format!("the strategy has no proposal: {error}"),
                    resumable: false,
                })?;
        for note in notes {
            let reasoning = note.reasoning.clone();
            self.decide(note.action, reasoning, note.inputs, "").await?;
            if note.action == "fallback" {
                self.handle
                    .emit(pb::research_event::Event::Decision(pb::DecisionMade {
                        decision_id: String::new(),
                        action: note.action.into(),
                        reasoning: note.reasoning,
                    }));
            }
        }
        self.record_candidate(proposal).await
    }

    async fn record_candidate(&mut self, proposal: Proposal) -> Result<usize, End> {
        let mut model = proposal.model;
        // "c04-…": the candidate's place in the session, replacing a parent's place.
        let bare = match model.name.split_once('-') {
            Some((place, rest))
                if place.len() > 1
                    && place.starts_with('c')
                    && place[1..].chars().all(|c| c.is_ascii_digit()) =>
            {
                rest.to_owned()
            }
            _ => model.name.clone(),
        };
        model.name = format!("c{:02}-{bare}", self.candidates.len() + 1);
        let model_proto = common::ModelSpec::from(&model);
        let train_proto = common::TrainSpec::from(&proposal.train);
        let candidate = self
            .clients
            .records
            .create_candidate(
                &self.handle.id,
                model_proto.clone(),
                train_proto,
                proposal.rationale.clone(),
                proposal.strategy,
                String::new(),
            )
            .await
            .map_err(|s| session_error("recording the candidate", &s))?;
        self.decide(
            "propose",
            proposal.rationale.clone(),
            json!({"strategy": proposal.strategy, "history": self.candidates.len()}),
            &candidate.id,
        )
        .await?;
        tracing::info!(research = %self.handle.id, candidate = %candidate.id, name = %model.name, strategy = proposal.strategy, "candidate proposed");
        self.handle
            .emit(pb::research_event::Event::CandidateProposed(
                pb::CandidateProposed {
                    candidate_id: candidate.id.clone(),
                    model: Some(model_proto),
                    train: Some(train_proto),
                    rationale: proposal.rationale.clone(),
                    strategy: strategy_enum(proposal.strategy) as i32,
                },
            ));
        self.candidates.push(CandidateRecord {
            id: candidate.id,
            name: model.name.clone(),
            model,
            train: proposal.train,
            strategy: proposal.strategy.into(),
            rationale: proposal.rationale,
            evaluation_id: String::new(),
            aggregate: None,
            p_value: 1.0,
            decision: common::GoalDecision::Undecided,
            explanation: String::new(),
            failure: Some(INTERRUPTED.into()),
            adjusted_p_value: 1.0,
        });
        Ok(self.candidates.len() - 1)
    }

    fn limits(&self) -> Option<common::ResourceLimits> {
        from_hex(&self.config.limits).ok().flatten()
    }

    /// ValidateJob in the sandbox; a refusal is recorded and the candidate set aside.
    async fn validate(&mut self, index: usize) -> Result<bool, End> {
        let facts = self.dataset()?.clone();
        let candidate = &self.candidates[index];
        let request = sb::ValidateJobRequest {
            job: Some(sb::JobSpec {
                kind: Some(sb::job_spec::Kind::Train(sb::TrainJob {
                    model: Some(common::ModelSpec::from(&candidate.model)),
                    train: Some(common::TrainSpec::from(&candidate.train)),
                    prepared_dataset_id: facts.prepared_id.clone(),
                    seed: 0,
                    save_weights: false,
                    device: String::new(),
                })),
                limits: self.limits(),
                ..Default::default()
            }),
        };
        let peers = &self.clients.peers;
        let report = peers
            .retry
            .run(&peers.sandbox_name, || {
                let mut client = peers.sandbox.clone();
                let request = request.clone();
                async move { client.validate_job(request).await }
            })
            .await
            .map_err(|s| session_error("validating the candidate", &s))?
            .into_inner();
        if report.ok {
            return Ok(true);
        }
        let problems: Vec<String> = report
            .violations
            .iter()
            .map(|v| match v.layer.as_str() {
                "" => format!("{}: {}", v.rule, v.message),
                layer => format!("{} at layer {layer}: {}", v.rule, v.message),
            })
            .collect();
        let reason = format!("rejected by the sandbox: {}", problems.join("; "));
        let candidate_id = candidate.id.clone();
        self.candidates[index].failure = Some(reason.clone());
        self.decide(
            "reject",
            reason.clone(),
            json!({"violations": problems}),
            &candidate_id,
        )
        .await?;
        self.handle
            .emit(pb::research_event::Event::CandidateRejected(
                pb::CandidateRejected {
                    reason,
                    strategy: strategy_enum(&self.candidates[index].strategy) as i32,
                },
            ));
        Ok(false)
    }

    /// Seeds of an interrupted candidate: those that finished or are still running (reused
    /// and adopted by the evaluator), topped up with seeds it never used.
    async fn resumed_seeds(&self, candidate_id: &str) -> Result<Vec<u64>, End> {
        let trials = self
            .clients
            .records
            .ledger
            .trials("", candidate_id)
            .await
            .map_err(|s| session_error("reading the candidate's trials", &s))?;
        let usable = |state: i32| {
            [
                common::TrialState::Succeeded,
                common::TrialState::Pending,
                common::TrialState::Running,
            ]
            .iter()
            .any(|s| *s as i32 == state)
        };
        let mut seeds: Vec<u64> = trials
            .iter()
            .filter(|t| usable(t.state))
            .map(|t| t.seed)
            .collect();
        let taken: Vec<u64> = trials.iter().map(|t| t.seed).collect();
        let mut next = 0;
        while seeds.len() < self.goal.num_seeds as usize {
            if !taken.contains(&next) {
                seeds.push(next);
            }
            next += 1;
        }
        seeds.sort_unstable();
        Ok(seeds)
    }

    /// Waits (up to 20 s) until no trial of the candidate is pending or running: the
    /// evaluator records the cancelled ones after the caller went away.
    async fn settle(&self, candidate_id: &str) {
        let ledger = &self.clients.records.ledger;
        for _ in 0..80 {
            let open = match ledger.trials("", candidate_id).await {
                Ok(trials) => trials.iter().any(|t| {
                    matches!(
                        t.state(),
                        common::TrialState::Pending | common::TrialState::Running
                    )
                }),
                Err(_) => false,
            };
            if !open {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tracing::warn!(candidate = %candidate_id, "trials still open 20 s after the evaluation was stopped");
    }

    /// Evaluates candidate `index`; `Some(end)` when the session must end meanwhile (stop,
    /// wall time).
    async fn evaluate(&mut self, index: usize, resumed: bool) -> Result<Option<End>, End> {
        let facts = self.dataset()?.clone();
        let candidate_id = self.candidates[index].id.clone();
        let budget = self.budget();
        let remaining = budget.max_total_seeds.saturating_sub(self.seeds_used);
        let wall_left = (budget.max_wall_seconds as f64 - self.elapsed()).max(0.0);
        let deadline = tokio::time::sleep(Duration::from_secs_f64(wall_left));
        tokio::pin!(deadline);
        let stop = self.handle.stop.clone();
        enum Step {
            Stop,
            Deadline,
            Event(Box<Option<Result<ev::EvaluateEvent, Status>>>),
        }
        let mut busy_tries = 0;
        let result = 'evaluation: loop {
            let seeds = if resumed {
                ev::evaluate_request::Seeds::SeedList(ev::SeedList {
                    seeds: self.resumed_seeds(&candidate_id).await?,
                })
            } else {
                ev::evaluate_request::Seeds::Adaptive(ev::AdaptiveSeeding {
                    initial_seeds: self.goal.num_seeds,
                    max_seeds: self.goal.max_seeds.min(remaining).max(self.goal.num_seeds),
                })
            };
            let request = ev::EvaluateRequest {
                dataset: Some(ev::evaluate_request::Dataset::PreparedDatasetId(
                    facts.prepared_id.clone(),
                )),
                seeds: Some(seeds),
                target: self.goal.target.clone(),
                confidence: self.goal.confidence,
                experiment_id: self.handle.id.clone(),
                candidate_id: candidate_id.clone(),
                limits: self.limits(),
                failure_policy: ev::FailurePolicy::DecideOnRemaining as i32,
                early_stopping: from_hex(&self.config.early_stopping).ok().flatten(),
                ..Default::default()
            };
            let mut client = self.clients.evaluator.clone();
            let mut stream = client
                .evaluate(request)
                .await
                .map_err(|s| session_error("starting the evaluation", &s))?
                .into_inner();
            let mut received = false;
            loop {
                let step = tokio::select! {
                    () = stop.cancelled() => Step::Stop,
                    () = &mut deadline => Step::Deadline,
                    event = stream.next() => Step::Event(Box::new(event)),
                };
                match step {
                    // Dropping the stream makes the evaluator cancel the candidate's jobs;
                    // the session ends once they are recorded as ended.
                    Step::Stop => {
                        drop(stream);
                        self.settle(&candidate_id).await;
                        return Ok(Some(self.paused()));
                    }
                    Step::Deadline => {
                        drop(stream);
                        self.settle(&candidate_id).await;
                        return Ok(Some(End::Exhausted(format!(
                            "wall-time budget spent ({} s) while evaluating {}",
                            budget.max_wall_seconds, self.candidates[index].name
                        ))));
                    }
                    Step::Event(event) => match *event {
                        None => {
                            break 'evaluation Err(Status::unavailable(
                                "the evaluation stream ended without a result",
                            ));
                        }
                        // A stopped evaluation of this candidate is still winding down in the
                        // evaluator (a stop and a resume in quick succession): wait for it.
                        Some(Err(status))
                            if !received
                                && busy_tries < 120
                                && status.code() == Code::FailedPrecondition
                                && status.message().contains("already being evaluated") =>
                        {
                            busy_tries += 1;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            continue 'evaluation;
                        }
                        Some(Err(status)) => break 'evaluation Err(status),
                        Some(Ok(event)) => {
                            received = true;
                            if let Some(ev::evaluate_event::Event::Result(result)) = &event.event {
                                let result = result.clone();
                                self.handle
                                    .emit(pb::research_event::Event::Evaluation(event));
                                break 'evaluation Ok(result);
                            }
                            if let Some(ev::evaluate_event::Event::SeedStarted(started)) =
                                &event.event
                            {
                                tracing::info!(research = %self.handle.id, candidate = %candidate_id, seed = started.seed, trial = %started.trial_id, "seed started");
                                self.handle.update_status(|s| s.seeds_used += 1);
                            }
                            self.handle
                                .emit(pb::research_event::Event::Evaluation(event));
                        }
                    },
                }
            }
        };
        match result {
            Ok(result) => {
                tracing::info!(research = %self.handle.id, candidate = %candidate_id, decision = ?result.decision(), p = result.p_value, "candidate evaluated");
                let record = &mut self.candidates[index];
                record.evaluation_id = result.evaluation_id.clone();
                record.aggregate = result.aggregate.clone();
                record.p_value = result.p_value;
                record.decision = result.decision();
                record.explanation = result.explanation.clone();
                record.failure = None;
            }
            // The evaluation itself failed (its seeds failed): recorded by the evaluator; the
            // candidate is history with its failure.
            Err(status) if matches!(status.code(), Code::Aborted | Code::InvalidArgument) => {
                self.candidates[index].failure = Some(status.message().to_owned());
                let name = self.candidates[index].name.clone();
                self.decide(
                    "evaluation_failed",
                    format!("{name} failed: {}", status.message()),
                    json!({"code": format!("{:?}", status.code())}),
                    &candidate_id,
                )
                .await?;
            }
            Err(status) => return Err(session_error("evaluating the candidate", &status)),
        }
        self.refresh_seeds_used().await?;
        Ok(None)
    }

    /// AssessExperiment (Holm–Bonferroni across the session's candidates), applied to the
    /// candidates' adjusted p-values; nothing is recorded.
    async fn fetch_assessment(&mut self) -> Result<ev::ExperimentAssessment, Status> {
        let request = ev::AssessExperimentRequest {
            experiment_id: self.handle.id.clone(),
            confidence: self.goal.confidence,
        };
        let retry = self.clients.peers.retry;
        let assessment = retry
            .run(&self.clients.evaluator_name, || {
                let mut client = self.clients.evaluator.clone();
                let request = request.clone();
                async move { client.assess_experiment(request).await }
            })
            .await?
            .into_inner();
        for assessed in &assessment.candidates {
            if let Some(record) = self
                .candidates
                .iter_mut()
                .find(|c| c.id == assessed.candidate_id)
            {
                record.adjusted_p_value = assessed.adjusted_p_value;
            }
        }
        self.any_achieved = assessment.any_achieved;
        self.best_candidate_id = assessment.best_candidate_id.clone();
        Ok(assessment)
    }

    /// The session's records and assessment for a status, read-only.
    pub async fn load_for_status(&mut self) -> Result<(), Status> {
        self.load_history().await.map_err(|end| match end {
            End::Failed { message, .. } => Status::unavailable(message),
            other => Status::internal(format!("{other:?}")),
        })?;
        if !self.candidates.is_empty() {
            self.fetch_assessment().await?;
        }
        Ok(())
    }

    /// Decides after an evaluation: stop on success, else continue; recorded and announced.
    async fn assess(&mut self) -> Result<(), End> {
        let assessment = self
            .fetch_assessment()
            .await
            .map_err(|s| session_error("assessing the session's candidates", &s))?;
        let leaderboard = self.leaderboard();
        self.handle.update_status(|s| s.leaderboard = leaderboard);
        let (action, reasoning) = if assessment.any_achieved {
            ("stop_success", assessment.explanation.clone())
        } else {
            (
                "continue",
                format!(
                    "{} {}",
                    assessment.explanation,
                    self.budget_spent()
                        .map_or("Budget left: propose another candidate.".to_owned(), |b| {
                            format!("But the {b}.")
                        })
                ),
            )
        };
        let decision = self
            .decide(
                action,
                reasoning.clone(),
                json!({
                    "candidates": assessment.candidates.len(),
                    "best_candidate_id": assessment.best_candidate_id,
                    "any_achieved": assessment.any_achieved,
                }),
                &assessment.best_candidate_id,
            )
            .await?;
        self.handle
            .emit(pb::research_event::Event::Decision(pb::DecisionMade {
                decision_id: decision.id,
                action: action.into(),
                reasoning,
            }));
        Ok(())
    }

    /// The session's wall time so far, kept in the experiment's labels for a resume.
    async fn record_progress(&self) -> Result<(), End> {
        self.clients
            .records
            .update_experiment(
                self.id(),
                None,
                None,
                HashMap::from([(
                    "elapsed_seconds".to_owned(),
                    format!("{:.1}", self.elapsed()),
                )]),
            )
            .await
            .map_err(|s| session_error("recording progress", &s))?;
        Ok(())
    }

    async fn decide(
        &self,
        action: &str,
        reasoning: String,
        inputs: serde_json::Value,
        candidate_id: &str,
    ) -> Result<reg::Decision, End> {
        self.clients
            .records
            .decide(self.id(), action, reasoning, inputs, candidate_id)
            .await
            .map_err(|s| session_error(&format!("recording the decision {action:?}"), &s))
    }

    /// Candidates with a result, best first in the goal's direction; failures last.
    pub fn leaderboard(&self) -> Vec<pb::LeaderboardEntry> {
        let mut ranked: Vec<&CandidateRecord> = self.candidates.iter().collect();
        let sign = if maximize(&self.goal) { -1.0 } else { 1.0 };
        ranked.sort_by(|a, b| {
            let key = |c: &CandidateRecord| c.score().map_or(f64::INFINITY, |s| sign * s);
            key(a).total_cmp(&key(b))
        });
        ranked
            .into_iter()
            .enumerate()
            .map(|(rank, c)| pb::LeaderboardEntry {
                rank: rank as u32 + 1,
                candidate_id: c.id.clone(),
                name: c.name.clone(),
                aggregate: c.aggregate.clone(),
                decision: c.decision as i32,
                p_value: c.p_value,
                adjusted_p_value: c.adjusted_p_value,
            })
            .collect()
    }

    /// The status as it stands, in `state`, with `message`.
    pub fn status(&self, state: pb::ResearchState, message: String) -> pb::ResearchStatus {
        let mut status = self.handle.status();
        status.state = state as i32;
        status.goal = Some(self.goal.clone());
        status.candidates_evaluated = self
            .candidates
            .iter()
            .filter(|c| !c.evaluation_id.is_empty())
            .count() as u32;
        status.seeds_used = self.seeds_used;
        status.elapsed_seconds = self.elapsed();
        status.leaderboard = self.leaderboard();
        status.message = message;
        status
    }

    async fn finish(mut self, end: End) {
        let (state, registry_status, message) = match &end {
            End::Succeeded(m) => (
                pb::ResearchState::Succeeded,
                reg::ExperimentStatus::Succeeded,
                m.clone(),
            ),
            End::Exhausted(m) => (
                pb::ResearchState::Exhausted,
                reg::ExperimentStatus::Exhausted,
                format!("goal not achieved: {m}"),
            ),
            End::Paused(m) => (
                pb::ResearchState::Paused,
                reg::ExperimentStatus::Paused,
                format!(
                    "{m}; resume with ResumeResearch (research-agent resume {})",
                    self.id()
                ),
            ),
            End::Failed { message, resumable } => (
                pb::ResearchState::Failed,
                if *resumable {
                    reg::ExperimentStatus::Paused
                } else {
                    reg::ExperimentStatus::Failed
                },
                if *resumable {
                    format!(
                        "failed: {message}; resume with ResumeResearch (research-agent resume {}) once the cause is fixed",
                        self.id()
                    )
                } else {
                    format!("failed: {message}")
                },
            ),
        };
        tracing::info!(research = %self.id(), ?state, %message, "research session ended");
        // The decision log gets the end, then the report is written from the registry.
        let action = match &end {
            End::Succeeded(_) => "stop_success",
            End::Exhausted(_) => "stop_budget",
            End::Paused(_) => "stop_paused",
            End::Failed { .. } => "stop_failed",
        };
        if !matches!(end, End::Succeeded(_))
            && let Err(error) = self
                .decide(
                    action,
                    message.clone(),
                    json!({"elapsed_seconds": self.elapsed()}),
                    "",
                )
                .await
        {
            tracing::warn!(?error, "could not record the session's end");
        }
        let mut status = self.status(state, message.clone());
        match report::write(&self, &status).await {
            Ok(path) => {
                status.report_path = path.display().to_string();
            }
            Err(error) => {
                tracing::warn!(%error, "could not write the report");
                status.message = format!("{message} (report not written: {error})");
            }
        }
        let labels = HashMap::from([
            (
                "elapsed_seconds".to_owned(),
                format!("{:.1}", self.elapsed()),
            ),
            ("report_path".to_owned(), status.report_path.clone()),
        ]);
        if let Err(error) = self
            .clients
            .records
            .update_experiment(
                self.id(),
                Some(registry_status),
                Some(crate::records::clip_bytes(status.message.clone(), 60_000)),
                labels,
            )
            .await
        {
            tracing::warn!(error = %error.message(), "could not record the session's status");
            status.message = format!(
                "{} (the registry could not record the end: {})",
                status.message,
                error.message()
            );
        }
        self.dataset = None;
        self.handle
            .emit(pb::research_event::Event::Finished(status));
    }
}

/// Candidates shown to the LLM, the most recent ones.
const HISTORY_IN_PROMPT: usize = 40;

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
    match name {
        "random" => pb::Strategy::Random,
        "evolution" => pb::Strategy::Evolution,
        "llm" => pb::Strategy::Llm,
        "hybrid" => pb::Strategy::Hybrid,
        _ => pb::Strategy::Unspecified,
    }
}
