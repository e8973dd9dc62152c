//! Data plane through the AWS SDK for Rust: puts, iterators of every type, GetRecords.

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::support::{TestServer, create_stream as create, trim_horizon_iterator};

async fn read_all(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
) -> Vec<aws_sdk_kinesis::types::Record> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("iterator present");
    let mut records = Vec::new();
    loop {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .expect("get records");
        let empty = page.records().is_empty();
        records.extend(page.records().iter().cloned());
        match page.next_shard_iterator {
            Some(next) if !(empty && page.millis_behind_latest == Some(0)) => iterator = next,
            _ => break,
        }
    }
    records
}

#[tokio::test]
async fn put_record_then_get_records_returns_it_with_its_sequence_number() {
    let server = TestServer::start();
    let client = server.client();
    create(&client, "orders", 1).await;
    let put = client
        .put_record()
        .stream_name("orders")
        .partition_key("customer-1")
        .data(Blob::new("hello"))
        .send()
        .await
        .expect("put");
    assert_eq!(put.shard_id(), "shardId-000000000000");
    assert_eq!(put.sequence_number().len(), 56);
    let records = read_all(&client, "orders", "shardId-000000000000").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data().as_ref(), b"hello");
    assert_eq!(records[0].partition_key(), Some("customer-1"));
    assert_eq!(records[0].sequence_number(), put.sequence_number());
    let arrival = records[0]
        .approximate_arrival_timestamp()
        .expect("arrival")
        .to_millis()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now - arrival).abs() < 60_000,
        "arrival {arrival} vs now {now}"
    );
}

#[tokio::test]
async fn put_records_routes_by_md5_and_keeps_per_shard_order() {
    let server = TestServer::start();
    let client = server.client();
    create(&client, "events", 4).await;
    let entries: Vec<PutRecordsRequestEntry> = (0..500)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{}", i % 37))
                .data(Blob::new(format!("record-{i}")))
                .build()
                .unwrap()
        })
        .collect();
    let output = client
        .put_records()
        .stream_name("events")
        .set_records(Some(entries))
        .send()
        .await
        .expect("put records");
    assert_eq!(output.failed_record_count(), Some(0));
    assert_eq!(output.records().len(), 500);
    // Every key lands on the shard whose range holds MD5(key).
    let shards = client
        .list_shards()
        .stream_name("events")
        .send()
        .await
        .unwrap()
        .shards()
        .to_vec();
    for (i, result) in output.records().iter().enumerate() {
        let hash = u128::from_be_bytes(md5_digest(format!("key-{}", i % 37).as_bytes()));
        let shard = shards
            .iter()
            .find(|s| {
                let range = s.hash_key_range().unwrap();
                range.starting_hash_key().parse::<u128>().unwrap() <= hash
                    && hash <= range.ending_hash_key().parse::<u128>().unwrap()
            })
            .unwrap();
        assert_eq!(result.shard_id(), Some(shard.shard_id()));
    }
    let mut total = 0;
    for shard in &shards {
        let records = read_all(&client, "events", shard.shard_id()).await;
        let numbers: Vec<u128> = records
            .iter()
            .map(|r| {
                r.data()
                    .as_ref()
                    .strip_prefix(b"record-")
                    .map(|d| std::str::from_utf8(d).unwrap().parse().unwrap())
                    .unwrap()
            })
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "request order kept within {}",
            shard.shard_id()
        );
        let sequences: Vec<&str> = records.iter().map(|r| r.sequence_number()).collect();
        assert!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "sequence numbers increase"
        );
        total += records.len();
    }
    assert_eq!(total, 500);
}

fn md5_digest(bytes: &[u8]) -> [u8; 16] {
    // The same digest the server must use; computed independently through Python's hashlib
    // would be slower to run, so use the RustCrypto implementation the types crate uses.
    use md5::{Digest, Md5};
    Md5::digest(bytes).into()
}

