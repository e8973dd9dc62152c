//! The §11 protocol against an endpoint that records every request it receives.

use std::convert::Infallible;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use millstream_firehose_sinks::http_endpoint::{
    CODE_CONNECTION_FAILED, CODE_DESTINATION_EXCEPTION, CODE_INVALID_RESPONSE,
};
use millstream_firehose_sinks::{HttpEndpoint, HttpEndpointConfig};

const SOURCE_ARN: &str = "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders";

#[derive(Debug, Clone)]
struct Recorded {
    headers: http::HeaderMap,
    /// The body after undoing any Content-Encoding: gzip.
    body: Vec<u8>,
}

/// What the endpoint answers to the n-th request; the last entry repeats.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// 200 echoing the request id, as a correct endpoint does.
    Accept,
    /// 200 with another request id.
    WrongRequestId,
    Status(u16, &'static str),
}

struct RecordingEndpoint {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl RecordingEndpoint {
    async fn start(replies: Vec<Reply>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/ingest?source=firehose",
            listener.local_addr().unwrap()
        );
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let recorded = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let recorded = Arc::clone(&recorded);
                let replies = replies.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let recorded = Arc::clone(&recorded);
                            let replies = replies.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let raw = body.collect().await.unwrap().to_bytes();
                                let body = if parts
                                    .headers
                                    .get("content-encoding")
                                    .is_some_and(|v| v == "gzip")
                                {
                                    let mut plain = Vec::new();
                                    flate2::read::GzDecoder::new(&raw[..])
                                        .read_to_end(&mut plain)
                                        .unwrap();
                                    plain
                                } else {
                                    raw.to_vec()
                                };
                                let request_id = serde_json::from_slice::<serde_json::Value>(&body)
                                    .unwrap()["requestId"]
                                    .as_str()
                                    .unwrap()
                                    .to_owned();
                                let index = {
                                    let mut requests = recorded.lock().unwrap();
                                    requests.push(Recorded {
                                        headers: parts.headers,
                                        body,
                                    });
                                    requests.len() - 1
                                };
                                let reply = replies[index.min(replies.len() - 1)];
                                let (status, body) = match reply {
                                    Reply::Accept => (
                                        200,
                                        format!(r#"{{"requestId":"{request_id}","timestamp":1}}"#),
                                    ),
                                    Reply::WrongRequestId => (
                                        200,
                                        r#"{"requestId":"someone-else","timestamp":1}"#.to_owned(),
                                    ),
                                    Reply::Status(status, body) => (status, body.to_owned()),
                                };
                                let response = hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap();
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn config(url: &str, retry_duration: Duration) -> HttpEndpointConfig {
    HttpEndpointConfig {
        url: url.to_owned(),
        name: Some("test endpoint".to_owned()),
        access_key: None,
        gzip: false,
        common_attributes: vec![],
        retry_duration,
    }
}

fn header<'a>(recorded: &'a Recorded, name: &str) -> Option<&'a str> {
    recorded
        .headers
        .get(name)
        .map(|value| value.to_str().unwrap())
}

fn decoded_records(body: &[u8]) -> Vec<Vec<u8>> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| {
            base64::engine::general_purpose::STANDARD
                .decode(record["data"].as_str().unwrap())
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_batch_is_posted_with_the_protocol_headers_and_body() {
    let endpoint = RecordingEndpoint::start(vec![Reply::Accept]).await;
    let sink =
        HttpEndpoint::new(config(&endpoint.url, Duration::from_secs(60)), SOURCE_ARN).unwrap();
    let records = [
        Bytes::from_static(b"{\"a\":1}\n"),
        Bytes::from_static(&[0, 159, 255]),
    ];

    let delivery = sink
        .deliver(
            "8e3c2f6a-0000-4000-8000-000000000001",
            &records,
            1_716_230_531_000,
        )
        .await;

    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.outcome, Ok(()));
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(header(request, "content-type"), Some("application/json"));
    assert_eq!(
        header(request, "x-amz-firehose-protocol-version"),
        Some("1.0")
    );
    assert_eq!(
        header(request, "x-amz-firehose-request-id"),
        Some("8e3c2f6a-0000-4000-8000-000000000001")
    );
    assert_eq!(
        header(request, "x-amz-firehose-source-arn"),
        Some(SOURCE_ARN)
    );
    assert_eq!(header(request, "x-amz-firehose-access-key"), None);
    assert_eq!(header(request, "x-amz-firehose-common-attributes"), None);
    assert_eq!(header(request, "content-encoding"), None);
    assert_eq!(
        header(request, "content-length"),
        Some(request.body.len().to_string().as_str())
    );
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(json["requestId"], "8e3c2f6a-0000-4000-8000-000000000001");
    assert_eq!(json["timestamp"], 1_716_230_531_000_i64);
    assert_eq!(
        decoded_records(&request.body),
        vec![b"{\"a\":1}\n".to_vec(), vec![0, 159, 255]]
    );
}

#[tokio::test]
async fn gzip_access_key_and_common_attributes_are_sent() {
    let endpoint = RecordingEndpoint::start(vec![Reply::Accept]).await;
    let mut config = config(&endpoint.url, Duration::ZERO);
    config.gzip = true;
    config.access_key = Some("s3cr3t key/with+chars==".to_owned());
    config.common_attributes = vec![
        ("env".to_owned(), "prod".to_owned()),
        ("team".to_owned(), "data \"eng\"".to_owned()),
    ];
    let sink = HttpEndpoint::new(config, SOURCE_ARN).unwrap();
    let records: Vec<Bytes> = (0..50)
        .map(|i| Bytes::from(format!("record-{i}|").repeat(20)))
        .collect();

    let delivery = sink.deliver("req-gzip", &records, 7).await;

    assert_eq!(delivery.outcome, Ok(()));
    let request = &endpoint.requests()[0];
    assert_eq!(header(request, "content-encoding"), Some("gzip"));
    assert_eq!(
        header(request, "x-amz-firehose-access-key"),
        Some("s3cr3t key/with+chars==")
    );
    let attributes: serde_json::Value =
        serde_json::from_str(header(request, "x-amz-firehose-common-attributes").unwrap()).unwrap();
    assert_eq!(
        attributes,
        serde_json::json!({"commonAttributes": {"env": "prod", "team": "data \"eng\""}})
    );
    let expected: Vec<Vec<u8>> = records.iter().map(|record| record.to_vec()).collect();
    assert_eq!(decoded_records(&request.body), expected);
}

#[tokio::test]
async fn a_server_error_is_retried_with_the_same_request_id_and_body() {
    let endpoint = RecordingEndpoint::start(vec![
        Reply::Status(500, "{\"errorMessage\":\"busy\"}"),
        Reply::Accept,
    ])
    .await;
    let sink = HttpEndpoint::new(config(&endpoint.url, Duration::from_secs(60)), SOURCE_ARN)
        .unwrap()
        .with_backoff_scale(0.001);

    let delivery = sink
        .deliver("req-retry", &[Bytes::from_static(b"x")], 1)
        .await;

    assert_eq!(delivery.attempts, 2);
    assert_eq!(delivery.outcome, Ok(()));
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        header(&requests[0], "x-amz-firehose-request-id"),
        Some("req-retry")
    );
    assert_eq!(
        header(&requests[1], "x-amz-firehose-request-id"),
        Some("req-retry")
    );
    assert_eq!(requests[0].body, requests[1].body);
}

