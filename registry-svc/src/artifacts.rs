//! Artifacts: content-addressed files (`artifacts/ab/abcdef…`, named by sha256) with their
//! metadata in the store. Uploads stream into a temporary file, are hashed on the way, synced
//! and renamed into place, so a crash never leaves a half artifact under its name. Downloads
//! are hashed again while read: a corrupted file ends the download with DATA_LOSS.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

use ra_proto::registry::v1::experiment_event::Record;
use ra_proto::registry::v1::{Artifact, ArtifactMetadata};
use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};
use crate::ids::{EntityKind, parse_id};
use crate::keys;
use crate::store::{Page, PageRequest, Store};
use crate::validate;

/// Size of the chunks a download sends.
pub const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;
const MAX_CONTENT_TYPE_CHARS: usize = 128;

#[derive(Debug)]
pub struct ArtifactFiles {
    dir: PathBuf,
}

impl ArtifactFiles {
    /// Opens the artifact directory, removing uploads a crash left unfinished.
    pub fn open(dir: PathBuf) -> Result<Self> {
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(Self { dir })
    }

    fn final_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2]).join(sha256)
    }

    fn temp_path(&self) -> PathBuf {
        self.dir
            .join("tmp")
            .join(uuid::Uuid::now_v7().simple().to_string())
    }
}

/// An upload in progress; dropping it unfinished deletes the temporary file.
#[derive(Debug)]
pub struct ArtifactUpload<'a> {
    store: &'a Store,
    metadata: ArtifactMetadata,
    temp_path: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    size: u64,
}

impl Drop for ArtifactUpload<'_> {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

fn check_sha256(field: &str, value: &str) -> Result<()> {
    if value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(RegistryError::invalid(format!(
            "{field} {:?} is not a sha256: expected 64 lower-case hex digits",
            validate::shorten(value)
        )))
    }
}

impl ArtifactUpload<'_> {
    /// Appends a chunk; refuses once the total passes the configured artifact size limit.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let limit = self.store.settings.max_artifact_bytes;
        self.size += data.len() as u64;
        if self.size > limit {
            return Err(RegistryError::ResourceExhausted(format!(
                "artifact {:?} is over the limit of {limit} bytes (store.max_artifact_bytes)",
                self.metadata.name
            )));
        }
        self.hasher.update(data);
        let file = self.file.as_mut().ok_or(RegistryError::ShuttingDown)?;
        file.write_all(data)?;
        Ok(())
    }

    /// Syncs the file, checks the hash, moves it into place and records it durably.
    pub async fn finish(mut self) -> Result<Artifact> {
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if !self.metadata.expected_sha256.is_empty() && self.metadata.expected_sha256 != sha256 {
            return Err(RegistryError::DataLoss(format!(
                "the uploaded content hashes to {sha256}, not to expected_sha256 {}; nothing was stored",
                self.metadata.expected_sha256
            )));
        }
        let file = self.file.take().ok_or(RegistryError::ShuttingDown)?;
        let temp_path = self.temp_path.clone();
        let final_path = self.store.artifacts.final_path(&sha256);
        let placed =
            tokio::task::spawn_blocking(move || place_file(file, &temp_path, &final_path)).await;
        match placed {
            Ok(result) => result?,
            Err(join_error) => return Err(RegistryError::Io(std::io::Error::other(join_error))),
        }
        let store = self.store;
        let metadata = std::mem::take(&mut self.metadata);
        let size = self.size;
        let artifact = store.write(|write| {
            let base_key = keys::artifact(&sha256);
            let record = Artifact {
                sha256: sha256.clone(),
                size_bytes: size,
                name: metadata.name,
                content_type: metadata.content_type,
                experiment_id: metadata.experiment_id,
                trial_id: metadata.trial_id,
                created_at: Some(write.now),
            };
            if !store.contains(&base_key)? {
                write.put(&base_key, &record);
            }
            if !record.experiment_id.is_empty() {
                write.put(
                    format!(
                        "{}{sha256}",
                        keys::experiment_artifacts(&record.experiment_id)
                    ),
                    &record,
                );
                write.event(&record.experiment_id, Record::Artifact(record.clone()))?;
            }
            Ok(record)
        })?;
        store.sync().await?;
        Ok(artifact)
    }
}

