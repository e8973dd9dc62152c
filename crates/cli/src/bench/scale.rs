//! `millstream bench scale`: what holding many streams and shards costs a server, and
//! whether one very wide stream takes writes on every shard.
//!
//! The target it answers: 1,000 streams of 4 shards held open, and one stream of 1,000
//! shards taking writes, with no cost that grows with idle shards. Phases, in this order,
//! each under its own key of the report:
//!
//! - `baseline`: the `put` scenario's PutRecords load on one stream of `--shards` shards.
//! - `hold`: `--streams` streams of `--stream-shards` shards, created `--create-concurrency`
//!   at a time, until all are ACTIVE; the server's RSS, threads and open descriptors before
//!   and after; then `--idle-seconds` without requests and the server's CPU over that window,
//!   which idle shards should keep near zero.
//! - `loaded`: the baseline load again, on the same stream, with the held streams present,
//!   and its ratios to the baseline.
//! - `wide`: the same load on one stream of `--wide-shards` shards, partition keys taken in
//!   turn from at least 16 per shard. Every shard must acknowledge a record (the ShardId of
//!   the PutRecords result entries) or the run fails, after the report is written.
//! - `cleanup`: every stream the run asked for is deleted (unless `--keep`), and waited for
//!   until ListStreams no longer shows it.
//!
//! Only Kinesis operations are used, so any endpoint works; the server's RSS, threads,
//! descriptors and CPU come from /proc given `--server-pid`, and are null without it.
//! Control-plane calls back off and retry on LimitExceededException (AWS rate-limits
//! CreateStream and DeleteStream) and on transport failures, each bounded by
//! `--control-timeout`. Stream names start with `bench-scale-<pid>-<ms>-`, so runs never
//! collide, and a name is recorded for cleanup before its CreateStream is sent, so a stream
//! whose creation answer was lost is deleted too.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::load::{self, Budget, Produced, Target};
use super::payload::{Payloads, SplitMix};
use super::{
    Common, MemorySampler, PutArgs, Setup, Ticker, counting_bar, error_code, progress_bar,
    put_json, put_phase, round, seconds, stats,
};
use crate::client::{Connection, Output};

/// Shards of one stream on AWS (the UpdateShardCount ceiling).
const SHARDS_PER_STREAM_MAX: i64 = 10_000;
/// The wide phase's partition keys per shard: with 16 keys per shard, MD5 leaves no shard of
/// an even split without a key (checked for 1 to 4,000 shards: the emptiest gets 4).
const WIDE_KEYS_PER_SHARD: u64 = 16;
/// First pause of a control-plane retry; it doubles up to `BACKOFF_MAX`.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Between two looks at stream statuses while waiting for ACTIVE or gone.
const STATUS_POLL: Duration = Duration::from_millis(200);
/// ListStreams page size asked for (AWS allows 10,000; Millstream answers at most 100).
const LIST_PAGE: i32 = 1000;
/// ListStreams pages read in one look: 10 million streams at Millstream's 100 a page.
const LIST_PAGES_MAX: usize = 100_000;

#[derive(Args, Clone, Debug)]
pub struct ScaleArgs {
    /// The load of the baseline, loaded and wide phases, as in `put`.
    #[command(flatten)]
    pub(super) put: PutArgs,
    /// Streams held open during the hold and loaded phases.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    streams: u32,
    /// Shards of each held stream.
    #[arg(long, default_value_t = 4,
          value_parser = clap::value_parser!(i32).range(1..=SHARDS_PER_STREAM_MAX))]
    stream_shards: i32,
    /// Shards of the wide stream.
    #[arg(long, default_value_t = 1000,
          value_parser = clap::value_parser!(i32).range(1..=SHARDS_PER_STREAM_MAX))]
    wide_shards: i32,
    /// CreateStream (and DeleteStream) requests in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    create_concurrency: u32,
    /// Seconds without requests, every stream held, over which the server's CPU is measured.
    #[arg(long, default_value_t = 10.0)]
    idle_seconds: f64,
    /// Upper bound in seconds for each creation (until ACTIVE) and for the cleanup.
    #[arg(long, default_value_t = 600.0)]
    control_timeout: f64,
}