#[tokio::test]
async fn a_response_with_another_request_id_is_a_failure() {
    let endpoint = RecordingEndpoint::start(vec![Reply::WrongRequestId]).await;
    let sink = HttpEndpoint::new(config(&endpoint.url, Duration::ZERO), SOURCE_ARN).unwrap();

    let delivery = sink
        .deliver("req-mine", &[Bytes::from_static(b"x")], 1)
        .await;

    assert_eq!(delivery.attempts, 1);
    let failure = delivery.outcome.unwrap_err();
    assert_eq!(failure.code, CODE_INVALID_RESPONSE);
    assert_eq!(failure.status, Some(200));
    assert!(
        failure.message.contains("someone-else"),
        "{}",
        failure.message
    );
    assert!(!failure.is_permanent());
}

#[tokio::test]
async fn request_entity_too_large_is_permanent() {
    let endpoint = RecordingEndpoint::start(vec![Reply::Status(
        413,
        "{\"errorMessage\":\"Payload too large\"}",
    )])
    .await;
    let sink = HttpEndpoint::new(config(&endpoint.url, Duration::from_secs(60)), SOURCE_ARN)
        .unwrap()
        .with_backoff_scale(0.001);

    let delivery = sink
        .deliver("req-big", &[Bytes::from_static(b"x")], 1)
        .await;

    assert_eq!(delivery.attempts, 1);
    assert_eq!(endpoint.requests().len(), 1);
    let failure = delivery.outcome.unwrap_err();
    assert_eq!(failure.code, CODE_DESTINATION_EXCEPTION);
    assert_eq!(failure.status, Some(413));
    assert!(failure.is_permanent());
    assert_eq!(
        failure.message,
        "The following response was received from the endpoint destination. 413: {\"errorMessage\":\"Payload too large\"}"
    );
}

#[tokio::test]
async fn retries_stop_when_the_retry_duration_is_used_up() {
    let endpoint = RecordingEndpoint::start(vec![Reply::Status(503, "down")]).await;
    // Scaled delays: ~10, 20, 40, 80, 160 ms; only the first few fit in 300 ms.
    let sink = HttpEndpoint::new(
        config(&endpoint.url, Duration::from_millis(300)),
        SOURCE_ARN,
    )
    .unwrap()
    .with_backoff_scale(0.01);
    let started = Instant::now();

    let delivery = sink
        .deliver("req-budget", &[Bytes::from_static(b"x")], 1)
        .await;

    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(300) + Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert!(
        (3..=6).contains(&delivery.attempts),
        "attempts {}",
        delivery.attempts
    );
    let requests = endpoint.requests();
    assert_eq!(requests.len(), delivery.attempts as usize);
    assert!(
        requests
            .iter()
            .all(|request| header(request, "x-amz-firehose-request-id") == Some("req-budget"))
    );
    let failure = delivery.outcome.unwrap_err();
    assert_eq!(
        (failure.code.as_str(), failure.status),
        (CODE_DESTINATION_EXCEPTION, Some(503))
    );
}

#[tokio::test]
async fn a_zero_retry_duration_makes_one_attempt() {
    let endpoint = RecordingEndpoint::start(vec![Reply::Status(500, "")]).await;
    let sink = HttpEndpoint::new(config(&endpoint.url, Duration::ZERO), SOURCE_ARN).unwrap();
    let delivery = sink
        .deliver("req-once", &[Bytes::from_static(b"x")], 1)
        .await;
    assert_eq!(delivery.attempts, 1);
    assert_eq!(endpoint.requests().len(), 1);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_connection_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = HttpEndpoint::new(
        config(&format!("http://127.0.0.1:{port}/"), Duration::ZERO),
        SOURCE_ARN,
    )
    .unwrap();
    let delivery = sink
        .deliver("req-down", &[Bytes::from_static(b"x")], 1)
        .await;
    let failure = delivery.outcome.unwrap_err();
    assert_eq!(
        (failure.code.as_str(), failure.status),
        (CODE_CONNECTION_FAILED, None)
    );
}
