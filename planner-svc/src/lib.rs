//! planner-svc: research sessions — a goal in words turned into a ResearchGoal, candidates
//! proposed by a strategy, validated by the sandbox, evaluated over seeds by evaluator-svc,
//! recorded in registry-svc and decided with Holm–Bonferroni across the session's candidates,
//! until the goal is met or the budget is spent.
//!
//! - [`goal`]: free text parsed into dataset, metric, threshold, direction, seeds, budget and
//!   model family, with a clear error that lists what was understood.
//! - [`space`], [`mutate`], [`strategy`]: search spaces per input kind and the `random` and
//!   `evolution` strategies; [`llm`]: the OpenAI-compatible client of the `llm` strategy;
//!   [`proposer`]: a session's strategy, with the `hybrid` mix and the fallbacks.
//! - [`research`]: the loop of one session; [`session`]: its live status and event log;
//!   [`report`]: the markdown + SVG report.
//! - [`planner`]: the service's logic; [`records`], [`peers`]: registry records and clients;
//!   [`grpc`], [`config`]: the tonic adapter and the configuration.

pub mod config;
pub mod error;
pub mod goal;
pub mod grpc;
pub mod llm;
pub mod mutate;
pub mod peers;
pub mod planner;
pub mod proposer;
pub mod records;
pub mod report;
pub mod research;
pub mod session;
pub mod session_config;
pub mod space;
pub mod strategy;

use ra_proto::service_names;
use ra_serve::{GrpcServer, ServeError, Shutdown};
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use config::{PlannerConfig, PlannerSettings};
pub use goal::{GoalError, ParsedGoal, parse_goal};
pub use planner::Planner;

/// Why the planner could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("planner configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Serves the planner on `listener` until `shutdown` triggers; running sessions are stopped
/// first (they end PAUSED, resumable) and the server drains after them.
pub async fn run(
    config: &PlannerConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let settings = &config.planner;
    tracing::info!(
        registry = %settings.registry_url,
        evaluator = %settings.evaluator_url,
        dataset = %settings.dataset_url,
        sandbox = %settings.sandbox_url,
        "planner service starting"
    );
    let credentials = config
        .server
        .client_credentials()
        .map_err(RunError::Config)?;
    let planner = Planner::new(settings.clone(), &credentials).map_err(RunError::Config)?;
    let service = grpc::PlannerGrpc::new(planner.clone(), config.server.max_message_bytes);
    let server = GrpcServer::new(
        Routes::new(service.into_server()),
        &[service_names::PLANNER],
    )
    .await;
    // SERVING only while every service a session needs answers; NOT_SERVING as soon as a
    // shutdown begins (sessions are being stopped).
    let peers = [
        (
            "registry-svc",
            &settings.registry_url,
            service_names::REGISTRY,
        ),
        (
            "evaluator-svc",
            &settings.evaluator_url,
            service_names::EVALUATOR,
        ),
        ("dataset-svc", &settings.dataset_url, service_names::DATASET),
        ("sandbox-svc", &settings.sandbox_url, service_names::SANDBOX),
    ]
    .map(|(name, url, service)| ra_serve::Peer {
        name,
        url: url.clone(),
        service,
    })
    .to_vec();
    let health = server.health();
    let watch = ra_serve::watch_peers(
        health.clone(),
        peers,
        credentials,
        std::time::Duration::from_secs(5),
        shutdown.clone(),
    );
    let server_shutdown = Shutdown::new();
    let sessions_stopped = tokio::spawn({
        let server_shutdown = server_shutdown.clone();
        async move {
            shutdown.requested().await;
            health.set_draining().await;
            planner.shutdown().await;
            server_shutdown.trigger();
        }
    });
    let served = server
        .serve(listener, &config.server, server_shutdown)
        .await;
    sessions_stopped.abort();
    watch.abort();
    Ok(served?)
}
