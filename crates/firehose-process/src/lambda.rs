//! The `Lambda` processor: Firehose's data-transformation contract.
//!
//! One buffered batch is one synchronous (`RequestResponse`) invocation. The event carries
//! `invocationId`, `deliveryStreamArn`, `sourceKinesisStreamArn` (Kinesis source only), `region`
//! and `records[]` of `{recordId, approximateArrivalTimestamp (epoch ms), data (base64),
//! kinesisRecordMetadata?}`; the function answers `{records: [{recordId, result, data,
//! metadata.partitionKeys?}]}`.
//!
//! Outcomes per input record, in input order ([`match_response`]):
//! - returned once with `Ok` and base64 `data` -> [`RecordOutcome::Ok`]; `Dropped` -> gone;
//! - `ProcessingFailed` -> `Lambda.ProcessingFailedStatus`;
//! - not returned -> `Lambda.MissingRecordId`; returned twice -> `Lambda.DuplicatedRecordId`;
//! - an entry without a valid `result`, or `Ok` without base64 `data` -> `Lambda.FunctionError`;
//! - a body that is not JSON or not shaped like the contract -> `Lambda.JsonProcessingException`
//!   for every record. Ids the batch never contained are ignored.
//!
//! Codes and messages are the ones AWS writes into `processing-failed` error records, as
//! observed in real error output; the few we could not confirm are marked `// code unverified`.
//! AWS appears to fail the whole batch when one entry is malformed; we fail only that entry's
//! record, which loses nothing that AWS would have delivered.
//!
//! Invocation failures (function error, throttling, timeouts, 5xx) are retried
//! `NumberOfRetries` times with capped exponential backoff; afterwards every record fails with
//! the last error. Errors that retrying cannot fix (access denied, no such function) fail at once.
//! A malformed response is final too: the function would answer the same way again.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lambda's synchronous invocation limit applies to the response as well as the request.
pub const RESPONSE_BYTES_MAX: usize = 6 * 1024 * 1024;
/// Lambda's longest function run time is 15 minutes, but Firehose only waits 5 for a transform.
pub const INVOKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5 * 60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Our cap on `NumberOfRetries` (AWS's own range is unconfirmed); the backoff budget in
/// [`RetryPolicy`] usually ends retrying sooner.
pub const NUMBER_OF_RETRIES_MAX: u32 = 300;

pub const RESULT_OK: &str = "Ok";
pub const RESULT_DROPPED: &str = "Dropped";
pub const RESULT_PROCESSING_FAILED: &str = "ProcessingFailed";

/// Firehose error codes and messages for transformation failures.
pub mod codes {
    pub const FUNCTION_ERROR: &str = "Lambda.FunctionError";
    pub const FUNCTION_ERROR_MESSAGE: &str =
        "The Lambda function was successfully invoked but it returned an error result.";
    /// An entry with a missing or unknown `result`, or `Ok` without base64 `data`.
    pub const INVALID_RESULT_MESSAGE: &str = "Check your function and make sure the output is in required format. \
         In addition to that, make sure the processed records contain valid result status of Dropped, Ok, or \
         ProcessingFailed";
    pub const FUNCTION_TIMED_OUT: &str = "Lambda.FunctionTimedOut";
    pub const FUNCTION_TIMED_OUT_MESSAGE: &str = "The Lambda function invocation timed out. Increase the Timeout setting in the Lambda function.";
    pub const MISSING_RECORD_ID: &str = "Lambda.MissingRecordId";
    pub const MISSING_RECORD_ID_MESSAGE: &str = "One or more record Ids were not returned. Ensure that the Lambda function returns all received record Ids.";
    pub const DUPLICATED_RECORD_ID: &str = "Lambda.DuplicatedRecordId";
    pub const DUPLICATED_RECORD_ID_MESSAGE: &str = "Multiple records were returned with the same record Id. \
         Ensure that the Lambda function returns a unique record Id for each record.";
    pub const JSON_PROCESSING: &str = "Lambda.JsonProcessingException";
    pub const JSON_PROCESSING_MESSAGE: &str = "There was an error parsing returned records from the Lambda function. \
         Ensure that the returned records follow the status model required by Firehose.";
    pub const PROCESSING_FAILED_STATUS: &str = "Lambda.ProcessingFailedStatus";
    pub const PROCESSING_FAILED_STATUS_MESSAGE: &str = "ProcessingFailed status set for record";
    pub const INVOKE_ACCESS_DENIED: &str = "Lambda.InvokeAccessDenied";
    pub const INVOKE_ACCESS_DENIED_MESSAGE: &str =
        "Access was denied. Ensure that the access policy allows access to the Lambda function.";
    pub const INVOKE_LIMIT_EXCEEDED: &str = "Lambda.InvokeLimitExceeded";
    pub const RESOURCE_NOT_FOUND: &str = "Lambda.ResourceNotFound"; // code unverified
    /// Lambda 5xx or no connection at all.
    pub const SERVICE_UNAVAILABLE: &str = "Lambda.ServiceUnavailable"; // code unverified
}

/// Kinesis metadata of a record read from a Kinesis stream source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KinesisRecordMetadata {
    #[serde(rename = "shardId")]
    pub shard_id: String,
    #[serde(rename = "partitionKey")]
    pub partition_key: String,
    #[serde(rename = "approximateArrivalTimestamp")]
    pub approximate_arrival_ms: i64,
    #[serde(rename = "sequenceNumber")]
    pub sequence_number: String,
    #[serde(rename = "subsequenceNumber")]
    pub subsequence_number: u64,
}

