//! Large batches written straight to their segments (`StoreConfig::placed_frame_bytes_min`):
//! they reach the disk once, survive a crash, and a unit whose placed frame never became
//! durable is the end of the journal, not corruption.

#![allow(clippy::unwrap_used)] // test helpers, not product code

use std::path::{Path, PathBuf};

use bytes::Bytes;
use millstream_storage::{AppendRecord, Store, StoreConfig, StoredRecord};

fn batch(tag: u64, count: usize, size: usize) -> Vec<AppendRecord> {
    (0..count)
        .map(|i| {
            let mut data = format!("{tag}/{i}:").into_bytes();
            data.resize(size, b'a' + (tag % 26) as u8);
            AppendRecord {
                key: Bytes::from(format!("key-{tag}")),
                data: Bytes::from(data),
                flags: 0,
            }
        })
        .collect()
}

async fn read_all(store: &Store, log: u64) -> Vec<StoredRecord> {
    let all = store.read(log, 0, usize::MAX, usize::MAX).await.unwrap();
    for (i, record) in all.iter().enumerate() {
        assert_eq!(record.sequence, i as u64, "log {log} is contiguous from 0");
    }
    all
}

fn config(dir: &Path, placed_frame_bytes_min: u64) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    // Small enough that placed frames land in rolls.
    config.segment_bytes_max = 1 << 20;
    config.journal_bytes_max = 2 << 20;
    config.placed_frame_bytes_min = placed_frame_bytes_min;
    // The journal's file length is then its units' end, which the tests compare.
    config.journal_space_ahead_bytes = 0;
    config
}

/// 30 batches of 160 KiB on log 1 while log 2 takes small appends; returns what each log
/// was given.
async fn mixed_load(store: &Store) -> (Vec<AppendRecord>, Vec<AppendRecord>) {
    store.create_log(1).await.unwrap();
    store.create_log(2).await.unwrap();
    let large = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut written = Vec::new();
            for tag in 0..30 {
                let records = batch(tag, 40, 4096);
                let ack = store.append(1, records.clone()).await.unwrap();
                assert_eq!(ack.first_sequence, written.len() as u64);
                written.extend(records);
            }
            written
        })
    };
    let mut small = Vec::new();
    for tag in 1000..1200 {
        let records = batch(tag, 1, 100);
        store.append(2, records.clone()).await.unwrap();
        small.extend(records);
    }
    (large.await.unwrap(), small)
}

fn assert_same(got: &[StoredRecord], expected: &[AppendRecord]) {
    assert_eq!(got.len(), expected.len());
    for (record, wanted) in got.iter().zip(expected) {
        assert_eq!(record.key, wanted.key);
        assert_eq!(record.data, wanted.data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_reach_the_disk_once_and_survive_a_crash() {
    let payload = 30 * 40 * 4096u64;

    // Control: everything through the journal.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 0)).await.unwrap();
    mixed_load(&store).await;
    let journaled = store.metrics();
    assert_eq!(journaled.placed_bytes, 0);
    assert!(journaled.journal_bytes > payload, "{journaled:?}");
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 128 << 10)).await.unwrap();
    let (large, small) = mixed_load(&store).await;
    let placed = store.metrics();
    assert!(placed.placed_bytes >= payload, "{placed:?}");
    assert!(
        placed.journal_bytes < payload / 20,
        "the journal holds headers and the small appends only: {placed:?}"
    );
    assert!(placed.segment_rolls > 0, "{placed:?}");
    assert_same(&read_all(&store, 1).await, &large);
    assert_same(&read_all(&store, 2).await, &small);

    drop(store); // crash: no shutdown checkpoint
    let store = Store::open(config(dir.path(), 128 << 10)).await.unwrap();
    assert_same(&read_all(&store, 1).await, &large);
    assert_same(&read_all(&store, 2).await, &small);
    let ack = store.append(1, batch(99, 40, 4096)).await.unwrap();
    assert_eq!(ack.first_sequence, large.len() as u64);
    store.shutdown().await.unwrap();

    // An older setting (nothing placed) reads the same directory.
    let store = Store::open(config(dir.path(), 0)).await.unwrap();
    assert_eq!(read_all(&store, 1).await.len(), large.len() + 40);
    store.shutdown().await.unwrap();
}

fn active_segment(dir: &Path, log: u64) -> PathBuf {
    let mut segments: Vec<PathBuf> =
        std::fs::read_dir(dir.join("logs").join(format!("{log:016x}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
    segments.sort();
    segments.pop().unwrap()
}

/// The one journal of a store that has not checkpointed yet.
fn journal(dir: &Path) -> PathBuf {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    journals.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_whose_placed_frame_is_not_in_its_segment_ends_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 128 << 10);
    let store = Store::open(config.clone()).await.unwrap();
    store.create_log(1).await.unwrap();
    let small = batch(1, 3, 100);
    store.append(1, small.clone()).await.unwrap();
    let segment = active_segment(dir.path(), 1);
    let before_large = std::fs::metadata(&segment).unwrap().len();
    let journal_before_large = std::fs::metadata(journal(dir.path())).unwrap().len();
    store.append(1, batch(2, 50, 4096)).await.unwrap();
    assert!(store.metrics().placed_bytes > 0);
    drop(store);
    assert!(std::fs::metadata(journal(dir.path())).unwrap().len() > journal_before_large);

    // The process died after the journal's sync returned but before the segment's did,
    // and the machine lost the segment's pages: only part of the frame is there.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(before_large + 4096).unwrap();
    drop(file);

    let store = Store::open(config.clone()).await.unwrap();
    assert_same(&read_all(&store, 1).await, &small);
    assert_eq!(
        std::fs::metadata(journal(dir.path())).unwrap().len(),
        journal_before_large,
        "the unit that placed the lost frame was cut from the journal"
    );
    let next = batch(3, 2, 100);
    let ack = store.append(1, next.clone()).await.unwrap();
    assert_eq!(
        ack.first_sequence, 3,
        "the unacknowledged batch left no gap"
    );
    drop(store);

    // The journal was cut before that unit: a second recovery agrees.
    let store = Store::open(config).await.unwrap();
    let expected: Vec<AppendRecord> = small.into_iter().chain(next).collect();
    assert_same(&read_all(&store, 1).await, &expected);
    store.shutdown().await.unwrap();
}
