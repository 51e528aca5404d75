//! The services the evaluator calls (registry, sandbox, dataset) and the one retry rule for
//! all of them: a call that finds its peer unreachable is tried again with exponential backoff
//! a bounded number of times, then answers UNAVAILABLE naming the peer, the tries and the last
//! error.

use std::future::Future;
use std::time::Duration;

use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use ra_proto::sandbox::v1::sandbox_service_client::SandboxServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::config::{EvaluatorSettings, RetrySettings};

/// Largest message read from a peer (registry pages, sandbox results).
const MAX_DECODING_BYTES: usize = 64 * 1024 * 1024;

/// Clients of the three peers; cheap to clone (channels are shared).
#[derive(Clone)]
pub struct Peers {
    pub registry: RegistryServiceClient<Channel>,
    pub sandbox: SandboxServiceClient<Channel>,
    pub dataset: DatasetServiceClient<Channel>,
    pub retry: Retry,
    /// "registry-svc at http://…", for messages; likewise the others.
    pub registry_name: String,
    pub sandbox_name: String,
    pub dataset_name: String,
}

impl Peers {
    /// Lazily connected clients: nothing is dialled until the first call, so the evaluator
    /// starts even while a peer is still coming up.
    pub fn connect_lazy(settings: &EvaluatorSettings) -> Result<Self, String> {
        let channel = |name: &str, url: &str| -> Result<Channel, String> {
            Endpoint::from_shared(url.to_owned())
                .map(|endpoint| {
                    endpoint
                        .connect_timeout(Duration::from_secs(5))
                        .tcp_nodelay(true)
                        .connect_lazy()
                })
                .map_err(|error| format!("evaluator.{name} = {url:?}: {error}"))
        };
        Ok(Self {
            registry: RegistryServiceClient::new(channel("registry_url", &settings.registry_url)?)
                .max_decoding_message_size(MAX_DECODING_BYTES),
            sandbox: SandboxServiceClient::new(channel("sandbox_url", &settings.sandbox_url)?)
                .max_decoding_message_size(MAX_DECODING_BYTES),
            dataset: DatasetServiceClient::new(channel("dataset_url", &settings.dataset_url)?)
                .max_decoding_message_size(MAX_DECODING_BYTES),
            retry: Retry::from(&settings.retry),
            registry_name: format!("registry-svc at {}", settings.registry_url),
            sandbox_name: format!("sandbox-svc at {}", settings.sandbox_url),
            dataset_name: format!("dataset-svc at {}", settings.dataset_url),
        })
    }
}

/// The retry rule.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl From<&RetrySettings> for Retry {
    fn from(settings: &RetrySettings) -> Self {
        Self {
            attempts: settings.attempts.max(1),
            initial_backoff: Duration::from_millis(settings.initial_backoff_ms),
            max_backoff: Duration::from_millis(settings.max_backoff_ms),
        }
    }
}

/// Whether a failed call may succeed if simply tried again later.
pub fn is_transient(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
        || (status.code() == Code::Unknown && status.message().contains("transport"))
}

impl Retry {
    /// The backoff before try number `attempt` (1-based; the first try does not wait).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(16);
        (self.initial_backoff * 2u32.pow(doublings)).min(self.max_backoff)
    }

    /// Runs `call` until it succeeds, fails for good, or `attempts` transient failures have
    /// happened; the last then becomes UNAVAILABLE with `peer` and the count in the message.
    pub async fn run<T, F, Fut>(&self, peer: &str, mut call: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            match call().await {
                Err(status) if is_transient(&status) => {
                    if attempt >= self.attempts {
                        return Err(unreachable(peer, attempt, started.elapsed(), &status));
                    }
                    tracing::warn!(peer, attempt, error = %status.message(), "peer call failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }
}

/// The UNAVAILABLE answer after `attempts` tries.
pub fn unreachable(peer: &str, attempts: u32, elapsed: Duration, last: &Status) -> Status {
    if last.code() == Code::ResourceExhausted {
        return Status::resource_exhausted(format!(
            "{peer} stayed busy through {attempts} tries over {:.1} s: {}",
            elapsed.as_secs_f64(),
            last.message()
        ));
    }
    Status::unavailable(format!(
        "{peer} is unreachable: {attempts} tries over {:.1} s failed; last error: {}",
        elapsed.as_secs_f64(),
        last.message()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = Retry {
            attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (2..=6).map(|a| retry.backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 500, 500]);
    }

    #[tokio::test]
    async fn transient_failures_end_in_unavailable() {
        let retry = Retry {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut tries = 0;
        let result: Result<(), Status> = retry
            .run("sandbox-svc at http://x", || {
                tries += 1;
                async { Err(Status::unavailable("connection refused")) }
            })
            .await;
        let status = result.expect_err("never succeeds");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("3 tries"), "{}", status.message());
        assert_eq!(tries, 3);
        let mut tries = 0;
        let result: Result<(), Status> = retry
            .run("registry", || {
                tries += 1;
                async { Err(Status::invalid_argument("bad")) }
            })
            .await;
        assert_eq!(result.expect_err("fails").code(), Code::InvalidArgument);
        assert_eq!(tries, 1, "permanent errors are not retried");
    }
}
