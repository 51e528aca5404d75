//! The one retry rule: a call that fails transiently (the peer is unreachable, busy, or the
//! connection broke) is tried again with exponential backoff a bounded number of times, then
//! answers UNAVAILABLE (or RESOURCE_EXHAUSTED) naming the peer, the tries and the last error.
//! What is transient is decided by the status code, the refusal's machine-readable reason and
//! the error's source — never by its message text.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

use crate::reason::{self, Reason};

/// The most tries a configuration may ask for.
pub const MAX_ATTEMPTS: u32 = 100;

/// Bounded retries with exponential backoff for calls to the peers (`[…retry]` sections).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Tries per call before answering UNAVAILABLE (1..=100).
    pub attempts: u32,
    /// Wait before the second try, milliseconds; doubles per try.
    pub initial_backoff_ms: u64,
    /// The longest wait between tries, milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 3_000,
        }
    }
}

impl RetrySettings {
    /// Checks the section; `section` is its name in the configuration ("planner.retry").
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if !(1..=MAX_ATTEMPTS).contains(&self.attempts) {
            return Err(format!(
                "{section}.attempts = {} must be in 1..={MAX_ATTEMPTS}",
                self.attempts
            ));
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return Err(format!(
                "{section}.initial_backoff_ms ({}) must not exceed max_backoff_ms ({})",
                self.initial_backoff_ms, self.max_backoff_ms
            ));
        }
        if self.max_backoff_ms > 600_000 {
            return Err(format!(
                "{section}.max_backoff_ms = {} is over 10 minutes",
                self.max_backoff_ms
            ));
        }
        Ok(())
    }
}

/// The retry rule, from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self::from(&RetrySettings::default())
    }
}

impl From<&RetrySettings> for Retry {
    fn from(settings: &RetrySettings) -> Self {
        Self {
            attempts: settings.attempts.clamp(1, MAX_ATTEMPTS),
            initial_backoff: Duration::from_millis(settings.initial_backoff_ms),
            max_backoff: Duration::from_millis(settings.max_backoff_ms),
        }
    }
}

/// Whether a failed call may succeed if simply tried again later: the peer is unavailable or
/// busy, or the call failed in the transport (its source is a transport or HTTP/2 error), and
/// the peer did not say that trying again cannot help.
pub fn is_transient(status: &Status) -> bool {
    if reason::of(status).is_some_and(|reason| !reason.is_transient()) {
        return false;
    }
    match status.code() {
        Code::Unavailable | Code::ResourceExhausted => true,
        Code::Unknown | Code::Internal | Code::Cancelled => failed_in_transport(status),
        _ => false,
    }
}

/// Whether the status was made from a transport error rather than answered by the peer.
fn failed_in_transport(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::transport::Error>() || error.is::<std::io::Error>() {
            return true;
        }
        source = error.source();
    }
    false
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
        let started = Instant::now();
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

    /// Like [`Retry::run`], also retrying while the peer refuses with `reason` (a refusal that
    /// clears by itself, such as "already being evaluated"), for at most `patience`.
    pub async fn run_while<T, F, Fut>(
        &self,
        peer: &str,
        reason: Reason,
        patience: Duration,
        mut call: F,
    ) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + patience;
        loop {
            match self.run(peer, &mut call).await {
                Err(status) if reason::of(&status) == Some(reason) && Instant::now() < deadline => {
                    tracing::info!(
                        peer,
                        reason = reason.as_str(),
                        "peer refused for now; waiting"
                    );
                    tokio::time::sleep(self.initial_backoff.max(Duration::from_millis(100))).await;
                }
                other => return other,
            }
        }
    }
}

/// The answer after `attempts` tries that all failed transiently.
pub fn unreachable(peer: &str, attempts: u32, elapsed: Duration, last: &Status) -> Status {
    if last.code() == Code::ResourceExhausted {
        return Status::resource_exhausted(format!(
            "{peer} stayed busy through {attempts} tries over {:.1} s: {}",
            elapsed.as_secs_f64(),
            last.message()
        ));
    }
    reason::status(
        Code::Unavailable,
        Reason::PeerUnreachable,
        format!(
            "{peer} is unreachable: {attempts} tries over {:.1} s failed; last error: {}",
            elapsed.as_secs_f64(),
            last.message()
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick(attempts: u32) -> Retry {
        Retry {
            attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

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

    #[test]
    fn settings_are_validated_in_one_place() {
        assert!(RetrySettings::default().validate("x.retry").is_ok());
        for bad in [
            RetrySettings {
                attempts: 0,
                ..RetrySettings::default()
            },
            RetrySettings {
                attempts: 101,
                ..RetrySettings::default()
            },
            RetrySettings {
                initial_backoff_ms: 5,
                max_backoff_ms: 4,
                ..RetrySettings::default()
            },
        ] {
            let error = bad.validate("planner.retry").expect_err("refused");
            assert!(error.starts_with("planner.retry."), "{error}");
        }
    }

    #[test]
    fn transient_is_decided_by_code_and_reason_not_by_text() {
        assert!(is_transient(&Status::unavailable("anything")));
        assert!(is_transient(&Status::resource_exhausted("queue full")));
        assert!(
            !is_transient(&Status::unknown("transport error")),
            "text decides nothing"
        );
        assert!(!is_transient(&Status::invalid_argument("bad")));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(is_transient(&Status::from_error(Box::new(io))));
        let final_refusal = reason::status(Code::ResourceExhausted, Reason::OverLimit, "too many");
        assert!(
            !is_transient(&final_refusal),
            "a peer's final word is final"
        );
    }

    #[tokio::test]
    async fn transient_failures_end_in_unavailable_naming_the_peer() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let result: Result<(), Status> = quick(3)
            .run("registry-svc at http://x", || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Err(Status::unavailable("connection refused")) }
            })
            .await;
        let status = result.expect_err("fails");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("registry-svc at http://x"));
        assert_eq!(reason::of(&status), Some(Reason::PeerUnreachable));
    }

    #[tokio::test]
    async fn final_errors_are_not_retried_and_reasons_are_waited_out() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let result: Result<(), Status> = quick(5)
            .run("p", || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Err(Status::not_found("no such trial")) }
            })
            .await;
        assert_eq!(result.expect_err("fails").code(), Code::NotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let result = quick(5)
            .run_while(
                "p",
                Reason::AlreadyBeingEvaluated,
                Duration::from_secs(10),
                || {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n < 2 {
                            Err(reason::status(
                                Code::FailedPrecondition,
                                Reason::AlreadyBeingEvaluated,
                                "busy",
                            ))
                        } else {
                            Ok(n)
                        }
                    }
                },
            )
            .await;
        assert_eq!(result.expect("cleared"), 2);
    }
}
