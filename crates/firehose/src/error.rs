//! Domain errors of the Firehose service: facts about a request, each carrying the message
//! AWS gives for it; `api-firehose` maps each variant to an AWS error code.

use millstream_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum FirehoseError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// UpdateDestination with a stale CurrentDeliveryStreamVersionId.
    #[error("{0}")]
    ConcurrentModification(String),
    #[error("{0}")]
    InvalidKmsResource(String),
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
    #[error("metadata store failure: {0}")]
    Metadata(String),
}

impl FirehoseError {
    pub(crate) fn metadata(err: impl std::fmt::Display) -> Self {
        FirehoseError::Metadata(err.to_string())
    }
}

pub type Result<T, E = FirehoseError> = std::result::Result<T, E>;