/// One record of an invocation batch.
#[derive(Debug, Clone)]
pub struct TransformInput<'a> {
    /// Opaque, unique within the batch; the function must echo it.
    pub record_id: String,
    pub approximate_arrival_ms: i64,
    pub data: &'a [u8],
    pub kinesis: Option<KinesisRecordMetadata>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InvocationEvent<'a> {
    invocation_id: &'a str,
    delivery_stream_arn: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_kinesis_stream_arn: Option<&'a str>,
    region: &'a str,
    records: Vec<EventRecord<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventRecord<'a> {
    record_id: &'a str,
    approximate_arrival_timestamp: i64,
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kinesis_record_metadata: Option<&'a KinesisRecordMetadata>,
}

/// The invocation event for one batch, as JSON bytes.
pub fn invocation_payload(
    invocation_id: &str,
    delivery_stream_arn: &str,
    source_kinesis_stream_arn: Option<&str>,
    region: &str,
    records: &[TransformInput<'_>],
) -> Vec<u8> {
    let event = InvocationEvent {
        invocation_id,
        delivery_stream_arn,
        source_kinesis_stream_arn,
        region,
        records: records
            .iter()
            .map(|record| EventRecord {
                record_id: &record.record_id,
                approximate_arrival_timestamp: record.approximate_arrival_ms,
                data: BASE64.encode(record.data),
                kinesis_record_metadata: record.kinesis.as_ref(),
            })
            .collect(),
    };
    serde_json::to_vec(&event).expect("strings and integers always serialize")
}

/// What became of one input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    Ok {
        data: Bytes,
        partition_keys: BTreeMap<String, String>,
    },
    Dropped,
    Failed {
        code: String,
        message: String,
    },
}

