//! Model-based test of the Data Streams domain over the real store: random sequences of
//! puts, splits, merges, rescales and crash-restarts (the store and service dropped without
//! shutdown, then reopened on the same directory) must agree with a simple model: every
//! acknowledged record is read back exactly once, in order, from the shard that acknowledged
//! it; closed shards end with their children; the open shards always tile the hash space.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use millstream_storage::{Store, StoreConfig};
use millstream_streams::{
    CreateStream, IteratorType, PutEntry, PutResult, StreamRef, Streams, StreamsConfig,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put { keys: Vec<u128> },
    Split { pick: usize, at: u8 },
    Merge { pick: usize },
    Scale { target: u32 },
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u128>(), 1..20).prop_map(|keys| Op::Put { keys }),
        1 => (any::<usize>(), 1u8..255).prop_map(|(pick, at)| Op::Split { pick, at }),
        1 => any::<usize>().prop_map(|pick| Op::Merge { pick }),
        1 => (1u32..6).prop_map(|target| Op::Scale { target }),
        1 => Just(Op::Crash),
    ]
}

/// Opens the service; a crashed predecessor may still be releasing the directory lock (its
/// journal thread stops at its next step), so "in use" is retried for a while.
async fn open(dir: &std::path::Path) -> Streams {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let store = loop {
        match Store::open(StoreConfig::new(dir.join("store"))).await {
            Ok(store) => break store,
            Err(err)
                if std::time::Instant::now() < deadline && err.to_string().contains("in use") =>
            {
                tokio::task::yield_now().await;
            }
            Err(err) => panic!("reopening the store: {err}"),
        }
    };
    Streams::open(
        StreamsConfig::new("000000000000", "us-east-1"),
        store,
        &dir.join("meta.redb"),
    )
    .await
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const STREAM: &str = "model";

/// Reads a shard from TRIM_HORIZON to where it stops; returns (sequence, data) pairs and
/// whether the shard reported its end (with its children).
async fn read_shard(streams: &Streams, shard: &str) -> (Vec<(String, Bytes)>, Option<Vec<String>>) {
    let target = StreamRef::name(STREAM);
    let mut iterator = streams
        .get_shard_iterator(&target, shard, IteratorType::TrimHorizon, None, None)
        .await
        .unwrap();
    let mut records = Vec::new();
    loop {
        let page = streams
            .get_records(&iterator, Some(7), None, None)
            .await
            .unwrap();
        let empty = page.records.is_empty();
        records.extend(
            page.records
                .into_outs()
                .into_iter()
                .map(|r| (r.sequence_number, r.data)),
        );
        match page.next_shard_iterator {
            None => {
                let children = page
                    .child_shards
                    .iter()
                    .map(|c| c.shard_id.to_string())
                    .collect();
                return (records, Some(children));
            }
            Some(_) if empty => return (records, None),
            Some(next) => iterator = next,
        }
    }
}

async fn check(streams: &Streams, acked: &BTreeMap<String, Vec<(String, Bytes)>>) {
    let view = streams.describe(&StreamRef::name(STREAM)).unwrap();
    // Open shards tile [0, 2^128).
    let mut open: Vec<(u128, u128)> = view
        .meta
        .shards
        .iter()
        .filter(|s| s.closed.is_none())
        .map(|s| (s.start_hash, s.end_hash))
        .collect();
    open.sort();
    assert_eq!(open.first().map(|r| r.0), Some(0));
    assert_eq!(open.last().map(|r| r.1), Some(u128::MAX));
    assert!(open.windows(2).all(|w| w[0].1 + 1 == w[1].0));
    for shard in &view.meta.shards {
        let id = millstream_types::ShardId(shard.index).to_string();
        let (records, end) = read_shard(streams, &id).await;
        let expected = acked.get(&id).cloned().unwrap_or_default();
        assert_eq!(records, expected, "shard {id}");
        match (shard.closed, end) {
            (Some(_), Some(children)) => {
                let mut want: Vec<String> = view
                    .meta
                    .shards
                    .iter()
                    .filter(|c| {
                        c.parent == Some(shard.index) || c.adjacent_parent == Some(shard.index)
                    })
                    .map(|c| millstream_types::ShardId(c.index).to_string())
                    .collect();
                want.sort();
                let mut got = children;
                got.sort();
                assert_eq!(got, want, "children of {id}");
            }
            (None, None) => {}
            (closed, end) => panic!("shard {id}: closed {closed:?} but end {end:?}"),
        }
    }
}

/// Runs the ops of one process lifetime; returns when it reaches a crash or the end.
async fn life(
    dir: &std::path::Path,
    ops: &mut std::vec::IntoIter<Op>,
    acked: &mut BTreeMap<String, Vec<(String, Bytes)>>,
    counter: &mut u64,
    first: bool,
) -> bool {
    let streams = open(dir).await;
    if first {
        streams
            .create_stream(CreateStream {
                name: STREAM.into(),
                shard_count: Some(2),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let target = StreamRef::name(STREAM);
    for op in ops.by_ref() {
        match op {
            Op::Put { keys } => {
                let entries: Vec<PutEntry> = keys
                    .iter()
                    .map(|k| {
                        *counter += 1;
                        PutEntry {
                            partition_key: "p".into(),
                            explicit_hash_key: Some(k.to_string()),
                            data: Bytes::from(counter.to_string()),
                        }
                    })
                    .collect();
                let outcome = streams.put_records(&target, entries.clone()).await.unwrap();
                for (entry, result) in entries.into_iter().zip(outcome.results) {
                    let PutResult::Stored {
                        shard_id,
                        sequence_number,
                    } = result
                    else {
                        panic!("put failed: {result:?}")
                    };
                    acked
                        .entry(shard_id.to_string())
                        .or_default()
                        .push((sequence_number, entry.data));
                }
            }
            Op::Split { pick, at } => {
                let view = streams.describe(&target).unwrap();
                let open: Vec<_> = view
                    .meta
                    .shards
                    .iter()
                    .filter(|s| s.closed.is_none() && s.end_hash - s.start_hash > 1024)
                    .collect();
                if open.is_empty() {
                    continue;
                }
                let shard = open[pick % open.len()];
                let key =
                    shard.start_hash + (shard.end_hash - shard.start_hash) / 256 * u128::from(at);
                let key = key.clamp(shard.start_hash + 2, shard.end_hash - 1);
                let id = millstream_types::ShardId(shard.index).to_string();
                streams
                    .split_shard(&target, &id, &key.to_string())
                    .await
                    .unwrap();
            }
            Op::Merge { pick } => {
                let view = streams.describe(&target).unwrap();
                let mut open: Vec<_> = view
                    .meta
                    .shards
                    .iter()
                    .filter(|s| s.closed.is_none())
                    .collect();
                open.sort_by_key(|s| s.start_hash);
                if open.len() < 2 {
                    continue;
                }
                let i = pick % (open.len() - 1);
                let (a, b) = (
                    millstream_types::ShardId(open[i].index),
                    millstream_types::ShardId(open[i + 1].index),
                );
                streams
                    .merge_shards(&target, &a.to_string(), &b.to_string())
                    .await
                    .unwrap();
            }
            Op::Scale { target: count } => {
                let current = streams.describe(&target).unwrap().open_shard_count() as u32;
                let count = count.clamp(current.div_ceil(2), current * 2);
                // The 10-per-day rule may refuse; anything else is a bug.
                if let Err(err) = streams.update_shard_count(&target, count).await {
                    assert!(
                        matches!(err, millstream_streams::StreamsError::LimitExceeded(_)),
                        "{err}"
                    );
                }
            }
            // The caller drops this runtime with every task on it: nothing is shut down.
            Op::Crash => return true,
        }
    }
    check(&streams, acked).await;
    false
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeMap::new();
    let mut counter = 0u64;
    let mut ops = ops.into_iter();
    let mut first = true;
    loop {
        let crashed =
            runtime().block_on(life(dir.path(), &mut ops, &mut acked, &mut counter, first));
        first = false;
        if !crashed {
            break;
        }
    }
    // And once more after a final restart.
    runtime().block_on(async {
        let streams = open(dir.path()).await;
        check(&streams, &acked).await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn streams_agree_with_the_model(ops in proptest::collection::vec(op(), 1..25)) {
        run(ops);
    }
}
