//! `millstream bench firehose`: Direct PUT throughput into a delivery stream that writes
//! compressed objects to the server's object store, and how fast delivery keeps up.
//!
//! Producers send PutRecordBatch until `--duration` or `--max-records`, one request in
//! flight each; a record counts as acknowledged when its RequestResponses entry has no
//! ErrorCode. Delivery is not visible through the Firehose API, so it is read from the
//! server's Prometheus endpoint: `firehose_delivery_to_s3_records_total{delivery_stream=…}`
//! is polled until it reaches the acknowledged count or `--drain-timeout` passes. An
//! endpoint without Millstream's metrics gets its delivery reported as unknown, not failed;
//! a Millstream endpoint that does not deliver everything in time fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_sdk_firehose::Client;
use aws_sdk_firehose::config::retry::RetryConfig;
use aws_sdk_firehose::config::{BehaviorVersion, Credentials};
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamStatus, DeliveryStreamType,
    ExtendedS3DestinationConfiguration, Record,
};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::load::{self, Budget, Produced};
use super::payload::Payloads;
use super::{
    Common, MB, MemorySampler, SETUP_TIMEOUT, Ticker, phase_json, progress_bar, round, seconds,
    stats,
};
use crate::client::{Connection, Output};

/// Millstream does not check the role; AWS would need one allowed to write the bucket.
const ROLE_ARN: &str = "arn:aws:iam::000000000000:role/bench";
/// PutRecordBatch limits on AWS (and Millstream): records per call and bytes per call.
const BATCH_RECORDS_MAX: u16 = 500;
const BATCH_BYTES_MAX: usize = 4 << 20;
/// The series delivery is read from; its `delivery_stream` label names the stream.
const DELIVERED_RECORDS: &str = "firehose_delivery_to_s3_records_total";
/// Bytes of the objects written (after compression), for the compression ratio.
const DELIVERED_BYTES: &str = "firehose_delivery_to_s3_bytes_total";
/// How often delivery is polled: the drain time is known to about this much.
const POLL: Duration = Duration::from_millis(200);
/// One scrape of /metrics, connect to last byte.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// A metrics page is far smaller; a bigger answer is not one, and is not read further.
const SCRAPE_BYTES_MAX: u64 = 64 << 20;

#[derive(Args, Clone, Debug)]
pub struct FirehoseArgs {
    // Not `LoadArgs`: its partition-key spread has no meaning for Firehose.
    /// Concurrent connections, one request in flight on each.
    #[arg(short = 'c', long, default_value_t = 8)]
    connections: u64,
    /// Record size in bytes (at least 32: the self-check header).
    #[arg(short = 's', long, default_value_t = 1024)]
    size: usize,
    /// Stop putting after this many seconds...
    #[arg(short = 'd', long, default_value_t = 20.0)]
    pub duration: f64,
    /// ...or after this many records, whichever comes first.
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    max_records: u64,
    /// Records per PutRecordBatch request.
    #[arg(short = 'b', long, default_value_t = BATCH_RECORDS_MAX,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(BATCH_RECORDS_MAX)))]
    batch: u16,
    /// CompressionFormat of the delivered objects.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Compression::Gzip)]
    compression: Compression,
    /// BufferingHints SizeInMBs: an object is written at this many MiB...
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..=128))]
    buffer_mib: i32,
    /// ...or this many seconds after its first record (BufferingHints IntervalInSeconds).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=900))]
    interval: i32,
    /// Bucket the objects go to (on Millstream: `<data-dir>/buckets/<bucket>/`).
    #[arg(long, default_value = "millstream-bench")]
    bucket: String,
    /// At most this many seconds after the producers stop for delivery to catch up.
    #[arg(long, default_value_t = 120.0)]
    pub drain_timeout: f64,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    #[value(name = "UNCOMPRESSED")]
    Uncompressed,
    #[value(name = "GZIP")]
    Gzip,
    #[value(name = "ZIP")]
    Zip,
    #[value(name = "Snappy")]
    Snappy,
    #[value(name = "HADOOP_SNAPPY")]
    HadoopSnappy,
}

