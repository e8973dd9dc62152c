//! A GetRecords repeated at a shard's tip waits for the next record; backlog reads, first
//! empty answers and walks over several shards on one connection are answered at once. The
//! servers here wait up to 10 s, so a call that waited where it should not have is
//! unmistakable, and so is one that returned early.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;

use crate::cli_observability::{sample, scrape};
use crate::support::{TestServer, create_stream as create, shard_iterator as iterator};

const LONG_WAIT: &[&str] = &["--get-records-tip-wait-ms", "10000"];
/// Far below the 10 s wait, far above an answer given at once on a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);

async fn put(client: &Client, stream: &str, key: &str, data: &[u8]) {
    client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data.to_vec()))
        .send()
        .await
        .unwrap();
}

/// The iterator an empty answer at `shard`'s tip hands out: the first poll of a consumer
/// that has caught up, answered at once.
async fn reach_tip(client: &Client, stream: &str, shard: &str) -> String {
    let latest = iterator(client, stream, shard, ShardIteratorType::Latest).await;
    let first = client
        .get_records()
        .shard_iterator(latest)
        .send()
        .await
        .unwrap();
    assert!(first.records().is_empty());
    first.next_shard_iterator().unwrap().to_string()
}

type Polled = Result<
    aws_sdk_kinesis::operation::get_records::GetRecordsOutput,
    aws_sdk_kinesis::error::SdkError<aws_sdk_kinesis::operation::get_records::GetRecordsError>,
>;

/// One GetRecords in the background, with how long it took.
fn poll_in_background(
    client: Client,
    iterator: String,
) -> tokio::task::JoinHandle<(Duration, Polled)> {
    tokio::spawn(async move {
        let started = Instant::now();
        let result = client.get_records().shard_iterator(iterator).send().await;
        (started.elapsed(), result)
    })
}

