//! The Firehose HTTP endpoint delivery protocol (reference §11), one batch per [`HttpEndpoint::deliver`].
//!
//! Request: `POST <url>` with a JSON body `{"requestId","timestamp","records":[{"data":<base64>}]}`
//! (gzip-compressed when configured) and the `X-Amz-Firehose-*` headers. The request id and the
//! body are fixed before the first attempt, so every retry is byte-identical and endpoints can
//! deduplicate on the id.
//!
//! Success is exactly: status 200 and a JSON object body whose `requestId` equals ours. Anything
//! else fails the attempt. Failures are retried with exponential backoff (1 s, x2, ±15 % jitter,
//! at most 120 s) while the next attempt would still start within the retry duration; 413 is
//! permanent because resending the same body cannot shrink it.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use rand::Rng as _;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};

use crate::SinkError;

/// The endpoint has this long to answer one attempt (AWS documents 3 minutes).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(180);
/// AWS rejects responses over 1 MiB; we stop reading there too.
pub const RESPONSE_BODY_BYTES_MAX: usize = 1024 * 1024;
/// The endpoint's error text kept in a failure message (the `errorMessage` limit of §11).
pub const ERROR_MESSAGE_CHARS_MAX: usize = 8192;
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(120);
/// Each delay is scaled by a random factor in `1 ± BACKOFF_JITTER`.
pub const BACKOFF_JITTER: f64 = 0.15;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub const PROTOCOL_VERSION: &str = "1.0";
pub const HEADER_PROTOCOL_VERSION: &str = "X-Amz-Firehose-Protocol-Version";
pub const HEADER_REQUEST_ID: &str = "X-Amz-Firehose-Request-Id";
pub const HEADER_SOURCE_ARN: &str = "X-Amz-Firehose-Source-Arn";
pub const HEADER_ACCESS_KEY: &str = "X-Amz-Firehose-Access-Key";
pub const HEADER_COMMON_ATTRIBUTES: &str = "X-Amz-Firehose-Common-Attributes";

/// Non-200 status from the endpoint (AWS's code, confirmed in its troubleshooting guide).
pub const CODE_DESTINATION_EXCEPTION: &str = "HttpEndpoint.DestinationException";
/// A 200 whose body is not the expected JSON or carries another request id.
pub const CODE_INVALID_RESPONSE: &str = "HttpEndpoint.InvalidResponseFromDestination";
/// No response within [`RESPONSE_TIMEOUT`].
pub const CODE_REQUEST_TIMEOUT: &str = "HttpEndpoint.RequestTimeout";
/// The endpoint could not be reached (DNS, refused, reset, TLS).
pub const CODE_CONNECTION_FAILED: &str = "HttpEndpoint.ConnectionFailed";
/// The request itself could not be built (a request id that is no valid header value).
pub const CODE_INVALID_REQUEST: &str = "HttpEndpoint.InvalidRequest";

/// The `HttpEndpointDestinationConfiguration` parts that shape requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpointConfig {
    pub url: String,
    pub name: Option<String>,
    /// Sent verbatim in `X-Amz-Firehose-Access-Key`.
    pub access_key: Option<String>,
    /// `RequestConfiguration.ContentEncoding = GZIP`.
    pub gzip: bool,
    /// `RequestConfiguration.CommonAttributes`, sent as one JSON header.
    pub common_attributes: Vec<(String, String)>,
    /// `RetryOptions.DurationInSeconds`: zero means a single attempt.
    pub retry_duration: Duration,
}

/// The result of delivering one batch, retries included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDelivery {
    pub attempts: u32,
    pub outcome: Result<(), HttpFailure>,
}

/// Why the last attempt failed, in the terms of Firehose's error output records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFailure {
    pub code: String,
    pub message: String,
    /// The endpoint's HTTP status, when it answered at all.
    pub status: Option<u16>,
}

impl HttpFailure {
    /// Permanent failures are not retried. Firehose also does not send a batch that failed with
    /// 413 to the S3 backup, since the endpoint, not the data, sets the limit.
    pub fn is_permanent(&self) -> bool {
        self.status == Some(413) || self.code == CODE_INVALID_REQUEST
    }
}