impl ScaleArgs {
    /// The bound on the measuring phases: three loads, the idle window and three creations
    /// (baseline, held and wide streams). The cleanup has its own `--control-timeout` after it.
    pub fn run_seconds(&self) -> f64 {
        3.0 * self.put.load.duration + self.idle_seconds + 3.0 * self.control_timeout
    }

    pub fn config_json(&self) -> Value {
        json!({
            "streams": self.streams, "stream_shards": self.stream_shards,
            "wide_shards": self.wide_shards, "wide_key_spread": self.wide_key_spread(),
            "create_concurrency": self.create_concurrency, "idle_seconds": self.idle_seconds,
            "control_timeout_s": self.control_timeout,
        })
    }

    /// `-k`, raised to `WIDE_KEYS_PER_SHARD` keys per wide shard (0, a random key per record,
    /// is raised too: cycling through a known key set makes coverage certain, not likely).
    fn wide_key_spread(&self) -> u64 {
        let floor = WIDE_KEYS_PER_SHARD * self.wide_shards.unsigned_abs() as u64;
        self.put.load.key_spread.max(floor)
    }

    fn concurrency(&self) -> usize {
        self.create_concurrency as usize
    }
}

/// Every stream name this run sent a CreateStream for: what the cleanup deletes.
#[derive(Default)]
struct Created(Mutex<Vec<String>>);

impl Created {
    fn add(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_owned());
    }

    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Runs `millstream bench scale` and prints its report; `report` holds the common header.
///
/// # Errors
/// Bad arguments; after the report is written: a phase that failed or ran past `bound`, a
/// held stream that never became ACTIVE, a wide shard that acknowledged nothing, or a stream
/// the cleanup could not delete.
pub async fn run(
    client: &Client,
    connection: &Connection,
    common: &Common,
    args: &ScaleArgs,
    mut report: Value,
    bound: Duration,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        common.stream.is_none(),
        "--stream does not apply to scale: it creates and names its own streams"
    );
    anyhow::ensure!(
        args.put.load.connections > 0,
        "--connections must be at least 1"
    );
    let spread = args.wide_key_spread();
    anyhow::ensure!(
        args.put.load.max_records >= spread,
        "--max-records {} is below the wide phase's {spread} partition keys: not every wide \
         shard could be written",
        args.put.load.max_records
    );
    // Checked before any stream exists; the phases convert them again where they use them.
    let control = seconds(args.control_timeout, "--control-timeout")?;
    seconds(args.idle_seconds, "--idle-seconds")?;
    seconds(args.put.load.duration, "--duration")?;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let prefix = format!("bench-scale-{}-{millis}-", std::process::id());
    report["prefix"] = json!(prefix);
    let created = Arc::new(Created::default());
    let memory = MemorySampler::start(common.server_pid);
    let mut phases = json!({});
    let outcome = tokio::time::timeout(
        bound,
        measure(client, common, args, &prefix, &created, &mut phases),
    )
    .await;
    let rss = memory.finish().await;
    let names = created.names();
    phases["cleanup"] = if common.keep {
        json!({ "kept": true, "streams": names.len() })
    } else {
        cleanup(client, &prefix, names, args.concurrency(), control).await
    };
    super::merge(&mut report, phases);
    let mut problems = Vec::new();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => problems.push(format!("{error:#}")),
        Err(_) => problems.push(format!(
            "the run did not finish within its bound of {bound:?}"
        )),
    }
    let cleanup = &report["cleanup"];
    if cleanup["failed"].as_u64().unwrap_or(0) > 0 {
        problems.push(format!(
            "{} streams could not be deleted ({}); their names start with {prefix}",
            cleanup["failed"], cleanup["errors"]
        ));
    }
    if let Some(pid) = common.server_pid {
        let text = pid.to_string();
        report["server"] = json!({
            "pid": pid,
            "vm_hwm_mb": stats::status_kb(&text, "VmHWM").map(|kb| round(kb as f64 / 1024.0, 1)),
            "rss_mb_per_second": rss,
        });
    }
    report["ok"] = json!(problems.is_empty());
    report["problems"] = json!(problems);
    if let Some(path) = &common.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match connection.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => println!("{}", human(&report)),
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// The measuring phases; each one's report goes into `phases` as soon as it is known, so a
/// failure or the run's bound leaves the earlier ones in the report.
async fn measure(
    client: &Client,
    common: &Common,
    args: &ScaleArgs,
    prefix: &str,
    created: &Arc<Created>,
    phases: &mut Value,
) -> anyhow::Result<()> {
    let control = seconds(args.control_timeout, "--control-timeout")?;
    let load = &args.put.load;
    let batch = args.put.batch.max(1);
    let base = open_stream(
        client,
        common,
        created,
        &format!("{prefix}base"),
        common.shards,
        control,
    )
    .await?;
    let (_, mut baseline) = put_phase(&base, common, load, batch, false).await?;
    baseline["stream"] = json!(base.stream);
    baseline["shards"] = json!(base.shard_ids.len());
    phases["baseline"] = baseline;

    let hold = hold(client, common, args, prefix, created, control).await?;
    let all_active = hold["streams_active"] == hold["streams_requested"];
    phases["hold"] = hold;
    if !all_active {
        let hold = &phases["hold"];
        bail!(
            "{} of {} held streams became ACTIVE within --control-timeout ({} created; \
             CreateStream errors {})",
            hold["streams_active"],
            hold["streams_requested"],
            hold["streams_created"],
            hold["create_errors"]
        );
    }

    let (_, mut loaded) = put_phase(&base, common, load, batch, false).await?;
    let baseline = &phases["baseline"];
    loaded["stream"] = json!(base.stream);
    loaded["shards"] = json!(base.shard_ids.len());
    loaded["vs_baseline"] = json!({
        "records_per_s": ratio(&loaded["records_per_s"], &baseline["records_per_s"]),
        "server_cpu_us_per_record": ratio(
            &loaded["resources"]["server_cpu_us_per_record"],
            &baseline["resources"]["server_cpu_us_per_record"],
        ),
    });
    phases["loaded"] = loaded;

    let wide = open_stream(
        client,
        common,
        created,
        &format!("{prefix}wide"),
        args.wide_shards,
        control,
    )
    .await?;
    let wide = wide_phase(&wide, common, args).await?;
    let covered = wide["all_shards_written"] == true;
    let (written, shards) = (wide["shards_acknowledged"].clone(), wide["shards"].clone());
    phases["wide"] = wide;
    if !covered {
        bail!(
            "{written} of {} wide shards acknowledged a record (the stream lists {shards} open)",
            args.wide_shards
        );
    }
    Ok(())
}