impl Compression {
    fn format(self) -> CompressionFormat {
        match self {
            Compression::Uncompressed => CompressionFormat::Uncompressed,
            Compression::Gzip => CompressionFormat::Gzip,
            Compression::Zip => CompressionFormat::Zip,
            Compression::Snappy => CompressionFormat::Snappy,
            Compression::HadoopSnappy => CompressionFormat::HadoopSnappy,
        }
    }
}

impl FirehoseArgs {
    pub fn config_json(&self) -> Value {
        json!({
            "connections": self.connections, "record_size": self.size,
            "duration_s": self.duration, "max_records": self.max_records, "batch": self.batch,
            "compression": self.compression.format().as_str(), "buffer_mib": self.buffer_mib,
            "interval_s": self.interval, "bucket": self.bucket,
            "drain_timeout_s": self.drain_timeout,
        })
    }
}

/// A Firehose client like `Connection::client()`'s Kinesis one (same endpoint, region,
/// credentials, timeouts and HTTP client), without SDK retries: every failure is counted,
/// and no retry can put a record twice.
fn firehose_client(connection: &Connection) -> Client {
    let kinesis = connection.client();
    let base = kinesis.config();
    // The same credentials as `Connection::client()` (the SDK cannot hand a client's
    // credentials provider to another client: `Config::credentials_provider` is always None).
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            Credentials::new(id, secret, var("AWS_SESSION_TOKEN"), None, "environment")
        }
        _ => Credentials::new("millstream", "millstream", None, None, "millstream-cli"),
    };
    let mut builder = aws_sdk_firehose::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&connection.endpoint)
        .credentials_provider(credentials)
        .retry_config(RetryConfig::disabled());
    builder.set_region(base.region().cloned());
    builder.set_timeout_config(base.timeout_config().cloned());
    builder.set_http_client(base.http_client());
    Client::from_conf(builder.build())
}

