//! The only place AWS error names meet Firehose domain errors.

use millstream_aws_protocol::error::{EncodedError, MessageKey, encode_error};
use millstream_aws_protocol::literals::codes;
use millstream_aws_protocol::{Protocol, ProtocolError, ValidationErrors};
use millstream_firehose::FirehoseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirehoseApiError {
    pub code: &'static str,
    pub message: Option<String>,
    pub key: MessageKey,
}

impl FirehoseApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: Some(message.into()),
            key: MessageKey::Lower,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgumentException", message)
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

impl From<ProtocolError> for FirehoseApiError {
    fn from(err: ProtocolError) -> Self {
        Self {
            code: err.code(),
            message: err.message().map(str::to_string),
            key: MessageKey::Upper,
        }
    }
}

impl From<ValidationErrors> for FirehoseApiError {
    fn from(err: ValidationErrors) -> Self {
        Self::new(codes::VALIDATION_EXCEPTION, err.message())
    }
}

impl From<FirehoseError> for FirehoseApiError {
    fn from(err: FirehoseError) -> Self {
        match err {
            FirehoseError::NotFound(m) => Self::new("ResourceNotFoundException", m),
            FirehoseError::InUse(m) => Self::new("ResourceInUseException", m),
            FirehoseError::InvalidArgument(m) => Self::invalid_argument(m),
            FirehoseError::LimitExceeded(m) => Self::new("LimitExceededException", m),
            FirehoseError::ConcurrentModification(m) => {
                Self::new("ConcurrentModificationException", m)
            }
            FirehoseError::InvalidKmsResource(m) => Self::new("InvalidKMSResourceException", m),
            // Internal detail goes to the log, never to the client.
            FirehoseError::Storage(source) => {
                tracing::error!(error = %source, "storage failure");
                Self::new("ServiceUnavailableException", "Slow down.")
            }
            FirehoseError::Metadata(source) => {
                tracing::error!(error = %source, "metadata failure");
                Self::internal()
            }
        }
    }
}