/// One configured HTTP endpoint destination; cheap to share (the connection pool is inside).
#[derive(Debug)]
pub struct HttpEndpoint {
    client: reqwest::Client,
    url: reqwest::Url,
    gzip: bool,
    retry_duration: Duration,
    static_headers: reqwest::header::HeaderMap,
    backoff_scale: f64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestBody<'a> {
    request_id: &'a str,
    timestamp: i64,
    records: Vec<RequestRecord>,
}

#[derive(serde::Serialize)]
struct RequestRecord {
    data: String,
}

impl HttpEndpoint {
    /// # Errors
    /// [`SinkError::InvalidConfig`] for a URL that is not http(s) or header values that cannot be
    /// sent; [`SinkError::HttpClient`] when the HTTP client cannot be built.
    pub fn new(config: HttpEndpointConfig, source_arn: &str) -> Result<Self, SinkError> {
        let invalid = |reason: String| SinkError::InvalidConfig { reason };
        let url = reqwest::Url::parse(&config.url)
            .map_err(|source| invalid(format!("endpoint URL {:?}: {source}", config.url)))?;
        // AWS accepts only https; http stays allowed so that local endpoints and tests work.
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "endpoint URL {:?} must be http or https",
                config.url
            )));
        }
        let header = |name: &str, value: &str| {
            HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("{name} must be visible ASCII without line breaks")))
        };

        let mut static_headers = reqwest::header::HeaderMap::new();
        static_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        static_headers.insert(
            HEADER_PROTOCOL_VERSION,
            HeaderValue::from_static(PROTOCOL_VERSION),
        );
        static_headers.insert(HEADER_SOURCE_ARN, header("the source ARN", source_arn)?);
        if let Some(access_key) = &config.access_key {
            let mut value = header("the access key", access_key)?;
            value.set_sensitive(true);
            static_headers.insert(HEADER_ACCESS_KEY, value);
        }
        if !config.common_attributes.is_empty() {
            let attributes: serde_json::Map<String, serde_json::Value> = config
                .common_attributes
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
                .collect();
            let json = serde_json::json!({ "commonAttributes": attributes }).to_string();
            static_headers.insert(
                HEADER_COMMON_ATTRIBUTES,
                header("common attributes", &json)?,
            );
        }
        if config.gzip {
            static_headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }

        crate::install_tls_provider();
        let client = reqwest::Client::builder()
            // §11: a 3xx is a failed attempt, not something to follow.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(RESPONSE_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(SinkError::HttpClient)?;
        Ok(Self {
            client,
            url,
            gzip: config.gzip,
            retry_duration: config.retry_duration,
            static_headers,
            backoff_scale: 1.0,
        })
    }

    /// Multiplies every backoff delay, so tests can run the real schedule in milliseconds.
    /// Negative or non-finite values count as zero.
    #[must_use]
    pub fn with_backoff_scale(mut self, backoff_scale: f64) -> Self {
        self.backoff_scale = if backoff_scale.is_finite() {
            backoff_scale.max(0.0)
        } else {
            0.0
        };
        self
    }

    /// Delivers one batch, retrying as §11 prescribes. `now_ms` is the body's `timestamp`.
    /// The caller keeps batches within Firehose's limits (1–10000 records, 64 MiB).
    pub async fn deliver(&self, request_id: &str, records: &[Bytes], now_ms: i64) -> HttpDelivery {
        let Ok(request_id_header) = HeaderValue::from_str(request_id) else {
            return HttpDelivery {
                attempts: 0,
                outcome: Err(HttpFailure {
                    code: CODE_INVALID_REQUEST.to_owned(),
                    message: format!("request id {request_id:?} is not a valid header value"),
                    status: None,
                }),
            };
        };
        let body = self.encode_body(request_id, records, now_ms);
        let started = Instant::now();
        let mut backoff = BACKOFF_INITIAL;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self
                .attempt(request_id, &request_id_header, body.clone())
                .await
            {
                Ok(()) => {
                    return HttpDelivery {
                        attempts,
                        outcome: Ok(()),
                    };
                }
                Err(failure) => failure,
            };
            if failure.is_permanent() {
                return HttpDelivery {
                    attempts,
                    outcome: Err(failure),
                };
            }
            let jitter = rand::rng().random_range(1.0 - BACKOFF_JITTER..=1.0 + BACKOFF_JITTER);
            let delay = backoff.mul_f64(jitter * self.backoff_scale);
            if started.elapsed() + delay > self.retry_duration {
                return HttpDelivery {
                    attempts,
                    outcome: Err(failure),
                };
            }
            tracing::debug!(attempts, code = %failure.code, ?delay, "HTTP endpoint delivery failed; retrying");
            tokio::time::sleep(delay).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn encode_body(&self, request_id: &str, records: &[Bytes], now_ms: i64) -> Bytes {
        let base64 = base64::engine::general_purpose::STANDARD;
        let body = RequestBody {
            request_id,
            timestamp: now_ms,
            records: records
                .iter()
                .map(|data| RequestRecord {
                    data: base64.encode(data),
                })
                .collect(),
        };
        let json = serde_json::to_vec(&body).expect("a struct of strings and integers serializes");
        if !self.gzip {
            return Bytes::from(json);
        }
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(json.len() / 4),
            flate2::Compression::default(),
        );
        std::io::Write::write_all(&mut encoder, &json).expect("writing into a Vec cannot fail");
        Bytes::from(encoder.finish().expect("finishing into a Vec cannot fail"))
    }

    async fn attempt(
        &self,
        request_id: &str,
        request_id_header: &HeaderValue,
        body: Bytes,
    ) -> Result<(), HttpFailure> {
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.static_headers.clone())
            .header(HEADER_REQUEST_ID, request_id_header.clone())
            .body(body);
        let mut response = request.send().await.map_err(transport_failure)?;
        let status = response.status().as_u16();

        let mut response_body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
            let room = RESPONSE_BODY_BYTES_MAX - response_body.len();
            if chunk.len() > room {
                response_body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            response_body.extend_from_slice(&chunk);
        }

        if status != 200 {
            let text = String::from_utf8_lossy(&response_body);
            return Err(HttpFailure {
                code: CODE_DESTINATION_EXCEPTION.to_owned(),
                message: format!(
                    "The following response was received from the endpoint destination. {status}: {}",
                    truncate_chars(&text, ERROR_MESSAGE_CHARS_MAX)
                ),
                status: Some(status),
            });
        }
        let invalid = |reason: String| HttpFailure {
            code: CODE_INVALID_RESPONSE.to_owned(),
            message: format!("The response received from the endpoint is invalid: {reason}"),
            status: Some(status),
        };
        if truncated {
            return Err(invalid(format!(
                "the body exceeds {RESPONSE_BODY_BYTES_MAX} bytes"
            )));
        }
        let parsed: serde_json::Value = serde_json::from_slice(&response_body)
            .map_err(|source| invalid(format!("the body is not JSON ({source})")))?;
        match parsed.get("requestId").and_then(serde_json::Value::as_str) {
            Some(echoed) if echoed == request_id => Ok(()),
            Some(echoed) => Err(invalid(format!(
                "requestId {echoed:?} does not match the request's {request_id:?}"
            ))),
            None => Err(invalid("the body has no string requestId".to_owned())),
        }
    }
}