/// Until the server reports `count` calls waiting at a tip.
async fn until_waiting(server: &TestServer, count: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let port = server.port;
        let text = tokio::task::spawn_blocking(move || scrape(port))
            .await
            .unwrap();
        if sample(&text, "millstream_get_records_tip_waiting", &[]) == Some(count) {
            return;
        }
        assert!(Instant::now() < deadline, "never {count} waiting:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tip_waits(server: &TestServer, stream: &str) -> f64 {
    let text = scrape(server.port);
    sample(
        &text,
        "millstream_get_records_tip_waits_total",
        &[("stream", stream)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_repeated_poll_at_the_tip_returns_the_record_put_while_it_waits() {
    let server = TestServer::start_with(LONG_WAIT);
    let producer = server.client();
    let consumer = server.client();
    create(&producer, "tip", 1).await;
    let next = reach_tip(&consumer, "tip", "shardId-000000000000").await;
    let poll = poll_in_background(consumer, next);
    until_waiting(&server, 1.0).await;
    put(&producer, "tip", "k", b"while you waited").await;
    let (took, page) = poll.await.unwrap();
    let page = page.unwrap();
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(page.records().len(), 1);
    assert_eq!(page.records()[0].data().as_ref(), b"while you waited");
    assert_eq!(page.millis_behind_latest(), Some(0));
    assert!(page.next_shard_iterator().is_some());
    until_waiting(&server, 0.0).await;
    assert_eq!(tip_waits(&server, "tip"), 1.0);
}

#[tokio::test]
async fn a_poll_that_waits_in_vain_answers_empty_after_the_configured_wait() {
    let server = TestServer::start_with(&["--get-records-tip-wait-ms", "300"]);
    let client = server.client();
    create(&client, "quiet", 1).await;
    let mut next = iterator(
        &client,
        "quiet",
        "shardId-000000000000",
        ShardIteratorType::Latest,
    )
    .await;
    let mut took = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let page = client
            .get_records()
            .shard_iterator(&next)
            .send()
            .await
            .unwrap();
        took.push(started.elapsed());
        assert!(page.records().is_empty());
        next = page.next_shard_iterator().unwrap().to_string();
    }
    assert!(
        took[0] < Duration::from_millis(300),
        "the first empty answer is at once: {took:?}"
    );
    assert!(
        took[1..].iter().all(|t| *t >= Duration::from_millis(300)),
        "the repeats wait their 300 ms: {took:?}"
    );
    assert_eq!(tip_waits(&server, "quiet"), 2.0);

    // An iterator from GetShardIterator starts a new chain: its first empty answer is at once.
    let fresh = iterator(
        &client,
        "quiet",
        "shardId-000000000000",
        ShardIteratorType::Latest,
    )
    .await;
    let started = Instant::now();
    let page = client
        .get_records()
        .shard_iterator(&fresh)
        .send()
        .await
        .unwrap();
    assert!(page.records().is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(tip_waits(&server, "quiet"), 2.0);
}

#[tokio::test]
async fn draining_a_shard_and_walking_shards_over_one_connection_never_wait() {
    let server = TestServer::start_with(LONG_WAIT);
    let producer = server.client();
    let consumer = server.client();
    create(&producer, "walked", 2).await;
    let shards = ["shardId-000000000000", "shardId-000000000001"];
    let started = Instant::now();

    // Round-robin over both shards' tips on the consumer's one connection.
    let mut iterators = Vec::new();
    for shard in shards {
        iterators.push(iterator(&consumer, "walked", shard, ShardIteratorType::Latest).await);
    }
    for _ in 0..3 {
        for it in &mut iterators {
            let page = consumer
                .get_records()
                .shard_iterator(&*it)
                .send()
                .await
                .unwrap();
            assert!(page.records().is_empty());
            *it = page.next_shard_iterator().unwrap().to_string();
        }
    }

    // Drain a shard until its first empty answer, twice, with records put in between by
    // another client: the second drain starts with a page of records, not at the tip.
    let mut it = iterator(
        &consumer,
        "walked",
        shards[0],
        ShardIteratorType::TrimHorizon,
    )
    .await;
    for round in 0..2 {
        for i in 0..3 {
            put(
                &producer,
                "walked",
                "same key",
                format!("{round}-{i}").as_bytes(),
            )
            .await;
        }
        let mut read = 0;
        loop {
            let page = consumer
                .get_records()
                .shard_iterator(&it)
                .limit(2)
                .send()
                .await
                .unwrap();
            it = page.next_shard_iterator().unwrap().to_string();
            if page.records().is_empty() {
                break;
            }
            read += page.records().len();
        }
        // `same key` hashes to one of the two shards; the other drains empty at once.
        assert!(read == 3 || read == 0, "{read}");
        if read == 0 {
            it = iterator(
                &consumer,
                "walked",
                shards[1],
                ShardIteratorType::TrimHorizon,
            )
            .await;
        }
    }
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    assert_eq!(tip_waits(&server, "walked"), 0.0);
}

#[tokio::test]
async fn a_waiting_poll_ends_when_its_stream_is_deleted_or_the_server_stops() {
    let mut server = TestServer::start_with(LONG_WAIT);
    let control = server.client();
    let mut waiting = Vec::new();
    for name in ["doomed", "kept"] {
        create(&control, name, 1).await;
        let consumer = server.client();
        let next = reach_tip(&consumer, name, "shardId-000000000000").await;
        waiting.push(poll_in_background(consumer, next));
    }
    until_waiting(&server, 2.0).await;

    control
        .delete_stream()
        .stream_name("doomed")
        .send()
        .await
        .unwrap();
    let (took, result) = waiting.remove(0).await.unwrap();
    assert!(took < PROMPT, "{took:?}");
    let err = result.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    let stopped_in = server.terminate();
    assert!(
        stopped_in < PROMPT,
        "shutdown waited for the poll: {stopped_in:?}"
    );
    let (took, result) = waiting.remove(0).await.unwrap();
    assert!(took < PROMPT, "{took:?}");
    // Answered (empty) as the server began to stop, or cut off with the connection.
    if let Ok(page) = result {
        assert!(page.records().is_empty());
    }
}

#[tokio::test]
async fn a_waiting_poll_learns_at_once_that_its_shard_was_split() {
    let server = TestServer::start_with(LONG_WAIT);
    let control = server.client();
    let consumer = server.client();
    create(&control, "split", 1).await;
    let next = reach_tip(&consumer, "split", "shardId-000000000000").await;
    let poll = poll_in_background(consumer, next);
    until_waiting(&server, 1.0).await;
    control
        .split_shard()
        .stream_name("split")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    let (took, page) = poll.await.unwrap();
    let page = page.unwrap();
    assert!(took < PROMPT, "{took:?}");
    assert!(page.records().is_empty());
    assert_eq!(
        page.next_shard_iterator(),
        None,
        "the closed parent ends here"
    );
    let children: Vec<&str> = page.child_shards().iter().map(|c| c.shard_id()).collect();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
}

#[tokio::test]
async fn a_tip_poll_that_lands_on_another_pooled_connection_still_waits() {
    let server = TestServer::start_with(LONG_WAIT);
    let producer = server.client();
    // Two consumers stand for two threads sharing a pool: `b_thread` reaches shard 1's tip,
    // then its next poll goes out on the connection `a_thread` just used for records of
    // shard 0.
    let a_thread = server.client();
    let b_thread = server.client();
    create(&producer, "pooled", 2).await;
    let shard_0 = producer
        .put_record()
        .stream_name("pooled")
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new(b"zero".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(shard_0.shard_id(), "shardId-000000000000");
    let from_start = iterator(
        &a_thread,
        "pooled",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let page = a_thread
        .get_records()
        .shard_iterator(from_start)
        .send()
        .await
        .unwrap();
    assert_eq!(page.records().len(), 1);
    let next = reach_tip(&b_thread, "pooled", "shardId-000000000001").await;
    let poll = poll_in_background(a_thread, next);
    until_waiting(&server, 1.0).await;
    producer
        .put_record()
        .stream_name("pooled")
        .partition_key("k")
        .explicit_hash_key((1u128 << 127).to_string())
        .data(Blob::new(b"one".to_vec()))
        .send()
        .await
        .unwrap();
    let (took, page) = poll.await.unwrap();
    let page = page.unwrap();
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(page.records().len(), 1);
    assert_eq!(page.records()[0].data().as_ref(), b"one");
}
