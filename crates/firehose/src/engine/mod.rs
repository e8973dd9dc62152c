//! The delivery engine: one task per delivery stream reads its source, processes records into
//! lane buffers and flushes each lane by the buffering hints.
//!
//! Durability protocol per flush: (1) the batch (lane + position spans) and the object keys
//! it will write are committed to the catalog as an intent; (2) the destination is written;
//! (3) the intent becomes a delivered batch and checkpoints advance. A restart redoes pending
//! intents under the same keys first, then skips every output a delivered batch covers, so an
//! S3 destination never gets the same record in two objects. HTTP and PostgreSQL destinations
//! are at-least-once (as on AWS): a crash between (2) and (3) sends that batch again.

mod deliver;
mod pipeline;
mod tracker;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use millstream_storage::Store;
use millstream_streams::Streams;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::meta::{Batch, Catalog, DeliveryStreamMeta, Intent, Position, Progress, SourceKind};
use crate::{FirehoseConfig, now_ms};
use pipeline::{Lane, Output, Pipeline, SourceRecord};
use tracker::Tracker;

/// Source records read per step; also bounds one Lambda invocation's input.
const READ_RECORDS_MAX: usize = 500;
const READ_BYTES_MAX: usize = 4 << 20;
/// Records held in lane buffers, over all lanes; past it the fullest lane is flushed early.
const BUFFERED_BYTES_MAX: u64 = 256 << 20;
/// Longest wait between checks when nothing happens (wakes also come from new records).
const IDLE_WAIT: Duration = Duration::from_millis(500);

pub struct EngineContext {
    pub name: String,
    pub arn: String,
    pub config: FirehoseConfig,
    pub store: Store,
    pub streams: Streams,
    pub(crate) catalog: Arc<Catalog>,
    pub health: Arc<HealthBoard>,
    pub meta: DeliveryStreamMeta,
}

pub struct EngineHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl EngineHandle {
    pub fn stop(self) {
        self.stop.send_replace(true);
    }

    pub async fn stop_and_wait(self, limit: Duration) {
        self.stop.send_replace(true);
        let _ = tokio::time::timeout(limit, self.task).await;
    }
}

/// The destination's state as DescribeDeliveryStream reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryHealth {
    /// (FailureDescription.Type, Details) of the latest failed attempt, cleared by a success.
    pub failure: Option<(String, String)>,
    pub last_success_ms: Option<u64>,
}

#[derive(Default)]
pub struct HealthBoard {
    streams: Mutex<HashMap<String, DeliveryHealth>>,
}

impl HealthBoard {
    pub fn get(&self, name: &str) -> DeliveryHealth {
        self.streams.lock().get(name).cloned().unwrap_or_default()
    }

    pub(crate) fn remove(&self, name: &str) {
        self.streams.lock().remove(name);
    }

    fn fail(&self, name: &str, kind: &str, details: String) {
        self.streams
            .lock()
            .entry(name.to_string())
            .or_default()
            .failure = Some((kind.to_string(), details));
    }

    fn succeed(&self, name: &str) {
        let mut streams = self.streams.lock();
        let health = streams.entry(name.to_string()).or_default();
        health.failure = None;
        health.last_success_ms = Some(now_ms());
    }
}

/// Starts an engine; with `previous`, only once that engine has stopped, so two engines never
/// deliver the same stream at once (an UpdateDestination while a batch is in flight).
pub fn spawn(context: EngineContext, previous: Option<EngineHandle>) -> EngineHandle {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        if let Some(previous) = previous {
            previous.stop.send_replace(true);
            let _ = previous.task.await;
        }
        run(context, stopped).await;
    });
    EngineHandle { stop, task }
}

/// Why a run of the engine ended.
#[derive(Debug)]
pub(crate) enum Halt {
    Stopped,
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for Halt {
    fn from(err: E) -> Self {
        Halt::Failed(err.to_string())
    }
}

async fn run(context: EngineContext, mut stopped: watch::Receiver<bool>) {
    let mut failures: u32 = 0;
    loop {
        let outcome = match Engine::start(&context, stopped.clone()).await {
            Ok(mut engine) => engine.run().await,
            Err(halt) => Err(halt),
        };
        match outcome {
            Ok(()) | Err(Halt::Stopped) => return,
            Err(Halt::Failed(message)) => {
                tracing::warn!(delivery_stream = %context.name, error = %message, "delivery halted; restarting");
                context.health.fail(&context.name, "UNKNOWN_ERROR", message);
                failures = failures.saturating_add(1);
                let wait = backoff(failures, context.config.backoff_scale);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.wait_for(|stop| *stop) => return,
                }
            }
        }
    }
}

