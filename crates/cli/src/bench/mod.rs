//! `millstream bench`: an end-to-end load generator for Millstream or any Kinesis endpoint
//! on this machine.
//!
//! Scenarios: `put` (PutRecords), `single` (PutRecord), `get` (put, then read everything
//! back with GetRecords and verify it), `e2e` (a fixed-rate producer and polling or
//! SubscribeToShard consumers; put-to-consume latency), `firehose` (PutRecordBatch into a
//! delivery stream, then how fast delivery to objects keeps up) and `scale` (the cost of
//! holding many streams and shards, and one very wide stream). Every record carries its id,
//! send time and a hash of its bytes (see `payload`), so read-back verifies each acknowledged
//! record came back exactly once, where and in the order it was acknowledged, intact.
//!
//! Every loop stops by itself: producers at `--duration` or `--max-records`, readers at an
//! empty page (or `--read-timeout`), the whole run at a hard bound derived from those.
//! Requests go through the AWS SDK, like the other client commands, unless producers are
//! told to send hand-built signed requests (`--producer-client http`, see `raw`). Reports:
//! people's on stdout (progress on stderr when it is a terminal), JSON with `--json FILE` or
//! `--output json`, stamped with the git sha and the hardware. Verification failures exit
//! non-zero.

mod consume;
mod firehose;
mod load;
mod payload;
mod raw;
mod scale;
mod stats;
mod verify;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::types::{ConsumerStatus, StreamStatus};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::client::{Connection, Output};
use load::{Budget, Produced, Target};
use payload::Payloads;
use verify::{ShardCheck, Verdict};

const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to a run's own limits for its hard bound (setup, teardown, stragglers).
const RUN_SLACK: Duration = Duration::from_secs(60);
const MB: f64 = 1e6;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// PutRecords throughput: -c connections, one request in flight on each.
    Put(PutArgs),
    /// PutRecord (one record per request) throughput.
    Single(SingleArgs),
    /// `put`, then read every shard back with GetRecords (Limit 10000) and verify each
    /// acknowledged record: exactly once, in order per shard, intact.
    Get(GetArgs),
    /// Put-to-consume latency at a fixed rate, consumers polling or subscribed (EFO).
    E2e(E2eArgs),
    /// Firehose Direct PUT (PutRecordBatch) into compressed objects on the server's object
    /// store, and how long delivery takes to catch up (read from the server's /metrics).
    Firehose(firehose::FirehoseArgs),
    /// `put` on a small stream, again while many other streams sit idle (and what holding
    /// them costs the server), then on one stream of very many shards.
    Scale(scale::ScaleArgs),
}

/// Settings every scenario has (given before or after the scenario's name).
#[derive(Args, Clone, Debug)]
struct Common {
    /// Stream to use (created if missing; default: a fresh bench-<scenario>-<pid>-<ms>).
    #[arg(long, global = true)]
    stream: Option<String>,
    /// Shards of the stream the bench creates.
    #[arg(long, global = true, default_value_t = 4)]
    shards: i32,
    /// Keep the stream afterwards (default: delete it).
    #[arg(long, global = true)]
    keep: bool,
    /// Process id of the server: report its CPU time and peak memory (from /proc).
    #[arg(long, global = true, value_name = "PID")]
    server_pid: Option<u32>,
    /// Also write the JSON report to this file.
    #[arg(long, global = true, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Free text copied into the report (e.g. the server's name).
    #[arg(long, global = true, default_value = "")]
    label: String,
    /// How the producers of put, single, get and e2e send: through the AWS SDK for Rust, or as hand-built, SigV4-signed
    /// requests on one kept-alive HTTP/1.1 connection each (a client that costs a few
    /// microseconds per request instead of the SDK's ~0.7 ms; plain http:// only).
    #[arg(long, global = true, value_enum, default_value_t = ProducerClient::Sdk)]
    producer_client: ProducerClient,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ProducerClient {
    Sdk,
    Http,
}

#[derive(Args, Clone, Debug)]
struct LoadArgs {
    /// Concurrent connections, one request in flight on each.
    #[arg(short = 'c', long, default_value_t = 8)]
    connections: u64,
    /// Record size in bytes (at least 32: the self-check header).
    #[arg(short = 's', long, default_value_t = 1024)]
    size: usize,
    /// Distinct partition keys; 0 = a random key for every record.
    #[arg(short = 'k', long, default_value_t = 0)]
    key_spread: u64,
    /// Stop putting after this many seconds...
    #[arg(short = 'd', long, default_value_t = 20.0)]
    duration: f64,
    /// ...or after this many records, whichever comes first.
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    max_records: u64,
}

#[derive(Args, Clone, Debug)]
struct PutArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Records per PutRecords request (at most 500 on AWS).
    #[arg(short = 'b', long, default_value_t = 500)]
    batch: usize,
}

