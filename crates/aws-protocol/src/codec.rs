//! Request/response body codecs: awsJson1.1 (serde_json) and the CBOR 1.1 variant (ciborium).
//!
//! Decoding failures become `SerializationException`s whose `Message` reproduces the wording
//! AWS's Coral JSON layer uses (recorded against real AWS by kinesalite's tests), e.g.
//! `class java.lang.Boolean can not be converted to an String` or `Expected list or null`.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{EncodedError, MessageKey, encode_error};
use crate::literals::{CONTENT_TYPE_CBOR_1_1, CONTENT_TYPE_JSON_1_1, codes};

/// Wire protocol of one request, chosen from its `Content-Type`; responses mirror it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Json,
    Cbor,
}

impl Protocol {
    /// Picks the protocol from a `Content-Type` value (parameters such as `; charset=` ignored,
    /// case-insensitive). `None` for anything else, including `application/json`.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(CONTENT_TYPE_JSON_1_1) {
            Some(Self::Json)
        } else if essence.eq_ignore_ascii_case(CONTENT_TYPE_CBOR_1_1) {
            Some(Self::Cbor)
        } else {
            None
        }
    }

    /// The `Content-Type` responses in this protocol carry.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Json => CONTENT_TYPE_JSON_1_1,
            Self::Cbor => CONTENT_TYPE_CBOR_1_1,
        }
    }
}

/// A request body that could not be turned into the operation's input shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `SerializationException`: malformed body (no message, as AWS) or a type mismatch
    /// (message in AWS's wording, sent under the capitalised `Message` key).
    #[error("SerializationException: {}", message.as_deref().unwrap_or("malformed request body"))]
    Serialization { message: Option<String> },
}

impl ProtocolError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Serialization { .. } => codes::SERIALIZATION_EXCEPTION,
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Serialization { message } => message.as_deref(),
        }
    }

    /// The full error response (400, `Message` key, mirrored content type).
    pub fn to_response(&self, protocol: Protocol) -> EncodedError {
        encode_error(protocol, self.code(), self.message(), MessageKey::Upper)
    }
}

/// An empty CBOR map, the CBOR reading of an empty body.
const CBOR_EMPTY_MAP: &[u8] = &[0xa0];

/// Decodes a request body. An empty body reads as `{}` (every member absent); JSON `null`
/// members are absent; unknown members are ignored; CBOR may use definite or indefinite
/// lengths anywhere.
pub fn decode<T: DeserializeOwned>(protocol: Protocol, body: &[u8]) -> Result<T, ProtocolError> {
    match protocol {
        Protocol::Json => {
            let body = if body.iter().all(u8::is_ascii_whitespace) {
                b"{}"
            } else {
                body
            };
            serde_json::from_slice(body).map_err(|err| {
                let message = match err.classify() {
                    serde_json::error::Category::Data => Some(aws_message(&err.to_string())),
                    // Unparseable JSON: AWS answers SerializationException without a message.
                    serde_json::error::Category::Syntax
                    | serde_json::error::Category::Eof
                    | serde_json::error::Category::Io => None,
                };
                ProtocolError::Serialization { message }
            })
        }
        Protocol::Cbor => {
            let body = if body.is_empty() {
                CBOR_EMPTY_MAP
            } else {
                body
            };
            match ciborium::from_reader::<T, _>(body) {
                Ok(value) => Ok(value),
                Err(first) => {
                    // The streaming decoder reads map keys only as definite-length text. Jackson
                    // may chunk strings, so retry through `ciborium::Value`, which accepts every
                    // definite/indefinite form, before reporting the first error.
                    let retried = ciborium::from_reader::<ciborium::Value, _>(body)
                        .ok()
                        .and_then(|value| value.deserialized::<T>().ok());
                    retried.ok_or_else(|| ProtocolError::Serialization {
                        message: cbor_message(&first),
                    })
                }
            }
        }
    }
}

fn cbor_message(err: &ciborium::de::Error<std::io::Error>) -> Option<String> {
    match err {
        ciborium::de::Error::Semantic(_, message) => Some(aws_message(message)),
        ciborium::de::Error::Io(_)
        | ciborium::de::Error::Syntax(_)
        | ciborium::de::Error::RecursionLimitExceeded => None,
    }
}

/// Encodes a response body.
pub fn encode<T: Serialize>(protocol: Protocol, value: &T) -> Bytes {
    match protocol {
        Protocol::Json => Bytes::from(
            serde_json::to_vec(value)
                .expect("generated shapes have string keys and finite numbers"),
        ),
        Protocol::Cbor => {
            let mut out = Vec::new();
            ciborium::into_writer(value, &mut out).expect("writing CBOR into a Vec cannot fail");
            Bytes::from(out)
        }
    }
}

/// AWS's SerializationException wording for type mismatches.
pub(crate) mod type_mismatch {
    pub const START_OF_LIST: &str = "Start of list found where not expected";
    pub const START_OF_STRUCTURE: &str = "Start of structure or map found where not expected.";
    pub const EXPECTED_LIST: &str = "Expected list or null";
    pub const EXPECTED_MAP: &str = "Expected map or null";
    pub const EXPECTED_STRUCTURE: &str = "Expected null";

