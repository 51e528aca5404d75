//! What the evaluator writes to and reads from registry-svc: experiments and candidates it
//! creates for ad-hoc evaluations, trials and their metric series as they happen, and the
//! evaluations. Every call goes through the bounded retry; creates use ids chosen here, so a
//! create retried after a lost answer finds its own record instead of making a second one.

use std::collections::HashMap;

use ra_client::ids::EntityKind;
use ra_client::{Peer, RegistryClient};
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as reg;
use tonic::Status;

/// The registry side of an evaluation.
#[derive(Debug, Clone)]
pub struct Ledger {
    registry: Peer<RegistryClient>,
}

/// The registry peer's calls and typed reads ([`Peer::call`], [`Peer::experiment`], …).
impl std::ops::Deref for Ledger {
    type Target = Peer<RegistryClient>;

    fn deref(&self) -> &Self::Target {
        &self.registry
    }
}

impl Ledger {
    pub fn new(registry: Peer<RegistryClient>) -> Self {
        Self { registry }
    }

    pub async fn create_experiment(
        &self,
        name: String,
        goal: common::ResearchGoal,
    ) -> Result<reg::Experiment, Status> {
        let id = EntityKind::Experiment.new_id();
        let request = reg::CreateExperimentRequest {
            id: id.clone(),
            name,
            goal: Some(goal),
            config_json: String::new(),
            labels: HashMap::from([("created_by".to_owned(), "evaluator-svc".to_owned())]),
        };
        self.create_once(
            |mut c| {
                let request = request.clone();
                async move { c.create_experiment(request).await }
            },
            |mut c| {
                let id = id.clone();
                async move { c.get_experiment(reg::GetExperimentRequest { id }).await }
            },
        )
        .await
    }

    pub async fn create_candidate(
        &self,
        experiment_id: &str,
        model: common::ModelSpec,
        train: common::TrainSpec,
    ) -> Result<reg::Candidate, Status> {
        let id = EntityKind::Candidate.new_id();
        let request = reg::CreateCandidateRequest {
            id: id.clone(),
            experiment_id: experiment_id.to_owned(),
            model: Some(model),
            train: Some(train),
            rationale: "submitted to evaluator-svc for evaluation".into(),
            parent_id: String::new(),
            strategy: "manual".into(),
        };
        self.create_once(
            |mut c| {
                let request = request.clone();
                async move { c.create_candidate(request).await }
            },
            |mut c| {
                let id = id.clone();
                async move { c.get_candidate(reg::GetCandidateRequest { id }).await }
            },
        )
        .await
    }

    /// A PENDING trial of `seed` on `device`, run by the sandbox job `job_id` (none: a job of
    /// its own, whose id is the trial id).
    pub async fn create_trial(
        &self,
        candidate_id: &str,
        seed: u64,
        device: &str,
        job_id: Option<&str>,
    ) -> Result<reg::Trial, Status> {
        let id = EntityKind::Trial.new_id();
        let request = reg::CreateTrialRequest {
            id: id.clone(),
            candidate_id: candidate_id.to_owned(),
            seed,
            state: common::TrialState::Pending as i32,
            job_id: job_id.map_or_else(|| id.clone(), str::to_owned),
            device: device.to_owned(),
        };
        self.create_once(
            |mut c| {
                let request = request.clone();
                async move { c.create_trial(request).await }
            },
            |mut c| {
                let id = id.clone();
                async move { c.get_trial(reg::GetTrialRequest { id }).await }
            },
        )
        .await
    }

    pub async fn update_trial(
        &self,
        request: reg::UpdateTrialRequest,
    ) -> Result<reg::Trial, Status> {
        self.call(|mut c| {
            let request = request.clone();
            async move { c.update_trial(request).await }
        })
        .await
    }

    pub async fn create_evaluation(
        &self,
        request: reg::CreateEvaluationRequest,
    ) -> Result<reg::Evaluation, Status> {
        let id = request.id.clone();
        self.create_once(
            |mut c| {
                let request = request.clone();
                async move { c.create_evaluation(request).await }
            },
            |mut c| {
                let id = id.clone();
                async move { c.get_evaluation(reg::GetEvaluationRequest { id }).await }
            },
        )
        .await
    }
}
