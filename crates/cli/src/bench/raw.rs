//! Producers that skip the SDK (`--producer-client http`): PutRecords and PutRecord built as
//! JSON by hand, signed with SigV4 (`aws-sigv4`, the SDK's own signer) and sent on one
//! kept-alive HTTP/1.1 connection per producer.
//!
//! Why: the AWS SDK for Rust spends about 0.7 ms of client CPU per request on this machine
//! (BENCHMARKS.md, round 4), which at a low rate is most of a put-to-consume latency of a few
//! milliseconds. A client whose own cost is a few microseconds shows what the server adds.
//! The requests are the ones any SDK sends (same target header, content type, signature),
//! so this works against any Kinesis endpoint reachable over plain HTTP.

use std::net::SocketAddr;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Where and as whom: shared by every producer of a run.
pub struct Endpoint {
    address: SocketAddr,
    /// `host:port` as given, for the `Host` header and the signature.
    authority: String,
    region: String,
    identity: Identity,
}

impl Endpoint {
    /// `endpoint` must be a plain `http://host:port` URL (TLS is the SDK's job).
    pub fn new(endpoint: &str, region: &str, identity: Identity) -> anyhow::Result<Endpoint> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| anyhow::anyhow!("endpoint {endpoint}: {e}"))?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http"),
            "--producer-client http needs an http:// endpoint, not {endpoint}"
        );
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint} has no host"))?
            .to_string();
        let with_port = if uri.port().is_some() {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let address = std::net::ToSocketAddrs::to_socket_addrs(&with_port)?
            .next()
            .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint} does not resolve"))?;
        Ok(Endpoint {
            address,
            authority,
            region: region.to_owned(),
            identity,
        })
    }

    fn signed_request(
        &self,
        operation: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<http::Request<Full<Bytes>>> {
        let target = format!("Kinesis_20131202.{operation}");
        let mut request = http::Request::post("/")
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-target", &target)
            .body(())?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("kinesis")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new("POST", "/", headers, SignableBody::Bytes(&body))?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request.map(|()| Full::new(Bytes::from(body))))
    }
}

/// How one request ended, in the words the SDK path reports (`load::error_kind`): an AWS
/// error code, or `connection` / `bad response`.
pub type CallError = String;

/// One record's outcome in a PutRecords response: shard id and sequence number, or the
/// record's error code.
pub type RecordOutcome = Result<(String, String), String>;

/// One producer's connection, opened on first use and again after a failure.
pub struct Producer {
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl Producer {
    pub fn new() -> Producer {
        Producer { connection: None }
    }

    async fn call(
        &mut self,
        endpoint: &Endpoint,
        operation: &str,
        body: Vec<u8>,
    ) -> Result<Value, CallError> {
        let request = endpoint
            .signed_request(operation, body)
            .map_err(|_| "request".to_owned())?;
        let sender = match &mut self.connection {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connection.insert(connect(endpoint).await?),
        };
        // The previous response was read to its end, but the connection task may not have
        // taken that in yet: wait for it rather than fail the request.
        if sender.ready().await.is_err() {
            self.connection = None;
            return Err("connection".to_owned());
        }
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => {
                self.connection = None;
                return Err("connection".to_owned());
            }
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                self.connection = None;
                return Err("connection".to_owned());
            }
        };
        let value: Value = serde_json::from_slice(&body).map_err(|_| "bad response".to_owned())?;
        if status.is_success() {
            return Ok(value);
        }
        // `__type` may carry a namespace (`...#Code`), as AWS JSON protocols allow.
        Err(value["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16())))
    }

    /// PutRecord: the shard id and sequence number.
    pub async fn put_record(
        &mut self,
        endpoint: &Endpoint,
        stream: &str,
        key: &str,
        data: &[u8],
    ) -> Result<(String, String), CallError> {
        let body = json!({"StreamName": stream, "PartitionKey": key, "Data": BASE64.encode(data)});
        let out = self
            .call(endpoint, "PutRecord", body.to_string().into_bytes())
            .await?;
        placement(&out).ok_or_else(|| "bad response".to_owned())
    }

    /// PutRecords: one outcome per record, in request order.
    pub async fn put_records(
        &mut self,
        endpoint: &Endpoint,
        stream: &str,
        records: &[(String, Vec<u8>)],
    ) -> Result<Vec<RecordOutcome>, CallError> {
        let entries: Vec<Value> = records
            .iter()
            .map(|(key, data)| json!({"PartitionKey": key, "Data": BASE64.encode(data)}))
            .collect();
        let body = json!({"StreamName": stream, "Records": entries});
        let out = self
            .call(endpoint, "PutRecords", body.to_string().into_bytes())
            .await?;
        let Some(results) = out["Records"].as_array() else {
            return Err("bad response".to_owned());
        };
        if results.len() != records.len() {
            return Err("bad response".to_owned());
        }
        Ok(results
            .iter()
            .map(|entry| {
                placement(entry).ok_or_else(|| {
                    entry["ErrorCode"]
                        .as_str()
                        .unwrap_or("FailedRecord")
                        .to_owned()
                })
            })
            .collect())
    }
}

fn placement(entry: &Value) -> Option<(String, String)> {
    Some((
        entry["ShardId"].as_str()?.to_owned(),
        entry["SequenceNumber"].as_str()?.to_owned(),
    ))
}

async fn connect(endpoint: &Endpoint) -> Result<SendRequest<Full<Bytes>>, CallError> {
    let stream = tokio::net::TcpStream::connect(endpoint.address)
        .await
        .map_err(|_| "connection".to_owned())?;
    // One small request at a time: Nagle would hold each behind the previous ACK.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| "connection".to_owned())?;
    tokio::spawn(async move {
        // Ends when the producer drops its sender or the server closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}
