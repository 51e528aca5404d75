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
    #[error("{0}")]
    Probe(String),
    #[error("{service} stopped with an error: {error}")]
    Service {
        service: &'static str,
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The health of the whole server listening on `listen` (an unspecified address is asked on
/// loopback), as `--probe` reports it.
async fn probe(listen: std::net::SocketAddr) -> Result<(), BinaryError> {
    let endpoint = format!("http://{}", probe_address(listen));
    match ra_client::health::check(&endpoint, "").await {
        Ok(ra_client::health::ServingStatus::Serving) => {
            println!("{endpoint}: SERVING");
            Ok(())
        }
        Ok(status) => Err(BinaryError::Probe(format!(
            "{endpoint}: {}",
            status.as_str_name()
        ))),
        Err(why) => Err(BinaryError::Probe(why)),
    }
}

/// Where a probe reaches a server bound to `listen`.
fn probe_address(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, listen.port())
}

/// Loads `defaults` layered with the file, `RA_*` environment and `args`, starts tracing, binds
/// the configured address and runs `serve` on it with a shutdown token that SIGTERM/SIGINT
/// triggers. With `--probe` it asks the running server for its health instead.
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
    if args.probe {
        let address = match (server.health_listen, server.tls.enabled()) {
            (Some(health), _) => health,
            (None, false) => server.listen,
            (None, true) => {
                return Err(BinaryError::Probe(
                    "server.tls is on: --probe asks the plaintext server.health_listen, which is not set".into(),
                ));
            }
        };
        return probe(address).await;
    }
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

#[cfg(test)]
mod tests {
    use super::probe_address;

    #[test]
    fn a_probe_asks_loopback_for_an_unspecified_address() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().expect("an address");
        assert_eq!(probe_address(at("0.0.0.0:50055")), at("127.0.0.1:50055"));
        assert_eq!(probe_address(at("[::]:50051")), at("[::1]:50051"));
        assert_eq!(probe_address(at("10.1.2.3:7")), at("10.1.2.3:7"));
    }
}
