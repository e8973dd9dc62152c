//! Response encoding on the read-back hot path: a full GetRecords page (10,000 records) from
//! the stored records, through the model (`into_output`, then serde_json or ciborium) or
//! straight (`encode_page`, what the server does), as awsJson1.1 and as CBOR. Then a
//! full SubscribeToShard event frame (2,000 x 1 KiB, EFO's 2 MiB per event), through the
//! model and straight from the stored records, as JSON and as CBOR.
//!
//! `cargo bench -p millstream-api-kinesis --bench encode`

mod support;

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use millstream_api_kinesis::records_cbor;
use millstream_api_kinesis::records_json::{
    GetRecordsPage, ShardEventPage, encode_event, encode_page,
};
use millstream_aws_protocol::{Protocol, event_stream};
use millstream_streams::{PageRecords, StoredRecord};
use support::payload;

const RECORDS: usize = 10_000;

fn stored_page(size: usize) -> GetRecordsPage {
    stored_records(RECORDS, size)
}

fn stored_records(count: usize, size: usize) -> GetRecordsPage {
    let records = (0..count)
        .map(|i| StoredRecord {
            sequence: 1_000_000 + i as u64,
            arrival_ms: 1_764_150_000_000 + i as u64,
            key: Bytes::from(format!("partition-key-{i:08}")),
            data: Bytes::from(payload(i, size)),
            flags: 0,
        })
        .collect();
    GetRecordsPage {
        records: PageRecords::new(1_764_000_000_000, 3, records),
        next_shard_iterator: Some("AAAAAAAAAAH".repeat(20)),
        millis_behind_latest: 0,
        child_shards: None,
    }
}

fn encode_pages(c: &mut Criterion) {
    let mut group = c.benchmark_group("get_records_encode");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for size in [100usize, 1024] {
        group.throughput(Throughput::Elements(RECORDS as u64));
        let label = format!("10000x{size}B");
        let stored = stored_page(size);
        for protocol in [Protocol::Json, Protocol::Cbor] {
            let name = format!("{}/{label}", format!("{protocol:?}").to_lowercase());
            group.bench_with_input(
                BenchmarkId::new("stored_via_model", &name),
                &stored,
                |b, p| {
                    b.iter_batched(
                        || p.clone(),
                        |page| {
                            black_box(millstream_aws_protocol::encode(
                                protocol,
                                &page.into_output(),
                            ))
                        },
                        BatchSize::LargeInput,
                    );
                },
            );
            group.bench_with_input(BenchmarkId::new("stored_direct", &name), &stored, |b, p| {
                b.iter(|| {
                    black_box(match protocol {
                        Protocol::Json => encode_page(p),
                        Protocol::Cbor => records_cbor::encode_page(p),
                    })
                });
            });
        }
    }
    group.finish();
}

const EVENT_TYPE: &str = "SubscribeToShardEvent";

fn encode_events(c: &mut Criterion) {
    let mut group = c.benchmark_group("subscribe_event_frame");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let page = stored_records(2_000, 1024);
    let event = ShardEventPage {
        records: page.records,
        continuation_sequence_number: Some(
            "4959033827149025660855969253836157109592157598913".into(),
        ),
        millis_behind_latest: 0,
        child_shards: None,
    };
    group.throughput(Throughput::Elements(2_000));
    for protocol in [Protocol::Json, Protocol::Cbor] {
        let name = format!("{protocol:?}").to_lowercase();
        group.bench_with_input(BenchmarkId::new("via_model", &name), &event, |b, e| {
            b.iter_batched(
                || e.clone(),
                |event| {
                    black_box(event_stream::event(
                        protocol,
                        EVENT_TYPE,
                        &event.into_event(),
                    ))
                },
                BatchSize::LargeInput,
            );
        });
        group.bench_with_input(BenchmarkId::new("direct", &name), &event, |b, e| {
            b.iter(|| {
                let payload = match protocol {
                    Protocol::Json => encode_event(e),
                    Protocol::Cbor => records_cbor::encode_event(e),
                };
                black_box(event_stream::encoded_event(protocol, EVENT_TYPE, payload))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, encode_pages, encode_events);
criterion_main!(benches);
