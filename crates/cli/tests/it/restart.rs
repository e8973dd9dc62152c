//! Durability across process death: acknowledged records, iterators and metadata survive
//! SIGKILL and SIGTERM.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::support::{TestServer, trim_horizon_iterator};

#[tokio::test]
async fn acknowledged_records_and_iterators_survive_kill_9() {
    let mut server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("durable")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let mut acknowledged = Vec::new();
    for batch in 0..5 {
        let entries: Vec<PutRecordsRequestEntry> = (0..100)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}"))
                    .data(Blob::new(format!("{batch}-{i}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let output = client
            .put_records()
            .stream_name("durable")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(output.failed_record_count(), Some(0));
        for (i, r) in output.records().iter().enumerate() {
            acknowledged.push((
                r.shard_id().unwrap().to_string(),
                r.sequence_number().unwrap().to_string(),
                format!("{batch}-{i}"),
            ));
        }
    }
    let before = trim_horizon_iterator(&client, "durable", "shardId-000000000000").await;

    server.crash_and_restart();
    let client = server.client();

    // The iterator taken before the crash still works.
    let page = client
        .get_records()
        .shard_iterator(&before)
        .send()
        .await
        .unwrap();
    let expected_first: Vec<&(String, String, String)> = acknowledged
        .iter()
        .filter(|a| a.0 == "shardId-000000000000")
        .collect();
    assert_eq!(page.records().len(), expected_first.len());
    for (record, ack) in page.records().iter().zip(&expected_first) {
        assert_eq!(record.sequence_number(), ack.1);
        assert_eq!(record.data().as_ref(), ack.2.as_bytes());
    }
    // And a fresh one sees the other shard's records exactly once.
    let after = trim_horizon_iterator(&client, "durable", "shardId-000000000001").await;
    let page = client
        .get_records()
        .shard_iterator(&after)
        .send()
        .await
        .unwrap();
    let expected_second: Vec<&(String, String, String)> = acknowledged
        .iter()
        .filter(|a| a.0 == "shardId-000000000001")
        .collect();
    let got: Vec<(&str, &[u8])> = page
        .records()
        .iter()
        .map(|r| (r.sequence_number(), r.data().as_ref()))
        .collect();
    let want: Vec<(&str, &[u8])> = expected_second
        .iter()
        .map(|a| (a.1.as_str(), a.2.as_bytes()))
        .collect();
    assert_eq!(got, want);
    // New writes continue above the recovered tail.
    let next = client
        .put_record()
        .stream_name("durable")
        .partition_key("k0")
        .data(Blob::new("new"))
        .send()
        .await
        .unwrap();
    let last_acked = acknowledged
        .iter()
        .filter(|a| a.0 == next.shard_id())
        .map(|a| a.1.clone())
        .max()
        .unwrap();
    assert!(next.sequence_number() > last_acked.as_str());
}

#[tokio::test]
async fn sigterm_shuts_down_promptly_and_restart_recovers_everything() {
    let mut server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("graceful")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    client
        .split_shard()
        .stream_name("graceful")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 100).to_string())
        .send()
        .await
        .unwrap();
    for i in 0..50 {
        client
            .put_record()
            .stream_name("graceful")
            .partition_key(format!("{i}"))
            .data(Blob::new(format!("{i}")))
            .send()
            .await
            .unwrap();
    }
    let took = server.terminate();
    assert!(
        took < std::time::Duration::from_secs(5),
        "shutdown took {took:?}"
    );
    server.restart_after_terminate();
    let client = server.client();
    let shards = client
        .list_shards()
        .stream_name("graceful")
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 3, "the split survived");
    let mut total = 0;
    for shard in ["shardId-000000000001", "shardId-000000000002"] {
        let iterator = trim_horizon_iterator(&client, "graceful", shard).await;
        total += client
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap()
            .records()
            .len();
    }
    assert_eq!(total, 50);
    // The closed parent still refuses writes: they route to the children.
    let put = client
        .put_record()
        .stream_name("graceful")
        .partition_key("x")
        .explicit_hash_key("0")
        .data(Blob::new("y"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.shard_id(), "shardId-000000000001");
}
