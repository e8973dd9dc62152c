//! Model-based test: random create/append/read/seal/trim/delete/crash/reopen sequences run
//! against the store and a `Vec` model; they must agree. "Crash" drops the store without
//! `shutdown` (the journal thread stops without syncing or checkpointing, a running
//! checkpoint job stops at its next step), optionally after appending garbage to the
//! journals and a segment, as a torn write would leave, and after cutting segment bytes a
//! machine crash could lose. `Pause` holds later checkpoint jobs at one of their steps, so
//! crashes land with several journals present.

#![allow(clippy::unwrap_used)] // test helpers, not product code

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use millstream_storage::{
    AppendRecord, CheckpointPause, StorageError, Store, StoreConfig, StoredRecord, SyncPolicy,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Create(u64),
    Append {
        log: u64,
        records: Vec<(u8, usize, u8)>,
    },
    Read {
        log: u64,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    },
    Seal(u64),
    /// Cutoff = arrival of the record at this fraction of the log, plus 0 or 1 ms.
    Trim {
        log: u64,
        at: prop::sample::Index,
        plus: u64,
    },
    AtTime {
        log: u64,
        at: prop::sample::Index,
        plus: u64,
    },
    Delete(u64),
    Crash {
        torn: Option<Vec<u8>>,
        lose: Option<prop::sample::Index>,
    },
    /// Hold the background part of later checkpoints at this step (or release it), so
    /// that a following `Crash` lands in that window, with the old journal still present
    /// and frames of the same logs in both journals.
    Pause(Option<CheckpointPause>),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let log = 0u64..3;
    prop_oneof![
        2 => log.clone().prop_map(Op::Create),
        8 => (log.clone(), proptest::collection::vec((0u8..8, 0usize..300, any::<u8>()), 0..5))
            .prop_map(|(log, records)| Op::Append { log, records }),
        4 => (log.clone(), 0u64..80, 1usize..20, 1usize..800)
            .prop_map(|(log, from, max_records, max_bytes)| Op::Read { log, from, max_records, max_bytes }),
        1 => log.clone().prop_map(Op::Seal),
        1 => (log.clone(), any::<prop::sample::Index>(), 0u64..2).prop_map(|(log, at, plus)| Op::Trim { log, at, plus }),
        1 => (log.clone(), any::<prop::sample::Index>(), 0u64..2).prop_map(|(log, at, plus)| Op::AtTime { log, at, plus }),
        1 => log.clone().prop_map(Op::Delete),
        3 => (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..64)),
            proptest::option::of(any::<prop::sample::Index>()),
        )
            .prop_map(|(torn, lose)| Op::Crash { torn, lose }),
        1 => Just(Op::Restart),
        2 => proptest::option::of(prop_oneof![
            Just(CheckpointPause::BeforeSegmentSync),
            Just(CheckpointPause::MidSegmentSync),
            Just(CheckpointPause::BeforeJournalDelete),
            Just(CheckpointPause::MidJournalDelete),
        ])
        .prop_map(Op::Pause),
    ]
}

#[derive(Debug, Default, Clone)]
struct ModelLog {
    /// Retained records.
    records: Vec<StoredRecord>,
    next: u64,
    sealed: bool,
}

impl ModelLog {
    fn first(&self) -> u64 {
        self.records.first().map_or(self.next, |r| r.sequence)
    }
}

fn record(key_byte: u8, len: usize, flags: u8, salt: u64) -> AppendRecord {
    let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ salt) as u8).collect();
    AppendRecord {
        key: Bytes::from(vec![key_byte; key_byte as usize]),
        data: Bytes::from(data),
        flags,
    }
}

fn expected_read(
    log: &ModelLog,
    from: u64,
    max_records: usize,
    max_bytes: usize,
) -> Vec<StoredRecord> {
    let mut out: Vec<StoredRecord> = Vec::new();
    let mut bytes = 0;
    for r in log.records.iter().filter(|r| r.sequence >= from) {
        let size = r.key.len() + r.data.len();
        if out.len() >= max_records || (!out.is_empty() && bytes + size > max_bytes) {
            break;
        }
        bytes += size;
        out.push(r.clone());
    }
    out
}

