//! evaluator-svc: a candidate trained over several seeds through sandbox-svc and judged with
//! honest statistics — confidence intervals, a one-sided t-test of the goal, Welch's t-test
//! between candidates, Holm–Bonferroni across an experiment's candidates — with every trial,
//! metric series and evaluation recorded in registry-svc as it happens.
//!
//! - [`stats`], [`decision`]: the formulas (checked against SciPy) and the goal decision.
//! - [`plan`]: an `EvaluateRequest` checked into seeds, rounds, goal and policies.
//! - [`evaluation`], [`seed`]: the orchestration of one evaluation and of one seed.
//! - [`pruning`]: early stopping against the experiment's other candidates.
//! - [`report`], [`queries`]: results and records; GetEvaluation, Compare, AssessExperiment.
//! - [`ledger`], [`peers`]: registry records; the peers' clients and the retry rule.
//! - [`grpc`], [`error`], [`config`]: the tonic adapter, the error model and its one map to
//!   statuses, and the configuration.

pub mod config;
pub mod decision;
pub mod error;
pub mod evaluation;
pub mod grpc;
pub mod ledger;
pub mod peers;
pub mod plan;
pub mod pruning;
pub mod queries;
pub mod report;
pub mod seed;
pub mod stats;

use ra_proto::service_names;
use ra_serve::{GrpcServer, ServeError, Shutdown};
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use config::{EvaluatorConfig, EvaluatorSettings};
pub use evaluation::Evaluator;

/// Why the evaluator could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("evaluator configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Serves the evaluator on `listener` until `shutdown` triggers.
pub async fn run(
    config: &EvaluatorConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let settings = &config.evaluator;
    tracing::info!(
        registry = %settings.registry_url,
        sandbox = %settings.sandbox_url,
        dataset = %settings.dataset_url,
        "evaluator service starting"
    );
    let credentials = config
        .server
        .client_credentials()
        .map_err(RunError::Config)?;
    let evaluator = Evaluator::new(settings.clone(), &credentials).map_err(RunError::Config)?;
    let service = grpc::EvaluatorGrpc::new(evaluator, config.server.max_message_bytes);
    let server = GrpcServer::new(
        Routes::new(service.into_server()),
        &[service_names::EVALUATOR],
    )
    .await;
    // SERVING only while the registry, the sandbox and dataset-svc answer.
    let peers = vec![
        ra_serve::Peer {
            name: "registry-svc",
            url: settings.registry_url.clone(),
            service: service_names::REGISTRY,
        },
        ra_serve::Peer {
            name: "sandbox-svc",
            url: settings.sandbox_url.clone(),
            service: service_names::SANDBOX,
        },
        ra_serve::Peer {
            name: "dataset-svc",
            url: settings.dataset_url.clone(),
            service: service_names::DATASET,
        },
    ];
    let watch = ra_serve::watch_peers(
        server.health(),
        peers,
        credentials,
        std::time::Duration::from_secs(5),
        shutdown.clone(),
    );
    let result = server.serve(listener, &config.server, shutdown).await;
    watch.abort();
    Ok(result?)
}
