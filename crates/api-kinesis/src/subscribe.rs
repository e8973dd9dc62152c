//! SubscribeToShard: validation and the start happen before any response byte, so their
//! failures are ordinary error responses; afterwards everything is an event-stream frame.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use millstream_aws_protocol::event_stream;
use millstream_aws_protocol::{Protocol, Validate, decode};
use millstream_streams::{IteratorType, StartingPosition, Streams, SubscriptionItem};

use crate::model::SubscribeToShardInput;
use crate::records_json::ShardEventPage;
use crate::{KinesisError, convert, records_cbor, records_json};

/// The frames of one SubscribeToShard response, initial response first.
pub type EventFrames = BoxStream<'static, Bytes>;

const EVENT_TYPE: &str = "SubscribeToShardEvent";

struct EventMetrics {
    records: metrics::Counter,
    bytes: metrics::Counter,
    events: metrics::Counter,
    millis_behind: metrics::Gauge,
}

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
    // Handles looked up once per subscription, not once per event.
    let metrics = EventMetrics {
        records: metrics::counter!("kinesis_subscribe_to_shard_event_records_total", "stream" => stream.clone()),
        bytes: metrics::counter!("kinesis_subscribe_to_shard_event_bytes_total", "stream" => stream.clone()),
        events: metrics::counter!("kinesis_subscribe_to_shard_event_success_total", "stream" => stream.clone()),
        millis_behind: metrics::gauge!("kinesis_subscribe_to_shard_event_millis_behind_latest", "stream" => stream),
    };
    let events = futures::stream::unfold(
        (subscription, metrics),
        move |(mut subscription, metrics)| async move {
            let frame = match subscription.next().await? {
                SubscriptionItem::Event(event) => {
                    metrics.records.increment(event.records.len() as u64);
                    metrics.bytes.increment(event.records.data_bytes());
                    metrics.events.increment(1);
                    metrics.millis_behind.set(event.millis_behind_latest as f64);
                    let page = ShardEventPage {
                        records: event.records,
                        continuation_sequence_number: event.continuation_sequence_number,
                        millis_behind_latest: event.millis_behind_latest as i64,
                        child_shards: (!event.child_shards.is_empty()).then(|| {
                            event
                                .child_shards
                                .into_iter()
                                .map(convert::child_shard)
                                .collect()
                        }),
                    };
                    let payload = match protocol {
                        Protocol::Json => records_json::encode_event(&page),
                        Protocol::Cbor => records_cbor::encode_event(&page),
                    };
                    event_stream::encoded_event(protocol, EVENT_TYPE, payload)
                }
                SubscriptionItem::Exception { code, message } => {
                    event_stream::exception(protocol, code, &message)
                }
            };
            Some((frame, (subscription, metrics)))
        },
    );
    Ok(
        futures::stream::once(async move { event_stream::initial_response(protocol) })
            .chain(events)
            .boxed(),
    )
}
