//! The only place AWS error names meet domain errors.

use millstream_aws_protocol::error::{EncodedError, MessageKey, encode_error};
use millstream_aws_protocol::literals::codes;
use millstream_aws_protocol::{Protocol, ProtocolError, ValidationErrors};
use millstream_streams::StreamsError;

/// An AWS error: code, message, and which key carries the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisError {
    pub code: &'static str,
    pub message: Option<String>,
    pub key: MessageKey,
}

impl KinesisError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: Some(message.into()),
            key: MessageKey::Lower,
        }
    }

    /// SubscribeToShard answers with an event stream, which the server handles itself; the
    /// buffered path only sees it when that support is missing.
    pub(crate) fn subscribe_needs_streaming() -> Self {
        Self::new(
            "InvalidArgumentException",
            "SubscribeToShard is not available on this endpoint.",
        )
    }

    pub fn unknown_operation() -> Self {
        Self {
            code: codes::UNKNOWN_OPERATION_EXCEPTION,
            message: None,
            key: MessageKey::None,
        }
    }

    pub fn internal() -> Self {
        Self {
            code: codes::INTERNAL_FAILURE,
            message: None,
            key: MessageKey::None,
        }
    }

    pub fn encode(&self, protocol: Protocol) -> EncodedError {
        encode_error(protocol, self.code, self.message.as_deref(), self.key)
    }
}

impl From<ProtocolError> for KinesisError {
    fn from(err: ProtocolError) -> Self {
        Self {
            code: err.code(),
            message: err.message().map(str::to_string),
            key: MessageKey::Upper,
        }
    }
}

impl From<ValidationErrors> for KinesisError {
    fn from(err: ValidationErrors) -> Self {
        Self::new(codes::VALIDATION_EXCEPTION, err.message())
    }
}

impl From<StreamsError> for KinesisError {
    fn from(err: StreamsError) -> Self {
        match err {
            StreamsError::NotFound(m) => Self::new("ResourceNotFoundException", m),
            StreamsError::InUse(m) => Self::new("ResourceInUseException", m),
            StreamsError::InvalidArgument(m) => Self::new("InvalidArgumentException", m),
            StreamsError::LimitExceeded(m) => Self::new("LimitExceededException", m),
            StreamsError::Validation(m) => Self::new(codes::VALIDATION_EXCEPTION, m),
            StreamsError::ExpiredIterator(m) => Self::new("ExpiredIteratorException", m),
            StreamsError::ExpiredNextToken(m) => Self::new("ExpiredNextTokenException", m),
            StreamsError::ThroughputExceeded(m) => {
                Self::new("ProvisionedThroughputExceededException", m)
            }
            // Internal detail goes to the log, never to the client.
            StreamsError::Storage(source) => {
                tracing::error!(error = %source, "storage failure");
                Self::internal()
            }
            StreamsError::Metadata(source) => {
                tracing::error!(error = %source, "metadata failure");
                Self::internal()
            }
        }
    }
}
