//! The services the planner calls: registry (through [`Records`]), evaluator, dataset and
//! sandbox, lazily connected, with evaluator-svc's bounded-retry rule.

use std::time::Duration;

use evaluator_svc::EvaluatorSettings;
use evaluator_svc::ledger::Ledger;
use evaluator_svc::peers::Peers;
use ra_proto::evaluator::v1::evaluator_service_client::EvaluatorServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::config::PlannerSettings;
use crate::records::Records;

/// Largest message read from a peer.
const MAX_DECODING_BYTES: usize = 64 * 1024 * 1024;

/// Clients of the planner's peers; cheap to clone.
#[derive(Clone)]
pub struct Clients {
    pub records: Records,
    /// registry, sandbox and dataset clients and the retry rule.
    pub peers: Peers,
    pub evaluator: EvaluatorServiceClient<Channel>,
    pub evaluator_name: String,
}

impl Clients {
    pub fn connect_lazy(settings: &PlannerSettings) -> Result<Self, String> {
        let peers = Peers::connect_lazy(&EvaluatorSettings {
            registry_url: settings.registry_url.clone(),
            sandbox_url: settings.sandbox_url.clone(),
            dataset_url: settings.dataset_url.clone(),
            retry: settings.retry.clone(),
            ..EvaluatorSettings::default()
        })
        .map_err(|error| error.replace("evaluator.", "planner."))?;
        let evaluator = Endpoint::from_shared(settings.evaluator_url.clone())
            .map_err(|error| {
                format!(
                    "planner.evaluator_url = {:?}: {error}",
                    settings.evaluator_url
                )
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            records: Records::new(Ledger::new(peers.clone())),
            peers,
            evaluator: EvaluatorServiceClient::new(evaluator)
                .max_decoding_message_size(MAX_DECODING_BYTES),
            evaluator_name: format!("evaluator-svc at {}", settings.evaluator_url),
        })
    }
}
