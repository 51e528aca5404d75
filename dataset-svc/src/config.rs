//! dataset-svc's configuration: the shared `[server]` section and its `[data]`.

use std::path::PathBuf;

use ra_serve::{ServerSettings, ServiceConfig};
use serde::{Deserialize, Serialize};

/// The conventional dataset-svc port.
pub const DEFAULT_PORT: u16 = 50054;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Folder with one sub-folder of original files per catalog name (`RA_DATA__DATA_DIR`).
    pub data_dir: PathBuf,
    /// The prepared-dataset cache (content-addressed directories).
    pub cache_dir: PathBuf,
    /// Largest batch StreamBatches sends, in bytes of `x` (below the message limit).
    pub max_batch_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub server: ServerSettings,
    pub data: DataSettings,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            server: ServerSettings::with_port(DEFAULT_PORT),
            data: DataSettings {
                data_dir: PathBuf::from(".research-agent/data"),
                cache_dir: PathBuf::from(".research-agent/datasets"),
                max_batch_bytes: 8 * 1024 * 1024,
            },
        }
    }
}

impl ServiceConfig for DatasetConfig {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn validate(&self) -> Result<(), String> {
        if self.data.cache_dir.as_os_str().is_empty() {
            return Err("data.cache_dir must not be empty".into());
        }
        let limit = self.server.max_message_bytes as u64;
        if self.data.max_batch_bytes == 0 || self.data.max_batch_bytes >= limit {
            return Err(format!(
                "data.max_batch_bytes must be above 0 and below server.max_message_bytes ({limit})"
            ));
        }
        Ok(())
    }
}
