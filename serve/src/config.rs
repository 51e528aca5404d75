//! Layered configuration: built-in defaults < TOML file < `RA_*` environment < flags.
//!
//! A service describes its whole configuration as one serde struct holding a [`ServerSettings`]
//! under `server`. Environment variables map onto it by stripping `RA_`, lower-casing and
//! splitting nested keys on `__`: `RA_SERVER__LISTEN=0.0.0.0:50055`, `RA_STORE__PATH=/data`.
//! The environment is passed in as an argument, so tests never touch the process environment.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::args::{LogFormat, ServiceArgs};

/// Prefix of every environment variable the services read.
pub const ENV_PREFIX: &str = "RA_";

/// Settings of the gRPC server itself, the same for every service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// `tracing` filter directives; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// Largest encoded request or response message, in bytes.
    pub max_message_bytes: usize,
    /// How long in-flight requests may run after a shutdown signal before they are dropped.
    pub shutdown_grace_seconds: u64,
    /// A second, plaintext address serving only `grpc.health.v1` (for probes that cannot do
    /// TLS or carry credentials, such as Kubernetes' native gRPC probes); `--probe` asks it.
    #[serde(default)]
    pub health_listen: Option<SocketAddr>,
    /// TLS of this server (and client certificates of its callers).
    #[serde(default)]
    pub tls: crate::auth::TlsSettings,
    /// Who may call this server.
    #[serde(default)]
    pub auth: crate::auth::AuthSettings,
    /// What this service presents to the peers it calls (CA, client certificate, token).
    #[serde(default)]
    pub client: ra_client::ClientSettings,
}

