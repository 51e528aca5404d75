//! evaluator-svc's configuration: the shared `[server]` section and `[evaluator]` (the peers'
//! addresses, how many seeds run at once, the sandbox backend and training device, retries).

use ra_serve::{ServerSettings, ServiceConfig};
use serde::{Deserialize, Serialize};

/// The conventional evaluator-svc port.
pub const DEFAULT_PORT: u16 = ra_client::ports::EVALUATOR;

pub use ra_client::RetrySettings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluatorSettings {
    /// registry-svc, where trials, metrics and evaluations are recorded.
    pub registry_url: String,
    /// sandbox-svc, which runs every seed as a job.
    pub sandbox_url: String,
    /// dataset-svc, for requests that name a dataset instead of a prepared id.
    pub dataset_url: String,
    /// Sandbox jobs of one evaluation running at once (the sandbox queues the rest of its own
    /// load).
    pub max_parallel_seeds: u32,
    /// Seeds trained in one sandbox job (one trainer process: the dataset opened once, the
    /// job's threads split between its seeds); 1 runs every seed as a job of its own.
    pub seeds_per_job: u32,
    /// The most seeds one evaluation may ask for.
    pub max_seeds: u32,
    /// Sandbox backend for the jobs: "" (the sandbox's default), "process", "docker" or
    /// "kubernetes".
    pub backend: String,
    /// Training device of requests that name none: "flex", "libtorch", "libtorch-cuda",
    /// "cuda" or "auto" (the fastest one the sandbox has).
    pub device: String,
    pub retry: RetrySettings,
}

impl Default for EvaluatorSettings {
    fn default() -> Self {
        Self {
            registry_url: ra_client::ports::LOCAL_REGISTRY.into(),
            sandbox_url: ra_client::ports::LOCAL_SANDBOX.into(),
            dataset_url: ra_client::ports::LOCAL_DATASET.into(),
            max_parallel_seeds: 8,
            seeds_per_job: 8,
            max_seeds: 100,
            backend: String::new(),
            device: ra_spec::device::DEFAULT.into(),
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
            ra_client::validate_url(&format!("evaluator.{name}"), url)
                .map_err(|e| e.to_string())?;
        }
        if settings.max_parallel_seeds == 0 {
            return Err("evaluator.max_parallel_seeds must be at least 1".into());
        }
        if !(1..=64).contains(&settings.seeds_per_job) {
            return Err(format!(
                "evaluator.seeds_per_job = {} must be in 1..=64 (a sandbox job trains at most 64 seeds)",
                settings.seeds_per_job
            ));
        }
        if !(1..=10_000).contains(&settings.max_seeds) {
            return Err(format!(
                "evaluator.max_seeds = {} must be in 1..=10000",
                settings.max_seeds
            ));
        }
        if !matches!(
            settings.backend.as_str(),
            "" | "process" | "docker" | "kubernetes"
        ) {
            return Err(format!(
                "evaluator.backend = {:?}: use \"process\", \"docker\", \"kubernetes\" or \"\" (the sandbox's default)",
                settings.backend
            ));
        }
        ra_spec::device::check("evaluator.device", &settings.device, false)?;
        settings.retry.validate("evaluator.retry")?;
        Ok(())
    }
}