/// Creates the delivery stream (or reuses an existing one of that name) and waits until
/// it is ACTIVE.
async fn create(client: &Client, name: &str, args: &FirehoseArgs) -> anyhow::Result<()> {
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn(ROLE_ARN)
        .bucket_arn(format!("arn:aws:s3:::{}", args.bucket))
        .compression_format(args.compression.format())
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(args.buffer_mib)
                .interval_in_seconds(args.interval)
                .build(),
        )
        .build()
        .context("ExtendedS3DestinationConfiguration")?;
    let created = client
        .create_delivery_stream()
        .delivery_stream_name(name)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error) if super::error_code(&error) == Some("ResourceInUseException") => {}
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("CreateDeliveryStream {name}")));
        }
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let described = client
            .describe_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
            .with_context(|| format!("DescribeDeliveryStream {name}"))?;
        let status = described
            .delivery_stream_description()
            .map(|d| d.delivery_stream_status().clone());
        if status == Some(DeliveryStreamStatus::Active) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("delivery stream {name} is not ACTIVE after {SETUP_TIMEOUT:?} ({status:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What every producer shares.
struct Shared {
    client: Client,
    stream: String,
    payloads: Payloads,
    /// Time base of the send timestamps inside payloads.
    epoch: Instant,
}

/// One producer: PutRecordBatch of `batch` records until the budget or the time is up.
async fn producer(
    shared: Arc<Shared>,
    worker: u64,
    batch: u64,
    budget: Arc<Budget>,
    progress: Arc<AtomicU64>,
) -> Produced {
    let mut out = Produced::new();
    let size = shared.payloads.size() as u64;
    let mut counter = 0u64;
    loop {
        let count = budget.claim(batch);
        if count == 0 {
            break;
        }
        let sent_us = u64::try_from(shared.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        // Ids (producer << 40 | counter) make every record's bytes differ.
        let records: Result<Vec<Record>, _> = (0..count)
            .map(|_| {
                counter += 1;
                let data = shared.payloads.build((worker << 40) | counter, sent_us);
                Record::builder().data(Blob::new(data)).build()
            })
            .collect();
        let records = match records {
            Ok(records) => records,
            // Only a record without data fails to build, and each has data.
            Err(error) => {
                out.error(format!("building a record: {error}"));
                break;
            }
        };
        out.requests += 1;
        let started = Instant::now();
        let result = shared
            .client
            .put_record_batch()
            .delivery_stream_name(&shared.stream)
            .set_records(Some(records))
            .send()
            .await;
        stats::record(&mut out.latency, started.elapsed());
        let acked = match result {
            Ok(response) => {
                let entries = response.request_responses();
                let mut acked = 0u64;
                for entry in entries {
                    match entry.error_code() {
                        None => acked += 1,
                        Some(code) => {
                            out.failed += 1;
                            out.error(code.to_owned());
                        }
                    }
                }
                // Records the answer does not mention were not acknowledged.
                let missing = count.saturating_sub(entries.len() as u64);
                for _ in 0..missing {
                    out.failed += 1;
                    out.error("MissingResponseEntry".to_owned());
                }
                acked.min(count)
            }
            Err(error) => {
                out.error(load::error_kind(&error));
                0
            }
        };
        out.records += acked;
        out.bytes += acked * size;
        progress.fetch_add(acked, Ordering::Relaxed);
        if acked == 0 && Instant::now() < budget.deadline {
            tokio::time::sleep(load::ERROR_BACKOFF).await;
        }
    }
    out
}

/// The delivery counters of one delivery stream at one scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Delivered {
    records: f64,
    object_bytes: f64,
}

/// `GET <endpoint>/metrics` over plain HTTP/1.1.
struct Metrics {
    /// host:port to connect to and to name in `Host`.
    authority: String,
    path: String,
}

impl Metrics {
    /// None for endpoints this minimal client cannot reach (https).
    fn new(endpoint: &str) -> Option<Metrics> {
        let rest = endpoint.strip_prefix("http://")?;
        let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
        let base = base.trim_end_matches('/');
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let path = if base.is_empty() {
            "/metrics".to_owned()
        } else {
            format!("/{base}/metrics")
        };
        Some(Metrics { authority, path })
    }

    /// The stream's counters (0 before its first delivery); `Ok(None)` when the endpoint
    /// answers but is not Millstream (no `millstream_` metrics).
    async fn scrape(&self, stream: &str) -> anyhow::Result<Option<Delivered>> {
        let (status, body) = tokio::time::timeout(SCRAPE_TIMEOUT, self.get())
            .await
            .with_context(|| format!("GET {} timed out", self.path))??;
        if status != 200 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&body);
        if !text.lines().any(|line| line.starts_with("millstream_")) {
            return Ok(None);
        }
        Ok(Some(Delivered {
            records: series_value(&text, DELIVERED_RECORDS, stream).unwrap_or(0.0),
            object_bytes: series_value(&text, DELIVERED_BYTES, stream).unwrap_or(0.0),
        }))
    }

    async fn get(&self) -> anyhow::Result<(u16, Vec<u8>)> {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        let mut stream = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to {}", self.authority))?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream
            .take(SCRAPE_BYTES_MAX)
            .read_to_end(&mut response)
            .await?;
        parse_response(&response)
    }
}

/// Status and body of an HTTP/1.1 response read to the connection's end.
fn parse_response(response: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("HTTP response without the end of its headers")?;
    let head = std::str::from_utf8(&response[..end]).context("HTTP headers are not UTF-8")?;
    let body = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .context("bad HTTP status line")?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// The payload of a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    // Bounded: every pass consumes at least a size line of `body`.
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let line = std::str::from_utf8(&body[..line_end]).context("bad chunk size line")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).context("bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        anyhow::ensure!(body.len() >= size, "truncated chunk");
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
    bail!("chunked body without its last chunk")
}

