//! dashboard-svc's configuration: the shared `[server]` section (its `listen` is the HTTP
//! address; `server.auth.tokens_file` asks browsers for a token) and `[dashboard]` (the
//! services it reads and acts through).

use ra_serve::{ServerSettings, ServiceConfig};
use serde::{Deserialize, Serialize};

/// The conventional dashboard port (HTTP), next to the five gRPC services' 50051-50055.
pub const DEFAULT_PORT: u16 = 50056;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    pub server: ServerSettings,
    pub dashboard: DashboardSettings,
}

/// `[dashboard]`: where the records are, who computes the statistics, who acts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSettings {
    /// registry-svc: every page reads its records (and follows live sessions).
    pub registry_url: String,
    /// evaluator-svc: the Holm-adjusted p-values of a session and the Welch comparisons.
    /// Empty: pages show the recorded statistics only, and comparisons are unavailable.
    pub evaluator_url: String,
    /// planner-svc: injecting candidates, budgets, pause and resume. Empty: read-only.
    pub planner_url: String,
    /// Refuse every action even when a planner is configured (`research-agent dashboard`).
    pub read_only: bool,
    /// Sessions whose records are kept in memory between page loads (least recently used
    /// leave first).
    pub cached_sessions: usize,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            registry_url: ra_client::ports::LOCAL_REGISTRY.to_owned(),
            evaluator_url: ra_client::ports::LOCAL_EVALUATOR.to_owned(),
            planner_url: ra_client::ports::LOCAL_PLANNER.to_owned(),
            read_only: false,
            cached_sessions: 32,
        }
    }
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            server: ServerSettings::with_port(DEFAULT_PORT),
            dashboard: DashboardSettings::default(),
        }
    }
}

impl ServiceConfig for DashboardConfig {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn validate(&self) -> Result<(), String> {
        let settings = &self.dashboard;
        ra_client::validate_url("dashboard.registry_url", &settings.registry_url)
            .map_err(|e| e.to_string())?;
        for (field, url) in [
            ("dashboard.evaluator_url", &settings.evaluator_url),
            ("dashboard.planner_url", &settings.planner_url),
        ] {
            if !url.is_empty() {
                ra_client::validate_url(field, url).map_err(|e| e.to_string())?;
            }
        }
        if !(1..=10_000).contains(&settings.cached_sessions) {
            return Err(format!(
                "dashboard.cached_sessions = {} is outside 1..=10000",
                settings.cached_sessions
            ));
        }
        if self.server.tls.enabled() {
            return Err(
                "server.tls is not served by the dashboard: put it behind the cluster's ingress (TLS there) and keep server.auth.tokens_file for who may look"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_point_at_the_conventional_ports() {
        let config = DashboardConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.server.listen.port(), DEFAULT_PORT);
        assert!(config.dashboard.registry_url.ends_with(":50055"));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let mut config = DashboardConfig::default();
        config.dashboard.planner_url = "not a url".into();
        let error = config.validate().expect_err("refused");
        assert!(error.contains("dashboard.planner_url"), "{error}");
        let mut config = DashboardConfig::default();
        config.dashboard.cached_sessions = 0;
        let error = config.validate().expect_err("refused");
        assert!(error.contains("dashboard.cached_sessions"), "{error}");
    }
}