fn place_file(file: File, temp_path: &PathBuf, final_path: &PathBuf) -> Result<()> {
    file.sync_all()?;
    drop(file);
    if final_path.exists() {
        // Same content already stored: content addressing makes the upload a no-op.
        std::fs::remove_file(temp_path)?;
        return Ok(());
    }
    let parent = final_path
        .parent()
        .ok_or_else(|| std::io::Error::other("artifact path has no parent"))?;
    std::fs::create_dir_all(parent)?;
    std::fs::rename(temp_path, final_path)?;
    File::open(parent)?.sync_all()?;
    Ok(())
}

/// A verified reader of one artifact's content.
#[derive(Debug)]
pub struct ArtifactReader {
    artifact: Artifact,
    file: File,
    hasher: Sha256,
    read: u64,
}

impl ArtifactReader {
    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    /// The next chunk, `None` at the end; DATA_LOSS if the content does not match its hash.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let mut buffer = vec![0u8; DOWNLOAD_CHUNK_BYTES];
        let count = self.file.read(&mut buffer)?;
        if count == 0 {
            let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
            if actual != self.artifact.sha256 || self.read != self.artifact.size_bytes {
                return Err(RegistryError::DataLoss(format!(
                    "artifact {} is corrupt on disk: {} bytes hashing to {actual}; re-upload it",
                    self.artifact.sha256, self.read
                )));
            }
            return Ok(None);
        }
        buffer.truncate(count);
        self.hasher.update(&buffer);
        self.read += count as u64;
        Ok(Some(buffer))
    }
}

impl Store {
    /// Starts an upload after checking its metadata and the records it links to.
    pub fn begin_upload(&self, metadata: ArtifactMetadata) -> Result<ArtifactUpload<'_>> {
        validate::name("metadata.name", &metadata.name)?;
        validate::bounded_line(
            "metadata.content_type",
            &metadata.content_type,
            MAX_CONTENT_TYPE_CHARS,
        )?;
        if !metadata.expected_sha256.is_empty() {
            check_sha256("metadata.expected_sha256", &metadata.expected_sha256)?;
        }
        if !metadata.trial_id.is_empty() {
            let trial = self.get_trial(&parse_id(
                EntityKind::Trial,
                "metadata.trial_id",
                &metadata.trial_id,
            )?)?;
            if !metadata.experiment_id.is_empty() && metadata.experiment_id != trial.experiment_id {
                return Err(RegistryError::invalid(format!(
                    "metadata.trial_id {} belongs to experiment {}, not {}",
                    trial.id, trial.experiment_id, metadata.experiment_id
                )));
            }
        }
        let mut metadata = metadata;
        if !metadata.experiment_id.is_empty() {
            self.existing_experiment(&metadata.experiment_id)?;
        } else if !metadata.trial_id.is_empty() {
            metadata.experiment_id = self.get_trial(&metadata.trial_id)?.experiment_id;
        }
        let temp_path = self.artifacts.temp_path();
        let file = File::create(&temp_path)?;
        Ok(ArtifactUpload {
            store: self,
            metadata,
            temp_path,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    pub fn get_artifact(&self, sha256: &str) -> Result<Artifact> {
        check_sha256("sha256", sha256)?;
        self.get_record(&keys::artifact(sha256))?
            .ok_or_else(|| RegistryError::NotFound(format!("artifact {sha256} does not exist")))
    }

    pub fn open_artifact(&self, sha256: &str) -> Result<ArtifactReader> {
        let artifact = self.get_artifact(sha256)?;
        let file = File::open(self.artifacts.final_path(sha256)).map_err(|error| {
            RegistryError::DataLoss(format!(
                "artifact {sha256} is recorded but its content cannot be read ({error}); re-upload it"
            ))
        })?;
        Ok(ArtifactReader {
            artifact,
            file,
            hasher: Sha256::new(),
            read: 0,
        })
    }

    pub fn list_artifacts(
        &self,
        experiment_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Artifact>> {
        let experiment_id = self.existing_experiment(experiment_id)?;
        self.page(
            &keys::experiment_artifacts(&experiment_id),
            page,
            |key, value| crate::records::decode(key, value).map(Some),
        )
    }
}
