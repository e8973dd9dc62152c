//! Millstream's log engine. A `Store` holds many append-only logs identified by a
//! caller-chosen `LogId` (the streams crate gives every Kinesis shard one log). Bytes and
//! offsets only: no Kinesis, no HTTP, no JSON here.
//!
//! # Architecture
//!
//! ```text
//!  append(log 7) ──► writer task (log 7) ─┐  one tokio task per log: bounded mailbox,
//!  append(log 9) ──► writer task (log 9) ─┤  batches, numbers, encodes one frame, pipelines
//!                                         ▼
//!                    journal thread (std::thread, the only file writer)
//!                      1. drain every queued frame of every log into ONE unit
//!                      2. pwrite the unit to journal/<gen>.wal, ONE fdatasync
//!                         (on the sync thread while 1-2 run for the next unit, when
//!                         more is queued: pipelined group commit)
//!                      3. pwrite each frame to logs/<log>/<base>.seg (page cache)
//!                      4. complete the submissions
//!                                         │
//!  writer task: cache insert ─► durable tail (watch) ─► ack, in sequence order
//!
//!  read(log, from) ─► recent-records cache ─► else segment files via read_at on the
//!                     blocking pool (LRU of read handles); never touches a writer
//! ```
//!
//! - `SyncPolicy::Always` (default): an append returns after the fdatasync of the group
//!   commit that holds it. `Interval(d)`: after the write to the OS; the journal is synced
//!   at most `d` later (a crash of the *machine* can lose the last `d`; a crash of the
//!   process loses nothing). `Never`: the OS decides; after a machine crash, recovery may
//!   also report `Corrupt` for a journal the OS wrote back out of order.
//! - Bounds: per-log mailbox (`MAILBOX_CAPACITY`), in-flight bytes (`inflight_bytes_max`,
//!   a semaphore held from the call to the acknowledgement), cache bytes
//!   (`cache_bytes_max`), open read handles (`READ_HANDLES_MAX`), one append
//!   (`APPEND_BYTES_MAX`).
//! - Failures and fencing: see `journal.rs`. An `Io` error from `append` means the append
//!   may or may not be durable (like a timeout); it is never *partly* applied, and
//!   sequences never get a gap. Disk full on the journal: the torn unit is truncated away
//!   and the store continues. Failed fsync or segment write: the store is fenced (every
//!   mutation fails with `Io`) until it is reopened, which recovers from the journal.
//! - Journal checkpoint (every `journal_bytes_max`): the journal thread starts a new
//!   journal whose first unit lists every log's segment end and switches group commits to
//!   it (one small write and two syncs: ~10 ms); a background checkpoint job then
//!   fdatasyncs the segments written before that point (on up to 16 threads; a background
//!   flusher has already synced most of them) and only then deletes the old journal.
//!   Appends do not wait for the segment syncs (before format version 2 they did: 0.2-1.8
//!   s with 1,024 logs on this 2-core VM's disk). One job runs at a time; while it runs the
//!   next checkpoint is deferred and the journal grows, and only at 4x
//!   `journal_bytes_max` does the commit path wait for it (the disk is then behind).
//! - Threads: the journal thread, the flusher thread, the checkpoint job's thread (plus up
//!   to 16 short-lived sync threads), disk reads on tokio's blocking pool. File handles: one write
//!   handle per log (its active segment) held by the journal thread, the journal, and at
//!   most `READ_HANDLES_MAX` read handles.
//!
//! # Directory layout
//!
//! ```text
//! <data_dir>/LOCK                                  flock: one store per directory
//! <data_dir>/journal/<generation:016x>.wal         the shared journal: one file, two while
//!                                                  a checkpoint job runs, more after crashes
//! <data_dir>/logs/<log_id:016x>/<base:020>.seg     segments of a log, base = first sequence
//! <data_dir>/logs/<log_id:016x>/<base:020>.idx     sparse index of a sealed segment (a cache)
//! ```
//!
//! # On-disk format, version 3 (`format::FORMAT_VERSION`)
//!
//! All integers big-endian. Every file starts with the same 48-byte header:
//!
//! ```text
//!  0        8          12        16        24               32                 40       44        48
//!  | magic  | version  | kind    | id      | base_sequence  | arrival_floor_ms | crc32c | reserved |
//!  |"MILLSTRM"| u32 = 2 | u32     | u64     | u64            | u64              | u32    | u32 = 0  |
//!  kind: 1 journal (id = generation), 2 segment (id = log), 3 index (id = log)
//!  crc32c covers bytes 0..40
//! ```
//!
//! A **batch frame** is the unit of both segments and journal (the same bytes are written
//! to both). One frame holds one writer batch: the records of one or more appends, all
//! with the same arrival time:
//!
//! ```text
//!  0          4        8        16               24             28           36
//!  | body_len | crc32c | log_id | first_sequence | record_count | arrival_ms | records ... |
//!  | u32      | u32    | u64    | u64            | u32          | u64        | body_len B  |
//!  crc32c covers bytes 8..36+body_len;  record_count >= 1
//!  record: | flags u8 | key_len u32 | data_len u32 | key | data |
//! ```
//!
//! A **segment** file is the header followed by frames of one log with contiguous
//! sequences. A **journal** file is the header followed by *units*, one per group commit;
//! the first unit is always a checkpoint:
//!
//! ```text
//!  0             4        8           16     20
//!  | payload_len | crc32c | commit_no | kind | payload ... |
//!  | u32         | u32    | u64       | u32  |             |
//!  crc32c covers bytes 8..20+payload_len; commit_no increases by one per unit
//!  kind 1 frames:     payload = frames of any logs, concatenated
//!  kind 3 placed:     payload = entries | placement u8 | ... |, placement 0 followed by a
//!                     whole frame, 1 by a frame's 36-byte header only: that frame was
//!                     written at the end of its log's active segment before the unit,
//!                     and synced together with it (version 3; `SyncPolicy::Always` only)
//!  kind 2 checkpoint: payload = | count u32 | count x (log_id u64, next_sequence u64) |
//!                     segments hold every record below next_sequence; fsynced once no
//!                     older journal exists (see "Journal set")
//!  a journal's checkpoint unit takes the commit_no after the previous journal's last unit
//! ```
//!
//! **Journal set** (version 2). The journals present form a run of generations
//! `G1 < ... < Gk`; `Gk` is written, the others are complete and wait for a checkpoint
//! job to delete them. Every record acknowledged is either in a segment below the
//! *oldest* journal's checkpoint (fsynced) or in a unit of one of the journals. Recovery
//! therefore takes the oldest checkpoint as the fsynced floor of each log and replays
//! every journal in generation order; a frame whose records a segment already holds is
//! skipped by sequence, so replaying a journal twice, or frames a background sync already
//! made durable, changes nothing. Any defect in a non-newest journal's start, or a gap in
//! commit numbers between two journals, is `Corrupt`; a newest journal without a valid
//! checkpoint unit is a checkpoint that crashed while creating it and is deleted.
//!
//! Version 1 (earlier builds) wrote the same layouts, but synced the segments *before*
//! starting a new journal, so there the newest valid journal superseded all older ones.
//! This build reads version-1 files unchanged; if the newest valid journal is version 1,
//! it applies the version-1 rule (older journals are deleted unread), replays that journal
//! and appends to it; its first checkpoint writes version 2. Older builds refuse version-2
//! files ("unsupported format version"): do not open a directory with an older build once
//! this one has written to it (with two journals present, a version-1 build would delete
//! the newest as torn before refusing the older one).
//!
//! **Space ahead.** Past its last unit a journal may hold zeros, written and synced ahead
//! by a helper thread (`StoreConfig::journal_space_ahead_bytes`) so that group commits
//! overwrite allocated blocks and their `fdatasync` has no file size to commit. Recovery
//! treats zeros from the first invalid unit to the end of the file as the journal's clean
//! end and keeps them for the next units; anything else there is a torn tail as before.
//!
//! **Placed frames** (version 3). A log whose frames in one group commit total at least
//! `StoreConfig::placed_frame_bytes_min` has them written straight to its segment, past the
//! end readers see; the unit (kind 3) then carries only their headers, and the journal
//! and those segments are fdatasynced concurrently before anything is acknowledged, so
//! large batches reach the disk once instead of twice. On replay a placed frame whose
//! records the segment holds is skipped like any other; one the segment does not hold
//! means the unit's syncs did not all finish, so nothing in it was acknowledged and the
//! journal ends before it (cut like a torn tail). A placed frame's only copy is its
//! segment, as every frame's is once a checkpoint has dropped its journal: media damage
//! there surfaces as `Corrupt` on read, or, in the unit's last frames, as that cut. A group
//! that fails after placing frames cuts them back out of their segments (fencing if it
//! cannot), so no bytes of it can later be sealed or synced in place of the records that
//! take its sequences. Version-1 and -2 files hold no placed frames and are read unchanged;
//! older builds refuse version-3 files.
//!
//! An **index** file (`.idx`, written when a segment is sealed and, for the active
//! segment, at each checkpoint; not fsynced; validated and rebuilt by scanning when
//! missing or stale):
//!
//! ```text
//!  header | entry_count u64 | segment_len u64 | end_sequence u64 | max_arrival_ms u64 |
//!         | entry_count x (sequence u64, arrival_ms u64, file_offset u64) | crc32c u32 |
//! ```
//!
//! The in-memory sparse index has one entry per 4 KiB of segment
//! (`INDEX_INTERVAL_BYTES`), serving both sequence and arrival-time lookups (arrivals never
//! decrease within a log). On open, sealed segments load their `.idx` (no scan); the
//! active segment loads the `.idx` of the last checkpoint if it ends exactly at the
//! checkpointed sequence, and only the bytes written since are scanned and
//! checksum-verified. Bytes covered by an `.idx` are verified when read: damage there
//! surfaces as `Corrupt` from `read`, not from `open`.
//!
//! # Invariants
//!
//! - Sequences of a log start at 0, are consecutive, and are assigned only by its writer
//!   task; the durable tail only moves forward, by exactly one batch at a time
//!   (`assert!`ed in `writer.rs`).
//! - Every sequence below the durable tail is in the journal (durably, under `Always`)
//!   and readable from a segment file; anything not yet acknowledged is invisible.
//! - Non-last segments are complete and fsynced; only the journal thread writes journal
//!   and segment files (the checkpoint job syncs them, writes `.idx` caches and deletes old
//!   journals).
//! - Recovery never skips bad bytes that are followed by good data: that is
//!   `StorageError::Corrupt` with the file and offset (see `recovery.rs`).
//!
//! # Tests
//!
//! Codec round trips and never-panic decoders (proptest, `format.rs`); a model-based
//! proptest of every operation with crashes, torn tails and lost unsynced segment bytes,
//! crashes landing while a checkpoint job is held at each of its steps (`tests/model.rs`);
//! each checkpoint crash window on its own (`tests/checkpoint.rs`); a real SIGKILL test re-executing the test binary as a writer
//! (`tests/crash.rs`); disk-full and EIO injection behind `io::WriteLayer`
//! (`fault_tests.rs`); corruption detection and API behaviour (`tests/store.rs`).
//!
//! Log ids are never reused: journal frames of a deleted log are skipped on replay
//! because its directory is gone, which would be wrong for a re-created id.

