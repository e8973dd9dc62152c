//! Test harness: a real `millstream serve` process on a free port, AWS SDK clients for it,
//! and a raw HTTP/1.1 client for checking exact wire responses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};

pub struct TestServer {
    child: Option<Child>,
    pub endpoint: String,
    pub port: u16,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    envs: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> TestServer {
        Self::start_with_env(extra_args, &[])
    }

    /// With extra flags and environment variables (e.g. credentials for an S3 endpoint).
    pub fn start_with_env(extra_args: &[&str], envs: &[(&str, &str)]) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let mut server = TestServer {
            child: None,
            endpoint: String::new(),
            port: 0,
            data_dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _tmp: Some(tmp),
        };
        server.spawn(0);
        server
    }

    fn spawn(&mut self, port: u16) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_millstream"))
            .arg("serve")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env("MILLSTREAM_LOG", "warn")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start millstream");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("read the listening line");
        let address = line
            .trim()
            .strip_prefix("millstream listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
            .to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        self.port = address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        self.endpoint = address;
        self.child = Some(child);
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait; returns how long shutdown took.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as libc::pid_t;
            send_signal(pid, libc::SIGTERM);
            let _ = child.wait();
        }
        started.elapsed()
    }

    /// Kills the server with SIGKILL and starts it again on the same data directory and port.
    pub fn crash_and_restart(&mut self) {
        let port = self.port;
        self.kill();
        self.spawn(port);
    }

    pub fn restart_after_terminate(&mut self) {
        let port = self.port;
        self.terminate();
        self.spawn(port);
    }

    pub fn client(&self) -> aws_sdk_kinesis::Client {
        kinesis_client(&self.endpoint)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Through kill(1): libc::kill needs `unsafe`, which the workspace denies.
fn send_signal(pid: libc::pid_t, signal: libc::c_int) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "kill -{signal} {pid}"
    );
}

pub fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A raw response: status, lower-cased headers, body.
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response.
pub fn raw_request(
    port: u16,
    target: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    signed: bool,
) -> RawResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(target) = target {
        head.push_str(&format!("X-Amz-Target: {target}\r\n"));
    }
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if signed {
        head.push_str("X-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // The body goes out from another thread while this one reads: a server may answer (413)
    // and close before taking the whole body, and a writer that blocked or failed first
    // would never see that answer.
    let mut writer = stream.try_clone().expect("clone stream");
    let body = body.to_vec();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            // Closing with our unread body still in flight resets the connection; what
            // arrived before the reset is the whole answer.
            Err(err)
                if err.kind() == std::io::ErrorKind::ConnectionReset && !response.is_empty() =>
            {
                break;
            }
            Err(err) => panic!("read response: {err}"),
        }
    }
    let _ = sender.join();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body: response[split + 4..].to_vec(),
    }
}

/// A JSON request signed with well-formed (presence-checked) SigV4 headers.
pub fn json_request(port: u16, operation: &str, body: serde_json::Value) -> RawResponse {
    raw_request(
        port,
        Some(&format!("Kinesis_20131202.{operation}")),
        Some("application/x-amz-json-1.1"),
        body.to_string().as_bytes(),
        true,
    )
}

/// Creates a stream of `shards` shards (ACTIVE at once with the default delays).
pub async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
}

/// An iterator of `kind` for one shard.
pub async fn shard_iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    kind: aws_sdk_kinesis::types::ShardIteratorType,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap()
}

/// A TRIM_HORIZON iterator for one shard (the start of most read-back checks).
pub async fn trim_horizon_iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
) -> String {
    shard_iterator(
        client,
        stream,
        shard,
        aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon,
    )
    .await
}
