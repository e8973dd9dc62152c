//! Append and scan throughput of the store.
//!
//! `append/<fsync>/<logs>logs/<size>B`: each iteration issues 256 concurrent appends of 10
//! records, spread round-robin over the logs (so with 1,024 logs every append hits a
//! different log and the journal's group commit is what keeps fsyncs shared).
//! `scan/<source>`: reads a 16 MiB log of 1 KiB records front to back, 1,000 records per
//! call, from segment files (cache off) or from the record cache.
//!
//! Run: `cargo bench -p millstream-storage` (about 2 minutes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use millstream_storage::{AppendRecord, Store, StoreConfig, SyncPolicy};

const APPENDS_PER_ITERATION: usize = 256;
const RECORDS_PER_APPEND: usize = 10;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn batch(size: usize) -> Vec<AppendRecord> {
    let data = Bytes::from(vec![0xA5u8; size]);
    (0..RECORDS_PER_APPEND)
        .map(|i| AppendRecord {
            key: Bytes::from(format!("key-{i}")),
            data: data.clone(),
            flags: 0,
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("append");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10);
    for (fsync, policy) in [("fsync", SyncPolicy::Always), ("nosync", SyncPolicy::Never)] {
        for logs in [1u64, 4, 64, 1024] {
            for size in [100usize, 1024] {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut config = StoreConfig::new(dir.path());
                config.sync_policy = policy;
                let store = rt.block_on(async {
                    let store = Store::open(config).await.expect("open");
                    for log in 0..logs {
                        store.create_log(log).await.expect("create");
                    }
                    store
                });
                let records = Arc::new(batch(size));
                let mut cursor = 0u64;
                group.throughput(Throughput::Bytes(
                    (APPENDS_PER_ITERATION * RECORDS_PER_APPEND * size) as u64,
                ));
                group.bench_function(
                    BenchmarkId::new(fsync, format!("{logs}logs/{size}B")),
                    |b| {
                        b.iter_custom(|iters| {
                            rt.block_on(async {
                                let start = Instant::now();
                                for _ in 0..iters {
                                    let mut tasks = tokio::task::JoinSet::new();
                                    for _ in 0..APPENDS_PER_ITERATION {
                                        let (store, records) = (store.clone(), records.clone());
                                        let log = cursor % logs;
                                        cursor += 1;
                                        tasks.spawn(async move {
                                            store.append(log, (*records).clone()).await
                                        });
                                    }
                                    while let Some(result) = tasks.join_next().await {
                                        result.expect("task").expect("append");
                                    }
                                }
                                start.elapsed()
                            })
                        })
                    },
                );
                let metrics = store.metrics();
                eprintln!(
                    "  {fsync} {logs} logs {size} B: {:.1} appends per group commit, {} journal syncs, \
                     {} checkpoints taking {} ms in total",
                    (cursor as f64) / metrics.group_commits.max(1) as f64,
                    metrics.journal_syncs,
                    metrics.checkpoints,
                    metrics.checkpoint_micros / 1000,
                );
                rt.block_on(store.shutdown()).expect("shutdown");
            }
        }
    }
    group.finish();
}

fn scan(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("scan");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10);
    const RECORDS: u64 = 16 * 1024;
    for (source, cache_bytes_max) in [("segments", 0u64), ("cache", 256 << 20)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = StoreConfig::new(dir.path());
        config.sync_policy = SyncPolicy::Never;
        config.cache_bytes_max = cache_bytes_max;
        let store = rt.block_on(async {
            let store = Store::open(config).await.expect("open");
            store.create_log(0).await.expect("create");
            let records = batch(1024);
            for _ in 0..RECORDS / RECORDS_PER_APPEND as u64 {
                store.append(0, records.clone()).await.expect("append");
            }
            store
        });
        let total = store.tail(0).expect("tail").next_sequence;
        group.throughput(Throughput::Bytes(total * 1024));
        group.bench_function(source, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut from = 0;
                    while from < total {
                        let records = store.read(0, from, 1000, 8 << 20).await.expect("read");
                        from = records.last().expect("records").sequence + 1;
                    }
                })
            })
        });
        rt.block_on(store.shutdown()).expect("shutdown");
    }
    group.finish();
}

criterion_group!(benches, append, scan);
criterion_main!(benches);
