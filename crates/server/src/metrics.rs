//! `GET /metrics`: Prometheus text exposition of everything the process records.
//!
//! Request metrics (per stream, and per shard under enhanced monitoring) are recorded where
//! the work happens, in `millstream-api-kinesis`, through the `metrics` facade. This module
//! installs the one process-wide recorder that collects them, and at each scrape samples
//! what is cheaper to read than to count: the store's counters and disk usage, and the
//! process's memory, threads and file descriptors. Names and their CloudWatch counterparts
//! are listed in `docs/metrics.md`.
//!
//! The recorder is global (the facade's design), so it is installed once per process; a
//! second `Server` in the same process shares it.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use millstream_storage::Store;
use millstream_streams::Streams;

/// Histogram buckets for request latencies, in seconds: 100 µs to 10 s. An fsync'd put on
/// a typical SSD lands around 1-5 ms; a GetRecords served from the cache well under 1 ms.
const LATENCY_BUCKETS_SECONDS: [f64; 15] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Without an HTTP listener of its own, the exporter folds histogram samples into buckets
/// only when rendered or when told to; this bounds the samples held between scrapes.
pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder's handle, installing the recorder on first use.
pub(crate) fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_string()),
                    &LATENCY_BUCKETS_SECONDS,
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first, which nothing in this
            // process does; metrics would then go to that recorder and render empty here.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_gauge!(
        "millstream_start_time_seconds",
        Unit::Seconds,
        "When the server started, in seconds since the Unix epoch"
    );
    describe_counter!(
        "millstream_storage_group_commits_total",
        "Journal units written, one per group commit"
    );
    describe_counter!(
        "millstream_storage_journal_syncs_total",
        "fdatasync calls on the journal"
    );
    describe_counter!(
        "millstream_storage_pipelined_syncs_total",
        "Journal fdatasync calls that ran while the next group commit was written"
    );
    describe_counter!(
        "millstream_storage_journal_written_bytes_total",
        Unit::Bytes,
        "Bytes written to the journal, framing included"
    );
    describe_counter!(
        "millstream_storage_placed_bytes_total",
        Unit::Bytes,
        "Bytes of large batches written straight to their segments instead of the journal"
    );
    describe_counter!(
        "millstream_storage_segment_rolls_total",
        "Segments closed because they reached their size limit"
    );
    describe_counter!(
        "millstream_storage_journal_sync_seconds_bucket",
        "Journal fdatasync latency histogram: syncs that took at most `le` seconds (cumulative)"
    );
    describe_counter!(
        "millstream_storage_journal_sync_seconds_count",
        "Journal fdatasync latency histogram: number of syncs"
    );
    describe_gauge!(
        "millstream_storage_journal_sync_seconds_sum",
        Unit::Seconds,
        "Journal fdatasync latency histogram: total seconds (monotonic; a gauge only because \
         the metrics facade's counters are integers)"
    );
    describe_counter!(
        "millstream_storage_checkpoints_total",
        "Journal checkpoints started (new journal written; segment syncs follow in the background)"
    );
    describe_counter!(
        "millstream_storage_checkpoint_microseconds_total",
        Unit::Microseconds,
        "Time the journal thread spent starting checkpoints (appends wait meanwhile)"
    );
    describe_counter!(
        "millstream_storage_checkpoint_jobs_total",
        "Journal checkpoints whose background part (segment syncs, old journal deletion) finished"
    );
    describe_counter!(
        "millstream_storage_checkpoint_job_microseconds_total",
        Unit::Microseconds,
        "Time spent in checkpoints' background parts (appends do not wait for it)"
    );
    describe_counter!(
        "millstream_storage_append_stage_microseconds_total",
        Unit::Microseconds,
        "Time appends spent in each stage of the store's write path, summed over appends"
    );
    describe_counter!(
        "millstream_storage_append_stage_appends_total",
        "Appends counted in each stage of millstream_storage_append_stage_microseconds_total"
    );
    describe_gauge!(
        "millstream_storage_cache_bytes",
        Unit::Bytes,
        "Bytes of records in the read cache"
    );
    describe_gauge!(
        "millstream_storage_pending_copy_bytes",
        Unit::Bytes,
        "Bytes of acknowledged records waiting for their copy to a segment (read from the cache meanwhile)"
    );
    describe_gauge!(
        "millstream_storage_open_read_handles",
        "Segment files open for reading"
    );
    describe_gauge!(
        "millstream_storage_segments",
        "Segment files over all shards"
    );
    describe_gauge!(
        "millstream_storage_segment_bytes",
        Unit::Bytes,
        "Bytes in segment files"
    );
    describe_gauge!("millstream_storage_journal_files", "Journal files");
    describe_gauge!(
        "millstream_storage_journal_bytes",
        Unit::Bytes,
        "Bytes in journal files"
    );
    describe_gauge!(
        "millstream_storage_disk_bytes",
        Unit::Bytes,
        "Bytes on disk: segments, journal and stream metadata"
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        Unit::Bytes,
        "Resident set size"
    );
    describe_gauge!(
        "millstream_get_records_tip_waiting",
        "GetRecords calls waiting at a shard's tip for the next record now"
    );
    describe_counter!(
        "millstream_get_records_tip_waits_total",
        "GetRecords calls that waited at a shard's tip before answering"
    );
    describe_gauge!("process_threads", "Operating-system threads of the process");
    describe_gauge!("process_open_fds", "Open file descriptors");
}

