//! The Firehose API (`Firehose_20150804`, AWS JSON 1.1): shapes and validation generated from
//! the AWS model (`model`), thin handlers over `millstream_firehose`, the conversion of AWS
//! destination configurations to the domain's spec (`convert`), their descriptions
//! (`describe`), and the one mapping of domain errors to AWS errors (`error`).

mod convert;
mod describe;
mod error;
mod handlers;
pub mod model;

use bytes::Bytes;
use millstream_aws_protocol::{Protocol, Validate, decode, encode};
use millstream_firehose::Firehose;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::FirehoseApiError;
pub use model::{Operation, TARGET_PREFIX};

#[derive(Clone)]
pub struct FirehoseApi {
    firehose: Firehose,
}

async fn run<I, O>(
    protocol: Protocol,
    body: &[u8],
    handler: impl AsyncFnOnce(I) -> Result<O, FirehoseApiError>,
) -> Result<Bytes, FirehoseApiError>
where
    I: DeserializeOwned + Validate,
    O: Serialize,
{
    let input: I = decode(protocol, body)?;
    input.validate_input()?;
    let output = handler(input).await?;
    Ok(encode(protocol, &output))
}

impl FirehoseApi {
    pub fn new(firehose: Firehose) -> Self {
        Self { firehose }
    }

    pub fn firehose(&self) -> &Firehose {
        &self.firehose
    }

    /// Runs one operation on a request body.
    ///
    /// # Errors
    /// The AWS error to send back.
    pub async fn handle(
        &self,
        operation: Operation,
        protocol: Protocol,
        body: &[u8],
    ) -> Result<Bytes, FirehoseApiError> {
        use Operation::*;
        let h = handlers::Handlers {
            firehose: &self.firehose,
        };
        match operation {
            CreateDeliveryStream => run(protocol, body, async |i| h.create(i).await).await,
            DeleteDeliveryStream => run(protocol, body, async |i| h.delete(i).await).await,
            DescribeDeliveryStream => run(protocol, body, async |i| h.describe(i)).await,
            ListDeliveryStreams => run(protocol, body, async |i| h.list(i)).await,
            ListTagsForDeliveryStream => run(protocol, body, async |i| h.list_tags(i)).await,
            PutRecord => run(protocol, body, async |i| h.put_record(i).await).await,
            PutRecordBatch => run(protocol, body, async |i| h.put_record_batch(i).await).await,
            StartDeliveryStreamEncryption => {
                run(protocol, body, async |i| h.start_encryption(i).await).await
            }
            StopDeliveryStreamEncryption => {
                run(protocol, body, async |i| h.stop_encryption(i).await).await
            }
            TagDeliveryStream => run(protocol, body, async |i| h.tag(i).await).await,
            UntagDeliveryStream => run(protocol, body, async |i| h.untag(i).await).await,
            UpdateDestination => run(protocol, body, async |i| h.update_destination(i).await).await,
        }
    }
}
