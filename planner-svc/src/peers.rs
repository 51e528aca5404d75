//! The services the planner calls — registry (through [`Records`]), evaluator, dataset and
//! sandbox — as lazily connected [`ra_client::Peer`]s with ra-client's channel policy and
//! retry rule.

use ra_client::{DatasetClient, EvaluatorClient, Peer, Retry, SandboxClient};

use crate::config::PlannerSettings;
use crate::records::Records;

/// Clients of the planner's peers; cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    pub records: Records,
    pub evaluator: Peer<EvaluatorClient>,
    pub sandbox: Peer<SandboxClient>,
    pub dataset: Peer<DatasetClient>,
}

impl Clients {
    pub fn connect_lazy(settings: &PlannerSettings) -> Result<Self, ra_client::ChannelError> {
        let retry = Retry::from(&settings.retry);
        Ok(Self {
            records: Records::new(
                ra_client::registry("planner.registry_url", &settings.registry_url)?
                    .with_retry(retry),
            ),
            evaluator: ra_client::evaluator("planner.evaluator_url", &settings.evaluator_url)?
                .with_retry(retry),
            sandbox: ra_client::sandbox("planner.sandbox_url", &settings.sandbox_url)?
                .with_retry(retry),
            dataset: ra_client::dataset("planner.dataset_url", &settings.dataset_url)?
                .with_retry(retry),
        })
    }
}