    /// `target` reads like AWS's: `an String`, `an Integer`, `a Blob` (grammar sic).
    pub fn boolean(target: &str) -> String {
        format!("class java.lang.Boolean can not be converted to {target}")
    }

    pub fn number(target: &str) -> String {
        format!(
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to {target}"
        )
    }

    pub fn string(target: &str) -> String {
        format!("class java.lang.String can not be converted to {target}")
    }
}

/// What a serde "invalid type" error found on the wire.
enum Found<'a> {
    Boolean,
    Number,
    Text(Option<&'a str>),
    List,
    Map,
    Other,
}

/// What the shape wanted.
enum Wanted {
    String,
    Integer,
    Double,
    Boolean,
    Blob,
    List,
    Map,
    Structure,
}

/// Translates a serde/ciborium error message into AWS's words. Messages our own visitors
/// produce (Blob, Timestamp) are already AWS's and pass through; anything unrecognised
/// passes through too (minus serde_json's position suffix).
fn aws_message(raw: &str) -> String {
    let message = match raw.rfind(" at line ") {
        Some(index) if raw[index..].contains(" column ") => &raw[..index],
        _ => raw,
    };
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_owned();
    };
    let Some((found, wanted)) = rest.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let found = if found.starts_with("boolean") {
        Found::Boolean
    } else if found.starts_with("integer") || found.starts_with("floating point") {
        Found::Number
    } else if let Some(text) = found.strip_prefix("string \"") {
        Found::Text(text.strip_suffix('"'))
    } else if found == "string" {
        Found::Text(None)
    } else if found == "sequence" {
        Found::List
    } else if found == "map" {
        Found::Map
    } else {
        Found::Other
    };
    let wanted = match wanted {
        "a string" | "str" | "string" | "a borrowed string" | "str or bytes" => Wanted::String,
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "integer" => Wanted::Integer,
        "f32" | "f64" | "float" => Wanted::Double,
        "a boolean" | "bool" => Wanted::Boolean,
        "a Blob" => Wanted::Blob,
        "a sequence" | "array" => Wanted::List,
        "a map" | "map" => Wanted::Map,
        other if other.starts_with("struct ") => Wanted::Structure,
        _ => return message.to_owned(),
    };
    match (wanted, found) {
        (Wanted::List, Found::Map) => type_mismatch::START_OF_STRUCTURE.to_owned(),
        (Wanted::List, _) => type_mismatch::EXPECTED_LIST.to_owned(),
        (_, Found::List) => type_mismatch::START_OF_LIST.to_owned(),
        (Wanted::Map, _) => type_mismatch::EXPECTED_MAP.to_owned(),
        (Wanted::Structure, _) => type_mismatch::EXPECTED_STRUCTURE.to_owned(),
        (_, Found::Map) => type_mismatch::START_OF_STRUCTURE.to_owned(),
        (Wanted::String, Found::Boolean) => type_mismatch::boolean("an String"),
        (Wanted::String, Found::Number) => type_mismatch::number("an String"),
        (Wanted::Blob, Found::Boolean) => type_mismatch::boolean("a Blob"),
        (Wanted::Blob, Found::Number) => type_mismatch::number("a Blob"),
        (Wanted::Integer, Found::Boolean) => type_mismatch::boolean("an Integer"),
        (Wanted::Integer, Found::Text(_)) => type_mismatch::string("an Integer"),
        (Wanted::Double, Found::Boolean) => type_mismatch::boolean("an Double"),
        (Wanted::Double, Found::Text(_)) => type_mismatch::string("an Double"),
        (Wanted::Boolean, Found::Number) => type_mismatch::number("an Boolean"),
        (Wanted::Boolean, Found::Text(Some(text))) => {
            format!(
                "'{}' can not be converted to an Boolean",
                text.to_uppercase()
            )
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_selects_protocol() {
        assert_eq!(
            Protocol::from_content_type("application/x-amz-json-1.1"),
            Some(Protocol::Json)
        );
        assert_eq!(
            Protocol::from_content_type("Application/X-Amz-Cbor-1.1; charset=utf-8"),
            Some(Protocol::Cbor)
        );
        assert_eq!(Protocol::from_content_type("application/json"), None);
    }

    #[test]
    fn serde_messages_translate_to_aws_wording() {
        assert_eq!(
            aws_message("invalid type: integer `23`, expected a string at line 1 column 17"),
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"
        );
        assert_eq!(
            aws_message("invalid type: string \"23\", expected a sequence"),
            "Expected list or null"
        );
        assert_eq!(
            aws_message("invalid type: map, expected a sequence"),
            type_mismatch::START_OF_STRUCTURE
        );
        assert_eq!(
            aws_message("invalid type: sequence, expected a string"),
            type_mismatch::START_OF_LIST
        );
        assert_eq!(
            aws_message("invalid type: string \"x\", expected struct Tag"),
            "Expected null"
        );
        assert_eq!(
            aws_message("invalid type: boolean `true`, expected a map"),
            "Expected map or null"
        );
        assert_eq!(
            aws_message("invalid type: string \"23\", expected i64"),
            "class java.lang.String can not be converted to an Integer"
        );
        assert_eq!(
            aws_message("invalid type: string \"yes\", expected a boolean"),
            "'YES' can not be converted to an Boolean"
        );
    }
}
