//! Experiments, candidates, trials, decisions and evaluations: validation of each create and
//! update, the referential checks, and the atomic writes with their index keys and events.

use ra_proto::common::v1::TrialState;
use ra_proto::registry::v1::experiment_event::Record;
use ra_proto::registry::v1::{
    Candidate, CreateCandidateRequest, CreateDecisionRequest, CreateEvaluationRequest,
    CreateExperimentRequest, CreateTrialRequest, Decision, Evaluation, Experiment,
    ExperimentStatus, Trial, UpdateExperimentRequest, UpdateTrialRequest,
};

use crate::error::{RegistryError, Result};
use crate::ids::{EntityKind, id_for_create, parse_id};
use crate::keys;
use crate::metrics::prepare_points;
use crate::store::{Page, PageRequest, Store};
use crate::validate;

impl Store {
    // ---------------------------------------------------------------------------------------
    // Experiments
    // ---------------------------------------------------------------------------------------

    pub async fn create_experiment(&self, request: CreateExperimentRequest) -> Result<Experiment> {
        let id = id_for_create(EntityKind::Experiment, &request.id)?;
        validate::name("name", &request.name)?;
        validate::json_object("config_json", &request.config_json)?;
        validate::labels("labels", &request.labels)?;
        if let Some(goal) = &request.goal {
            validate::all_finite("goal", "ra.common.v1.ResearchGoal", goal)?;
            validate::text("goal.text", &goal.text, validate::MAX_RATIONALE_BYTES)?;
            validate::bounded_line("goal.dataset", &goal.dataset, validate::MAX_NAME_CHARS)?;
            if goal.confidence != 0.0 && !(goal.confidence > 0.5 && goal.confidence < 1.0) {
                return Err(RegistryError::invalid(format!(
                    "goal.confidence = {} must be in (0.5, 1), e.g. 0.95",
                    goal.confidence
                )));
            }
        }
        let experiment = self.write(|write| {
            let key = keys::experiment(&id);
            if self.contains(&key)? {
                return Err(RegistryError::AlreadyExists(format!(
                    "experiment {id} already exists"
                )));
            }
            let experiment = Experiment {
                id: id.clone(),
                name: request.name,
                goal: request.goal,
                config_json: request.config_json,
                status: ExperimentStatus::Running as i32,
                summary: String::new(),
                labels: request.labels,
                created_at: Some(write.now),
                updated_at: Some(write.now),
            };
            validate::record_size("experiment", &experiment)?;
            write.put(&key, &experiment);
            write.event(&id, Record::Experiment(experiment.clone()))?;
            Ok(experiment)
        })?;
        self.sync().await?;
        Ok(experiment)
    }

    pub fn get_experiment(&self, id: &str) -> Result<Experiment> {
        let id = parse_id(EntityKind::Experiment, "id", id)?;
        self.get_record(&keys::experiment(&id))?
            .ok_or_else(|| RegistryError::NotFound(format!("experiment {id} does not exist")))
    }

    pub fn list_experiments(&self, status: i32, page: &PageRequest) -> Result<Page<Experiment>> {
        let filter = status_filter::<ExperimentStatus>("status", status)?;
        self.page(keys::EXPERIMENTS, page, |key, value| {
            let experiment: Experiment = decode(key, value)?;
            Ok((filter.is_none_or(|wanted| experiment.status == wanted)).then_some(experiment))
        })
    }

