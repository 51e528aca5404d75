//! The services the evaluator calls — registry, sandbox, dataset — as [`ra_client::Peer`]s:
//! one channel policy and one retry rule (ra-client's) for all of them.

use ra_client::{Credentials, DatasetClient, Peer, RegistryClient, Retry, SandboxClient};

use crate::config::EvaluatorSettings;

/// Clients of the three peers; cheap to clone (channels are shared).
#[derive(Debug, Clone)]
pub struct Peers {
    pub registry: Peer<RegistryClient>,
    pub sandbox: Peer<SandboxClient>,
    pub dataset: Peer<DatasetClient>,
}

impl Peers {
    /// Lazily connected clients: nothing is dialled until the first call, so the evaluator
    /// starts even while a peer is still coming up.
    pub fn connect_lazy(
        settings: &EvaluatorSettings,
        credentials: &Credentials,
    ) -> Result<Self, ra_client::ChannelError> {
        let retry = Retry::from(&settings.retry);
        Ok(Self {
            registry: ra_client::registry_with(
                "evaluator.registry_url",
                &settings.registry_url,
                credentials,
            )?
            .with_retry(retry),
            sandbox: ra_client::sandbox_with(
                "evaluator.sandbox_url",
                &settings.sandbox_url,
                credentials,
            )?
            .with_retry(retry),
            dataset: ra_client::dataset_with(
                "evaluator.dataset_url",
                &settings.dataset_url,
                credentials,
            )?
            .with_retry(retry),
        })
    }
}
