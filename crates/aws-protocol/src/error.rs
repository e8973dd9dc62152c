//! The AWS JSON/CBOR error envelope: `{"__type": "<Code>", "message": "<text>"}`, its status
//! code and headers. Plain data; the server crate turns it into an HTTP response.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::codec::{Protocol, encode};
use crate::literals::{
    ERROR_TYPE_MEMBER, HEADER_CONTENT_TYPE, HEADER_ERROR_TYPE, HEADER_REQUEST_ID, codes,
};

/// Which member carries the message. AWS is inconsistent and clients notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKey {
    /// `message`: modeled service errors, `ValidationException`, auth errors.
    Lower,
    /// `Message`: `SerializationException`.
    Upper,
    /// No message member at all: `UnknownOperationException`, `InternalFailure`.
    None,
}

impl MessageKey {
    fn member(self) -> Option<&'static str> {
        match self {
            Self::Lower => Some("message"),
            Self::Upper => Some("Message"),
            Self::None => None,
        }
    }
}

/// An encoded error response.
#[derive(Debug, Clone)]
pub struct EncodedError {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl EncodedError {
    /// Overrides the status (e.g. 413 for a body over the size limit).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn into_parts(self) -> (StatusCode, Vec<(HeaderName, HeaderValue)>, Bytes) {
        (self.status, self.headers, self.body)
    }

    /// The `x-amzn-RequestId` this response carries.
    pub fn request_id(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name.as_str() == HEADER_REQUEST_ID)
            .and_then(|(_, value)| value.to_str().ok())
    }
}

/// HTTP status AWS uses for an error code: 500 for `InternalFailure`, 503 for
/// `ServiceUnavailable`, 400 for everything else (client errors, including throttling:
/// botocore's legacy retry policy only retries Kinesis throttling on 400).
pub fn status_for_code(code: &str) -> StatusCode {
    match code {
        codes::INTERNAL_FAILURE | "InternalFailureException" => StatusCode::INTERNAL_SERVER_ERROR,
        codes::SERVICE_UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

struct Envelope<'a> {
    code: &'a str,
    message: Option<(&'static str, &'a str)>,
}

impl Serialize for Envelope<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + usize::from(self.message.is_some())))?;
        map.serialize_entry(ERROR_TYPE_MEMBER, self.code)?;
        if let Some((key, message)) = self.message {
            map.serialize_entry(key, message)?;
        }
        map.end()
    }
}

/// Encodes an error envelope with a fresh request id, `x-amzn-ErrorType: <code>`, the
/// request's content type and the status from [`status_for_code`]. `message` is dropped when
/// `key` is [`MessageKey::None`].
pub fn encode_error(
    protocol: Protocol,
    code: &str,
    message: Option<&str>,
    key: MessageKey,
) -> EncodedError {
    let envelope = Envelope {
        code,
        message: key.member().zip(message),
    };
    let body = encode(protocol, &envelope);
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut headers = vec![
        (
            HeaderName::from_static(HEADER_REQUEST_ID),
            HeaderValue::from_str(&request_id).expect("a UUID is a valid header value"),
        ),
        (
            HeaderName::from_static(HEADER_CONTENT_TYPE),
            HeaderValue::from_static(protocol.content_type()),
        ),
    ];
    if let Ok(value) = HeaderValue::from_str(code) {
        headers.push((HeaderName::from_static(HEADER_ERROR_TYPE), value));
    }
    EncodedError {
        status: status_for_code(code),
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_envelopes_use_the_requested_message_key() {
        let lower = encode_error(
            Protocol::Json,
            "ResourceNotFoundException",
            Some("gone"),
            MessageKey::Lower,
        );
        assert_eq!(lower.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            &lower.body[..],
            br#"{"__type":"ResourceNotFoundException","message":"gone"}"#
        );
        let upper = encode_error(
            Protocol::Json,
            "SerializationException",
            Some("bad"),
            MessageKey::Upper,
        );
        assert_eq!(
            &upper.body[..],
            br#"{"__type":"SerializationException","Message":"bad"}"#
        );
        let none = encode_error(
            Protocol::Json,
            "UnknownOperationException",
            Some("x"),
            MessageKey::None,
        );
        assert_eq!(&none.body[..], br#"{"__type":"UnknownOperationException"}"#);
        let internal = encode_error(Protocol::Json, "InternalFailure", None, MessageKey::None);
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            encode_error(Protocol::Json, "ServiceUnavailable", None, MessageKey::None).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn headers_carry_request_id_error_type_and_content_type() {
        let err = encode_error(
            Protocol::Cbor,
            "ValidationException",
            Some("m"),
            MessageKey::Lower,
        );
        let get = |name: &str| {
            err.headers
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            get("x-amzn-errortype").as_deref(),
            Some("ValidationException")
        );
        assert_eq!(
            get("content-type").as_deref(),
            Some("application/x-amz-cbor-1.1")
        );
        let id = get("x-amzn-requestid").unwrap();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        let decoded: ciborium::Value = ciborium::from_reader(&err.body[..]).unwrap();
        let map = decoded.as_map().unwrap();
        assert_eq!(map[0].0.as_text(), Some("__type"));
        assert_eq!(map[0].1.as_text(), Some("ValidationException"));
        assert_eq!(map[1].0.as_text(), Some("message"));
        assert_eq!(map[1].1.as_text(), Some("m"));
    }
}
