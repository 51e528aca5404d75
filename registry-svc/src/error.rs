//! The registry's error type and its one exhaustive mapping onto gRPC status codes.

use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request is malformed; the message names the field and the rule.
    #[error("{0}")]
    InvalidArgument(String),
    /// A referenced record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A create collided with an existing record.
    #[error("{0}")]
    AlreadyExists(String),
    /// The record is in a state that forbids the change (a finished trial, a closed experiment).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A size limit was exceeded.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Stored content failed its integrity check.
    #[error("{0}")]
    DataLoss(String),
    /// The store was written by a newer format than this build reads.
    #[error(
        "the store at {path} has format version {found}, but this registry-svc reads versions up to {supported}; run a newer registry-svc on it (it was not modified)"
    )]
    IncompatibleFormat {
        path: String,
        found: u32,
        supported: u32,
    },
    /// The embedded database failed.
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    /// A file-system operation (artifacts) failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A stored record could not be decoded: the store is damaged.
    #[error("stored record {key} is damaged: {reason}")]
    Corrupt { key: String, reason: String },
    /// The store is closing.
    #[error("the registry is shutting down; retry against a running instance")]
    ShuttingDown,
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }
}

impl From<RegistryError> for Status {
    fn from(error: RegistryError) -> Self {
        let message = error.to_string();
        match error {
            RegistryError::InvalidArgument(_) => Status::invalid_argument(message),
            RegistryError::NotFound(_) => Status::not_found(message),
            RegistryError::AlreadyExists(_) => Status::already_exists(message),
            RegistryError::FailedPrecondition(_) => Status::failed_precondition(message),
            RegistryError::ResourceExhausted(_) => Status::resource_exhausted(message),
            RegistryError::DataLoss(_) | RegistryError::Corrupt { .. } => {
                Status::data_loss(message)
            }
            RegistryError::IncompatibleFormat { .. } => Status::failed_precondition(message),
            RegistryError::Storage(_) | RegistryError::Io(_) => {
                tracing::error!(error = %message, "storage failure");
                Status::internal(message)
            }
            RegistryError::ShuttingDown => Status::unavailable(message),
        }
    }
}
