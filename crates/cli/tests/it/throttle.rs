//! Throughput-quota emulation (`--throttle`): AWS's per-shard limits and how they are
//! reported, per entry in PutRecords and per request elsewhere.

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::support::{TestServer, trim_horizon_iterator};

#[tokio::test]
async fn over_quota_writes_fail_only_the_excess_entries() {
    let server = TestServer::start_with(&["--throttle"]);
    let client = server.client();
    client
        .create_stream()
        .stream_name("quota")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    // 500 entries of 3 KiB: 1.5 MiB against a 1 MiB/s shard.
    let entries: Vec<PutRecordsRequestEntry> = (0..500)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("{i}"))
                .data(Blob::new(vec![1u8; 3072]))
                .build()
                .unwrap()
        })
        .collect();
    let output = client
        .put_records()
        .stream_name("quota")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let failed = output.failed_record_count().unwrap();
    assert!(
        (100..=250).contains(&failed),
        "about a third over quota, got {failed}"
    );
    for record in output.records() {
        match record.error_code() {
            Some(code) => {
                assert_eq!(code, "ProvisionedThroughputExceededException");
                assert!(
                    record.error_message().unwrap().starts_with(
                        "Rate exceeded for shard shardId-000000000000 in stream quota"
                    )
                );
                assert!(record.sequence_number().is_none());
            }
            None => assert!(record.sequence_number().is_some()),
        }
    }
    // The stored entries are exactly the acknowledged ones.
    let iterator = trim_horizon_iterator(&client, "quota", "shardId-000000000000").await;
    let page = client
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap();
    assert_eq!(page.records().len() as i32, 500 - failed);
    // A PutRecord over quota fails the whole request with a 400: of several 1 MB records
    // sent at once, no more than about a second's worth get through.
    let mut puts = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = client.clone();
        puts.spawn(async move {
            client
                .put_record()
                .stream_name("quota")
                .partition_key("k")
                .data(Blob::new(vec![0u8; 1_000_000]))
                .send()
                .await
        });
    }
    let mut refused = 0;
    while let Some(result) = puts.join_next().await {
        if let Err(err) = result.unwrap() {
            assert_eq!(
                err.into_service_error().code(),
                Some("ProvisionedThroughputExceededException")
            );
            refused += 1;
        }
    }
    assert!(refused >= 1, "6 MB at once against 1 MiB/s: none refused");
}

#[tokio::test]
async fn rapid_reads_are_throttled_per_shard() {
    let server = TestServer::start_with(&["--throttle"]);
    let client = server.client();
    client
        .create_stream()
        .stream_name("reads")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    // Calls are sent concurrently so they land together even on a loaded machine: 30 of
    // them against 5 per second (one second of burst) must see refusals.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let client = client.clone();
        calls.spawn(async move {
            client
                .get_shard_iterator()
                .stream_name("reads")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(ShardIteratorType::Latest)
                .send()
                .await
        });
    }
    let mut throttled = 0;
    let mut iterator = None;
    while let Some(result) = calls.join_next().await {
        match result.unwrap() {
            Ok(output) => iterator = output.shard_iterator,
            Err(err) => {
                assert_eq!(
                    err.into_service_error().code(),
                    Some("ProvisionedThroughputExceededException")
                );
                throttled += 1;
            }
        }
    }
    assert!(
        throttled >= 1,
        "30 GetShardIterator calls at once against 5 per second: none refused"
    );
    let iterator = iterator.unwrap();
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let client = client.clone();
        let iterator = iterator.clone();
        reads.spawn(async move { client.get_records().shard_iterator(iterator).send().await });
    }
    let mut read_throttled = 0;
    while let Some(result) = reads.join_next().await {
        if let Err(err) = result.unwrap() {
            assert_eq!(
                err.into_service_error().code(),
                Some("ProvisionedThroughputExceededException")
            );
            read_throttled += 1;
        }
    }
    assert!(
        read_throttled >= 1,
        "30 GetRecords calls at once against 5 per second: none refused"
    );
}

#[tokio::test]
async fn without_the_flag_nothing_is_throttled() {
    let server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("free")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let entries: Vec<PutRecordsRequestEntry> = (0..500)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("{i}"))
                .data(Blob::new(vec![1u8; 3072]))
                .build()
                .unwrap()
        })
        .collect();
    let output = client
        .put_records()
        .stream_name("free")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(output.failed_record_count(), Some(0));
}
