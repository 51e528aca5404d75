//! The embedded mode's configuration: the five services' own sections in one file, read
//! through the same layers as the service binaries — built-in defaults (every folder under the
//! state root) < TOML file < `RA_*` environment < the command's flags.
//!
//! ```toml
//! [server]            # log format and filter, message size, shutdown grace (listen: unused)
//! [store]             # registry-svc
//! [data]              # dataset-svc
//! [sandbox]           # sandbox-svc, with [sandbox.process], [sandbox.docker], [sandbox.policy]
//! [evaluator]         # evaluator-svc (its peer URLs are set to the embedded services)
//! [planner]           # planner-svc (likewise)
//! [dashboard]         # dashboard-svc (its peer URLs likewise; cached_sessions, read_only)
//! ```

use std::path::{Path, PathBuf};

use ra_serve::{ServerSettings, ServiceConfig};
use serde::{Deserialize, Serialize};

/// Every embedded service's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    pub server: ServerSettings,
    pub store: registry_svc::StoreSettings,
    pub data: dataset_svc::config::DataSettings,
    pub sandbox: sandbox_svc::SandboxSettings,
    pub evaluator: evaluator_svc::EvaluatorSettings,
    pub planner: planner_svc::PlannerSettings,
    pub dashboard: dashboard_svc::DashboardSettings,
}

impl StackConfig {
    /// The built-in defaults with every folder under `root`.
    pub fn under(root: &Path) -> Self {
        let cache_dir = root.join("datasets");
        Self {
            server: ServerSettings {
                log_filter: "warn".into(),
                shutdown_grace_seconds: 5,
                ..ServerSettings::with_port(0)
            },
            store: registry_svc::StoreSettings {
                path: root.join("registry"),
                ..registry_svc::RegistryConfig::default().store
            },
            data: dataset_svc::config::DataSettings {
                cache_dir: cache_dir.clone(),
                data_dir: root.join("data"),
                ..dataset_svc::DatasetConfig::default().data
            },
            sandbox: sandbox_svc::SandboxSettings {
                work_dir: root.join("sandbox/jobs"),
                outputs_dir: root.join("sandbox/outputs"),
                dataset_cache_dir: cache_dir,
                // The laptop mode needs nothing but this program; Docker is asked for.
                docker_enabled: false,
                ..sandbox_svc::SandboxSettings::default()
            },
            evaluator: evaluator_svc::EvaluatorSettings::default(),
            planner: planner_svc::PlannerSettings {
                reports_dir: root.join("reports"),
                ..planner_svc::PlannerSettings::default()
            },
            dashboard: dashboard_svc::DashboardSettings::default(),
        }
    }

    /// Loads the layers: [`StackConfig::under`] `root` < `file` < the `RA_*` variables of
    /// `environment`. Flags are applied by the caller on the result.
    pub fn load(
        root: &Path,
        file: Option<PathBuf>,
        environment: Vec<(String, String)>,
    ) -> Result<Self, ra_serve::ConfigError> {
        let args = ra_serve::ServiceArgs {
            config: file,
            ..ra_serve::ServiceArgs::default()
        };
        ra_serve::load_config(Self::under(root), &args, environment)
    }

    pub fn registry(&self) -> registry_svc::RegistryConfig {
        registry_svc::RegistryConfig {
            server: self.server.clone(),
            store: self.store.clone(),
        }
    }

    pub fn dataset(&self) -> dataset_svc::DatasetConfig {
        dataset_svc::DatasetConfig {
            server: self.server.clone(),
            data: self.data.clone(),
        }
    }

    pub fn sandbox(&self) -> sandbox_svc::SandboxConfig {
        sandbox_svc::SandboxConfig {
            server: self.server.clone(),
            sandbox: self.sandbox.clone(),
        }
    }

    pub fn evaluator(&self) -> evaluator_svc::EvaluatorConfig {
        evaluator_svc::EvaluatorConfig {
            server: self.server.clone(),
            evaluator: self.evaluator.clone(),
        }
    }

    pub fn dashboard(&self) -> dashboard_svc::DashboardConfig {
        dashboard_svc::DashboardConfig {
            server: self.server.clone(),
            dashboard: self.dashboard.clone(),
        }
    }

    pub fn planner(&self) -> planner_svc::PlannerConfig {
        planner_svc::PlannerConfig {
            server: self.server.clone(),
            planner: self.planner.clone(),
        }
    }
}

impl ServiceConfig for StackConfig {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn resolve_paths(&mut self, base: &Path) {
        ra_serve::absolute_path(&mut self.store.path, base);
        self.data.resolve_paths(base);
        self.sandbox.resolve_paths(base);
        ra_serve::absolute_path(&mut self.planner.reports_dir, base);
    }

    /// Each section checked by its own service's rules.
    fn validate(&self) -> Result<(), String> {
        self.registry().validate()?;
        self.dataset().validate()?;
        self.sandbox().validate()?;
        self.evaluator().validate()?;
        self.planner().validate()?;
        self.dashboard().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn layers_defaults_file_then_environment() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join("stack.toml");
        std::fs::write(
            &file,
            "[sandbox]\nmax_concurrent_jobs = 3\nwork_dir = \"jobs-here\"\n\n[planner.defaults]\nmax_candidates = 7\n",
        )
        .expect("write");
        let root = dir.path().join("state");
        let config = StackConfig::load(
            &root,
            Some(file),
            vars(&[
                ("RA_SANDBOX__MAX_CONCURRENT_JOBS", "5"),
                ("RA_DATA_DIR", "/not/a/section"),
            ]),
        )
        .expect("valid layers");
        assert_eq!(
            config.sandbox.max_concurrent_jobs, 5,
            "environment over file"
        );
        assert_eq!(
            config.planner.defaults.max_candidates, 7,
            "file over defaults"
        );
        assert_eq!(
            config.store.path,
            root.join("registry"),
            "defaults under the root"
        );
        assert!(
            config.sandbox.work_dir.is_absolute(),
            "relative paths resolved"
        );
        assert!(config.sandbox.work_dir.ends_with("jobs-here"));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values_with_the_key() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join("stack.toml");
        std::fs::write(&file, "[sandbox]\nmax_concurent_jobs = 3\n").expect("write");
        let error = StackConfig::load(dir.path(), Some(file), Vec::new())
            .expect_err("misspelt key")
            .to_string();
        assert!(error.contains("max_concurent_jobs"), "{error}");
        let error = StackConfig::load(
            dir.path(),
            Some(dir.path().join("missing.toml")),
            Vec::new(),
        )
        .expect_err("missing file")
        .to_string();
        assert!(error.contains("does not exist"), "{error}");
    }
}
