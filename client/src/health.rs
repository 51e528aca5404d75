//! Health checks of a peer (`grpc.health.v1`) and the one wait-for-SERVING loop that the CLI,
//! the embedded stack and the tests share.

use std::future::Future;
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long one health question may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The health of `service` at `endpoint` as it answered; `Err` says why it could not be asked.
pub async fn check(endpoint: &str, service: &str) -> Result<ServingStatus, String> {
    check_with(endpoint, service, &crate::Credentials::none()).await
}

/// [`check`] over TLS where `endpoint` is `https://` (health needs no token).
pub async fn check_with(
    endpoint: &str,
    service: &str,
    credentials: &crate::Credentials,
) -> Result<ServingStatus, String> {
    let ask = async {
        let channel = crate::channel::policy_endpoint("endpoint", endpoint, credentials)
            .map_err(|e| e.to_string())?
            .connect_timeout(CHECK_TIMEOUT)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|s| format!("{endpoint} answered {:?}: {}", s.code(), s.message()))?;
        Ok(response.into_inner().status())
    };
    tokio::time::timeout(CHECK_TIMEOUT * 2, ask)
        .await
        .map_err(|_| format!("{endpoint} did not answer a health check in time"))?
}

/// Why a wait for SERVING ended without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("{service} at {endpoint} was not SERVING after {waited:?}; last answer: {last}")]
    TimedOut {
        service: String,
        endpoint: String,
        waited: Duration,
        last: String,
    },
    #[error("{0}")]
    GaveUp(String),
}

/// Polls `service` at `endpoint` every `poll` until it answers SERVING, at most `timeout`.
/// After each answer that is not SERVING, `give_up(answer)` may end the wait at once with a
/// reason (the server task died; the sandbox said it can never serve).
pub async fn wait_serving<F, Fut>(
    endpoint: &str,
    service: &str,
    timeout: Duration,
    poll: Duration,
    mut give_up: F,
) -> Result<(), WaitError>
where
    F: FnMut(Result<ServingStatus, String>) -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answer = check(endpoint, service).await;
        if answer == Ok(ServingStatus::Serving) {
            return Ok(());
        }
        let last = match &answer {
            Ok(status) => status.as_str_name().to_owned(),
            Err(why) => why.clone(),
        };
        if let Some(why) = give_up(answer).await {
            return Err(WaitError::GaveUp(why));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(WaitError::TimedOut {
                service: service.to_owned(),
                endpoint: endpoint.to_owned(),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_on_nothing_times_out_or_gives_up_with_the_reason() {
        // A port nobody listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let timed_out = wait_serving(
            &endpoint,
            "x.v1.X",
            Duration::from_millis(50),
            Duration::from_millis(10),
            |_| async { None },
        )
        .await
        .expect_err("nothing serves");
        assert!(
            matches!(timed_out, WaitError::TimedOut { .. }),
            "{timed_out}"
        );
        assert!(
            timed_out.to_string().contains("cannot connect"),
            "{timed_out}"
        );
        let gave_up = wait_serving(
            &endpoint,
            "x.v1.X",
            Duration::from_secs(30),
            Duration::from_millis(10),
            |_| async { Some("the server task ended".to_owned()) },
        )
        .await
        .expect_err("gave up");
        assert_eq!(
            gave_up,
            WaitError::GaveUp("the server task ended".to_owned())
        );
    }
}
