//! The planner behind the RPCs: goals resolved (parsed text, explicit overrides, configured
//! defaults, all checked before anything is written), sessions started and resumed as
//! background tasks, their status and events served, stops requested, and the stateless
//! ProposeCandidates for an external loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::PlannerError;
use ra_client::goal::Direction;
use ra_proto::common::v1 as common;
use ra_proto::dataset::v1 as ds;
use ra_proto::planner::v1 as pb;
use ra_proto::registry::v1 as reg;
use ra_spec::{InputSpec, ModelSpec, TrainSpec};
use tokio::task::JoinSet;

use crate::config::{LlmConfig, PlannerSettings};
use crate::peers::Clients;
use crate::research::{self, Research};
use crate::session::SessionHandle;
use crate::session_config::SessionConfig;
use crate::strategy::{Context, Evolution, HistoryEntry, RandomSearch, Strategy};

/// Most seeds a candidate may grow to.
const MAX_SEEDS_PER_CANDIDATE: u32 = 100;

#[derive(Clone)]
pub struct Planner {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PlannerSettings,
    clients: Clients,
    sessions: Mutex<HashMap<String, Arc<SessionHandle>>>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

fn invalid(message: impl Into<String>) -> PlannerError {
    PlannerError::Invalid(message.into())
}

impl Planner {
    /// The planner, dialling its peers with `credentials` (`[server.client]`).
    pub fn new(
        settings: PlannerSettings,
        credentials: &ra_client::Credentials,
    ) -> Result<Self, String> {
        settings.validate()?;
        let clients = Clients::connect_lazy(&settings, credentials).map_err(|e| e.to_string())?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                clients,
                sessions: Mutex::new(HashMap::new()),
                tasks: tokio::sync::Mutex::new(JoinSet::new()),
            }),
        })
    }

    pub fn settings(&self) -> &PlannerSettings {
        &self.inner.settings
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SessionHandle>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The dataset catalog's names, from dataset-svc.
    async fn catalog(&self) -> Result<Vec<String>, PlannerError> {
        let peers = &self.inner.clients;
        let response = peers
            .dataset
            .run(|mut client| async move {
                client
                    .list_datasets(ds::ListDatasetsRequest::default())
                    .await
            })
            .await?;
        Ok(response
            .into_inner()
            .datasets
            .into_iter()
            .map(|d| d.name)
            .collect())
    }

    /// A researcher's own dataset, described by dataset-svc (which reads it in full): its
    /// refusal (missing file, no label column, one class, ragged rows, …) is the goal's.
    async fn check_local_dataset(&self, name: &str) -> Result<(), PlannerError> {
        let request = ds::DescribeDatasetRequest {
            name: name.to_owned(),
        };
        self.inner
            .clients
            .dataset
            .run(|mut client| {
                let request = request.clone();
                async move { client.describe_dataset(request).await }
            })
            .await?;
        Ok(())
    }

    /// ParseGoal: the text parsed against the catalog, with the configured defaults filled in.
    pub async fn parse_goal(&self, text: &str) -> Result<common::ResearchGoal, PlannerError> {
        self.resolve_goal(text, None).await
    }

    async fn resolve_goal(
        &self,
        text: &str,
        overrides: Option<&common::ResearchGoal>,
    ) -> Result<common::ResearchGoal, PlannerError> {
        let catalog = self.catalog().await?;
        let names: Vec<&str> = catalog.iter().map(String::as_str).collect();
        let from_flags = overrides.is_some_and(|o| {
            !o.dataset.is_empty() && o.target.as_ref().is_some_and(|t| !t.metric.is_empty())
        });
        let mut goal = if text.trim().is_empty() && from_flags {
            common::ResearchGoal::default()
        } else {
            let named = overrides
                .map(|o| o.dataset.as_str())
                .filter(|d| !d.is_empty());
            crate::goal::parse_goal_on(text, &names, named)
                .map_err(|error| invalid(error.to_string()))?
                .to_proto()
        };
        if let Some(overrides) = overrides {
            apply_overrides(&mut goal, overrides);
        }
        if ra_client::local_data::is_local(&goal.dataset) {
            self.check_local_dataset(&goal.dataset).await?;
        } else if !catalog.contains(&goal.dataset) {
            return Err(PlannerError::NotFound(format!(
                "dataset {:?} is not in the catalog; known datasets: {}",
                goal.dataset,
                catalog.join(", ")
            )));
        }
        fill_defaults(&mut goal, &self.inner.settings);
        check_goal(&mut goal)?;
        Ok(goal)
    }

    fn session_config(
        &self,
        request: &pb::StartResearchRequest,
    ) -> Result<SessionConfig, PlannerError> {
        let defaults = &self.inner.settings.defaults;
        let strategy = strategy_of(request.strategy, &defaults.strategy)?.to_owned();
        let llm = llm_config(&self.inner.settings.llm, request.llm.as_ref())?;
        if let Some(stopping) = &request.early_stopping
            && stopping.enabled
            && !(0.0..=100.0).contains(&stopping.percentile)
        {
            return Err(invalid(format!(
                "early_stopping.percentile = {} must be in [0, 100]",
                stopping.percentile
            )));
        }
        ra_spec::device::check("device", &request.device, true).map_err(invalid)?;
        let max_epochs = match request.max_epochs {
            0 => defaults.max_epochs,
            n if n > ra_spec::train::MAX_EPOCHS => {
                return Err(invalid(format!(
                    "max_epochs = {n} is more than {}",
                    ra_spec::train::MAX_EPOCHS
                )));
            }
            n => n,
        };
        Ok(SessionConfig {
            strategy,
            seed: request.seed,
            llm,
            max_epochs,
            max_epochs_explicit: request.max_epochs != 0,
            max_parameters: defaults.max_parameters,
            max_flops_per_sample: defaults.max_flops_per_sample,
            offline: self.inner.settings.offline,
            limits: request.limits,
            early_stopping: request.early_stopping,
            planner_version: env!("CARGO_PKG_VERSION").into(),
            device: request.device.clone(),
        })
    }

    /// StartResearch: checks everything, records the experiment, starts the loop.
    pub async fn start(
        &self,
        request: pb::StartResearchRequest,
    ) -> Result<pb::ResearchStatus, PlannerError> {
        if request.goal_text.len() > 4096 {
            return Err(invalid(format!(
                "goal_text has {} bytes; describe the goal in at most 4096",
                request.goal_text.len()
            )));
        }
        let config = self.session_config(&request)?;
        let goal = self
            .resolve_goal(&request.goal_text, request.overrides.as_ref())
            .await?;
        self.check_sandbox_can_train().await?;
        let id = ra_client::ids::EntityKind::Experiment.new_id();
        let name: String = format!(
            "research: {}",
            if goal.text.is_empty() {
                &goal.dataset
            } else {
                &goal.text
            }
        )
        .chars()
        .take(256)
        .collect();
        let config_json = config.to_json().map_err(PlannerError::Internal)?;
        self.inner
            .clients
            .records
            .create_experiment(reg::CreateExperimentRequest {
                id: id.clone(),
                name,
                goal: Some(goal.clone()),
                config_json,
                labels: HashMap::from([
                    ("created_by".to_owned(), "planner-svc".to_owned()),
                    ("strategy".to_owned(), config.strategy.clone()),
                ]),
            })
            .await?;
        Ok(self.launch(id, goal, config, 0.0).await)
    }

    /// Refuses a session before anything is written when the sandbox cannot train at all
    /// (no usable backend, no trainer): FAILED_PRECONDITION with what is missing.
    async fn check_sandbox_can_train(&self) -> Result<(), PlannerError> {
        let mut sandbox = self.inner.clients.sandbox.client();
        let capabilities = sandbox
            .get_capabilities(ra_proto::sandbox::v1::GetCapabilitiesRequest {})
            .await
            .map_err(|status| {
                PlannerError::Unavailable(format!(
                    "cannot ask {} what it can run ({:?}): {}",
                    self.inner.clients.sandbox.name(),
                    status.code(),
                    status.message()
                ))
            })?
            .into_inner();
        if capabilities.train_jobs_blocked_by.is_empty() {
            Ok(())
        } else {
            Err(PlannerError::SandboxCannotTrain(format!(
                "{} cannot train candidates: {}",
                self.inner.clients.sandbox.name(),
                capabilities.train_jobs_blocked_by
            )))
        }
    }

    async fn launch(
        &self,
        id: String,
        goal: common::ResearchGoal,
        config: SessionConfig,
        elapsed_before: f64,
    ) -> pb::ResearchStatus {
        let status = pb::ResearchStatus {
            research_id: id.clone(),
            goal: Some(goal.clone()),
            state: pb::ResearchState::Running as i32,
            strategy: research::strategy_enum(&config.strategy) as i32,
            elapsed_seconds: elapsed_before,
            message: "started".into(),
            started_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            ..Default::default()
        };
        let handle = SessionHandle::new(status.clone());
        self.sessions().insert(id, handle.clone());
        let mut research = Research::new(
            self.inner.clients.clone(),
            handle,
            goal,
            config,
            self.inner.settings.reports_dir.clone(),
        );
        research.elapsed_before = elapsed_before;
        research.started = Instant::now();
        self.inner.tasks.lock().await.spawn(research.run());
        status
    }

    /// ResumeResearch: continues a paused or crashed session from the registry.
    pub async fn resume(&self, id: &str) -> Result<pb::ResearchStatus, PlannerError> {
        check_id(id)?;
        if let Some(handle) = self.sessions().get(id)
            && !handle.is_finished()
        {
            return Err(PlannerError::WrongState(format!(
                "research {id} is running in this planner; stop it first or watch it"
            )));
        }
        let experiment = self.inner.clients.records.registry.experiment(id).await?;
        let state = experiment.status();
        if !matches!(
            state,
            reg::ExperimentStatus::Paused | reg::ExperimentStatus::Running
        ) {
            return Err(PlannerError::WrongState(format!(
                "research {id} ended as {state:?} ({}); only paused or interrupted sessions can be resumed",
                experiment.summary
            )));
        }
        self.check_sandbox_can_train().await?;
        let config = SessionConfig::from_json(&experiment.config_json)
            .map_err(|error| PlannerError::WrongState(format!("experiment {id}: {error}")))?
            .ok_or_else(|| {
                PlannerError::WrongState(format!(
                    "experiment {id} was not started by planner-svc (it has no session configuration)"
                ))
            })?;
        let mut goal = experiment
            .goal
            .clone()
            .ok_or_else(|| PlannerError::WrongState(format!("experiment {id} has no goal")))?;
        // A budget changed while the session ran (UpdateBudget) outlives the run.
        if let Some(budget) = experiment
            .labels
            .get(ra_client::goal::BUDGET_LABEL)
            .and_then(|label| ra_client::goal::budget_from_label(label))
        {
            goal.budget = Some(budget);
        }
        let elapsed_before = experiment
            .labels
            .get("elapsed_seconds")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        self.inner
            .clients
            .records
            .update_experiment(
                id,
                Some(reg::ExperimentStatus::Running),
                Some("resumed".into()),
                HashMap::new(),
            )
            .await?;
        self.inner
            .clients
            .records
            .decide(
                id,
                "resume",
                format!("resumed after {elapsed_before:.1} s of earlier work"),
                serde_json::json!({"previous_status": format!("{state:?}")}),
                "",
            )
            .await?;
        Ok(self
            .launch(id.to_owned(), goal, config, elapsed_before)
            .await)
    }

    /// GetResearch: the live status, or one rebuilt from the registry for a session this
    /// planner is not running.
    pub async fn get(&self, id: &str) -> Result<pb::ResearchStatus, PlannerError> {
        check_id(id)?;
        if let Some(handle) = self.sessions().get(id).cloned() {
            return Ok(handle.status());
        }
        self.status_from_registry(id).await
    }

    async fn status_from_registry(&self, id: &str) -> Result<pb::ResearchStatus, PlannerError> {
        let records = &self.inner.clients.records;
        let experiment = records.registry.experiment(id).await?;
        let config = SessionConfig::from_json(&experiment.config_json)
            .map_err(|error| PlannerError::WrongState(format!("experiment {id}: {error}")))?;
        let handle = SessionHandle::new(pb::ResearchStatus {
            research_id: id.to_owned(),
            ..Default::default()
        });
        let goal = experiment.goal.clone().unwrap_or_default();
        let mut research = Research::new(
            self.inner.clients.clone(),
            handle,
            goal,
            config.clone().unwrap_or_default(),
            self.inner.settings.reports_dir.clone(),
        );
        research.load_for_status().await?;
        research.elapsed_before = experiment
            .labels
            .get("elapsed_seconds")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        research.started = Instant::now();
        let state = match experiment.status() {
            reg::ExperimentStatus::Running => pb::ResearchState::Running,
            reg::ExperimentStatus::Paused => pb::ResearchState::Paused,
            reg::ExperimentStatus::Succeeded => pb::ResearchState::Succeeded,
            reg::ExperimentStatus::Exhausted => pb::ResearchState::Exhausted,
            reg::ExperimentStatus::Completed => pb::ResearchState::Completed,
            reg::ExperimentStatus::Failed => pb::ResearchState::Failed,
            reg::ExperimentStatus::Cancelled => pb::ResearchState::Cancelled,
            reg::ExperimentStatus::Unspecified => pb::ResearchState::Unspecified,
        };
        let message = match state {
            pb::ResearchState::Running => format!(
                "{} (recorded as running, but no planner is running it: interrupted; resume with research-agent resume {id})",
                experiment.summary
            ),
            _ => experiment.summary.clone(),
        };
        let mut status = research.status(state, message);
        status.elapsed_seconds = research.elapsed_before;
        status.strategy =
            research::strategy_enum(config.as_ref().map_or("", |c| c.strategy.as_str())) as i32;
        status.report_path = experiment
            .labels
            .get("report_path")
            .cloned()
            .unwrap_or_default();
        status.started_at = experiment.created_at;
        Ok(status)
    }

    /// StopResearch: the session cancels its running trials and ends PAUSED.
    pub async fn stop(&self, id: &str, reason: &str) -> Result<pb::ResearchStatus, PlannerError> {
        check_id(id)?;
        let running = self.sessions().get(id).cloned();
        let Some(handle) = running else {
            let status = self.status_from_registry(id).await?;
            return Err(PlannerError::WrongState(format!(
                "research {id} is not running in this planner (state {:?}: {})",
                status.state(),
                status.message
            )));
        };
        handle.request_stop(if reason.is_empty() {
            "stopped on request"
        } else {
            reason
        });
        let mut written = handle.subscribe();
        while !handle.is_finished() {
            if written.changed().await.is_err() {
                break;
            }
        }
        Ok(handle.status())
    }

    /// The running session `id` of this planner, or why a request for it cannot be served.
    async fn running(&self, id: &str, what: &str) -> Result<Arc<SessionHandle>, PlannerError> {
        check_id(id)?;
        let handle = self.sessions().get(id).cloned();
        match handle {
            Some(handle) if !handle.is_finished() && !handle.stop.is_cancelled() => Ok(handle),
            _ => {
                // An unknown id is NOT_FOUND (from the registry); a known one is not running here.
                let experiment = self.inner.clients.records.registry.experiment(id).await?;
                Err(PlannerError::WrongState(format!(
                    "research {id} is not running in this planner (its record says {}{}); {what} only while it runs (resume it first)",
                    experiment
                        .status()
                        .as_str_name()
                        .trim_start_matches("EXPERIMENT_STATUS_"),
                    if experiment.summary.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", experiment.summary)
                    }
                )))
            }
        }
    }

    /// InjectCandidate: a person's candidate queued for the session's loop, checked as far
    /// as it can be without the dataset (the loop checks the input against it, then
    /// ValidateJob as for any proposal).
    pub async fn inject(
        &self,
        request: pb::InjectCandidateRequest,
        caller: Option<&str>,
    ) -> Result<pb::InjectCandidateResponse, PlannerError> {
        let model = request
            .model
            .as_ref()
            .ok_or_else(|| invalid("model is missing: give the candidate's ModelSpec"))?;
        let train = request
            .train
            .as_ref()
            .ok_or_else(|| invalid("train is missing: give the candidate's TrainSpec"))?;
        let model = ModelSpec::try_from(model).map_err(|e| invalid(format!("model: {e}")))?;
        let train = TrainSpec::try_from(train).map_err(|e| invalid(format!("train: {e}")))?;
        train
            .validate()
            .map_err(|e| invalid(format!("train: {e}")))?;
        ra_spec::validate_model(&model, &ra_spec::Budget::unlimited())
            .map_err(|e| invalid(format!("model: {e}")))?;
        if request.rationale.len() > 64 * 1024 {
            return Err(invalid("rationale is over 64 KiB"));
        }
        let proposed_by = who(&request.proposed_by, caller, "proposed_by")?;
        let handle = self
            .running(&request.research_id, "candidates are injected")
            .await?;
        let position = handle
            .inject(crate::session::Injection {
                model,
                train,
                rationale: request.rationale,
                proposed_by,
            })
            .ok_or_else(|| {
                PlannerError::WrongState(format!(
                    "research {} already has {} injected candidates waiting; inject more once they are taken",
                    request.research_id,
                    crate::session::MAX_QUEUED_INJECTIONS
                ))
            })?;
        Ok(pb::InjectCandidateResponse {
            queue_position: u32::try_from(position).unwrap_or(u32::MAX),
            status: Some(handle.status()),
        })
    }

    /// UpdateBudget: new limits for a running session, applied by its loop before its next
    /// candidate (zero fields keep the current value).
    pub async fn update_budget(
        &self,
        request: pb::UpdateBudgetRequest,
        caller: Option<&str>,
    ) -> Result<pb::ResearchStatus, PlannerError> {
        let budget = request
            .budget
            .ok_or_else(|| invalid("budget is missing: give the limits to change"))?;
        if budget == common::Budget::default() {
            return Err(invalid(
                "budget changes nothing: set max_candidates, max_total_seeds or max_wall_seconds",
            ));
        }
        check_budget(&budget)?;
        let requested_by = who(&request.requested_by, caller, "requested_by")?;
        let handle = self.running(&request.research_id, "budgets change").await?;
        handle.change_budget(crate::session::BudgetChange {
            budget,
            requested_by,
        });
        Ok(handle.status())
    }

    /// The live session for WatchResearch, or a finished one rebuilt from the registry.
    pub async fn watch(&self, id: &str) -> Result<Arc<SessionHandle>, PlannerError> {
        check_id(id)?;
        if let Some(handle) = self.sessions().get(id).cloned() {
            return Ok(handle);
        }
        let status = self.status_from_registry(id).await?;
        let handle = SessionHandle::new(status.clone());
        handle.emit(pb::research_event::Event::Finished(status));
        Ok(handle)
    }

    /// Stops every running session (they end PAUSED and can be resumed) and waits for them.
    pub async fn shutdown(&self) {
        let handles: Vec<Arc<SessionHandle>> = self.sessions().values().cloned().collect();
        for handle in handles {
            handle.request_stop("the planner is shutting down");
        }
        let mut tasks = self.inner.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }

    /// ProposeCandidates: history in, proposals out.
    pub async fn propose(
        &self,
        request: pb::ProposeCandidatesRequest,
    ) -> Result<pb::ProposeCandidatesResponse, PlannerError> {
        if !(1..=64).contains(&request.count) {
            return Err(invalid(format!(
                "count = {} must be in 1..=64",
                request.count
            )));
        }
        let input = request
            .input
            .as_ref()
            .ok_or_else(|| invalid("input is required: the prepared dataset's InputSpec"))
            .and_then(|i| {
                InputSpec::try_from(i).map_err(|error| invalid(format!("input: {error}")))
            })?;
        if request.num_classes < 2 {
            return Err(invalid(format!(
                "num_classes = {} must be at least 2",
                request.num_classes
            )));
        }
        let goal = request.goal.clone().unwrap_or_default();
        let maximize = match goal.target.as_ref() {
            None => true,
            Some(target) if target.metric.is_empty() => true,
            Some(target) => {
                ra_client::goal::check(Some(target))
                    .map_err(|e| invalid(e.to_string()))?
                    .direction
                    == Direction::Maximize
            }
        };
        let mut history = Vec::with_capacity(request.history.len());
        for (index, entry) in request.history.iter().enumerate() {
            let model = entry
                .model
                .as_ref()
                .ok_or("model is missing")
                .map_err(|e| invalid(format!("history[{index}]: {e}")))
                .and_then(|m| {
                    ModelSpec::try_from(m)
                        .map_err(|e| invalid(format!("history[{index}].model: {e}")))
                })?;
            let train = entry
                .train
                .as_ref()
                .ok_or("train is missing")
                .map_err(|e| invalid(format!("history[{index}]: {e}")))
                .and_then(|t| {
                    TrainSpec::try_from(t)
                        .map_err(|e| invalid(format!("history[{index}].train: {e}")))
                })?;
            let score = entry
                .aggregate
                .as_ref()
                .filter(|a| a.n > 0 && entry.failure.is_empty())
                .map(|a| a.mean);
            if score.is_some_and(|s| !s.is_finite()) {
                return Err(invalid(format!(
                    "history[{index}].aggregate.mean is not finite"
                )));
            }
            history.push(HistoryEntry {
                model,
                train,
                score,
                failure: Some(entry.failure.clone()).filter(|f| !f.is_empty()),
                improving: false,
            });
        }
        let defaults = &self.inner.settings.defaults;
        let budget = ra_spec::Budget {
            max_parameters: defaults.max_parameters,
            max_flops_per_sample: defaults.max_flops_per_sample,
            ..ra_spec::Budget::default()
        };
        let context = Context {
            input: &input,
            num_classes: request.num_classes,
            family: Some(goal.model_family.as_str()).filter(|f| !f.is_empty()),
            history: &history,
            budget: &budget,
            max_epochs: defaults.max_epochs,
            maximize,
            train_samples: 0,
        };
        let strategy = strategy_of(request.strategy, &defaults.strategy)?;
        let proposals = match strategy {
            "random" => RandomSearch::new(request.seed).propose(&context, request.count as usize),
            "evolution" => Evolution::new(request.seed).propose(&context, request.count as usize),
            _ => {
                let llm = llm_config(&self.inner.settings.llm, request.llm.as_ref())?;
                let mut proposer = crate::proposer::Proposer::new(strategy, request.seed, &llm)
                    .map_err(invalid)?;
                let brief = crate::llm::Brief {
                    goal_text: goal.text.clone(),
                    dataset: goal.dataset.clone(),
                    dataset_description: format!(
                        "{} input, {} classes",
                        serde_json::to_string(&input).unwrap_or_default(),
                        request.num_classes
                    ),
                    ..Default::default()
                };
                let mut proposals = Vec::new();
                let mut extended = history.clone();
                for _ in 0..request.count {
                    let context = Context {
                        history: &extended,
                        ..context.clone()
                    };
                    let (proposal, _) = proposer
                        .next(&context, &brief)
                        .await
                        .map_err(|e| PlannerError::CannotPropose(e.to_string()))?;
                    extended.push(HistoryEntry {
                        model: proposal.model.clone(),
                        train: proposal.train.clone(),
                        score: None,
                        failure: Some("proposed, not evaluated".into()),
                        improving: false,
                    });
                    proposals.push(proposal);
                }
                Ok(proposals)
            }
        }
        .map_err(|error| match error {
            crate::strategy::StrategyError::FamilyMismatch { .. } => invalid(error.to_string()),
            other => PlannerError::CannotPropose(other.to_string()),
        })?;
        Ok(pb::ProposeCandidatesResponse {
            proposals: proposals
                .into_iter()
                .map(|p| pb::Proposal {
                    model: Some(common::ModelSpec::from(&p.model)),
                    train: Some(common::TrainSpec::from(&p.train)),
                    rationale: p.rationale,
                    strategy: research::strategy_enum(p.strategy) as i32,
                })
                .collect(),
        })
    }
}

