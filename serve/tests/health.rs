//! The serving layer on a real socket: health starts NOT_SERVING, flips when the service says
//! it is ready, and the server drains and stops on shutdown.

use std::time::Duration;

use ra_serve::{GrpcServer, ServerSettings, Shutdown};
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICE: &str = "ra.registry.v1.RegistryService";

async fn status(
    client: &mut HealthClient<Channel>,
    service: &str,
) -> Result<ServingStatus, tonic::Code> {
    client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|response| response.into_inner().status())
        .map_err(|status| status.code())
}

#[tokio::test]
async fn health_is_not_serving_until_ready_and_the_server_stops_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let mut settings = ServerSettings::with_port(0);
    settings.shutdown_grace_seconds = 2;
    let server = GrpcServer::new(Routes::default(), &[SERVICE]).await;
    let health = server.health();
    let shutdown = Shutdown::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { server.serve(listener, &settings, shutdown).await }
    });

    let channel = loop {
        match Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let mut client = HealthClient::new(channel);
    assert_eq!(
        status(&mut client, SERVICE).await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(status(&mut client, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        status(&mut client, "ra.other.v1.Other").await,
        Err(tonic::Code::NotFound)
    );

    health.set_serving().await;
    assert_eq!(
        status(&mut client, SERVICE).await,
        Ok(ServingStatus::Serving)
    );
    assert_eq!(status(&mut client, "").await, Ok(ServingStatus::Serving));

    shutdown.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;
    stopped
        .expect("server stops within the grace period")
        .expect("join")
        .expect("clean stop");
}