/// The value of `metric{…delivery_stream="<stream>"…} value` in Prometheus text.
fn series_value(text: &str, metric: &str, stream: &str) -> Option<f64> {
    let label = format!("delivery_stream=\"{stream}\"");
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once('}')?;
        // Stream names are [a-zA-Z0-9_.-]: no escapes or commas inside label values.
        if !labels.split(',').any(|l| l.trim() == label) {
            return None;
        }
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Polls the counters until `acked` records more than `baseline` were delivered or the
/// timeout passes.
async fn drain(
    metrics: &Metrics,
    stream: &str,
    baseline: Delivered,
    acked: u64,
    size: usize,
    timeout: Duration,
    first_put: Instant,
) -> Value {
    let bar = progress_bar(Some(acked), "delivered");
    let stopped = Instant::now();
    let deadline = stopped + timeout;
    let (mut last, mut scrapes, mut scrape_errors, mut last_error) = (baseline, 0u64, 0u64, None);
    let mut caught_up = None;
    // Bounded by the deadline, and by count since every pass sleeps POLL.
    let passes = timeout.as_millis() / POLL.as_millis() + 2;
    for _ in 0..passes {
        match metrics.scrape(stream).await {
            Ok(Some(now)) => {
                scrapes += 1;
                last = now;
            }
            Ok(None) => {
                scrape_errors += 1;
                last_error = Some("the metrics endpoint stopped answering as Millstream".into());
            }
            Err(error) => {
                scrape_errors += 1;
                last_error = Some(format!("{error:#}"));
            }
        }
        let delivered = (last.records - baseline.records).max(0.0) as u64;
        bar.set_position(delivered);
        if delivered >= acked {
            caught_up = Some(Instant::now());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    bar.finish_and_clear();
    let delivered = (last.records - baseline.records).max(0.0) as u64;
    let object_bytes = (last.object_bytes - baseline.object_bytes).max(0.0) as u64;
    let uncompressed = delivered * size as u64;
    let end = caught_up.unwrap_or_else(Instant::now);
    // From the first put: delivery cannot be faster than the producers fed it.
    let window = end.duration_since(first_put).as_secs_f64().max(1e-9);
    json!({
        "caught_up": caught_up.is_some(),
        "delivered_records": delivered,
        "acknowledged_records": acked,
        "drain_seconds": caught_up.map(|t| round(t.duration_since(stopped).as_secs_f64(), 3)),
        "waited_seconds": round(end.duration_since(stopped).as_secs_f64(), 3),
        "records_per_s": round(delivered as f64 / window, 1),
        "mb_per_s": round(uncompressed as f64 / MB / window, 2),
        "object_bytes": object_bytes,
        "compression_ratio": (object_bytes > 0).then(|| round(uncompressed as f64 / object_bytes as f64, 3)),
        "scrapes": scrapes,
        "scrape_errors": scrape_errors,
        "last_scrape_error": last_error,
    })
}

fn unknown_delivery(reason: String) -> Value {
    json!({
        "caught_up": null,
        "delivered_records": null,
        "drain_seconds": null,
        "records_per_s": null,
        "mb_per_s": null,
        "unknown": reason,
    })
}

/// The put phase, then the drain.
async fn measure(
    client: &Client,
    stream: &str,
    connection: &Connection,
    common: &Common,
    args: &FirehoseArgs,
) -> anyhow::Result<Value> {
    let duration = seconds(args.duration, "--duration")?;
    let drain_timeout = seconds(args.drain_timeout, "--drain-timeout")?;
    // The counters before this run's records, so a reused `--stream` is measured right.
    let baseline = match Metrics::new(&connection.endpoint) {
        None => Err("the metrics client speaks plain http:// only".to_owned()),
        Some(metrics) => match metrics.scrape(stream).await {
            Ok(Some(baseline)) => Ok((metrics, baseline)),
            Ok(None) => Err(format!(
                "{} has no Millstream metrics at {}",
                connection.endpoint, metrics.path
            )),
            Err(error) => Err(format!("{error:#}")),
        },
    };
    let shared = Arc::new(Shared {
        client: client.clone(),
        stream: stream.to_owned(),
        payloads: Payloads::new(args.size)?,
        epoch: Instant::now(),
    });
    let counter = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(
        progress_bar(Some(args.max_records), "PutRecordBatch"),
        counter.clone(),
    );
    let put_probe = stats::Probe::start(common.server_pid);
    let started = Instant::now();
    let budget = Arc::new(Budget::new(args.max_records, started + duration));
    let workers: Vec<_> = (0..args.connections)
        .map(|worker| {
            tokio::spawn(producer(
                shared.clone(),
                worker,
                u64::from(args.batch),
                budget.clone(),
                counter.clone(),
            ))
        })
        .collect();
    let mut produced = Produced::new();
    for worker in workers {
        produced.merge(worker.await.context("a producer panicked")?);
    }
    let put_elapsed = started.elapsed();
    ticker.finish(&counter);
    let mut put = phase_json(
        produced.records,
        produced.bytes,
        produced.requests,
        put_elapsed,
    );
    put["failed_records"] = json!(produced.failed);
    put["errors"] = json!(produced.errors);
    put["latency_ms"] = stats::latency_json(&produced.latency);
    put["resources"] = put_probe.finish(produced.records);
    let drain_probe = stats::Probe::start(common.server_pid);
    let mut delivery = match &baseline {
        Ok((metrics, baseline)) => {
            drain(
                metrics,
                stream,
                *baseline,
                produced.records,
                args.size,
                drain_timeout,
                started,
            )
            .await
        }
        Err(reason) => unknown_delivery(reason.clone()),
    };
    delivery["resources"] = drain_probe.finish(produced.records);
    let mut body = json!({ "put": put, "delivery": delivery });
    if common.server_pid.is_some() {
        // Put and delivery together: the whole cost of a record on the server.
        let whole = put_probe.finish(produced.records);
        body["server"] = json!({
            "cpu_s": whole["server_cpu_s"],
            "cpu_pct": whole["server_cpu_pct"],
            "cpu_us_per_record": whole["server_cpu_us_per_record"],
        });
    }
    Ok(body)
}

/// Runs `millstream bench firehose` and prints its report; `report` holds the common
/// header (tool, version, git sha, hardware, endpoint, label, scenario, config).
///
/// # Errors
/// Setup failures, and delivery that did not catch up on a Millstream endpoint (after the
/// report is written).
pub async fn run(
    connection: &Connection,
    common: &Common,
    args: &FirehoseArgs,
    mut report: Value,
    bound: Duration,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let batch_bytes = usize::from(args.batch).saturating_mul(args.size);
    anyhow::ensure!(
        batch_bytes <= BATCH_BYTES_MAX,
        "--batch x --size is {batch_bytes} bytes; PutRecordBatch takes at most {BATCH_BYTES_MAX}"
    );
    let client = firehose_client(connection);
    let stream = common.stream.clone().unwrap_or_else(|| {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        format!("bench-firehose-{}-{millis}", std::process::id())
    });
    report["stream"] = json!(stream);
    create(&client, &stream, args).await?;
    let memory = MemorySampler::start(common.server_pid);
    let outcome =
        tokio::time::timeout(bound, measure(&client, &stream, connection, common, args)).await;
    let rss = memory.finish().await;
    if !common.keep {
        // Best effort: a stream left behind is harmless and named after this run.
        let _ = client
            .delete_delivery_stream()
            .delivery_stream_name(&stream)
            .send()
            .await;
    }
    let body = match outcome {
        Ok(body) => body?,
        Err(_) => bail!("the run did not finish within its bound of {bound:?}"),
    };
    super::merge(&mut report, body);
    if let Some(pid) = common.server_pid {
        let text = pid.to_string();
        report["server"]["pid"] = json!(pid);
        report["server"]["vm_hwm_mb"] =
            json!(stats::status_kb(&text, "VmHWM").map(|kb| round(kb as f64 / 1024.0, 1)));
        report["server"]["rss_mb_per_second"] = json!(rss);
    }
    // Unknown delivery (not Millstream) is no failure; a Millstream that fell behind is.
    let ok = report["delivery"]["caught_up"].as_bool() != Some(false);
    report["ok"] = json!(ok);
    if let Some(path) = &common.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match connection.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => println!("{}", human(&report)),
    }
    if !ok {
        bail!(
            "delivery did not catch up: {} of {} acknowledged records delivered {} s after the producers stopped",
            report["delivery"]["delivered_records"],
            report["put"]["records"],
            report["delivery"]["waited_seconds"],
        );
    }
    Ok(())
}

/// The report for people.
fn human(report: &Value) -> String {
    let config = &report["config"];
    let mut lines = vec![format!(
        "millstream bench firehose against {} (delivery stream {} -> s3://{}, {}, buffer {} MiB / {} s; git {}, {} x {})",
        report["endpoint"].as_str().unwrap_or("?"),
        report["stream"].as_str().unwrap_or("?"),
        config["bucket"].as_str().unwrap_or("?"),
        config["compression"].as_str().unwrap_or("?"),
        config["buffer_mib"],
        config["interval_s"],
        report["git_sha"].as_str().unwrap_or("unknown"),
        report["hardware"]["nproc"],
        report["hardware"]["model_name"]
            .as_str()
            .unwrap_or("unknown CPU"),
    )];
    let put = &report["put"];
    lines.push(format!(
        "put      {} records in {} s: {} records/s, {} MB/s, {} requests/s",
        put["records"],
        put["seconds"],
        put["records_per_s"],
        put["mb_per_s"],
        put["requests_per_s"]
    ));
    lines.push(format!(
        "         request latency: {}",
        stats::latency_text(&put["latency_ms"])
    ));
    let failed = put["failed_records"].as_u64().unwrap_or(0);
    if failed > 0 || put["errors"].as_object().is_some_and(|e| !e.is_empty()) {
        lines.push(format!(
            "         failed records {failed}, errors {}",
            put["errors"]
        ));
    }
    resources(&put["resources"], &mut lines);
    let delivery = &report["delivery"];
    match delivery["caught_up"].as_bool() {
        None => lines.push(format!(
            "delivery unknown: {}",
            delivery["unknown"].as_str().unwrap_or("?")
        )),
        Some(true) => lines.push(format!(
            "delivery all {} records delivered {} s after the producers stopped: {} records/s, {} MB/s from the first put",
            delivery["delivered_records"],
            delivery["drain_seconds"],
            delivery["records_per_s"],
            delivery["mb_per_s"]
        )),
        Some(false) => lines.push(format!(
            "delivery BEHIND: {} of {} records delivered {} s after the producers stopped",
            delivery["delivered_records"], put["records"], delivery["waited_seconds"]
        )),
    }
    if !delivery["compression_ratio"].is_null() {
        lines.push(format!(
            "         objects {} bytes, {}x smaller than the records",
            delivery["object_bytes"], delivery["compression_ratio"]
        ));
    }
    resources(&delivery["resources"], &mut lines);
    let server = &report["server"];
    if !server.is_null() {
        lines.push(format!(
            "server   CPU {} s over put and delivery ({} us/record); peak memory (VmHWM) {} MB",
            server["cpu_s"], server["cpu_us_per_record"], server["vm_hwm_mb"]
        ));
    }
    lines.join("\n")
}

/// `super::resources`, indented under this report's wider labels.
fn resources(v: &Value, lines: &mut Vec<String>) {
    let mut own = Vec::new();
    super::resources(v, &mut own);
    lines.extend(own.into_iter().map(|line| format!("   {line}")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_series_of_the_exposition() {
        let text = "# TYPE firehose_delivery_to_s3_records_total counter\n\
            firehose_delivery_to_s3_records_total{delivery_stream=\"a\"} 12\n\
            firehose_delivery_to_s3_records_total{delivery_stream=\"ab\"} 7\n\
            firehose_delivery_to_s3_records_total{region=\"x\",delivery_stream=\"b\"} 3.5e3\n";
        assert_eq!(series_value(text, DELIVERED_RECORDS, "a"), Some(12.0));
        assert_eq!(series_value(text, DELIVERED_RECORDS, "ab"), Some(7.0));
        assert_eq!(series_value(text, DELIVERED_RECORDS, "b"), Some(3500.0));
        assert_eq!(series_value(text, DELIVERED_RECORDS, "c"), None);
        assert_eq!(series_value(text, DELIVERED_BYTES, "a"), None);
    }

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(plain).unwrap(), (200, b"hello".to_vec()));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (200, b"hello".to_vec()));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n")
                .is_err()
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap().0,
            404
        );
    }

    #[test]
    fn metrics_url_follows_the_endpoint() {
        let m = Metrics::new("http://127.0.0.1:4567").unwrap();
        assert_eq!(
            (m.authority.as_str(), m.path.as_str()),
            ("127.0.0.1:4567", "/metrics")
        );
        let m = Metrics::new("http://localhost/base/").unwrap();
        assert_eq!(
            (m.authority.as_str(), m.path.as_str()),
            ("localhost:80", "/base/metrics")
        );
        assert!(Metrics::new("https://127.0.0.1:4567").is_none());
    }
}
