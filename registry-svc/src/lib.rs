//! registry-svc: Research Agent's system of record, on sled.
//!
//! - [`store`]: opening, format version, atomic serialised writes with event positions,
//!   durable acknowledgement ([`durability`]: group commit), paging.
//! - [`records`]: experiments, candidates, trials, decisions, evaluations.
//! - [`metrics`]: metric series; [`artifacts`]: content-addressed files; [`export`]: JSON, CSV;
//!   [`tensorboard`]: TensorBoard event files (scalars and HParams).
//! - [`keys`]: the key layout; [`ids`]: typed UUIDv7 ids; [`validate`]: field rules;
//!   [`schema`]: reflection over the contracts.
//! - [`grpc`]: the thin tonic adapter; [`config`]: the service configuration.
//!
//! [`run`] serves the registry on an already-bound listener until shutdown, then flushes.

pub mod artifacts;
pub mod config;
pub mod durability;
pub mod error;
pub mod export;
pub mod grpc;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod records;
pub mod schema;
pub mod store;
pub mod tensorboard;
pub mod validate;

use std::sync::Arc;

use ra_proto::service_names;
use ra_serve::server::GrpcServer;
use ra_serve::{ServeError, Shutdown};
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use config::RegistryConfig;
pub use error::{RegistryError, Result};
pub use store::{STORE_FORMAT_VERSION, Store, StoreSettings};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot open the registry store: {0}")]
    Store(#[from] RegistryError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Opens the store, serves on `listener` until `shutdown` triggers, then flushes the store.
pub async fn run(
    config: &RegistryConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let store = Arc::new(Store::open(config.store.clone())?);
    tracing::info!(path = %store.path().display(), "registry store open");
    let service = grpc::RegistryGrpc::new(
        Arc::clone(&store),
        shutdown.clone(),
        config.server.max_message_bytes,
    );
    let server = GrpcServer::new(
        Routes::new(service.into_server()),
        &[service_names::REGISTRY],
    )
    .await;
    server.health().set_serving().await;
    let served = server.serve(listener, &config.server, shutdown).await;
    store.close().await?;
    tracing::info!("registry store flushed and closed");
    if let Err(still_shared) = Arc::try_unwrap(store) {
        tracing::warn!(
            handles = Arc::strong_count(&still_shared),
            "store still referenced by finishing tasks"
        );
    }
    Ok(served?)
}