#[derive(Args, Clone, Debug)]
struct SingleArgs {
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args, Clone, Debug)]
struct GetArgs {
    #[command(flatten)]
    put: PutArgs,
    /// Upper bound in seconds for the read-back.
    #[arg(long, default_value_t = 300.0)]
    read_timeout: f64,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ConsumerKind {
    /// GetRecords in a loop on every shard.
    Poll,
    /// Enhanced fan-out: a registered consumer and SubscribeToShard on every shard.
    Efo,
}

#[derive(Args, Clone, Debug)]
struct E2eArgs {
    /// Records per second, over all producers.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Records per request (1 = PutRecord).
    #[arg(short = 'b', long, default_value_t = 10)]
    batch: usize,
    /// Record size in bytes (at least 32).
    #[arg(short = 's', long, default_value_t = 100)]
    size: usize,
    /// Distinct partition keys; 0 = a random key for every record.
    #[arg(short = 'k', long, default_value_t = 0)]
    key_spread: u64,
    /// Seconds of producing.
    #[arg(short = 'd', long, default_value_t = 15.0)]
    duration: f64,
    /// Producer connections, each sending rate/producers records/s.
    #[arg(long, default_value_t = 2)]
    producers: u64,
    /// How consumers get records.
    #[arg(long, value_enum, default_value_t = ConsumerKind::Poll)]
    consumer: ConsumerKind,
    /// Polling consumers sleep this many milliseconds after an empty page.
    #[arg(long, default_value_t = 1.0)]
    poll_idle_ms: f64,
    /// At most this many seconds after the producers stop for the consumers to catch up.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
}

fn seconds(value: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{name}: {value} is not a duration"))
}

/// The load goes to this machine only: refuse endpoints that do not resolve to loopback.
fn check_loopback(endpoint: &str) -> anyhow::Result<()> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addresses: Vec<_> = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .collect();
    if addresses.is_empty() || !addresses.iter().all(|a| a.ip().is_loopback()) {
        bail!(
            "millstream bench only loads endpoints on this machine (loopback); {endpoint} is not"
        );
    }
    Ok(())
}

/// A progress bar of records on stderr when it is a terminal, hidden otherwise.
fn progress_bar(total: Option<u64>, message: &str) -> ProgressBar {
    counting_bar(total, message, "records")
}

