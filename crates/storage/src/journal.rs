//! The shared journal: one std thread that owns every file the store writes.
//!
//! Writers (one tokio task per log) send encoded batch frames here. The thread drains
//! whatever is queued from all logs into one journal *unit* (one group commit), writes it
//! with one positional write, makes it durable with ONE `fdatasync`, then copies each frame
//! into its log's active segment (page cache only, no fsync), updates the sparse index, and
//! only then publishes each batch (cache, durable tail, the appends' acknowledgements;
//! `writer::Batch`). So when an append is acknowledged, its records are durable in the
//! journal *and* readable from the segment file: readers never need the journal.
//!
//! Under concurrent appends the group commits are pipelined: when more is queued once a
//! unit is written, its `fdatasync` runs on the sync thread (`syncer.rs`) while this thread
//! gathers and writes the next unit, then copies and acknowledges the first once its sync
//! returned. One sync is outstanding at a time, units are acknowledged in order, and none
//! before a sync that started after its write has returned. A lone unit is synced here, as
//! the hand-over would add two thread wake-ups to its latency.
//!
//! Large batches skip the copy (*placed frames*, `StoreConfig::placed_frame_bytes_min`):
//! a log with enough bytes in the group has its frames written to its segment first, the
//! unit carries only their headers, and the journal and those segments are synced
//! concurrently; the frames become visible once all syncs returned. So their bytes reach
//! the disk once, where the copy through the journal wrote them twice and bounded ingest
//! at half the disk's bandwidth.
//!
//! Units are written over zeros a helper thread keeps synced ahead of them (`space.rs`),
//! so the group commit's `fdatasync` commits data only, not a growing file size.
//!
//! Because this thread is the only writer of segment and journal files, rolls, retention,
//! checkpoints and log creation/deletion are serialised with appends without any lock on
//! the write path. Blocking file I/O never runs on a tokio worker.
//!
//! # Ordering and failures
//!
//! Each log's frames must reach the journal with contiguous sequences. The thread tracks
//! the next sequence it expects per log and rejects a frame that does not continue it: if
//! a group commit fails, the writer's later pipelined batches (numbered after the failed
//! one) are rejected too, the writer rewinds its sequence counter to the failed batch, and
//! no gap is ever made durable.
//!
//! - A failed journal *write* (ENOSPC, EIO) fails the whole group commit with
//!   `StorageError::Io`, and the journal is truncated back to the end of the last good
//!   unit, so recovery never sees the half-written unit. The store keeps going and the
//!   next append may succeed once space is back. If the truncation itself fails, the
//!   journal is *fenced*.
//! - A failed `fdatasync` fences: after a failed fsync the kernel may have dropped the
//!   dirty pages, so nothing written since the last good sync can be trusted
//!   ("fsyncgate"). Every unit written since then fails (with pipelining, the unit written
//!   while the failed sync ran too), and the journal is cut back to before the first. A
//!   failed segment write fences too (the journal holds the data but the segment now
//!   lacks it, so readers could not find it).
//! - Fenced: every further mutation fails with `StorageError::Io` until the store is
//!   reopened; recovery then rebuilds everything from the journal's last complete unit.
//!
//! # Checkpoint (journal truncation), in this order
//!
//! On the journal thread, between two group commits (appends wait only for this):
//! 1. Wait for the previous checkpoint job if it still runs (normally it finished long
//!    ago; while it runs, `commit` defers the checkpoint instead of calling this).
//! 2. `Interval` policy: fdatasync journal `N` if it has unsynced units.
//! 3. Note every log's end (`next_sequence`) and the active segment of every log written
//!    since the last checkpoint.
//! 4. Create journal `N+1`, write its header and a checkpoint unit listing those ends,
//!    `fdatasync` it, fsync the journal directory. Group commits now go to `N+1`.
//!
//! Then, on a `CheckpointJob` thread, concurrently with group commits into `N+1`:
//! 5. `fdatasync` the segments noted in 3 (sealed segments were synced when sealed), and
//!    persist the index of each one's prefix up to its noted end.
//! 6. Delete every journal older than `N+1`, oldest first, fsyncing the directory after
//!    each.
//!
//! Crash windows (recovery replays every journal present, oldest first, by sequence, so
//! each frame is applied once):
//! - During 4: `N+1` has no valid checkpoint unit; recovery deletes it and replays `N`.
//! - After 4, before or during 5: `N` and `N+1` both exist; the floor of fsynced segment
//!   data is still `N`'s checkpoint, and `N` holds every frame from there to `N+1`'s
//!   checkpoint, `N+1` the rest. Segment bytes a background sync had or had not made
//!   durable are equally fine: frames already in a segment are skipped.
//! - After 5, before or during 6: the same, with less to replay. Deleting oldest first
//!   leaves a contiguous run of journals, whose commit numbers recovery checks.
//! - Store dropped (the process-crash stand-in in tests) while a job runs: the job stops
//!   at its next step, and the journal thread waits for it before releasing the lock.
//!
//! A failed sync in the job fences the store (at the next group commit): the old journal
//! is never deleted after a failed segment sync. If step 4 fails, `N+1` is removed; if it
//! cannot be, the store is fenced, so that `N` does not get units past the end `N+1`
//! records for it.

use foldhash::{HashMap, HashMapExt};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::cache::RecordCache;
use crate::format::{self, FILE_HEADER_LEN, FileHeader, FrameHeader};
use crate::io::{WriteLayer, sync_dir};
use crate::segment::{self, HandleCache, SegmentMeta};
use crate::space::{FillError, RunningFill, SpacePreparer};
use crate::syncer::Syncer;
use crate::writer::Batch;
use crate::{AppendStage, LogId, LogShared, StorageError, StoreConfig, SyncPolicy};

/// Group commits up to this size have zeros written ahead of them (`space.rs`).
const SMALL_UNIT_BYTES: u64 = 64 << 10;

/// Stop draining the queue into one group commit beyond this many bytes, so one commit's
/// latency stays bounded under a flood.
const GROUP_BYTES_MAX: usize = 16 << 20;
/// A log's pending segment copies are written once they reach this many bytes: one write
/// of ~64 KiB instead of one per group commit. Chosen, not tuned (BENCHMARKS.md, round 10).
const COALESCE_BYTES: usize = 64 << 10;
/// An early flush round waits until the journal has grown by this much for each segment
/// file it would sync: a round `fdatasync`s every segment written since the last one, and
/// on a 1,000-shard stream each of those ~1,000 syncs wrote a few KiB, five rounds a second
/// (the flush thread was 13 % of the server's samples; no early flush at all measured
/// 1.12-1.43x records/s there, BENCHMARKS.md round 10). With a few logs it changes nothing.
const FLUSH_BYTES_PER_FILE: u64 = 128 << 10;
/// Past this many bytes of pending copies across logs, the oldest logs' are written: it
/// bounds the memory they hold (a 1,000-shard stream has a pending run on every shard).
const PENDING_BYTES_MAX: usize = 16 << 20;
/// Capacity of the queue into the journal thread (commands, not bytes: bytes are bounded
/// by the store's in-flight semaphore).
pub(crate) const JOURNAL_QUEUE_CAPACITY: usize = 8192;
/// A journal this many times `journal_bytes_max` long makes the commit path wait for the
/// running checkpoint job before starting the next checkpoint (see `commit`).
const JOURNAL_OVERDUE_FACTOR: u64 = 4;

pub(crate) fn journal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:016x}.wal"))
}

/// One log's frames of a group commit, written to its active segment ahead of the unit.
struct PlacedFrames {
    segment: Arc<File>,
    /// Synced with the unit (see `LogFiles::placed_sync`).
    sync: Arc<File>,
    /// The segment's visible end before these frames: cut back to it if the group fails.
    start: u64,
    /// Where each frame starts, in submission order.
    offsets: std::vec::IntoIter<u64>,
}

/// Why placing a log's frames failed.
enum PlaceError {
    /// Nothing is left behind: the group fails, the store goes on.
    Write(std::io::Error),
    /// The write failed and cutting the segment back failed too.
    Uncut(std::io::Error, std::io::Error),
}

/// One batch frame for the journal.
pub(crate) struct Submission {
    pub log: LogId,
    pub header: FrameHeader,
    pub frame: Vec<u8>,
    /// The batch's records and acknowledgements: this thread publishes them itself once
    /// the frame is durable and readable, so an append's task is woken straight from here
    /// (a wake-up of the writer task fewer on every append's path).
    pub batch: Batch,
    /// Tells the writer the frame's outcome: it frees a pipeline slot, or makes the writer
    /// rewind its numbering to the failed batch. The writer reads it when it next numbers
    /// a batch or needs a slot, and does not wait on it otherwise, so a durable frame
    /// wakes only its appends' tasks, not the writer as well (one thread wake-up per frame
    /// fewer: a group commit of a 1,000-shard stream held ~800, BENCHMARKS.md round 9).
    pub reply: oneshot::Sender<Result<(), StorageError>>,
    /// When the writer sent it, and when this thread took it into a group commit.
    pub submitted_at: Instant,
    pub taken_at: Option<Instant>,
}

impl Submission {
    fn appends(&self) -> u64 {
        self.batch.appends.len() as u64
    }

    fn fail(self, error: StorageError) {
        self.split().1.fail(error);
    }

    /// The frame to copy to its segment, and who is told about it.
    fn split(self) -> (SegmentFrame, Answer) {
        let frame = SegmentFrame {
            log: self.log,
            header: self.header,
            frame: self.frame,
        };
        let answer = Answer {
            batch: self.batch,
            reply: self.reply,
            taken_at: self.taken_at,
        };
        (frame, answer)
    }
}

/// A durable frame on its way to its log's segment.
struct SegmentFrame {
    log: LogId,
    header: FrameHeader,
    frame: Vec<u8>,
}

