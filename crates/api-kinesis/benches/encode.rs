//! Response encoding on the read-back hot path: a full GetRecords page (10,000 records) as
//! awsJson1.1, written by serde_json and by `records_json`, measured in the same run.
//!
//! `cargo bench -p millstream-api-kinesis --bench encode`

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use millstream_api_kinesis::model::{GetRecordsOutput, Record};
use millstream_api_kinesis::records_json::encode_get_records;
use millstream_aws_protocol::{Blob, Protocol, Timestamp};
use support::payload;

const RECORDS: usize = 10_000;

fn page(size: usize) -> GetRecordsOutput {
    let records = (0..RECORDS)
        .map(|i| Record {
            sequence_number: Some(format!(
                "4959033827149025660855969253836157109592157598913{i:07}"
            )),
            approximate_arrival_timestamp: Some(Timestamp::from_millis(
                1_764_150_000_000 + i as i64,
            )),
            data: Some(Blob::from(payload(i, size))),
            partition_key: Some(format!("partition-key-{i:08}")),
            encryption_type: None,
        })
        .collect();
    GetRecordsOutput {
        records: Some(records),
        next_shard_iterator: Some("AAAAAAAAAAH".repeat(20)),
        millis_behind_latest: Some(0),
        child_shards: None,
    }
}

fn encode_page(c: &mut Criterion) {
    let mut group = c.benchmark_group("get_records_encode");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for size in [100usize, 1024] {
        let output = page(size);
        group.throughput(Throughput::Elements(RECORDS as u64));
        let label = format!("10000x{size}B");
        group.bench_with_input(BenchmarkId::new("serde_json", &label), &output, |b, o| {
            b.iter(|| black_box(millstream_aws_protocol::encode(Protocol::Json, o)));
        });
        group.bench_with_input(BenchmarkId::new("records_json", &label), &output, |b, o| {
            b.iter(|| black_box(encode_get_records(o)));
        });
    }
    group.finish();
}

criterion_group!(benches, encode_page);
criterion_main!(benches);
