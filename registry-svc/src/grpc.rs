//! The thin tonic adapter: each RPC unpacks its request, calls the store and maps the result
//! (errors through the one `From<RegistryError> for Status`). Streams run in their own tasks.

use std::pin::Pin;
use std::sync::Arc;

use ra_proto::registry::v1 as pb;
use ra_proto::registry::v1::registry_service_server::{RegistryService, RegistryServiceServer};
use ra_serve::Shutdown;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::RegistryError;
use crate::store::{PageRequest, Store};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How many events one read of the log returns before they are sent.
const WATCH_READ_BATCH: usize = 256;
/// Buffered messages between a stream's producer task and the client.
const STREAM_BUFFER: usize = 16;
/// Bytes of a TensorBoard export file per message.
const TENSORBOARD_CHUNK: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct RegistryGrpc {
    store: Arc<Store>,
    shutdown: Shutdown,
    max_message_bytes: usize,
}

impl RegistryGrpc {
    pub fn new(store: Arc<Store>, shutdown: Shutdown, max_message_bytes: usize) -> Self {
        Self {
            store,
            shutdown,
            max_message_bytes,
        }
    }

    /// The tonic server for this service, with the configured message-size limits.
    pub fn into_server(self) -> RegistryServiceServer<Self> {
        let limit = self.max_message_bytes;
        RegistryServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

fn page(size: u32, token: String) -> PageRequest {
    PageRequest { size, token }
}

fn ok<T>(value: T) -> Result<Response<T>, Status> {
    Ok(Response::new(value))
}

/// Runs `produce` in a task feeding a response stream; it stops when the client goes away.
fn spawn_stream<T, F, Fut>(produce: F) -> ResponseStream<T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(produce(sender));
    Box::pin(ReceiverStream::new(receiver))
}

#[tonic::async_trait]
impl RegistryService for RegistryGrpc {
    async fn create_experiment(
        &self,
        request: Request<pb::CreateExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        ok(self.store.create_experiment(request.into_inner()).await?)
    }

    async fn get_experiment(
        &self,
        request: Request<pb::GetExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        ok(self.store.get_experiment(&request.into_inner().id)?)
    }

    async fn list_experiments(
        &self,
        request: Request<pb::ListExperimentsRequest>,
    ) -> Result<Response<pb::ListExperimentsResponse>, Status> {
        let request = request.into_inner();
        let page = self
            .store
            .list_experiments(request.status, &page(request.page_size, request.page_token))?;
        ok(pb::ListExperimentsResponse {
            experiments: page.items,
            next_page_token: page.next_page_token,
        })
    }

    async fn update_experiment(
        &self,
        request: Request<pb::UpdateExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        ok(self.store.update_experiment(request.into_inner()).await?)
    }

    async fn create_candidate(
        &self,
        request: Request<pb::CreateCandidateRequest>,
    ) -> Result<Response<pb::Candidate>, Status> {
        ok(self.store.create_candidate(request.into_inner()).await?)
    }

    async fn get_candidate(
        &self,
        request: Request<pb::GetCandidateRequest>,
    ) -> Result<Response<pb::Candidate>, Status> {
        ok(self.store.get_candidate(&request.into_inner().id)?)
    }

    async fn list_candidates(
        &self,
        request: Request<pb::ListCandidatesRequest>,
    ) -> Result<Response<pb::ListCandidatesResponse>, Status> {
        let request = request.into_inner();
        let page = self.store.list_candidates(
            &request.experiment_id,
            &page(request.page_size, request.page_token),
        )?;
        ok(pb::ListCandidatesResponse {
            candidates: page.items,
            next_page_token: page.next_page_token,
        })
    }

    async fn create_trial(
        &self,
        request: Request<pb::CreateTrialRequest>,
    ) -> Result<Response<pb::Trial>, Status> {
        ok(self.store.create_trial(request.into_inner()).await?)
    }

    async fn get_trial(
        &self,
        request: Request<pb::GetTrialRequest>,
    ) -> Result<Response<pb::Trial>, Status> {
        ok(self.store.get_trial(&request.into_inner().id)?)
    }

    async fn list_trials(
        &self,
        request: Request<pb::ListTrialsRequest>,
    ) -> Result<Response<pb::ListTrialsResponse>, Status> {
        let request = request.into_inner();
        let page = self.store.list_trials(
            &request.experiment_id,
            &request.candidate_id,
            request.state,
            &page(request.page_size, request.page_token),
        )?;
        ok(pb::ListTrialsResponse {
            trials: page.items,
            next_page_token: page.next_page_token,
        })
    }

    async fn update_trial(
        &self,
        request: Request<pb::UpdateTrialRequest>,
    ) -> Result<Response<pb::Trial>, Status> {
        ok(self.store.update_trial(request.into_inner()).await?)
    }