mod cache;
#[cfg(test)]
mod fault_tests;
mod format;
mod io;
mod journal;
mod recovery;
mod segment;
mod space;
mod syncer;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::cache::RecordCache;
use crate::journal::{JournalCommand, Metrics};
use crate::segment::{HandleCache, SegmentSet};
use crate::writer::{Writer, WriterCommand};

mod read;
/// Identifies one log; chosen by the caller, unique within a store, never reused.
pub type LogId = u64;

/// When an acknowledged append is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `fdatasync` the journal before acknowledging each group commit (the default).
    #[default]
    Always,
    /// Acknowledge once written to the OS; sync at most this long afterwards.
    Interval(Duration),
    /// Never sync explicitly; the OS writes back when it likes.
    Never,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub sync_policy: SyncPolicy,
    pub segment_bytes_max: u64,
    pub journal_bytes_max: u64,
    pub cache_bytes_max: u64,
    pub inflight_bytes_max: u64,
    /// A log whose frames in one group commit total at least this many bytes has them
    /// written straight to its segment and synced with the journal unit, which then holds
    /// only their headers: large batches reach the disk once instead of twice. Below it,
    /// the second write costs less than the extra `fdatasync` it saves. 0 turns it off;
    /// only `SyncPolicy::Always` uses it.
    pub placed_frame_bytes_min: u64,
    /// Zeros kept written past the journal's last unit (between one and two times this,
    /// at most a sixteenth of `journal_bytes_max` but at least 4 KiB), so a group commit's
    /// `fdatasync` does not also commit a growing file size. 0 turns it off; only
    /// `SyncPolicy::Always` uses it.
    pub journal_space_ahead_bytes: u64,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            sync_policy: SyncPolicy::Always,
            segment_bytes_max: 64 << 20,
            journal_bytes_max: 256 << 20,
            cache_bytes_max: 256 << 20,
            inflight_bytes_max: 256 << 20,
            // ~0.5 ms of this disk's sequential write rate (263-302 MB/s), about what one
            // extra fdatasync costs (scripts/fsync-probe).
            placed_frame_bytes_min: 128 << 10,
            journal_space_ahead_bytes: 4 << 20,
        }
    }
}