    pub async fn update_experiment(&self, request: UpdateExperimentRequest) -> Result<Experiment> {
        let id = parse_id(EntityKind::Experiment, "id", &request.id)?;
        if let Some(status) = request.status {
            known_status::<ExperimentStatus>("status", status)?;
        }
        if let Some(summary) = &request.summary {
            validate::text("summary", summary, validate::MAX_SUMMARY_BYTES)?;
        }
        validate::labels("labels", &request.labels)?;
        let experiment = self.write(|write| {
            let mut experiment = self.get_experiment(&id)?;
            if let Some(status) = request.status
                && status != experiment.status
            {
                if is_terminal_experiment(experiment.status) {
                    return Err(RegistryError::FailedPrecondition(format!(
                        "experiment {id} is {}; a finished experiment keeps its status",
                        experiment.status().as_str_name()
                    )));
                }
                experiment.status = status;
            }
            if let Some(summary) = request.summary {
                experiment.summary = summary;
            }
            for (key, value) in request.labels {
                if value.is_empty() {
                    experiment.labels.remove(&key);
                } else {
                    experiment.labels.insert(key, value);
                }
            }
            validate::labels("labels", &experiment.labels)?;
            experiment.updated_at = Some(write.now);
            write.put(keys::experiment(&id), &experiment);
            write.event(&id, Record::Experiment(experiment.clone()))?;
            Ok(experiment)
        })?;
        self.sync().await?;
        Ok(experiment)
    }

    // ---------------------------------------------------------------------------------------
    // Candidates
    // ---------------------------------------------------------------------------------------

    pub async fn create_candidate(&self, request: CreateCandidateRequest) -> Result<Candidate> {
        let id = id_for_create(EntityKind::Candidate, &request.id)?;
        let experiment_id = parse_id(
            EntityKind::Experiment,
            "experiment_id",
            &request.experiment_id,
        )?;
        let parent_id = match request.parent_id.as_str() {
            "" => None,
            parent => Some(parse_id(EntityKind::Candidate, "parent_id", parent)?),
        };
        let model = request.model.ok_or_else(|| {
            RegistryError::invalid("model is missing: a candidate records the ModelSpec it trains")
        })?;
        if model
            .input
            .as_ref()
            .and_then(|input| input.kind.as_ref())
            .is_none()
        {
            return Err(RegistryError::invalid(
                "model.input is missing: say what one sample looks like",
            ));
        }
        if model.layers.is_empty() {
            return Err(RegistryError::invalid(
                "model.layers is empty: a model needs at least one layer",
            ));
        }
        validate::bounded_line("model.name", &model.name, validate::MAX_NAME_CHARS)?;
        validate::all_finite("model", "ra.common.v1.ModelSpec", &model)?;
        let train = request.train.ok_or_else(|| {
            RegistryError::invalid(
                "train is missing: a candidate records the TrainSpec it trains with",
            )
        })?;
        validate::all_finite("train", "ra.common.v1.TrainSpec", &train)?;
        validate::text(
            "rationale",
            &request.rationale,
            validate::MAX_RATIONALE_BYTES,
        )?;
        if !request.strategy.is_empty() {
            validate::word("strategy", &request.strategy)?;
        }
        let candidate = self.write(|write| {
            self.get_experiment(&experiment_id)?;
            let key = keys::candidate(&id);
            if self.contains(&key)? {
                return Err(RegistryError::AlreadyExists(format!(
                    "candidate {id} already exists"
                )));
            }
            if let Some(parent_id) = &parent_id {
                let parent = self.get_candidate(parent_id).map_err(|error| match error {
                    RegistryError::NotFound(_) => RegistryError::NotFound(format!(
                        "parent_id {parent_id} does not exist; record the parent candidate first"
                    )),
                    other => other,
                })?;
                if parent.experiment_id != experiment_id {
                    return Err(RegistryError::invalid(format!(
                        "parent_id {parent_id} belongs to experiment {}, not {experiment_id}",
                        parent.experiment_id
                    )));
                }
            }
            let candidate = Candidate {
                id: id.clone(),
                experiment_id: experiment_id.clone(),
                model: Some(model),
                train: Some(train),
                rationale: request.rationale,
                parent_id: parent_id.unwrap_or_default(),
                strategy: request.strategy,
                created_at: Some(write.now),
            };
            validate::record_size("candidate", &candidate)?;
            write.put(&key, &candidate);
            write.put_raw(
                format!("{}{id}", keys::experiment_candidates(&experiment_id)),
                [],
            );
            write.event(&experiment_id, Record::Candidate(candidate.clone()))?;
            Ok(candidate)
        })?;
        self.sync().await?;
        Ok(candidate)
    }

