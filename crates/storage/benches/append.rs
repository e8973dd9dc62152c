//! Append and scan throughput of the store.
//!
//! `append/<fsync>/<logs>logs/<size>B`: each iteration issues 256 concurrent appends of 10
//! records, spread round-robin over the logs (so with 1,024 logs every append hits a
//! different log and the journal's group commit is what keeps fsyncs shared).
//! `scan/<source>`: reads a 16 MiB log of 1 KiB records front to back, 1,000 records per
//! call, from segment files (cache off) or from the record cache.
//!
//! `checkpoint_stall`: not a criterion measurement but a printed latency report. 1,024
//! logs, fsync, default 256 MiB journal: 256 concurrent appenders (10 x 1 KiB records each)
//! write until two journal checkpoints have happened, and the bench prints the append
//! latency percentiles and the maximum, which is the stall a checkpoint causes. Run it
//! alone with `cargo bench -p millstream-storage -- checkpoint_stall`.
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

/// See the module docs. Prints; does not time through criterion (a stall is one event, not
/// a distribution criterion could sample).
fn checkpoint_stall(_c: &mut Criterion) {
    if !c_filter_allows("checkpoint_stall") {
        return;
    }
    let rt = runtime();
    const LOGS: u64 = 1024;
    const APPENDERS: u64 = 256;
    const CHECKPOINTS: u64 = 2;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig::new(dir.path());
    let journal_bytes_max = config.journal_bytes_max;
    rt.block_on(async {
        let store = Store::open(config).await.expect("open");
        for log in 0..LOGS {
            store.create_log(log).await.expect("create");
        }
        let records = Arc::new(batch(1024));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..APPENDERS {
            let (store, records) = (store.clone(), records.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                let mut log = task;
                // Stop once the wanted checkpoints have finished (their background part
                // included, so appends overlap all of it), or after 60 s.
                while store.metrics().checkpoint_jobs < CHECKPOINTS
                    && started.elapsed() < Duration::from_secs(60)
                {
                    let t = Instant::now();
                    store
                        .append(log % LOGS, (*records).clone())
                        .await
                        .expect("append");
                    latencies.push(t.elapsed());
                    log += APPENDERS;
                }
                latencies
            });
        }
        let mut all = Vec::new();
        while let Some(result) = tasks.join_next().await {
            all.extend(result.expect("task"));
        }
        let elapsed = started.elapsed();
        all.sort_unstable();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        let m = store.metrics();
        eprintln!(
            "checkpoint_stall: {} logs, journal_bytes_max {} MiB, {} appends in {:.1?} \
             ({:.0} MiB/s of records), {} checkpoints ({} ms on the journal thread, {} ms in \
             background jobs), {} journal syncs (mean {:.2?}); append latency p50 {:.1?} p99 {:.1?} p99.9 {:.1?} max {:.1?}",
            LOGS,
            journal_bytes_max >> 20,
            all.len(),
            elapsed,
            (all.len() * RECORDS_PER_APPEND * 1024) as f64
                / elapsed.as_secs_f64()
                / (1 << 20) as f64,
            m.checkpoints,
            m.checkpoint_micros / 1000,
            m.checkpoint_job_micros / 1000,
            m.journal_syncs,
            Duration::from_nanos(m.journal_sync_nanos_total / m.journal_syncs.max(1)),
            pct(0.5),
            pct(0.99),
            pct(0.999),
            all.last().copied().unwrap_or_default(),
        );
        store.shutdown().await.expect("shutdown");
    });
}

/// Whether the command line's benchmark filter (the first free argument) selects `name`;
/// criterion does not apply its filter to functions that register no benchmark.
fn c_filter_allows(name: &str) -> bool {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .is_none_or(|filter| name.contains(&filter))
}

criterion_group!(benches, append, scan, checkpoint_stall);
criterion_main!(benches);
