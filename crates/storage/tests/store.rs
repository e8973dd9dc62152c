//! Store behaviour through the public API: the happy path across crash and clean restarts,
//! long-polling the tail, the weaker sync policies, and corruption that recovery must
//! report (never skip).

#![allow(clippy::unwrap_used)] // test helpers, not product code

use bytes::Bytes;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use millstream_storage::{AppendRecord, StorageError, Store, StoreConfig, SyncPolicy};

fn rec(data: &str) -> AppendRecord {
    AppendRecord {
        key: Bytes::from_static(b"k"),
        data: Bytes::copy_from_slice(data.as_bytes()),
        flags: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_read_reopen_seal_trim_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.segment_bytes_max = 2048;
    config.journal_bytes_max = 8192;
    let store = Store::open(config.clone()).await.unwrap();
    store.create_log(1).await.unwrap();
    store.create_log(1).await.unwrap();
    assert!(matches!(
        store.append(2, vec![rec("x")]).await,
        Err(StorageError::LogNotFound(2))
    ));
    let mut expected = Vec::new();
    for i in 0..200 {
        let ack = store
            .append(1, vec![rec(&format!("a{i}")), rec(&format!("b{i}"))])
            .await
            .unwrap();
        assert_eq!(ack.first_sequence, i * 2);
        expected.push(format!("a{i}"));
        expected.push(format!("b{i}"));
    }
    let got = store.read(1, 0, 1000, usize::MAX).await.unwrap();
    assert_eq!(got.len(), 400);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.sequence, i as u64);
        assert_eq!(r.data, expected[i].as_bytes());
    }
    assert!(store.metrics().segment_rolls > 0, "{:?}", store.metrics());
    assert!(store.metrics().checkpoints > 0, "{:?}", store.metrics());
    let t = store.tail(1).unwrap();
    assert_eq!(t.next_sequence, 400);
    drop(store); // crash
    let store = Store::open(config.clone()).await.unwrap();
    assert_eq!(store.logs(), vec![1]);
    let got = store.read(1, 0, 1000, usize::MAX).await.unwrap();
    assert_eq!(got.len(), 400);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.sequence, i as u64);
        assert_eq!(r.data, expected[i].as_bytes());
    }
    let got = store.read(1, 123, 10, usize::MAX).await.unwrap();
    assert_eq!(got[0].sequence, 123);
    assert_eq!(got.len(), 10);
    let first_arrival = got[0].arrival_ms;
    assert!(store.sequence_at_time(1, first_arrival).await.unwrap() <= 123);
    assert_eq!(store.sequence_at_time(1, u64::MAX).await.unwrap(), 400);
    assert_eq!(store.seal(1).await.unwrap(), 400);
    assert!(matches!(
        store.append(1, vec![rec("x")]).await,
        Err(StorageError::Sealed(1))
    ));
    store.trim_before(1, u64::MAX).await.unwrap();
    let t = store.tail(1).unwrap();
    assert_eq!((t.first_sequence, t.next_sequence), (400, 400));
    assert!(store.read(1, 0, 10, 100).await.unwrap().is_empty());
    store.shutdown().await.unwrap();
    assert!(matches!(store.tail(1), Err(StorageError::Closed)));
    drop(store);
    let store = Store::open(config.clone()).await.unwrap();
    let t = store.tail(1).unwrap();
    assert_eq!(
        (t.first_sequence, t.next_sequence, t.sealed),
        (400, 400, false)
    );
    let ack = store.append(1, vec![rec("after")]).await.unwrap();
    assert_eq!(ack.first_sequence, 400);
    let huge = AppendRecord {
        key: Bytes::new(),
        data: Bytes::from(vec![0u8; 65 << 20]),
        flags: 0,
    };
    let err = store.append(1, vec![huge]).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput),
        "{err}"
    );
    let big = AppendRecord {
        key: Bytes::from(vec![1u8; 256]),
        data: Bytes::from(vec![7u8; 10 << 20]),
        flags: 0,
    };
    let ack = store.append(1, vec![big.clone()]).await.unwrap();
    let got = store.read(1, ack.first_sequence, 10, 1).await.unwrap();
    assert_eq!(
        (got.len(), &got[0].data),
        (1, &big.data),
        "one record even over max_bytes"
    );
    store.delete_log(1).await.unwrap();
    assert!(store.logs().is_empty());
    drop(store);
    let store = Store::open(config).await.unwrap();
    assert!(store.logs().is_empty());
}

