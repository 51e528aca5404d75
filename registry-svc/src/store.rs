//! The sled-backed store: opening (with its format version), serialised atomic writes that also
//! append to each experiment's event log, durable acknowledgement through group commit, and
//! paged reads. The per-entity operations live in [`crate::records`] and [`crate::metrics`].

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use prost::Message;
use prost_types::Timestamp;
use ra_proto::registry::v1::ExperimentEvent;
use ra_proto::registry::v1::experiment_event::Record;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::artifacts::ArtifactFiles;
use crate::durability::GroupCommit;
use crate::error::{RegistryError, Result};
use crate::keys;

/// The on-disk layout this build writes. Bump it on any incompatible change of keys or values.
pub const STORE_FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"meta/format_version";
const RECORDS_TREE: &str = "records";

/// Store settings (the `[store]` section of the registry's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Directory of the sled database and the artifact files.
    pub path: PathBuf,
    /// sled page-cache size.
    pub cache_capacity_bytes: u64,
    /// Largest artifact accepted by UploadArtifact.
    pub max_artifact_bytes: u64,
    /// Most points in one metrics batch.
    pub max_batch_points: usize,
}

impl StoreSettings {
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache_capacity_bytes: 256 * 1024 * 1024,
            max_artifact_bytes: 1024 * 1024 * 1024,
            max_batch_points: 100_000,
        }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("store.path is empty: give the directory for the registry's data".into());
        }
        if self.cache_capacity_bytes < 1024 * 1024 {
            return Err(format!(
                "store.cache_capacity_bytes = {} is below 1 MiB",
                self.cache_capacity_bytes
            ));
        }
        if self.max_artifact_bytes == 0 {
            return Err("store.max_artifact_bytes must be positive".into());
        }
        if !(1..=1_000_000).contains(&self.max_batch_points) {
            return Err(format!(
                "store.max_batch_points = {} is outside 1..=1000000",
                self.max_batch_points
            ));
        }
        Ok(())
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Empty when there is nothing after this page.
    pub next_page_token: String,
}

/// A list request's paging, normalised.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub size: u32,
    pub token: String,
}

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

impl PageRequest {
    /// The page size to use: 0 means the default; over the maximum is refused.
    pub fn checked_size(&self) -> Result<usize> {
        match self.size as usize {
            0 => Ok(DEFAULT_PAGE_SIZE),
            n if n > MAX_PAGE_SIZE => Err(RegistryError::invalid(format!(
                "page_size {n} is over the maximum of {MAX_PAGE_SIZE}"
            ))),
            n => Ok(n),
        }
    }
}

/// State guarded by the write lock.
#[derive(Debug, Default)]
struct WriterState {
    /// Next event position per experiment, loaded lazily from the log's last key.
    next_position: HashMap<String, u64>,
}

#[derive(Debug)]
pub struct Store {
    pub(crate) path: PathBuf,
    db: sled::Db,
    pub(crate) records: sled::Tree,
    writer: Mutex<WriterState>,
    durability: GroupCommit,
    landed: watch::Sender<u64>,
    pub(crate) artifacts: ArtifactFiles,
    pub(crate) settings: StoreSettings,
}

/// A write being assembled under the lock: the batch and the events it appends.
pub(crate) struct PendingWrite<'a> {
    pub(crate) batch: sled::Batch,
    pub(crate) now: Timestamp,
    records: &'a sled::Tree,
    state: &'a mut WriterState,
    positions: HashMap<String, u64>,
}

impl PendingWrite<'_> {
    pub(crate) fn put(&mut self, key: impl AsRef<[u8]>, record: &impl Message) {
        self.batch.insert(key.as_ref(), record.encode_to_vec());
    }

    pub(crate) fn put_raw(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.batch.insert(key.as_ref(), value.as_ref());
    }

    /// Appends `record` to the experiment's event log in this same batch.
    pub(crate) fn event(&mut self, experiment_id: &str, record: Record) -> Result<u64> {
        let position = match self.positions.get(experiment_id) {
            Some(next) => *next,
            None => match self.state.next_position.get(experiment_id) {
                Some(next) => *next,
                None => last_event_position(self.records, experiment_id)? + 1,
            },
        };
        self.positions
            .insert(experiment_id.to_owned(), position + 1);
        let event = ExperimentEvent {
            position,
            recorded_at: Some(self.now),
            record: Some(record),
        };
        self.batch
            .insert(keys::event(experiment_id, position), event.encode_to_vec());
        Ok(position)
    }
}