/// One record to append. `flags` is opaque to the store (the streams crate keeps e.g.
/// "written while encrypted" there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRecord {
    pub key: Bytes,
    pub data: Bytes,
    pub flags: u8,
}

/// A durable record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub sequence: u64,
    pub arrival_ms: u64,
    pub key: Bytes,
    pub data: Bytes,
    pub flags: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    /// The records of the append got `first_sequence .. first_sequence + n`, consecutively.
    pub first_sequence: u64,
    /// Arrival time given to every record of this append (ms since the Unix epoch); never
    /// smaller than any earlier arrival in the same log.
    pub arrival_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTail {
    /// Sequence the next appended record will get; every sequence below it is durable.
    pub next_sequence: u64,
    /// Lowest sequence still stored (after retention trimming), == next_sequence when empty.
    pub first_sequence: u64,
    /// Arrival time of the newest record, if any.
    pub last_arrival_ms: Option<u64>,
    pub sealed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("log {0} does not exist")]
    LogNotFound(LogId),
    #[error("log {0} is sealed")]
    Sealed(LogId),
    #[error("the store is shut down")]
    Closed,
}

/// Largest encoded size (key + data + 9 B per record) of one `append` call. Kinesis needs
/// 10 MiB plus a 256 B key for one record and 5 MiB for a PutRecords call; this leaves
/// room and still bounds a frame.
pub const APPEND_BYTES_MAX: usize = 64 << 20;
/// Open read-only segment handles kept for readers, over all logs.
pub const READ_HANDLES_MAX: usize = 256;

/// Upper bounds (inclusive, seconds) of the journal sync latency buckets in
/// `StoreMetrics::journal_sync_buckets`; a last, unbounded bucket follows them. Fixed so
/// that counting a sync is one atomic increment.
pub const JOURNAL_SYNC_BUCKETS_SECONDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters since the store was opened, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreMetrics {
    /// Journal units written (one per group commit).
    pub group_commits: u64,
    /// `fdatasync` calls on the journal (successful ones; a failed one fences the store).
    pub journal_syncs: u64,
    /// Time spent in those `fdatasync` calls, in nanoseconds.
    pub journal_sync_nanos_total: u64,
    /// Journal syncs that ran on the sync thread while the journal thread went on with the
    /// next group commit (pipelined group commit, under concurrent appends).
    pub pipelined_syncs: u64,
    /// Segment writes that copied two or more frames of one log at once.
    pub segment_runs: u64,
    /// Early flush rounds started (`fdatasync`s of the segments written since the last
    /// round, off the journal thread).
    pub segment_flush_rounds: u64,
    /// Those syncs by latency: entry `i` counts syncs that took at most
    /// `JOURNAL_SYNC_BUCKETS_SECONDS[i]` (and more than the bound before it); the last
    /// entry counts the slower ones. Not cumulative.
    pub journal_sync_buckets: [u64; JOURNAL_SYNC_BUCKETS_SECONDS.len() + 1],
    /// Bytes written to the journal, framing included.
    pub journal_bytes: u64,
    /// Bytes of frames written straight to segments instead of the journal
    /// (`StoreConfig::placed_frame_bytes_min`).
    pub placed_bytes: u64,
    pub segment_rolls: u64,
    /// Checkpoints started (a new journal written); see `checkpoint_jobs` for finished ones.
    pub checkpoints: u64,
    /// Time the journal thread spent starting checkpoints (appends wait meanwhile): writing
    /// and syncing the new journal's first unit. Segment syncs are not in it.
    pub checkpoint_micros: u64,
    /// Checkpoints whose background part (segment syncs, old journal deletion) finished.
    pub checkpoint_jobs: u64,
    /// Time spent in those background parts (appends do not wait for it).
    pub checkpoint_job_micros: u64,
    /// Bytes of records in the read cache now.
    pub cache_bytes: u64,
    /// Bytes of acknowledged frames whose copy to their segments waits now (they are
    /// read from the cache meanwhile; see `Journal::publish`).
    pub pending_copy_bytes: u64,
    /// Read handles open now.
    pub open_read_handles: u64,
    /// Where appends spent their time, per `AppendStage` in `AppendStage::ALL` order.
    pub append_stages: [StageTime; AppendStage::ALL.len()],
}

