//! Crash windows of the background checkpoint (see `journal.rs`, "Checkpoint"): the store
//! is stopped (dropped without `shutdown`, like a crash) while a checkpoint job is held at
//! each of its steps, with frames of the same logs in the old and the new journal; then
//! the bytes that were not yet fsynced in the segments are thrown away, as a machine crash
//! may, and recovery must bring back every acknowledged record exactly once.

#![allow(clippy::unwrap_used)] // test helpers, not product code

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use millstream_storage::{
    AppendRecord, CheckpointPause, StorageError, Store, StoreConfig, StoredRecord,
};

const LOGS: u64 = 3;

fn config(dir: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.journal_bytes_max = 4096;
    config.segment_bytes_max = 1 << 20;
    config
}

/// What the test acknowledged: log -> (sequence -> data).
type Acked = BTreeMap<u64, BTreeMap<u64, Bytes>>;

async fn append(store: &Store, acked: &mut Acked, log: u64, tag: u64) {
    let records: Vec<AppendRecord> = (0..3)
        .map(|i| AppendRecord {
            key: Bytes::from_static(b"k"),
            data: Bytes::from(format!(
                "log {log} tag {tag} record {i} {}",
                "x".repeat(200)
            )),
            flags: 0,
        })
        .collect();
    let ack = store.append(log, records.clone()).await.unwrap();
    for (i, r) in records.into_iter().enumerate() {
        let previous = acked
            .entry(log)
            .or_default()
            .insert(ack.first_sequence + i as u64, r.data);
        assert!(previous.is_none(), "sequence given twice");
    }
}

/// Appends round-robin over the logs until `checkpoints` have started (each one leaves
/// frames of every log behind it in the older journal), then a few more rounds (frames of
/// the same logs in the newer journal).
async fn append_through_checkpoints(
    store: &Store,
    acked: &mut Acked,
    tag: &mut u64,
    checkpoints: u64,
) {
    let target = store.metrics().checkpoints + checkpoints;
    while store.metrics().checkpoints < target {
        for log in 0..LOGS {
            *tag += 1;
            append(store, acked, log, *tag).await;
        }
    }
    for _ in 0..2 {
        for log in 0..LOGS {
            *tag += 1;
            append(store, acked, log, *tag).await;
        }
    }
}

