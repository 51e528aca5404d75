//! planner-svc's configuration: the shared `[server]` section and `[planner]` (the peers'
//! addresses, where reports are written, the session defaults a goal does not name, and the
//! `[planner.llm]` endpoint of the `llm` and `hybrid` strategies).

use std::path::PathBuf;

use ra_client::RetrySettings;
use ra_serve::{ServerSettings, ServiceConfig};
use serde::{Deserialize, Serialize};

/// The conventional planner-svc port.
pub const DEFAULT_PORT: u16 = ra_client::ports::PLANNER;

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Base URL up to `/v1` ("https://api.openai.com/v1", "http://127.0.0.1:8000/v1").
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key; unset or empty sends no key.
    pub api_key_env: String,
    /// Corrected answers asked for after an invalid one, per proposal.
    pub max_retries: u32,
    /// Seconds to wait for the first token, and between tokens of a streamed answer (for the
    /// whole answer when not streamed); longer is a failed request.
    pub timeout_seconds: u64,
    /// The longest a whole answer may take, streamed or not, in seconds.
    pub max_answer_seconds: u64,
    pub temperature: f64,
    /// Tries per request when the endpoint times out, refuses the connection or answers
    /// 429/5xx, with `backoff_seconds` doubling between them.
    pub request_attempts: u32,
    pub backoff_seconds: f64,
    /// LLM turns in a row without an answer (every try of the request failed) before the
    /// session falls back to the built-in strategy for good; a turn with an answer resets it.
    pub strikes: u32,
    /// Stream the answer (server-sent events), so that a slow model is seen progressing and
    /// `timeout_seconds` applies between tokens.
    pub stream: bool,
    /// "full" (every layer and option, the JSON schema, a worked example) or "compact" (a
    /// short prompt and history for small local models).
    pub prompt: String,
    /// Ask for `response_format` `json_schema` with the specs' schema (servers that refuse it
    /// are asked for a plain JSON object instead).
    pub json_schema: bool,
}

/// The prompt styles of [`LlmConfig::prompt`].
pub const PROMPT_STYLES: [&str; 2] = ["full", "compact"];

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8000/v1".into(),
            model: "gpt-4o-mini".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            max_retries: 3,
            timeout_seconds: 60,
            max_answer_seconds: 600,
            temperature: 0.7,
            request_attempts: 3,
            backoff_seconds: 2.0,
            strikes: 3,
            stream: true,
            prompt: "full".into(),
            json_schema: true,
        }
    }
}

/// What a session uses where neither the goal nor the request says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionDefaults {
    /// "random", "evolution", "llm" or "hybrid".
    pub strategy: String,
    pub num_seeds: u32,
    pub max_seeds: u32,
    pub confidence: f64,
    pub max_candidates: u32,
    pub max_total_seeds: u32,
    pub max_wall_seconds: u64,
    /// Upper bound on the epochs a strategy proposes.
    pub max_epochs: u32,
    /// Model size limits proposals must respect.
    pub max_parameters: u64,
    pub max_flops_per_sample: u64,
}

