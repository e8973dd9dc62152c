//! Transports on one port: HTTP/2 with prior knowledge (h2c, as the Java SDK's async client
//! sends it), and TLS with ALPN h2 through the AWS SDK for Rust and a raw HTTP/2 client.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use aws_smithy_http_client::tls;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::support::TestServer;

fn sdk_over_tls(endpoint: &str, certificate_pem: &[u8]) -> aws_sdk_kinesis::Client {
    let context = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_pem_certificate(certificate_pem.to_vec()))
        .build()
        .unwrap();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context)
        .build_https();
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .http_client(http)
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// An HTTP/2 connection: prior knowledge on plain TCP, or TLS negotiating `h2` by ALPN.
async fn h2_connection(
    port: u16,
    tls_root: Option<&[u8]>,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    match tls_root {
        None => {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender
        }
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                roots.add(cert.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec()];
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let stream = connector.connect(name, tcp).await.unwrap();
            assert_eq!(
                stream.get_ref().1.alpn_protocol(),
                Some(&b"h2"[..]),
                "ALPN chose h2"
            );
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender
        }
    }
}

fn kinesis_request(operation: &str, body: serde_json::Value) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method("POST")
        .uri("http://localhost/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Kinesis_20131202.{operation}"))
        .header("x-amz-date", "20260101T000000Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Over HTTP/2: a put, then a subscription whose frames decode into the records.
async fn exercise_h2(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    stream: &str,
) {
    let ok = |response: &http::Response<hyper::body::Incoming>| assert_eq!(response.status(), 200);
    let response = sender
        .send_request(kinesis_request(
            "CreateStream",
            serde_json::json!({"StreamName": stream, "ShardCount": 1}),
        ))
        .await
        .unwrap();
    ok(&response);
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
    let response = sender
        .send_request(kinesis_request(
            "RegisterStreamConsumer",
            serde_json::json!({"StreamARN": arn, "ConsumerName": "h2"}),
        ))
        .await
        .unwrap();
    ok(&response);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let consumer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let consumer_arn = consumer["Consumer"]["ConsumerARN"]
        .as_str()
        .unwrap()
        .to_string();
    let response = sender
        .send_request(kinesis_request(
            "PutRecord",
            serde_json::json!({"StreamName": stream, "PartitionKey": "k", "Data": "aDI="}),
        ))
        .await
        .unwrap();
    ok(&response);
    let response = sender
        .send_request(kinesis_request(
            "SubscribeToShard",
            serde_json::json!({"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "TRIM_HORIZON"}}),
        ))
        .await
        .unwrap();
    ok(&response);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    while events.len() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
        while buffer.len() >= 4 {
            let total = u32::from_be_bytes(buffer[..4].try_into().unwrap()) as usize;
            if buffer.len() < total {
                break;
            }
            let message = aws_smithy_eventstream::frame::read_message_from(Bytes::copy_from_slice(
                &buffer[..total],
            ))
            .unwrap();
            buffer.drain(..total);
            events.push(message);
        }
    }
    let event_type = |m: &aws_smithy_types::event_stream::Message| {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == ":event-type")
            .map(|h| h.value().as_string().unwrap().as_str().to_string())
    };
    assert_eq!(event_type(&events[0]).as_deref(), Some("initial-response"));
    assert_eq!(
        event_type(&events[1]).as_deref(),
        Some("SubscribeToShardEvent")
    );
    let payload: serde_json::Value = serde_json::from_slice(events[1].payload()).unwrap();
    assert_eq!(payload["Records"][0]["Data"], "aDI=");
}

#[tokio::test]
async fn h2c_prior_knowledge_serves_requests_and_subscriptions() {
    let server = TestServer::start();
    let mut sender = h2_connection(server.port, None).await;
    exercise_h2(&mut sender, "h2c").await;
}

#[tokio::test]
async fn tls_with_alpn_h2_and_the_rust_sdk_on_the_same_port() {
    let server = TestServer::start_with(&["--tls"]);
    let pem = std::fs::read(server.data_dir.join("tls/cert.pem")).expect("generated certificate");
    // Raw HTTP/2 over TLS, ALPN h2.
    let mut sender = h2_connection(server.port, Some(&pem)).await;
    exercise_h2(&mut sender, "h2tls").await;
    // The AWS SDK for Rust over https, trusting the generated certificate.
    let client = sdk_over_tls(&format!("https://localhost:{}", server.port), &pem);
    client
        .create_stream()
        .stream_name("sdk-tls")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/sdk-tls";
    let consumer = client
        .register_stream_consumer()
        .stream_arn(arn)
        .consumer_name("tls")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap();
    client
        .put_record()
        .stream_name("sdk-tls")
        .partition_key("k")
        .data(Blob::new("secure"))
        .send()
        .await
        .unwrap();
    let output = client
        .subscribe_to_shard()
        .consumer_arn(consumer.consumer_arn())
        .shard_id("shardId-000000000000")
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::TrimHorizon)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut receiver = output.event_stream;
    let event = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event else {
        panic!("unexpected {event:?}")
    };
    assert_eq!(event.records()[0].data().as_ref(), b"secure");
    // Plaintext still works on the same port.
    let plain = server.client();
    assert_eq!(
        plain.list_streams().send().await.unwrap().stream_names(),
        ["h2tls", "sdk-tls"]
    );
}

/// One HTTP/1.1 exchange with `Connection: close`; the response head, lower-cased.
fn exchange_head(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let text = String::from_utf8_lossy(&response).to_lowercase();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

/// Browsers (the web console, JavaScript SDK users) get CORS answers: preflights echo what
/// was asked, requests with an `Origin` expose the AWS headers, others carry no CORS headers.
#[test]
fn cors_preflight_and_cross_origin_requests() {
    let server = TestServer::start();
    let preflight = exchange_head(
        server.port,
        "OPTIONS / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nOrigin: http://console.test\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: x-amz-target,content-type\r\n\r\n",
    );
    assert!(preflight.starts_with("http/1.1 200"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: *"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-headers: x-amz-target,content-type"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-methods: post"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-max-age: 172800"),
        "{preflight}"
    );
    // AWS gives a preflight a request id, but no extended id.
    assert!(preflight.contains("x-amzn-requestid: "), "{preflight}");
    assert!(!preflight.contains("x-amz-id-2"), "{preflight}");

    let body = "{}";
    let post = |origin: &str| {
        exchange_head(
            server.port,
            &format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{origin}\
                 Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n\
                 X-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let cross = post("Origin: http://console.test\r\n");
    assert!(cross.starts_with("http/1.1 200"), "{cross}");
    assert!(cross.contains("access-control-allow-origin: *"), "{cross}");
    assert!(
        cross.contains("access-control-expose-headers: x-amzn-requestid,"),
        "{cross}"
    );
    assert!(cross.contains("x-amzn-requestid: "), "{cross}");
    let same = post("");
    assert!(same.starts_with("http/1.1 200"), "{same}");
    assert!(!same.contains("access-control-"), "{same}");
}