fn transport_failure(error: reqwest::Error) -> HttpFailure {
    let code = if error.is_timeout() {
        CODE_REQUEST_TIMEOUT
    } else {
        CODE_CONNECTION_FAILED
    };
    // reqwest's top-level message is generic; the cause chain says what actually happened.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    HttpFailure {
        code: code.to_owned(),
        message,
        status: None,
    }
}

fn truncate_chars(text: &str, chars_max: usize) -> &str {
    match text.char_indices().nth(chars_max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("abc", 10), "abc");
    }

    #[test]
    fn header_values_with_line_breaks_are_rejected_at_configuration() {
        let config = HttpEndpointConfig {
            url: "http://127.0.0.1:1/".into(),
            name: None,
            access_key: Some("key\r\nX-Injected: 1".into()),
            gzip: false,
            common_attributes: vec![],
            retry_duration: Duration::ZERO,
        };
        let err =
            HttpEndpoint::new(config, "arn:aws:firehose:us-east-1:1:deliverystream/s").unwrap_err();
        assert!(matches!(err, SinkError::InvalidConfig { .. }));
    }

    #[test]
    fn non_http_urls_are_rejected() {
        let config = HttpEndpointConfig {
            url: "ftp://example.com/".into(),
            name: None,
            access_key: None,
            gzip: false,
            common_attributes: vec![],
            retry_duration: Duration::ZERO,
        };
        assert!(HttpEndpoint::new(config, "arn").is_err());
    }
}