/// Creates one stream, waits until it is ACTIVE, and lists its shards.
async fn open_stream(
    client: &Client,
    common: &Common,
    created: &Arc<Created>,
    name: &str,
    shards: i32,
    control: Duration,
) -> anyhow::Result<Setup> {
    let deadline = Instant::now() + control;
    let outcome = create_one(
        client.clone(),
        created.clone(),
        name.to_owned(),
        shards,
        deadline,
    )
    .await;
    if let Some(error) = outcome.error {
        bail!("CreateStream {name}: {error}");
    }
    // Bounded by the deadline; every pass but the last sleeps STATUS_POLL.
    while describe_status(client, name).await != Some(StreamStatus::Active) {
        if Instant::now() >= deadline {
            bail!("{name} is not ACTIVE after --control-timeout ({control:?})");
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
    // The stream exists and is ACTIVE, so `setup` only lists its shards.
    let own = Common {
        stream: Some(name.to_owned()),
        shards,
        ..common.clone()
    };
    super::setup(client, &own, "scale").await
}

/// The hold phase: create the held streams, wait until ACTIVE, compare the server before and
/// after, then measure it idle.
async fn hold(
    client: &Client,
    common: &Common,
    args: &ScaleArgs,
    prefix: &str,
    created: &Arc<Created>,
    control: Duration,
) -> anyhow::Result<Value> {
    let hold_prefix = format!("{prefix}hold-");
    let names: Vec<String> = (0..args.streams)
        .map(|i| format!("{hold_prefix}{i:06}"))
        .collect();
    let before = ServerState::read(common.server_pid);
    let started = Instant::now();
    let deadline = started + control;
    let done = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(
        counting_bar(Some(names.len() as u64), "CreateStream", "streams"),
        done.clone(),
    );
    let shards = args.stream_shards;
    let outcomes = bounded(names.clone(), args.concurrency(), {
        let (client, created, done) = (client.clone(), created.clone(), done.clone());
        move |name| {
            let (client, created, done) = (client.clone(), created.clone(), done.clone());
            async move {
                let outcome = create_one(client, created, name, shards, deadline).await;
                done.fetch_add(1, Ordering::Relaxed);
                outcome
            }
        }
    })
    .await?;
    ticker.finish(&done);
    let requests_elapsed = started.elapsed();
    let tally = Tally::of(&outcomes);
    let accepted: Vec<String> = outcomes
        .into_iter()
        .filter(|o| o.error.is_none())
        .map(|o| o.name)
        .collect();
    let active = wait_active(client, &hold_prefix, &accepted, deadline).await?;
    let active_elapsed = started.elapsed();
    let after = ServerState::read(common.server_pid);
    let shards_held = active as u64 * u64::from(args.stream_shards.unsigned_abs());
    let idle = seconds(args.idle_seconds, "--idle-seconds")?;
    let probe = stats::Probe::start(common.server_pid);
    tokio::time::sleep(idle).await;
    let mut idle_report = probe.finish(0);
    if let Some(fields) = idle_report.as_object_mut() {
        // Nothing is written while idle: a cost per record means nothing here.
        fields.remove("server_cpu_us_per_record");
    }
    idle_report["seconds"] = json!(args.idle_seconds);
    Ok(json!({
        "streams_requested": args.streams,
        "streams_created": accepted.len(),
        "streams_active": active,
        "shards_per_stream": args.stream_shards,
        // Of the ACTIVE streams: what the server was measured holding.
        "shards": shards_held,
        "create_requests_seconds": round(requests_elapsed.as_secs_f64(), 3),
        "seconds_to_active": round(active_elapsed.as_secs_f64(), 3),
        "create_retries": tally.retries,
        "create_errors": tally.errors,
        "server": {
            "before": before.to_json(),
            "after": after.to_json(),
            "rss_kib_per_shard": before.rss_kib_per_shard(&after, shards_held),
        },
        "idle": idle_report,
    }))
}

/// The wide phase: the baseline's load, with partition keys that reach every shard, and
/// which shards acknowledged records.
async fn wide_phase(setup: &Setup, common: &Common, args: &ScaleArgs) -> anyhow::Result<Value> {
    let load = &args.put.load;
    let spread = args.wide_key_spread();
    let target = setup.target(Payloads::new(load.size)?, spread);
    let duration = seconds(load.duration, "--duration")?;
    let budget = Arc::new(Budget::new(load.max_records, Instant::now() + duration));
    let cursor = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(
        progress_bar(Some(load.max_records), "PutRecords (wide)"),
        counter.clone(),
    );
    let probe = stats::Probe::start(common.server_pid);
    let started = Instant::now();
    let workers: Vec<_> = (0..load.connections)
        .map(|_| {
            tokio::spawn(wide_worker(
                target.clone(),
                args.put.batch.max(1) as u64,
                budget.clone(),
                cursor.clone(),
                counter.clone(),
            ))
        })
        .collect();
    let mut produced = Produced::new();
    let mut acknowledged = HashSet::new();
    for worker in workers {
        let (out, shards) = worker.await.context("a producer panicked")?;
        produced.merge(out);
        acknowledged.extend(shards);
    }
    let elapsed = started.elapsed();
    ticker.finish(&counter);
    let mut value = put_json(&produced, elapsed, &probe);
    let listed: HashSet<&str> = setup.shard_ids.iter().map(String::as_str).collect();
    let written = acknowledged
        .iter()
        .filter(|id| listed.contains(id.as_str()))
        .count();
    let unknown = acknowledged.len() - written;
    value["stream"] = json!(setup.stream);
    value["shards_requested"] = json!(args.wide_shards);
    value["shards"] = json!(listed.len());
    value["key_spread"] = json!(spread);
    value["shards_acknowledged"] = json!(written);
    // Shard ids in acknowledgements that ListShards did not list as open.
    value["unlisted_shard_ids"] = json!(unknown);
    let requested = args.wide_shards.unsigned_abs() as usize;
    value["all_shards_written"] =
        json!(listed.len() == requested && written == requested && unknown == 0);
    Ok(value)
}

/// One wide-phase producer: PutRecords of `batch` records until the budget or the time is
/// up, like `load::put_worker`, except that keys come in turn from a shared cursor (so the
/// first `key_spread` records use every key once) and the acknowledging shards are kept.
async fn wide_worker(
    target: Arc<Target>,
    batch: u64,
    budget: Arc<Budget>,
    cursor: Arc<AtomicU64>,
    progress: Arc<AtomicU64>,
) -> (Produced, HashSet<String>) {
    let mut out = Produced::new();
    let mut shards = HashSet::new();
    let size = target.payloads.size() as u64;
    loop {
        let count = budget.claim(batch);
        if count == 0 {
            break;
        }
        let first = cursor.fetch_add(count, Ordering::Relaxed);
        let sent_us = target.now_us();
        // The record number is also the payload id: unique over all producers.
        let entries: Vec<PutRecordsRequestEntry> = (first..first + count)
            .map(|number| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(target.payloads.build(number, sent_us)))
                    .partition_key(format!("key-{}", number % target.key_spread))
                    .build()
                    .expect("data and partition key are set")
            })
            .collect();
        out.requests += 1;
        let started = Instant::now();
        let result = target
            .client
            .put_records()
            .stream_name(&target.stream)
            .set_records(Some(entries))
            .send()
            .await;
        stats::record(&mut out.latency, started.elapsed());
        let acked = match result {
            Ok(response) => {
                let mut acked = 0;
                for entry in response.records() {
                    match (entry.shard_id(), entry.sequence_number()) {
                        (Some(shard), Some(_)) => {
                            if !shards.contains(shard) {
                                shards.insert(shard.to_owned());
                            }
                            acked += 1;
                        }
                        _ => {
                            out.failed += 1;
                            out.error(entry.error_code().unwrap_or("FailedRecord").to_owned());
                        }
                    }
                }
                acked
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
    (out, shards)
}

/// How one stream's CreateStream or DeleteStream went.
struct ControlOutcome {
    name: String,
    retries: u64,
    /// The last error, when the call never succeeded before its deadline.
    error: Option<String>,
}

/// Totals over many control-plane calls.
struct Tally {
    succeeded: usize,
    retries: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn of(outcomes: &[ControlOutcome]) -> Tally {
        let mut tally = Tally {
            succeeded: 0,
            retries: 0,
            errors: BTreeMap::new(),
        };
        for outcome in outcomes {
            tally.retries += outcome.retries;
            match &outcome.error {
                None => tally.succeeded += 1,
                Some(kind) => *tally.errors.entry(kind.clone()).or_default() += 1,
            }
        }
        tally
    }
}

/// Exponential backoff with jitter, so that throttled callers do not retry in step.
struct Backoff {
    next: Duration,
    rng: SplitMix,
    deadline: Instant,
    retries: u64,
}

impl Backoff {
    fn new(name: &str, deadline: Instant) -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
            rng: SplitMix(super::payload::hash64(name.as_bytes(), 0xBAC0)),
            deadline,
            retries: 0,
        }
    }

    /// Sleeps before the next attempt; false, without sleeping, when that would pass the
    /// deadline.
    async fn wait(&mut self) -> bool {
        let half = self.next / 2;
        let jitter = self.rng.next_u64() % (half.as_micros() as u64 + 1);
        let pause = half + Duration::from_micros(jitter);
        if Instant::now() + pause >= self.deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        self.retries += 1;
        true
    }
}

/// Throttling and lost connections pass; anything else would fail again the same way.
fn retryable(kind: &str) -> bool {
    matches!(kind, "LimitExceededException" | "timeout" | "connection")
}

async fn create_one(
    client: Client,
    created: Arc<Created>,
    name: String,
    shards: i32,
    deadline: Instant,
) -> ControlOutcome {
    created.add(&name);
    let mut backoff = Backoff::new(&name, deadline);
    let error = loop {
        let result = client
            .create_stream()
            .stream_name(&name)
            .shard_count(shards)
            .send()
            .await;
        let kind = match result {
            Ok(_) => break None,
            // The name is this run's own, so the stream exists because an earlier attempt
            // whose answer was lost created it: done, not an error, and no use retrying.
            Err(error) if error_code(&error) == Some("ResourceInUseException") => break None,
            Err(error) => load::error_kind(&error),
        };
        if !retryable(&kind) || !backoff.wait().await {
            break Some(kind);
        }
    };
    ControlOutcome {
        name,
        retries: backoff.retries,
        error,
    }
}

async fn delete_one(client: Client, name: String, deadline: Instant) -> ControlOutcome {
    let mut backoff = Backoff::new(&name, deadline);
    let error = loop {
        let result = client
            .delete_stream()
            .stream_name(&name)
            .enforce_consumer_deletion(true)
            .send()
            .await;
        let kind = match result {
            Ok(_) => break None,
            // Never created (its CreateStream failed), or already deleted by a lost attempt.
            Err(error) if error_code(&error) == Some("ResourceNotFoundException") => break None,
            Err(error) => load::error_kind(&error),
        };
        // ResourceInUse: the stream is not ACTIVE yet (still CREATING), which passes.
        if !(retryable(&kind) || kind == "ResourceInUseException") || !backoff.wait().await {
            break Some(kind);
        }
    };
    ControlOutcome {
        name,
        retries: backoff.retries,
        error,
    }
}

/// Runs `job` on every name, at most `concurrency` at a time.
async fn bounded<F, Fut>(
    names: Vec<String>,
    concurrency: usize,
    job: F,
) -> anyhow::Result<Vec<ControlOutcome>>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ControlOutcome> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut outcomes = Vec::with_capacity(names.len());
    for name in names {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .context("the semaphore is never closed")?;
        let call = job(name);
        tasks.spawn(async move {
            let outcome = call.await;
            drop(permit);
            outcome
        });
        // Collect what finished, so results do not pile up in the set.
        while let Some(done) = tasks.try_join_next() {
            outcomes.push(done.context("a control-plane task panicked")?);
        }
    }
    while let Some(done) = tasks.join_next().await {
        outcomes.push(done.context("a control-plane task panicked")?);
    }
    Ok(outcomes)
}

