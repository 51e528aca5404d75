//! What the planner writes to and reads from registry-svc: the session's experiment (its
//! configuration, status and summary), candidates, decisions and report artifacts. Built on
//! ra-client's registry [`Peer`] so that every call has the same bounded retry and every create
//! uses an id chosen here (a retried create finds its own record).

use std::collections::HashMap;

use ra_client::ids::EntityKind;
use ra_client::{PAGE, Peer, RegistryClient};
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as reg;
use tonic::Status;

/// Artifact upload chunk.
const CHUNK: usize = 1 << 20;

/// The registry side of the planner.
#[derive(Debug, Clone)]
pub struct Records {
    pub registry: Peer<RegistryClient>,
}

impl Records {
    pub fn new(registry: Peer<RegistryClient>) -> Self {
        Self { registry }
    }

    pub async fn create_experiment(
        &self,
        request: reg::CreateExperimentRequest,
    ) -> Result<reg::Experiment, Status> {
        let id = request.id.clone();
        self.registry
            .create_once(
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

    pub async fn update_experiment(
        &self,
        id: &str,
        status: Option<reg::ExperimentStatus>,
        summary: Option<String>,
        labels: HashMap<String, String>,
    ) -> Result<reg::Experiment, Status> {
        let request = reg::UpdateExperimentRequest {
            id: id.to_owned(),
            status: status.map(|s| s as i32),
            summary,
            labels,
        };
        self.registry
            .call(|mut c| {
                let request = request.clone();
                async move { c.update_experiment(request).await }
            })
            .await
    }

    pub async fn experiments(&self) -> Result<Vec<reg::Experiment>, Status> {
        self.registry
            .all_pages(|mut client, page_token| async move {
                let page = client
                    .list_experiments(reg::ListExperimentsRequest {
                        status: 0,
                        page_size: PAGE,
                        page_token,
                    })
                    .await?
                    .into_inner();
                Ok((page.experiments, page.next_page_token))
            })
            .await
    }

    pub async fn create_candidate(
        &self,
        experiment_id: &str,
        model: common::ModelSpec,
        train: common::TrainSpec,
        rationale: String,
        strategy: &str,
        parent_id: String,
    ) -> Result<reg::Candidate, Status> {
        let request = reg::CreateCandidateRequest {
            id: EntityKind::Candidate.new_id(),
            experiment_id: experiment_id.to_owned(),
            model: Some(model),
            train: Some(train),
            rationale,
            parent_id,
            strategy: strategy.to_owned(),
        };
        let id = request.id.clone();
        self.registry
            .create_once(
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

    pub async fn candidates(&self, experiment_id: &str) -> Result<Vec<reg::Candidate>, Status> {
        self.registry
            .all_pages(|mut client, page_token| {
                let request = reg::ListCandidatesRequest {
                    experiment_id: experiment_id.to_owned(),
                    page_size: PAGE,
                    page_token,
                };
                async move {
                    let page = client.list_candidates(request).await?.into_inner();
                    Ok((page.candidates, page.next_page_token))
                }
            })
            .await
    }

    /// Records a decision; `inputs` must be a JSON object.
    pub async fn decide(
        &self,
        experiment_id: &str,
        action: &str,
        reasoning: String,
        inputs: serde_json::Value,
        candidate_id: &str,
    ) -> Result<reg::Decision, Status> {
        let request = reg::CreateDecisionRequest {
            id: EntityKind::Decision.new_id(),
            experiment_id: experiment_id.to_owned(),
            action: action.to_owned(),
            reasoning: clip_bytes(reasoning, 256 * 1024),
            inputs_json: inputs.to_string(),
            candidate_id: candidate_id.to_owned(),
        };
        let id = request.id.clone();
        self.registry
            .create_once(
                |mut c| {
                    let request = request.clone();
                    async move { c.create_decision(request).await }
                },
                |mut c| {
                    let id = id.clone();
                    async move { c.get_decision(reg::GetDecisionRequest { id }).await }
                },
            )
            .await
    }

    pub async fn decisions(&self, experiment_id: &str) -> Result<Vec<reg::Decision>, Status> {
        self.registry
            .all_pages(|mut client, page_token| {
                let request = reg::ListDecisionsRequest {
                    experiment_id: experiment_id.to_owned(),
                    page_size: PAGE,
                    page_token,
                };
                async move {
                    let page = client.list_decisions(request).await?.into_inner();
                    Ok((page.decisions, page.next_page_token))
                }
            })
            .await
    }

    /// Uploads `content` as an artifact linked to the experiment (content-addressed, so a
    /// repeated upload of the same bytes is the same artifact).
    pub async fn upload(
        &self,
        experiment_id: &str,
        name: &str,
        content_type: &str,
        content: Vec<u8>,
    ) -> Result<reg::Artifact, Status> {
        self.registry
            .call(|mut c| {
                let mut messages = Vec::new();
                let chunks: Vec<&[u8]> = if content.is_empty() {
                    vec![&[][..]]
                } else {
                    content.chunks(CHUNK).collect()
                };
                for (index, chunk) in chunks.into_iter().enumerate() {
                    messages.push(reg::UploadArtifactRequest {
                        metadata: (index == 0).then(|| reg::ArtifactMetadata {
                            name: name.to_owned(),
                            content_type: content_type.to_owned(),
                            experiment_id: experiment_id.to_owned(),
                            ..Default::default()
                        }),
                        data: chunk.to_vec(),
                    });
                }
                async move { c.upload_artifact(tokio_stream::iter(messages)).await }
            })
            .await
    }
}

/// `text` cut to at most `limit` bytes on a character boundary, marked when cut.
pub fn clip_bytes(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit.saturating_sub(16);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [clipped]", &text[..end])
}
