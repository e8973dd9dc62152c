//! HTTP glue: turns requests into API calls and API results into AWS-shaped responses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use millstream_api_kinesis::{KinesisApi, KinesisError, Operation, TARGET_PREFIX};
use millstream_aws_protocol::error::status_for_code;
use millstream_aws_protocol::literals::{HEADER_AMZ_ID_2, HEADER_AMZ_TARGET, HEADER_REQUEST_ID};
use millstream_aws_protocol::sigv4::{self, Mode};
use millstream_aws_protocol::{EncodedError, Protocol, ProtocolError};
use millstream_streams::ConnectionPolls;
use tracing::Instrument;

pub(crate) struct AppState {
    pub kinesis: KinesisApi,
    pub firehose: millstream_api_firehose::FirehoseApi,
    pub credentials: HashMap<String, String>,
    pub max_body_bytes: usize,
    pub data_dir: std::path::PathBuf,
    pub telemetry: crate::metrics::Telemetry,
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(dispatch)
        .with_state(state)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            internal_failure_on_panic,
        ))
}

/// A panic is a bug; the client still gets the AWS answer for a server fault (500
/// `InternalFailure`, which SDKs retry) instead of a dropped connection, and the log gets the
/// details.
fn internal_failure_on_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "request handler panicked");
    encoded_response(KinesisError::internal().encode(Protocol::Json))
}

/// Ready once the store is open (it is, or `bind` would have failed) and its directory
/// still takes writes: a full or read-only disk makes this 503 before appends start failing.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let probe = state.data_dir.join(".ready-probe");
    let writable = tokio::task::spawn_blocking(move || {
        std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe))
    })
    .await;
    match writable {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "data directory is not writable",
        )
            .into_response(),
    }
}

/// Prometheus text exposition (version 0.0.4), sampled on a blocking thread because the
/// storage and process gauges read the file system.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match tokio::task::spawn_blocking(move || state.telemetry.render()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

const CORS_EXPOSE: &str =
    "x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date";

fn encoded_response(encoded: EncodedError) -> Response {
    let (status, headers, body) = encoded.into_parts();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        response.headers_mut().insert(name, value);
    }
    response
}

fn success(protocol: Protocol, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protocol.content_type()),
    );
    response
}

/// A 200 whose body is event-stream frames, each flushed as it is produced (chunked on
/// HTTP/1.1, DATA frames on HTTP/2).
fn event_stream_response(frames: millstream_api_kinesis::EventFrames) -> Response {
    use futures::StreamExt;
    let body = Body::from_stream(frames.map(Ok::<Bytes, std::convert::Infallible>));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(millstream_aws_protocol::literals::CONTENT_TYPE_EVENT_STREAM),
    );
    response
}

/// CORS headers for a request that carried an `Origin` (browsers, the web console).
fn add_cors(response: &mut Response) {
    let out = response.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    out.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE),
    );
}

fn preflight(headers: &HeaderMap) -> Response {
    let mut response = Response::new(Body::empty());
    let out = response.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("172800"),
    );
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, requested.clone());
    }
    response
}

async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    // One id per request, generated here only: the `x-amzn-RequestId` header of whatever
    // response comes back (success, AWS error, event stream, CORS preflight) and the request's
    // log lines carry the same id, so a client's report can be matched to the server's logs.
    // Encoded on the stack: it is copied into the header anyway.
    let mut encoded = uuid::Uuid::encode_buffer();
    let request_id: &str = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut encoded);
    let request_id_header = HeaderValue::from_str(request_id).expect("a UUID is ASCII");
    if request.method() == Method::OPTIONS {
        let mut response = preflight(request.headers());
        response
            .headers_mut()
            .insert(HEADER_REQUEST_ID, request_id_header);
        return response;
    }
    let cross_origin = request.headers().contains_key(header::ORIGIN);
    // A debug-level span: enabled, it costs every request the formatting of its field, ~4 %
    // of PutRecord throughput at 32 connections (BENCHMARKS.md, round 8). The line a failed
    // request writes carries `request_id` itself, so at the default level an id from a
    // client's report still finds it; with debug logging on, every line of the request does.
    let span = tracing::debug_span!("request", request_id = %request_id);
    let mut response = handle(&state, request, request_id).instrument(span).await;
    response
        .headers_mut()
        .insert(HEADER_REQUEST_ID, request_id_header);
    response
        .headers_mut()
        .insert(HEADER_AMZ_ID_2, extended_request_id());
    if cross_origin {
        add_cors(&mut response);
    }
    response
}