/// The stretches of an append's path through the store, in order. Their times are
/// means over appends (sum and count), so they add up: what `Total` has beyond the
/// others is the writer task's own work (numbering, encoding, handing to the journal).
///
/// Kept because a durable put's latency is mostly waiting, and where it waits decides
/// what would shorten it (BENCHMARKS.md, round 7); a few clock reads per batch cost
/// nothing measurable next to the syscalls of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendStage {
    /// In the log's writer mailbox: behind the writer's frames already in the journal
    /// (at most `PIPELINE_DEPTH`), or until the writer task is scheduled.
    Mailbox,
    /// Sent to the journal thread, until a group commit takes it: the commit in
    /// progress (write, sync, segment copies) finishes first.
    JournalQueue,
    /// Taken into a group commit, until published: the journal write and its sync (or
    /// the wait for the sync thread); also the copy into the segment when the record
    /// cache cannot hold the whole unit (otherwise the copy follows the publication).
    GroupCommit,
    /// Published by the journal thread, until the appending task runs again (the
    /// wake-up of a tokio task from another thread).
    Completion,
    /// The whole append, from the mailbox to the appending task running again.
    Total,
}

impl AppendStage {
    pub const ALL: [AppendStage; 5] = [
        AppendStage::Mailbox,
        AppendStage::JournalQueue,
        AppendStage::GroupCommit,
        AppendStage::Completion,
        AppendStage::Total,
    ];

    /// The label value in metrics.
    pub fn name(self) -> &'static str {
        match self {
            AppendStage::Mailbox => "mailbox",
            AppendStage::JournalQueue => "journal_queue",
            AppendStage::GroupCommit => "group_commit",
            AppendStage::Completion => "completion",
            AppendStage::Total => "total",
        }
    }
}

/// Time spent in one `AppendStage`, summed over the appends that went through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageTime {
    pub appends: u64,
    pub nanos: u64,
}

/// Test hook (see `Store::pause_checkpoint_jobs_at`): a step of a checkpoint's background
/// job before which it waits, so a crash test can stop the process in that window.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CheckpointPause {
    /// The new journal is durable and in use; no segment synced yet, the old journal kept.
    BeforeSegmentSync = 1,
    /// Half of the dirty segments synced.
    MidSegmentSync = 2,
    /// Every segment synced and its index written; no old journal deleted yet.
    BeforeJournalDelete = 3,
    /// The oldest old journal deleted, newer old ones still there (only when there are
    /// several, i.e. after a recovery that found several).
    MidJournalDelete = 4,
}

/// What the store occupies on disk now, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// Segment files over all logs.
    pub segments: u64,
    /// Bytes of valid data in those segments, headers included.
    pub segment_bytes: u64,
    /// Journal files (normally one).
    pub journal_files: u64,
    pub journal_bytes: u64,
}

impl StorageError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &std::path::Path, offset: u64, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// A copy for the second and later waiters of one failure (`io::Error` is not `Clone`).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            StorageError::Io { path, source } => StorageError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StorageError::Corrupt {
                path,
                offset,
                reason,
            } => StorageError::Corrupt {
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            StorageError::LogNotFound(id) => StorageError::LogNotFound(*id),
            StorageError::Sealed(id) => StorageError::Sealed(*id),
            StorageError::Closed => StorageError::Closed,
        }
    }
}

/// Tail bookkeeping shared by a log's writer (next, arrival), the journal thread (first,
/// after retention) and readers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TailState {
    pub next_sequence: u64,
    pub first_sequence: u64,
    pub last_arrival_ms: Option<u64>,
    pub sealed: bool,
}

/// State of one log that several parties share. Lock order: `segments` before `tail`;
/// neither is held across I/O or `.await`.
pub(crate) struct LogShared {
    pub id: LogId,
    pub dir: PathBuf,
    pub segments: Mutex<SegmentSet>,
    pub tail: Mutex<TailState>,
    /// The durable `next_sequence`.
    pub durable: watch::Sender<u64>,
}

impl LogShared {
    pub fn new(id: LogId, dir: PathBuf, segments: SegmentSet, tail: TailState) -> Self {
        let (durable, _) = watch::channel(tail.next_sequence);
        Self {
            id,
            dir,
            segments: Mutex::new(segments),
            tail: Mutex::new(tail),
            durable,
        }
    }
}

struct LogHandle {
    shared: Arc<LogShared>,
    mailbox: mpsc::Sender<WriterCommand>,
}

