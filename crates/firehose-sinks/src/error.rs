//! The one error type of this crate, with the retry class the delivery engine acts on.

use std::path::PathBuf;

/// Whether trying the same delivery again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// The destination or the network failed; the same call may succeed later.
    Retryable,
    /// The configuration or the data is wrong; retrying the same call fails the same way.
    Permanent,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("invalid destination configuration: {reason}")]
    InvalidConfig { reason: String },

    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },

    #[error("object {key:?} not found in bucket {bucket:?}")]
    ObjectNotFound { bucket: String, key: String },

    #[error(
        "object {key:?} in bucket {bucket:?} is {size_bytes} bytes, over the {limit_bytes}-byte read limit"
    )]
    ObjectTooLarge {
        bucket: String,
        key: String,
        size_bytes: u64,
        limit_bytes: u64,
    },

    #[error("listing bucket {bucket:?} under {prefix:?} found more than {limit} keys")]
    ListTooLong {
        bucket: String,
        prefix: String,
        limit: usize,
    },

    #[error("object store {operation} of {key:?} in bucket {bucket:?} failed")]
    ObjectStore {
        operation: &'static str,
        bucket: String,
        key: String,
        /// Boxed: object_store's error is large and would bloat every `Result` of this crate.
        #[source]
        source: Box<object_store::Error>,
    },

    #[error("cannot prepare the embedded bucket directory {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),

    #[error("COPY option {option:?} is not supported: {reason}")]
    UnsupportedCopyOption { option: String, reason: String },

    #[error("staged data does not match the COPY format at line {line}: {reason}")]
    InvalidCopyData { line: u64, reason: String },

    #[error("cannot connect to the database at {host}:{port}")]
    DatabaseConnect {
        host: String,
        port: u16,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("loading into table {table:?} failed")]
    Database {
        table: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl SinkError {
    /// How the delivery engine should treat this failure. Database errors count as retryable:
    /// Firehose retries a failed Redshift COPY for the whole retry duration, since the usual
    /// causes (cluster paused, table missing, permissions) are fixed outside the stream.
    pub fn retry_class(&self) -> RetryClass {
        match self {
            SinkError::InvalidConfig { .. }
            | SinkError::InvalidKey { .. }
            | SinkError::ObjectNotFound { .. }
            | SinkError::ObjectTooLarge { .. }
            | SinkError::ListTooLong { .. }
            | SinkError::UnsupportedCopyOption { .. }
            | SinkError::InvalidCopyData { .. }
            | SinkError::HttpClient(_) => RetryClass::Permanent,
            SinkError::ObjectStore { .. }
            | SinkError::Io { .. }
            | SinkError::DatabaseConnect { .. }
            | SinkError::Database { .. } => RetryClass::Retryable,
        }
    }
}
