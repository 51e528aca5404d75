//! The tonic adapter of PlannerService: each RPC handed to [`Planner`]; WatchResearch replays
//! a session's event log from the requested position and follows it until the session ends.

use std::pin::Pin;

use async_stream::stream;
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_server::{PlannerService, PlannerServiceServer};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::error::PlannerError;
use crate::planner::Planner;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ResearchEvent, Status>> + Send + 'static>>;

#[derive(Clone)]
pub struct PlannerGrpc {
    planner: Planner,
    max_message_bytes: usize,
}

impl PlannerGrpc {
    pub fn new(planner: Planner, max_message_bytes: usize) -> Self {
        Self {
            planner,
            max_message_bytes,
        }
    }

    pub fn into_server(self) -> PlannerServiceServer<Self> {
        let limit = self.max_message_bytes;
        PlannerServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

/// The authenticated identity of a request's caller (ra-serve's gate), if any.
fn caller<T>(request: &Request<T>) -> Option<String> {
    request
        .extensions()
        .get::<ra_serve::auth::Caller>()
        .map(|caller| caller.0.clone())
}

#[tonic::async_trait]
impl PlannerService for PlannerGrpc {
    async fn parse_goal(
        &self,
        request: Request<pb::ParseGoalRequest>,
    ) -> Result<Response<ra_proto::common::v1::ResearchGoal>, Status> {
        self.planner
            .parse_goal(&request.into_inner().text)
            .await
            .map(Response::new)
            .map_err(PlannerError::into_status)
    }

    async fn start_research(
        &self,
        request: Request<pb::StartResearchRequest>,
    ) -> Result<Response<pb::ResearchStatus>, Status> {
        self.planner
            .start(request.into_inner())
            .await
            .map(Response::new)
            .map_err(PlannerError::into_status)
    }

    type WatchResearchStream = EventStream;

    async fn watch_research(
        &self,
        request: Request<pb::WatchResearchRequest>,
    ) -> Result<Response<Self::WatchResearchStream>, Status> {
        let request = request.into_inner();
        let handle = self.planner.watch(&request.research_id).await?;
        let mut position = request.from_position;
        let mut written = handle.subscribe();
        let events = stream! {
            loop {
                let (events, finished) = handle.events_after(position);
                for event in events {
                    position = event.position;
                    yield Ok::<_, Status>(event);
                }
                if finished {
                    break;
                }
                if written.changed().await.is_err() {
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(events)))
    }

    async fn get_research(
        &self,
        request: Request<pb::GetResearchRequest>,
    ) -> Result<Response<pb::ResearchStatus>, Status> {
        self.planner
            .get(&request.into_inner().research_id)
            .await
            .map(Response::new)
            .map_err(PlannerError::into_status)
    }

    async fn stop_research(
        &self,
        request: Request<pb::StopResearchRequest>,
    ) -> Result<Response<pb::ResearchStatus>, Status> {
        let request = request.into_inner();
        self.planner
            .stop(&request.research_id, &request.reason)
            .await
            .map(Response::new)
            .map_err(PlannerError::into_status)
    }

    async fn resume_research(
        &self,
        request: Request<pb::ResumeResearchRequest>,
    ) -> Result<Response<pb::ResearchStatus>, Status> {
        self.planner
            .resume(&request.into_inner().research_id)
            .await
            .map(Response::new)
            .map_err(PlannerError::into_status)
    }

    async fn inject_candidate(
        &self,
        request: Request<pb::InjectCandidateRequest>,
    ) -> Result<Response<pb::InjectCandidateResponse>, Status> {
        let caller = caller(&request);
        self.planner
            .inject(request.into_inner(), caller.as_deref())
            .await
            .map(Response::new)
            .map_err(PlannerError::into_status)
    }

    async fn update_budget(
        &self,
        request: Request<pb::UpdateBudgetRequest>,
    ) -> Result<Response<pb::ResearchStatus>, Status> {
        let caller = caller(&request);
        self.planner
            .update_budget(request.into_inner(), caller.as_deref())
            .await
            .map(Response::new)
            .map_err(PlannerError::into_status)
    }

    async fn propose_candidates(
        &self,
        request: Request<pb::ProposeCandidatesRequest>,
    ) -> Result<Response<pb::ProposeCandidatesResponse>, Status> {
        self.planner
            .propose(request.into_inner())
            .await
            .map(Response::new)
            .map_err(PlannerError::into_status)
    }
}
