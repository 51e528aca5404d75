//! What every service binary's `main` does once its flags are parsed: load and validate the
//! configuration, start tracing, bind, and serve until SIGTERM/SIGINT.

use std::future::Future;

use tokio::net::TcpListener;

use crate::args::ServiceArgs;
use crate::config::{ConfigError, ServiceConfig, load_config};
use crate::shutdown::{Shutdown, shutdown_signal};

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bind(std::io::Error),
    #[error("{service} stopped with an error: {error}")]
    Service {
        service: &'static str,
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Loads `defaults` layered with the file, `RA_*` environment and `args`, starts tracing, binds
/// the configured address and runs `serve` on it with a shutdown token that SIGTERM/SIGINT
/// triggers.
pub async fn serve_binary<C, F, Fut, E>(
    service: &'static str,
    defaults: C,
    args: &ServiceArgs,
    serve: F,
) -> Result<(), BinaryError>
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let config = load_config(defaults, args, std::env::vars())?;
    let server = config.server();
    crate::telemetry::init_tracing(server.log_format, &server.log_filter);
    let listener = crate::server::bind(server)
        .await
        .map_err(BinaryError::Bind)?;
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.trigger();
    });
    serve(config, listener, shutdown)
        .await
        .map_err(|error| BinaryError::Service {
            service,
            error: Box::new(error),
        })
}
