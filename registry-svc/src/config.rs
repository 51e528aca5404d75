//! The registry's configuration: the shared `[server]` section and its `[store]`.

use ra_serve::{ServerSettings, ServiceConfig};
use serde::{Deserialize, Serialize};

use crate::store::StoreSettings;

/// The conventional registry port.
pub const DEFAULT_PORT: u16 = ra_client::ports::REGISTRY;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub server: ServerSettings,
    pub store: StoreSettings,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            server: ServerSettings::with_port(DEFAULT_PORT),
            store: StoreSettings::at(".research-agent/registry"),
        }
    }
}

impl ServiceConfig for RegistryConfig {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn resolve_paths(&mut self, base: &std::path::Path) {
        ra_serve::absolute_path(&mut self.store.path, base);
    }

    fn validate(&self) -> Result<(), String> {
        self.store.validate()
    }
}
