//! How Research Agent's services and tools talk to each other: typed clients over `ra-proto`
//! with one channel policy ([`channel`]), bounded retries with backoff for transient failures
//! only ([`retry`]), machine-readable refusal reasons carried as `google.rpc.ErrorInfo`
//! ([`reason`]), record ids ([`ids`]), paging ([`Peer::all_pages`]), health checks and waits
//! ([`health`]), the goal rules the planner and the evaluator share ([`goal`]), and the names of
//! researchers' own datasets ([`local_data`]).
//!
//! Services meet only through `proto/` and this crate; no service links another.

pub mod channel;
pub mod credentials;
pub mod goal;
pub mod health;
pub mod ids;
pub mod local_data;
mod peer;
pub mod reason;
mod registry;
pub mod retry;
pub mod strategy;

pub use channel::{ChannelError, lazy_channel, validate_url};
pub use credentials::{Bearer, ClientSettings, Credentials};
pub use peer::{PAGE, Peer};
pub use retry::{Retry, RetrySettings};

use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_proto::evaluator::v1::evaluator_service_client::EvaluatorServiceClient;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use ra_proto::sandbox::v1::sandbox_service_client::SandboxServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// What every client sends through: the channel, with the bearer token (if any) added.
pub type Transport = InterceptedService<Channel, Bearer>;
pub type RegistryClient = RegistryServiceClient<Transport>;
pub type DatasetClient = DatasetServiceClient<Transport>;
pub type SandboxClient = SandboxServiceClient<Transport>;
pub type EvaluatorClient = EvaluatorServiceClient<Transport>;
pub type PlannerClient = PlannerServiceClient<Transport>;

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
    ($name:ident, $with:ident, $client:ty, $service:literal) => {
        #[doc = concat!("A lazily connected ", $service, " client under the channel policy, without credentials.")]
        pub fn $name(field: &str, url: &str) -> Result<Peer<$client>, ChannelError> {
            $with(field, url, &Credentials::none())
        }

        #[doc = concat!("A lazily connected ", $service, " client presenting `credentials`.")]
        pub fn $with(
            field: &str,
            url: &str,
            credentials: &Credentials,
        ) -> Result<Peer<$client>, ChannelError> {
            let channel = lazy_channel(field, url, credentials)?;
            Ok(Peer::new(
                <$client>::new(InterceptedService::new(channel, credentials.bearer()))
                    .max_decoding_message_size(channel::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(channel::MAX_MESSAGE_BYTES),
                format!(concat!($service, " at {}"), url),
            ))
        }
    };
}

connector!(registry, registry_with, RegistryClient, "registry-svc");
connector!(dataset, dataset_with, DatasetClient, "dataset-svc");
connector!(sandbox, sandbox_with, SandboxClient, "sandbox-svc");
connector!(evaluator, evaluator_with, EvaluatorClient, "evaluator-svc");
connector!(planner, planner_with, PlannerClient, "planner-svc");