fn tear(dir: &Path, garbage: &[u8]) {
    let append_to = |path: &Path| {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(garbage).unwrap();
    };
    for entry in std::fs::read_dir(dir.join("journal")).unwrap() {
        append_to(&entry.unwrap().path());
    }
    // The newest segment of the first log, if any.
    if let Some(log) = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .min()
    {
        let mut segments: Vec<_> = std::fs::read_dir(&log)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        if let Some(last) = segments.last() {
            append_to(last);
        }
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Simulates a machine crash for segment files: bytes a segment got after the journal's
/// last checkpoint were never fsynced and may be lost, at any point (even mid-frame). The
/// checkpoint (the first unit of the journal, see the crate docs) says from which sequence
/// on that is allowed; the journal still holds those records, so nothing may be lost.
fn lose_unsynced_segment_bytes(dir: &Path, at: prop::sample::Index) {
    // The oldest journal's checkpoint: newer ones may not have had their segments synced
    // yet (that happens in the background, before the older journals are deleted).
    let journal = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let bytes = std::fs::read(journal).unwrap();
    let payload = 48 + 20;
    let count = be_u32(&bytes, payload) as usize;
    let floors: BTreeMap<u64, u64> = (0..count)
        .map(|i| {
            (
                be_u64(&bytes, payload + 4 + i * 16),
                be_u64(&bytes, payload + 12 + i * 16),
            )
        })
        .collect();
    for log_dir in std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
    {
        let log = u64::from_str_radix(log_dir.file_name().unwrap().to_str().unwrap(), 16).unwrap();
        let floor = floors.get(&log).copied().unwrap_or(0);
        let mut segments: Vec<_> = std::fs::read_dir(&log_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        let last = segments.last().unwrap();
        let data = std::fs::read(last).unwrap();
        // Every byte offset from the first frame at or above the floor may be cut.
        let mut offset = 48;
        let mut cut_from = None;
        while offset + 36 <= data.len() {
            let first_sequence = be_u64(&data, offset + 16);
            if first_sequence >= floor {
                cut_from = Some(offset);
                break;
            }
            offset += 36 + be_u32(&data, offset) as usize;
        }
        if let Some(cut_from) = cut_from {
            let cut = cut_from + at.index(data.len() - cut_from + 1);
            std::fs::OpenOptions::new()
                .write(true)
                .open(last)
                .unwrap()
                .set_len(cut as u64)
                .unwrap();
        }
    }
}

async fn run(ops: Vec<Op>, segment_bytes_max: u64, cache_bytes_max: u64, sync_policy: SyncPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.segment_bytes_max = segment_bytes_max;
    config.journal_bytes_max = 4096;
    config.cache_bytes_max = cache_bytes_max;
    config.sync_policy = sync_policy;
    let mut store = Store::open(config.clone()).await.unwrap();
    let mut model: BTreeMap<u64, ModelLog> = BTreeMap::new();
    let mut deleted: BTreeSet<u64> = BTreeSet::new();
    let mut salt = 0u64;
    for op in ops {
        match op {
            Op::Create(log) => {
                if deleted.contains(&log) {
                    continue; // ids are never reused
                }
                store.create_log(log).await.unwrap();
                model.entry(log).or_default();
            }
            Op::Append { log, records } => {
                salt += 1;
                let records: Vec<AppendRecord> = records
                    .iter()
                    .map(|&(k, len, flags)| record(k, len, flags, salt))
                    .collect();
                let result = store.append(log, records.clone()).await;
                match model.get_mut(&log) {
                    None => assert!(
                        matches!(result, Err(StorageError::LogNotFound(_))),
                        "{result:?}"
                    ),
                    Some(m) if m.sealed => {
                        assert!(matches!(result, Err(StorageError::Sealed(_))), "{result:?}")
                    }
                    Some(m) => {
                        let ack = result.unwrap();
                        assert_eq!(ack.first_sequence, m.next);
                        if let Some(last) = m.records.last() {
                            assert!(ack.arrival_ms >= last.arrival_ms, "arrival never decreases");
                        }
                        for (i, r) in records.into_iter().enumerate() {
                            m.records.push(StoredRecord {
                                sequence: m.next + i as u64,
                                arrival_ms: ack.arrival_ms,
                                key: r.key,
                                data: r.data,
                                flags: r.flags,
                            });
                        }
                        m.next = m.records.last().map_or(m.next, |r| r.sequence + 1);
                    }
                }
            }
            Op::Read {
                log,
                from,
                max_records,
                max_bytes,
            } => {
                let result = store.read(log, from, max_records, max_bytes).await;
                match model.get(&log) {
                    None => assert!(matches!(result, Err(StorageError::LogNotFound(_)))),
                    Some(m) => assert_eq!(
                        result.unwrap(),
                        expected_read(m, from, max_records, max_bytes)
                    ),
                }
            }
            Op::Seal(log) => {
                let result = store.seal(log).await;
                match model.get_mut(&log) {
                    None => assert!(matches!(result, Err(StorageError::LogNotFound(_)))),
                    Some(m) => {
                        assert_eq!(result.unwrap(), m.next);
                        m.sealed = true;
                    }
                }
            }
            Op::Trim { log, at, plus } => {
                let Some(m) = model.get_mut(&log) else {
                    assert!(matches!(
                        store.trim_before(log, 0).await,
                        Err(StorageError::LogNotFound(_))
                    ));
                    continue;
                };
                let cutoff = if m.records.is_empty() {
                    u64::MAX
                } else {
                    m.records[at.index(m.records.len())].arrival_ms + plus
                };
                let before = store.tail(log).unwrap().first_sequence;
                store.trim_before(log, cutoff).await.unwrap();
                let first = store.tail(log).unwrap().first_sequence;
                assert!(first >= before && first <= m.next);
                // Only records older than the cutoff may go, and only whole segments: a
                // record at or after the cutoff is never trimmed.
                for r in m.records.iter().filter(|r| r.sequence < first) {
                    assert!(
                        r.arrival_ms < cutoff,
                        "trimmed a record that arrived after the cutoff"
                    );
                }
                m.records.retain(|r| r.sequence >= first);
                assert_eq!(m.first(), first);
            }
            Op::AtTime { log, at, plus } => {
                let result = store.sequence_at_time(log, 0).await;
                let Some(m) = model.get(&log) else {
                    assert!(matches!(result, Err(StorageError::LogNotFound(_))));
                    continue;
                };
                assert_eq!(result.unwrap(), m.first());
                let t = if m.records.is_empty() {
                    1
                } else {
                    m.records[at.index(m.records.len())].arrival_ms + plus
                };
                let want = m
                    .records
                    .iter()
                    .find(|r| r.arrival_ms >= t)
                    .map_or(m.next, |r| r.sequence);
                assert_eq!(store.sequence_at_time(log, t).await.unwrap(), want);
            }
            Op::Delete(log) => {
                let result = store.delete_log(log).await;
                if model.remove(&log).is_some() {
                    result.unwrap();
                    deleted.insert(log);
                } else {
                    assert!(matches!(result, Err(StorageError::LogNotFound(_))));
                }
            }
            Op::Crash { torn, lose } => {
                drop(store);
                if let Some(at) = lose {
                    lose_unsynced_segment_bytes(dir.path(), at);
                }
                if let Some(garbage) = torn {
                    tear(dir.path(), &garbage);
                }
                store = Store::open(config.clone()).await.unwrap();
                for m in model.values_mut() {
                    m.sealed = false; // sealing is in memory only
                }
            }
            Op::Pause(at) => store.pause_checkpoint_jobs_at(at),
            Op::Restart => {
                store.shutdown().await.unwrap();
                assert!(matches!(store.tail(0), Err(StorageError::Closed)));
                drop(store);
                store = Store::open(config.clone()).await.unwrap();
                for m in model.values_mut() {
                    m.sealed = false;
                }
            }
        }
        // After every step: the tails agree and everything reads back.
        assert_eq!(store.logs(), model.keys().copied().collect::<Vec<_>>());
        for (log, m) in &model {
            let tail = store.tail(*log).unwrap();
            assert_eq!(
                (tail.first_sequence, tail.next_sequence, tail.sealed),
                (m.first(), m.next, m.sealed)
            );
            assert_eq!(*store.watch_tail(*log).unwrap().borrow(), m.next);
        }
    }
    // Final full check through a fresh open.
    drop(store);
    let store = Store::open(config).await.unwrap();
    for (log, m) in &model {
        let all = store.read(*log, 0, usize::MAX, usize::MAX).await.unwrap();
        assert_eq!(all, m.records);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn store_agrees_with_a_vec_model(
        ops in proptest::collection::vec(op(), 1..60),
        segment_bytes_max in prop_oneof![Just(1024u64), Just(3000), Just(1 << 20)],
        cache_bytes_max in prop_oneof![Just(0u64), Just(2000), Just(1 << 20)],
        sync_policy in prop_oneof![Just(SyncPolicy::Always), Just(SyncPolicy::Never)],
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(ops, segment_bytes_max, cache_bytes_max, sync_policy));
    }
}