    async fn append_metrics(
        &self,
        request: Request<Streaming<pb::AppendMetricsRequest>>,
    ) -> Result<Response<pb::AppendMetricsResponse>, Status> {
        let mut stream = request.into_inner();
        let mut written = pb::AppendMetricsResponse::default();
        loop {
            let batch = match stream.message().await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(status) => {
                    self.store.sync().await?;
                    return Err(with_progress(status, &written));
                }
            };
            match self.store.append_metrics(&batch.trial_id, batch.points) {
                Ok(points) => {
                    written.batches_written += 1;
                    written.points_written += points as u64;
                }
                Err(error) => {
                    self.store.sync().await?;
                    let status = Status::from(error);
                    return Err(with_progress(status, &written));
                }
            }
        }
        self.store.sync().await?;
        ok(written)
    }

    async fn list_metrics(
        &self,
        request: Request<pb::ListMetricsRequest>,
    ) -> Result<Response<pb::ListMetricsResponse>, Status> {
        let request = request.into_inner();
        let page = self.store.list_metrics(
            &request.trial_id,
            &request.name,
            &page(request.page_size, request.page_token),
        )?;
        ok(pb::ListMetricsResponse {
            points: page.items,
            next_page_token: page.next_page_token,
        })
    }

    async fn create_decision(
        &self,
        request: Request<pb::CreateDecisionRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        ok(self.store.create_decision(request.into_inner()).await?)
    }

    async fn get_decision(
        &self,
        request: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        ok(self.store.get_decision(&request.into_inner().id)?)
    }

    async fn list_decisions(
        &self,
        request: Request<pb::ListDecisionsRequest>,
    ) -> Result<Response<pb::ListDecisionsResponse>, Status> {
        let request = request.into_inner();
        let page = self.store.list_decisions(
            &request.experiment_id,
            &page(request.page_size, request.page_token),
        )?;
        ok(pb::ListDecisionsResponse {
            decisions: page.items,
            next_page_token: page.next_page_token,
        })
    }

    async fn create_evaluation(
        &self,
        request: Request<pb::CreateEvaluationRequest>,
    ) -> Result<Response<pb::Evaluation>, Status> {
        ok(self.store.create_evaluation(request.into_inner()).await?)
    }

    async fn get_evaluation(
        &self,
        request: Request<pb::GetEvaluationRequest>,
    ) -> Result<Response<pb::Evaluation>, Status> {
        ok(self.store.get_evaluation(&request.into_inner().id)?)
    }

    async fn list_evaluations(
        &self,
        request: Request<pb::ListEvaluationsRequest>,
    ) -> Result<Response<pb::ListEvaluationsResponse>, Status> {
        let request = request.into_inner();
        let page = self.store.list_evaluations(
            &request.experiment_id,
            &page(request.page_size, request.page_token),
        )?;
        ok(pb::ListEvaluationsResponse {
            evaluations: page.items,
            next_page_token: page.next_page_token,
        })
    }

