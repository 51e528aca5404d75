//! What the evaluator writes to and reads from registry-svc: experiments and candidates it
//! creates for ad-hoc evaluations, trials and their metric series as they happen, and the
//! evaluations. Every call goes through the bounded retry; creates use ids chosen here, so a
//! create retried after a lost answer finds its own record instead of making a second one.

use std::collections::HashMap;

use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as reg;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::peers::Peers;

/// A fresh registry id with `prefix` ("trial_", "eval_", …).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::now_v7().simple())
}

pub type Client = reg::registry_service_client::RegistryServiceClient<tonic::transport::Channel>;

/// Largest page asked for when listing.
const PAGE: u32 = 500;

/// The registry side of an evaluation.
#[derive(Clone)]
pub struct Ledger {
    peers: Peers,
}

impl Ledger {
    pub fn new(peers: Peers) -> Self {
        Self { peers }
    }

    /// One registry call through the retry rule.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut call = call;
        self.peers
            .retry
            .run(&self.peers.registry_name, || {
                call(self.peers.registry.clone())
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Creates a record whose id was chosen here; ALREADY_EXISTS on a retried create means
    /// the first try landed, and `get` reads it back.
    pub async fn create_once<T, C, CF, G, GF>(&self, create: C, get: G) -> Result<T, Status>
    where
        C: FnMut(Client) -> CF,
        CF: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
        G: FnMut(Client) -> GF,
        GF: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match self.call(create).await {
            Err(status) if status.code() == Code::AlreadyExists => self.call(get).await,
            other => other,
        }
    }

    pub async fn experiment(&self, id: &str) -> Result<reg::Experiment, Status> {
        let request = reg::GetExperimentRequest { id: id.to_owned() };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.get_experiment(request).await }
        })
        .await
    }

    pub async fn create_experiment(
        &self,
        name: String,
        goal: common::ResearchGoal,
    ) -> Result<reg::Experiment, Status> {
        let id = new_id("exp_");
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

    pub async fn candidate(&self, id: &str) -> Result<reg::Candidate, Status> {
        let request = reg::GetCandidateRequest { id: id.to_owned() };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.get_candidate(request).await }
        })
        .await
    }

    pub async fn create_candidate(
        &self,
        experiment_id: &str,
        model: common::ModelSpec,
        train: common::TrainSpec,
    ) -> Result<reg::Candidate, Status> {
        let id = new_id("cand_");
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

    /// A PENDING trial of `seed` whose sandbox job id is the trial id.
    pub async fn create_trial(&self, candidate_id: &str, seed: u64) -> Result<reg::Trial, Status> {
        let id = new_id("trial_");
        let request = reg::CreateTrialRequest {
            id: id.clone(),
            candidate_id: candidate_id.to_owned(),
            seed,
            state: common::TrialState::Pending as i32,
            job_id: id.clone(),
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

    pub async fn trial(&self, id: &str) -> Result<reg::Trial, Status> {
        let request = reg::GetTrialRequest { id: id.to_owned() };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.get_trial(request).await }
        })
        .await
    }

    /// Every item of a paged list: `page` asks for one page (given its token) and returns its
    /// items and the next token.
    pub async fn all_pages<T, F, Fut>(&self, mut page: F) -> Result<Vec<T>, Status>
    where
        F: FnMut(Client, String) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<T>, String), Status>>,
    {
        let mut items = Vec::new();
        let mut page_token = String::new();
        loop {
            let (batch, next) = self
                .peers
                .retry
                .run(&self.peers.registry_name, || {
                    page(self.peers.registry.clone(), page_token.clone())
                })
                .await?;
            items.extend(batch);
            if next.is_empty() {
                return Ok(items);
            }
            page_token = next;
        }
    }

    /// Every trial of a candidate (or of an experiment when `candidate_id` is empty).
    pub async fn trials(
        &self,
        experiment_id: &str,
        candidate_id: &str,
    ) -> Result<Vec<reg::Trial>, Status> {
        self.all_pages(|mut client, page_token| {
            let request = reg::ListTrialsRequest {
                experiment_id: experiment_id.to_owned(),
                candidate_id: candidate_id.to_owned(),
                state: 0,
                page_size: PAGE,
                page_token,
            };
            async move {
                let page = client.list_trials(request).await?.into_inner();
                Ok((page.trials, page.next_page_token))
            }
        })
        .await
    }

    /// The series of `name` of a trial.
    pub async fn metric_series(
        &self,
        trial_id: &str,
        name: &str,
    ) -> Result<Vec<common::MetricPoint>, Status> {
        self.all_pages(|mut client, page_token| {
            let request = reg::ListMetricsRequest {
                trial_id: trial_id.to_owned(),
                name: name.to_owned(),
                page_size: PAGE,
                page_token,
            };
            async move {
                let page = client.list_metrics(request).await?.into_inner();
                Ok((page.points, page.next_page_token))
            }
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

    pub async fn evaluation(&self, id: &str) -> Result<reg::Evaluation, Status> {
        let request = reg::GetEvaluationRequest { id: id.to_owned() };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.get_evaluation(request).await }
        })
        .await
    }

    /// Every evaluation of an experiment, oldest first.
    pub async fn evaluations(&self, experiment_id: &str) -> Result<Vec<reg::Evaluation>, Status> {
        self.all_pages(|mut client, page_token| {
            let request = reg::ListEvaluationsRequest {
                experiment_id: experiment_id.to_owned(),
                page_size: PAGE,
                page_token,
            };
            async move {
                let page = client.list_evaluations(request).await?.into_inner();
                Ok((page.evaluations, page.next_page_token))
            }
        })
        .await
    }
}
