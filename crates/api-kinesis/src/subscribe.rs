//! SubscribeToShard: validation and the start happen before any response byte, so their
//! failures are ordinary error responses; afterwards everything is an event-stream frame.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use millstream_aws_protocol::event_stream;
use millstream_aws_protocol::{Protocol, Validate, decode};
use millstream_streams::{IteratorType, StartingPosition, Streams, SubscriptionItem};

use crate::model::{SubscribeToShardEvent, SubscribeToShardInput};
use crate::{KinesisError, convert};

/// The frames of one SubscribeToShard response, initial response first.
pub type EventFrames = BoxStream<'static, Bytes>;

const EVENT_TYPE: &str = "SubscribeToShardEvent";

pub(crate) async fn subscribe_to_shard(
    streams: &Streams,
    protocol: Protocol,
    body: &[u8],
) -> Result<EventFrames, KinesisError> {
    let input: SubscribeToShardInput = decode(protocol, body)?;
    input.validate_input()?;
    let position = input.starting_position.unwrap_or_default();
    let kind = position
        .r#type
        .as_deref()
        .and_then(IteratorType::parse)
        .expect("the model's enum check admits only the five position types");
    let consumer_arn = input.consumer_arn.clone().unwrap_or_default();
    let stream = consumer_arn
        .split_once("/consumer/")
        .and_then(|(stream_arn, _)| stream_arn.rsplit_once("stream/"))
        .map(|(_, name)| name.to_string())
        .unwrap_or_default();
    let subscription = streams
        .subscribe(
            input.consumer_arn.as_deref().unwrap_or_default(),
            input.shard_id.as_deref().unwrap_or_default(),
            StartingPosition {
                kind,
                sequence_number: position.sequence_number,
                timestamp_ms: position.timestamp.map(|t| t.as_millis()),
            },
        )
        .await?;
    metrics::counter!("kinesis_subscribe_to_shard_success_total", "stream" => stream.clone())
        .increment(1);
    let events = futures::stream::unfold(subscription, move |mut subscription| {
        let stream = stream.clone();
        async move {
            let frame = match subscription.next().await? {
                SubscriptionItem::Event(event) => {
                    let bytes: u64 = event.records.iter().map(|r| r.data.len() as u64).sum();
                    metrics::counter!("kinesis_subscribe_to_shard_event_records_total", "stream" => stream.clone())
                    .increment(event.records.len() as u64);
                    metrics::counter!("kinesis_subscribe_to_shard_event_bytes_total", "stream" => stream.clone()).increment(bytes);
                    metrics::counter!("kinesis_subscribe_to_shard_event_success_total", "stream" => stream.clone()).increment(1);
                    metrics::gauge!("kinesis_subscribe_to_shard_event_millis_behind_latest", "stream" => stream)
                    .set(event.millis_behind_latest as f64);
                    let shape = SubscribeToShardEvent {
                        records: Some(event.records.into_iter().map(convert::record).collect()),
                        continuation_sequence_number: event.continuation_sequence_number,
                        millis_behind_latest: Some(event.millis_behind_latest as i64),
                        child_shards: (!event.child_shards.is_empty()).then(|| {
                            event
                                .child_shards
                                .into_iter()
                                .map(convert::child_shard)
                                .collect()
                        }),
                    };
                    event_stream::event(protocol, EVENT_TYPE, &shape)
                }
                SubscriptionItem::Exception { code, message } => {
                    event_stream::exception(protocol, code, &message)
                }
            };
            Some((frame, subscription))
        }
    });
    Ok(
        futures::stream::once(async move { event_stream::initial_response(protocol) })
            .chain(events)
            .boxed(),
    )
}
