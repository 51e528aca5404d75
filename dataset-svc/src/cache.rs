//! The prepared-dataset cache as a whole: when each entry was last used (a marker per entry
//! under `.usage/`, outside the content-addressed entries), deletion that readers never see
//! half done (the entry is renamed away first), and a size cap enforced by evicting the least
//! recently used entries.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{DatasetError, io};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// 0: no cap.
    max_bytes: u64,
}

/// One entry's size and last use.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub prepared_id: String,
    pub bytes: u64,
    pub last_used: SystemTime,
}

impl Cache {
    pub fn new(root: &Path, max_bytes: u64) -> Self {
        Self {
            root: root.to_path_buf(),
            max_bytes,
        }
    }

    fn usage_marker(&self, prepared_id: &str) -> PathBuf {
        self.root.join(".usage").join(prepared_id)
    }

    /// Records that `prepared_id` was used now. Failing to record is logged, not fatal.
    pub fn touch(&self, prepared_id: &str) {
        self.touch_at(prepared_id, SystemTime::now());
    }

    /// Records that `prepared_id` was last used at `when`.
    pub fn touch_at(&self, prepared_id: &str, when: SystemTime) {
        let marker = self.usage_marker(prepared_id);
        let recorded = marker
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(&marker))
            .and_then(|file| file.set_modified(when));
        if let Err(error) = recorded {
            tracing::warn!(prepared_id, %error, "could not record the use of a cache entry");
        }
    }

    /// Every entry with its size and last use (its marker's time, else the entry's own).
    pub fn entries(&self) -> Result<Vec<CacheEntry>, DatasetError> {
        let listing = match std::fs::read_dir(&self.root) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io(&self.root)(error)),
        };
        let mut entries = Vec::new();
        for item in listing.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !item.path().is_dir() {
                continue;
            }
            let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
            let last_used = modified(&self.usage_marker(&name))
                .or_else(|| modified(&item.path()))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            entries.push(CacheEntry {
                bytes: directory_bytes(&item.path()),
                prepared_id: name,
                last_used,
            });
        }
        entries.sort_by_key(|entry| entry.last_used);
        Ok(entries)
    }

    /// Removes `prepared_id`'s entry: renamed out of sight first, then deleted. Returns the
    /// bytes freed.
    pub fn delete(&self, prepared_id: &str) -> Result<u64, DatasetError> {
        let dir = self.root.join(prepared_id);
        if !dir.is_dir() {
            return Err(DatasetError::UnknownPrepared(prepared_id.to_owned()));
        }
        let bytes = directory_bytes(&dir);
        let unique = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let doomed = self.root.join(format!(
            ".deleting-{prepared_id}-{}-{unique}",
            std::process::id()
        ));
        std::fs::rename(&dir, &doomed).map_err(io(&dir))?;
        std::fs::remove_dir_all(&doomed).map_err(io(&doomed))?;
        let _ = std::fs::remove_file(self.usage_marker(prepared_id));
        Ok(bytes)
    }

    /// Evicts the least recently used entries other than `keep` until the cache fits its
    /// cap; returns what was evicted.
    pub fn enforce_cap(&self, keep: &str) -> Result<Vec<CacheEntry>, DatasetError> {
        if self.max_bytes == 0 {
            return Ok(Vec::new());
        }
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        let mut evicted = Vec::new();
        for entry in entries {
            if total <= self.max_bytes {
                break;
            }
            if entry.prepared_id == keep {
                continue;
            }
            self.delete(&entry.prepared_id)?;
            total -= entry.bytes;
            tracing::info!(prepared_id = %entry.prepared_id, bytes = entry.bytes, "evicted from the dataset cache");
            evicted.push(entry);
        }
        Ok(evicted)
    }
}

fn directory_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|listing| {
            listing
                .flatten()
                .filter_map(|item| item.metadata().ok())
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(root: &Path, id: &str, bytes: usize) {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("train.safetensors"), vec![0u8; bytes]).expect("write");
    }

    #[test]
    fn the_cap_evicts_the_least_recently_used_first_and_keeps_the_newest() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(root.path(), 250);
        let minutes_ago = |m: u64| SystemTime::now() - std::time::Duration::from_secs(60 * m);
        for (id, age) in [("a", 30), ("b", 20), ("c", 10)] {
            entry(root.path(), id, 100);
            cache.touch_at(id, minutes_ago(age));
        }
        cache.touch("a");
        let evicted = cache.enforce_cap("c").expect("cap");
        let ids: Vec<&str> = evicted.iter().map(|e| e.prepared_id.as_str()).collect();
        assert_eq!(ids, ["b"], "b is the least recently used");
        let left: Vec<String> = cache
            .entries()
            .expect("entries")
            .into_iter()
            .map(|e| e.prepared_id)
            .collect();
        assert_eq!(left, ["c", "a"]);
        assert!(matches!(
            cache.delete("b"),
            Err(DatasetError::UnknownPrepared(_))
        ));
        assert_eq!(cache.delete("a").expect("delete"), 100);
        assert!(!root.path().join("a").exists());
    }
}