/// The streams whose names start with `prefix` (not `prefix` itself), with their status when
/// the endpoint's ListStreams reports StreamSummaries (older emulators list names only).
async fn list_prefixed(
    client: &Client,
    prefix: &str,
) -> Result<Vec<(String, Option<StreamStatus>)>, String> {
    let mut found = Vec::new();
    // ExclusiveStartStreamName rather than NextToken: every emulator pages that way, and
    // names sort, so the prefix itself starts the page just before the first match.
    let mut after = prefix.to_owned();
    for _ in 0..LIST_PAGES_MAX {
        let page = client
            .list_streams()
            .exclusive_start_stream_name(&after)
            .limit(LIST_PAGE)
            .send()
            .await
            .map_err(|e| load::error_kind(&e))?;
        let statuses: BTreeMap<&str, &StreamStatus> = page
            .stream_summaries()
            .iter()
            .map(|s| (s.stream_name(), s.stream_status()))
            .collect();
        for name in page.stream_names() {
            if !name.starts_with(prefix) {
                return Ok(found);
            }
            found.push((
                name.clone(),
                statuses.get(name.as_str()).map(|&s| s.clone()),
            ));
        }
        match page.stream_names().last() {
            Some(last) if page.has_more_streams() => after = last.clone(),
            _ => return Ok(found),
        }
    }
    Ok(found)
}