fn segments(dir: &Path, log: u64) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> =
        std::fs::read_dir(dir.join("logs").join(format!("{log:016x}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
    segments.sort();
    segments
}

fn flip_byte(path: &Path, offset: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x40;
    file.write_all_at(&b, offset).unwrap();
}

async fn filled_store(dir: &Path, appends: usize) -> (StoreConfig, Store) {
    let mut config = StoreConfig::new(dir);
    config.segment_bytes_max = 4096;
    config.journal_bytes_max = 1 << 20;
    config.cache_bytes_max = 0;
    let store = Store::open(config.clone()).await.unwrap();
    store.create_log(1).await.unwrap();
    for i in 0..appends {
        store
            .append(1, vec![rec(&format!("record {i} {}", "y".repeat(200)))])
            .await
            .unwrap();
    }
    (config, store)
}

fn expect_corrupt(result: Result<impl std::fmt::Debug, StorageError>, file: &Path) {
    match result {
        Err(StorageError::Corrupt {
            path,
            offset,
            reason,
        }) => {
            assert_eq!(path, file, "names the damaged file ({reason})");
            assert!(offset > 0, "names an offset ({reason})");
        }
        other => panic!("expected Corrupt for {}, got {other:?}", file.display()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_tail_wakes_a_long_poller_once_records_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    store.create_log(5).await.unwrap();
    let mut watch = store.watch_tail(5).unwrap();
    assert_eq!(*watch.borrow_and_update(), 0);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            watch.changed().await.unwrap();
            let next = *watch.borrow_and_update();
            (next, store.read(5, 0, 100, usize::MAX).await.unwrap())
        })
    };
    store.append(5, vec![rec("a"), rec("b")]).await.unwrap();
    let (next, records) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, 2);
    assert_eq!(records.len(), 2, "whatever the watch announces is readable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_and_never_policies_survive_a_process_crash() {
    for policy in [
        SyncPolicy::Interval(Duration::from_millis(5)),
        SyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.sync_policy = policy;
        let store = Store::open(config.clone()).await.unwrap();
        store.create_log(1).await.unwrap();
        for i in 0..50 {
            store.append(1, vec![rec(&format!("{i}"))]).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // let an interval sync happen
        drop(store);
        let store = Store::open(config).await.unwrap();
        assert_eq!(
            store.read(1, 0, 100, usize::MAX).await.unwrap().len(),
            50,
            "{policy:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_sealed_segment_is_corrupt_on_read_and_on_open_without_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = filled_store(dir.path(), 60).await;
    drop(store);
    let sealed = segments(dir.path(), 1)[0].clone();
    flip_byte(&sealed, 48 + 36 + 20); // inside the first frame's records
    // The persisted index lets open skip the scan: the read finds the damage.
    let store = Store::open(config.clone()).await.unwrap();
    expect_corrupt(store.read(1, 0, 10, usize::MAX).await, &sealed);
    drop(store);
    // Without the index, open scans the sealed segment and refuses.
    std::fs::remove_file(sealed.with_extension("idx")).unwrap();
    match Store::open(config).await {
        Err(StorageError::Corrupt { path, offset, .. }) => assert_eq!((path, offset), (sealed, 48)),
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_below_the_checkpoint_in_the_active_segment_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = filled_store(dir.path(), 5).await;
    store.shutdown().await.unwrap(); // checkpoint: the segment is now the only copy
    let active = segments(dir.path(), 1).pop().unwrap();
    flip_byte(&active, 48 + 36 + 20);
    // The checkpoint persisted the active segment's index, so open skips that prefix and
    // the read's checksum finds the damage.
    let store = Store::open(config.clone()).await.unwrap();
    expect_corrupt(store.read(1, 0, 10, usize::MAX).await, &active);
    drop(store);
    // Without the index, open scans it and refuses.
    std::fs::remove_file(active.with_extension("idx")).unwrap();
    expect_corrupt(Store::open(config).await.map(|_| ()), &active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_above_the_checkpoint_in_the_active_segment_is_restored_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = filled_store(dir.path(), 5).await;
    let before = store.read(1, 0, 100, usize::MAX).await.unwrap();
    drop(store); // crash: the journal still holds every frame since the checkpoint
    let active = segments(dir.path(), 1).pop().unwrap();
    flip_byte(&active, 48 + 36 + 20); // first frame: valid frames follow it
    let store = Store::open(config).await.unwrap();
    assert_eq!(store.read(1, 0, 100, usize::MAX).await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_middle_of_the_journal_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = filled_store(dir.path(), 5).await;
    drop(store); // crash: five units after the checkpoint
    let journal = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&journal).unwrap();
    let checkpoint_len = 20 + u32::from_be_bytes(bytes[48..52].try_into().unwrap()) as u64;
    flip_byte(&journal, 48 + checkpoint_len + 20 + 36 + 20); // first unit's first record
    expect_corrupt(Store::open(config).await.map(|_| ()), &journal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_tail_is_cut_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = filled_store(dir.path(), 5).await;
    let before = store.read(1, 0, 100, usize::MAX).await.unwrap();
    drop(store);
    let journal = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let len = std::fs::metadata(&journal).unwrap().len();
    // A half-written sixth unit: a copy of the header of the last one, then zeros.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    file.write_all_at(
        &[
            0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1,
        ],
        len,
    )
    .unwrap();
    file.set_len(len + 300).unwrap();
    let store = Store::open(config.clone()).await.unwrap();
    assert_eq!(store.read(1, 0, 100, usize::MAX).await.unwrap(), before);
    assert_eq!(
        store
            .append(1, vec![rec("next")])
            .await
            .unwrap()
            .first_sequence,
        5
    );
    drop(store);
    let store = Store::open(config).await.unwrap();
    assert_eq!(store.tail(1).unwrap().next_sequence, 6);
}

/// Segment files of `dir` this process holds open.
fn open_segment_files(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| {
            target.starts_with(dir) && target.extension().is_some_and(|ext| ext == "seg")
        })
        .count()
}

/// Idle logs hold no file descriptor: one that was never written has none, one written and
/// then left alone for a whole checkpoint interval gives its back, and either is opened
/// again by the next append, before and after a reopen, with every record readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_logs_hold_no_open_segment_file() {
    const LOGS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.journal_bytes_max = 4096;
    // Reads come from the segment files, not the cache.
    config.cache_bytes_max = 1;
    let store = Store::open(config.clone()).await.unwrap();
    for log in 0..LOGS {
        store.create_log(log).await.unwrap();
    }
    assert_eq!(open_segment_files(dir.path()), 0, "created, never written");

    for log in 0..LOGS {
        store
            .append(log, vec![rec(&format!("first {log}"))])
            .await
            .unwrap();
    }
    assert!(open_segment_files(dir.path()) >= LOGS as usize);

    let checkpoints = store.metrics().checkpoints;
    let mut busy = 0;
    while store.metrics().checkpoints < checkpoints + 3 {
        store
            .append(0, vec![rec(&format!("busy {busy} {}", "x".repeat(300)))])
            .await
            .unwrap();
        busy += 1;
    }
    let open = open_segment_files(dir.path());
    assert!(open <= 3, "only the busy log's file stays open, not {open}");

    store.append(7, vec![rec("second 7")]).await.unwrap();
    let got = store.read(7, 0, 10, usize::MAX).await.unwrap();
    let texts: Vec<&[u8]> = got.iter().map(|r| &r.data[..]).collect();
    assert_eq!(texts, [&b"first 7"[..], b"second 7"]);

    drop(store); // crash
    let store = Store::open(config).await.unwrap();
    assert_eq!(
        open_segment_files(dir.path()),
        0,
        "recovered, not yet written"
    );
    for log in 0..LOGS {
        let got = store.read(log, 0, 10_000, usize::MAX).await.unwrap();
        let expected = match log {
            0 => 1 + busy,
            7 => 2,
            _ => 1,
        };
        assert_eq!(got.len(), expected, "log {log}");
        assert_eq!(got[0].data, format!("first {log}").as_bytes());
    }
    store.append(7, vec![rec("third 7")]).await.unwrap();
    let got = store.read(7, 0, 10, usize::MAX).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].data, &b"third 7"[..]);
}

/// A segment that cannot be opened fails the appends to its log, not the store: the frame
/// never reaches the journal, and other logs keep taking writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unopenable_segment_fails_its_appends_without_fencing_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path());
    let store = Store::open(config).await.unwrap();
    store.create_log(1).await.unwrap();
    store.create_log(2).await.unwrap();
    let [segment] = segments(dir.path(), 1).try_into().unwrap();
    std::fs::remove_file(&segment).unwrap();
    assert!(matches!(
        store.append(1, vec![rec("lost")]).await,
        Err(StorageError::Io { .. })
    ));
    let ack = store.append(2, vec![rec("kept")]).await.unwrap();
    assert_eq!(ack.first_sequence, 0);
    let got = store.read(2, 0, 10, usize::MAX).await.unwrap();
    assert_eq!(got[0].data, &b"kept"[..]);
}

fn journal_files(dir: &Path) -> Vec<PathBuf> {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    journals.sort();
    journals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeros_written_ahead_of_the_journal_are_its_clean_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path());
    let store = Store::open(config.clone()).await.unwrap();
    store.create_log(1).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..20 {
        let data = format!("record {i}");
        store.append(1, vec![rec(&data)]).await.unwrap();
        expected.push(data);
    }
    let journal = journal_files(dir.path()).pop().unwrap();
    let units_end = store.metrics().journal_bytes;
    // Dropping waits for the helper thread's fill, like the end of the process would.
    drop(store); // crash
    let prepared = std::fs::metadata(&journal).unwrap().len();
    assert!(
        prepared >= 64 << 10 && prepared > units_end + 4096,
        "zeros written ahead: file {prepared} B, units {units_end} B"
    );

    let store = Store::open(config.clone()).await.unwrap();
    let got: Vec<String> = store
        .read(1, 0, 100, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        std::fs::metadata(&journal).unwrap().len(),
        prepared,
        "recovery kept the space instead of cutting it as a torn tail"
    );
    // New units overwrite the zeros, and the next recovery reads them back.
    for i in 20..30 {
        let data = format!("record {i}");
        let ack = store.append(1, vec![rec(&data)]).await.unwrap();
        assert_eq!(ack.first_sequence, i);
        expected.push(data);
    }
    drop(store);
    let store = Store::open(config).await.unwrap();
    let got = store.read(1, 0, 100, usize::MAX).await.unwrap();
    assert_eq!(got.len(), 30);
    assert_eq!(got[29].data, expected[29].as_bytes());
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_unit_stops_the_zero_fill_it_would_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path());
    let store = Store::open(config.clone()).await.unwrap();
    for log in 0..8 {
        store.create_log(log).await.unwrap();
    }
    for round in 0..5 {
        // A small unit starts a 4 MiB fill ahead of it (in 256 KiB steps); the ~800 KiB
        // unit of the eight appends right after it (each journaled, below the placement
        // threshold) needs several steps of that range at once.
        store
            .append(0, vec![rec(&format!("small {round}"))])
            .await
            .unwrap();
        let appends: Vec<_> = (0..8)
            .map(|log| {
                let store = store.clone();
                let data = format!("large {round} {}", "z".repeat(100 << 10));
                tokio::spawn(async move { store.append(log, vec![rec(&data)]).await.unwrap() })
            })
            .collect();
        for append in appends {
            append.await.unwrap();
        }
    }
    drop(store);
    let store = Store::open(config).await.unwrap();
    for log in 0..8 {
        let got = store.read(log, 0, 100, usize::MAX).await.unwrap();
        let large: Vec<&Bytes> = got
            .iter()
            .map(|r| &r.data)
            .filter(|d| d.starts_with(b"large"))
            .collect();
        assert_eq!(large.len(), 5, "log {log}");
        for (round, data) in large.iter().enumerate() {
            assert!(data.starts_with(format!("large {round} zzz").as_bytes()));
            assert_eq!(data.len(), format!("large {round} ").len() + (100 << 10));
        }
    }
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_stage_times_count_every_append_and_fit_inside_its_total() {
    use millstream_storage::AppendStage;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    store.create_log(1).await.unwrap();
    store.create_log(2).await.unwrap();
    // Concurrent appends to two logs, so batches hold several appends and group commits
    // several batches: each stage must still count every append once.
    let mut tasks = Vec::new();
    for task in 0..16u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store
                    .append(1 + task % 2, vec![rec(&format!("{task}-{i}")), rec("x")])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stages = store.metrics().append_stages;
    let time = |stage: AppendStage| stages[stage as usize];
    for stage in AppendStage::ALL {
        assert_eq!(time(stage).appends, 400, "{stage:?}: {stages:?}");
        assert!(time(stage).nanos > 0, "{stage:?}: {stages:?}");
    }
    // Each append's stages are disjoint stretches of its total, so over the same appends
    // their sums fit inside the total's.
    let parts: u64 = [
        AppendStage::Mailbox,
        AppendStage::JournalQueue,
        AppendStage::GroupCommit,
        AppendStage::Completion,
    ]
    .iter()
    .map(|&stage| time(stage).nanos)
    .sum();
    assert!(
        parts <= time(AppendStage::Total).nanos,
        "{parts} > total: {stages:?}"
    );
    // Every append's group commit spans its unit's whole fdatasync (one per unit here: no
    // checkpoint), and every unit holds at least one append.
    let sync = store.metrics().journal_sync_nanos_total;
    assert!(
        time(AppendStage::GroupCommit).nanos >= sync,
        "group commits shorter than their syncs ({sync} ns): {stages:?}"
    );
}