/// What a submission's appends and writer are told once its frame is durable (or failed).
struct Answer {
    batch: Batch,
    reply: oneshot::Sender<Result<(), StorageError>>,
    taken_at: Option<Instant>,
}

impl Answer {
    fn appends(&self) -> u64 {
        self.batch.appends.len() as u64
    }

    fn publish(self, published_at: Instant) {
        self.batch.publish(published_at);
        let _ = self.reply.send(Ok(()));
    }

    /// Fails the batch's appends with `error`, telling the writer first: an append retried
    /// after its failure reaches the writer after the failure did, and the writer reads
    /// outcomes before it numbers a batch, so the retry is numbered from the failed batch
    /// again rather than after it (where the journal would reject it too).
    fn fail(self, error: StorageError) {
        let _ = self.reply.send(Err(error.duplicate()));
        self.batch.fail(&error);
    }
}

pub(crate) enum JournalCommand {
    Append(Submission),
    CreateLog {
        shared: Arc<LogShared>,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    Trim {
        log: LogId,
        cutoff_ms: u64,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    DeleteLog {
        log: LogId,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// `SyncPolicy::Interval`: sync now if anything is unsynced.
    Tick,
    /// The sync thread finished a sync (see `syncer.rs`).
    Synced,
    /// Sync, checkpoint and stop.
    Shutdown {
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// Stop at once without syncing (the store was dropped: behave like a crash).
    Abandon,
    /// Answered once every command queued before it is done (including the checkpoint
    /// decisions that follow an acknowledgement) and the checkpoint job, unless a test
    /// holds it, has finished: for tests that need a quiet store.
    Settle {
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
}

/// Counters for benchmarks and metrics. Monotonic.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub group_commits: AtomicU64,
    pub journal_syncs: AtomicU64,
    pub journal_sync_nanos: AtomicU64,
    pub pipelined_syncs: AtomicU64,
    pub segment_runs: AtomicU64,
    pub segment_flush_rounds: AtomicU64,
    /// Per `crate::JOURNAL_SYNC_BUCKETS_SECONDS` bound, plus the overflow bucket.
    pub journal_sync_buckets: [AtomicU64; crate::JOURNAL_SYNC_BUCKETS_SECONDS.len() + 1],
    pub journal_bytes: AtomicU64,
    pub placed_bytes: AtomicU64,
    /// Bytes of answered frames waiting for their copy to a segment (a gauge).
    pub pending_copy_bytes: AtomicU64,
    pub segment_rolls: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_micros: AtomicU64,
    pub checkpoint_jobs: AtomicU64,
    pub checkpoint_job_micros: AtomicU64,
    /// Per `AppendStage`, in `AppendStage::ALL` order: total nanoseconds and appends.
    pub append_stage_nanos: [AtomicU64; AppendStage::ALL.len()],
    pub append_stage_appends: [AtomicU64; AppendStage::ALL.len()],
}

impl Metrics {
    /// Counts `appends` appends that each spent `elapsed` in `stage`.
    pub fn append_waited(&self, stage: AppendStage, elapsed: Duration, appends: u64) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let index = stage as usize;
        self.append_stage_nanos[index].fetch_add(nanos.saturating_mul(appends), Ordering::Relaxed);
        self.append_stage_appends[index].fetch_add(appends, Ordering::Relaxed);
    }

    /// Counts one successful journal `fdatasync` that took `elapsed`.
    fn journal_synced(&self, elapsed: Duration) {
        self.journal_syncs.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.journal_sync_nanos.fetch_add(nanos, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = crate::JOURNAL_SYNC_BUCKETS_SECONDS.partition_point(|&bound| bound < seconds);
        self.journal_sync_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// The journal thread's view of one log: its active segment, open for writing.
pub(crate) struct LogFiles {
    pub shared: Arc<LogShared>,
    /// The active segment, opened on first write and closed again once the log has gone a
    /// whole checkpoint interval unwritten, so idle shards hold no file descriptor (1,000
    /// streams of 4 shards would otherwise hold 4,000). Clones go to the flusher and the
    /// checkpoint job, which keep the file open for as long as they need it.
    pub active: Option<Arc<File>>,
    /// A second open of the active segment, through which only placed frames are synced.
    /// Its own file description reports every write-back error of the file from its
    /// opening on, even one that the flusher's or the checkpoint job's sync (through
    /// `active`) already reported: a placed frame has no other copy. Opened on the first
    /// placement into the segment, dropped with `active`.
    pub placed_sync: Option<Arc<File>>,
    /// Next sequence the journal accepts for this log (the active segment's end, once
    /// the pending copies are written).
    pub next_sequence: u64,
    pub last_arrival_ms: u64,
    /// Written since the last checkpoint: must be synced before the journal is dropped.
    pub dirty: bool,
    /// Written since the last early-flush round (see `Flusher`).
    pub unflushed: bool,
    /// Durable frames, already answered, still to be copied to the active segment.
    pub pending: PendingCopies,
}

/// A log's durable frames whose copy to its segment waits, so that the frames of several
/// group commits reach the segment in one write. Readers find them in the record cache
/// meanwhile; `Journal::copy_due` copies them before the cache could evict them.
#[derive(Default)]
pub(crate) struct PendingCopies {
    frames: Vec<SegmentFrame>,
    bytes: usize,
    /// `Journal::cache_inserted` before the group commit of the oldest of them.
    since: Option<u64>,
}

impl LogFiles {
    /// The active segment's file, opened if it is not.
    fn active_file(&mut self) -> std::io::Result<Arc<File>> {
        if let Some(file) = &self.active {
            return Ok(file.clone());
        }
        let path = self.active_path();
        let file = Arc::new(OpenOptions::new().read(true).write(true).open(path)?);
        self.active = Some(file.clone());
        Ok(file)
    }

    fn active_len(&self) -> u64 {
        self.shared
            .segments
            .lock()
            .segments
            .last()
            .map_or(FILE_HEADER_LEN as u64, |s| s.len)
    }

    /// Appends one frame to the active segment, rolling first if it is full.
    pub fn append_frame(
        &mut self,
        layer: &dyn WriteLayer,
        config: &StoreConfig,
        metrics: &Metrics,
        header: &FrameHeader,
        frame: &[u8],
    ) -> std::io::Result<()> {
        let offset = self.write_at_end(layer, config, metrics, frame)?;
        self.publish_frame(offset, header);
        Ok(())
    }

    /// Writes `frames` (one or more whole frames) at the end of the active segment, rolling
    /// first if they do not fit, and returns where they start. Not visible until each
    /// frame is published (`publish_frame`), in order.
    fn write_at_end(
        &mut self,
        layer: &dyn WriteLayer,
        config: &StoreConfig,
        metrics: &Metrics,
        frames: &[u8],
    ) -> std::io::Result<u64> {
        self.roll_if_full(layer, config, metrics, frames.len() as u64)?;
        let offset = self.active_len();
        let file = self.active_file()?;
        if let Err(e) = layer.write_all_at(&file, frames, offset) {
            // Best effort: the caller fences anyway, and recovery truncates torn frames.
            let _ = layer.set_len(&file, offset);
            return Err(e);
        }
        self.unflushed = true;
        Ok(offset)
    }

    /// Writes this log's frames of one group commit at the end of its active segment
    /// *without* making them visible: the caller has rolled the segment if they do not
    /// fit, syncs it together with the journal unit, then calls `publish_frame` for each.
    /// On failure the segment is cut back to its visible end (the error says whether that
    /// worked).
    fn write_placed(
        &mut self,
        layer: &dyn WriteLayer,
        frames: &[&[u8]],
    ) -> Result<PlacedFrames, PlaceError> {
        let segment = self.active_file().map_err(PlaceError::Write)?;
        let sync = match &self.placed_sync {
            Some(sync) => sync.clone(),
            None => {
                let path = self.active_path();
                let sync = Arc::new(File::open(path).map_err(PlaceError::Write)?);
                self.placed_sync = Some(sync.clone());
                sync
            }
        };
        let start = self.active_len();
        let mut offset = start;
        let mut offsets = Vec::with_capacity(frames.len());
        for frame in frames {
            if let Err(e) = layer.write_all_at(&segment, frame, offset) {
                return Err(match layer.set_len(&segment, start) {
                    Ok(()) => PlaceError::Write(e),
                    Err(cut) => PlaceError::Uncut(e, cut),
                });
            }
            offsets.push(offset);
            offset += frame.len() as u64;
        }
        Ok(PlacedFrames {
            segment,
            sync,
            start,
            offsets: offsets.into_iter(),
        })
    }

    fn active_path(&self) -> PathBuf {
        self.shared
            .segments
            .lock()
            .segments
            .last()
            .expect("a log always has an active segment")
            .path
            .clone()
    }

    fn roll_if_full(
        &mut self,
        layer: &dyn WriteLayer,
        config: &StoreConfig,
        metrics: &Metrics,
        incoming: u64,
    ) -> std::io::Result<()> {
        let len = self.active_len();
        if len > FILE_HEADER_LEN as u64 && len + incoming > config.segment_bytes_max {
            self.roll(layer, metrics)?;
        }
        Ok(())
    }

    /// Makes a frame written at `offset` of the active segment visible to readers.
    fn publish_frame(&mut self, offset: u64, header: &FrameHeader) {
        self.dirty = true;
        self.last_arrival_ms = self.last_arrival_ms.max(header.arrival_ms);
        let mut segments = self.shared.segments.lock();
        let active = segments
            .segments
            .last_mut()
            .expect("a log always has an active segment");
        active.note_frame(offset, header);
    }

    /// Seals the active segment and starts an empty one at the log's end.
    ///
    /// Order: fdatasync the old segment (so every non-last segment is complete on disk,
    /// which is what lets recovery call any defect in it corruption), create the new one
    /// with its header and fdatasync it, then fsync the directory. A crash in between
    /// leaves either the old segment last (and complete) or an empty new one.
    pub fn roll(&mut self, layer: &dyn WriteLayer, metrics: &Metrics) -> std::io::Result<()> {
        layer.sync_data(&*self.active_file()?)?;
        let (sealed, base) = {
            let segments = self.shared.segments.lock();
            let active = segments
                .segments
                .last()
                .expect("a log always has an active segment");
            (active.clone(), active.end)
        };
        segment::write_index(&sealed, self.shared.id);
        let path = segment::segment_path(&self.shared.dir, base);
        let file = create_with_header(
            layer,
            &path,
            &FileHeader {
                kind: format::KIND_SEGMENT,
                id: self.shared.id,
                base_sequence: base,
                arrival_floor_ms: self.last_arrival_ms,
            },
        )?;
        sync_dir(&self.shared.dir)?;
        self.active = Some(Arc::new(file));
        self.placed_sync = None;
        self.dirty = false;
        self.shared
            .segments
            .lock()
            .segments
            .push(SegmentMeta::new_empty(path, base));
        metrics.segment_rolls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Early write-back of segment data, off the journal thread.
///
/// A checkpoint must fdatasync every segment written since the previous one; left to the
/// checkpoint, that is a whole journal's worth of dirty pages (256 MiB by default) written
/// while every append waits. So every `journal_bytes_max / 8` of journal, the journal
/// thread hands the segments written since the last round to this thread, which syncs
/// them concurrently with appends; the checkpoint then finds little left to write.
/// Durability does not depend on it: the checkpoint still syncs every dirty segment. A
/// failed early sync is remembered and fences the store at the next checkpoint, because
/// after a failed fsync a later one can succeed although pages were lost.
pub(crate) struct Flusher {
    queue: std::sync::mpsc::SyncSender<Vec<Arc<File>>>,
    pub failed: Arc<std::sync::Mutex<Option<std::io::Error>>>,
}

impl Flusher {
    pub fn start(layer: Arc<dyn WriteLayer>) -> std::io::Result<Self> {
        // Two rounds queued at most: if the disk cannot keep up, rounds are skipped and
        // the checkpoint does the work.
        let (queue, rounds) = std::sync::mpsc::sync_channel::<Vec<Arc<File>>>(2);
        let failed = Arc::new(std::sync::Mutex::new(None));
        let failed_by_thread = failed.clone();
        std::thread::Builder::new()
            .name("millstream-flush".into())
            .spawn(move || {
                // Ends when the journal (the sender) is dropped.
                for files in rounds {
                    let refs: Vec<&File> = files.iter().map(|f| &**f).collect();
                    if let Err(e) = sync_files(&*layer, &refs) {
                        tracing::error!(error = %e, "early segment sync failed");
                        if let Ok(mut failed) = failed_by_thread.lock() {
                            failed.get_or_insert(e);
                        }
                    }
                }
            })?;
        Ok(Self { queue, failed })
    }

    pub fn submit(&self, files: Vec<Arc<File>>) {
        if !files.is_empty() {
            let _ = self.queue.try_send(files);
        }
    }

    pub fn take_failure(&self) -> Option<std::io::Error> {
        self.failed.lock().ok().and_then(|mut f| f.take())
    }
}

/// Runs `job` over `items` on up to `CHECKPOINT_SYNC_THREADS` threads; stops at and
/// returns the first error.
fn parallel<T: Sync, E: Send>(
    items: &[T],
    job: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: parking_lot::Mutex<Option<E>> = parking_lot::Mutex::new(None);
    let work = || {
        while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Err(e) = job(item) {
                failure.lock().get_or_insert(e);
                break;
            }
        }
    };
    let threads = items.len().min(CHECKPOINT_SYNC_THREADS);
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    failure.into_inner().map_or(Ok(()), Err)
}

fn sync_files(layer: &dyn WriteLayer, files: &[&File]) -> std::io::Result<()> {
    parallel(files, |file| layer.sync_data(file))
}

/// Threads that fdatasync segments at a checkpoint. Sequential syncs of 1,024 dirty
/// segments at ~1-4 ms each would stall every append for seconds; concurrent ones are
/// merged by the file system's journal into few device flushes.
const CHECKPOINT_SYNC_THREADS: usize = 16;

/// A segment that held unsynced bytes below the new journal's checkpoint, and where that
/// checkpoint put the log's end in it (to persist the index of exactly that prefix).
struct DirtySegment {
    file: Arc<File>,
    shared: Arc<LogShared>,
    path: PathBuf,
    end: u64,
    len: u64,
    max_arrival: Option<u64>,
}

/// The part of a checkpoint that runs off the journal thread, after journal `generation`
/// is durable and in use: make every frame of the older journals durable in the segments,
/// then delete those journals, oldest first. See the module docs for why each crash point
/// in it is safe.
struct CheckpointJob {
    layer: Arc<dyn WriteLayer>,
    metrics: Arc<Metrics>,
    journal_dir: PathBuf,
    generation: u64,
    dirty: Vec<DirtySegment>,
    abandon: Arc<AtomicBool>,
    pause: Arc<AtomicU8>,
}

/// How a checkpoint job ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum JobEnd {
    Done,
    /// The store was dropped (a simulated crash): stopped between two steps.
    Abandoned,
}

type JobResult = Result<JobEnd, (PathBuf, std::io::Error)>;

impl CheckpointJob {
    fn spawn(self) -> std::io::Result<std::thread::JoinHandle<JobResult>> {
        std::thread::Builder::new()
            .name("millstream-checkpoint".into())
            .spawn(move || self.run())
    }

    /// False when the job must stop here as if the process had died (the store was
    /// dropped); otherwise waits while a test holds this step (`CheckpointPause`).
    fn step(&self, at: crate::CheckpointPause) -> bool {
        loop {
            if self.abandon.load(Ordering::SeqCst) {
                return false;
            }
            if self.pause.load(Ordering::SeqCst) != at as u8 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn run(self) -> JobResult {
        use crate::CheckpointPause as P;
        let started = Instant::now();
        if !self.step(P::BeforeSegmentSync) {
            return Ok(JobEnd::Abandoned);
        }
        // Two halves only so that a test can stop between them.
        let (first, second) = self.dirty.split_at(self.dirty.len() / 2);
        let sync = |half: &[DirtySegment]| {
            parallel(half, |d| {
                self.layer
                    .sync_data(&d.file)
                    .map_err(|e| (d.shared.dir.clone(), e))
            })
        };
        sync(first)?;
        if !self.step(P::MidSegmentSync) {
            return Ok(JobEnd::Abandoned);
        }
        sync(second)?;
        for d in &self.dirty {
            persist_prefix_index(d);
        }
        if !self.step(P::BeforeJournalDelete) {
            return Ok(JobEnd::Abandoned);
        }
        // Every frame of every older journal is now in fsynced segments. Oldest first, with
        // a directory sync after each: whatever a crash leaves is a contiguous run of
        // journals ending with the current one, which is what recovery replays.
        let dir = &self.journal_dir;
        let mut older: Vec<u64> = list_journals(dir)
            .map_err(|e| (dir.clone(), e))?
            .into_iter()
            .filter(|&g| g < self.generation)
            .collect();
        older.sort_unstable();
        for (i, generation) in older.iter().enumerate() {
            if i > 0 && !self.step(P::MidJournalDelete) {
                return Ok(JobEnd::Abandoned);
            }
            let path = journal_path(dir, *generation);
            if let Err(e) = std::fs::remove_file(&path).and_then(|()| sync_dir(dir)) {
                // Harmless: recovery replays it (its frames are skipped, being in the
                // segments) and the next checkpoint deletes it.
                tracing::warn!(path = %path.display(), error = %e, "could not delete old journal");
                break;
            }
        }
        self.metrics.checkpoint_jobs.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .checkpoint_job_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(JobEnd::Done)
    }
}

/// Persists the index of the synced prefix `[base, d.end)` of a segment, so that recovery
/// scans only what comes after it. The journal thread kept appending meanwhile, so the
/// live index is cut back to that prefix (recovery trusts an active segment's index only
/// when it ends exactly at the checkpointed sequence). Skipped if the segment is no longer
/// the active one: a roll has written its full index, and retention may have deleted it.
fn persist_prefix_index(d: &DirtySegment) {
    let meta = {
        let segments = d.shared.segments.lock();
        match segments.segments.last() {
            Some(active) if active.path == d.path && active.end >= d.end && d.end > active.base => {
                let mut meta = active.clone();
                meta.index.retain(|e| e.sequence < d.end);
                meta.end = d.end;
                meta.len = d.len;
                meta.max_arrival = d.max_arrival;
                meta
            }
            _ => return,
        }
    };
    segment::write_index(&meta, d.shared.id);
}

/// Generations of the journal files in `dir`, unsorted.
pub(crate) fn list_journals(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut generations = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(generation) = name
            .strip_suffix(".wal")
            .and_then(|g| u64::from_str_radix(g, 16).ok())
        {
            generations.push(generation);
        }
    }
    Ok(generations)
}

/// Creates (or replaces) a file holding just `header`, durably.
pub(crate) fn create_with_header(
    layer: &dyn WriteLayer,
    path: &Path,
    header: &FileHeader,
) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    layer.write_all_at(&file, &format::encode_file_header(header), 0)?;
    layer.sync_data(&file)?;
    Ok(file)
}

pub(crate) struct Journal {
    pub config: Arc<StoreConfig>,
    pub layer: Arc<dyn WriteLayer>,
    pub metrics: Arc<Metrics>,
    pub handles: Arc<HandleCache>,
    /// The store's record cache, which `publish` fills before it publishes a unit.
    cache: Arc<RecordCache>,
    /// Cache bytes inserted by this thread since open: the cache evicts in insertion
    /// order, so this places each pending copy in its eviction order.
    cache_inserted: u64,
    /// Logs with pending copies, by `PendingCopies::since` (entries of logs copied since
    /// are stale and skipped).
    pending_logs: std::collections::VecDeque<(u64, LogId)>,
    /// Bytes of all pending copies.
    pending_bytes: usize,
    /// Reused for the runs `copy_runs` writes.
    run_buffer: Vec<u8>,
    pub abandon: Arc<AtomicBool>,
    /// `crate::CheckpointPause` as u8 (0: none), for crash tests.
    pub pause: Arc<AtomicU8>,
    pub journal_dir: PathBuf,
    pub logs_dir: PathBuf,
    /// Shared with the sync thread, which syncs through this same file description.
    pub file: Arc<File>,
    pub path: PathBuf,
    pub generation: u64,
    /// End of the last complete unit: where the next one goes.
    pub len: u64,
    pub next_commit: u64,
    pub logs: HashMap<LogId, LogFiles>,
    pub fenced: Option<String>,
    pub unsynced: bool,
    pub last_sync: Instant,
    /// Do not retry a failed checkpoint before the journal reaches this length.
    pub checkpoint_retry_at: u64,
    flusher: Flusher,
    /// Journal bytes since the last early-flush round.
    bytes_since_flush: u64,
    /// Journal bytes since the last round at which the next one is due, once more files
    /// were written than `journal_bytes_max / 8` covers (0: not computed yet).
    flush_due_at: u64,
    /// The background part of the last checkpoint, while it runs (or until reaped).
    job: Option<std::thread::JoinHandle<JobResult>>,
    /// Held for the life of the thread: one store per directory.
    pub _lock: File,
    buffer: Vec<u8>,
    /// Zeros written and synced up to here (see `space.rs`); units below it overwrite
    /// them and sync without a metadata commit.
    pub prepared_to: u64,
    space: SpacePreparer,
    /// The running fill, if any (its range starts at or past `prepared_to` when it is for
    /// the current generation).
    filling: Option<RunningFill>,
    syncer: Syncer,
    /// The unit whose sync runs on the sync thread, if any: written, not yet durable.
    syncing: Option<WrittenUnit>,
    /// Units written but not yet published or failed: a checkpoint needs none (it notes
    /// every log's end as in the segments, and starts a new journal).
    unpublished: usize,
}

/// A log's consecutive frames are copied to its segment in one write of at most this many
/// bytes: under concurrent appends a unit often carries several frames of a log (one per
/// writer batch in flight), and pending copies gather those of several units; each would
/// otherwise be a `pwrite` of its own on the journal thread. Chosen, not tuned: runs
/// measured were of small frames (PutRecord), and PutRecords of 1 KiB records were
/// unchanged with it (BENCHMARKS.md, round 7).
const RUN_BYTES_MAX: usize = 256 << 10;

/// Writes one log's `frames` at the end of its active segment, as runs that fit it (rolling
/// in between as frame-by-frame copies would), and makes each visible.
fn copy_runs(
    files: &mut LogFiles,
    layer: &dyn WriteLayer,
    config: &StoreConfig,
    metrics: &Metrics,
    buffer: &mut Vec<u8>,
    frames: &[&SegmentFrame],
) -> std::io::Result<()> {
    let mut rest = frames;
    while let Some(first) = rest.first() {
        files.roll_if_full(layer, config, metrics, first.frame.len() as u64)?;
        let room = config.segment_bytes_max.saturating_sub(files.active_len());
        let mut bytes = first.frame.len() as u64;
        let mut count = 1;
        for frame in &rest[1..] {
            let len = frame.frame.len() as u64;
            if bytes + len > room || bytes + len > RUN_BYTES_MAX as u64 {
                break;
            }
            bytes += len;
            count += 1;
        }
        let (run, after) = rest.split_at(count);
        let start = if let [only] = run {
            files.write_at_end(layer, config, metrics, &only.frame)?
        } else {
            buffer.clear();
            for frame in run {
                buffer.extend_from_slice(&frame.frame);
            }
            metrics.segment_runs.fetch_add(1, Ordering::Relaxed);
            files.write_at_end(layer, config, metrics, buffer)?
        };
        let mut offset = start;
        for frame in run {
            files.publish_frame(offset, &frame.header);
            offset += frame.frame.len() as u64;
        }
        rest = after;
    }
    Ok(())
}

/// A group commit written to the journal, waiting for its sync.
struct WrittenUnit {
    accepted: Vec<Submission>,
    /// Per log, the expected sequence before this unit, to roll back on failure.
    rollback: HashMap<LogId, u64>,
    /// The journal's length before the unit, the unit's length and commit number.
    start: u64,
    len: u64,
    commit: u64,
}

impl Journal {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<StoreConfig>,
        layer: Arc<dyn WriteLayer>,
        metrics: Arc<Metrics>,
        handles: Arc<HandleCache>,
        cache: Arc<RecordCache>,
        journal_dir: PathBuf,
        logs_dir: PathBuf,
        file: File,
        path: PathBuf,
        generation: u64,
        len: u64,
        next_commit: u64,
        lock: File,
    ) -> std::io::Result<Self> {
        let flusher = Flusher::start(layer.clone())?;
        let space = SpacePreparer::start(layer.clone())?;
        let syncer = Syncer::start(layer.clone())?;
        Ok(Self {
            config,
            layer,
            metrics,
            handles,
            cache,
            abandon: Arc::new(AtomicBool::new(false)),
            pause: Arc::new(AtomicU8::new(0)),
            journal_dir,
            logs_dir,
            file: Arc::new(file),
            path,
            generation,
            len,
            next_commit,
            logs: HashMap::new(),
            fenced: None,
            unsynced: false,
            last_sync: Instant::now(),
            checkpoint_retry_at: 0,
            _lock: lock,
            buffer: Vec::new(),
            flusher,
            bytes_since_flush: 0,
            flush_due_at: 0,
            job: None,
            prepared_to: len,
            space,
            filling: None,
            syncer,
            syncing: None,
            unpublished: 0,
            cache_inserted: 0,
            pending_logs: std::collections::VecDeque::new(),
            pending_bytes: 0,
            run_buffer: Vec::new(),
        })
    }

    /// `queue` is a sender of `rx`'s channel, for the sync thread's wake-ups.
    pub fn run(
        mut self,
        mut rx: mpsc::Receiver<JournalCommand>,
        queue: mpsc::WeakSender<JournalCommand>,
    ) {
        self.syncer.wake_through(queue);
        let mut group: Vec<Submission> = Vec::new();
        let mut deferred: Option<JournalCommand> = None;
        loop {
            // A unit syncing meanwhile wakes this with `Synced` when its sync ends.
            let command = match deferred.take() {
                Some(command) => command,
                None => match rx.blocking_recv() {
                    Some(command) => command,
                    None => break,
                },
            };
            if self.abandon.load(Ordering::SeqCst) {
                break;
            }
            if !matches!(command, JournalCommand::Append(_) | JournalCommand::Synced) {
                // Controls see every earlier append finished, as without pipelining.
                self.finish_syncing();
            }
            match command {
                JournalCommand::Append(submission) => {
                    let taken_at = Instant::now();
                    let mut bytes = submission.frame.len();
                    group.push(self.take(submission, taken_at));
                    while bytes < GROUP_BYTES_MAX {
                        match rx.try_recv() {
                            Ok(JournalCommand::Append(submission)) => {
                                bytes += submission.frame.len();
                                group.push(self.take(submission, taken_at));
                            }
                            // Controls keep their place in the queue: after this group.
                            Ok(other) => {
                                deferred = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let more_queued = || deferred.is_none() && !rx.is_empty();
                    self.commit(&mut group, more_queued);
                }
                JournalCommand::CreateLog { shared, reply } => {
                    let _ = reply.send(self.create_log(shared));
                }
                JournalCommand::Trim {
                    log,
                    cutoff_ms,
                    reply,
                } => {
                    let _ = reply.send(self.trim(log, cutoff_ms));
                }
                JournalCommand::DeleteLog { log, reply } => {
                    let _ = reply.send(self.delete_log(log));
                }
                JournalCommand::Synced => {
                    // A stale ping (its unit was taken by a commit since) finds nothing.
                    if self.syncing.is_some()
                        && let Some(outcome) = self.syncer.try_wait()
                    {
                        self.synced(outcome);
                    }
                }
                JournalCommand::Tick => {
                    if self.unsynced && self.fenced.is_none() {
                        self.sync_journal();
                    }
                }
                JournalCommand::Shutdown { reply } => {
                    let _ = reply.send(self.shutdown());
                    break;
                }
                JournalCommand::Abandon => break,
                JournalCommand::Settle { reply } => {
                    let held = self.pause.load(Ordering::SeqCst) != 0;
                    let settled = self
                        .copy_all_pending()
                        .and_then(|()| if held { Ok(()) } else { self.reap_job() });
                    let _ = reply.send(settled);
                }
            }
        }
        // Whatever is still queued is answered by dropping its senders (appends map
        // that to `Closed`): nothing of it was made durable.
        //
        // A checkpoint job still running stops at its next step once the store is dropped
        // (`abandon`), like a crash would stop it. Wait for it while this thread still
        // holds the directory lock, so the next `open` never races with its deletions.
        if let Some(job) = self.job.take() {
            let _ = job.join();
        }
        // Likewise a running fill: it writes zeros past what this journal wrote, which
        // must not land on units the next `open` in this process writes there.
        if let Some(fill) = &self.filling {
            fill.stop();
        }
        self.collect_fill(true);
    }

    /// Notes how long a submission waited in the queue before a group commit took it.
    fn take(&self, mut submission: Submission, taken_at: Instant) -> Submission {
        self.metrics.append_waited(
            AppendStage::JournalQueue,
            taken_at.saturating_duration_since(submission.submitted_at),
            submission.appends(),
        );
        submission.taken_at = Some(taken_at);
        submission
    }

    fn fence_error(&self) -> Option<StorageError> {
        self.fenced.as_ref().map(|reason| {
            StorageError::io(
                &self.path,
                std::io::Error::other(format!(
                    "journal fenced after an earlier I/O failure ({reason}); reopen the store"
                )),
            )
        })
    }

    fn fence(&mut self, reason: String) {
        tracing::error!(journal = %self.path.display(), %reason, "fencing the store's journal");
        if self.fenced.is_none() {
            self.fenced = Some(reason);
        }
    }

    /// One group commit. See the module docs for the failure rules.
    fn commit(&mut self, group: &mut Vec<Submission>, more_queued: impl Fn() -> bool) {
        // Placement writes straight into segments, behind which the syncing unit's frames
        // are still to be copied: let that unit finish first.
        if self.syncing.is_some() && self.may_place(group) {
            self.finish_syncing();
        }
        // A unit still syncing afterwards is this group's, handed to the sync thread; any
        // other is finished now, so every command handled takes the sync's outcome (the
        // sync thread's wake-up may have been dropped on a full queue).
        if !self.commit_group(group, more_queued) {
            self.finish_syncing();
        }
    }

    /// `commit`, returning whether it left its unit syncing on the sync thread.
    fn commit_group(
        &mut self,
        group: &mut Vec<Submission>,
        more_queued: impl Fn() -> bool,
    ) -> bool {
        // A failed background checkpoint fences now, not at the next checkpoint: the
        // failed segment sync may have dropped pages that readers would miss.
        if self.job.as_ref().is_some_and(|job| job.is_finished()) {
            let _ = self.reap_job();
        }
        if let Some(error) = self.fence_error() {
            for submission in group.drain(..) {
                submission.fail(error.duplicate());
            }
            return false;
        }
        let mut accepted = Vec::with_capacity(group.len());
        // Per log, the expected sequence before this group, to roll back on failure.
        let mut rollback: HashMap<LogId, u64> = HashMap::new();
        for submission in group.drain(..) {
            let Some(files) = self.logs.get_mut(&submission.log) else {
                let log = submission.log;
                submission.fail(StorageError::LogNotFound(log));
                continue;
            };
            if submission.header.first_sequence != files.next_sequence {
                // An earlier batch of this log failed; this one was numbered after it.
                submission.fail(StorageError::io(
                    &self.path,
                    std::io::Error::other("an earlier append to this log failed; retry"),
                ));
                continue;
            }
            // Open the segment before the frame is made durable: failing here (say, out of
            // descriptors) fails this append alone, where failing after the journal write
            // would have to fence the store.
            if let Err(e) = files.active_file() {
                let error = StorageError::io(&files.shared.dir, e);
                submission.fail(error);
                continue;
            }
            rollback
                .entry(submission.log)
                .or_insert(files.next_sequence);
            files.next_sequence = submission.header.end_sequence();
            accepted.push(submission);
        }
        if accepted.is_empty() {
            return false;
        }
        let placed = match self.place_large_frames(&accepted) {
            Ok(placed) => placed,
            Err(error) => {
                self.fail_group(rollback, accepted, &error);
                return false;
            }
        };

        let mut buffer = std::mem::take(&mut self.buffer);
        format::begin_unit(&mut buffer);
        // Without placed frames the unit is the version-2 layout, byte for byte.
        let kind = if placed.is_empty() {
            format::UNIT_FRAMES
        } else {
            format::UNIT_PLACED
        };
        for submission in &accepted {
            if placed.contains_key(&submission.log) {
                format::push_segment_entry(&mut buffer, &submission.frame);
            } else if kind == format::UNIT_PLACED {
                format::push_inline_entry(&mut buffer, &submission.frame);
            } else {
                buffer.extend_from_slice(&submission.frame);
            }
        }
        format::finish_unit(&mut buffer, self.next_commit, kind);

        let placed_files: Vec<Arc<File>> = placed.values().map(|p| p.sync.clone()).collect();
        self.collect_fill(false);
        if let Some(fill) = &self.filling
            && fill.generation == self.generation
            && self.len + buffer.len() as u64 > self.prepared_to
        {
            // The unit would reach into the range being filled with zeros: take what is
            // done (the fill stops after its current step).
            fill.stop();
            self.collect_fill(true);
        }
        let result = self.write_journal(&buffer);
        let unit_len = buffer.len() as u64;
        self.buffer = buffer;
        if let Err(error) = result {
            self.unplace(&placed);
            self.fail_group(rollback, accepted, &error);
            return false;
        }
        let unit = WrittenUnit {
            accepted,
            rollback,
            start: self.len,
            len: unit_len,
            commit: self.next_commit,
        };
        self.len += unit_len;
        self.next_commit += 1;
        self.unpublished += 1;
        self.metrics.group_commits.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .journal_bytes
            .fetch_add(unit_len, Ordering::Relaxed);

        // The unit before this one was handed to the sync thread before this one was
        // written: its sync does not cover this unit, so this one needs its own.
        if let Some(previous) = self.syncing.take() {
            let elapsed = match self.syncer.wait() {
                Ok(elapsed) => elapsed,
                Err(e) => {
                    self.sync_failed(&e, vec![previous, unit]);
                    return false;
                }
            };
            self.metrics.journal_synced(elapsed);
            self.last_sync = Instant::now();
            let previous_len = previous.len;
            if self.pipelines(more_queued(), &placed) {
                self.hand_over(unit);
                self.publish(previous, HashMap::new());
                self.settle(previous_len);
                return true;
            }
            // No checkpoint here: it would start a new journal with this unit written to
            // the old one but not synced (`sync_and_publish` syncs the journal in use).
            self.publish(previous, HashMap::new());
        } else if self.pipelines(more_queued(), &placed) {
            self.hand_over(unit);
            return true;
        }
        self.sync_and_publish(unit, placed, &placed_files);
        false
    }

    /// Whether the unit just written should be synced on the sync thread while the journal
    /// thread goes on with the next group. Only when more is already queued: the hand-over
    /// and the sync thread's answer are two thread wake-ups (~40 us each at p50 on the
    /// reference VM), which only pay off when the journal thread has work for the time
    /// the sync takes. Handing over whenever appends had arrived during the previous sync
    /// measured 0.93x on PutRecord at 32 connections; this rule 1.07-1.11x (BENCHMARKS.md,
    /// round 6). Never with placed frames (their segments sync with the unit, and the
    /// next group's placement would write behind frames still to be copied), nor once a
    /// checkpoint is due (it runs between two units, with no sync outstanding).
    fn pipelines(&self, more_queued: bool, placed: &HashMap<LogId, PlacedFrames>) -> bool {
        self.config.sync_policy == SyncPolicy::Always
            && more_queued
            && placed.is_empty()
            && self.fenced.is_none()
            && self.len <= self.config.journal_bytes_max
    }

    /// Starts the sync of a written unit on the sync thread.
    fn hand_over(&mut self, unit: WrittenUnit) {
        self.metrics.pipelined_syncs.fetch_add(1, Ordering::Relaxed);
        self.syncer.start_sync(self.file.clone());
        self.syncing = Some(unit);
    }

    /// Waits for the unit on the sync thread, if any, and publishes it (or fails it).
    fn finish_syncing(&mut self) {
        if self.syncing.is_some() {
            let outcome = self.syncer.wait();
            self.synced(outcome);
        }
    }

    /// Publishes (or fails) the syncing unit with its sync's outcome.
    fn synced(&mut self, outcome: std::io::Result<Duration>) {
        let Some(unit) = self.syncing.take() else {
            return;
        };
        match outcome {
            Ok(elapsed) => {
                self.metrics.journal_synced(elapsed);
                self.last_sync = Instant::now();
                let unit_len = unit.len;
                self.publish(unit, HashMap::new());
                self.settle(unit_len);
            }
            Err(e) => self.sync_failed(&e, vec![unit]),
        }
    }

    /// Syncs a written unit on this thread as the policy says (with the segments holding
    /// its placed frames), then publishes it.
    fn sync_and_publish(
        &mut self,
        unit: WrittenUnit,
        placed: HashMap<LogId, PlacedFrames>,
        placed_files: &[Arc<File>],
    ) {
        match self.config.sync_policy {
            SyncPolicy::Always => {
                let started = Instant::now();
                // Concurrent syncs share the file system's journal commit and keep the
                // device busy with all of them at once.
                let files: Vec<&File> = std::iter::once(&*self.file)
                    .chain(placed_files.iter().map(|f| &**f))
                    .collect();
                if let Err(e) = sync_files(&*self.layer, &files) {
                    self.unplace(&placed);
                    self.sync_failed(&e, vec![unit]);
                    return;
                }
                self.metrics.journal_synced(started.elapsed());
                self.last_sync = Instant::now();
            }
            SyncPolicy::Interval(interval) => {
                self.unsynced = true;
                if self.last_sync.elapsed() >= interval {
                    self.sync_journal();
                }
            }
            SyncPolicy::Never => {}
        }
        let unit_len = unit.len;
        self.publish(unit, placed);
        self.settle(unit_len);
    }

    /// A failed journal sync: fence, cut the journal back to before the first of `units`
    /// (each written after the last good sync, oldest first) and fail all of them.
    fn sync_failed(&mut self, error: &std::io::Error, units: Vec<WrittenUnit>) {
        self.fence(format!("fdatasync failed: {error}"));
        let Some(first) = units.first() else {
            return;
        };
        // Best effort: cut the units so a reopen does not bring back what we report as
        // failed. If the cut does not stick, recovery replays them; an `Io` answer means
        // "may or may not be durable" (like a timeout).
        let (start, commit) = (first.start, first.commit);
        let _ = self.layer.set_len(&self.file, start);
        self.len = start;
        self.prepared_to = start;
        self.next_commit = commit;
        let failure = StorageError::io(
            &self.path,
            std::io::Error::new(error.kind(), error.to_string()),
        );
        // Newest first, so each log ends at the sequence the oldest unit expected.
        for unit in units.into_iter().rev() {
            self.unpublished -= 1;
            self.fail_group(unit.rollback, unit.accepted, &failure);
        }
    }

    /// Makes a durable unit readable and answers its submissions, then copies its frames
    /// to their segments or leaves them pending (and starts early segment flushes).
    /// `settle` follows once no later unit is written but unpublished, except the one
    /// syncing.
    ///
    /// When the cache holds the whole unit, its appends are answered before any segment
    /// copy, and the copies wait until a log has `COALESCE_BYTES` pending, until the cache
    /// would evict them, or until a checkpoint, trim or placement needs the segment whole.
    /// Every reader at the tail reads them from the cache; a reader behind the cache reads
    /// the segments up to where they end, then the cache (`Store::read`), so no reader
    /// misses a record. On a 1,000-shard stream a unit's ~800 frames were each a `pwrite`
    /// extending its segment, ~40 % of the server's CPU per record (BENCHMARKS.md, round
    /// 10). Otherwise the copies come first, and a frame whose copy failed is reported
    /// failed rather than published.
    fn publish(&mut self, unit: WrittenUnit, placed: HashMap<LogId, PlacedFrames>) {
        let unit_len = unit.len;
        self.unpublished -= 1;
        let (frames, mut answers): (Vec<SegmentFrame>, Vec<Answer>) =
            unit.accepted.into_iter().map(Submission::split).unzip();
        let batches: Vec<_> = answers
            .iter_mut()
            .map(|answer| answer.batch.take_records())
            .collect();
        let unit_bytes: u64 = batches
            .iter()
            .map(|(_, _, records)| crate::cache::cached_bytes(records))
            .sum();
        let held = self.cache.holds(unit_bytes);
        // A unit synced after a later failure fenced the store (a segment write of the
        // unit before it failed): its frames would land behind the missing one. Pending
        // copies go first, before the cache evicts them (all of them, when the unit is
        // more than the cache holds).
        let ready = match self.fence_error() {
            Some(error) => Err(error),
            None if held => {
                let evicted_below =
                    (self.cache_inserted + unit_bytes).saturating_sub(self.cache.max_bytes());
                self.copy_due(evicted_below)
            }
            None => self.copy_all_pending(),
        };
        if let Err(error) = ready {
            for answer in answers {
                answer.fail(error.duplicate());
            }
        } else {
            let position = self.cache_inserted;
            // The cache takes the whole unit under one lock (a unit of a 1,000-shard
            // stream holds ~800 batches), before any of it is published.
            self.cache.insert_many(batches);
            self.cache_inserted += unit_bytes;
            if held {
                self.answer(answers, Ok(()));
                self.defer_copies(frames, placed, position);
            } else {
                let copied = self.copy_to_segments(&frames, placed);
                self.answer(answers, copied);
            }
        }
        self.bytes_since_flush += unit_len;
        self.flush_early_if_due();
    }

    /// Starts an early flush round once the journal has grown by `journal_bytes_max / 8`
    /// since the last one, and by `FLUSH_BYTES_PER_FILE` for each segment file the round
    /// would sync.
    fn flush_early_if_due(&mut self) {
        let every = (self.config.journal_bytes_max / 8).max(1 << 20);
        if self.bytes_since_flush < every.max(self.flush_due_at) {
            return;
        }
        let unflushed = self.logs.values().filter(|f| f.unflushed).count() as u64;
        let due_at = every.max(unflushed * FLUSH_BYTES_PER_FILE);
        if self.bytes_since_flush < due_at {
            self.flush_due_at = due_at;
            return;
        }
        self.bytes_since_flush = 0;
        self.flush_due_at = 0;
        let files = self
            .logs
            .values_mut()
            .filter(|f| f.unflushed)
            .filter_map(|f| {
                f.unflushed = false;
                // A closed file was not written for a whole checkpoint interval: the
                // checkpoint that noted its last writes syncs it.
                f.active.clone()
            })
            .collect();
        self.metrics
            .segment_flush_rounds
            .fetch_add(1, Ordering::Relaxed);
        self.flusher.submit(files);
    }

    /// Leaves an answered unit's frames pending (placed frames are in their segments
    /// already and are made visible there), then copies the logs that reached
    /// `COALESCE_BYTES`, and the oldest ones while more than `PENDING_BYTES_MAX` wait. A
    /// failed copy fences the store; the frames are durable in the journal and readable
    /// from the cache, which fenced, takes nothing more, and a reopen copies them again.
    fn defer_copies(
        &mut self,
        frames: Vec<SegmentFrame>,
        placed: HashMap<LogId, PlacedFrames>,
        position: u64,
    ) {
        let frames = if placed.is_empty() {
            frames
        } else {
            // Placement copied their logs' pending frames first: in order.
            let (in_place, rest): (Vec<_>, Vec<_>) = frames
                .into_iter()
                .partition(|frame| placed.contains_key(&frame.log));
            if self.copy_to_segments(&in_place, placed).is_err() {
                return;
            }
            rest
        };
        let mut full = Vec::new();
        for frame in frames {
            let log = frame.log;
            let files = self.logs.get_mut(&log).expect("accepted above");
            let pending = &mut files.pending;
            if pending.since.is_none() {
                pending.since = Some(position);
                self.pending_logs.push_back((position, log));
            }
            let before = pending.bytes;
            pending.bytes += frame.frame.len();
            self.pending_bytes += frame.frame.len();
            pending.frames.push(frame);
            if before < COALESCE_BYTES && pending.bytes >= COALESCE_BYTES {
                full.push(log);
            }
        }
        if self.copy_pending(&full).is_ok() {
            let _ = self.copy_due(0);
        }
        self.note_pending();
    }

    fn note_pending(&self) {
        self.metrics
            .pending_copy_bytes
            .store(self.pending_bytes as u64, Ordering::Relaxed);
    }

    /// Copies the pending frames of the logs whose oldest pending frame went into the
    /// cache before `evicted_below` (`cache_inserted` units), then of the oldest others
    /// while more than `PENDING_BYTES_MAX` are pending.
    fn copy_due(&mut self, evicted_below: u64) -> Result<(), StorageError> {
        let mut due = Vec::new();
        let mut left = self.pending_bytes;
        while let Some(&(since, log)) = self.pending_logs.front() {
            if let Some(files) = self.logs.get(&log)
                && files.pending.since == Some(since)
            {
                if since >= evicted_below && left <= PENDING_BYTES_MAX {
                    break;
                }
                left = left.saturating_sub(files.pending.bytes);
                due.push(log);
            }
            self.pending_logs.pop_front();
        }
        self.copy_pending(&due)
    }

    /// Copies every pending frame (before a checkpoint, and for tests).
    fn copy_all_pending(&mut self) -> Result<(), StorageError> {
        let logs: Vec<LogId> = self.pending_logs.drain(..).map(|(_, log)| log).collect();
        self.copy_pending(&logs)
    }

    /// Copies the pending frames of `logs` to their segments (each log's in one write
    /// where they fit a run). A failure fences the store.
    fn copy_pending(&mut self, logs: &[LogId]) -> Result<(), StorageError> {
        if let Some(error) = self.fence_error() {
            return Err(error);
        }
        let mut frames = Vec::new();
        for log in logs {
            if let Some(files) = self.logs.get_mut(log) {
                let pending = std::mem::take(&mut files.pending);
                self.pending_bytes -= pending.bytes;
                frames.extend(pending.frames);
            }
        }
        if frames.is_empty() {
            return Ok(());
        }
        self.note_pending();
        self.copy_to_segments(&frames, HashMap::new())
    }

    /// Publishes the answers once their frames were copied; if the copy failed, fails them
    /// all: durable in the journal (a reopen recovers them), but maybe not readable now, so
    /// the ambiguous "may or may not be durable" answer rather than records readers
    /// cannot find.
    fn answer(&self, answers: Vec<Answer>, copied: Result<(), StorageError>) {
        if let Err(error) = copied {
            for answer in answers {
                answer.fail(error.duplicate());
            }
            return;
        }
        let published_at = Instant::now();
        for answer in answers {
            if let Some(taken_at) = answer.taken_at {
                self.metrics.append_waited(
                    AppendStage::GroupCommit,
                    published_at.saturating_duration_since(taken_at),
                    answer.appends(),
                );
            }
            answer.publish(published_at);
        }
    }

    /// Copies durable frames to the end of their logs' segments (placed frames are there
    /// already) and makes them visible to segment readers, each log's in order. A log's
    /// consecutive frames go in one write as far as they fit the active segment (and
    /// `RUN_BYTES_MAX`), so segments roll at the size they would frame by frame. A failed
    /// write fences the store.
    fn copy_to_segments(
        &mut self,
        frames: &[SegmentFrame],
        mut placed: HashMap<LogId, PlacedFrames>,
    ) -> Result<(), StorageError> {
        let mut by_log: HashMap<LogId, Vec<&SegmentFrame>> = HashMap::new();
        let mut order = Vec::new();
        for frame in frames {
            by_log
                .entry(frame.log)
                .or_insert_with(|| {
                    order.push(frame.log);
                    Vec::new()
                })
                .push(frame);
        }
        for log in order {
            let frames = &by_log[&log];
            let files = self.logs.get_mut(&log).expect("accepted above");
            if let Some(placed) = placed.get_mut(&log) {
                for frame in frames {
                    let offset = placed.offsets.next().expect("one offset per placed frame");
                    files.publish_frame(offset, &frame.header);
                }
                continue;
            }
            let copied = copy_runs(
                files,
                &*self.layer,
                &self.config,
                &self.metrics,
                &mut self.run_buffer,
                frames,
            );
            if let Err(e) = copied {
                let path = files.shared.dir.clone();
                self.fence(format!("segment write in {} failed: {e}", path.display()));
                return Err(StorageError::io(&path, e));
            }
        }
        Ok(())
    }

    /// What follows a published group commit once no unit of the journal is left
    /// unpublished but the one syncing: the checkpoint if one is due, space ahead.
    fn settle(&mut self, unit_len: u64) {
        // While the previous checkpoint's job runs, the next one waits (it must not delete
        // journals whose frames that job has not synced yet) and the journal grows. Only
        // far beyond its size does the commit path wait for the job: the disk is then not
        // keeping up, and an unbounded journal would make recovery unbounded too.
        // (A job a test holds is never waited for here: the test could not go on to drop
        // the store, which is what releases it.)
        let job_running = self.job.as_ref().is_some_and(|job| !job.is_finished());
        // A checkpoint starts a new journal: never while a unit of this one is syncing
        // (`pipelines` stops handing units over once one is due).
        let overdue = self.len
            > self
                .config
                .journal_bytes_max
                .saturating_mul(JOURNAL_OVERDUE_FACTOR)
            && self.pause.load(Ordering::SeqCst) == 0;
        // Once the store is dropped (`abandon`), this thread behaves as if the process had
        // died at that moment: no new journal, even when the drop just released a held job.
        if self.len > self.config.journal_bytes_max
            && self.syncing.is_none()
            && self.len >= self.checkpoint_retry_at
            && self.fenced.is_none()
            && !self.abandon.load(Ordering::SeqCst)
            && (!job_running || overdue)
            && let Err(e) = self.checkpoint()
        {
            tracing::warn!(error = %e, "journal checkpoint failed; will retry");
            self.checkpoint_retry_at = self.len + self.config.journal_bytes_max / 4;
        }
        // After the checkpoint: a new journal needs its space from the start.
        self.prepare_space(unit_len);
    }

    /// Writes one unit at the end of the journal (not synced). On failure the journal is
    /// cut back to its last complete unit.
    fn write_journal(&mut self, unit: &[u8]) -> Result<(), StorageError> {
        if let Err(e) = self.layer.write_all_at(&self.file, unit, self.len) {
            // Cut the torn unit off so recovery (and the next commit) starts clean.
            if let Err(t) = self.layer.set_len(&self.file, self.len) {
                self.fence(format!(
                    "write failed ({e}) and truncating back failed ({t})"
                ));
            }
            self.prepared_to = self.len;
            return Err(StorageError::io(&self.path, e));
        }
        Ok(())
    }

    /// Bytes of zeros kept written ahead of the last unit: between one and two of these.
    /// Small journals (tests) get small chunks: every checkpoint starts a new file.
    fn space_chunk(&self) -> u64 {
        let scaled = (self.config.journal_bytes_max / 16).max(4 << 10);
        self.config.journal_space_ahead_bytes.min(scaled)
    }

    /// Starts writing zeros past the last unit when less than a chunk is left, after a
    /// small unit. Only small units gain (a large one's sync is dominated by its data, and
    /// under a stream of them the zeros would double the journal's writes), and only with
    /// `SyncPolicy::Always`: the weaker policies sync rarely, so their syncs gain little.
    fn prepare_space(&mut self, last_unit_len: u64) {
        if last_unit_len > SMALL_UNIT_BYTES
            || self.filling.is_some()
            || self.fenced.is_some()
            || self.config.sync_policy != SyncPolicy::Always
            || self.space_chunk() == 0
            || self.prepared_to.saturating_sub(self.len) >= self.space_chunk()
        {
            return;
        }
        let from = self.prepared_to.max(self.len);
        // A file description of its own (not a `try_clone`, which shares ours): a failed
        // fill sync then cannot consume the write-back error of a unit written meanwhile,
        // which the journal's own sync must see before that unit is acknowledged.
        let Ok(file) = OpenOptions::new().write(true).open(&self.path) else {
            return; // out of descriptors: units grow the file meanwhile
        };
        self.filling = self
            .space
            .request(self.generation, file, from, from + self.space_chunk());
    }

    /// Takes the running fill's result if it is done (with `wait`, once it is).
    fn collect_fill(&mut self, wait: bool) {
        if self.filling.is_none() {
            return;
        }
        let Some(filled) = self.space.finished(wait) else {
            // Not done yet; or, when waiting, the thread is gone (it only stops when the
            // journal drops it), so nothing is filling any more.
            if wait {
                self.filling = None;
            }
            return;
        };
        self.filling = None;
        match filled.outcome {
            Ok(()) if filled.generation == self.generation => {
                self.prepared_to = self.prepared_to.max(filled.to);
            }
            Ok(()) => {}
            Err(FillError::Write(e)) => {
                tracing::debug!(error = %e, "writing journal space ahead failed; units grow the file");
            }
            Err(FillError::Sync(e)) => {
                self.fence(format!(
                    "fdatasync of journal space written ahead failed: {e}"
                ));
            }
        }
    }

    /// Answers a group that did not become durable, and rewinds its logs' sequences.
    fn fail_group(
        &mut self,
        rollback: HashMap<LogId, u64>,
        accepted: Vec<Submission>,
        error: &StorageError,
    ) {
        for (log, next) in rollback {
            if let Some(files) = self.logs.get_mut(&log) {
                files.next_sequence = next;
            }
        }
        for submission in accepted {
            submission.fail(error.duplicate());
        }
    }

    /// Writes the frames of every log with at least `placed_frame_bytes_min` in this group
    /// straight to its active segment, so those bytes reach the disk once instead of twice
    /// (journal, then segment); the unit then holds only their headers. Only with
    /// `SyncPolicy::Always`: recovery relies on the segment having been synced whenever
    /// the unit was (`write_unit` syncs them together), which a later sync cannot promise.
    /// Whether a group this large may have frames placed (a log in it could reach the
    /// threshold).
    fn may_place(&self, group: &[Submission]) -> bool {
        let min = self.config.placed_frame_bytes_min;
        min != 0
            && self.config.sync_policy == SyncPolicy::Always
            && group.iter().map(|s| s.frame.len() as u64).sum::<u64>() >= min
    }

    fn place_large_frames(
        &mut self,
        accepted: &[Submission],
    ) -> Result<HashMap<LogId, PlacedFrames>, StorageError> {
        // Most groups are small: no log in them can reach the threshold, so skip the map.
        if !self.may_place(accepted) {
            return Ok(HashMap::new());
        }
        let min = self.config.placed_frame_bytes_min;
        let mut per_log: HashMap<LogId, (u64, Vec<&[u8]>)> = HashMap::new();
        for submission in accepted {
            let (bytes, frames) = per_log.entry(submission.log).or_default();
            *bytes += submission.frame.len() as u64;
            frames.push(&submission.frame);
        }
        let mut placed = HashMap::new();
        for (log, (bytes, frames)) in per_log {
            if bytes < min {
                continue;
            }
            // Placed frames go straight to the segment's end: behind the log's pending ones.
            if let Err(error) = self.copy_pending(&[log]) {
                self.unplace(&placed);
                return Err(error);
            }
            let files = self.logs.get_mut(&log).expect("accepted logs exist");
            let dir = files.shared.dir.clone();
            // A roll syncs the sealed segment: its failure fences, as everywhere else.
            if let Err(e) = files.roll_if_full(&*self.layer, &self.config, &self.metrics, bytes) {
                self.fence(format!("segment roll in {} failed: {e}", dir.display()));
                self.unplace(&placed);
                return Err(StorageError::io(&dir, e));
            }
            match files.write_placed(&*self.layer, &frames) {
                Ok(frames) => {
                    placed.insert(log, frames);
                }
                Err(failure) => {
                    let e = match failure {
                        PlaceError::Write(e) => e,
                        PlaceError::Uncut(e, cut) => {
                            self.fence(format!(
                                "segment write in {} failed ({e}) and cutting it back failed \
                                 ({cut})",
                                dir.display()
                            ));
                            e
                        }
                    };
                    self.unplace(&placed);
                    return Err(StorageError::io(&dir, e));
                }
            }
            self.metrics
                .placed_bytes
                .fetch_add(bytes, Ordering::Relaxed);
        }
        Ok(placed)
    }

    /// Cuts placed frames of a failed group out of their segments: left past the visible
    /// end, a later roll would seal them into the segment, or a later sync make them
    /// durable in place of the records that take their sequences next.
    fn unplace(&mut self, placed: &HashMap<LogId, PlacedFrames>) {
        for frames in placed.values() {
            if let Err(e) = self.layer.set_len(&frames.segment, frames.start) {
                self.fence(format!("cutting back a failed placement failed: {e}"));
            }
        }
    }

    fn sync_journal(&mut self) {
        let started = Instant::now();
        match self.layer.sync_data(&self.file) {
            Ok(()) => {
                self.unsynced = false;
                self.last_sync = Instant::now();
                self.metrics.journal_synced(started.elapsed());
            }
            Err(e) => self.fence(format!("fdatasync failed: {e}")),
        }
    }

    /// Waits for the running checkpoint job, if any; fences the store if it failed.
    fn reap_job(&mut self) -> Result<(), StorageError> {
        let Some(job) = self.job.take() else {
            return Ok(());
        };
        match job.join() {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((dir, e))) => {
                // After a failed fsync the kernel may have dropped the pages, and a later
                // fsync can succeed without them ("fsyncgate"): never delete the journal
                // that still holds those frames, never trust those segments.
                self.fence(format!(
                    "segment fdatasync in {} failed: {e}",
                    dir.display()
                ));
                Err(StorageError::io(&dir, e))
            }
            Err(_) => {
                self.fence("the checkpoint thread panicked".into());
                Err(StorageError::io(
                    &self.journal_dir,
                    std::io::Error::other("the checkpoint thread panicked"),
                ))
            }
        }
    }

    /// The journal thread's part of a checkpoint: start journal `N+1` and switch to it;
    /// the segment syncs and the deletion of `N` run in a `CheckpointJob`. See the module
    /// docs for the order and why every crash point is safe.
    pub fn checkpoint(&mut self) -> Result<(), StorageError> {
        if let Some(error) = self.fence_error() {
            return Err(error);
        }
        // The new journal says where each log's frames end: the segments must hold them
        // before the old journal can go.
        self.copy_all_pending()?;
        debug_assert_eq!(
            self.unpublished, 0,
            "a checkpoint with a unit written to the old journal but not yet durable"
        );
        if let Some(e) = self.flusher.take_failure() {
            self.fence(format!("an early segment fdatasync failed: {e}"));
            return Err(StorageError::io(&self.logs_dir, e));
        }
        // One job at a time: the next job may delete `N+1` only after the previous one has
        // synced everything `N+1`'s checkpoint relies on.
        self.reap_job()?;
        let started = Instant::now();
        if self.unsynced {
            // `Interval`: journal `N` must be durable before `N+1` says where its frames end,
            // or a machine crash could leave a gap between the two (recovery: corruption).
            self.sync_journal();
            if let Some(error) = self.fence_error() {
                return Err(error);
            }
        }
        let mut entries: Vec<(LogId, u64)> = Vec::with_capacity(self.logs.len());
        let mut dirty = Vec::new();
        for (id, files) in &mut self.logs {
            entries.push((*id, files.next_sequence));
            if files.dirty {
                let file = files
                    .active_file()
                    .map_err(|e| StorageError::io(&files.shared.dir, e))?;
                let segments = files.shared.segments.lock();
                let active = segments
                    .segments
                    .last()
                    .expect("a log always has an active segment");
                dirty.push(DirtySegment {
                    file,
                    shared: files.shared.clone(),
                    path: active.path.clone(),
                    end: active.end,
                    len: active.len,
                    max_arrival: active.max_arrival,
                });
            }
        }
        entries.sort_unstable();
        let generation = self.generation + 1;
        let path = journal_path(&self.journal_dir, generation);
        let (file, len) = match self.start_journal(&path, generation, &entries) {
            Ok(started) => started,
            Err(e) => {
                // The half-made journal must not survive: it could become valid (it may
                // be complete and only the directory sync failed) while units keep going
                // to journal `N`, and recovery would then see `N+1` claiming an end of `N`
                // that is no longer the end. If it cannot be removed, stop writing `N`.
                let removed = match std::fs::remove_file(&path) {
                    Ok(()) => sync_dir(&self.journal_dir),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(r) = removed {
                    self.fence(format!(
                        "starting journal {} failed ({e}) and removing it failed ({r})",
                        path.display()
                    ));
                }
                return Err(StorageError::io(&path, e));
            }
        };
        for files in self.logs.values_mut() {
            if !files.dirty {
                // Unwritten since the previous checkpoint, whose job synced it: idle.
                files.active = None;
                files.placed_sync = None;
            }
            files.dirty = false;
        }
        self.path = path;
        self.file = Arc::new(file);
        self.generation = generation;
        self.len = len;
        // A fill still running is for the old journal; its result is ignored.
        self.prepared_to = len;
        self.next_commit += 1;
        self.unsynced = false;
        self.checkpoint_retry_at = 0;
        let job = CheckpointJob {
            layer: self.layer.clone(),
            metrics: self.metrics.clone(),
            journal_dir: self.journal_dir.clone(),
            generation,
            dirty,
            abandon: self.abandon.clone(),
            pause: self.pause.clone(),
        };
        match job.spawn() {
            Ok(handle) => self.job = Some(handle),
            Err(e) => {
                // Without the job, the old journal stays, and nothing here remembers
                // which segments it needed synced: fence rather than guess.
                self.fence(format!("could not start the checkpoint thread: {e}"));
                return Err(StorageError::io(&self.journal_dir, e));
            }
        }
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        let micros = started.elapsed().as_micros() as u64;
        self.metrics
            .checkpoint_micros
            .fetch_add(micros, Ordering::Relaxed);
        tracing::debug!(micros, generation, "journal checkpoint started");
        Ok(())
    }

    fn start_journal(
        &mut self,
        path: &Path,
        generation: u64,
        entries: &[(LogId, u64)],
    ) -> std::io::Result<(File, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let mut bytes = format::encode_file_header(&FileHeader {
            kind: format::KIND_JOURNAL,
            id: generation,
            base_sequence: 0,
            arrival_floor_ms: 0,
        })
        .to_vec();
        let mut unit = Vec::new();
        format::begin_unit(&mut unit);
        format::encode_checkpoint(&mut unit, entries);
        format::finish_unit(&mut unit, self.next_commit, format::UNIT_CHECKPOINT);
        bytes.extend_from_slice(&unit);
        self.layer.write_all_at(&file, &bytes, 0)?;
        self.layer.sync_data(&file)?;
        sync_dir(&self.journal_dir)?;
        Ok((file, bytes.len() as u64))
    }

    fn create_log(&mut self, shared: Arc<LogShared>) -> Result<(), StorageError> {
        if let Some(error) = self.fence_error() {
            return Err(error);
        }
        if self.logs.contains_key(&shared.id) {
            return Ok(());
        }
        let dir = shared.dir.clone();
        let path = segment::segment_path(&dir, 0);
        let result = (|| {
            std::fs::create_dir_all(&dir)?;
            let file = create_with_header(
                &*self.layer,
                &path,
                &FileHeader {
                    kind: format::KIND_SEGMENT,
                    id: shared.id,
                    base_sequence: 0,
                    arrival_floor_ms: 0,
                },
            )?;
            // Both entries must be durable before the first append is acknowledged:
            // recovery ignores journal frames of logs whose directory does not exist.
            sync_dir(&dir)?;
            sync_dir(&self.logs_dir)?;
            Ok::<File, std::io::Error>(file)
        })();
        // The first segment's file is closed again here: it is opened on the first append.
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(StorageError::io(&dir, e));
        }
        shared
            .segments
            .lock()
            .segments
            .push(SegmentMeta::new_empty(path, 0));
        self.logs.insert(
            shared.id,
            LogFiles {
                shared,
                // Opened on the first append: a log that is never written holds no descriptor.
                active: None,
                placed_sync: None,
                unflushed: false,
                next_sequence: 0,
                last_arrival_ms: 0,
                dirty: false,
                pending: PendingCopies::default(),
            },
        );
        Ok(())
    }

    /// Deletes the whole segments of `log` whose newest record arrived before `cutoff_ms`.
    fn trim(&mut self, log: LogId, cutoff_ms: u64) -> Result<(), StorageError> {
        if let Some(error) = self.fence_error() {
            return Err(error);
        }
        // Whether the active segment is all expired depends on what it will hold.
        self.copy_pending(&[log])?;
        let files = self
            .logs
            .get_mut(&log)
            .ok_or(StorageError::LogNotFound(log))?;
        let expired = |s: &SegmentMeta| s.max_arrival.is_some_and(|a| a < cutoff_ms);
        // Everything expired, the active segment included: roll so the active segment can
        // go too. The new empty segment keeps the log's end (its base) and arrival floor.
        let roll_active = files.shared.segments.lock().segments.iter().all(expired);
        if roll_active && let Err(e) = files.roll(&*self.layer, &self.metrics) {
            let dir = files.shared.dir.clone();
            self.fence(format!("segment roll in {} failed: {e}", dir.display()));
            return Err(StorageError::io(&dir, e));
        }
        let removed: Vec<SegmentMeta> = {
            let mut segments = files.shared.segments.lock();
            let last = segments.segments.len() - 1;
            let n = segments.segments[..last]
                .iter()
                .take_while(|s| expired(s))
                .count();
            segments.segments.drain(..n).collect()
        };
        if removed.is_empty() {
            return Ok(());
        }
        // Publish the new first sequence before unlinking, so a reader that plans from
        // the old one and finds the file gone re-plans from here.
        let first = files
            .shared
            .segments
            .lock()
            .first_sequence()
            .expect("the active segment stays");
        files.shared.tail.lock().first_sequence = first;
        // Oldest first: a crash part-way leaves a contiguous suffix of segments.
        for meta in &removed {
            self.handles.invalidate(&meta.path);
            for path in [meta.path.clone(), segment::index_path(&meta.path)] {
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(StorageError::io(&path, e));
                }
            }
        }
        sync_dir(&files.shared.dir).map_err(|e| StorageError::io(&files.shared.dir, e))?;
        Ok(())
    }

    fn delete_log(&mut self, log: LogId) -> Result<(), StorageError> {
        let Some(files) = self.logs.remove(&log) else {
            return Ok(());
        };
        self.pending_bytes -= files.pending.bytes;
        self.note_pending();
        let dir = files.shared.dir.clone();
        drop(files);
        // Rename first (atomic): recovery deletes `*.deleted` leftovers and skips journal
        // frames of logs without a directory, so a crash mid-delete cannot resurrect a
        // partial log. Log ids are never reused (API contract), so old frames of this id
        // in the journal stay harmless until the next checkpoint drops them.
        let doomed = dir.with_extension("deleted");
        std::fs::rename(&dir, &doomed).map_err(|e| StorageError::io(&dir, e))?;
        sync_dir(&self.logs_dir).map_err(|e| StorageError::io(&self.logs_dir, e))?;
        self.handles.invalidate_dir(&dir);
        if let Err(e) = std::fs::remove_dir_all(&doomed) {
            tracing::warn!(path = %doomed.display(), error = %e, "could not remove deleted log; recovery will");
        }
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), StorageError> {
        if let Some(error) = self.fence_error() {
            return Err(error);
        }
        let started = Instant::now();
        self.layer
            .sync_data(&self.file)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.metrics.journal_synced(started.elapsed());
        // A clean shutdown leaves one journal with nothing to replay: the next open is
        // fast. So wait for the checkpoint's background part too.
        self.checkpoint()?;
        self.reap_job()
    }
}
