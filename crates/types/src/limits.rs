//! AWS quotas and Millstream's own bounds, each in one place.
//!
//! AWS figures follow the Kinesis Data Streams quotas page
//! (<https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>) and the
//! botocore service model.

use std::time::Duration;

/// Entries in one PutRecords request.
pub const PUT_RECORDS_ENTRIES_MAX: usize = 500;
/// Payload (partition keys + data) of one PutRecords request.
pub const PUT_RECORDS_REQUEST_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Default per-stream record size (partition key + data), until UpdateMaxRecordSize.
pub const RECORD_SIZE_KIB_DEFAULT: u32 = 1024;
/// Range of `MaxRecordSizeInKiB`.
pub const RECORD_SIZE_KIB_MIN: u32 = 1024;
pub const RECORD_SIZE_KIB_MAX: u32 = 10240;
/// Partition keys are 1..=256 Unicode characters.
pub const PARTITION_KEY_CHARS_MAX: usize = 256;
/// GetRecords returns at most this many records, and this is its default Limit.
pub const GET_RECORDS_LIMIT_MAX: usize = 10_000;
/// GetRecords responses are capped near this many bytes of data.
pub const GET_RECORDS_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Shard iterators and list NextTokens are valid this long after issue.
pub const ITERATOR_TTL: Duration = Duration::from_secs(300);
pub const NEXT_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Retention bounds (hours) and the default for new streams.
pub const RETENTION_HOURS_MIN: u32 = 24;
pub const RETENTION_HOURS_MAX: u32 = 8760;
pub const RETENTION_HOURS_DEFAULT: u32 = 24;
/// Tags per stream or consumer.
pub const TAGS_PER_RESOURCE_MAX: usize = 50;
/// Registered enhanced fan-out consumers per stream.
pub const CONSUMERS_PER_STREAM_MAX: usize = 20;
/// Page sizes the service caps at whatever the request asks for.
pub const DESCRIBE_STREAM_SHARDS_PAGE_MAX: usize = 100;
pub const LIST_SHARDS_PAGE_MAX: usize = 1000;
pub const LIST_STREAMS_PAGE_MAX: usize = 100;
pub const LIST_CONSUMERS_PAGE_MAX: usize = 100;
pub const LIST_TAGS_PAGE_MAX: usize = 50;
/// Shards in one stream (AWS's hard ceiling for UpdateShardCount).
pub const SHARDS_PER_STREAM_MAX: u32 = 10_000;
/// Default account-wide shard quota reported by DescribeLimits and enforced on create/split.
pub const SHARD_LIMIT_DEFAULT: u32 = 20_000;
/// On-demand streams per account.
pub const ON_DEMAND_STREAM_LIMIT: u32 = 50;
/// Shards an on-demand stream starts with (4 MiB/s of write capacity).
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;
/// Shards a provisioned stream gets when CreateStream names neither ShardCount nor a mode.
pub const DEFAULT_SHARD_COUNT: u32 = 4;
/// UpdateShardCount calls per stream per rolling 24 hours.
pub const SCALING_OPERATIONS_PER_DAY: usize = 10;
/// Per-shard write quota, enforced only when throughput emulation is on.
pub const SHARD_WRITE_BYTES_PER_SECOND: u64 = 1024 * 1024;
pub const SHARD_WRITE_RECORDS_PER_SECOND: u64 = 1000;
/// Per-shard read quota (GetRecords), enforced only when throughput emulation is on.
pub const SHARD_READ_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;
pub const SHARD_READ_CALLS_PER_SECOND: u64 = 5;