fn records(n: usize, tag: &str) -> Vec<AppendRecord> {
    (0..n).map(|i| rec(&format!("{tag}{i}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_many_answers_each_append_in_order_and_numbers_one_log_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    for log in 0..3 {
        store.create_log(log).await.unwrap();
    }
    store.append(1, records(2, "before")).await.unwrap();
    let answers = store
        .append_many(vec![
            (0, records(3, "a")),
            (1, records(1, "b")),
            (7, records(1, "missing")),
            (0, records(2, "c")),
            (2, Vec::new()),
        ])
        .await;
    assert_eq!(answers.len(), 5);
    assert_eq!(answers[0].as_ref().unwrap().first_sequence, 0);
    assert_eq!(answers[1].as_ref().unwrap().first_sequence, 2);
    assert!(matches!(answers[2], Err(StorageError::LogNotFound(7))));
    assert_eq!(
        answers[3].as_ref().unwrap().first_sequence,
        3,
        "the second append to log 0 follows the first"
    );
    assert_eq!(answers[4].as_ref().unwrap().first_sequence, 0);
    let log0 = store.read(0, 0, 100, usize::MAX).await.unwrap();
    let data: Vec<_> = log0.iter().map(|r| r.data.clone()).collect();
    assert_eq!(
        data,
        records(3, "a")
            .into_iter()
            .chain(records(2, "c"))
            .map(|r| r.data)
            .collect::<Vec<_>>()
    );
    store.shutdown().await.unwrap();
}

/// Appends one after another, each its own group commit: their frames wait for their copy
/// to the segment and reach it in gathered writes, while every read and look-up by time
/// sees each record as soon as it is acknowledged, and a crash loses none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_appends_reach_the_segment_in_gathered_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path());
    let store = Store::open(config.clone()).await.unwrap();
    store.create_log(1).await.unwrap();
    let mut arrivals = Vec::new();
    for i in 0..100u64 {
        let ack = store.append(1, vec![rec(&format!("r{i}"))]).await.unwrap();
        assert_eq!(ack.first_sequence, i);
        arrivals.push(ack.arrival_ms);
        let got = store.read(1, 0, usize::MAX, usize::MAX).await.unwrap();
        assert_eq!(got.len() as u64, i + 1, "acknowledged means readable");
        assert_eq!(got[i as usize].data, format!("r{i}").as_bytes());
        assert_eq!(
            store.sequence_at_time(1, ack.arrival_ms).await.unwrap(),
            arrivals.iter().position(|&a| a == ack.arrival_ms).unwrap() as u64
        );
    }
    assert_eq!(store.metrics().group_commits, 100, "one per append");
    assert_eq!(
        store.metrics().segment_runs,
        0,
        "nothing copied yet: 100 small frames"
    );
    assert!(store.metrics().pending_copy_bytes > 100 * 3);
    store.settle_checkpoints().await.unwrap();
    assert_eq!(store.metrics().segment_runs, 1, "all 100 in one write");
    assert_eq!(store.metrics().pending_copy_bytes, 0);
    drop(store); // crash
    let store = Store::open(config).await.unwrap();
    let got = store.read(1, 0, usize::MAX, usize::MAX).await.unwrap();
    assert_eq!(got.len(), 100);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, r)| r.data == format!("r{i}").as_bytes())
    );
}