fn last_event_position(records: &sled::Tree, experiment_id: &str) -> Result<u64> {
    let prefix = keys::experiment_events(experiment_id);
    match records.scan_prefix(prefix.as_bytes()).next_back() {
        None => Ok(0),
        Some(entry) => {
            let (key, _) = entry?;
            let tail: [u8; 8] =
                key[prefix.len()..]
                    .try_into()
                    .map_err(|_| RegistryError::Corrupt {
                        key: String::from_utf8_lossy(&key).into_owned(),
                        reason: "event key without an 8-byte position".to_owned(),
                    })?;
            Ok(u64::from_be_bytes(tail))
        }
    }
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

impl Store {
    /// Opens (or creates) the store; must run inside a tokio runtime (the flusher is a task).
    pub fn open(settings: StoreSettings) -> Result<Self> {
        std::fs::create_dir_all(&settings.path)?;
        let db_path = settings.path.join("db");
        let db = sled::Config::new()
            .path(&db_path)
            .cache_capacity(settings.cache_capacity_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|error| match error {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    RegistryError::Io(std::io::Error::other(format!(
                        "the store at {} is locked by another registry-svc process; stop it or choose another store.path",
                        db_path.display()
                    )))
                }
                other => other.into(),
            })?;
        check_format_version(&db, &settings.path)?;
        let records = db.open_tree(RECORDS_TREE)?;
        let artifacts = ArtifactFiles::open(settings.path.join("artifacts"))?;
        let durability = GroupCommit::start(db.clone());
        let (landed, _) = watch::channel(0);
        Ok(Self {
            path: settings.path.clone(),
            db,
            records,
            writer: Mutex::new(WriterState::default()),
            durability,
            landed,
            artifacts,
            settings,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// Applies one atomic write assembled by `build` (which may read the store and refuse).
    /// Returns once the batch is applied, not yet durable: call [`Store::sync`] before
    /// acknowledging.
    pub(crate) fn write<T>(
        &self,
        build: impl FnOnce(&mut PendingWrite<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut state = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut pending = PendingWrite {
            batch: sled::Batch::default(),
            now: now(),
            records: &self.records,
            state: &mut state,
            positions: HashMap::new(),
        };
        let output = build(&mut pending)?;
        let PendingWrite {
            batch, positions, ..
        } = pending;
        if let Err(error) = self.records.apply_batch(batch) {
            state.next_position.clear();
            return Err(error.into());
        }
        state.next_position.extend(positions);
        drop(state);
        self.landed.send_modify(|count| *count += 1);
        Ok(output)
    }

    /// A number larger than any returned before, across restarts (orders metric chunks).
    pub(crate) fn next_sequence(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    /// Waits until every write applied so far is on disk (shared fsync).
    pub async fn sync(&self) -> Result<()> {
        self.durability.wait_durable().await
    }

    /// Number of fsyncs so far.
    pub fn flush_count(&self) -> u64 {
        self.durability.flush_count()
    }

    /// A receiver that changes whenever a write lands.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.landed.subscribe()
    }

    /// Flushes everything and stops the background flusher (shutdown). The database closes
    /// when the last handle to the store is dropped.
    pub async fn close(&self) -> Result<()> {
        self.durability.close().await;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|join_error| RegistryError::Io(std::io::Error::other(join_error)))??;
        Ok(())
    }

    pub(crate) fn get_record<M: Message + Default>(&self, key: &str) -> Result<Option<M>> {
        match self.records.get(key.as_bytes())? {
            None => Ok(None),
            Some(bytes) => {
                M::decode(bytes.as_ref())
                    .map(Some)
                    .map_err(|source| RegistryError::Corrupt {
                        key: key.to_owned(),
                        reason: source.to_string(),
                    })
            }
        }
    }

    pub(crate) fn contains(&self, key: &str) -> Result<bool> {
        Ok(self.records.contains_key(key.as_bytes())?)
    }

    /// Pages through the keys under `prefix`, turning each into an item with `load` (which may
    /// skip it by returning `None`, for filters).
    pub(crate) fn page<T>(
        &self,
        prefix: &str,
        page: &PageRequest,
        mut load: impl FnMut(&[u8], &[u8]) -> Result<Option<T>>,
    ) -> Result<Page<T>> {
        let size = page.checked_size()?;
        let start = match page.token.as_str() {
            "" => Bound::Included(prefix.as_bytes().to_vec()),
            token => Bound::Excluded(decode_page_token(token, prefix)?),
        };
        let mut items = Vec::with_capacity(size.min(64));
        let mut last_key: Option<Vec<u8>> = None;
        for entry in self.records.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (key, value) = entry?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            if let Some(item) = load(&key, &value)? {
                if items.len() == size {
                    return Ok(Page {
                        items,
                        next_page_token: last_key.map(hex::encode).unwrap_or_default(),
                    });
                }
                items.push(item);
                last_key = Some(key.to_vec());
            }
        }
        Ok(Page {
            items,
            next_page_token: String::new(),
        })
    }

    /// Loads the record an index key points at (`ec/{exp}/{id}` → `c/{id}`).
    pub(crate) fn follow_index<M: Message + Default>(
        &self,
        index_key: &[u8],
        record_key: impl Fn(&str) -> String,
    ) -> Result<M> {
        let id = String::from_utf8_lossy(keys::last_segment(index_key)).into_owned();
        let key = record_key(&id);
        self.get_record(&key)?
            .ok_or_else(|| RegistryError::Corrupt {
                key,
                reason: "an index points at a missing record".to_owned(),
            })
    }

    /// Events of an experiment after `position`, at most `limit`.
    pub fn events_after(
        &self,
        experiment_id: &str,
        position: u64,
        limit: usize,
    ) -> Result<Vec<ExperimentEvent>> {
        let start = keys::event(experiment_id, position.saturating_add(1));
        let prefix = keys::experiment_events(experiment_id);
        let mut events = Vec::new();
        for entry in self.records.range(start..) {
            let (key, value) = entry?;
            if !key.starts_with(prefix.as_bytes()) || events.len() >= limit {
                break;
            }
            let event = ExperimentEvent::decode(value.as_ref()).map_err(|source| {
                RegistryError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: source.to_string(),
                }
            })?;
            events.push(event);
        }
        Ok(events)
    }
}

fn decode_page_token(token: &str, prefix: &str) -> Result<Vec<u8>> {
    let invalid = || {
        RegistryError::invalid(
            "page_token is not one this list returned: pass next_page_token from the previous page unchanged, or empty for the first page",
        )
    };
    let key = hex::decode(token).map_err(|_| invalid())?;
    if !key.starts_with(prefix.as_bytes()) {
        return Err(invalid());
    }
    Ok(key)
}

fn check_format_version(db: &sled::Db, path: &Path) -> Result<()> {
    match db.get(FORMAT_KEY)? {
        Some(bytes) => {
            let found = bytes
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| RegistryError::Corrupt {
                    key: "meta/format_version".into(),
                    reason: "format version is not 4 bytes".to_owned(),
                })?;
            if found > STORE_FORMAT_VERSION {
                return Err(RegistryError::IncompatibleFormat {
                    path: path.display().to_string(),
                    found,
                    supported: STORE_FORMAT_VERSION,
                });
            }
            Ok(())
        }
        None => {
            db.insert(FORMAT_KEY, &STORE_FORMAT_VERSION.to_be_bytes())?;
            db.flush()?;
            Ok(())
        }
    }
}

/// Test and tooling hook: stamps a store with another format version.
pub fn write_format_version(path: &Path, version: u32) -> Result<()> {
    let db = sled::open(path.join("db"))?;
    db.insert(FORMAT_KEY, &version.to_be_bytes())?;
    db.flush()?;
    Ok(())
}
