//! Typed reads of registry-svc that several services make: records by id and whole paged
//! lists, each call through the peer's retry rule.

use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as reg;
use tonic::Status;

use crate::{PAGE, Peer, RegistryClient};

impl Peer<RegistryClient> {
    pub async fn experiment(&self, id: &str) -> Result<reg::Experiment, Status> {
        let request = reg::GetExperimentRequest { id: id.to_owned() };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.get_experiment(request).await }
        })
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

    pub async fn trial(&self, id: &str) -> Result<reg::Trial, Status> {
        let request = reg::GetTrialRequest { id: id.to_owned() };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.get_trial(request).await }
        })
        .await
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