/// A cache far smaller than what waits for its copy: frames are copied to their segments
/// before the cache evicts them, so reads stay whole on every log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_copies_land_before_the_cache_evicts_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.cache_bytes_max = 2000; // ~28 records of this test
    let store = Store::open(config).await.unwrap();
    for log in 0..3 {
        store.create_log(log).await.unwrap();
    }
    for i in 0..150u64 {
        let log = i % 3;
        store
            .append(log, vec![rec(&format!("r{i}"))])
            .await
            .unwrap();
        for log in 0..3 {
            let got = store.read(log, 0, usize::MAX, usize::MAX).await.unwrap();
            let want = (i + 3 - log) / 3;
            assert_eq!(got.len() as u64, want, "log {log} after append {i}");
        }
    }
    assert!(store.metrics().segment_runs > 0, "{:?}", store.metrics());
}

/// An early flush round syncs every segment written since the last one: with many logs
/// written it waits until the journal has grown by 128 KiB per file it would sync, with
/// one log it comes every `journal_bytes_max / 8`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_flush_rounds_wait_for_enough_bytes_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.journal_bytes_max = 8 << 20; // a round every 1 MiB of journal, at the least
    let store = Store::open(config).await.unwrap();
    let record = |i: u64| AppendRecord {
        key: Bytes::from_static(b"k"),
        // Over 64 KiB: copied to its segment at once, not left pending.
        data: Bytes::from(vec![i as u8; 80 << 10]),
        flags: 0,
    };
    for log in 0..40 {
        store.create_log(log).await.unwrap();
    }
    // 40 files written, ~3.2 MiB of journal: a round would want 40 x 128 KiB = 5 MiB.
    for i in 0..40 {
        store.append(i, vec![record(i)]).await.unwrap();
    }
    store.settle_checkpoints().await.unwrap(); // the round starts after the answer
    assert_eq!(store.metrics().segment_flush_rounds, 0);
    // Another ~2 MiB over the same files: due.
    for i in 0..26 {
        store.append(i, vec![record(i)]).await.unwrap();
    }
    store.settle_checkpoints().await.unwrap();
    assert_eq!(store.metrics().segment_flush_rounds, 1);
    // One file written: a round every 1 MiB again.
    for _ in 0..14 {
        store.append(0, vec![record(0)]).await.unwrap();
    }
    store.settle_checkpoints().await.unwrap();
    assert_eq!(store.metrics().segment_flush_rounds, 2);
}
