//! Enhanced fan-out through the AWS SDK for Rust: SubscribeToShard pushes every record, follows
//! resharding, resumes exactly, and enforces one subscription per consumer and shard.

use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ShardIteratorType, StartingPosition, SubscribeToShardEvent, SubscribeToShardEventStream,
};

use crate::support::TestServer;

const STREAM_ARN_PREFIX: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/";

async fn setup(client: &aws_sdk_kinesis::Client, stream: &str, shards: i32) -> String {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    client
        .register_stream_consumer()
        .stream_arn(format!("{STREAM_ARN_PREFIX}{stream}"))
        .consumer_name("pusher")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap()
        .consumer_arn
}

fn position(kind: ShardIteratorType, sequence: Option<&str>) -> StartingPosition {
    StartingPosition::builder()
        .r#type(kind)
        .set_sequence_number(sequence.map(str::to_string))
        .build()
        .unwrap()
}

async fn next_event(
    receiver: &mut aws_sdk_kinesis::primitives::event_stream::EventReceiver<
        SubscribeToShardEventStream,
        aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError,
    >,
) -> Option<SubscribeToShardEvent> {
    let item = tokio::time::timeout(Duration::from_secs(20), receiver.recv())
        .await
        .expect("an event within 20 s");
    match item.expect("a well-formed event stream") {
        Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) => Some(event),
        Some(other) => panic!("unexpected event {other:?}"),
        None => None,
    }
}

#[tokio::test]
async fn subscriber_receives_every_record_in_order_as_it_is_written() {
    let server = TestServer::start();
    let client = server.client();
    let consumer = setup(&client, "push", 1).await;
    let output = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await
        .unwrap();
    let mut receiver = output.event_stream;
    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut sequences = Vec::new();
            for i in 0..60 {
                let put = client
                    .put_record()
                    .stream_name("push")
                    .partition_key("k")
                    .data(Blob::new(format!("{i}")))
                    .send()
                    .await
                    .unwrap();
                sequences.push(put.sequence_number().to_string());
            }
            sequences
        })
    };
    let mut received = Vec::new();
    let mut last_continuation = String::new();
    while received.len() < 60 {
        let event = next_event(&mut receiver).await.expect("stream open");
        for record in event.records() {
            received.push((
                record.sequence_number().to_string(),
                String::from_utf8(record.data().as_ref().to_vec()).unwrap(),
            ));
        }
        last_continuation = event.continuation_sequence_number().to_string();
        assert!(
            !last_continuation.is_empty(),
            "a continuation on every normal event"
        );
        assert!(event.child_shards().is_empty());
    }
    let sequences = producer.await.unwrap();
    let expected: Vec<(String, String)> = sequences
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, i.to_string()))
        .collect();
    assert_eq!(received, expected);
    assert_eq!(
        last_continuation,
        received.last().unwrap().0,
        "continuation is the last delivered record"
    );

    // A second subscription within 5 seconds is refused.
    let again = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(again.code(), Some("ResourceInUseException"));
}

#[tokio::test]
async fn resubscribing_after_the_continuation_has_no_gap_and_no_duplicate() {
    let server = TestServer::start();
    let client = server.client();
    let consumer = setup(&client, "resume", 1).await;
    for i in 0..30 {
        client
            .put_record()
            .stream_name("resume")
            .partition_key("k")
            .data(Blob::new(format!("{i}")))
            .send()
            .await
            .unwrap();
    }
    // Take the first event only, then resume where it ended (on a fresh server-side
    // subscription once the 5-second rule allows it: use a second consumer instead).
    let first = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .unwrap();
    let mut receiver = first.event_stream;
    let event = next_event(&mut receiver).await.unwrap();
    assert_eq!(event.records().len(), 30);
    let middle = event.records()[11].sequence_number().to_string();
    drop(receiver);
    let second_consumer = client
        .register_stream_consumer()
        .stream_arn(format!("{STREAM_ARN_PREFIX}resume"))
        .consumer_name("second")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap()
        .consumer_arn;
    let resumed = client
        .subscribe_to_shard()
        .consumer_arn(&second_consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(
            ShardIteratorType::AfterSequenceNumber,
            Some(&middle),
        ))
        .send()
        .await
        .unwrap();
    let mut receiver = resumed.event_stream;
    let event = next_event(&mut receiver).await.unwrap();
    let data: Vec<String> = event
        .records()
        .iter()
        .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap())
        .collect();
    assert_eq!(data, (12..30).map(|i| i.to_string()).collect::<Vec<_>>());
}

/// An unknown shard is named in its canonical form when the id parses as one, as AWS does.
#[tokio::test]
async fn subscribing_to_an_unknown_shard_names_it_canonically() {
    let server = TestServer::start();
    let client = server.client();
    let consumer = setup(&client, "noshard", 1).await;
    let missing = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-7")
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    assert_eq!(
        missing.meta().message(),
        Some(
            "Shard shardId-000000000007 in stream noshard under account 000000000000 does not exist"
        )
    );
}

#[tokio::test]
async fn subscription_ends_at_a_split_with_child_shards_and_children_continue() {
    let server = TestServer::start();
    let client = server.client();
    let consumer = setup(&client, "splitpush", 1).await;
    client
        .put_record()
        .stream_name("splitpush")
        .partition_key("k")
        .data(Blob::new("parent"))
        .send()
        .await
        .unwrap();
    let output = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .unwrap();
    let mut receiver = output.event_stream;
    client
        .split_shard()
        .stream_name("splitpush")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .stream_name("splitpush")
        .partition_key("k")
        .explicit_hash_key("1")
        .data(Blob::new("child"))
        .send()
        .await
        .unwrap();
    let mut parent_data = Vec::new();
    let children = loop {
        let event = next_event(&mut receiver)
            .await
            .expect("the end event before the stream closes");
        parent_data.extend(event.records().iter().map(|r| r.data().as_ref().to_vec()));
        if !event.child_shards().is_empty() {
            // The model makes it required, so the SDK shows an absent one as empty.
            assert!(
                event.continuation_sequence_number().is_empty(),
                "the end event carries no continuation"
            );
            break event
                .child_shards()
                .iter()
                .map(|c| c.shard_id().to_string())
                .collect::<Vec<_>>();
        }
    };
    assert_eq!(parent_data, vec![b"parent".to_vec()]);
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
    assert!(
        next_event(&mut receiver).await.is_none(),
        "the stream closes after the end event"
    );
    let child = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000001")
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .unwrap();
    let mut receiver = child.event_stream;
    let event = next_event(&mut receiver).await.unwrap();
    assert_eq!(event.records()[0].data().as_ref(), b"child");
}

#[tokio::test]
async fn subscribe_errors_come_before_the_stream() {
    let server = TestServer::start();
    let client = server.client();
    let consumer = setup(&client, "errs", 1).await;
    let unknown_shard = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000009")
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(unknown_shard.code(), Some("ResourceNotFoundException"));
    let unknown_consumer = client
        .subscribe_to_shard()
        .consumer_arn(format!("{STREAM_ARN_PREFIX}errs/consumer/nobody:1"))
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(unknown_consumer.code(), Some("ResourceNotFoundException"));
}