/// 1 s doubling to 60 s, scaled (tests shrink it).
pub(crate) fn backoff(attempt: u32, scale: f64) -> Duration {
    let seconds = 2f64.powi(attempt.saturating_sub(1).min(6) as i32).min(60.0);
    Duration::from_secs_f64(seconds * scale)
}

struct LaneBuffer {
    lane: Lane,
    outputs: Vec<Output>,
    bytes: u64,
    oldest_arrival_ms: u64,
    /// When this buffer took its first output.
    opened_ms: u64,
}

/// Where records come from: the DirectPut log, or the shards of a Millstream data stream.
enum Source {
    Log { id: u64 },
    Kinesis { arn: String, created_ms: u64 },
}

/// One readable lane of a source: its name in progress rows, its log, and for Kinesis shards
/// what Lambda's record metadata needs.
struct SourceLane {
    name: Arc<str>,
    log: u64,
    shard: Option<millstream_streams::ShardMeta>,
}

const LOG_SOURCE: &str = "log";
/// How often a DirectPut log gives back the segments delivery has moved past.
const TRIM_INTERVAL: Duration = Duration::from_secs(30);
/// Kinesis sources are polled (AWS polls each shard once a second); new DirectPut records
/// wake the engine at once instead.
const KINESIS_POLL: Duration = Duration::from_millis(250);

struct Engine<'a> {
    context: &'a EngineContext,
    stopped: watch::Receiver<bool>,
    pipeline: Pipeline,
    tracker: Tracker,
    buffers: BTreeMap<String, LaneBuffer>,
    buffered_bytes: u64,
    writer: deliver::Writer,
    source: Source,
}

