//! Request decoding on the PutRecords hot path: a 500-record body in JSON (base64 data) and
//! CBOR (byte strings), decoded into the generated shape and validated; and AWS-strict
//! base64 decoding of one record's data, next to the base64 crate's own decoder.
//!
//! `cargo bench -p millstream-api-kinesis --bench decode`

mod support;

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use millstream_api_kinesis::model::{PutRecordsInput, PutRecordsRequestEntry};
use millstream_aws_protocol::blob::decode_base64_strict;
use millstream_aws_protocol::{Blob, Protocol, Validate};
use support::payload;

const RECORDS: usize = 500;

fn body(size: usize) -> PutRecordsInput {
    let records = (0..RECORDS)
        .map(|i| PutRecordsRequestEntry {
            data: Some(Blob::from(payload(i, size))),
            explicit_hash_key: None,
            partition_key: Some(format!("partition-key-{i:08}")),
        })
        .collect();
    PutRecordsInput {
        records: Some(records),
        stream_name: Some("bench-stream".to_owned()),
        stream_arn: None,
        stream_id: None,
    }
}

fn decode_put_records(c: &mut Criterion) {
    let mut group = c.benchmark_group("put_records_decode");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for size in [100usize, 1024] {
        let input = body(size);
        for protocol in [Protocol::Json, Protocol::Cbor] {
            let encoded = millstream_aws_protocol::encode(protocol, &input);
            let name = format!("{protocol:?}").to_lowercase();
            group.throughput(Throughput::Elements(RECORDS as u64));
            group.bench_with_input(
                BenchmarkId::new(name, format!("500x{size}B")),
                &encoded,
                |b, encoded| {
                    b.iter(|| {
                        let decoded: PutRecordsInput =
                            millstream_aws_protocol::decode(protocol, black_box(encoded))
                                .expect("decodes");
                        decoded.validate_input().expect("valid");
                        decoded
                    });
                },
            );
        }
    }
    group.finish();
}

fn base64_strict(c: &mut Criterion) {
    let mut group = c.benchmark_group("base64_decode");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1));
    for size in [100usize, 1024, 64 * 1024] {
        let text = STANDARD.encode(payload(7, size));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("strict", size), &text, |b, text| {
            b.iter(|| decode_base64_strict(black_box(text)).expect("valid base64"));
        });
        // The base64 crate alone (no AWS-specific checks), for scale.
        group.bench_with_input(BenchmarkId::new("base64_crate", size), &text, |b, text| {
            b.iter(|| STANDARD.decode(black_box(text)).expect("valid base64"));
        });
        // base64-simd alone, which `decode_base64_strict` tries first.
        group.bench_with_input(BenchmarkId::new("base64_simd", size), &text, |b, text| {
            b.iter(|| {
                base64_simd::STANDARD
                    .decode_to_vec(black_box(text))
                    .expect("valid base64")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode_put_records, base64_strict);
criterion_main!(benches);