/// An `x-amz-id-2` value: 72 random bytes in base64, the size AWS sends. Nothing reads it
/// back; clients log it next to the request id.
fn extended_request_id() -> HeaderValue {
    use base64::Engine as _;
    let mut bytes = [0u8; 80];
    for chunk in bytes.chunks_exact_mut(16) {
        chunk.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    let text = base64::engine::general_purpose::STANDARD.encode(&bytes[..72]);
    HeaderValue::from_str(&text).expect("base64 is ASCII")
}

/// The service and operation an `X-Amz-Target` names, if either API has it.
enum Target {
    Firehose(millstream_api_firehose::Operation),
    Kinesis(Operation),
}

impl Target {
    fn parse(target: &str) -> Option<Target> {
        if let Some(name) = target
            .strip_prefix(millstream_api_firehose::TARGET_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            return millstream_api_firehose::Operation::from_target_name(name)
                .map(Target::Firehose);
        }
        target
            .strip_prefix(TARGET_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(Operation::from_target_name)
            .map(Target::Kinesis)
    }
}

/// Whether a JSON body can be a request at all: an object, possibly after whitespace. AWS
/// refuses anything else (an empty body included) with a bare SerializationException before
/// it looks at the signature; a body that starts well but does not parse is refused the same
/// way by the decoder, after it.
fn opens_json_object(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

async fn handle(state: &AppState, request: Request, request_id: &str) -> Response {
    let (parts, body) = request.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(protocol) = Protocol::from_content_type(content_type) else {
        // AWS answers requests it cannot classify as an unknown operation.
        let mut response =
            encoded_response(KinesisError::unknown_operation().encode(Protocol::Json));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    if parts.method != Method::POST {
        return encoded_response(KinesisError::unknown_operation().encode(protocol));
    }
    let body = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return response;
        }
    };
    // AWS names an unknown operation and refuses a body that is not a JSON object before it
    // checks the signature.
    let target = parts
        .headers
        .get(HEADER_AMZ_TARGET)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(target) = Target::parse(target) else {
        return encoded_response(KinesisError::unknown_operation().encode(protocol));
    };
    if protocol == Protocol::Json && !opens_json_object(&body) {
        return encoded_response(
            KinesisError::from(ProtocolError::Serialization { message: None }).encode(protocol),
        );
    }
    let mode = if state.credentials.is_empty() {
        Mode::PresenceOnly
    } else {
        Mode::Strict(&state.credentials)
    };
    if let Err(err) = sigv4::verify(&parts, &body, SystemTime::now(), mode) {
        log_failure(request_id, &"authentication", err.code, Some(&err.message));
        return encoded_response(err.to_response(protocol));
    }
    let connection = parts
        .extensions
        .get::<Arc<ConnectionPolls>>()
        .map(Arc::as_ref);
    let operation = match target {
        Target::Firehose(operation) => {
            // Boxed: Firehose's handler future is ~31 KB (its largest operations); held
            // inline it made every in-flight request's future that large (measured 31,680
            // bytes), Kinesis requests included, whose own handler future is ~2 KB. No
            // throughput change was measurable (BENCHMARKS.md); the point is memory per open
            // request.
            return match Box::pin(state.firehose.handle(operation, protocol, &body)).await {
                Ok(body) => success(protocol, body),
                Err(err) => {
                    log_failure(request_id, &operation, err.code, err.message.as_deref());
                    encoded_response(err.encode(protocol))
                }
            };
        }
        Target::Kinesis(operation) => operation,
    };
    if operation == Operation::SubscribeToShard {
        return match state.kinesis.subscribe_to_shard(protocol, &body).await {
            Ok(frames) => event_stream_response(frames),
            Err(err) => {
                log_failure(request_id, &operation, err.code, err.message.as_deref());
                encoded_response(err.encode(protocol))
            }
        };
    }
    match state
        .kinesis
        .handle(operation, protocol, &body, connection)
        .await
    {
        Ok(body) => success(protocol, body),
        Err(err) => {
            log_failure(request_id, &operation, err.code, err.message.as_deref());
            encoded_response(err.encode(protocol))
        }
    }
}

/// A server fault is logged as an error, a client's mistake at debug level; both carry the
/// request id, which the `request` span gives the other lines only at debug level.
fn log_failure(
    request_id: &str,
    operation: &dyn std::fmt::Debug,
    code: &str,
    message: Option<&str>,
) {
    if status_for_code(code).is_server_error() {
        tracing::error!(request_id, ?operation, code, ?message, "request failed");
    } else {
        tracing::debug!(request_id, ?operation, code, ?message, "request failed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    use super::log_failure;

    /// An event's level and its `request_id` field.
    type Logged = (Level, Option<String>);

    /// Keeps every event's level and `request_id` field.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<Logged>>>);

    struct RequestId(Option<String>);

    impl Visit for RequestId {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "request_id" {
                self.0 = Some(value.to_string());
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
    }

    impl Subscriber for Events {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut id = RequestId(None);
            event.record(&mut id);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), id.0));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn a_server_fault_is_an_error_line_and_a_client_mistake_a_debug_line_both_with_the_request_id()
    {
        let events = Events::default();
        tracing::subscriber::with_default(events.clone(), || {
            log_failure("id-500", &"PutRecord", "InternalFailure", None);
            log_failure(
                "id-400",
                &"PutRecord",
                "ResourceNotFoundException",
                Some("Stream s under account 000000000000 not found."),
            );
        });
        assert_eq!(
            *events.0.lock().unwrap(),
            [
                (Level::ERROR, Some("id-500".to_string())),
                (Level::DEBUG, Some("id-400".to_string())),
            ]
        );
    }
}
