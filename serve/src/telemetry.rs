//! Tracing set-up: text for people, JSON for collectors; `RUST_LOG` overrides the filter.

use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

/// Installs the global subscriber. A second call (tests starting several services) is a no-op.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An already installed subscriber is fine: the first one wins.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
