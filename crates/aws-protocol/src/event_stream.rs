//! `application/vnd.amazon.eventstream` framing for streaming responses (SubscribeToShard).
//!
//! The binary framing (prelude, CRCs, typed headers) is done by `aws-smithy-eventstream`, the
//! crate the AWS SDK for Rust decodes with, so both ends share one implementation of it. This
//! module only decides which headers each kind of frame carries:
//!
//! | frame | `:message-type` | type header | payload |
//! |---|---|---|---|
//! | initial response | `event` | `:event-type: initial-response` | `{}` |
//! | event | `event` | `:event-type: <EventName>` | the serialized event shape |
//! | exception | `exception` | `:exception-type: <ErrorCode>` | `{"message": ...}` |

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde::Serialize;

use crate::codec::{Protocol, encode};

const MESSAGE_TYPE: &str = ":message-type";
const EVENT_TYPE: &str = ":event-type";
const EXCEPTION_TYPE: &str = ":exception-type";
const CONTENT_TYPE: &str = ":content-type";
const INITIAL_RESPONSE: &str = "initial-response";

/// The `:content-type` of event payloads: JSON clients get plain JSON, CBOR clients (the Java
/// SDKs) get CBOR with millisecond timestamps, mirroring the request.
fn payload_content_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Json => "application/json",
        Protocol::Cbor => crate::literals::CONTENT_TYPE_CBOR_1_1,
    }
}

fn frame(headers: Vec<Header>, payload: Bytes) -> Bytes {
    let message = Message::new_from_parts(headers, payload);
    let mut out = Vec::with_capacity(message.payload().len() + 128);
    write_message_to(&message, &mut out)
        .expect("headers are short strings and payloads are bounded");
    Bytes::from(out)
}

fn string(value: &'static str) -> HeaderValue {
    HeaderValue::String(value.into())
}

/// The first frame of every stream: the operation's (empty) non-streaming output.
pub fn initial_response(protocol: Protocol) -> Bytes {
    #[derive(Serialize)]
    struct Empty {}
    frame(
        vec![
            Header::new(MESSAGE_TYPE, string("event")),
            Header::new(EVENT_TYPE, string(INITIAL_RESPONSE)),
            Header::new(CONTENT_TYPE, string(payload_content_type(protocol))),
        ],
        encode(protocol, &Empty {}),
    )
}

/// One event named `event_type` with `payload` serialized in `protocol`.
pub fn event<T: Serialize>(protocol: Protocol, event_type: &'static str, payload: &T) -> Bytes {
    encoded_event(protocol, event_type, encode(protocol, payload))
}

/// One event named `event_type` whose payload is already encoded in `protocol`.
pub fn encoded_event(protocol: Protocol, event_type: &'static str, payload: Bytes) -> Bytes {
    frame(
        vec![
            Header::new(MESSAGE_TYPE, string("event")),
            Header::new(EVENT_TYPE, string(event_type)),
            Header::new(CONTENT_TYPE, string(payload_content_type(protocol))),
        ],
        payload,
    )
}

/// A modeled error inside the stream; the stream ends after it.
pub fn exception(protocol: Protocol, code: &'static str, message: &str) -> Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        message: &'a str,
    }
    frame(
        vec![
            Header::new(MESSAGE_TYPE, string("exception")),
            Header::new(EXCEPTION_TYPE, string(code)),
            Header::new(CONTENT_TYPE, string(payload_content_type(protocol))),
        ],
        encode(protocol, &Body { message }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    #[test]
    fn initial_response_matches_the_reference_vector() {
        // 104 bytes, prelude 00 00 00 68 00 00 00 56 4E 68 17 24, message CRC FE 94 2C 1D
        // (computed independently for our reference sheet).
        let bytes = initial_response(Protocol::Json);
        assert_eq!(bytes.len(), 104);
        assert_eq!(
            &bytes[..12],
            &[0, 0, 0, 0x68, 0, 0, 0, 0x56, 0x4E, 0x68, 0x17, 0x24]
        );
        assert_eq!(&bytes[100..], &[0xFE, 0x94, 0x2C, 0x1D]);
    }

    #[test]
    fn exceptions_round_trip_through_the_sdk_decoder() {
        let bytes = exception(Protocol::Json, "ResourceInUseException", "taken over");
        let message = read_message_from(bytes).unwrap();
        let header = |name: &str| {
            message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .map(|h| h.value().as_string().unwrap().as_str().to_string())
        };
        assert_eq!(header(":message-type").as_deref(), Some("exception"));
        assert_eq!(
            header(":exception-type").as_deref(),
            Some("ResourceInUseException")
        );
        assert_eq!(&message.payload()[..], br#"{"message":"taken over"}"#);
    }
}
