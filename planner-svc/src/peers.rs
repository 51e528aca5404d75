//! The services the planner calls — registry (through [`Records`]), evaluator, dataset and
//! sandbox — as lazily connected [`ra_client::Peer`]s with ra-client's channel policy and
//! retry rule.

use ra_client::{Credentials, DatasetClient, EvaluatorClient, Peer, Retry, SandboxClient};

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
    pub fn connect_lazy(
        settings: &PlannerSettings,
        credentials: &Credentials,
    ) -> Result<Self, ra_client::ChannelError> {
        let retry = Retry::from(&settings.retry);
        Ok(Self {
            records: Records::new(
                ra_client::registry_with(
                    "planner.registry_url",
                    &settings.registry_url,
                    credentials,
                )?
                .with_retry(retry),
            ),
            evaluator: ra_client::evaluator_with(
                "planner.evaluator_url",
                &settings.evaluator_url,
                credentials,
            )?
            .with_retry(retry),
            sandbox: ra_client::sandbox_with(
                "planner.sandbox_url",
                &settings.sandbox_url,
                credentials,
            )?
            .with_retry(retry),
            dataset: ra_client::dataset_with(
                "planner.dataset_url",
                &settings.dataset_url,
                credentials,
            )?
            .with_retry(retry),
        })
    }
}
