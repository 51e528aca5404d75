//! Errors of reading and writing prepared datasets; each names the file and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PreparedError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "{path} was written in prepared-dataset format {found}; this build reads up to {supported}: upgrade, or prepare the dataset again"
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path} does not match its manifest: {message}; prepare the dataset again")]
    Mismatch { path: PathBuf, message: String },
    #[error("cannot write the prepared dataset: {0}")]
    Invalid(String),
    #[error("the dataset has no split {name:?}; it has {available}")]
    NoSplit { name: String, available: String },
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PreparedError + '_ {
    move |source| PreparedError::Io {
        path: path.to_path_buf(),
        source,
    }
}
