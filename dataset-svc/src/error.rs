//! Errors of reading originals and preparing datasets; each names the file or the option and
//! says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is missing; put the original file {file_name} into {folder}")]
    MissingFile {
        path: PathBuf,
        file_name: String,
        folder: PathBuf,
    },
    #[error("{path} is not a valid {format} file: {message}")]
    Malformed {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("invalid preparation option {option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    #[error("unknown dataset {name:?}: {suggestions}")]
    UnknownDataset { name: String, suggestions: String },
    #[error(
        "{path} has sha256 {found}, the canonical file {expected}: download it again, or prepare this copy with checksum checks off"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("downloading {url} failed: {message}")]
    Download { url: String, message: String },
    /// Originals that must be put in place by hand (offline, or no direct download).
    #[error("{0}")]
    NeedOriginals(String),
    #[error("no prepared dataset {0:?} in the cache; prepare it first (PrepareDataset)")]
    UnknownPrepared(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Prepared(#[from] ra_prepared::PreparedError),
    /// A researcher's own file or folder that is not there.
    #[error("{path} does not exist{hint}")]
    NotThere { path: PathBuf, hint: String },
    /// Files over the configured size cap.
    #[error("{what} is {bytes} bytes, over the cap of {cap} bytes ({setting})")]
    TooLarge {
        what: String,
        bytes: u64,
        cap: u64,
        setting: &'static str,
    },
    /// A path this service may not read.
    #[error("{0}")]
    Forbidden(String),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn malformed(
    path: &std::path::Path,
    format: &'static str,
    message: impl Into<String>,
) -> DatasetError {
    DatasetError::Malformed {
        path: path.to_path_buf(),
        format,
        message: message.into(),
    }
}

pub(crate) fn bad_option(option: &'static str, message: impl Into<String>) -> DatasetError {
    DatasetError::Option {
        option,
        message: message.into(),
    }
}

/// A value a client sent, as an error message shows it: at most 60 characters, so that a huge
/// name cannot swell a status message past what a gRPC trailer carries.
pub(crate) fn shown(value: &str) -> String {
    const SHOWN: usize = 60;
    if value.chars().count() <= SHOWN {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(SHOWN).collect::<String>())
    }
}