/// `progress_bar` counting `unit` (records, streams) instead of records.
fn counting_bar(total: Option<u64>, message: &str, unit: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(total, target);
    let template = match total {
        Some(_) => format!(
            "{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit}, {{per_sec}}, {{elapsed}}"
        ),
        None => format!("{{spinner}} {{msg}} {{human_pos}} {unit}, {{per_sec}}, {{elapsed}}"),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Mirrors an atomic counter into a progress bar until dropped.
struct Ticker {
    task: tokio::task::JoinHandle<()>,
    bar: ProgressBar,
}

impl Ticker {
    fn start(bar: ProgressBar, counter: Arc<AtomicU64>) -> Ticker {
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            loop {
                shown.set_position(counter.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ticker { task, bar }
    }

    fn finish(self, counter: &AtomicU64) {
        self.task.abort();
        self.bar.set_position(counter.load(Ordering::Relaxed));
        self.bar.finish_and_clear();
    }
}

/// Samples the server's resident memory once a second while a run lasts.
struct MemorySampler {
    task: Option<tokio::task::JoinHandle<Vec<f64>>>,
    stop: Arc<AtomicBool>,
}

impl MemorySampler {
    fn start(pid: Option<u32>) -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let task = pid.map(|pid| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let pid = pid.to_string();
                let mut samples = Vec::new();
                // Bounded: one sample a second for at most a day.
                for _ in 0..86_400 {
                    if let Some(kb) = stats::status_kb(&pid, "VmRSS") {
                        samples.push((kb as f64 / 1024.0 * 10.0).round() / 10.0);
                    }
                    for _ in 0..10 {
                        if stop.load(Ordering::Relaxed) {
                            return samples;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                samples
            })
        });
        MemorySampler { task, stop }
    }

    async fn finish(self) -> Option<Vec<f64>> {
        self.stop.store(true, Ordering::Relaxed);
        self.task?.await.ok()
    }
}

/// The stream under load: created (or reused), its shards, deleted at the end.
struct Setup {
    client: Client,
    stream: String,
    shard_ids: Vec<String>,
    stream_arn: String,
    /// Set with `--producer-client http`.
    http: Option<Arc<raw::Endpoint>>,
}

fn error_code<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> Option<&str>
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    match error {
        aws_sdk_kinesis::error::SdkError::ServiceError(context) => context.err().code(),
        _ => None,
    }
}

async fn setup(client: &Client, common: &Common, scenario: &str) -> anyhow::Result<Setup> {
    let stream = common.stream.clone().unwrap_or_else(|| {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        format!("bench-{scenario}-{}-{millis}", std::process::id())
    });
    let created = client
        .create_stream()
        .stream_name(&stream)
        .shard_count(common.shards)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error) if error_code(&error) == Some("ResourceInUseException") => {}
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("CreateStream {stream}")));
        }
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let stream_arn = loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(&stream)
            .send()
            .await
            .with_context(|| format!("DescribeStreamSummary {stream}"))?;
        let summary = summary
            .stream_description_summary()
            .context("no stream summary")?;
        if summary.stream_status() == &StreamStatus::Active {
            break summary.stream_arn().to_owned();
        }
        if Instant::now() >= deadline {
            bail!("{stream} is not ACTIVE after {SETUP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut shard_ids = Vec::new();
    let mut next_token: Option<String> = None;
    // Bounded: at most 1,000 pages.
    for _ in 0..1000 {
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(&stream),
        };
        let page = request.send().await.context("ListShards")?;
        shard_ids.extend(
            page.shards()
                .iter()
                .filter(|s| {
                    s.sequence_number_range()
                        .is_some_and(|r| r.ending_sequence_number().is_none())
                })
                .map(|s| s.shard_id().to_owned()),
        );
        match page.next_token() {
            Some(token) if !page.shards().is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    shard_ids.sort();
    anyhow::ensure!(!shard_ids.is_empty(), "{stream} has no open shards");
    Ok(Setup {
        client: client.clone(),
        stream,
        shard_ids,
        stream_arn,
        http: None,
    })
}

impl Setup {
    fn target(&self, payloads: Payloads, key_spread: u64) -> Arc<Target> {
        let shard_index: HashMap<String, u32> = self
            .shard_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        Arc::new(Target {
            client: self.client.clone(),
            stream: self.stream.clone(),
            shard_index,
            payloads,
            epoch: Instant::now(),
            key_spread,
            http: self.http.clone(),
        })
    }

    async fn teardown(&self, keep: bool) {
        if !keep {
            let _ = self
                .client
                .delete_stream()
                .stream_name(&self.stream)
                .enforce_consumer_deletion(true)
                .send()
                .await;
        }
    }
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

fn phase_json(records: u64, bytes: u64, requests: u64, elapsed: Duration) -> Value {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    json!({
        "records": records,
        "bytes": bytes,
        "requests": requests,
        "seconds": round(seconds, 3),
        "records_per_s": round(records as f64 / seconds, 1),
        "mb_per_s": round(bytes as f64 / MB / seconds, 2),
        "requests_per_s": round(requests as f64 / seconds, 1),
    })
}

/// Runs the put phase of `put`, `single` and `get`.
async fn put_phase(
    setup: &Setup,
    common: &Common,
    load: &LoadArgs,
    batch: usize,
    verify: bool,
) -> anyhow::Result<(Produced, Value)> {
    anyhow::ensure!(load.connections > 0, "--connections must be at least 1");
    let payloads = Payloads::new(load.size)?;
    let target = setup.target(payloads, load.key_spread);
    let duration = seconds(load.duration, "--duration")?;
    let budget = Arc::new(Budget::new(load.max_records, Instant::now() + duration));
    let counter = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(
        progress_bar(
            Some(load.max_records),
            if batch == 0 {
                "PutRecord"
            } else {
                "PutRecords"
            },
        ),
        counter.clone(),
    );
    let probe = stats::Probe::start(common.server_pid);
    let started = Instant::now();
    let workers: Vec<_> = (0..load.connections)
        .map(|worker| {
            tokio::spawn(load::put_worker(
                target.clone(),
                worker,
                batch,
                budget.clone(),
                verify,
                counter.clone(),
            ))
        })
        .collect();
    let mut produced: Option<Produced> = None;
    for worker in workers {
        let out = worker.await.context("a producer panicked")?;
        match &mut produced {
            Some(total) => total.merge(out),
            None => produced = Some(out),
        }
    }
    let elapsed = started.elapsed();
    ticker.finish(&counter);
    let produced = produced.context("no producers")?;
    let value = put_json(&produced, elapsed, &probe);
    Ok((produced, value))
}

/// The report of one put phase: throughput, failures, request latency, CPU and memory.
fn put_json(produced: &Produced, elapsed: Duration, probe: &stats::Probe) -> Value {
    let mut value = phase_json(produced.records, produced.bytes, produced.requests, elapsed);
    value["failed_records"] = json!(produced.failed);
    value["errors"] = json!(produced.errors);
    value["latency_ms"] = stats::latency_json(&produced.latency);
    value["resources"] = probe.finish(produced.records);
    value
}

async fn read_phase(
    setup: &Setup,
    common: &Common,
    size: usize,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<(Vec<ShardCheck>, Value)> {
    let target = setup.target(Payloads::new(size)?, 0);
    let counter = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(progress_bar(Some(expected), "GetRecords"), counter.clone());
    let probe = stats::Probe::start(common.server_pid);
    let started = Instant::now();
    let deadline = started + timeout;
    let readers: Vec<_> = setup
        .shard_ids
        .iter()
        .enumerate()
        .map(|(index, shard_id)| {
            tokio::spawn(consume::read_back(
                target.clone(),
                shard_id.clone(),
                index as u32,
                deadline,
                counter.clone(),
            ))
        })
        .collect();
    let mut checks = Vec::new();
    let mut latency = stats::histogram();
    let (mut requests, mut errors) = (0, 0);
    let mut last_error = None;
    for reader in readers {
        let out = reader.await.context("a reader panicked")?;
        requests += out.requests;
        errors += out.errors;
        last_error = out.last_error.or(last_error);
        let _ = latency.add(&out.latency);
        checks.push(out.check);
    }
    let elapsed = started.elapsed();
    ticker.finish(&counter);
    let (records, bytes) = checks
        .iter()
        .fold((0, 0), |(r, b), c| (r + c.records, b + c.bytes));
    let mut value = phase_json(records, bytes, requests, elapsed);
    value["errors"] = json!(errors);
    value["last_error"] = json!(last_error);
    value["latency_ms"] = stats::latency_json(&latency);
    value["resources"] = probe.finish(records);
    Ok((checks, value))
}

async fn e2e_phase(setup: &Setup, common: &Common, args: &E2eArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(args.producers > 0, "--producers must be at least 1");
    let batch = args.batch.max(1);
    let period = seconds(
        batch as f64 * args.producers as f64 / args.rate,
        "producer period",
    )?;
    let duration = seconds(args.duration, "--duration")?;
    let drain = seconds(args.drain, "--drain")?;
    let idle = seconds(args.poll_idle_ms / 1000.0, "--poll-idle-ms")?;
    let target = setup.target(Payloads::new(args.size)?, args.key_spread);
    let consumer_arn = match args.consumer {
        ConsumerKind::Poll => None,
        ConsumerKind::Efo => Some(register_consumer(setup).await?),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration + drain + Duration::from_secs(10);
    let consumers: Vec<_> = setup
        .shard_ids
        .iter()
        .enumerate()
        .map(|(index, shard_id)| {
            let (target, shard_id, stop, received) = (
                target.clone(),
                shard_id.clone(),
                stop.clone(),
                received.clone(),
            );
            match &consumer_arn {
                None => tokio::spawn(consume::poll(
                    target,
                    shard_id,
                    index as u32,
                    idle,
                    stop,
                    deadline,
                    received,
                )),
                Some(arn) => tokio::spawn(consume::subscribe(
                    target,
                    arn.clone(),
                    shard_id,
                    index as u32,
                    stop,
                    deadline,
                    received,
                )),
            }
        })
        .collect();
    let sent = Arc::new(AtomicU64::new(0));
    let expected = (args.rate * args.duration) as u64;
    let ticker = Ticker::start(progress_bar(Some(expected), "e2e"), sent.clone());
    let probe = stats::Probe::start(common.server_pid);
    let started = Instant::now();
    let until = started + duration;
    let producers: Vec<_> = (0..args.producers)
        .map(|worker| {
            tokio::spawn(load::paced_producer(
                target.clone(),
                worker,
                batch,
                period,
                until,
                sent.clone(),
            ))
        })
        .collect();
    let mut produced: Option<Produced> = None;
    for producer in producers {
        let out = producer.await.context("a producer panicked")?;
        match &mut produced {
            Some(total) => total.merge(out),
            None => produced = Some(out),
        }
    }
    let produced = produced.context("no producers")?;
    let put_elapsed = started.elapsed();
    ticker.finish(&sent);
    // Wait (bounded) for the consumers to see everything acknowledged.
    let drain_until = Instant::now() + drain;
    while received.load(Ordering::Relaxed) < produced.records && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut checks = Vec::new();
    let mut latency = stats::histogram();
    let (mut consumer_errors, mut last_error) = (0, None);
    for consumer in consumers {
        let out = consumer.await.context("a consumer panicked")?;
        let _ = latency.add(&out.latency);
        consumer_errors += out.errors;
        last_error = out.last_error.or(last_error);
        checks.push(out.check);
    }
    let resources = probe.finish(produced.records);
    if let Some(arn) = &consumer_arn {
        let _ = setup
            .client
            .deregister_stream_consumer()
            .consumer_arn(arn)
            .send()
            .await;
    }
    let verdict = verify::verdict(&produced.acks, &checks);
    let mut verify = verdict.to_json();
    verify["summary"] = json!(verdict.summary());
    let mut put = phase_json(
        produced.records,
        produced.bytes,
        produced.requests,
        put_elapsed,
    );
    put["failed_records"] = json!(produced.failed);
    put["errors"] = json!(produced.errors);
    put["latency_ms"] = stats::latency_json(&produced.latency);
    Ok(json!({
        "put": put,
        "e2e": {
            "consumer": format!("{:?}", args.consumer).to_lowercase(),
            "target_rate": args.rate,
            "achieved_rate": round(produced.records as f64 / put_elapsed.as_secs_f64().max(1e-9), 1),
            "latency_ms": stats::latency_json(&latency),
            "lost": verdict.missing,
            "consumer_errors": consumer_errors,
            "last_consumer_error": last_error,
        },
        "resources": resources,
        "verify": verify,
    }))
}

async fn register_consumer(setup: &Setup) -> anyhow::Result<String> {
    let name = format!("bench-{}", std::process::id());
    let registered = setup
        .client
        .register_stream_consumer()
        .stream_arn(&setup.stream_arn)
        .consumer_name(&name)
        .send()
        .await
        .context("RegisterStreamConsumer")?;
    let arn = registered
        .consumer()
        .map(|c| c.consumer_arn().to_owned())
        .context("RegisterStreamConsumer returned no consumer")?;
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let described = setup
            .client
            .describe_stream_consumer()
            .consumer_arn(&arn)
            .send()
            .await
            .context("DescribeStreamConsumer")?;
        if described
            .consumer_description()
            .is_some_and(|d| d.consumer_status() == &ConsumerStatus::Active)
        {
            return Ok(arn);
        }
        if Instant::now() >= deadline {
            bail!("consumer {name} is not ACTIVE after {SETUP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn scenario_name(scenario: &Scenario) -> &'static str {
    match scenario {
        Scenario::Put(_) => "put",
        Scenario::Single(_) => "single",
        Scenario::Get(_) => "get",
        Scenario::E2e(_) => "e2e",
        Scenario::Firehose(_) => "firehose",
        Scenario::Scale(_) => "scale",
    }
}

/// The hard bound on a whole run.
fn run_bound(scenario: &Scenario) -> anyhow::Result<Duration> {
    let secs = match scenario {
        Scenario::Put(a) => a.load.duration,
        Scenario::Single(a) => a.load.duration,
        Scenario::Get(a) => a.put.load.duration + a.read_timeout,
        Scenario::E2e(a) => a.duration + a.drain + 10.0,
        Scenario::Firehose(a) => a.duration + a.drain_timeout,
        Scenario::Scale(a) => a.run_seconds(),
    };
    Ok(seconds(secs, "duration")? + RUN_SLACK)
}

/// Runs one scenario and prints its report.
///
/// # Errors
/// Setup failures, and a failed read-back verification (after the report is written).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    check_loopback(&args.connection.endpoint)?;
    let name = scenario_name(&args.scenario);
    let common = args.common.clone();
    let base = args.connection.client();
    // No SDK retries: every failure is counted, and no retry can duplicate a record.
    let client = Client::from_conf(
        base.config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let bound = run_bound(&args.scenario)?;
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut report = json!({
        "tool": "millstream bench",
        "version": env!("CARGO_PKG_VERSION"),
        "git_sha": stats::git_sha(),
        "started_at_unix": started_at,
        "hardware": stats::hardware(),
        "endpoint": args.connection.endpoint,
        "label": common.label,
        "scenario": name,
        "config": config_json(&args.scenario),
    });
    // Firehose has its own setup (a delivery stream, not a Kinesis stream) and report.
    if let Scenario::Firehose(a) = &args.scenario {
        return firehose::run(&args.connection, &common, a, report, bound).await;
    }
    // Scale creates and deletes many streams of its own, phase by phase.
    if let Scenario::Scale(a) = &args.scenario {
        return scale::run(&client, &args.connection, &common, a, report, bound).await;
    }
    let http = match common.producer_client {
        ProducerClient::Sdk => None,
        ProducerClient::Http => Some(Arc::new(raw::Endpoint::new(
            &args.connection.endpoint,
            &args.connection.region,
            Connection::credentials().into(),
        )?)),
    };
    let mut setup = setup(&client, &common, name).await?;
    setup.http = http;
    report["stream"] = json!(setup.stream);
    report["producer_client"] = json!(format!("{:?}", common.producer_client).to_lowercase());
    report["shards"] = json!(setup.shard_ids.len());
    let memory = MemorySampler::start(common.server_pid);
    let outcome = tokio::time::timeout(bound, scenario(&setup, &common, &args.scenario)).await;
    let rss = memory.finish().await;
    setup.teardown(common.keep).await;
    let body = match outcome {
        Ok(body) => body?,
        Err(_) => bail!("the run did not finish within its bound of {bound:?}"),
    };
    merge(&mut report, body);
    if let Some(pid) = common.server_pid {
        let pid = pid.to_string();
        report["server"] = json!({
            "pid": common.server_pid,
            "vm_hwm_mb": stats::status_kb(&pid, "VmHWM").map(|kb| round(kb as f64 / 1024.0, 1)),
            "rss_mb_per_second": rss,
        });
    }
    let ok = report["verify"]["ok"].as_bool().unwrap_or(true);
    report["ok"] = json!(ok);
    if let Some(path) = &common.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match args.connection.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => println!("{}", human(&report)),
    }
    if !ok {
        bail!(
            "read-back verification failed: {}",
            report["verify"]["summary"]
                .as_str()
                .unwrap_or("see the report")
        );
    }
    Ok(())
}

fn merge(report: &mut Value, body: Value) {
    if let (Some(report), Value::Object(body)) = (report.as_object_mut(), body) {
        report.extend(body);
    }
}

async fn scenario(setup: &Setup, common: &Common, scenario: &Scenario) -> anyhow::Result<Value> {
    match scenario {
        Scenario::Put(a) => {
            let (_, put) = put_phase(setup, common, &a.load, a.batch.max(1), false).await?;
            Ok(json!({ "put": put }))
        }
        Scenario::Single(a) => {
            let (_, put) = put_phase(setup, common, &a.load, 0, false).await?;
            Ok(json!({ "put": put }))
        }
        Scenario::Get(a) => {
            let p = &a.put;
            let (produced, put) = put_phase(setup, common, &p.load, p.batch.max(1), true).await?;
            let timeout = seconds(a.read_timeout, "--read-timeout")?;
            let (checks, read) =
                read_phase(setup, common, p.load.size, produced.records, timeout).await?;
            let verdict: Verdict = verify::verdict(&produced.acks, &checks);
            let mut verify = verdict.to_json();
            verify["summary"] = json!(verdict.summary());
            Ok(json!({ "put": put, "read": read, "verify": verify }))
        }
        Scenario::E2e(a) => e2e_phase(setup, common, a).await,
        Scenario::Firehose(_) => bail!("the firehose scenario runs through firehose::run"),
        Scenario::Scale(_) => bail!("the scale scenario runs through scale::run"),
    }
}

fn config_json(scenario: &Scenario) -> Value {
    let load = |l: &LoadArgs| {
        json!({
            "connections": l.connections, "record_size": l.size, "key_spread": l.key_spread,
            "duration_s": l.duration, "max_records": l.max_records,
        })
    };
    match scenario {
        Scenario::Put(a) => {
            let mut v = load(&a.load);
            v["batch"] = json!(a.batch);
            v
        }
        Scenario::Single(a) => load(&a.load),
        Scenario::Get(a) => {
            let mut v = load(&a.put.load);
            v["batch"] = json!(a.put.batch);
            v["read_timeout_s"] = json!(a.read_timeout);
            v
        }
        Scenario::E2e(a) => json!({
            "rate": a.rate, "batch": a.batch, "record_size": a.size, "key_spread": a.key_spread,
            "duration_s": a.duration, "producers": a.producers,
            "consumer": format!("{:?}", a.consumer).to_lowercase(),
            "poll_idle_ms": a.poll_idle_ms, "drain_s": a.drain,
        }),
        Scenario::Firehose(a) => a.config_json(),
        Scenario::Scale(a) => {
            let mut v = load(&a.put.load);
            v["batch"] = json!(a.put.batch);
            merge(&mut v, a.config_json());
            v
        }
    }
}

/// The report for people.
fn human(report: &Value) -> String {
    let mut lines = vec![format!(
        "millstream bench {} against {} (stream {}, {} shards; git {}, {} x {})",
        report["scenario"].as_str().unwrap_or("?"),
        report["endpoint"].as_str().unwrap_or("?"),
        report["stream"].as_str().unwrap_or("?"),
        report["shards"],
        report["git_sha"].as_str().unwrap_or("unknown"),
        report["hardware"]["nproc"],
        report["hardware"]["model_name"]
            .as_str()
            .unwrap_or("unknown CPU"),
    )];
    let phase = |name: &str, v: &Value, lines: &mut Vec<String>| {
        if v.is_null() {
            return;
        }
        lines.push(format!(
            "{name:<5} {} records in {} s: {} records/s, {} MB/s, {} requests/s",
            v["records"], v["seconds"], v["records_per_s"], v["mb_per_s"], v["requests_per_s"]
        ));
        lines.push(format!(
            "      request latency: {}",
            stats::latency_text(&v["latency_ms"])
        ));
        let failed = v["failed_records"].as_u64().unwrap_or(0);
        let errors = &v["errors"];
        let has_errors = match errors {
            Value::Object(map) => !map.is_empty(),
            Value::Number(n) => n.as_u64() != Some(0),
            _ => false,
        };
        if failed > 0 || has_errors {
            lines.push(format!("      failed records {failed}, errors {errors}"));
        }
        resources(&v["resources"], lines);
    };
    phase("put", &report["put"], &mut lines);
    phase("read", &report["read"], &mut lines);
    let e2e = &report["e2e"];
    if !e2e.is_null() {
        lines.push(format!(
            "e2e   {} consumer, {} records/s achieved of {}: put-to-consume {}",
            e2e["consumer"].as_str().unwrap_or("?"),
            e2e["achieved_rate"],
            e2e["target_rate"],
            stats::latency_text(&e2e["latency_ms"])
        ));
        if e2e["consumer_errors"].as_u64().unwrap_or(0) > 0 {
            lines.push(format!(
                "      consumer errors {}, last: {}",
                e2e["consumer_errors"], e2e["last_consumer_error"]
            ));
        }
        resources(&report["resources"], &mut lines);
    }
    if let Some(summary) = report["verify"]["summary"].as_str() {
        lines.push(format!("verify {summary}"));
        if let Some(samples) = report["verify"]["samples"].as_array() {
            lines.extend(
                samples
                    .iter()
                    .map(|s| format!("       {}", s.as_str().unwrap_or(""))),
            );
        }
    }
    if !report["server"].is_null() {
        lines.push(format!(
            "server peak memory (VmHWM) {} MB",
            report["server"]["vm_hwm_mb"]
        ));
    }
    lines.join("\n")
}

fn resources(v: &Value, lines: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    let mut parts = Vec::new();
    if !v["server_cpu_s"].is_null() {
        parts.push(format!(
            "server CPU {} s ({} % of a core, {} us/record), RSS {} MB",
            v["server_cpu_s"],
            v["server_cpu_pct"],
            v["server_cpu_us_per_record"],
            v["server_vm_rss_mb"]
        ));
    }
    parts.push(format!(
        "client CPU {} % of a core, other processes {} %",
        v["client_cpu_pct"], v["other_cpu_pct"]
    ));
    lines.push(format!("      {}", parts.join("; ")));
}
