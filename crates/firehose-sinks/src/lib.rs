//! Firehose destinations: S3-compatible object stores, HTTP endpoints, PostgreSQL.
//!
//! Each module is one destination the delivery engine hands a finished batch to:
//!
//! - [`objects`]: S3 objects (reference §7.1), on an embedded directory tree or on any
//!   S3-compatible service. Also the staging store for Redshift.
//! - [`http_endpoint`]: the Firehose HTTP endpoint protocol (§11), retries included, because the
//!   retry budget and the request id that stays the same across attempts are part of the contract.
//! - [`postgres`]: Redshift `COPY` semantics (§10) played against PostgreSQL.
//!
//! Destinations know nothing of delivery streams, buffering or clocks beyond what a call passes
//! in; the engine decides what to retry from [`SinkError::retry_class`].

mod error;
pub mod http_endpoint;
pub mod objects;
pub mod postgres;

pub use error::{RetryClass, SinkError};
pub use http_endpoint::{HttpDelivery, HttpEndpoint, HttpEndpointConfig, HttpFailure};
pub use objects::{ObjectBackend, ObjectHead, ObjectTarget, bucket_from_arn};
pub use postgres::{PostgresConfig, PostgresTarget};

/// rustls needs a process-wide crypto provider before any TLS client is built (reqwest is built
/// with `rustls-no-provider` so that aws-lc-rs stays out of the build). Installing fails only when
/// a provider is already installed, by us or by the embedding binary, and either is fine.
pub(crate) fn install_tls_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}