    pub fn get_candidate(&self, id: &str) -> Result<Candidate> {
        let id = parse_id(EntityKind::Candidate, "id", id)?;
        self.get_record(&keys::candidate(&id))?
            .ok_or_else(|| RegistryError::NotFound(format!("candidate {id} does not exist")))
    }

    pub fn list_candidates(
        &self,
        experiment_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Candidate>> {
        let experiment_id = self.existing_experiment(experiment_id)?;
        self.page(
            &keys::experiment_candidates(&experiment_id),
            page,
            |key, _| self.follow_index(key, keys::candidate).map(Some),
        )
    }

    // ---------------------------------------------------------------------------------------
    // Trials
    // ---------------------------------------------------------------------------------------

    pub async fn create_trial(&self, request: CreateTrialRequest) -> Result<Trial> {
        let id = id_for_create(EntityKind::Trial, &request.id)?;
        let candidate_id = parse_id(EntityKind::Candidate, "candidate_id", &request.candidate_id)?;
        let state = match request.state {
            0 => TrialState::Pending,
            raw => match TrialState::try_from(raw) {
                Ok(state @ (TrialState::Pending | TrialState::Running)) => state,
                _ => {
                    return Err(RegistryError::invalid(format!(
                        "state {raw} is not a starting state: a new trial is TRIAL_STATE_PENDING or TRIAL_STATE_RUNNING"
                    )));
                }
            },
        };
        validate::bounded_line("job_id", &request.job_id, validate::MAX_NAME_CHARS)?;
        validate::bounded_line("device", &request.device, validate::MAX_WORD_CHARS)?;
        let trial = self.write(|write| {
            let candidate = self.get_candidate(&candidate_id)?;
            let key = keys::trial(&id);
            if self.contains(&key)? {
                return Err(RegistryError::AlreadyExists(format!(
                    "trial {id} already exists"
                )));
            }
            let seed_key = keys::candidate_seed(&candidate_id, request.seed);
            if let Some(existing) = self.records.get(seed_key.as_bytes())? {
                return Err(RegistryError::AlreadyExists(format!(
                    "candidate {candidate_id} already has a trial for seed {}: {}",
                    request.seed,
                    String::from_utf8_lossy(&existing)
                )));
            }
            let trial = Trial {
                id: id.clone(),
                experiment_id: candidate.experiment_id.clone(),
                candidate_id: candidate_id.clone(),
                seed: request.seed,
                state: state as i32,
                job_id: request.job_id,
                device: request.device,
                created_at: Some(write.now),
                started_at: (state == TrialState::Running).then_some(write.now),
                ..Default::default()
            };
            write.put(&key, &trial);
            write.put_raw(seed_key, id.as_bytes());
            write.put_raw(
                format!("{}{id}", keys::experiment_trials(&trial.experiment_id)),
                [],
            );
            write.put_raw(format!("{}{id}", keys::candidate_trials(&candidate_id)), []);
            write.event(&trial.experiment_id, Record::Trial(trial.clone()))?;
            Ok(trial)
        })?;
        self.sync().await?;
        Ok(trial)
    }

    pub fn get_trial(&self, id: &str) -> Result<Trial> {
        let id = parse_id(EntityKind::Trial, "id", id)?;
        self.get_record(&keys::trial(&id))?
            .ok_or_else(|| RegistryError::NotFound(format!("trial {id} does not exist")))
    }

    /// Trials of an experiment or of a candidate (exactly one of the two ids).
    pub fn list_trials(
        &self,
        experiment_id: &str,
        candidate_id: &str,
        state: i32,
        page: &PageRequest,
    ) -> Result<Page<Trial>> {
        let filter = status_filter::<TrialState>("state", state)?;
        let prefix = match (experiment_id.is_empty(), candidate_id.is_empty()) {
            (false, true) => keys::experiment_trials(&self.existing_experiment(experiment_id)?),
            (true, false) => keys::candidate_trials(&self.get_candidate(candidate_id)?.id),
            _ => {
                return Err(RegistryError::invalid(
                    "give exactly one of experiment_id and candidate_id to list trials",
                ));
            }
        };
        self.page(&prefix, page, |key, _| {
            let trial: Trial = self.follow_index(key, keys::trial)?;
            Ok(filter
                .is_none_or(|wanted| trial.state == wanted)
                .then_some(trial))
        })
    }

    /// Moves a trial on; its final metrics and points are written in the same atomic batch.
    pub async fn update_trial(&self, mut request: UpdateTrialRequest) -> Result<Trial> {
        let id = parse_id(EntityKind::Trial, "id", &request.id)?;
        let new_state = match request.state {
            None => None,
            Some(raw) => Some(known_status::<TrialState>("state", raw)?),
        };
        if let Some(usage) = &request.usage {
            validate::all_finite("usage", "ra.common.v1.ResourceUsage", usage)?;
        }
        for (name, value) in &request.final_metrics {
            validate::metric_name("final_metrics key", name)?;
            validate::finite(&format!("final_metrics[{name:?}]"), *value)?;
        }
        if let Some(job_id) = &request.job_id {
            validate::bounded_line("job_id", job_id, validate::MAX_NAME_CHARS)?;
        }
        if let Some(message) = &request.message {
            validate::text("message", message, validate::MAX_SUMMARY_BYTES)?;
        }
        let points = prepare_points(
            std::mem::take(&mut request.points),
            self.settings.max_batch_points,
            true,
        )?;
        let trial = self.write(|write| {
            let mut trial = self.get_trial(&id)?;
            if is_terminal_trial(trial.state) {
                return Err(RegistryError::FailedPrecondition(format!(
                    "trial {id} is {}; a finished trial cannot change",
                    trial.state().as_str_name()
                )));
            }
            if let Some(state) = new_state {
                apply_trial_state(&mut trial, state, write.now)?;
            }
            if let Some(job_id) = request.job_id {
                trial.job_id = job_id;
            }
            if request.usage.is_some() {
                trial.usage = request.usage;
            }
            trial.final_metrics.extend(request.final_metrics);
            if request.exit_reason != 0 {
                trial.exit_reason = request.exit_reason;
            }
            if let Some(message) = request.message {
                trial.message = message;
            }
            write.put(keys::trial(&id), &trial);
            write.event(&trial.experiment_id, Record::Trial(trial.clone()))?;
            if let Some(points) = points {
                self.stage_points(write, &trial, points)?;
            }
            Ok(trial)
        })?;
        self.sync().await?;
        Ok(trial)
    }

    // ---------------------------------------------------------------------------------------
    // Decisions
    // ---------------------------------------------------------------------------------------

    pub async fn create_decision(&self, request: CreateDecisionRequest) -> Result<Decision> {
        let id = id_for_create(EntityKind::Decision, &request.id)?;
        let experiment_id = parse_id(
            EntityKind::Experiment,
            "experiment_id",
            &request.experiment_id,
        )?;
        validate::word("action", &request.action)?;
        validate::text(
            "reasoning",
            &request.reasoning,
            validate::MAX_REASONING_BYTES,
        )?;
        validate::json_object("inputs_json", &request.inputs_json)?;
        let candidate_id = match request.candidate_id.as_str() {
            "" => None,
            candidate => Some(parse_id(EntityKind::Candidate, "candidate_id", candidate)?),
        };
        let decision = self.write(|write| {
            self.get_experiment(&experiment_id)?;
            if let Some(candidate_id) = &candidate_id {
                self.candidate_of(candidate_id, &experiment_id)?;
            }
            let key = keys::decision(&id);
            if self.contains(&key)? {
                return Err(RegistryError::AlreadyExists(format!(
                    "decision {id} already exists"
                )));
            }
            let decision = Decision {
                id: id.clone(),
                experiment_id: experiment_id.clone(),
                action: request.action,
                reasoning: request.reasoning,
                inputs_json: request.inputs_json,
                candidate_id: candidate_id.unwrap_or_default(),
                created_at: Some(write.now),
            };
            write.put(&key, &decision);
            write.put_raw(
                format!("{}{id}", keys::experiment_decisions(&experiment_id)),
                [],
            );
            write.event(&experiment_id, Record::Decision(decision.clone()))?;
            Ok(decision)
        })?;
        self.sync().await?;
        Ok(decision)
    }

    pub fn get_decision(&self, id: &str) -> Result<Decision> {
        let id = parse_id(EntityKind::Decision, "id", id)?;
        self.get_record(&keys::decision(&id))?
            .ok_or_else(|| RegistryError::NotFound(format!("decision {id} does not exist")))
    }

    pub fn list_decisions(
        &self,
        experiment_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Decision>> {
        let experiment_id = self.existing_experiment(experiment_id)?;
        self.page(
            &keys::experiment_decisions(&experiment_id),
            page,
            |key, _| self.follow_index(key, keys::decision).map(Some),
        )
    }

    // ---------------------------------------------------------------------------------------
    // Evaluations
    // ---------------------------------------------------------------------------------------

    pub async fn create_evaluation(&self, request: CreateEvaluationRequest) -> Result<Evaluation> {
        let id = id_for_create(EntityKind::Evaluation, &request.id)?;
        let candidate_id = parse_id(EntityKind::Candidate, "candidate_id", &request.candidate_id)?;
        if request.trial_ids.len() > validate::MAX_TRIAL_IDS {
            return Err(RegistryError::invalid(format!(
                "trial_ids has {} entries; at most {} are allowed",
                request.trial_ids.len(),
                validate::MAX_TRIAL_IDS
            )));
        }
        let mut trial_ids = Vec::with_capacity(request.trial_ids.len());
        for (index, trial_id) in request.trial_ids.iter().enumerate() {
            let trial_id = parse_id(EntityKind::Trial, &format!("trial_ids[{index}]"), trial_id)?;
            if trial_ids.contains(&trial_id) {
                return Err(RegistryError::invalid(format!(
                    "trial_ids lists {trial_id} twice"
                )));
            }
            trial_ids.push(trial_id);
        }
        let target = request.target.ok_or_else(|| {
            RegistryError::invalid(
                "target is missing: say which metric was tested against which threshold",
            )
        })?;
        validate::metric_name("target.metric", &target.metric)?;
        validate::finite("target.threshold", target.threshold)?;
        let aggregate = request.aggregate.ok_or_else(|| {
            RegistryError::invalid("aggregate is missing: an evaluation records its statistics")
        })?;
        validate::all_finite("aggregate", "ra.common.v1.Aggregate", &aggregate)?;
        if !(0.0..=1.0).contains(&request.p_value) {
            return Err(RegistryError::invalid(format!(
                "p_value = {} must be a probability in [0, 1]",
                request.p_value
            )));
        }
        known_status::<ra_proto::common::v1::GoalDecision>("decision", request.decision)?;
        validate::text(
            "explanation",
            &request.explanation,
            validate::MAX_SUMMARY_BYTES,
        )?;
        let evaluation = self.write(|write| {
            let candidate = self.get_candidate(&candidate_id)?;
            for trial_id in &trial_ids {
                let trial = self.get_trial(trial_id)?;
                if trial.candidate_id != candidate_id {
                    return Err(RegistryError::invalid(format!(
                        "trial {trial_id} belongs to candidate {}, not {candidate_id}",
                        trial.candidate_id
                    )));
                }
            }
            let key = keys::evaluation(&id);
            if self.contains(&key)? {
                return Err(RegistryError::AlreadyExists(format!(
                    "evaluation {id} already exists"
                )));
            }
            let evaluation = Evaluation {
                id: id.clone(),
                experiment_id: candidate.experiment_id.clone(),
                candidate_id: candidate_id.clone(),
                trial_ids,
                target: Some(target),
                aggregate: Some(aggregate),
                decision: request.decision,
                p_value: request.p_value,
                explanation: request.explanation,
                created_at: Some(write.now),
            };
            write.put(&key, &evaluation);
            write.put_raw(
                format!(
                    "{}{id}",
                    keys::experiment_evaluations(&evaluation.experiment_id)
                ),
                [],
            );
            write.event(
                &evaluation.experiment_id,
                Record::Evaluation(evaluation.clone()),
            )?;
            Ok(evaluation)
        })?;
        self.sync().await?;
        Ok(evaluation)
    }

    pub fn get_evaluation(&self, id: &str) -> Result<Evaluation> {
        let id = parse_id(EntityKind::Evaluation, "id", id)?;
        self.get_record(&keys::evaluation(&id))?
            .ok_or_else(|| RegistryError::NotFound(format!("evaluation {id} does not exist")))
    }

    pub fn list_evaluations(
        &self,
        experiment_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Evaluation>> {
        let experiment_id = self.existing_experiment(experiment_id)?;
        self.page(
            &keys::experiment_evaluations(&experiment_id),
            page,
            |key, _| self.follow_index(key, keys::evaluation).map(Some),
        )
    }

    // ---------------------------------------------------------------------------------------
    // Shared checks
    // ---------------------------------------------------------------------------------------

    /// Parses and checks an `experiment_id` field, returning the id.
    pub(crate) fn existing_experiment(&self, experiment_id: &str) -> Result<String> {
        let id = parse_id(EntityKind::Experiment, "experiment_id", experiment_id)?;
        if !self.contains(&keys::experiment(&id))? {
            return Err(RegistryError::NotFound(format!(
                "experiment {id} does not exist"
            )));
        }
        Ok(id)
    }

    fn candidate_of(&self, candidate_id: &str, experiment_id: &str) -> Result<Candidate> {
        let candidate = self.get_candidate(candidate_id)?;
        if candidate.experiment_id != experiment_id {
            return Err(RegistryError::invalid(format!(
                "candidate {candidate_id} belongs to experiment {}, not {experiment_id}",
                candidate.experiment_id
            )));
        }
        Ok(candidate)
    }
}

pub(crate) fn decode<M: prost::Message + Default>(key: &[u8], value: &[u8]) -> Result<M> {
    M::decode(value).map_err(|source| RegistryError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: source.to_string(),
    })
}

pub(crate) fn is_terminal_trial(state: i32) -> bool {
    matches!(
        TrialState::try_from(state),
        Ok(TrialState::Succeeded | TrialState::Failed | TrialState::Pruned | TrialState::Cancelled)
    )
}

fn is_terminal_experiment(status: i32) -> bool {
    matches!(
        ExperimentStatus::try_from(status),
        Ok(ExperimentStatus::Succeeded
            | ExperimentStatus::Exhausted
            | ExperimentStatus::Completed
            | ExperimentStatus::Failed
            | ExperimentStatus::Cancelled)
    )
}

/// PENDING → RUNNING → terminal, with the registry's own timestamps.
fn apply_trial_state(
    trial: &mut Trial,
    state: TrialState,
    now: prost_types::Timestamp,
) -> Result<()> {
    let current = trial.state();
    let allowed = match (current, state) {
        (from, to) if from == to => true,
        (TrialState::Pending, _) | (TrialState::Running, _) => state != TrialState::Pending,
        _ => false,
    };
    if !allowed {
        return Err(RegistryError::FailedPrecondition(format!(
            "trial {} cannot go from {} to {}: trials move PENDING → RUNNING → a final state",
            trial.id,
            current.as_str_name(),
            state.as_str_name()
        )));
    }
    if state == TrialState::Running && trial.started_at.is_none() {
        trial.started_at = Some(now);
    }
    if is_terminal_trial(state as i32) {
        trial.finished_at = Some(now);
    }
    trial.state = state as i32;
    Ok(())
}

/// An enum field that must hold a known, specified value.
fn known_status<E: TryFrom<i32>>(field: &str, raw: i32) -> Result<E> {
    if raw == 0 {
        return Err(RegistryError::invalid(format!(
            "{field} is UNSPECIFIED: give a concrete value"
        )));
    }
    E::try_from(raw)
        .map_err(|_| RegistryError::invalid(format!("{field} = {raw} is not a known value")))
}

/// A list filter: UNSPECIFIED (0) means "any".
fn status_filter<E: TryFrom<i32>>(field: &str, raw: i32) -> Result<Option<i32>> {
    if raw == 0 {
        return Ok(None);
    }
    known_status::<E>(field, raw)?;
    Ok(Some(raw))
}