    async fn upload_artifact(
        &self,
        request: Request<Streaming<pb::UploadArtifactRequest>>,
    ) -> Result<Response<pb::Artifact>, Status> {
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            Status::invalid_argument("the upload stream is empty: send metadata and data chunks")
        })?;
        let metadata = first.metadata.ok_or_else(|| {
            Status::invalid_argument(
                "the first upload message must carry metadata (at least a name)",
            )
        })?;
        let mut upload = self.store.begin_upload(metadata)?;
        upload.write(&first.data)?;
        while let Some(chunk) = stream.message().await? {
            upload.write(&chunk.data)?;
        }
        ok(upload.finish().await?)
    }

    type DownloadArtifactStream = ResponseStream<pb::DownloadArtifactResponse>;

    async fn download_artifact(
        &self,
        request: Request<pb::DownloadArtifactRequest>,
    ) -> Result<Response<Self::DownloadArtifactStream>, Status> {
        let mut reader = self.store.open_artifact(&request.into_inner().sha256)?;
        let stream = spawn_stream(|sender| async move {
            let mut artifact = Some(reader.artifact().clone());
            loop {
                let message = match reader.next_chunk() {
                    Ok(Some(data)) => Ok(pb::DownloadArtifactResponse {
                        artifact: artifact.take(),
                        data,
                    }),
                    Ok(None) if artifact.is_some() => {
                        // Empty artifact: still send its metadata once.
                        Ok(pb::DownloadArtifactResponse {
                            artifact: artifact.take(),
                            data: Vec::new(),
                        })
                    }
                    Ok(None) => return,
                    Err(error) => Err(Status::from(error)),
                };
                let failed = message.is_err();
                if sender.send(message).await.is_err() || failed {
                    return;
                }
            }
        });
        ok(stream)
    }

    async fn get_artifact(
        &self,
        request: Request<pb::GetArtifactRequest>,
    ) -> Result<Response<pb::Artifact>, Status> {
        ok(self.store.get_artifact(&request.into_inner().sha256)?)
    }

    async fn list_artifacts(
        &self,
        request: Request<pb::ListArtifactsRequest>,
    ) -> Result<Response<pb::ListArtifactsResponse>, Status> {
        let request = request.into_inner();
        let page = self.store.list_artifacts(
            &request.experiment_id,
            &page(request.page_size, request.page_token),
        )?;
        ok(pb::ListArtifactsResponse {
            artifacts: page.items,
            next_page_token: page.next_page_token,
        })
    }

    type WatchExperimentStream = ResponseStream<pb::ExperimentEvent>;

    async fn watch_experiment(
        &self,
        request: Request<pb::WatchExperimentRequest>,
    ) -> Result<Response<Self::WatchExperimentStream>, Status> {
        let request = request.into_inner();
        let experiment_id = self.store.existing_experiment(&request.experiment_id)?;
        let store = Arc::clone(&self.store);
        let shutdown = self.shutdown.clone();
        let stream = spawn_stream(move |sender| async move {
            let mut landed = store.subscribe();
            let mut position = request.from_position;
            loop {
                landed.borrow_and_update();
                let events = match store.events_after(&experiment_id, position, WATCH_READ_BATCH) {
                    Ok(events) => events,
                    Err(error) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                };
                if events.is_empty() {
                    if request.replay_only {
                        return;
                    }
                    tokio::select! {
                        changed = landed.changed() => if changed.is_err() { return },
                        () = shutdown.requested() => return,
                        () = sender.closed() => return,
                    }
                    continue;
                }
                for event in events {
                    position = event.position;
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        ok(stream)
    }

    async fn export_experiment(
        &self,
        request: Request<pb::ExportExperimentRequest>,
    ) -> Result<Response<pb::ExportExperimentResponse>, Status> {
        let json = self
            .store
            .export_json(&request.into_inner().experiment_id)?;
        if json.len() + 1024 > self.max_message_bytes {
            return Err(RegistryError::ResourceExhausted(format!(
                "the export is {} bytes, over server.max_message_bytes ({}); raise that limit or read the metrics with ExportMetricsCsv",
                json.len(),
                self.max_message_bytes
            ))
            .into());
        }
        ok(pb::ExportExperimentResponse { json })
    }

    type ExportTensorboardStream = ResponseStream<pb::ExportTensorboardResponse>;

    async fn export_tensorboard(
        &self,
        request: Request<pb::ExportTensorboardRequest>,
    ) -> Result<Response<Self::ExportTensorboardStream>, Status> {
        let experiment_id = self
            .store
            .existing_experiment(&request.into_inner().experiment_id)?;
        let store = Arc::clone(&self.store);
        let stream = spawn_stream(move |sender| async move {
            let files =
                match tokio::task::spawn_blocking(move || store.export_tensorboard(&experiment_id))
                    .await
                {
                    Ok(Ok(files)) => files,
                    Ok(Err(error)) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                    Err(error) => {
                        let _ = sender
                            .send(Err(Status::internal(format!(
                                "the export stopped: {error}"
                            ))))
                            .await;
                        return;
                    }
                };
            for file in files {
                // An empty file still announces its path.
                let chunks: Vec<&[u8]> = if file.data.is_empty() {
                    vec![&[]]
                } else {
                    file.data.chunks(TENSORBOARD_CHUNK).collect()
                };
                for chunk in chunks {
                    let message = pb::ExportTensorboardResponse {
                        path: file.path.clone(),
                        data: chunk.to_vec(),
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
        });
        ok(stream)
    }

    type ExportMetricsCsvStream = ResponseStream<pb::ExportMetricsCsvResponse>;

    async fn export_metrics_csv(
        &self,
        request: Request<pb::ExportMetricsCsvRequest>,
    ) -> Result<Response<Self::ExportMetricsCsvStream>, Status> {
        let experiment_id = self
            .store
            .existing_experiment(&request.into_inner().experiment_id)?;
        let store = Arc::clone(&self.store);
        let stream = spawn_stream(move |sender| async move {
            let mut export = match store.export_csv(&experiment_id) {
                Ok(export) => export,
                Err(error) => {
                    let _ = sender.send(Err(error.into())).await;
                    return;
                }
            };
            loop {
                let message = match export.next_chunk() {
                    Ok(Some(data)) => Ok(pb::ExportMetricsCsvResponse { data }),
                    Ok(None) => return,
                    Err(error) => Err(Status::from(error)),
                };
                let failed = message.is_err();
                if sender.send(message).await.is_err() || failed {
                    return;
                }
            }
        });
        ok(stream)
    }
}

/// Says how much of a client stream was stored before it failed.
fn with_progress(status: Status, written: &pb::AppendMetricsResponse) -> Status {
    Status::new(
        status.code(),
        format!(
            "{} ({} batches with {} points before it were stored durably; resend from the next batch)",
            status.message(),
            written.batches_written,
            written.points_written
        ),
    )
}