#[tokio::test]
async fn iterator_types_position_reads_correctly() {
    let server = TestServer::start();
    let client = server.client();
    create(&client, "positions", 1).await;
    let mut sequences = Vec::new();
    for i in 0..5 {
        let put = client
            .put_record()
            .stream_name("positions")
            .partition_key("k")
            .data(Blob::new(format!("{i}")))
            .send()
            .await
            .unwrap();
        sequences.push(put.sequence_number().to_string());
    }
    let shard = "shardId-000000000000";
    let first_data = |kind: ShardIteratorType, seq: Option<&str>, ts: Option<DateTime>| {
        let client = client.clone();
        let seq = seq.map(str::to_string);
        async move {
            let iterator = client
                .get_shard_iterator()
                .stream_name("positions")
                .shard_id(shard)
                .shard_iterator_type(kind)
                .set_starting_sequence_number(seq)
                .set_timestamp(ts)
                .send()
                .await
                .unwrap()
                .shard_iterator
                .unwrap();
            let page = client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .unwrap();
            page.records()
                .first()
                .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap())
        }
    };
    assert_eq!(
        first_data(ShardIteratorType::TrimHorizon, None, None)
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        first_data(
            ShardIteratorType::AtSequenceNumber,
            Some(&sequences[2]),
            None
        )
        .await
        .as_deref(),
        Some("2")
    );
    assert_eq!(
        first_data(
            ShardIteratorType::AfterSequenceNumber,
            Some(&sequences[2]),
            None
        )
        .await
        .as_deref(),
        Some("3")
    );
    assert_eq!(
        first_data(
            ShardIteratorType::AfterSequenceNumber,
            Some(&sequences[4]),
            None
        )
        .await,
        None
    );
    assert_eq!(
        first_data(ShardIteratorType::Latest, None, None).await,
        None
    );
    assert_eq!(
        first_data(
            ShardIteratorType::AtTimestamp,
            None,
            Some(DateTime::from_secs(0))
        )
        .await
        .as_deref(),
        Some("0")
    );
    // The shard's StartingSequenceNumber is a valid position of its own.
    let shards = client
        .list_shards()
        .stream_name("positions")
        .send()
        .await
        .unwrap();
    let start = shards.shards()[0]
        .sequence_number_range()
        .unwrap()
        .starting_sequence_number()
        .to_string();
    assert_eq!(
        first_data(ShardIteratorType::AtSequenceNumber, Some(&start), None)
            .await
            .as_deref(),
        Some("0")
    );
    // LATEST then a new record: the iterator taken before sees it.
    let latest = client
        .get_shard_iterator()
        .stream_name("positions")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    client
        .put_record()
        .stream_name("positions")
        .partition_key("k")
        .data(Blob::new("late"))
        .send()
        .await
        .unwrap();
    let page = client
        .get_records()
        .shard_iterator(&latest)
        .send()
        .await
        .unwrap();
    assert_eq!(page.records().len(), 1);
    assert_eq!(page.records()[0].data().as_ref(), b"late");
    assert_eq!(page.millis_behind_latest(), Some(0));
    assert!(page.next_shard_iterator().is_some());
    assert!(page.child_shards().is_empty());
}

#[tokio::test]
async fn get_records_honours_limit_and_never_reuses_iterators() {
    let server = TestServer::start();
    let client = server.client();
    create(&client, "paged", 1).await;
    let entries: Vec<PutRecordsRequestEntry> = (0..25)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key("p")
                .data(Blob::new(vec![i as u8; 100]))
                .build()
                .unwrap()
        })
        .collect();
    client
        .put_records()
        .stream_name("paged")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let mut iterator = trim_horizon_iterator(&client, "paged", "shardId-000000000000").await;
    let mut seen = 0;
    for expected in [10, 10, 5, 0] {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(10)
            .send()
            .await
            .unwrap();
        assert_eq!(page.records().len(), expected);
        seen += page.records().len();
        let next = page.next_shard_iterator().unwrap().to_string();
        assert_ne!(
            next, iterator,
            "every GetRecords hands out a fresh iterator"
        );
        iterator = next;
    }
    assert_eq!(seen, 25);
}

