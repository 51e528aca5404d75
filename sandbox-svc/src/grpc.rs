//! The thin tonic adapter: requests converted and checked, the work done by [`Jobs`], errors
//! mapped once in `From<JobsError> for Status`. RunJob cancels its job when the caller goes
//! away; WatchJob replays a job's events from the start and follows it live.

use std::pin::Pin;
use std::sync::Arc;

use ra_proto::sandbox::v1 as pb;
use ra_proto::sandbox::v1::sandbox_service_server::{SandboxService, SandboxServiceServer};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::convert::{
    event_to_proto, job_from_proto, report_to_proto, state_from_proto, status_to_proto,
};
use crate::jobs::{JobEntry, Jobs, JobsError};

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::JobEvent, Status>> + Send + 'static>>;

/// Largest ListJobs page.
const MAX_PAGE: usize = 1_000;
const DEFAULT_PAGE: usize = 100;

#[derive(Debug, Clone)]
pub struct SandboxGrpc {
    jobs: Jobs,
    max_message_bytes: usize,
}

impl SandboxGrpc {
    pub fn new(jobs: Jobs, max_message_bytes: usize) -> Self {
        Self {
            jobs,
            max_message_bytes,
        }
    }

    pub fn into_server(self) -> SandboxServiceServer<Self> {
        let limit = self.max_message_bytes;
        SandboxServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }

    fn submit(&self, job: Option<&pb::JobSpec>, job_id: &str) -> Result<Arc<JobEntry>, Status> {
        let (parsed, backend) = job_from_proto(job).map_err(Status::invalid_argument)?;
        let labels = job
            .map(|j| j.labels.clone().into_iter().collect())
            .unwrap_or_default();
        if job.is_some_and(|j| !j.artifact_trial_id.is_empty()) {
            return Err(Status::unimplemented(
                "job.artifact_trial_id: uploading outputs to the registry is not implemented yet; the outputs' host paths are in the result",
            ));
        }
        let id = (!job_id.is_empty()).then(|| job_id.to_owned());
        Ok(self.jobs.submit(id, parsed, backend, labels)?)
    }
}

impl From<JobsError> for Status {
    fn from(error: JobsError) -> Self {
        let message = error.to_string();
        match error {
            JobsError::BadId(_) | JobsError::Invalid(_) => Status::invalid_argument(message),
            JobsError::Conflict(_) => Status::already_exists(message),
            JobsError::QueueFull(_) => Status::resource_exhausted(message),
            JobsError::NotFound(_) => Status::not_found(message),
            JobsError::BackendUnavailable(_) | JobsError::DeviceUnavailable(_) => {
                Status::failed_precondition(message)
            }
        }
    }
}

/// Cancels the job when the RunJob stream is dropped before the job finished.
struct CancelOnDrop(Option<Arc<JobEntry>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(entry) = self.0.take()
            && !entry.is_finished()
        {
            tracing::info!(job = %entry.id, "the RunJob caller went away; cancelling");
            entry.cancel();
        }
    }
}

/// The job's events from the first, then live until it finishes.
fn follow(entry: Arc<JobEntry>, cancel_on_drop: bool) -> EventStream {
    Box::pin(async_stream::stream! {
        let _guard = CancelOnDrop(cancel_on_drop.then(|| entry.clone()));
        let mut seen = 0usize;
        loop {
            let (events, finished) = entry.events_since(seen);
            seen += events.len();
            for event in &events {
                yield Ok(event_to_proto(&entry.id, event));
            }
            if finished && events.is_empty() {
                break;
            }
            if !finished {
                entry.wait_beyond(seen).await;
            }
        }
    })
}

#[tonic::async_trait]
impl SandboxService for SandboxGrpc {
    async fn validate_job(
        &self,
        request: Request<pb::ValidateJobRequest>,
    ) -> Result<Response<pb::ValidationReport>, Status> {
        let (mut job, backend) =
            job_from_proto(request.get_ref().job.as_ref()).map_err(Status::invalid_argument)?;
        let validation = self.jobs.executor().validate(&job);
        let mut report = report_to_proto(&validation);
        // A job that passes the checks is told the device it would run on, or refused the
        // one its backend lacks, as SubmitJob would.
        if validation.ok() {
            self.jobs.resolve_device(&mut job, backend)?;
            if let crate::job::JobKind::Train(train) = &job.kind {
                report.device = train.device.clone();
            }
        }
        Ok(Response::new(report))
    }

    async fn get_capabilities(
        &self,
        _: Request<pb::GetCapabilitiesRequest>,
    ) -> Result<Response<pb::Capabilities>, Status> {
        Ok(Response::new(crate::convert::capabilities_to_proto(
            self.jobs.executor(),
        )))
    }

    type RunJobStream = EventStream;

    async fn run_job(
        &self,
        request: Request<pb::RunJobRequest>,
    ) -> Result<Response<Self::RunJobStream>, Status> {
        let request = request.into_inner();
        let entry = self.submit(request.job.as_ref(), &request.job_id)?;
        Ok(Response::new(follow(entry, true)))
    }

    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        let request = request.into_inner();
        let entry = self.submit(request.job.as_ref(), &request.job_id)?;
        let (entry, position) = self.jobs.get(&entry.id)?;
        Ok(Response::new(status_to_proto(
            &entry,
            &entry.snapshot(position),
        )))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        let (entry, position) = self.jobs.get(&request.get_ref().job_id)?;
        Ok(Response::new(status_to_proto(
            &entry,
            &entry.snapshot(position),
        )))
    }

    type WatchJobStream = EventStream;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let (entry, _) = self.jobs.get(&request.get_ref().job_id)?;
        Ok(Response::new(follow(entry, false)))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        let request = request.into_inner();
        let (entry, _) = self.jobs.get(&request.job_id)?;
        tracing::info!(job = %entry.id, reason = %request.reason, "cancel requested");
        entry.cancel();
        // Wait (briefly) for the job to end so that the answer shows its final state.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !entry.is_finished() && tokio::time::Instant::now() < deadline {
            let seen = entry.events_since(0).0.len();
            let _ = tokio::time::timeout_at(deadline, entry.wait_beyond(seen)).await;
        }
        let (entry, position) = self.jobs.get(&request.job_id)?;
        Ok(Response::new(status_to_proto(
            &entry,
            &entry.snapshot(position),
        )))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let request = request.into_inner();
        let state = state_from_proto(request.state).map_err(Status::invalid_argument)?;
        let size = match request.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let start: usize = if request.page_token.is_empty() {
            0
        } else {
            request.page_token.parse().map_err(|_| {
                Status::invalid_argument(format!(
                    "page_token {:?} is not one this service gave out",
                    request.page_token
                ))
            })?
        };
        let all = self.jobs.list(state);
        let page: Vec<pb::JobStatus> = all
            .iter()
            .skip(start)
            .take(size)
            .map(|(entry, position)| status_to_proto(entry, &entry.snapshot(*position)))
            .collect();
        let next = start + page.len();
        Ok(Response::new(pb::ListJobsResponse {
            jobs: page,
            next_page_token: if next < all.len() {
                next.to_string()
            } else {
                String::new()
            },
        }))
    }
}
