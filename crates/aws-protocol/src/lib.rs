//! AWS wire plumbing shared by every Millstream API. Knows no service.
//!
//! - [`codec`]: `Protocol` (awsJson1.1 or CBOR 1.1), `decode`/`encode` of generated shapes.
//! - [`Blob`] and [`Timestamp`]: the two model types whose wire form differs between JSON and CBOR.
//! - [`error`]: the `{"__type": …, "message": …}` envelope, status codes and response headers.
//! - [`validation`]: the collector behind AWS's `N validation errors detected: …` messages.
//! - [`sigv4`]: SigV4 header and presigned-query verification.
//! - [`literals`]: every AWS literal (header names, content types, `__type` codes).

pub mod blob;
pub mod codec;
pub mod error;
pub mod event_stream;
pub mod literals;
pub mod sigv4;
pub mod timestamp;
pub mod validation;

pub use blob::Blob;
pub use codec::{Protocol, ProtocolError, decode, encode};
pub use error::{EncodedError, MessageKey, encode_error};
pub use timestamp::Timestamp;
pub use validation::{Validate, ValidationErrors, ValidationValue};