struct Inner {
    config: Arc<StoreConfig>,
    logs: RwLock<HashMap<LogId, Arc<LogHandle>>>,
    journal: mpsc::Sender<JournalCommand>,
    journal_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    abandon: Arc<AtomicBool>,
    /// `CheckpointPause` as u8, 0 for none; shared with checkpoint jobs.
    pause: Arc<AtomicU8>,
    closed: AtomicBool,
    /// Serialises create/delete/shutdown (rare), so they need no finer locking.
    control: tokio::sync::Mutex<()>,
    cache: Arc<RecordCache>,
    handles: Arc<HandleCache>,
    inflight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Drop for Inner {
    /// Dropping the store without `shutdown` behaves like a crash of the process: the
    /// journal thread stops without syncing or checkpointing, and we wait for it so the
    /// directory (and its lock) is free for the next `open`.
    fn drop(&mut self) {
        self.abandon.store(true, Ordering::SeqCst);
        let _ = self.journal.try_send(JournalCommand::Abandon);
        if let Some(thread) = self.journal_thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// A handle to an open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn invalid_input(path: &std::path::Path, message: String) -> StorageError {
    StorageError::io(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
    )
}

impl Store {
    /// Opens (creating if needed) the store in `config.data_dir` and recovers it.
    ///
    /// # Errors
    /// `Io` for file system failures or when another store holds the directory, `Corrupt`
    /// when recovery finds damaged data it must not skip.
    pub async fn open(config: StoreConfig) -> Result<Store, StorageError> {
        Self::open_with_layer(config, Arc::new(io::OsLayer)).await
    }

    pub(crate) async fn open_with_layer(
        config: StoreConfig,
        layer: Arc<dyn io::WriteLayer>,
    ) -> Result<Store, StorageError> {
        if config.segment_bytes_max < 1024
            || config.journal_bytes_max < 1024
            || config.inflight_bytes_max == 0
        {
            return Err(invalid_input(
                &config.data_dir,
                "segment_bytes_max and journal_bytes_max must be >= 1024, inflight_bytes_max > 0"
                    .into(),
            ));
        }
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        let handles = Arc::new(HandleCache::new(READ_HANDLES_MAX));
        let cache = Arc::new(RecordCache::new(config.cache_bytes_max));
        let journal = {
            let (config, metrics, handles) = (config.clone(), metrics.clone(), handles.clone());
            let cache = cache.clone();
            tokio::task::spawn_blocking(move || {
                recovery::recover(config, layer, metrics, handles, cache)
            })
            .await
            .map_err(|_| StorageError::Closed)??
        };
        let abandon = journal.abandon.clone();
        let pause = journal.pause.clone();
        let (journal_tx, journal_rx) = mpsc::channel(journal::JOURNAL_QUEUE_CAPACITY);
        let mut logs = HashMap::new();
        for (id, files) in &journal.logs {
            let shared = files.shared.clone();
            let (next, arrival) = (files.next_sequence, files.last_arrival_ms);
            logs.insert(
                *id,
                Arc::new(spawn_writer(
                    shared,
                    journal_tx.clone(),
                    metrics.clone(),
                    next,
                    arrival,
                )),
            );
        }
        let queue = journal_tx.downgrade();
        let thread = std::thread::Builder::new()
            .name("millstream-journal".into())
            .spawn(move || journal.run(journal_rx, queue))
            .map_err(|e| StorageError::io(&config.data_dir, e))?;
        if let SyncPolicy::Interval(interval) = config.sync_policy {
            let tick = journal_tx.clone();
            tokio::spawn(async move {
                let mut timer = tokio::time::interval(interval.max(Duration::from_millis(1)));
                loop {
                    timer.tick().await;
                    if tick.is_closed() {
                        break;
                    }
                    let _ = tick.try_send(JournalCommand::Tick);
                }
            });
        }
        let permits = usize::try_from(config.inflight_bytes_max)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Ok(Store {
            inner: Arc::new(Inner {
                config,
                logs: RwLock::new(logs),
                journal: journal_tx,
                journal_thread: Mutex::new(Some(thread)),
                abandon,
                pause,
                closed: AtomicBool::new(false),
                control: tokio::sync::Mutex::new(()),
                cache,
                handles,
                inflight: Arc::new(Semaphore::new(permits)),
                metrics,
            }),
        })
    }

    fn check_open(&self) -> Result<(), StorageError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    fn handle(&self, id: LogId) -> Result<Arc<LogHandle>, StorageError> {
        self.check_open()?;
        self.inner
            .logs
            .read()
            .get(&id)
            .cloned()
            .ok_or(StorageError::LogNotFound(id))
    }

    async fn journal_call(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), StorageError>>) -> JournalCommand,
    ) -> Result<(), StorageError> {
        let (reply, done) = oneshot::channel();
        self.inner
            .journal
            .send(make(reply))
            .await
            .map_err(|_| StorageError::Closed)?;
        done.await.map_err(|_| StorageError::Closed)?
    }

    /// Creates an empty log; idempotent. Durable when it returns.
    ///
    /// # Errors
    /// `Io` if its directory or first segment cannot be created; `Closed`.
    pub async fn create_log(&self, id: LogId) -> Result<(), StorageError> {
        self.check_open()?;
        let _control = self.inner.control.lock().await;
        self.check_open()?;
        if self.inner.logs.read().contains_key(&id) {
            return Ok(());
        }
        let dir = segment::log_dir(&self.inner.config.data_dir.join("logs"), id);
        let tail = TailState {
            next_sequence: 0,
            first_sequence: 0,
            last_arrival_ms: None,
            sealed: false,
        };
        let shared = Arc::new(LogShared::new(id, dir, SegmentSet::default(), tail));
        self.journal_call(|reply| JournalCommand::CreateLog {
            shared: shared.clone(),
            reply,
        })
        .await?;
        let handle = spawn_writer(
            shared,
            self.inner.journal.clone(),
            self.inner.metrics.clone(),
            0,
            0,
        );
        self.inner.logs.write().insert(id, Arc::new(handle));
        Ok(())
    }