impl RecordOutcome {
    fn failed(code: &str, message: &str) -> Self {
        Self::Failed {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// Matches the function's response to the batch by `recordId`: one outcome per input id, in
/// input order. See the module docs for the rules.
pub fn match_response(input_ids: &[String], body: &[u8]) -> Vec<RecordOutcome> {
    let fail_all =
        |code: &str, message: &str| vec![RecordOutcome::failed(code, message); input_ids.len()];
    let Ok(Value::Object(response)) = serde_json::from_slice::<Value>(body) else {
        return fail_all(codes::JSON_PROCESSING, codes::JSON_PROCESSING_MESSAGE);
    };
    let entries = match response.get("records") {
        // Valid JSON without records leaves every record unreturned (as AWS reports it).
        None | Some(Value::Null) => {
            return fail_all(codes::MISSING_RECORD_ID, codes::MISSING_RECORD_ID_MESSAGE);
        }
        Some(Value::Array(entries)) => entries,
        Some(_) => return fail_all(codes::JSON_PROCESSING, codes::JSON_PROCESSING_MESSAGE),
    };
    let mut by_id: HashMap<&str, Vec<&serde_json::Map<String, Value>>> =
        HashMap::with_capacity(entries.len());
    for entry in entries {
        let Value::Object(entry) = entry else {
            return fail_all(codes::JSON_PROCESSING, codes::JSON_PROCESSING_MESSAGE);
        };
        // An entry without a string id cannot be matched; its input shows up as missing.
        if let Some(Value::String(id)) = entry.get("recordId") {
            by_id.entry(id.as_str()).or_default().push(entry);
        }
    }
    input_ids
        .iter()
        .map(|id| match by_id.get(id.as_str()).map(Vec::as_slice) {
            None | Some([]) => {
                RecordOutcome::failed(codes::MISSING_RECORD_ID, codes::MISSING_RECORD_ID_MESSAGE)
            }
            Some([entry]) => entry_outcome(entry),
            Some(_) => RecordOutcome::failed(
                codes::DUPLICATED_RECORD_ID,
                codes::DUPLICATED_RECORD_ID_MESSAGE,
            ),
        })
        .collect()
}

fn entry_outcome(entry: &serde_json::Map<String, Value>) -> RecordOutcome {
    let invalid = || RecordOutcome::failed(codes::FUNCTION_ERROR, codes::INVALID_RESULT_MESSAGE);
    match entry.get("result").and_then(Value::as_str) {
        Some(RESULT_OK) => {}
        Some(RESULT_DROPPED) => return RecordOutcome::Dropped,
        Some(RESULT_PROCESSING_FAILED) => {
            return RecordOutcome::failed(
                codes::PROCESSING_FAILED_STATUS,
                codes::PROCESSING_FAILED_STATUS_MESSAGE,
            );
        }
        _ => return invalid(),
    }
    let Some(Ok(data)) = entry
        .get("data")
        .and_then(Value::as_str)
        .map(|data| BASE64.decode(data))
    else {
        return invalid();
    };
    let partition_keys = match entry
        .get("metadata")
        .and_then(|metadata| metadata.get("partitionKeys"))
    {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(keys)) => {
            let mut out = BTreeMap::new();
            for (key, value) in keys {
                let text = match value {
                    Value::String(text) => text.clone(),
                    // Lambdas in dynamically typed languages easily return numbers here.
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    Value::Null | Value::Array(_) | Value::Object(_) => {
                        // code unverified
                        return RecordOutcome::failed(
                            codes::FUNCTION_ERROR,
                            "metadata.partitionKeys values must be strings",
                        );
                    }
                };
                out.insert(key.clone(), text);
            }
            out
        }
        Some(_) => {
            // code unverified
            return RecordOutcome::failed(
                codes::FUNCTION_ERROR,
                "metadata.partitionKeys must be an object",
            );
        }
    };
    RecordOutcome::Ok {
        data: Bytes::from(data),
        partition_keys,
    }
}

/// A failed invocation, with the Firehose error code it is reported under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct InvokeError {
    pub code: String,
    pub message: String,
    /// Whether trying again may help (throttling, timeouts, 5xx, function errors).
    pub retryable: bool,
}

impl InvokeError {
    fn new(code: &str, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            retryable,
        }
    }
}

/// Backoff between invocation attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Retrying stops once the next wait would take the total past this, whatever
    /// `NumberOfRetries` says, so one batch cannot hold its stream for hours.
    pub total_backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(16),
            total_backoff_max: Duration::from_secs(5 * 60),
        }
    }
}

/// Outcomes of a transformation plus how many invocations it took (`attemptsMade` in the
/// error output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformReport {
    pub records: Vec<RecordOutcome>,
    pub attempts_made: u32,
}

struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// Client for the Lambda Invoke API (AWS or a local emulator such as `sam local start-lambda`).
pub struct LambdaClient {
    http: reqwest::Client,
    /// Without a trailing slash.
    endpoint: String,
    /// `host[:port]` as reqwest sends it, which the signature covers.
    host: String,
    /// Path of the endpoint (usually empty), already percent-encoded by the URL parser.
    base_path: String,
    region: String,
    credentials: Option<Credentials>,
    invoke_timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for LambdaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LambdaClient")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("signed", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// RFC 3986 unreserved characters stay; everything else in a path label is escaped.
const PATH_LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same set for a whole path, whose slashes stay.
const CANONICAL_PATH: &AsciiSet = &PATH_LABEL.remove(b'/');

impl LambdaClient {
    /// `credentials` = (access key id, secret access key, session token); `None` sends unsigned
    /// requests, which local emulators accept.
    ///
    /// # Errors
    /// When the endpoint is not an http(s) URL with a host, or TLS cannot be set up.
    pub fn new(
        endpoint: &str,
        region: &str,
        credentials: Option<(String, String, Option<String>)>,
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(endpoint)
            .map_err(|error| format!("invalid Lambda endpoint {endpoint:?}: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(format!(
                "Lambda endpoint must be an http(s) URL without a query: {endpoint:?}"
            ));
        }
        let Some(host_name) = url.host_str() else {
            return Err(format!("Lambda endpoint has no host: {endpoint:?}"));
        };
        let host = match url.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.to_owned(),
        };
        let base_path = url.path().trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .connect_timeout(CONNECT_TIMEOUT)
            // Invocations are not idempotent from the caller's view; we decide on retries.
            .retry(reqwest::retry::never())
            .build()
            .map_err(|error| format!("cannot build the Lambda HTTP client: {error}"))?;
        Ok(Self {
            http,
            endpoint: format!("{}://{host}", url.scheme()),
            host,
            base_path,
            region: region.to_owned(),
            credentials: credentials.map(|(access_key_id, secret_access_key, session_token)| {
                Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token,
                }
            }),
            invoke_timeout: INVOKE_TIMEOUT_DEFAULT,
            retry: RetryPolicy::default(),
        })
    }

    /// How long one invocation may take before it fails with `Lambda.FunctionTimedOut`.
    pub fn with_invoke_timeout(mut self, timeout: Duration) -> Self {
        self.invoke_timeout = timeout;
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// One synchronous invocation; returns the function's response payload.
    ///
    /// # Errors
    /// [`InvokeError`] with the Firehose error code for HTTP errors, function errors, oversized
    /// responses, timeouts and connection failures.
    pub async fn invoke(&self, function: &str, payload: Bytes) -> Result<Bytes, InvokeError> {
        let path = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.base_path,
            utf8_percent_encode(function, PATH_LABEL)
        );
        let mut request = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .timeout(self.invoke_timeout)
            .header(HEADER_INVOCATION_TYPE, "RequestResponse")
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(credentials) = &self.credentials {
            let signed = sign_request(
                &SigningInput {
                    method: "POST",
                    path: &path,
                    host: &self.host,
                    extra_headers: &[(HEADER_INVOCATION_TYPE_LOWER, "RequestResponse")],
                    payload: &payload,
                    region: &self.region,
                    service: "lambda",
                },
                credentials,
                SystemTime::now(),
            );
            for (name, value) in signed {
                request = request.header(name, value);
            }
        }
        let response = request
            .body(payload)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let function_error = response.headers().get(HEADER_FUNCTION_ERROR).is_some();
        let error_type = response
            .headers()
            .get(HEADER_ERROR_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(':').next().unwrap_or(value).to_owned());
        let Some(body) = read_capped(response, RESPONSE_BYTES_MAX)
            .await
            .map_err(transport_error)?
        else {
            // Lambda itself fails responses over 6 MB as a function error.
            return Err(InvokeError::new(
                codes::FUNCTION_ERROR,
                codes::FUNCTION_ERROR_MESSAGE,
                true,
            ));
        };
        if status.is_success() && !function_error {
            return Ok(body);
        }
        if status.is_success() {
            return Err(function_error_from(&body));
        }
        Err(http_error(status.as_u16(), error_type.as_deref(), &body))
    }

    /// Invokes `function` with `payload` (retrying as configured) and matches the response to
    /// `input_ids`. Never fails as a whole: failures are per record.
    pub async fn transform(
        &self,
        function: &str,
        retries: u32,
        payload: Bytes,
        input_ids: &[String],
    ) -> Vec<RecordOutcome> {
        self.transform_report(function, retries, payload, input_ids)
            .await
            .records
    }

    /// [`Self::transform`] plus the number of invocations made.
    pub async fn transform_report(
        &self,
        function: &str,
        retries: u32,
        payload: Bytes,
        input_ids: &[String],
    ) -> TransformReport {
        let attempts_allowed = retries.min(NUMBER_OF_RETRIES_MAX) + 1;
        let mut backoff = self.retry.initial_backoff;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.invoke(function, payload.clone()).await {
                Ok(body) => {
                    return TransformReport {
                        records: match_response(input_ids, &body),
                        attempts_made: attempt,
                    };
                }
                Err(error) => error,
            };
            let out_of_budget = waited + backoff > self.retry.total_backoff_max;
            if !error.retryable || attempt >= attempts_allowed || out_of_budget {
                tracing::warn!(function, attempt, %error, "Lambda transformation failed");
                return TransformReport {
                    records: vec![
                        RecordOutcome::failed(&error.code, &error.message);
                        input_ids.len()
                    ],
                    attempts_made: attempt,
                };
            }
            tracing::debug!(function, attempt, %error, ?backoff, "retrying Lambda invocation");
            tokio::time::sleep(backoff).await;
            waited += backoff;
            backoff = (backoff * 2).min(self.retry.max_backoff);
        }
    }
}

