//! Firehose record processing: the per-record steps between ingest and delivery.
//!
//! - [`deaggregate`]: KPL aggregated records (Kinesis source) and the `RecordDeAggregation`
//!   processor (concatenated JSON or delimiter-separated sub-records).
//! - [`jq`]: the `MetadataExtraction` processor, which computes dynamic-partitioning keys with a
//!   jq query compiled once per delivery stream.
//! - [`lambda`]: the `Lambda` processor: invocation payload, the Lambda Invoke API client
//!   (SigV4, retries) and the per-record matching of the function's response.
//!
//! Nothing here buffers, persists or knows about destinations; the delivery engine decides what a
//! failed or dropped record means for its buffers and error output.

pub mod deaggregate;
pub mod jq;
pub mod lambda;
