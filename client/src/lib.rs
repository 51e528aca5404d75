//! How Research Agent's services and tools talk to each other: typed clients over `ra-proto`
//! with one channel policy ([`channel`]), bounded retries with backoff for transient failures
//! only ([`retry`]), machine-readable refusal reasons carried as `google.rpc.ErrorInfo`
//! ([`reason`]), record ids ([`ids`]), paging ([`Peer::all_pages`]), health checks and waits
//! ([`health`]), and the goal rules the planner and the evaluator share ([`goal`]).
//!
//! Services meet only through `proto/` and this crate; no service links another.

pub mod channel;
pub mod goal;
pub mod health;
pub mod ids;
mod peer;
pub mod reason;
mod registry;
pub mod retry;
pub mod strategy;

pub use channel::{ChannelError, lazy_channel, validate_url};
pub use peer::{PAGE, Peer};
pub use retry::{Retry, RetrySettings};

use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_proto::evaluator::v1::evaluator_service_client::EvaluatorServiceClient;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use ra_proto::sandbox::v1::sandbox_service_client::SandboxServiceClient;
use tonic::transport::Channel;

pub type RegistryClient = RegistryServiceClient<Channel>;
pub type DatasetClient = DatasetServiceClient<Channel>;
pub type SandboxClient = SandboxServiceClient<Channel>;
pub type EvaluatorClient = EvaluatorServiceClient<Channel>;
pub type PlannerClient = PlannerServiceClient<Channel>;

/// The conventional ports, one per service (what each service's `DEFAULT_PORT` is).
pub mod ports {
    pub const PLANNER: u16 = 50051;
    pub const EVALUATOR: u16 = 50052;
    pub const SANDBOX: u16 = 50053;
    pub const DATASET: u16 = 50054;
    pub const REGISTRY: u16 = 50055;

    /// Each service on this machine at its conventional port (the configurations' defaults).
    pub const LOCAL_PLANNER: &str = "http://127.0.0.1:50051";
    pub const LOCAL_EVALUATOR: &str = "http://127.0.0.1:50052";
    pub const LOCAL_SANDBOX: &str = "http://127.0.0.1:50053";
    pub const LOCAL_DATASET: &str = "http://127.0.0.1:50054";
    pub const LOCAL_REGISTRY: &str = "http://127.0.0.1:50055";

    #[cfg(test)]
    mod tests {
        #[test]
        fn local_urls_use_the_conventional_ports() {
            for (url, port) in [
                (super::LOCAL_PLANNER, super::PLANNER),
                (super::LOCAL_EVALUATOR, super::EVALUATOR),
                (super::LOCAL_SANDBOX, super::SANDBOX),
                (super::LOCAL_DATASET, super::DATASET),
                (super::LOCAL_REGISTRY, super::REGISTRY),
            ] {
                assert_eq!(url, format!("http://127.0.0.1:{port}"));
            }
        }
    }
}

/// A client of `url` under the channel policy; `field` names the setting in errors.
macro_rules! connector {
    ($name:ident, $client:ty, $service:literal) => {
        #[doc = concat!("A lazily connected ", $service, " client under the channel policy.")]
        pub fn $name(field: &str, url: &str) -> Result<Peer<$client>, ChannelError> {
            let channel = lazy_channel(field, url)?;
            Ok(Peer::new(
                <$client>::new(channel)
                    .max_decoding_message_size(channel::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(channel::MAX_MESSAGE_BYTES),
                format!(concat!($service, " at {}"), url),
            ))
        }
    };
}

connector!(registry, RegistryClient, "registry-svc");
connector!(dataset, DatasetClient, "dataset-svc");
connector!(sandbox, SandboxClient, "sandbox-svc");
connector!(evaluator, EvaluatorClient, "evaluator-svc");
connector!(planner, PlannerClient, "planner-svc");