const HEADER_INVOCATION_TYPE: &str = "X-Amz-Invocation-Type";
const HEADER_INVOCATION_TYPE_LOWER: &str = "x-amz-invocation-type";
const HEADER_FUNCTION_ERROR: &str = "x-amz-function-error";
const HEADER_ERROR_TYPE: &str = "x-amzn-errortype";

/// rustls on ring, chosen explicitly: reqwest's `rustls-no-provider` would otherwise look for
/// a process-wide default provider and panic when none is installed.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|error| format!("cannot load the platform certificate verifier: {error}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("cannot configure TLS: {error}"))?
        .dangerous() // not dangerous: this is the platform's own verification
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Option<Bytes>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

fn transport_error(error: reqwest::Error) -> InvokeError {
    if error.is_timeout() {
        InvokeError::new(
            codes::FUNCTION_TIMED_OUT,
            codes::FUNCTION_TIMED_OUT_MESSAGE,
            true,
        )
    } else {
        InvokeError::new(
            codes::SERVICE_UNAVAILABLE,
            format!("Could not reach the Lambda service: {error}"),
            true,
        )
    }
}

/// A 200 with `X-Amz-Function-Error`: the function threw, or the runtime killed it.
fn function_error_from(body: &[u8]) -> InvokeError {
    let details: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        details
            .as_ref()
            .and_then(|d| d.get(name))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let (error_type, error_message) = (field("errorType"), field("errorMessage"));
    tracing::debug!(
        error_type,
        error_message,
        "Lambda function returned an error"
    );
    if error_type == "Sandbox.Timedout" || error_message.contains("Task timed out") {
        InvokeError::new(
            codes::FUNCTION_TIMED_OUT,
            codes::FUNCTION_TIMED_OUT_MESSAGE,
            true,
        )
    } else {
        InvokeError::new(codes::FUNCTION_ERROR, codes::FUNCTION_ERROR_MESSAGE, true)
    }
}