fn journals(dir: &Path) -> Vec<PathBuf> {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    journals.sort();
    journals
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// A machine crash: every segment byte from the first frame at or above the oldest
/// journal's checkpoint (the only promise of fsynced segment data) is lost.
fn lose_unsynced_segment_bytes(dir: &Path) {
    let oldest = journals(dir).into_iter().next().unwrap();
    let bytes = std::fs::read(oldest).unwrap();
    let payload = 48 + 20;
    let floors: BTreeMap<u64, u64> = (0..be_u32(&bytes, payload) as usize)
        .map(|i| {
            (
                be_u64(&bytes, payload + 4 + i * 16),
                be_u64(&bytes, payload + 12 + i * 16),
            )
        })
        .collect();
    for log_dir in std::fs::read_dir(dir.join("logs")).unwrap() {
        let log_dir = log_dir.unwrap().path();
        let log = u64::from_str_radix(log_dir.file_name().unwrap().to_str().unwrap(), 16).unwrap();
        let floor = floors.get(&log).copied().unwrap_or(0);
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&log_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        let last = segments.last().unwrap();
        let data = std::fs::read(last).unwrap();
        let mut offset = 48;
        while offset + 36 <= data.len() && be_u64(&data, offset + 16) < floor {
            offset += 36 + be_u32(&data, offset) as usize;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(last)
            .unwrap()
            .set_len(offset as u64)
            .unwrap();
    }
}

/// Every acknowledged record is there, at its sequence, once, and nothing else is.
async fn verify(store: &Store, acked: &Acked) {
    for log in 0..LOGS {
        let all: Vec<StoredRecord> = store.read(log, 0, usize::MAX, usize::MAX).await.unwrap();
        let want = acked.get(&log).cloned().unwrap_or_default();
        assert_eq!(all.len(), want.len(), "log {log}: record count");
        for (r, (sequence, data)) in all.iter().zip(&want) {
            assert_eq!((r.sequence, &r.data), (*sequence, data), "log {log}");
        }
        assert_eq!(store.tail(log).unwrap().next_sequence, want.len() as u64);
    }
}

/// Opens a fresh store with `LOGS` logs and some records already checkpointed.
async fn setup(dir: &Path, acked: &mut Acked, tag: &mut u64) -> Store {
    let store = Store::open(config(dir)).await.unwrap();
    for log in 0..LOGS {
        store.create_log(log).await.unwrap();
    }
    append_through_checkpoints(&store, acked, tag, 1).await;
    settle(&store).await;
    store
}

/// Waits until the checkpoint a last append may have started (the journal thread decides
/// after acknowledging it) has been decided and its background job has finished: a barrier
/// through the journal thread, not a guess at timing.
async fn settle(store: &Store) {
    store.settle_checkpoints().await.unwrap();
    let m = store.metrics();
    assert_eq!(m.checkpoint_jobs, m.checkpoints, "settled: {m:?}");
}

/// Crash with the job held at `at`, machine-crash the segments, recover, check; then
/// check that the store goes on and a clean shutdown leaves a single journal.
async fn crash_in_window(at: CheckpointPause) {
    let dir = tempfile::tempdir().unwrap();
    let (mut acked, mut tag) = (Acked::new(), 0);
    let store = setup(dir.path(), &mut acked, &mut tag).await;
    store.pause_checkpoint_jobs_at(Some(at));
    append_through_checkpoints(&store, &mut acked, &mut tag, 1).await;
    // The job is held, so the next checkpoints are deferred and the journal grows.
    for _ in 0..10 {
        for log in 0..LOGS {
            tag += 1;
            append(&store, &mut acked, log, tag).await;
        }
    }
    let m = store.metrics();
    assert_eq!(m.checkpoint_jobs + 1, m.checkpoints, "one job held: {m:?}");
    drop(store); // crash: the held job stops where it is
    assert_eq!(journals(dir.path()).len(), 2, "old and new journal");
    lose_unsynced_segment_bytes(dir.path());

    let store = Store::open(config(dir.path())).await.unwrap();
    verify(&store, &acked).await;
    append_through_checkpoints(&store, &mut acked, &mut tag, 1).await;
    verify(&store, &acked).await;
    store.shutdown().await.unwrap();
    assert_eq!(journals(dir.path()).len(), 1, "shutdown waits for the job");
    let store = Store::open(config(dir.path())).await.unwrap();
    verify(&store, &acked).await;
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_new_journal_before_any_segment_sync() {
    crash_in_window(CheckpointPause::BeforeSegmentSync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_in_the_middle_of_the_background_segment_syncs() {
    crash_in_window(CheckpointPause::MidSegmentSync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_segment_syncs_before_the_old_journal_is_deleted() {
    crash_in_window(CheckpointPause::BeforeJournalDelete).await;
}

/// Three journals after two crashes in the first window, then a crash between the
/// deletions of the two old ones: recovery replays whatever contiguous run is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_old_journals_are_replayed_in_order_and_deleted_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut acked, mut tag) = (Acked::new(), 0);
    let mut store = setup(dir.path(), &mut acked, &mut tag).await;
    for expected_journals in [2, 3] {
        settle(&store).await;
        store.pause_checkpoint_jobs_at(Some(CheckpointPause::BeforeSegmentSync));
        append_through_checkpoints(&store, &mut acked, &mut tag, 1).await;
        drop(store);
        assert_eq!(journals(dir.path()).len(), expected_journals);
        lose_unsynced_segment_bytes(dir.path());
        store = Store::open(config(dir.path())).await.unwrap();
        verify(&store, &acked).await;
    }
    // Next checkpoint: its job must delete both old journals; stop it between the two.
    settle(&store).await;
    let before = journals(dir.path());
    store.pause_checkpoint_jobs_at(Some(CheckpointPause::MidJournalDelete));
    append_through_checkpoints(&store, &mut acked, &mut tag, 1).await;
    drop(store);
    let after = journals(dir.path());
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(!after.contains(&before[0]), "the oldest went first");
    assert_eq!(after[0], before[1]);
    lose_unsynced_segment_bytes(dir.path());
    let store = Store::open(config(dir.path())).await.unwrap();
    verify(&store, &acked).await;
    store.shutdown().await.unwrap();
    assert_eq!(journals(dir.path()).len(), 1);
}

/// The model test's plain crash (drop) during a running job, many times, without holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_random_points_of_running_jobs_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut acked, mut tag) = (Acked::new(), 0);
    let mut store = setup(dir.path(), &mut acked, &mut tag).await;
    for _ in 0..20 {
        append_through_checkpoints(&store, &mut acked, &mut tag, 1).await;
        drop(store);
        lose_unsynced_segment_bytes(dir.path());
        store = Store::open(config(dir.path())).await.unwrap();
        verify(&store, &acked).await;
    }
    store.shutdown().await.unwrap();
}

/// A checkpoint that crashed while writing its new journal (no valid checkpoint unit):
/// the new file is discarded and the previous journal is replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_new_journal_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut acked, mut tag) = (Acked::new(), 0);
    let store = setup(dir.path(), &mut acked, &mut tag).await;
    for log in 0..LOGS {
        tag += 1;
        append(&store, &mut acked, log, tag).await;
    }
    drop(store);
    // (A checkpoint may have started after the last acknowledgement: then there are two.)
    let existing = journals(dir.path());
    let name = existing
        .last()
        .unwrap()
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap();
    let next = u64::from_str_radix(name, 16).unwrap() + 1;
    let torn = dir.path().join("journal").join(format!("{next:016x}.wal"));
    std::fs::write(&torn, b"MILLSTRM\0\0").unwrap();
    lose_unsynced_segment_bytes(dir.path());
    let store = Store::open(config(dir.path())).await.unwrap();
    assert!(!torn.exists());
    verify(&store, &acked).await;
    store.shutdown().await.unwrap();
}

/// An older journal that lost its last unit (bit rot, or a tampered directory) while a
/// newer one exists: the newer journal's checkpoint number shows the gap. Corrupt, never
/// a silent loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_missing_between_two_journals_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut acked, mut tag) = (Acked::new(), 0);
    let store = setup(dir.path(), &mut acked, &mut tag).await;
    store.pause_checkpoint_jobs_at(Some(CheckpointPause::BeforeSegmentSync));
    append_through_checkpoints(&store, &mut acked, &mut tag, 1).await;
    drop(store);
    let existing = journals(dir.path());
    assert_eq!(existing.len(), 2);
    // Cut the old journal's last unit: walk its units to find where it starts (they end
    // where the zeros written ahead of them begin).
    let bytes = std::fs::read(&existing[0]).unwrap();
    let (mut at, mut last) = (48usize, 48usize);
    while at + 20 <= bytes.len() && bytes[at..at + 20] != [0u8; 20] {
        last = at;
        at += 20 + be_u32(&bytes, at) as usize;
    }
    assert!(last > 48, "the old journal has units after its checkpoint");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&existing[0])
        .unwrap()
        .set_len(last as u64)
        .unwrap();
    match Store::open(config(dir.path())).await {
        Err(StorageError::Corrupt { path, reason, .. }) => {
            assert_eq!(path, existing[1], "{reason}");
            assert!(reason.contains("missing"), "{reason}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, got a store"),
    }
}

/// Journal sync latency is counted and bucketed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_sync_latency_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut acked, mut tag) = (Acked::new(), 0);
    let store = setup(dir.path(), &mut acked, &mut tag).await;
    let m = store.metrics();
    assert!(m.journal_syncs > 0);
    assert!(m.journal_sync_nanos_total > 0);
    assert_eq!(m.journal_sync_buckets.iter().sum::<u64>(), m.journal_syncs);
    assert_eq!(
        m.journal_sync_buckets.len(),
        millstream_storage::JOURNAL_SYNC_BUCKETS_SECONDS.len() + 1
    );
    store.shutdown().await.unwrap();
}

/// Rewrites the format version in a file's header (and the header checksum).
fn set_version(path: &Path, version: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[8..12].copy_from_slice(&version.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[..40]);
    bytes[40..44].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// A directory last written by a version-1 build: there the newest valid journal
/// superseded the older ones (segments were synced before it was started), so they are
/// deleted unread; the store carries on, and its next checkpoint writes version 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_directory_is_recovered_with_version_1_rules_then_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut acked, mut tag) = (Acked::new(), 0);
    let store = setup(dir.path(), &mut acked, &mut tag).await;
    store.pause_checkpoint_jobs_at(Some(CheckpointPause::BeforeJournalDelete));
    append_through_checkpoints(&store, &mut acked, &mut tag, 1).await;
    drop(store); // segments synced, both journals present: what version 1 could leave
    let old = journals(dir.path());
    assert_eq!(old.len(), 2);
    let mut files = old.clone();
    for log_dir in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        for file in std::fs::read_dir(log_dir.unwrap().path()).unwrap() {
            files.push(file.unwrap().path());
        }
    }
    for file in &files {
        set_version(file, 1);
    }
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(
        journals(dir.path()),
        old[1..],
        "the superseded journal is gone"
    );
    verify(&store, &acked).await;
    append_through_checkpoints(&store, &mut acked, &mut tag, 1).await;
    settle(&store).await;
    let newest = journals(dir.path()).pop().unwrap();
    let header = std::fs::read(&newest).unwrap();
    assert_eq!(
        be_u32(&header, 8),
        3,
        "new journals are the current version"
    );
    store.shutdown().await.unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    verify(&store, &acked).await;
    store.shutdown().await.unwrap();
}
