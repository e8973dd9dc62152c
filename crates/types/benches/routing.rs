//! Per-record routing costs: the MD5 of a partition key (which shard a record goes to) and
//! sequence-number encoding/decoding (every acknowledged record and every iterator).
//!
//! `cargo bench -p millstream-types --bench routing`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use millstream_types::{SequenceParts, hash_partition_key};

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1));
    let keys: Vec<String> = (0..1024).map(|i| format!("user-{i:016x}")).collect();
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("hash_partition_key/1024_keys", |b| {
        b.iter(|| {
            keys.iter()
                .fold(0u128, |acc, key| acc ^ hash_partition_key(black_box(key)))
        });
    });
    group.finish();
}

fn sequence(c: &mut Criterion) {
    let mut group = c.benchmark_group("sequence_number");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1));
    let parts = SequenceParts {
        creation_secs: 1_764_000_000,
        shard_index: 3,
        counter: 123_456_789,
        arrival_secs: 1_764_000_123,
    };
    let text = parts.encode();
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| b.iter(|| black_box(&parts).encode()));
    group.bench_function("decode", |b| {
        b.iter(|| SequenceParts::decode(black_box(&text)).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, routing, sequence);
criterion_main!(benches);