/// Maps a Lambda API error (type from `X-Amzn-ErrorType`, else from the status) to Firehose's.
fn http_error(status: u16, error_type: Option<&str>, body: &[u8]) -> InvokeError {
    let details: Option<Value> = serde_json::from_slice(body).ok();
    let message = details
        .as_ref()
        .and_then(|d| d.get("message").or_else(|| d.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Lambda returned HTTP {status}"));
    let error_type = error_type.filter(|t| !t.is_empty()).or_else(|| {
        details
            .as_ref()
            .and_then(|d| d.get("__type"))
            .and_then(Value::as_str)
    });
    // `sam local` reports e.g. "ResourceNotFound" where AWS says "ResourceNotFoundException".
    let kind = error_type.map(|t| t.trim_end_matches("Exception"));
    match (kind, status) {
        (Some("AccessDenied" | "UnrecognizedClient" | "InvalidSignature" | "ExpiredToken"), _)
        | (None, 401 | 403) => InvokeError::new(
            codes::INVOKE_ACCESS_DENIED,
            codes::INVOKE_ACCESS_DENIED_MESSAGE,
            false,
        ),
        (Some("ResourceNotFound"), _) | (None, 404) => {
            InvokeError::new(codes::RESOURCE_NOT_FOUND, message, false)
        }
        (Some("TooManyRequests"), _) | (None, 429) => {
            InvokeError::new(codes::INVOKE_LIMIT_EXCEEDED, message, true)
        }
        (Some("Service" | "ServiceUnavailable"), _) | (None, 500..) => {
            InvokeError::new(codes::SERVICE_UNAVAILABLE, message, true)
        }
        // Anything else keeps Lambda's own name under the Lambda. prefix, as Firehose does for
        // e.g. Lambda.KMSAccessDeniedException; retried only when Lambda says it is on its side.
        (Some(_), _) | (None, _) => {
            let code = format!("Lambda.{}", error_type.unwrap_or("InvocationFailure"));
            InvokeError::new(
                &code,
                message,
                status >= 500 || matches!(kind, Some("ResourceNotReady" | "ResourceConflict")),
            )
        }
    }
}

/// Hand-written SigV4 (header auth) for the one request shape we send. The `aws-sigv4` crate
/// would pull in aws-smithy-runtime-api, aws-smithy-http and aws-credential-types for what is
/// three HMACs here; the aws-protocol crate's independent verifier checks us in the tests.
struct SigningInput<'a> {
    method: &'a str,
    /// Already percent-encoded, as sent.
    path: &'a str,
    host: &'a str,
    /// Lower-case names, signed along with host and x-amz-date.
    extra_headers: &'a [(&'a str, &'a str)],
    payload: &'a [u8],
    region: &'a str,
    service: &'a str,
}

/// Returns the headers to add: `x-amz-date`, `x-amz-security-token` (if any), `authorization`.
fn sign_request(
    input: &SigningInput<'_>,
    credentials: &Credentials,
    now: SystemTime,
) -> Vec<(&'static str, String)> {
    let (amz_date, date) = amz_timestamp(now);
    let mut headers: Vec<(&str, &str)> = vec![("host", input.host), ("x-amz-date", &amz_date)];
    headers.extend_from_slice(input.extra_headers);
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token", token));
    }
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let signed_headers = headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";");

    let mut canonical = String::with_capacity(256);
    canonical.push_str(input.method);
    canonical.push('\n');
    // Non-S3 services sign the path encoded once more (so `%3A` becomes `%253A`).
    canonical.push_str(&utf8_percent_encode(input.path, CANONICAL_PATH).to_string());
    canonical.push_str("\n\n"); // no query string
    for (name, value) in &headers {
        let _ = writeln!(
            canonical,
            "{name}:{}",
            value.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers);
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(input.payload)));

    let scope = format!("{date}/{}/{}/aws4_request", input.region, input.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [input.region, input.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));

    let mut out = vec![("x-amz-date", amz_date.clone())];
    if let Some(token) = &credentials.session_token {
        out.push(("x-amz-security-token", token.clone()));
    }
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    ));
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// (`yyyymmddThhmmssZ`, `yyyymmdd`) in UTC.
fn amz_timestamp(now: SystemTime) -> (String, String) {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!(
        "T{:02}{:02}{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    );
    (format!("{date}{time}"), date)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).expect("1..=31");
    let month = u32::try_from(if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    })
    .expect("1..=12");
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