/// Polls until every stream of `names` (all longer than `prefix` and starting with it) is
/// ACTIVE or `deadline` passes; returns how many are ACTIVE.
async fn wait_active(
    client: &Client,
    prefix: &str,
    names: &[String],
    deadline: Instant,
) -> anyhow::Result<usize> {
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut active: HashSet<String> = HashSet::new();
    // Bounded by the deadline; every pass but the last sleeps STATUS_POLL.
    loop {
        match list_prefixed(client, prefix).await {
            Ok(listed) => {
                for (name, status) in listed {
                    if !wanted.contains(name.as_str()) || active.contains(&name) {
                        continue;
                    }
                    let status = match status {
                        Some(status) => Some(status),
                        None => describe_status(client, &name).await,
                    };
                    if status == Some(StreamStatus::Active) {
                        active.insert(name);
                    }
                }
            }
            Err(kind) if retryable(&kind) => {}
            Err(kind) => bail!("ListStreams: {kind}"),
        }
        if active.len() >= wanted.len() || Instant::now() >= deadline {
            return Ok(active.len());
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// DescribeStreamSummary's status, None when it fails (it is asked again on the next pass).
async fn describe_status(client: &Client, name: &str) -> Option<StreamStatus> {
    let summary = client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .ok()?;
    Some(
        summary
            .stream_description_summary()?
            .stream_status()
            .clone(),
    )
}

/// Deletes every stream of `names` (`concurrency` at a time) and waits until ListStreams no
/// longer shows them, within `control`.
async fn cleanup(
    client: &Client,
    prefix: &str,
    names: Vec<String>,
    concurrency: usize,
    control: Duration,
) -> Value {
    let started = Instant::now();
    let deadline = started + control;
    let streams = names.len();
    let done = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(
        counting_bar(Some(streams as u64), "DeleteStream", "streams"),
        done.clone(),
    );
    let outcomes = bounded(names.clone(), concurrency, {
        let (client, done) = (client.clone(), done.clone());
        move |name| {
            let (client, done) = (client.clone(), done.clone());
            async move {
                let outcome = delete_one(client, name, deadline).await;
                done.fetch_add(1, Ordering::Relaxed);
                outcome
            }
        }
    })
    .await;
    ticker.finish(&done);
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(error) => {
            return json!({ "streams": streams, "failed": streams, "errors": format!("{error:#}") });
        }
    };
    let requests_elapsed = started.elapsed();
    let tally = Tally::of(&outcomes);
    // DeleteStream only starts the deletion (DELETING on AWS): wait for the names to go.
    let ours: HashSet<&str> = names.iter().map(String::as_str).collect();
    let remaining = loop {
        let left = match list_prefixed(client, prefix).await {
            Ok(listed) => Some(
                listed
                    .iter()
                    .filter(|(name, _)| ours.contains(name.as_str()))
                    .count(),
            ),
            Err(_) => None,
        };
        if left == Some(0) || Instant::now() >= deadline {
            break left;
        }
        tokio::time::sleep(STATUS_POLL).await;
    };
    json!({
        "streams": streams,
        "deleted": tally.succeeded,
        "failed": streams - tally.succeeded,
        "retries": tally.retries,
        "errors": tally.errors,
        "delete_requests_seconds": round(requests_elapsed.as_secs_f64(), 3),
        "seconds": round(started.elapsed().as_secs_f64(), 3),
        // Streams still listed when the cleanup stopped waiting; null if ListStreams failed.
        "remaining": remaining,
    })
}

/// What the server process holds, from /proc/<pid>; all None without a pid.
struct ServerState {
    rss_kib: Option<u64>,
    threads: Option<u64>,
    open_fds: Option<u64>,
}

impl ServerState {
    fn read(pid: Option<u32>) -> ServerState {
        let Some(pid) = pid.map(|p| p.to_string()) else {
            return ServerState {
                rss_kib: None,
                threads: None,
                open_fds: None,
            };
        };
        let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("Threads:")?.trim().parse().ok())
            });
        let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|entries| entries.count() as u64);
        ServerState {
            rss_kib: stats::status_kb(&pid, "VmRSS"),
            threads,
            open_fds,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "rss_mb": self.rss_kib.map(|kib| round(kib as f64 / 1024.0, 1)),
            "threads": self.threads,
            "open_fds": self.open_fds,
        })
    }

    /// RSS growth from `self` to `after`, per shard held; negative when the allocator gave
    /// memory back in between.
    fn rss_kib_per_shard(&self, after: &ServerState, shards: u64) -> Option<f64> {
        let grown = after.rss_kib? as f64 - self.rss_kib? as f64;
        (shards > 0).then(|| round(grown / shards as f64, 2))
    }
}

