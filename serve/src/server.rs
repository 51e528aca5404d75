//! Runs a set of tonic services with everything a production gRPC server needs around them:
//! health (per service, NOT_SERVING until ready and again while draining), reflection v1 and
//! v1alpha advertising exactly the served services, one tracing span per request, and a
//! graceful shutdown that lets in-flight requests finish within a grace period.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::ServerSettings;
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot read the listener's address: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Auth(String),
}

/// HTTP/2 flow-control window per stream (the protocol default of 64 KiB throttles a stream of
/// 40 KB metric batches to a few round trips' worth).
pub const HTTP2_STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// HTTP/2 flow-control window per connection, shared by its streams.
pub const HTTP2_CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// The health entries of one server: one per served service, plus the whole-server entry ("").
#[derive(Clone)]
pub struct ServiceHealth {
    reporter: HealthReporter,
    services: Vec<String>,
    /// Set once the server drains: nothing flips it back to SERVING after that.
    draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for ServiceHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHealth")
            .field("services", &self.services)
            .finish()
    }
}

impl ServiceHealth {
    /// Marks every listed service as ready to take requests (not while draining).
    pub async fn set_serving(&self) {
        if !self.is_draining() {
            self.set_all(ServingStatus::Serving).await;
        }
    }

    /// Marks the server as draining: NOT_SERVING from now on.
    pub async fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.set_not_serving().await;
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks every listed service as not ready (start-up, lost dependency, draining).
    pub async fn set_not_serving(&self) {
        self.set_all(ServingStatus::NotServing).await;
    }

    async fn set_all(&self, status: ServingStatus) {
        for name in self.services.iter().map(String::as_str).chain([""]) {
            self.reporter.set_service_status(name, status).await;
        }
    }
}

/// A server under construction: the services it will serve and their health.
pub struct GrpcServer {
    routes: Routes,
    services: Vec<String>,
    health: ServiceHealth,
    /// The health service again, for the plaintext health listener.
    health_service:
        tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("services", &self.services)
            .finish()
    }
}

impl GrpcServer {
    /// Starts with the given services (fully qualified names, for health and reflection), every
    /// one of them NOT_SERVING until [`ServiceHealth::set_serving`] is called.
    pub async fn new(routes: Routes, services: &[&str]) -> Self {
        let reporter = tonic_health::server::HealthReporter::new();
        let health_service = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
        );
        let health = ServiceHealth {
            reporter,
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            draining: std::sync::Arc::default(),
        };
        health.set_not_serving().await;
        Self {
            routes: routes.add_service(health_service.clone()),
            services: health.services.clone(),
            health,
            health_service,
        }
    }

    /// The handle to flip readiness with.
    pub fn health(&self) -> ServiceHealth {
        self.health.clone()
    }

    /// Serves on `listener` until `shutdown` is triggered, then drains: health goes
    /// NOT_SERVING, no new connection is accepted, in-flight requests get
    /// `server.shutdown_grace_seconds` to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        settings: &ServerSettings,
        shutdown: Shutdown,
    ) -> Result<(), ServeError> {
        let gate =
            crate::auth::Gate::new(&settings.tls, &settings.auth).map_err(ServeError::Auth)?;
        let tls = crate::auth::server_tls(&settings.tls).map_err(ServeError::Auth)?;
        let health_server = match settings.health_listen {
            Some(address) => Some(self.serve_health(address, shutdown.clone()).await?),
            None => None,
        };
        let reflection_v1 = reflection_builder(&self.services).build_v1()?;
        let reflection_v1alpha = reflection_builder(&self.services).build_v1alpha()?;
        let routes = self
            .routes
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let local_addr = listener.local_addr()?;
        tracing::info!(
            address = %local_addr,
            services = ?self.services,
            tls = tls.is_some(),
            authentication = gate.is_some(),
            "serving grpc"
        );
        let health = self.health.clone();
        let drain_signal = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.requested().await;
                health.set_draining().await;
                tracing::info!("draining: no new connections, in-flight requests finish");
            }
        };
        // `tcp_nodelay` on the builder only covers sockets tonic accepts itself; these come from
        // our listener, so set it on each: with Nagle on, a response written as two segments
        // waits for the peer's delayed ACK (about 40 ms per call on Linux).
        let incoming = TcpListenerStream::new(listener).map(|accepted| {
            accepted.and_then(|stream| {
                stream.set_nodelay(true)?;
                Ok(stream)
            })
        });
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        let server = builder
            .tcp_nodelay(true)
            // Large windows keep metric and artifact streams from stalling on flow control.
            .initial_stream_window_size(Some(HTTP2_STREAM_WINDOW_BYTES))
            .initial_connection_window_size(Some(HTTP2_CONNECTION_WINDOW_BYTES))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
            // A panic that slips through a handler answers INTERNAL; the server keeps serving.
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_response,
            ))
            // Callers proved and checked before any handler runs (health stays open).
            .layer(crate::auth::GateLayer(gate))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, drain_signal);
        let grace = Duration::from_secs(settings.shutdown_grace_seconds);
        tokio::select! {
            result = server => result?,
            () = async { shutdown.requested().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; dropping the requests still running");
            }
        }
        if let Some(health_server) = health_server {
            health_server.abort();
        }
        tracing::info!(address = %local_addr, "server stopped");
        Ok(())
    }

    /// Serves only `grpc.health.v1`, in plaintext, on `address` until `shutdown`.
    async fn serve_health(
        &self,
        address: std::net::SocketAddr,
        shutdown: Shutdown,
    ) -> Result<tokio::task::JoinHandle<()>, ServeError> {
        let listener = TcpListener::bind(address).await.map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("cannot listen on server.health_listen {address}: {error}"),
            )
        })?;
        tracing::info!(address = %listener.local_addr()?, "serving health checks (plaintext)");
        let service = self.health_service.clone();
        Ok(tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    shutdown.requested().await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the health listener stopped");
            }
        }))
    }
}

/// The answer to a request whose handler panicked: INTERNAL with the panic's message, logged
/// inside the request's span.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> http::Response<String> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(
        panic = detail,
        "a request handler panicked; answered INTERNAL"
    );
    tonic::Status::internal(format!(
        "the service failed while handling this request (a bug; it keeps serving): {detail}"
    ))
    .into_http()
}

/// Reflection over our contracts and health, advertising only the services actually served.
fn reflection_builder(services: &[String]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ra_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection");
    for name in services {
        builder = builder.with_service_name(name.clone());
    }
    builder
}

/// Binds `settings.listen`; a clear message when the port is taken.
pub async fn bind(settings: &ServerSettings) -> std::io::Result<TcpListener> {
    TcpListener::bind(settings.listen).await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot listen on {}: {error}", settings.listen),
        )
    })
}
