//! Finding a Hub dataset: its name checked, and its parquet files by split, in a folder or the
//! local Hugging Face cache.

use super::*;

impl HubDataset {
    /// Parses `hf:<owner>/<name>[:<config>]`.
    pub fn parse(name: &str) -> Result<Self, DatasetError> {
        let rest = name.strip_prefix("hf:").unwrap_or(name);
        let (repo, config) = match rest.split_once(':') {
            Some((repo, config)) => (repo, Some(config)),
            None => (rest, None),
        };
        let part_ok = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        let valid = name.len() <= 200
            && repo.split('/').count() == 2
            && repo.split('/').all(part_ok)
            && config.is_none_or(part_ok);
        if !valid {
            return Err(bad_option(
                "name",
                format!(
                    "{:?} is not a Hugging Face dataset: write hf:<owner>/<name>[:<config>], e.g. hf:stanfordnlp/imdb:plain_text",
                    crate::error::shown(name)
                ),
            ));
        }
        Ok(Self {
            repo: repo.to_owned(),
            config: config.map(str::to_owned),
        })
    }

    /// The catalog-style name, `hf:owner/name[:config]`.
    pub fn name(&self) -> String {
        match &self.config {
            Some(config) => format!("hf:{}:{config}", self.repo),
            None => format!("hf:{}", self.repo),
        }
    }

    /// `<data_dir>/hf/<owner>/<name>`.
    pub fn folder_in(&self, data_dir: &Path) -> PathBuf {
        data_dir.join("hf").join(&self.repo)
    }

    /// The newest snapshot of this repo in a Hugging Face cache (`$HF_HOME/hub`), if any.
    pub fn cached_snapshot(&self, hf_home: &Path) -> Option<PathBuf> {
        let snapshots = hf_home
            .join("hub")
            .join(format!("datasets--{}", self.repo.replace('/', "--")))
            .join("snapshots");
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(snapshots)
            .ok()?
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| {
                let modified = e.metadata().and_then(|m| m.modified());
                (modified.unwrap_or(std::time::UNIX_EPOCH), e.path())
            })
            .collect();
        found.sort();
        found.pop().map(|(_, path)| path)
    }
}

/// The split a parquet file belongs to, from its path inside the dataset folder:
/// `…/train-00000-of-00001.parquet`, `…/train/0000.parquet`, `…/test-….parquet`; validation
/// files become the test part where no test file exists.
fn split_of(relative: &Path) -> Option<&'static str> {
    let text = relative.to_string_lossy().to_lowercase();
    let pieces: Vec<&str> = text
        .split(['/', '-', '_', '.'])
        .filter(|p| !p.is_empty())
        .collect();
    for (word, split) in [
        ("train", "train"),
        ("test", "test"),
        ("validation", "validation"),
        ("valid", "validation"),
        ("dev", "validation"),
    ] {
        if pieces.contains(&word) {
            return Some(split);
        }
    }
    None
}

/// The parquet files of `dataset` under `folder` (recursively), by split, each list sorted.
pub fn parquet_files(
    folder: &Path,
    dataset: &HubDataset,
) -> Result<BTreeMap<&'static str, Vec<PathBuf>>, DatasetError> {
    let mut files = BTreeMap::<&'static str, Vec<PathBuf>>::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let listing = std::fs::read_dir(&dir).map_err(io(&dir))?;
        for entry in listing.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            let relative = path.strip_prefix(folder).unwrap_or(&path).to_path_buf();
            if let Some(config) = &dataset.config {
                let in_config = relative
                    .components()
                    .any(|c| c.as_os_str().to_string_lossy() == config.as_str());
                if !in_config {
                    continue;
                }
            }
            if let Some(split) = split_of(&relative) {
                files.entry(split).or_default().push(path);
            }
        }
    }
    for list in files.values_mut() {
        list.sort();
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_names_are_refused() {
        let imdb = HubDataset::parse("hf:stanfordnlp/imdb:plain_text").expect("valid");
        assert_eq!(imdb.repo, "stanfordnlp/imdb");
        assert_eq!(imdb.config.as_deref(), Some("plain_text"));
        assert_eq!(imdb.name(), "hf:stanfordnlp/imdb:plain_text");
        for bad in ["hf:imdb", "hf:a/b/c", "hf:../x", "hf:a/b:", "hf:a /b"] {
            assert!(HubDataset::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn splits_come_from_file_and_folder_names() {
        assert_eq!(
            split_of(Path::new("plain_text/train-00000-of-00001.parquet")),
            Some("train")
        );
        assert_eq!(
            split_of(Path::new("default/test/0000.parquet")),
            Some("test")
        );
        assert_eq!(
            split_of(Path::new("data/validation-00000-of-00001.parquet")),
            Some("validation")
        );
        assert_eq!(
            split_of(Path::new("plain_text/unsupervised-00000.parquet")),
            None
        );
    }
}