#[tokio::test]
async fn binary_data_and_unicode_partition_keys_round_trip() {
    let server = TestServer::start();
    let client = server.client();
    create(&client, "binary", 1).await;
    let data: Vec<u8> = (0..=255u8).collect();
    client
        .put_record()
        .stream_name("binary")
        .partition_key("ключ-🔑")
        .data(Blob::new(data.clone()))
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .stream_name("binary")
        .partition_key("empty")
        .data(Blob::new(Vec::new()))
        .send()
        .await
        .unwrap();
    let records = read_all(&client, "binary", "shardId-000000000000").await;
    assert_eq!(records[0].data().as_ref(), &data[..]);
    assert_eq!(records[0].partition_key(), Some("ключ-🔑"));
    assert!(records[1].data().as_ref().is_empty());
}

/// With a cache smaller than the data, older records come back from the segment files.
#[tokio::test]
async fn reads_beyond_a_small_cache_come_from_disk_intact() {
    let server = TestServer::start_with(&["--cache-mib", "16"]);
    let client = server.client();
    create(&client, "spill", 1).await;
    let mut sent = 0u32;
    for batch in 0u32..48 {
        let entries: Vec<PutRecordsRequestEntry> = (0u32..500)
            .map(|i| {
                let mut data = vec![(batch % 251) as u8; 1024];
                data[..8].copy_from_slice(&u64::from(batch * 500 + i).to_be_bytes());
                PutRecordsRequestEntry::builder()
                    .partition_key("k")
                    .data(Blob::new(data))
                    .build()
                    .unwrap()
            })
            .collect();
        let output = client
            .put_records()
            .stream_name("spill")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(output.failed_record_count(), Some(0));
        sent += 500;
    }
    // 24,000 records of 1 KiB: more than the 16 MiB cache holds.
    let records = read_all(&client, "spill", "shardId-000000000000").await;
    assert_eq!(records.len() as u32, sent);
    for (expected, record) in records.iter().enumerate() {
        let data = record.data().as_ref();
        assert_eq!(
            u64::from_be_bytes(data[..8].try_into().unwrap()),
            expected as u64
        );
        assert_eq!(data[8], ((expected / 500) % 251) as u8);
    }
}

/// SequenceNumberForOrdering takes any well-formed sequence number, as AWS does: the one the
/// previous put returned, and one another stream gave (here of a shard this stream does not
/// have, as a producer carrying its last number over to a re-created stream might).
#[tokio::test]
async fn put_record_orders_after_any_well_formed_sequence_number() {
    let server = TestServer::start();
    let client = server.client();
    create(&client, "ordered", 1).await;
    create(&client, "elsewhere", 2).await;
    let put = |stream: &'static str, ordering: Option<String>| {
        client
            .put_record()
            .stream_name(stream)
            .partition_key("k")
            // The upper half of the hash key range: the second shard of a two-shard stream.
            .explicit_hash_key("300000000000000000000000000000000000000")
            .data(Blob::new("x"))
            .set_sequence_number_for_ordering(ordering)
            .send()
    };
    let first = put("ordered", None).await.expect("first put");
    let second = put("ordered", Some(first.sequence_number().to_string()))
        .await
        .expect("put ordered after the first");
    // Both are 56-digit decimals, so their text orders as their value.
    assert_eq!(
        second.sequence_number().len(),
        first.sequence_number().len()
    );
    assert!(second.sequence_number() > first.sequence_number());
    let foreign = put("elsewhere", None).await.expect("put elsewhere");
    assert_eq!(foreign.shard_id(), "shardId-000000000001");
    put("ordered", Some(foreign.sequence_number().to_string()))
        .await
        .expect("another stream's number is accepted");
    let malformed = put("ordered", Some("12345".to_string()))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(malformed.is_invalid_argument_exception(), "{malformed:?}");
}