impl Default for SessionDefaults {
    fn default() -> Self {
        Self {
            strategy: "evolution".into(),
            num_seeds: 3,
            max_seeds: 5,
            confidence: 0.95,
            max_candidates: 20,
            max_total_seeds: 100,
            max_wall_seconds: 3_600,
            max_epochs: 8,
            // Sized for a laptop CPU: a few seconds per epoch on small datasets.
            max_parameters: 1_000_000,
            max_flops_per_sample: 40_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerSettings {
    /// registry-svc: experiments, candidates, decisions, the report.
    pub registry_url: String,
    /// evaluator-svc: every candidate is evaluated there.
    pub evaluator_url: String,
    /// dataset-svc: the catalog (goal parsing) and preparation.
    pub dataset_url: String,
    /// sandbox-svc: ValidateJob before a candidate is evaluated.
    pub sandbox_url: String,
    /// Reports are written to `<reports_dir>/<research id>/`.
    pub reports_dir: PathBuf,
    /// Prepare datasets without network access.
    pub offline: bool,
    pub defaults: SessionDefaults,
    pub llm: LlmConfig,
    pub retry: RetrySettings,
}

impl Default for PlannerSettings {
    fn default() -> Self {
        Self {
            registry_url: ra_client::ports::LOCAL_REGISTRY.into(),
            evaluator_url: ra_client::ports::LOCAL_EVALUATOR.into(),
            dataset_url: ra_client::ports::LOCAL_DATASET.into(),
            sandbox_url: ra_client::ports::LOCAL_SANDBOX.into(),
            reports_dir: PathBuf::from(".research-agent/reports"),
            offline: false,
            defaults: SessionDefaults::default(),
            llm: LlmConfig::default(),
            retry: RetrySettings::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    pub server: ServerSettings,
    pub planner: PlannerSettings,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            server: ServerSettings::with_port(DEFAULT_PORT),
            planner: PlannerSettings::default(),
        }
    }
}

/// The strategies by name.
pub const STRATEGIES: &[&str] = &ra_client::strategy::NAMES;

impl PlannerSettings {
    pub fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("registry_url", &self.registry_url),
            ("evaluator_url", &self.evaluator_url),
            ("dataset_url", &self.dataset_url),
            ("sandbox_url", &self.sandbox_url),
        ] {
            ra_client::validate_url(&format!("planner.{name}"), url).map_err(|e| e.to_string())?;
        }
        let d = &self.defaults;
        if !STRATEGIES.contains(&d.strategy.as_str()) {
            return Err(format!(
                "planner.defaults.strategy = {:?}: use one of {}",
                d.strategy,
                STRATEGIES.join(", ")
            ));
        }
        if d.num_seeds < 2 || d.max_seeds < d.num_seeds {
            return Err(format!(
                "planner.defaults: num_seeds = {} must be at least 2 and max_seeds = {} at least num_seeds",
                d.num_seeds, d.max_seeds
            ));
        }
        if !(d.confidence > 0.5 && d.confidence < 1.0) {
            return Err(format!(
                "planner.defaults.confidence = {} must be in (0.5, 1)",
                d.confidence
            ));
        }
        if d.max_candidates == 0 || d.max_total_seeds < 2 || d.max_wall_seconds == 0 {
            return Err(
                "planner.defaults: max_candidates, max_total_seeds (≥ 2) and max_wall_seconds must be positive"
                    .into(),
            );
        }
        if d.max_epochs == 0 || d.max_epochs > ra_spec::train::MAX_EPOCHS {
            return Err(format!(
                "planner.defaults.max_epochs = {} must be in 1..={}",
                d.max_epochs,
                ra_spec::train::MAX_EPOCHS
            ));
        }
        if !PROMPT_STYLES.contains(&self.llm.prompt.as_str()) {
            return Err(format!(
                "planner.llm.prompt {:?} is unknown; use full or compact",
                self.llm.prompt
            ));
        }
        if self.llm.request_attempts == 0 || self.llm.request_attempts > 20 {
            return Err("planner.llm.request_attempts must be 1 to 20".into());
        }
        if self.llm.strikes == 0 {
            return Err("planner.llm.strikes must be at least 1".into());
        }
        if !(self.llm.backoff_seconds.is_finite()
            && (0.0..=300.0).contains(&self.llm.backoff_seconds))
        {
            return Err("planner.llm.backoff_seconds must be 0 to 300".into());
        }
        if self.llm.max_answer_seconds < self.llm.timeout_seconds {
            return Err("planner.llm.max_answer_seconds must be at least timeout_seconds".into());
        }
        if self.llm.timeout_seconds == 0 {
            return Err("planner.llm.timeout_seconds must be at least 1".into());
        }
        self.retry.validate("planner.retry")?;
        Ok(())
    }
}

impl ServiceConfig for PlannerConfig {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn resolve_paths(&mut self, base: &std::path::Path) {
        ra_serve::absolute_path(&mut self.planner.reports_dir, base);
    }

    fn validate(&self) -> Result<(), String> {
        self.planner.validate()
    }
}