    /// Every log currently stored, in id order (empty once shut down).
    pub fn logs(&self) -> Vec<LogId> {
        if self.check_open().is_err() {
            return Vec::new();
        }
        let mut ids: Vec<LogId> = self.inner.logs.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Appends and returns once durable under the sync policy.
    ///
    /// # Errors
    /// `LogNotFound`, `Sealed`, `Closed`; `Io` for an I/O failure (the append may or may
    /// not be durable) or, with kind `InvalidInput`, for more than `APPEND_BYTES_MAX` bytes.
    pub async fn append(
        &self,
        id: LogId,
        records: Vec<AppendRecord>,
    ) -> Result<AppendAck, StorageError> {
        let handle = self.handle(id)?;
        let bytes = appended_bytes(&handle, &records)?;
        // Held until the append is resolved.
        let _permit = self.in_flight_budget(bytes).await?;
        let (reply, done) = oneshot::channel();
        let queued_at = Instant::now();
        handle
            .mailbox
            .send(WriterCommand::Append {
                records,
                reply,
                queued_at,
            })
            .await
            .map_err(|_| self.gone(id))?;
        self.answered(id, done.await, queued_at)
    }

    /// Takes `bytes` of the in-flight budget, never more than the whole budget, so one
    /// huge append cannot wait forever.
    async fn in_flight_budget(
        &self,
        bytes: usize,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, StorageError> {
        let wanted = bytes.clamp(
            1,
            self.inner.config.inflight_bytes_max.min(u32::MAX as u64) as usize,
        );
        self.inner
            .inflight
            .acquire_many(wanted as u32)
            .await
            .map_err(|_| StorageError::Closed)
    }

    /// An append's answer from its writer (counted in the append stage metrics).
    fn answered(
        &self,
        id: LogId,
        answer: Result<Result<(AppendAck, Instant), StorageError>, oneshot::error::RecvError>,
        queued_at: Instant,
    ) -> Result<AppendAck, StorageError> {
        let result = answer.map_err(|_| self.gone(id))?;
        let metrics = &self.inner.metrics;
        if let Ok((_, published_at)) = &result {
            metrics.append_waited(AppendStage::Completion, published_at.elapsed(), 1);
        }
        metrics.append_waited(AppendStage::Total, queued_at.elapsed(), 1);
        result.map(|(ack, _)| ack)
    }

    /// Appends to several logs at once, one answer per append in the given order: what
    /// `append` does for each, with the in-flight budget taken once for all of them and
    /// their answers awaited in turn rather than as separate futures. A PutRecords request
    /// of 500 records spans ~390 shards of a 1,000-shard stream, and the per-append
    /// semaphore and future bookkeeping were a large part of its cost (BENCHMARKS.md,
    /// round 9). Appends to one log are numbered in the given order.
    pub async fn append_many(
        &self,
        appends: Vec<(LogId, Vec<AppendRecord>)>,
    ) -> Vec<Result<AppendAck, StorageError>> {
        let mut answers: Vec<Option<Result<AppendAck, StorageError>>> =
            (0..appends.len()).map(|_| None).collect();
        let mut total = 0usize;
        let mut sized = Vec::with_capacity(appends.len());
        for (i, (id, records)) in appends.into_iter().enumerate() {
            let handle = match self.handle(id) {
                Ok(handle) => handle,
                Err(e) => {
                    answers[i] = Some(Err(e));
                    continue;
                }
            };
            match appended_bytes(&handle, &records) {
                Ok(bytes) => {
                    total += bytes;
                    sized.push((i, id, handle, records));
                }
                Err(e) => answers[i] = Some(Err(e)),
            }
        }
        // Held until every append is resolved.
        let _permit = match self.in_flight_budget(total).await {
            Ok(permit) => permit,
            Err(e) => {
                for (i, ..) in sized {
                    answers[i] = Some(Err(e.duplicate()));
                }
                return answers
                    .into_iter()
                    .map(|a| a.expect("every append answered"))
                    .collect();
            }
        };
        let mut waiting = Vec::with_capacity(sized.len());
        for (i, id, handle, records) in sized {
            let (reply, done) = oneshot::channel();
            let queued_at = Instant::now();
            let sent = handle
                .mailbox
                .send(WriterCommand::Append {
                    records,
                    reply,
                    queued_at,
                })
                .await;
            match sent {
                Ok(()) => waiting.push((i, id, done, queued_at)),
                Err(_) => answers[i] = Some(Err(self.gone(id))),
            }
        }
        for (i, id, done, queued_at) in waiting {
            answers[i] = Some(self.answered(id, done.await, queued_at));
        }
        answers
            .into_iter()
            .map(|a| a.expect("every append answered"))
            .collect()
    }

    /// The error for a writer that went away: the log was deleted or the store closed.
    fn gone(&self, id: LogId) -> StorageError {
        if self.inner.closed.load(Ordering::SeqCst) || self.inner.logs.read().contains_key(&id) {
            StorageError::Closed
        } else {
            StorageError::LogNotFound(id)
        }
    }

    /// Reads durable records with sequence >= `from` (from the first retained one if
    /// `from` was trimmed), at most `max_records`, and stops before a record that would
    /// take key + data bytes past `max_bytes` (the first record is always returned, however
    /// large). Empty when caught up. Never waits for writers.
    ///
    /// # Errors
    /// `LogNotFound`, `Closed`; `Io`; `Corrupt` if a segment frame fails its checksum.
    pub async fn read(
        &self,
        id: LogId,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let handle = self.handle(id)?;
        let shared = handle.shared.clone();
        let until = *shared.durable.borrow();
        let from = from.max(shared.tail.lock().first_sequence);
        if from >= until || max_records == 0 {
            return Ok(Vec::new());
        }
        if let Some(records) = self
            .inner
            .cache
            .read(id, from, until, max_records, max_bytes)
        {
            return Ok(records);
        }
        let handles = self.inner.handles.clone();
        let mut records = tokio::task::spawn_blocking(move || {
            read::read_segments(&shared, &handles, from, until, max_records, max_bytes)
        })
        .await
        .map_err(|_| StorageError::Closed)??;
        // The newest records may not be in the segments yet (the journal copies them
        // later, see `Journal::publish`): the rest of the read from the cache.
        let next = records.last().map_or(from, |r| r.sequence + 1);
        if let Some(rest) =
            self.inner
                .cache
                .read_after(id, next, until, &records, max_records, max_bytes)
        {
            records.extend(rest);
        }
        Ok(records)
    }

    /// # Errors
    /// `LogNotFound`, `Closed`.
    pub fn tail(&self, id: LogId) -> Result<LogTail, StorageError> {
        let handle = self.handle(id)?;
        let tail = *handle.shared.tail.lock();
        Ok(LogTail {
            next_sequence: tail.next_sequence,
            first_sequence: tail.first_sequence,
            last_arrival_ms: tail.last_arrival_ms,
            sealed: tail.sealed,
        })
    }

    /// Watch the durable `next_sequence` of a log, to wait for new records.
    ///
    /// # Errors
    /// `LogNotFound`, `Closed`.
    pub fn watch_tail(&self, id: LogId) -> Result<tokio::sync::watch::Receiver<u64>, StorageError> {
        Ok(self.handle(id)?.shared.durable.subscribe())
    }

    /// First sequence whose arrival is >= `arrival_ms` (the tail's next_sequence if none).
    /// Uses the sparse time index, then reads at most ~4 KiB of frame headers.
    ///
    /// # Errors
    /// `LogNotFound`, `Closed`, `Io`, `Corrupt`.
    pub async fn sequence_at_time(&self, id: LogId, arrival_ms: u64) -> Result<u64, StorageError> {
        let handle = self.handle(id)?;
        let shared = handle.shared.clone();
        let handles = self.inner.handles.clone();
        let found = tokio::task::spawn_blocking(move || {
            read::sequence_at_time(&shared, &handles, arrival_ms)
        })
        .await
        .map_err(|_| StorageError::Closed)??;
        Ok(match found {
            read::AtTime::Found(sequence) => sequence,
            read::AtTime::After(segments_end) => {
                let durable = *handle.shared.durable.borrow();
                // Not in the cache cannot happen for records past the segments' end; if
                // it did, starting at the end returns records that arrived earlier rather
                // than skipping any.
                self.inner
                    .cache
                    .sequence_at_time(id, segments_end, durable, arrival_ms)
                    .unwrap_or(segments_end)
            }
        })
    }

    /// Stops accepting appends after those already queued; returns the final next_sequence.
    /// In memory only: call it again after a restart.
    ///
    /// # Errors
    /// `LogNotFound`, `Closed`.
    pub async fn seal(&self, id: LogId) -> Result<u64, StorageError> {
        let handle = self.handle(id)?;
        let (reply, done) = oneshot::channel();
        handle
            .mailbox
            .send(WriterCommand::Seal { reply })
            .await
            .map_err(|_| self.gone(id))?;
        done.await.map_err(|_| self.gone(id))?
    }

    /// Deletes whole segments whose newest record arrived before `cutoff_ms`. If every
    /// record is expired the active segment is sealed and deleted too, leaving the log
    /// empty with `first_sequence == next_sequence`.
    ///
    /// # Errors
    /// `LogNotFound`, `Closed`, `Io` (a failed roll fences the store).
    pub async fn trim_before(&self, id: LogId, cutoff_ms: u64) -> Result<(), StorageError> {
        self.handle(id)?;
        self.journal_call(|reply| JournalCommand::Trim {
            log: id,
            cutoff_ms,
            reply,
        })
        .await
    }

    /// Stops the log's writer (in-flight appends resolve first) and deletes its files.
    /// The id must not be reused.
    ///
    /// # Errors
    /// `LogNotFound`, `Closed`, `Io`.
    pub async fn delete_log(&self, id: LogId) -> Result<(), StorageError> {
        self.check_open()?;
        let _control = self.inner.control.lock().await;
        let Some(handle) = self.inner.logs.write().remove(&id) else {
            return Err(StorageError::LogNotFound(id));
        };
        // Let the writer resolve what it has in flight before the files go.
        let (reply, done) = oneshot::channel();
        if handle
            .mailbox
            .send(WriterCommand::Stop { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        self.inner.cache.remove_log(id);
        self.journal_call(|reply| JournalCommand::DeleteLog { log: id, reply })
            .await
    }

    /// Flushes and syncs everything, stops background work. Later calls get `Closed`
    /// (a second `shutdown` is a no-op). Also checkpoints, so the next open has no
    /// journal to replay.
    ///
    /// # Errors
    /// `Io` if the final sync or checkpoint fails (the data is still recoverable).
    pub async fn shutdown(&self) -> Result<(), StorageError> {
        let _control = self.inner.control.lock().await;
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let handles: Vec<Arc<LogHandle>> =
            self.inner.logs.write().drain().map(|(_, h)| h).collect();
        for handle in handles {
            let (reply, done) = oneshot::channel();
            if handle
                .mailbox
                .send(WriterCommand::Stop { reply })
                .await
                .is_ok()
            {
                let _ = done.await;
            }
        }
        // A paused checkpoint job would make the shutdown wait forever.
        self.pause_checkpoint_jobs_at(None);
        let result = self
            .journal_call(|reply| JournalCommand::Shutdown { reply })
            .await;
        let thread = self.inner.journal_thread.lock().take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }

    /// Segment counts and sizes from the in-memory bookkeeping (each log's segment lock is
    /// taken briefly, one at a time), plus the journal directory's file sizes (a directory
    /// listing: call it off the async runtime's worker threads when that matters).
    pub fn disk_usage(&self) -> DiskUsage {
        let mut usage = DiskUsage::default();
        let logs: Vec<Arc<LogHandle>> = self.inner.logs.read().values().cloned().collect();
        for log in logs {
            let segments = log.shared.segments.lock();
            usage.segments += segments.segments.len() as u64;
            usage.segment_bytes += segments.segments.iter().map(|s| s.len).sum::<u64>();
        }
        let journal_dir = self.inner.config.data_dir.join("journal");
        if let Ok(entries) = std::fs::read_dir(&journal_dir) {
            for entry in entries.flatten() {
                if let Ok(meta) = entry.metadata()
                    && meta.is_file()
                {
                    usage.journal_files += 1;
                    usage.journal_bytes += meta.len();
                }
            }
        }
        usage
    }

    /// Test hook for crash tests, not for production: from now on, checkpoint background
    /// jobs wait at `at` until this is changed or the store is dropped (which, like a
    /// crash, stops the job where it is). Appends continue meanwhile; further checkpoints
    /// are deferred (the journal grows) until the job finishes. `shutdown` clears it.
    #[doc(hidden)]
    pub fn pause_checkpoint_jobs_at(&self, at: Option<CheckpointPause>) {
        self.inner
            .pause
            .store(at.map_or(0, |p| p as u8), Ordering::SeqCst);
    }

    /// Test hook: returns once every append acknowledged before the call has been fully
    /// handled by the journal thread, including a checkpoint it started, and that
    /// checkpoint's background job has finished (unless `pause_checkpoint_jobs_at` holds
    /// it). Counters and the journal directory are then stable until the next append.
    ///
    /// # Errors
    /// `Io` if the checkpoint job failed (the store is then fenced); `Closed`.
    #[doc(hidden)]
    pub async fn settle_checkpoints(&self) -> Result<(), StorageError> {
        self.journal_call(|reply| JournalCommand::Settle { reply })
            .await
    }

    /// Counters since open.
    pub fn metrics(&self) -> StoreMetrics {
        let m = &self.inner.metrics;
        StoreMetrics {
            group_commits: m.group_commits.load(Ordering::Relaxed),
            journal_syncs: m.journal_syncs.load(Ordering::Relaxed),
            journal_sync_nanos_total: m.journal_sync_nanos.load(Ordering::Relaxed),
            pipelined_syncs: m.pipelined_syncs.load(Ordering::Relaxed),
            segment_runs: m.segment_runs.load(Ordering::Relaxed),
            segment_flush_rounds: m.segment_flush_rounds.load(Ordering::Relaxed),
            journal_sync_buckets: std::array::from_fn(|i| {
                m.journal_sync_buckets[i].load(Ordering::Relaxed)
            }),
            checkpoint_jobs: m.checkpoint_jobs.load(Ordering::Relaxed),
            checkpoint_job_micros: m.checkpoint_job_micros.load(Ordering::Relaxed),
            journal_bytes: m.journal_bytes.load(Ordering::Relaxed),
            placed_bytes: m.placed_bytes.load(Ordering::Relaxed),
            segment_rolls: m.segment_rolls.load(Ordering::Relaxed),
            checkpoints: m.checkpoints.load(Ordering::Relaxed),
            checkpoint_micros: m.checkpoint_micros.load(Ordering::Relaxed),
            cache_bytes: self.inner.cache.bytes(),
            pending_copy_bytes: m.pending_copy_bytes.load(Ordering::Relaxed),
            open_read_handles: self.inner.handles.len() as u64,
            append_stages: std::array::from_fn(|i| StageTime {
                appends: m.append_stage_appends[i].load(Ordering::Relaxed),
                nanos: m.append_stage_nanos[i].load(Ordering::Relaxed),
            }),
        }
    }
}

fn spawn_writer(
    shared: Arc<LogShared>,
    journal: mpsc::Sender<JournalCommand>,
    metrics: Arc<Metrics>,
    next_sequence: u64,
    last_arrival_ms: u64,
) -> LogHandle {
    let (mailbox_tx, mailbox) = mpsc::channel(writer::MAILBOX_CAPACITY);
    let writer = Writer {
        shared: shared.clone(),
        mailbox,
        journal,
        metrics,
        next_sequence,
        last_arrival_ms,
    };
    tokio::spawn(writer.run());
    LogHandle {
        shared,
        mailbox: mailbox_tx,
    }
}

/// An append's size as encoded (with per-record framing), so no record count can overflow
/// a frame: a writer batch is at most BATCH_BYTES_MAX plus one append.
fn appended_bytes(handle: &LogHandle, records: &[AppendRecord]) -> Result<usize, StorageError> {
    let bytes: usize = records.iter().map(format::record_encoded_len).sum();
    if bytes > APPEND_BYTES_MAX {
        return Err(invalid_input(
            &handle.shared.dir,
            format!("append of {bytes} bytes exceeds APPEND_BYTES_MAX ({APPEND_BYTES_MAX})"),
        ));
    }
    Ok(bytes)
}
