//! dashboard-svc: Research Agent's sessions in the browser — server-rendered HTML with inline
//! SVG over the registry's records, live while a session runs, with Welch comparisons and
//! the actions a researcher takes on a running session (through planner-svc).
//!
//! - [`source`]: the services behind the pages (registry, evaluator, planner) and the cache of
//!   [`view::SessionView`]s, each folded from the registry's event stream.
//! - [`pages`]: the HTML; [`charts`]: the SVG charts.
//! - [`http`]: routes, server-sent events, downloads, sign-in and the same-origin rule.
//! - [`config`]: the service configuration; [`error`]: the error pages.
//!
//! [`run`] serves the dashboard on an already-bound listener until shutdown.

pub mod charts;
pub mod config;
pub mod error;
pub mod http;
pub mod pages;
pub mod source;
pub mod view;

use std::sync::Arc;

use ra_serve::Shutdown;
use tokio::net::TcpListener;

pub use config::{DashboardConfig, DashboardSettings};
pub use error::DashboardError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("dashboard configuration: {0}")]
    Config(String),
    #[error("serving the dashboard: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the dashboard on `listener` until `shutdown` triggers.
pub async fn run(
    config: &DashboardConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let credentials = ra_client::Credentials::from_settings(&config.server.client, "server.client")
        .map_err(RunError::Config)?;
    let services =
        source::Services::connect(&config.dashboard, &credentials).map_err(RunError::Config)?;
    let gate = ra_serve::auth::Gate::new(&config.server.tls, &config.server.auth)
        .map_err(RunError::Config)?;
    let app = http::router(http::AppState {
        services: Arc::new(services),
        gate,
        shutdown: shutdown.clone(),
    });
    if let Ok(address) = listener.local_addr() {
        tracing::info!(url = %format!("http://{address}/"), "dashboard serving");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.requested().await })
        .await?;
    Ok(())
}
