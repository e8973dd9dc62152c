//! Disk-full and EIO faults injected under the journal thread through `io::FaultLayer`:
//! the failure reaches the caller as `StorageError::Io`, nothing acknowledged is lost,
//! sequences stay gap-free, and the store recovers when space returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::io::fault::FaultLayer;
use crate::{AppendRecord, StorageError, Store, StoreConfig};

fn records(n: usize, tag: u64) -> Vec<AppendRecord> {
    (0..n)
        .map(|i| AppendRecord {
            key: Bytes::from(format!("k{tag}")),
            data: Bytes::from(format!("record {tag}/{i} {}", "x".repeat(100))),
            flags: 0,
        })
        .collect()
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.segment_bytes_max = 8 << 10;
    config.journal_bytes_max = 32 << 10;
    // The tests count the bytes each write takes from the disk; zeros written ahead by a
    // helper thread would take them at unpredictable moments.
    config.journal_space_ahead_bytes = 0;
    config
}

fn is_io(result: &Result<crate::AppendAck, StorageError>) -> bool {
    matches!(result, Err(StorageError::Io { .. }))
}

/// Everything readable, and it is contiguous from the first sequence.
async fn read_all(store: &Store, log: u64) -> Vec<crate::StoredRecord> {
    let all = store.read(log, 0, usize::MAX, usize::MAX).await.unwrap();
    for pair in all.windows(2) {
        assert_eq!(pair[0].sequence + 1, pair[1].sequence);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_the_journal_fails_the_commit_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    let store = Store::open_with_layer(config(dir.path()), layer.clone())
        .await
        .unwrap();
    store.create_log(1).await.unwrap();
    for tag in 0..5 {
        store.append(1, records(3, tag)).await.unwrap();
    }
    // The last acknowledged frame's segment copy may still be under way.
    store.settle_checkpoints().await.unwrap();
    // Room for less than one unit: the journal write tears and fails.
    layer.space_left.store(100, Ordering::SeqCst);
    let failed = store.append(1, records(3, 99)).await;
    assert!(is_io(&failed), "{failed:?}");
    assert_eq!(
        store.tail(1).unwrap().next_sequence,
        15,
        "nothing of the failed append is visible"
    );
    // Still full: still an error, still no gap.
    assert!(is_io(&store.append(1, records(1, 98)).await));
    // Space returns: the store continues where it was, without a reopen.
    layer.space_left.store(u64::MAX, Ordering::SeqCst);
    let ack = store.append(1, records(2, 6)).await.unwrap();
    assert_eq!(ack.first_sequence, 15);
    let before_crash = read_all(&store, 1).await;
    assert_eq!(before_crash.len(), 17);
    drop(store); // crash
    let store = Store::open(config(dir.path())).await.unwrap();
    let after = read_all(&store, 1).await;
    assert_eq!(
        after, before_crash,
        "the torn unit was cut off; nothing failed came back"
    );
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_fences_the_store_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    let store = Store::open_with_layer(config(dir.path()), layer.clone())
        .await
        .unwrap();
    store.create_log(1).await.unwrap();
    store.append(1, records(4, 0)).await.unwrap();
    layer.fail_sync.store(true, Ordering::SeqCst);
    assert!(is_io(&store.append(1, records(1, 1)).await));
    layer.fail_sync.store(false, Ordering::SeqCst);
    // Fenced: a sync that failed once means the page cache cannot be trusted.
    assert!(is_io(&store.append(1, records(1, 2)).await));
    assert!(matches!(
        store.trim_before(1, 0).await,
        Err(StorageError::Io { .. })
    ));
    assert_eq!(read_all(&store, 1).await.len(), 4);
    drop(store);
    let store = Store::open(config(dir.path())).await.unwrap();
    let all = read_all(&store, 1).await;
    assert_eq!(all.len(), 4, "the failed append was cut from the journal");
    assert_eq!(
        store.append(1, records(1, 3)).await.unwrap().first_sequence,
        4
    );
    store.shutdown().await.unwrap();
}

/// Leaves exactly enough space for the journal unit of `records(2, _)` (20 B unit header
/// + 36 B frame header + 2 records), not for its copy to the segment.
fn room_for_the_journal_unit_only(layer: &FaultLayer) {
    let frame_len = 36
        + records(2, 1)
            .iter()
            .map(crate::format::record_encoded_len)
            .sum::<usize>();
    layer
        .space_left
        .store((20 + frame_len + 10) as u64, Ordering::SeqCst);
}

/// A store on `layer` with log 1 holding `records(2, 0)`, copied to its segment, and room
/// left for the journal unit of the next two records only.
async fn one_append_then_room_for_the_journal_only(
    config: StoreConfig,
    layer: &Arc<FaultLayer>,
) -> Store {
    let store = Store::open_with_layer(config, layer.clone()).await.unwrap();
    store.create_log(1).await.unwrap();
    store.append(1, records(2, 0)).await.unwrap();
    // Its segment copy may still be waiting.
    store.settle_checkpoints().await.unwrap();
    room_for_the_journal_unit_only(layer);
    store
}

async fn assert_the_segment_copy_fails(store: &Store) {
    assert!(
        matches!(
            store.settle_checkpoints().await,
            Err(StorageError::Io { .. })
        ),
        "the copy to the segment fails"
    );
}

/// Reopens and finds both appends, the second restored from the journal.
async fn assert_replay_restores_both_appends(config: StoreConfig) {
    let store = Store::open(config).await.unwrap();
    let all = read_all(&store, 1).await;
    assert_eq!(all.len(), 4);
    assert!(all[2].data.starts_with(b"record 1/0"));
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_a_segment_fences_and_the_journal_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    let store = one_append_then_room_for_the_journal_only(config(dir.path()), &layer).await;
    // A later arrival time, for the look-up by time below.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // Durable in the journal and held by the cache: acknowledged before the segment copy,
    // whose failure then fences the store.
    let ack = store.append(1, records(2, 1)).await.unwrap();
    assert_eq!(ack.first_sequence, 2);
    assert_the_segment_copy_fails(&store).await;
    layer.space_left.store(u64::MAX, Ordering::SeqCst);
    assert!(
        is_io(&store.append(1, records(2, 2)).await),
        "fenced until reopen"
    );
    let before = read_all(&store, 1).await;
    assert_eq!(before.len(), 4, "the acknowledged records stay readable");
    assert!(before[1].arrival_ms < before[2].arrival_ms);
    // Past the segments' end, the look-up finds it in the cache.
    assert_eq!(
        store
            .sequence_at_time(1, before[2].arrival_ms)
            .await
            .unwrap(),
        2
    );
    drop(store);
    // Replay copies the acknowledged frame to its segment.
    assert_replay_restores_both_appends(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_the_cache_reads_the_segments_then_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    let mut config = config(dir.path());
    // Room for one batch of two records: the next batch evicts the first.
    config.cache_bytes_max = records(2, 1)
        .iter()
        .map(|r| (r.key.len() + r.data.len()) as u64 + crate::cache::RECORD_OVERHEAD_BYTES)
        .sum();
    let store = one_append_then_room_for_the_journal_only(config, &layer).await;
    // The next frame is acknowledged and cached, and its segment copy fails: the window
    // between an acknowledgement and its copy, held open.
    store.append(1, records(2, 1)).await.unwrap();
    assert_the_segment_copy_fails(&store).await;
    // Record 0 is no longer cached: the segments up to where they end, then the cache.
    let all = store.read(1, 0, usize::MAX, usize::MAX).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(all[2].data.starts_with(b"record 1/0"));
    // The limits hold across the two.
    let three = store.read(1, 0, 3, usize::MAX).await.unwrap();
    assert_eq!(three.len(), 3);
    let one_record_of_bytes = all[0].key.len() + all[0].data.len();
    let bounded = store
        .read(1, 1, usize::MAX, 2 * one_record_of_bytes)
        .await
        .unwrap();
    assert_eq!(
        bounded.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cache_a_failed_segment_copy_fails_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    let mut config = config(dir.path());
    config.cache_bytes_max = 0;
    let store = one_append_then_room_for_the_journal_only(config.clone(), &layer).await;
    // Readers would only find it in the segment: the copy comes first, and its failure is
    // the append's.
    assert!(is_io(&store.append(1, records(2, 1)).await));
    layer.space_left.store(u64::MAX, Ordering::SeqCst);
    assert!(
        is_io(&store.append(1, records(2, 2)).await),
        "fenced until reopen"
    );
    assert_eq!(read_all(&store, 1).await.len(), 2);
    drop(store);
    // The failed append was durable in the journal: reporting Io for it was the
    // ambiguous "may or may not be durable" answer, and replay restored it whole.
    assert_replay_restores_both_appends(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_under_concurrent_pipelined_appends_leaves_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    let store = Store::open_with_layer(config(dir.path()), layer.clone())
        .await
        .unwrap();
    for log in 0..3 {
        store.create_log(log).await.unwrap();
    }
    let mut tasks = Vec::new();
    for task in 0..12u64 {
        let store = store.clone();
        let layer = layer.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40u64 {
                if task == 0 && i == 10 {
                    layer.space_left.store(3000, Ordering::SeqCst); // the disk fills up
                }
                if task == 0 && i == 30 {
                    layer.space_left.store(u64::MAX, Ordering::SeqCst); // space returns
                }
                let log = (task + i) % 3;
                let tag = task * 1000 + i;
                match store.append(log, records(2, tag)).await {
                    Ok(ack) => acked.push((log, ack.first_sequence, tag)),
                    Err(StorageError::Io { .. }) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            acked
        }));
    }
    let mut acked = BTreeMap::new();
    for task in tasks {
        for (log, sequence, tag) in task.await.unwrap() {
            acked.insert((log, sequence), tag);
        }
    }
    // A full disk can fence (if it tears a segment write); either way a reopen recovers.
    drop(store);
    let store = Store::open(config(dir.path())).await.unwrap();
    for log in 0..3 {
        let all = read_all(&store, log).await;
        for ((_, sequence), tag) in acked.range((log, 0)..(log + 1, 0)) {
            let record = &all[*sequence as usize];
            assert!(
                record
                    .data
                    .starts_with(format!("record {tag}/0").as_bytes()),
                "log {log} seq {sequence}"
            );
        }
    }
    assert!(acked.len() > 100, "most appends succeeded: {}", acked.len());
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_while_placing_a_frame_fails_the_append_without_fencing() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    let mut config = config(dir.path());
    config.placed_frame_bytes_min = 1; // every frame goes straight to its segment
    let store = Store::open_with_layer(config.clone(), layer.clone())
        .await
        .unwrap();
    store.create_log(1).await.unwrap();
    for tag in 0..3 {
        store.append(1, records(4, tag)).await.unwrap();
    }
    assert!(store.metrics().placed_bytes > 0);
    // Room for part of the frame: the segment write tears before the unit is written.
    layer.space_left.store(100, Ordering::SeqCst);
    assert!(is_io(&store.append(1, records(4, 99)).await));
    layer.space_left.store(u64::MAX, Ordering::SeqCst);
    // Nothing reached the journal, so nothing needs a reopen: the next append continues.
    let ack = store.append(1, records(2, 3)).await.unwrap();
    assert_eq!(ack.first_sequence, 12);
    let before_crash = read_all(&store, 1).await;
    assert_eq!(before_crash.len(), 14);
    drop(store);
    let store = Store::open(config).await.unwrap();
    assert_eq!(read_all(&store, 1).await, before_crash);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_frame_whose_unit_failed_is_cut_from_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    let mut config = config(dir.path());
    config.placed_frame_bytes_min = 1; // every frame goes straight to its segment
    let store = Store::open_with_layer(config.clone(), layer.clone())
        .await
        .unwrap();
    store.create_log(1).await.unwrap();
    store.append(1, records(40, 0)).await.unwrap(); // ~5 KiB of the 8 KiB segment
    // Room for the placed frame but not for its unit: the frame reaches the segment, the
    // journal write tears, the append fails.
    let frame_len = 36
        + records(15, 1)
            .iter()
            .map(crate::format::record_encoded_len)
            .sum::<usize>();
    layer
        .space_left
        .store(frame_len as u64 + 10, Ordering::SeqCst);
    assert!(is_io(&store.append(1, records(15, 1)).await));
    layer.space_left.store(u64::MAX, Ordering::SeqCst);
    // The next batch does not fit the segment: the roll seals it. Had the failed frame
    // stayed past the visible end, the sealed segment would end at sequence 55 while its
    // successor starts at 40.
    let ack = store.append(1, records(35, 2)).await.unwrap();
    assert_eq!(ack.first_sequence, 40);
    assert!(store.metrics().segment_rolls > 0);
    let before = read_all(&store, 1).await;
    assert_eq!(before.len(), 75);
    store.shutdown().await.unwrap();
    let store = Store::open(config).await.unwrap();
    assert_eq!(read_all(&store, 1).await, before);
    store.shutdown().await.unwrap();
}

/// A store over `layer` with logs 1-4.
async fn open_four_logs(dir: &std::path::Path, layer: Arc<dyn crate::io::WriteLayer>) -> Store {
    let store = Store::open_with_layer(config(dir), layer).await.unwrap();
    for log in 1..=4 {
        store.create_log(log).await.unwrap();
    }
    store
}

/// 16 appenders over logs 1-4, each appending one record at a time until `per_task` are
/// done or an append fails; every acknowledged `(log, sequence, tag)`.
async fn append_concurrently(store: &Store, per_task: u64) -> Vec<(u64, u64, u64)> {
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16u64 {
        let store = store.clone();
        tasks.spawn(async move {
            let log = task % 4 + 1;
            let mut acked = Vec::new();
            for i in 0..per_task {
                let tag = task * 1_000_000 + i;
                match store.append(log, records(1, tag)).await {
                    Ok(ack) => acked.push((log, ack.first_sequence, tag)),
                    Err(StorageError::Io { .. }) => break,
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
            acked
        });
    }
    let mut acked = Vec::new();
    while let Some(task) = tasks.join_next().await {
        acked.extend(task.unwrap());
    }
    acked
}

/// Appenders that go on until their appends fail, in the background.
fn append_until_failure(store: &Store) -> tokio::task::JoinHandle<Vec<(u64, u64, u64)>> {
    let store = store.clone();
    tokio::spawn(async move { append_concurrently(&store, u64::MAX).await })
}

/// What `append_until_failure` acknowledged, once the failure has stopped every appender.
async fn acknowledged(
    appending: tokio::task::JoinHandle<Vec<(u64, u64, u64)>>,
) -> Vec<(u64, u64, u64)> {
    tokio::time::timeout(std::time::Duration::from_secs(30), appending)
        .await
        .expect("every appender stops at its failed append")
        .unwrap()
}

/// After a crash and reopen: every acknowledged record is there, at its sequence, with its
/// bytes (`read_all` checks that each log is gap-free).
async fn assert_recovered(dir: &std::path::Path, acked: &[(u64, u64, u64)]) {
    let store = Store::open(config(dir)).await.unwrap();
    let mut logs = BTreeMap::new();
    for log in 1..=4 {
        logs.insert(log, read_all(&store, log).await);
    }
    for &(log, sequence, tag) in acked {
        let record = logs[&log]
            .iter()
            .find(|r| r.sequence == sequence)
            .unwrap_or_else(|| panic!("acknowledged {log}/{sequence} lost"));
        assert!(
            record
                .data
                .starts_with(format!("record {tag}/0 ").as_bytes()),
            "{log}/{sequence} holds another record"
        );
    }
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_group_commits_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    // Syncs as slow as a real disk's, so appends arrive while one runs.
    layer.sync_delay_micros.store(300, Ordering::SeqCst);
    let store = open_four_logs(dir.path(), layer).await;
    let acked = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        append_concurrently(&store, 150),
    )
    .await
    .expect("the appends finish");
    assert_eq!(acked.len(), 16 * 150);
    let metrics = store.metrics();
    assert!(
        metrics.pipelined_syncs > 0 && metrics.checkpoints > 0 && metrics.segment_runs > 0,
        "the load must reach the sync thread, checkpoints and segment runs: {metrics:?}"
    );
    drop(store); // crash
    assert_recovered(dir.path(), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipelined_sync_fences_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Arc::new(FaultLayer::new());
    layer.sync_delay_micros.store(300, Ordering::SeqCst);
    let store = open_four_logs(dir.path(), layer.clone()).await;
    let appending = append_until_failure(&store);
    // Once units are being handed to the sync thread, fail one of those syncs (and so
    // every later one: the disk is gone).
    while store.metrics().pipelined_syncs < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    layer.fail_pipelined_sync.store(true, Ordering::SeqCst);
    let acked = acknowledged(appending).await;
    layer.fail_pipelined_sync.store(false, Ordering::SeqCst);
    layer.fail_sync.store(false, Ordering::SeqCst);
    assert!(
        is_io(&store.append(1, records(1, 0)).await),
        "fenced until reopen"
    );
    drop(store); // crash
    assert_recovered(dir.path(), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_loses_nothing_acknowledged() {
    // Cuts at several moments of a concurrent load (pipelined units, segment rolls and
    // checkpoints among them); each time, whatever no finished sync covered is undone.
    for cut_after_commits in [30, 120, 400] {
        let dir = tempfile::tempdir().unwrap();
        let layer = Arc::new(crate::io::power::PowerCutLayer::default());
        let store = open_four_logs(dir.path(), layer.clone()).await;
        let appending = append_until_failure(&store);
        while store.metrics().group_commits < cut_after_commits {
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
        layer.cut();
        let acked = acknowledged(appending).await;
        assert!(!acked.is_empty());
        drop(store);
        assert_recovered(dir.path(), &acked).await;
    }
}