/// What a scrape samples besides the recorded metrics.
pub(crate) struct Telemetry {
    handle: PrometheusHandle,
    store: Store,
    streams: Streams,
    data_dir: PathBuf,
}

impl Telemetry {
    pub(crate) fn new(store: Store, streams: Streams, data_dir: PathBuf) -> Telemetry {
        let handle = handle();
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        gauge!("millstream_start_time_seconds").set(started);
        Telemetry {
            handle,
            store,
            streams,
            data_dir,
        }
    }

    pub(crate) fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }

    /// Samples storage and process state, then renders everything. Does file system
    /// calls (directory listings, /proc): run it on a blocking thread.
    pub(crate) fn render(&self) -> String {
        let m = self.store.metrics();
        counter!("millstream_storage_group_commits_total").absolute(m.group_commits);
        counter!("millstream_storage_journal_syncs_total").absolute(m.journal_syncs);
        counter!("millstream_storage_pipelined_syncs_total").absolute(m.pipelined_syncs);
        counter!("millstream_storage_journal_written_bytes_total").absolute(m.journal_bytes);
        counter!("millstream_storage_placed_bytes_total").absolute(m.placed_bytes);
        counter!("millstream_storage_segment_rolls_total").absolute(m.segment_rolls);
        publish_journal_sync_histogram(&m);
        counter!("millstream_storage_checkpoints_total").absolute(m.checkpoints);
        counter!("millstream_storage_checkpoint_microseconds_total").absolute(m.checkpoint_micros);
        counter!("millstream_storage_checkpoint_jobs_total").absolute(m.checkpoint_jobs);
        counter!("millstream_storage_checkpoint_job_microseconds_total")
            .absolute(m.checkpoint_job_micros);
        for (stage, time) in millstream_storage::AppendStage::ALL
            .iter()
            .zip(m.append_stages)
        {
            counter!("millstream_storage_append_stage_microseconds_total", "stage" => stage.name())
                .absolute(time.nanos / 1_000);
            counter!("millstream_storage_append_stage_appends_total", "stage" => stage.name())
                .absolute(time.appends);
        }
        gauge!("millstream_storage_cache_bytes").set(m.cache_bytes as f64);
        gauge!("millstream_storage_pending_copy_bytes").set(m.pending_copy_bytes as f64);
        gauge!("millstream_storage_open_read_handles").set(m.open_read_handles as f64);

        let usage = self.store.disk_usage();
        gauge!("millstream_storage_segments").set(usage.segments as f64);
        gauge!("millstream_storage_segment_bytes").set(usage.segment_bytes as f64);
        gauge!("millstream_storage_journal_files").set(usage.journal_files as f64);
        gauge!("millstream_storage_journal_bytes").set(usage.journal_bytes as f64);
        let metadata_bytes = std::fs::metadata(self.data_dir.join("metadata.redb"))
            .map(|m| m.len())
            .unwrap_or(0);
        gauge!("millstream_storage_disk_bytes")
            .set((usage.segment_bytes + usage.journal_bytes + metadata_bytes) as f64);

        gauge!("millstream_get_records_tip_waiting").set(self.streams.tip_waiting() as f64);
        sample_process();
        self.handle.render()
    }
}

/// `millstream_storage_journal_sync_seconds` in Prometheus histogram form. The store
/// counts syncs into fixed buckets itself (one atomic increment per sync, no samples kept),
/// so the series are written out here rather than through the facade's `histogram!`, which
/// would need every sample: cumulative `_bucket{le}` counters, `_count`, and `_sum`.
fn publish_journal_sync_histogram(m: &millstream_storage::StoreMetrics) {
    let bounds = millstream_storage::JOURNAL_SYNC_BUCKETS_SECONDS;
    let mut cumulative = 0u64;
    for (i, count) in m.journal_sync_buckets.iter().enumerate() {
        cumulative += count;
        let le = bounds
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |bound| bound.to_string());
        counter!("millstream_storage_journal_sync_seconds_bucket", "le" => le).absolute(cumulative);
    }
    counter!("millstream_storage_journal_sync_seconds_count").absolute(m.journal_syncs);
    gauge!("millstream_storage_journal_sync_seconds_sum")
        .set(m.journal_sync_nanos_total as f64 / 1e9);
}

/// Linux only (/proc); elsewhere these gauges are simply absent.
fn sample_process() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let value = |prefix: &str| -> Option<f64> {
                line.strip_prefix(prefix)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            };
            if let Some(kib) = value("VmRSS:") {
                gauge!("process_resident_memory_bytes").set(kib * 1024.0);
            } else if let Some(threads) = value("Threads:") {
                gauge!("process_threads").set(threads);
            }
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge!("process_open_fds").set(fds.count() as f64);
    }
}
