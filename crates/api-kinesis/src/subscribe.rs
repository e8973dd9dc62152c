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
    let events = futures::stream::unfold(subscription, move |mut subscription| async move {
        let frame = match subscription.next().await? {
            SubscriptionItem::Event(event) => {
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
    });
    Ok(
        futures::stream::once(async move { event_stream::initial_response(protocol) })
            .chain(events)
            .boxed(),
    )
}
