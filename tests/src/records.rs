//! A session's records read back from registry-svc in one go (what the session tests compare
//! against), and a planner session followed to its end.

use std::time::Duration;

use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::transport::Channel;

/// Every record of one experiment (up to 1000 of each kind).
#[derive(Debug, Clone)]
pub struct SessionRecords {
    pub experiment: reg::Experiment,
    pub candidates: Vec<reg::Candidate>,
    pub trials: Vec<reg::Trial>,
    pub evaluations: Vec<reg::Evaluation>,
    pub decisions: Vec<reg::Decision>,
}

impl SessionRecords {
    pub async fn read(registry: &mut RegistryServiceClient<Channel>, id: &str) -> Self {
        let experiment = registry
            .get_experiment(reg::GetExperimentRequest { id: id.into() })
            .await
            .expect("GetExperiment")
            .into_inner();
        let candidates = registry
            .list_candidates(reg::ListCandidatesRequest {
                experiment_id: id.into(),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("ListCandidates")
            .into_inner()
            .candidates;
        let trials = registry
            .list_trials(reg::ListTrialsRequest {
                experiment_id: id.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("ListTrials")
            .into_inner()
            .trials;
        let evaluations = registry
            .list_evaluations(reg::ListEvaluationsRequest {
                experiment_id: id.into(),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("ListEvaluations")
            .into_inner()
            .evaluations;
        let decisions = registry
            .list_decisions(reg::ListDecisionsRequest {
                experiment_id: id.into(),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("ListDecisions")
            .into_inner()
            .decisions;
        Self {
            experiment,
            candidates,
            trials,
            evaluations,
            decisions,
        }
    }
}

/// Follows a session's events to its end (at most 15 minutes): every event and the final status.
pub async fn watch_to_end(
    planner: &mut PlannerServiceClient<Channel>,
    research_id: &str,
) -> (Vec<pb::ResearchEvent>, pb::ResearchStatus) {
    let mut stream = planner
        .watch_research(pb::WatchResearchRequest {
            research_id: research_id.to_owned(),
            from_position: 0,
        })
        .await
        .expect("WatchResearch")
        .into_inner();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
    loop {
        let event = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("the session ends within 15 minutes")
            .expect("event stream")
            .expect("the stream ends with a finished event");
        if let Some(pb::research_event::Event::Finished(status)) = &event.event {
            let status = status.clone();
            events.push(event);
            return (events, status);
        }
        events.push(event);
    }
}
