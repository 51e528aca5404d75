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
    /// Never download: a missing original is refused with the list of files to put where.
    pub offline: bool,
    /// Fetch originals from `<mirror_url>/<dataset>/<file name>` instead of their canonical
    /// URLs (an internal mirror); empty for the canonical URLs.
    pub mirror_url: String,
    /// Size cap of the prepared-dataset cache in bytes; least recently used entries are
    /// evicted after a preparation pushes it over. 0: no cap.
    pub cache_max_bytes: u64,
    /// Largest file a download may write; a larger one is refused and deleted.
    pub max_download_bytes: u64,
    /// The Hugging Face Hub, for `hf:` datasets.
    pub hub_url: String,
    /// Attempts per download before giving up (interrupted transfers resume).
    pub download_attempts: u32,
    /// Largest local dataset (`csv:`, `images:`, … : the files read, in bytes) and largest
    /// upload.
    pub local_max_bytes: u64,
    /// Folders whose files local dataset names may read; empty: any path this process can
    /// read (the laptop). Uploads (`upload:ID/…`, under `<data_dir>/uploads`) are always
    /// readable.
    pub local_roots: Vec<PathBuf>,
}

impl DataSettings {
    /// Every path setting made absolute against `base` (see [`ServiceConfig::resolve_paths`]).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        ra_serve::absolute_path(&mut self.data_dir, base);
        ra_serve::absolute_path(&mut self.cache_dir, base);
        for root in &mut self.local_roots {
            ra_serve::absolute_path(root, base);
        }
    }

    /// Where uploaded files are kept, one folder per upload id.
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }
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
                offline: false,
                mirror_url: String::new(),
                cache_max_bytes: 20 << 30,
                download_attempts: 4,
                max_download_bytes: 16 << 30,
                hub_url: "https://huggingface.co".into(),
                local_max_bytes: 2 << 30,
                local_roots: Vec::new(),
            },
        }
    }
}

impl ServiceConfig for DatasetConfig {
    fn server(&self) -> &ServerSettings {
        &self.server
    }

    fn resolve_paths(&mut self, base: &std::path::Path) {
        self.data.resolve_paths(base);
    }

    fn validate(&self) -> Result<(), String> {
        if self.data.cache_dir.as_os_str().is_empty() {
            return Err("data.cache_dir must not be empty".into());
        }
        let http = |url: &str| ["http://", "https://"].iter().any(|s| url.starts_with(s));
        if !self.data.mirror_url.is_empty() && !http(&self.data.mirror_url) {
            return Err(format!(
                "data.mirror_url {:?} must start with http:// or https://",
                self.data.mirror_url
            ));
        }
        if !http(&self.data.hub_url) {
            return Err(format!(
                "data.hub_url {:?} must start with http:// or https://",
                self.data.hub_url
            ));
        }
        if self.data.local_max_bytes == 0 {
            return Err("data.local_max_bytes must be above 0".into());
        }
        if self.data.max_download_bytes == 0 {
            return Err("data.max_download_bytes must be above 0".into());
        }
        if self.data.download_attempts == 0 || self.data.download_attempts > 100 {
            return Err("data.download_attempts must be 1 to 100".into());
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