impl ServerSettings {
    /// Defaults for a service whose conventional port is `port` (on 127.0.0.1).
    pub fn with_port(port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            max_message_bytes: 16 * 1024 * 1024,
            shutdown_grace_seconds: 10,
            health_listen: None,
            tls: crate::auth::TlsSettings::default(),
            auth: crate::auth::AuthSettings::default(),
            client: ra_client::ClientSettings::default(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        const MIN_MESSAGE: usize = 64 * 1024;
        const MAX_MESSAGE: usize = 1024 * 1024 * 1024;
        if !(MIN_MESSAGE..=MAX_MESSAGE).contains(&self.max_message_bytes) {
            return Err(format!(
                "server.max_message_bytes = {} is outside {MIN_MESSAGE}..={MAX_MESSAGE}",
                self.max_message_bytes
            ));
        }
        if self.shutdown_grace_seconds > 3600 {
            return Err(format!(
                "server.shutdown_grace_seconds = {} is over an hour; use at most 3600",
                self.shutdown_grace_seconds
            ));
        }
        self.tls.validate()?;
        self.auth.validate()?;
        self.client.validate("server.client")?;
        if self.health_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(format!(
                "server.health_listen = {} is server.listen; use another port",
                self.listen
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_filter).map_err(|error| {
            format!(
                "server.log_filter {:?} is not a valid filter: {error}",
                self.log_filter
            )
        })?;
        Ok(())
    }
}

impl ServerSettings {
    /// The credentials this service presents to its peers, read from `[server.client]`.
    pub fn client_credentials(&self) -> Result<ra_client::Credentials, String> {
        ra_client::Credentials::from_settings(&self.client, "server.client")
    }
}

/// A service's whole configuration.
pub trait ServiceConfig: Serialize + DeserializeOwned {
    /// The shared server settings inside it.
    fn server(&self) -> &ServerSettings;
    /// Checks the service's own settings; the message says which key is wrong and why.
    fn validate(&self) -> Result<(), String>;
    /// Makes every relative path setting absolute against `base` (the working folder at load
    /// time), so that no later step (a Docker bind mount, a changed working folder) sees a
    /// relative one. Called by [`load_config`] before [`ServiceConfig::validate`].
    fn resolve_paths(&mut self, _base: &Path) {}
}

/// `path` made absolute against `base` when it is relative and not empty (empty means "not
/// set" for optional paths).
pub fn absolute_path(path: &mut std::path::PathBuf, base: &Path) {
    if !path.as_os_str().is_empty() && path.is_relative() {
        *path = base.join(&*path);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist")]
    MissingFile { path: String },
    #[error("configuration is not valid: {0}")]
    Figment(Box<figment::Error>),
    #[error("configuration is not valid: {0}")]
    Invalid(String),
}

/// Loads and validates a service configuration from its layers.
pub fn load_config<C: ServiceConfig>(
    defaults: C,
    args: &ServiceArgs,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<C, ConfigError> {
    let sections = top_level_keys(&defaults);
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(path) = &args.config {
        if !Path::new(path).is_file() {
            return Err(ConfigError::MissingFile {
                path: path.display().to_string(),
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Serialized::defaults(env_dict(env, &sections)));
    if let Some(listen) = args.listen {
        figment = figment.merge(Serialized::default("server.listen", listen));
    }
    if let Some(format) = args.log_format {
        figment = figment.merge(Serialized::default("server.log_format", format));
    }
    if let Some(filter) = &args.log_filter {
        figment = figment.merge(Serialized::default("server.log_filter", filter));
    }
    let mut config: C = figment
        .extract()
        .map_err(|e| ConfigError::Figment(Box::new(e)))?;
    let base = std::env::current_dir().map_err(|error| {
        ConfigError::Invalid(format!(
            "cannot read the working folder to resolve relative paths: {error}"
        ))
    })?;
    config.resolve_paths(&base);
    config.server().validate().map_err(ConfigError::Invalid)?;
    config.validate().map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// The top-level keys (sections) of a configuration.
fn top_level_keys(config: &impl Serialize) -> Vec<String> {
    match Value::serialize(config) {
        Ok(Value::Dict(_, dict)) => dict.into_keys().collect(),
        _ => Vec::new(),
    }
}

/// `RA_SERVER__LISTEN=…` → `{server: {listen: …}}`. Only variables that address one of this
/// service's sections are taken: other `RA_*` variables belong to other services and tools
/// sharing the environment (`RA_CONFIG`, another service's `RA_DATA_DIR`). A misspelt key
/// inside a known section is still refused.
fn env_dict(env: impl IntoIterator<Item = (String, String)>, sections: &[String]) -> Dict {
    let mut dict = Dict::new();
    for (name, raw) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path = key.to_ascii_lowercase().replace("__", ".");
        let section = path.split('.').next().unwrap_or_default();
        if !sections.iter().any(|known| known == section) {
            continue;
        }
        let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
        if let Value::Dict(_, nested) = figment::util::nest(&path, value) {
            merge_dict(&mut dict, nested);
        }
    }
    dict
}

fn merge_dict(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, existing)), Value::Dict(_, incoming)) => {
                merge_dict(existing, incoming)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TestConfig {
        server: ServerSettings,
        store: StoreSection,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StoreSection {
        path: String,
        cache_mb: u64,
    }

    impl ServiceConfig for TestConfig {
        fn server(&self) -> &ServerSettings {
            &self.server
        }
        fn validate(&self) -> Result<(), String> {
            if self.store.path.is_empty() {
                return Err("store.path must not be empty".into());
            }
            Ok(())
        }
    }

    fn defaults() -> TestConfig {
        TestConfig {
            server: ServerSettings::with_port(50055),
            store: StoreSection {
                path: "data".into(),
                cache_mb: 64,
            },
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ra.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:1000\"\nlog_filter = \"debug\"\n[store]\npath = \"from-file\"\ncache_mb = 1\n",
        )
        .expect("write config");
        let args = ServiceArgs {
            config: Some(file),
            ..Default::default()
        };
        let env_vars = env(&[
            ("RA_STORE__CACHE_MB", "7"),
            ("RA_SERVER__LISTEN", "127.0.0.1:2000"),
        ]);
        let config = load_config(defaults(), &args, env_vars.clone()).expect("loads");
        assert_eq!(config.store.path, "from-file");
        assert_eq!(config.store.cache_mb, 7);
        assert_eq!(config.server.listen.port(), 2000);
        assert_eq!(config.server.log_filter, "debug");

        let args = ServiceArgs {
            listen: Some("127.0.0.1:3000".parse().expect("addr")),
            log_format: Some(LogFormat::Json),
            ..args
        };
        let config = load_config(defaults(), &args, env_vars).expect("loads");
        assert_eq!(config.server.listen.port(), 3000);
        assert_eq!(config.server.log_format, LogFormat::Json);
    }

    #[test]
    fn defaults_hold_without_any_layer() {
        let config = load_config(defaults(), &ServiceArgs::default(), env(&[("HOME", "/x")]))
            .expect("loads");
        assert_eq!(config.server.listen.port(), 50055);
        assert_eq!(config.store.path, "data");
    }

    #[test]
    fn bad_layers_are_refused_with_the_key_named() {
        let err = load_config(
            defaults(),
            &ServiceArgs::default(),
            env(&[("RA_STORE__CACHE_MB", "lots")]),
        )
        .expect_err("not a number");
        assert!(err.to_string().contains("cache_mb"), "{err}");

        let err = load_config(
            defaults(),
            &ServiceArgs::default(),
            env(&[("RA_STORE__PATH", "")]),
        )
        .expect_err("empty path");
        assert!(err.to_string().contains("store.path"), "{err}");

        let err = load_config(
            defaults(),
            &ServiceArgs::default(),
            env(&[("RA_STORE__TYPO", "1")]),
        )
        .expect_err("unknown key in a known section");
        assert!(err.to_string().contains("typo"), "{err}");

        let shared = env(&[
            ("RA_DATA_DIR", "/data"),
            ("RA_GRPCURL", "/bin/grpcurl"),
            ("RA_CONFIG", "x"),
        ]);
        load_config(defaults(), &ServiceArgs::default(), shared)
            .expect("variables of other services and tools are not ours to refuse");

        let err = load_config(
            defaults(),
            &ServiceArgs::default(),
            env(&[("RA_SERVER__MAX_MESSAGE_BYTES", "10")]),
        )
        .expect_err("too small");
        assert!(err.to_string().contains("max_message_bytes"), "{err}");

        let args = ServiceArgs {
            config: Some("/nonexistent/ra.toml".into()),
            ..Default::default()
        };
        let err = load_config(defaults(), &args, env(&[])).expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/ra.toml"), "{err}");
    }
}
