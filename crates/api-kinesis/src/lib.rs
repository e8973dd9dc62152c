//! The Kinesis Data Streams API (`Kinesis_20131202`): shapes and validation generated from
//! the AWS model (`model`), thin handlers over `millstream_streams`, and the one mapping of
//! domain errors to AWS errors (`error`).
//!
//! A request goes: decode (SerializationException) → model validation (ValidationException)
//! → conversion to domain values → domain call → output shape → encode in the request's
//! protocol. Handlers are grouped by area rather than one module per operation: 39 modules
//! of ten lines each would hide more than they show.

mod convert;
mod error;
mod handlers;
pub mod model;
pub mod records_cbor;
pub mod records_json;
mod subscribe;

use bytes::Bytes;
use millstream_aws_protocol::{Protocol, Validate, decode, encode};
use millstream_streams::{ConnectionPolls, Streams};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::KinesisError;
pub use model::{Operation, TARGET_PREFIX};
pub use subscribe::EventFrames;

/// The Kinesis API bound to a Data Streams service.
#[derive(Clone)]
pub struct KinesisApi {
    streams: Streams,
    series: std::sync::Arc<handlers::telemetry::SeriesCache>,
}

/// Decodes and validates an input, runs the handler, encodes the output (or nothing for
/// operations without an output shape, which answer with an empty 200).
async fn run<I, O>(
    protocol: Protocol,
    body: &[u8],
    handler: impl AsyncFnOnce(I) -> Result<O, KinesisError>,
) -> Result<Bytes, KinesisError>
where
    I: DeserializeOwned + Validate,
    O: Serialize + Outcome,
{
    let input: I = decode(protocol, body)?;
    input.validate_input()?;
    let output = handler(input).await?;
    Ok(if O::HAS_BODY {
        encode(protocol, &output)
    } else {
        Bytes::new()
    })
}

/// Whether an operation's output has a body.
trait Outcome {
    const HAS_BODY: bool;
}
impl Outcome for () {
    const HAS_BODY: bool = false;
}

impl KinesisApi {
    pub fn new(streams: Streams) -> Self {
        Self {
            streams,
            series: Default::default(),
        }
    }

    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    /// Starts a SubscribeToShard stream.
    ///
    /// # Errors
    /// The AWS error to send back instead of a stream.
    pub async fn subscribe_to_shard(
        &self,
        protocol: Protocol,
        body: &[u8],
    ) -> Result<EventFrames, KinesisError> {
        subscribe::subscribe_to_shard(&self.streams, protocol, body).await
    }

    /// Runs one operation on a request body (SubscribeToShard has `subscribe_to_shard`).
    /// `connection` is the memory of the client connection the request came on, which lets a
    /// GetRecords repeated at a shard's tip wait for the next record (`ConnectionPolls`).
    ///
    /// # Errors
    /// The AWS error to send back.
    pub async fn handle(
        &self,
        operation: Operation,
        protocol: Protocol,
        body: &[u8],
        connection: Option<&ConnectionPolls>,
    ) -> Result<Bytes, KinesisError> {
        use Operation::*;
        let h = handlers::Handlers {
            streams: &self.streams,
            series: &self.series,
        };
        match operation {
            AddTagsToStream => run(protocol, body, async |i| h.add_tags_to_stream(i).await).await,
            CreateStream => run(protocol, body, async |i| h.create_stream(i).await).await,
            DecreaseStreamRetentionPeriod => {
                run(protocol, body, async |i| h.decrease_retention(i).await).await
            }
            DeleteResourcePolicy => {
                run(protocol, body, async |i| h.delete_resource_policy(i).await).await
            }
            DeleteStream => run(protocol, body, async |i| h.delete_stream(i).await).await,
            DeregisterStreamConsumer => {
                run(protocol, body, async |i| h.deregister_consumer(i).await).await
            }
            DescribeAccountSettings => {
                run(protocol, body, async |i| h.describe_account_settings(i)).await
            }
            DescribeLimits => run(protocol, body, async |i| h.describe_limits(i)).await,
            DescribeStream => run(protocol, body, async |i| h.describe_stream(i)).await,
            DescribeStreamConsumer => run(protocol, body, async |i| h.describe_consumer(i)).await,
            DescribeStreamSummary => {
                run(protocol, body, async |i| h.describe_stream_summary(i)).await
            }
            DisableEnhancedMonitoring => {
                run(protocol, body, async |i| h.disable_monitoring(i).await).await
            }
            EnableEnhancedMonitoring => {
                run(protocol, body, async |i| h.enable_monitoring(i).await).await
            }
            GetRecords => {
                let input: model::GetRecordsInput = decode(protocol, body)?;
                input.validate_input()?;
                let page = h.get_records(input, connection).await?;
                Ok(match protocol {
                    Protocol::Json => records_json::encode_page(&page),
                    Protocol::Cbor => records_cbor::encode_page(&page),
                })
            }
            GetResourcePolicy => run(protocol, body, async |i| h.get_resource_policy(i)).await,
            GetShardIterator => run(protocol, body, async |i| h.get_shard_iterator(i).await).await,
            IncreaseStreamRetentionPeriod => {
                run(protocol, body, async |i| h.increase_retention(i).await).await
            }
            ListShards => run(protocol, body, async |i| h.list_shards(i)).await,
            ListStreamConsumers => run(protocol, body, async |i| h.list_consumers(i)).await,
            ListStreams => run(protocol, body, async |i| h.list_streams(i)).await,
            ListTagsForResource => run(protocol, body, async |i| h.list_tags_for_resource(i)).await,
            ListTagsForStream => run(protocol, body, async |i| h.list_tags_for_stream(i)).await,
            MergeShards => run(protocol, body, async |i| h.merge_shards(i).await).await,
            PutRecord => run(protocol, body, async |i| h.put_record(i).await).await,
            PutRecords => run(protocol, body, async |i| h.put_records(i).await).await,
            PutResourcePolicy => {
                run(protocol, body, async |i| h.put_resource_policy(i).await).await
            }
            RegisterStreamConsumer => {
                run(protocol, body, async |i| h.register_consumer(i).await).await
            }
            RemoveTagsFromStream => {
                run(protocol, body, async |i| h.remove_tags_from_stream(i).await).await
            }
            SplitShard => run(protocol, body, async |i| h.split_shard(i).await).await,
            StartStreamEncryption => {
                run(protocol, body, async |i| h.start_encryption(i).await).await
            }
            StopStreamEncryption => run(protocol, body, async |i| h.stop_encryption(i).await).await,
            SubscribeToShard => Err(KinesisError::subscribe_needs_streaming()),
            TagResource => run(protocol, body, async |i| h.tag_resource(i).await).await,
            UntagResource => run(protocol, body, async |i| h.untag_resource(i).await).await,
            UpdateAccountSettings => {
                run(protocol, body, async |i| h.update_account_settings(i)).await
            }
            UpdateMaxRecordSize => {
                run(protocol, body, async |i| h.update_max_record_size(i).await).await
            }
            UpdateShardCount => run(protocol, body, async |i| h.update_shard_count(i).await).await,
            UpdateStreamMode => run(protocol, body, async |i| h.update_stream_mode(i).await).await,
            UpdateStreamWarmThroughput => {
                run(protocol, body, async |i| h.update_warm_throughput(i).await).await
            }
        }
    }
}
