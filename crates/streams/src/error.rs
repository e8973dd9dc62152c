//! Domain errors of the Data Streams service.
//!
//! Each variant is a fact about the request (the stream does not exist, the argument is out of
//! range, ...) carrying the human message AWS gives for it; `api-kinesis` maps each variant to
//! an AWS error code in one exhaustive match.

use millstream_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// A stream, shard or consumer that does not exist (or not yet / no longer).
    #[error("{0}")]
    NotFound(String),
    /// The resource exists but its state forbids the operation.
    #[error("{0}")]
    InUse(String),
    /// A semantically invalid argument (the model's constraints already passed).
    #[error("{0}")]
    InvalidArgument(String),
    /// A quota or rate limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// A rule AWS reports as ValidationException though the model cannot express it.
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    ExpiredIterator(String),
    #[error("{0}")]
    ExpiredNextToken(String),
    /// Per-shard throughput emulation refused the request.
    #[error("{0}")]
    ThroughputExceeded(String),
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
    #[error("metadata store failure: {0}")]
    Metadata(String),
}

impl StreamsError {
    pub(crate) fn metadata(err: impl std::fmt::Display) -> Self {
        StreamsError::Metadata(err.to_string())
    }
}

pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