fn ratio(numerator: &Value, denominator: &Value) -> Value {
    match (numerator.as_f64(), denominator.as_f64()) {
        (Some(n), Some(d)) if d > 0.0 => json!(round(n / d, 3)),
        _ => Value::Null,
    }
}

/// The report for people.
fn human(report: &Value) -> String {
    let mut lines = vec![format!(
        "millstream bench scale against {} (streams {}*; git {}, {} x {})",
        report["endpoint"].as_str().unwrap_or("?"),
        report["prefix"].as_str().unwrap_or("?"),
        report["git_sha"].as_str().unwrap_or("unknown"),
        report["hardware"]["nproc"],
        report["hardware"]["model_name"]
            .as_str()
            .unwrap_or("unknown CPU"),
    )];
    load_lines("baseline", &report["baseline"], &mut lines);
    let hold = &report["hold"];
    if !hold.is_null() {
        lines.push(format!(
            "hold     {} of {} streams x {} shards ({} shards) ACTIVE {} s after the first \
             CreateStream ({} s of requests, {} retries)",
            hold["streams_active"],
            hold["streams_requested"],
            hold["shards_per_stream"],
            hold["shards"],
            hold["seconds_to_active"],
            hold["create_requests_seconds"],
            hold["create_retries"],
        ));
        if hold["create_errors"]
            .as_object()
            .is_some_and(|e| !e.is_empty())
        {
            lines.push(format!(
                "         CreateStream errors {}",
                hold["create_errors"]
            ));
        }
        let server = &hold["server"];
        let (before, after) = (&server["before"], &server["after"]);
        if !before["rss_mb"].is_null() {
            lines.push(format!(
                "         server RSS {} -> {} MB ({} KiB per shard), threads {} -> {}, \
                 open fds {} -> {}",
                before["rss_mb"],
                after["rss_mb"],
                server["rss_kib_per_shard"],
                before["threads"],
                after["threads"],
                before["open_fds"],
                after["open_fds"],
            ));
        }
        let idle = &hold["idle"];
        lines.push(format!(
            "         idle {} s: server CPU {} % of a core; client {} %, other processes {} %",
            idle["seconds"], idle["server_cpu_pct"], idle["client_cpu_pct"], idle["other_cpu_pct"]
        ));
    }
    let loaded = &report["loaded"];
    load_lines("loaded", loaded, &mut lines);
    if !loaded.is_null() {
        lines.push(format!(
            "         vs baseline: records/s x{}, server CPU per record x{}",
            loaded["vs_baseline"]["records_per_s"],
            loaded["vs_baseline"]["server_cpu_us_per_record"]
        ));
    }
    let wide = &report["wide"];
    load_lines("wide", wide, &mut lines);
    if !wide.is_null() {
        lines.push(format!(
            "         {} of {} shards acknowledged records ({} partition keys){}",
            wide["shards_acknowledged"],
            wide["shards_requested"],
            wide["key_spread"],
            if wide["all_shards_written"] == true {
                ""
            } else {
                ": NOT ALL"
            }
        ));
    }
    let cleanup = &report["cleanup"];
    if cleanup["kept"] == true {
        lines.push(format!(
            "cleanup  kept {} streams (--keep)",
            cleanup["streams"]
        ));
    } else if !cleanup.is_null() {
        lines.push(format!(
            "cleanup  {} of {} streams deleted, gone after {} s ({} still listed, {} retries)",
            cleanup["deleted"],
            cleanup["streams"],
            cleanup["seconds"],
            cleanup["remaining"],
            cleanup["retries"],
        ));
    }
    if !report["server"].is_null() {
        lines.push(format!(
            "server   peak memory (VmHWM) {} MB",
            report["server"]["vm_hwm_mb"]
        ));
    }
    if let Some(problems) = report["problems"].as_array() {
        lines.extend(
            problems
                .iter()
                .map(|p| format!("FAILED   {}", p.as_str().unwrap_or("?"))),
        );
    }
    lines.join("\n")
}

/// One load phase: stream, throughput, latency, failures, CPU.
fn load_lines(name: &str, v: &Value, lines: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    lines.push(format!(
        "{name:<8} {} ({} shards): {} records in {} s, {} records/s, {} MB/s, {} requests/s",
        v["stream"].as_str().unwrap_or("?"),
        v["shards"],
        v["records"],
        v["seconds"],
        v["records_per_s"],
        v["mb_per_s"],
        v["requests_per_s"]
    ));
    lines.push(format!(
        "         request latency: {}",
        stats::latency_text(&v["latency_ms"])
    ));
    let failed = v["failed_records"].as_u64().unwrap_or(0);
    if failed > 0 || v["errors"].as_object().is_some_and(|e| !e.is_empty()) {
        lines.push(format!(
            "         failed records {failed}, errors {}",
            v["errors"]
        ));
    }
    let mut own = Vec::new();
    super::resources(&v["resources"], &mut own);
    lines.extend(own.into_iter().map(|line| format!("   {line}")));
}
