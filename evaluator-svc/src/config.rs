//! evaluator-svc's configuration: the shared `[server]` section and `[evaluator]` (the peers'
//! addresses, how many seeds run at once, retries, and the default early-stopping rule).

use ra_serve::{ServerSettings, ServiceConfig};
use serde::{Deserialize, Serialize};

/// The conventional evaluator-svc port.
pub const DEFAULT_PORT: u16 = 50052;

/// Bounded retries with exponential backoff for calls to the peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Tries per call before answering UNAVAILABLE (at least 1).
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluatorSettings {
    /// registry-svc, where trials, metrics and evaluations are recorded.
    pub registry_url: String,
    /// sandbox-svc, which runs every seed as a job.
    pub sandbox_url: String,
    /// dataset-svc, for requests that name a dataset instead of a prepared id.
    pub dataset_url: String,
    /// Seeds of one evaluation running at once (the sandbox queues the rest of its own load).
    pub max_parallel_seeds: u32,
    /// The most seeds one evaluation may ask for.
    pub max_seeds: u32,
    /// Sandbox backend for the jobs: "" (the sandbox's default), "process" or "docker".
    pub backend: String,
    pub retry: RetrySettings,
}

impl Default for EvaluatorSettings {
    fn default() -> Self {
        Self {
            registry_url: "http://127.0.0.1:50055".into(),
            sandbox_url: "http://127.0.0.1:50053".into(),
            dataset_url: "http://127.0.0.1:50054".into(),
            max_parallel_seeds: 8,
            max_seeds: 100,
            backend: String::new(),
            retry: RetrySettings::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatorConfig {
    pub server: ServerSettings,
    pub evaluator: EvaluatorSettings,
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        Self {
            server: ServerSettings::with_port(DEFAULT_PORT),
            evaluator: EvaluatorSettings::default(),
        }
    }
}

impl ServiceConfig for EvaluatorConfig {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn validate(&self) -> Result<(), String> {
        let settings = &self.evaluator;
        for (name, url) in [
            ("registry_url", &settings.registry_url),
            ("sandbox_url", &settings.sandbox_url),
            ("dataset_url", &settings.dataset_url),
        ] {
            if tonic::transport::Endpoint::from_shared(url.clone()).is_err() || url.is_empty() {
                return Err(format!(
                    "evaluator.{name} = {url:?} is not a URL such as http://127.0.0.1:50055"
                ));
            }
        }
        if settings.max_parallel_seeds == 0 {
            return Err("evaluator.max_parallel_seeds must be at least 1".into());
        }
        if !(1..=10_000).contains(&settings.max_seeds) {
            return Err(format!(
                "evaluator.max_seeds = {} must be in 1..=10000",
                settings.max_seeds
            ));
        }
        if !matches!(settings.backend.as_str(), "" | "process" | "docker") {
            return Err(format!(
                "evaluator.backend = {:?}: use \"process\", \"docker\" or \"\" (the sandbox's default)",
                settings.backend
            ));
        }
        if settings.retry.attempts == 0 || settings.retry.attempts > 100 {
            return Err(format!(
                "evaluator.retry.attempts = {} must be in 1..=100",
                settings.retry.attempts
            ));
        }
        if settings.retry.initial_backoff_ms > settings.retry.max_backoff_ms {
            return Err("evaluator.retry.initial_backoff_ms must not exceed max_backoff_ms".into());
        }
        Ok(())
    }
}