/// The strategy a request names, by name; UNSPECIFIED is the configured `default`.
fn strategy_of(strategy: i32, default: &str) -> Result<&str, PlannerError> {
    let known = pb::Strategy::try_from(strategy)
        .map_err(|_| invalid(format!("strategy = {strategy} is unknown")))?;
    Ok(ra_client::strategy::name(known).unwrap_or(default))
}

/// Who a request is from, for the record: the name it gives, with the authenticated caller.
fn who(given: &str, caller: Option<&str>, field: &str) -> Result<String, PlannerError> {
    let given = given.trim();
    if given.chars().count() > 256 || given.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must be at most 256 characters without control characters"
        )));
    }
    Ok(match (given.is_empty(), caller) {
        (true, None) => "anonymous".to_owned(),
        (true, Some(caller)) => caller.to_owned(),
        (false, None) => given.to_owned(),
        (false, Some(caller)) if caller == given => given.to_owned(),
        (false, Some(caller)) => format!("{given} (authenticated as {caller})"),
    })
}

/// The bounds a session budget must keep (the same for StartResearch and UpdateBudget).
fn check_budget(budget: &common::Budget) -> Result<(), PlannerError> {
    if budget.max_candidates > 10_000 {
        return Err(invalid(format!(
            "budget.max_candidates = {} is more than 10000",
            budget.max_candidates
        )));
    }
    if budget.max_wall_seconds > 30 * 24 * 3600 {
        return Err(invalid("budget.max_wall_seconds is more than 30 days"));
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), PlannerError> {
    if id.is_empty() {
        return Err(invalid(
            "research_id is empty: give the exp_… id StartResearch returned",
        ));
    }
    if !id.starts_with("exp_") || id.len() > 64 {
        return Err(invalid(format!(
            "research_id {:?} is not an experiment id (exp_…)",
            id.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// The configured LLM endpoint with the request's non-empty fields on top.
fn llm_config(
    configured: &LlmConfig,
    request: Option<&pb::LlmSettings>,
) -> Result<LlmConfig, PlannerError> {
    let mut llm = configured.clone();
    if let Some(settings) = request {
        if !settings.base_url.is_empty() {
            llm.base_url = settings.base_url.clone();
        }
        if !settings.model.is_empty() {
            llm.model = settings.model.clone();
        }
        if !settings.api_key_env.is_empty() {
            llm.api_key_env = settings.api_key_env.clone();
        }
        if settings.max_retries > 0 {
            llm.max_retries = settings.max_retries.min(10);
        }
        if settings.timeout_seconds > 0 {
            llm.timeout_seconds = u64::from(settings.timeout_seconds).min(3_600);
            llm.max_answer_seconds = llm.max_answer_seconds.max(llm.timeout_seconds);
        }
        if settings.strikes > 0 {
            llm.strikes = settings.strikes.min(100);
        }
        if !settings.prompt.is_empty() {
            if !crate::config::PROMPT_STYLES.contains(&settings.prompt.as_str()) {
                return Err(invalid(format!(
                    "llm.prompt {:?} is unknown; use full or compact",
                    settings.prompt
                )));
            }
            llm.prompt = settings.prompt.clone();
        }
    }
    if !(llm.base_url.starts_with("http://") || llm.base_url.starts_with("https://")) {
        return Err(invalid(format!(
            "llm.base_url {:?} must start with http:// or https://",
            llm.base_url
        )));
    }
    Ok(llm)
}

/// Non-zero fields of `overrides` replace the parsed ones.
fn apply_overrides(goal: &mut common::ResearchGoal, overrides: &common::ResearchGoal) {
    if !overrides.dataset.is_empty() {
        goal.dataset = overrides.dataset.clone();
    }
    if let Some(o) = &overrides.target {
        let target = goal.target.get_or_insert_with(Default::default);
        if !o.metric.is_empty() && o.metric != target.metric {
            target.metric = o.metric.clone();
            target.direction = 0;
        }
        if o.threshold != 0.0 {
            target.threshold = o.threshold;
            target.open_ended = false;
        }
        if o.open_ended {
            target.open_ended = true;
        }
        if o.direction != 0 {
            target.direction = o.direction;
        }
    }
    if overrides.confidence != 0.0 {
        goal.confidence = overrides.confidence;
    }
    if overrides.num_seeds != 0 {
        goal.num_seeds = overrides.num_seeds;
    }
    if overrides.max_seeds != 0 {
        goal.max_seeds = overrides.max_seeds;
    }
    if let Some(o) = &overrides.budget {
        let budget = goal.budget.get_or_insert_with(Default::default);
        if o.max_candidates != 0 {
            budget.max_candidates = o.max_candidates;
        }
        if o.max_total_seeds != 0 {
            budget.max_total_seeds = o.max_total_seeds;
        }
        if o.max_wall_seconds != 0 {
            budget.max_wall_seconds = o.max_wall_seconds;
        }
    }
    if !overrides.model_family.is_empty() {
        goal.model_family = overrides.model_family.clone();
    }
}

fn fill_defaults(goal: &mut common::ResearchGoal, settings: &PlannerSettings) {
    let d = &settings.defaults;
    if goal.confidence == 0.0 {
        goal.confidence = d.confidence;
    }
    if goal.num_seeds == 0 {
        goal.num_seeds = d.num_seeds;
    }
    if goal.max_seeds == 0 {
        goal.max_seeds = d.max_seeds.max(goal.num_seeds);
    }
    let budget = goal.budget.get_or_insert_with(Default::default);
    if budget.max_candidates == 0 {
        budget.max_candidates = d.max_candidates;
    }
    if budget.max_total_seeds == 0 {
        budget.max_total_seeds = d.max_total_seeds;
    }
    if budget.max_wall_seconds == 0 {
        budget.max_wall_seconds = d.max_wall_seconds;
    }
}

fn check_goal(goal: &mut common::ResearchGoal) -> Result<(), PlannerError> {
    let checked =
        ra_client::goal::check(goal.target.as_ref()).map_err(|e| invalid(e.to_string()))?;
    if let Some(target) = goal.target.as_mut() {
        target.direction = match checked.direction {
            Direction::Maximize => common::Direction::Maximize,
            Direction::Minimize => common::Direction::Minimize,
        } as i32;
        // An open-ended goal's threshold is one no candidate reaches, in its direction.
        if target.open_ended {
            target.threshold = match checked.direction {
                Direction::Maximize => 1.0,
                Direction::Minimize => 0.0,
            };
        }
    }
    if !(goal.confidence > 0.5 && goal.confidence < 1.0) {
        return Err(invalid(format!(
            "confidence = {} must be in (0.5, 1), e.g. 0.95",
            goal.confidence
        )));
    }
    if goal.num_seeds < 2 {
        return Err(invalid(format!(
            "num_seeds = {}: a candidate needs at least 2 seeds for a confidence interval",
            goal.num_seeds
        )));
    }
    if goal.max_seeds < goal.num_seeds || goal.max_seeds > MAX_SEEDS_PER_CANDIDATE {
        return Err(invalid(format!(
            "max_seeds = {} must be between num_seeds ({}) and {MAX_SEEDS_PER_CANDIDATE}",
            goal.max_seeds, goal.num_seeds
        )));
    }
    let budget = goal.budget.unwrap_or_default();
    check_budget(&budget)?;
    if budget.max_total_seeds < goal.num_seeds {
        return Err(invalid(format!(
            "budget.max_total_seeds = {} is below num_seeds = {}: not even one candidate fits",
            budget.max_total_seeds, goal.num_seeds
        )));
    }
    if !goal.model_family.is_empty()
        && !crate::space::FAMILIES.contains(&goal.model_family.as_str())
    {
        return Err(invalid(format!(
            "model_family {:?} is unknown; use one of {}",
            goal.model_family,
            crate::space::FAMILIES.join(", ")
        )));
    }
    Ok(())
}