impl<'a> Engine<'a> {
    async fn start(
        context: &'a EngineContext,
        stopped: watch::Receiver<bool>,
    ) -> Result<Engine<'a>, Halt> {
        let meta = &context.meta;
        let source = match (meta.source, meta.log_id, &meta.source_stream_arn) {
            (SourceKind::DirectPut, Some(id), _) => Source::Log { id },
            (SourceKind::KinesisStreamAsSource, _, Some(arn)) => Source::Kinesis {
                arn: arn.clone(),
                created_ms: meta.created_ms,
            },
            (kind, _, _) => {
                return Err(Halt::Failed(format!(
                    "Millstream does not deliver from {} sources yet",
                    kind.as_str()
                )));
            }
        };
        let writer = deliver::Writer::new(context)?;
        let pipeline = Pipeline::new(
            &meta.spec,
            &context.arn,
            &context.config.region,
            context.config.lambda_endpoint.as_deref(),
            meta.source_stream_arn.clone(),
            writer.wants_backup(),
            context.config.backoff_scale,
        )
        .map_err(Halt::Failed)?;
        let catalog = context.catalog.clone();
        let key = meta.progress_key();
        let progress: Progress =
            tokio::task::spawn_blocking(move || catalog.load_progress(&key)).await??;
        let mut engine = Engine {
            context,
            stopped,
            pipeline,
            tracker: Tracker::new(progress),
            buffers: BTreeMap::new(),
            buffered_bytes: 0,
            writer,
            source,
        };
        engine.redo_intents().await?;
        Ok(engine)
    }

    /// Asked to stop, or the handle is gone (nobody could ask any more).
    fn stop_requested(&self) -> bool {
        *self.stopped.borrow() || self.stopped.has_changed().is_err()
    }

    async fn run(&mut self) -> Result<(), Halt> {
        let mut tail = match &self.source {
            Source::Log { id } => Some(self.context.store.watch_tail(*id)?),
            Source::Kinesis { .. } => None,
        };
        let mut last_trim = std::time::Instant::now();
        while !self.stop_requested() {
            if let Some(tail) = tail.as_mut() {
                tail.borrow_and_update();
            }
            if last_trim.elapsed() >= TRIM_INTERVAL {
                last_trim = std::time::Instant::now();
                self.trim_delivered().await?;
            }
            let mut read = 0;
            for lane in self.lanes()? {
                read = read.max(self.read_step(&lane).await?);
            }
            self.flush_due(read < READ_RECORDS_MAX).await?;
            if read < READ_RECORDS_MAX && self.buffered_bytes < BUFFERED_BYTES_MAX {
                let idle = if tail.is_some() {
                    IDLE_WAIT
                } else {
                    KINESIS_POLL
                };
                let wait = self.next_deadline().unwrap_or(idle).min(idle);
                let changed = async {
                    match tail.as_mut() {
                        Some(tail) => {
                            let _ = tail.changed().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.stopped.changed() => {}
                }
            }
        }
        Ok(())
    }

    /// Deletes the DirectPut log's segments that hold only delivered records (those below the
    /// persisted checkpoint): the log is the buffer, kept until delivery, never longer. Kinesis
    /// sources keep their stream's retention.
    async fn trim_delivered(&self) -> Result<(), Halt> {
        let Source::Log { id } = self.source else {
            return Ok(());
        };
        let Some(checkpoint) = self.tracker.progress.checkpoints.get(LOG_SOURCE).copied() else {
            return Ok(());
        };
        let store = &self.context.store;
        // Arrival times never decrease along a log, so a segment whose newest record arrived
        // before the first undelivered one holds delivered records only.
        let cutoff = match store.read(id, checkpoint, 1, 1).await?.first() {
            Some(first_undelivered) if first_undelivered.sequence == checkpoint => {
                first_undelivered.arrival_ms
            }
            Some(_) => return Ok(()),
            None => {
                let tail = store.tail(id)?;
                match tail.last_arrival_ms {
                    Some(last) if tail.next_sequence <= checkpoint => last,
                    _ => return Ok(()),
                }
            }
        };
        store.trim_before(id, cutoff).await?;
        Ok(())
    }

    /// The source's lanes as they are now (a Kinesis stream gains shards when resharded).
    fn lanes(&mut self) -> Result<Vec<SourceLane>, Halt> {
        match &self.source {
            Source::Log { id } => Ok(vec![SourceLane {
                name: Arc::from(LOG_SOURCE),
                log: *id,
                shard: None,
            }]),
            Source::Kinesis { arn, .. } => {
                let target = millstream_streams::StreamRef {
                    name: None,
                    arn: Some(arn.clone()),
                };
                let view = self.context.streams.describe(&target).map_err(|err| {
                    Halt::Failed(format!("the source stream {arn} cannot be read: {err}"))
                })?;
                Ok(view
                    .meta
                    .shards
                    .iter()
                    .map(|shard| SourceLane {
                        name: Arc::from(millstream_types::ShardId(shard.index).to_string()),
                        log: shard.log_id,
                        shard: Some(shard.clone()),
                    })
                    .collect())
            }
        }
    }

    /// Where a lane's reading starts: its checkpoint, or for a Kinesis shard seen for the
    /// first time, the records that arrived after the delivery stream was created (AWS starts
    /// a Kinesis source at LATEST); shards created later are read from their start.
    async fn start_position(&mut self, lane: &SourceLane) -> Result<u64, Halt> {
        if let Some(position) = self.tracker.checkpoint(&lane.name) {
            return Ok(position);
        }
        let position = match (&self.source, &lane.shard) {
            (Source::Kinesis { created_ms, .. }, Some(shard))
                if shard.created_ms <= *created_ms =>
            {
                self.context
                    .store
                    .sequence_at_time(lane.log, *created_ms)
                    .await?
            }
            _ => 0,
        };
        self.tracker.start_at(&lane.name, position);
        Ok(position)
    }

    /// Reads and processes one chunk of a lane; returns how many source records it read.
    async fn read_step(&mut self, lane: &SourceLane) -> Result<usize, Halt> {
        if self.buffered_bytes >= BUFFERED_BYTES_MAX {
            return Ok(0);
        }
        self.start_position(lane).await?;
        let from = self.tracker.read_position(&lane.name);
        let records = self.read_records(lane, from, u64::MAX).await?;
        if records.is_empty() {
            return Ok(0);
        }
        let count = records.len();
        let outputs = self.pipeline.process(&records).await;
        self.accept(&records, outputs);
        Ok(count)
    }

    /// Up to one chunk of a lane's records from `from`, none past `last`.
    async fn read_records(
        &self,
        lane: &SourceLane,
        from: u64,
        last: u64,
    ) -> Result<Vec<SourceRecord>, Halt> {
        let stored = self
            .context
            .store
            .read(
                lane.log,
                from,
                READ_RECORDS_MAX,
                self.pipeline.chunk_bytes(READ_BYTES_MAX),
            )
            .await?;
        Ok(stored
            .into_iter()
            .filter(|record| record.sequence <= last)
            .map(|record| SourceRecord {
                source: lane.name.clone(),
                sequence: record.sequence,
                arrival_ms: record.arrival_ms,
                kinesis: lane.shard.as_ref().map(|shard| pipeline::KinesisOrigin {
                    shard_id: lane.name.to_string(),
                    partition_key: millstream_streams::partition_key_text(&record.key),
                    sequence_number: millstream_streams::sequence_number(
                        shard,
                        record.sequence,
                        record.arrival_ms,
                    ),
                }),
                data: record.data,
            })
            .collect())
    }

    /// Buffers the outputs not yet written and notes what each source record still owes.
    /// `records` come from one source lane, in sequence order.
    fn accept(&mut self, records: &[SourceRecord], outputs: Vec<Output>) {
        let Some(source) = records.first().map(|record| record.source.clone()) else {
            return;
        };
        let first = records[0].sequence;
        // Records of a chunk have consecutive sequences except across trimmed gaps; index by
        // offset from the first, growing if a gap makes a sequence land past the end.
        let mut owed: Vec<u32> = vec![0; records.len()];
        let mut last_name: Option<(Lane, String)> = None;
        for output in outputs {
            let lane_name = match &last_name {
                Some((lane, name)) if *lane == output.lane => name.clone(),
                _ => {
                    let name = output.lane.name();
                    last_name = Some((output.lane.clone(), name.clone()));
                    name
                }
            };
            if self
                .tracker
                .already_written(&lane_name, &output.source, output.position)
            {
                continue;
            }
            let offset = (output.position.0 - first) as usize;
            if offset >= owed.len() {
                owed.resize(offset + 1, 0);
            }
            owed[offset] += 1;
            let size = output.data.len() as u64;
            let buffer = self.buffers.entry(lane_name).or_insert_with(|| LaneBuffer {
                lane: output.lane.clone(),
                outputs: Vec::new(),
                bytes: 0,
                oldest_arrival_ms: output.arrival_ms,
                opened_ms: now_ms(),
            });
            buffer.oldest_arrival_ms = buffer.oldest_arrival_ms.min(output.arrival_ms);
            buffer.bytes += size;
            buffer.outputs.push(output);
            self.buffered_bytes += size;
        }
        for record in records {
            let pending = owed[(record.sequence - first) as usize];
            self.tracker.record_read(&source, record.sequence, pending);
        }
    }

    /// Time until the oldest buffered output reaches its lane's interval.
    fn next_deadline(&self) -> Option<Duration> {
        let now = now_ms();
        self.buffers
            .values()
            .map(|buffer| {
                let interval = self.writer.buffering(&buffer.lane).interval_ms;
                let due = buffer.oldest_arrival_ms + interval;
                Duration::from_millis(due.saturating_sub(now))
            })
            .min()
    }

    /// Flushes the buffers that reached their size hint, or waited their interval. While a
    /// source lane still has a backlog (`caught_up` false), records read now may have
    /// arrived long ago: their age alone would flush each read step as a tiny object (one
    /// step is 500 records), so then only the buffer's own time open counts and buffers
    /// fill to their size hint (`a_backlog_older_than_the_interval_...` in the CLI tests).
    async fn flush_due(&mut self, caught_up: bool) -> Result<(), Halt> {
        let now = now_ms();
        let mut due: Vec<String> = self
            .buffers
            .iter()
            .filter(|(_, buffer)| {
                let hints = self.writer.buffering(&buffer.lane);
                buffer.bytes >= hints.size_bytes
                    || now >= buffer.opened_ms + hints.interval_ms
                    || (caught_up && now >= buffer.oldest_arrival_ms + hints.interval_ms)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if due.is_empty()
            && self.buffered_bytes >= BUFFERED_BYTES_MAX
            && let Some((name, _)) = self.buffers.iter().max_by_key(|(_, buffer)| buffer.bytes)
        {
            due.push(name.clone());
        }
        for name in due {
            if let Some(buffer) = self.buffers.remove(&name) {
                self.buffered_bytes -= buffer.bytes;
                self.flush(name, buffer.lane, buffer.outputs).await?;
            }
        }
        Ok(())
    }

    async fn flush(
        &mut self,
        lane_name: String,
        lane: Lane,
        outputs: Vec<Output>,
    ) -> Result<(), Halt> {
        let mut spans: BTreeMap<String, (Position, Position)> = BTreeMap::new();
        for output in &outputs {
            spans
                .entry(output.source.to_string())
                .and_modify(|(first, last)| {
                    *first = (*first).min(output.position);
                    *last = (*last).max(output.position);
                })
                .or_insert((output.position, output.position));
        }
        let batch = Batch {
            lane: lane_name,
            spans,
        };
        let keys = self.writer.plan_keys(&lane, &batch, &outputs);
        let intent = Intent {
            batch: batch.clone(),
            keys: keys.clone(),
        };
        self.tracker.begin(intent);
        self.persist().await?;
        self.write_with_retries(&lane, &outputs, &keys).await?;
        self.tracker.complete(
            &batch,
            outputs
                .iter()
                .map(|output| (output.source.as_ref(), output.position.0)),
        );
        self.persist().await?;
        self.context.health.succeed(&self.context.name);
        Ok(())
    }

    /// Object stores are retried until they answer (AWS retries S3 for 24 h); the stop signal
    /// interrupts, leaving the intent to be redone by the next start.
    async fn write_with_retries(
        &mut self,
        lane: &Lane,
        outputs: &[Output],
        keys: &[String],
    ) -> Result<(), Halt> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            match self.writer.write(lane, outputs, keys).await {
                Ok(()) => return Ok(()),
                Err(failure) => {
                    tracing::warn!(delivery_stream = %self.context.name, attempt, error = %failure.details, "delivery failed; retrying");
                    self.writer.record_failure(lane);
                    self.context
                        .health
                        .fail(&self.context.name, &failure.kind, failure.details);
                    let wait = backoff(attempt, self.context.config.backoff_scale);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.stopped.changed() => {}
                    }
                    if self.stop_requested() {
                        return Err(Halt::Stopped);
                    }
                }
            }
        }
    }

    async fn persist(&self) -> Result<(), Halt> {
        let catalog = self.context.catalog.clone();
        let key = self.context.meta.progress_key();
        let progress = self.tracker.progress.clone();
        tokio::task::spawn_blocking(move || catalog.put_progress(&key, &progress)).await??;
        Ok(())
    }

    /// Rewrites the batches whose upload may not have finished before the last stop, under the
    /// keys chosen then.
    async fn redo_intents(&mut self) -> Result<(), Halt> {
        let intents = self.tracker.progress.intents.clone();
        if intents.is_empty() {
            return Ok(());
        }
        let lanes = self.lanes()?;
        for intent in intents {
            let mut records = Vec::new();
            for (source, ((first, _), (last, _))) in &intent.batch.spans {
                let Some(lane) = lanes.iter().find(|lane| &*lane.name == source.as_str()) else {
                    continue;
                };
                let mut next = *first;
                while next <= *last {
                    let chunk = self.read_records(lane, next, *last).await?;
                    let Some(end) = chunk.last().map(|record| record.sequence) else {
                        break;
                    };
                    records.extend(chunk);
                    next = end + 1;
                }
            }
            let outputs: Vec<Output> = self
                .pipeline
                .process(&records)
                .await
                .into_iter()
                .filter(|output| {
                    intent
                        .batch
                        .contains(&output.lane.name(), &output.source, output.position)
                })
                .collect();
            if let Some(lane) = outputs.first().map(|output| output.lane.clone()) {
                self.write_with_retries(&lane, &outputs, &intent.keys)
                    .await?;
            }
            // With no outputs (a transform dropped them this time) there is nothing to rewrite.
            self.tracker.complete(&intent.batch, std::iter::empty());
            self.persist().await?;
        }
        Ok(())
    }
}

/// The body bytes of a batch: outputs concatenated in order.
pub(crate) fn concatenate(outputs: &[Output]) -> Bytes {
    let size = outputs.iter().map(|output| output.data.len()).sum();
    let mut body = Vec::with_capacity(size);
    for output in outputs {
        body.extend_from_slice(&output.data);
    }
    Bytes::from(body)
}
