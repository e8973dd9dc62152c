//! Small conversions between model shapes and domain values.

use millstream_aws_protocol::Timestamp;
use millstream_streams::{
    ShardMeta, StreamRef, StreamView, Streams, ending_sequence_number, starting_sequence_number,
};
use millstream_types::ShardId;

use crate::model;

pub(crate) fn stream_ref(name: Option<String>, arn: Option<String>) -> StreamRef {
    StreamRef { name, arn }
}

pub(crate) fn timestamp(ms: u64) -> Option<Timestamp> {
    Some(Timestamp::from_millis(ms as i64))
}

pub(crate) fn hash_range(start: u128, end: u128) -> model::HashKeyRange {
    model::HashKeyRange {
        starting_hash_key: Some(start.to_string()),
        ending_hash_key: Some(end.to_string()),
    }
}

pub(crate) fn shard(shard: &ShardMeta) -> model::Shard {
    model::Shard {
        shard_id: Some(ShardId(shard.index).to_string()),
        parent_shard_id: shard.parent.map(|p| ShardId(p).to_string()),
        adjacent_parent_shard_id: shard.adjacent_parent.map(|p| ShardId(p).to_string()),
        hash_key_range: Some(hash_range(shard.start_hash, shard.end_hash)),
        sequence_number_range: Some(model::SequenceNumberRange {
            starting_sequence_number: Some(starting_sequence_number(shard)),
            ending_sequence_number: ending_sequence_number(shard),
        }),
    }
}

pub(crate) fn mode_details(view: &StreamView) -> Option<model::StreamModeDetails> {
    Some(model::StreamModeDetails {
        stream_mode: Some(view.meta.mode.as_str().to_string()),
    })
}

pub(crate) fn enhanced_monitoring(view: &StreamView) -> Option<Vec<model::EnhancedMetrics>> {
    Some(vec![model::EnhancedMetrics {
        shard_level_metrics: Some(view.meta.shard_level_metrics.clone()),
    }])
}

pub(crate) fn encryption(view: &StreamView) -> (Option<String>, Option<String>) {
    match &view.meta.encryption_key {
        Some(key) => (Some("KMS".to_string()), Some(key.clone())),
        None => (Some("NONE".to_string()), None),
    }
}

pub(crate) fn stream_arn(streams: &Streams, view: &StreamView) -> Option<String> {
    Some(streams.stream_arn(&view.meta.name))
}

pub(crate) fn tags(
    map: Option<std::collections::BTreeMap<String, String>>,
) -> std::collections::BTreeMap<String, String> {
    map.unwrap_or_default()
}

pub(crate) fn record(r: millstream_streams::RecordOut) -> model::Record {
    model::Record {
        sequence_number: Some(r.sequence_number),
        approximate_arrival_timestamp: timestamp(r.arrival_ms),
        data: Some(millstream_aws_protocol::Blob(r.data)),
        partition_key: Some(r.partition_key),
        encryption_type: r.encrypted.then(|| "KMS".to_string()),
    }
}

pub(crate) fn child_shard(c: millstream_streams::ChildShardOut) -> model::ChildShard {
    model::ChildShard {
        shard_id: Some(c.shard_id.to_string()),
        parent_shards: Some(c.parent_shards.iter().map(|p| p.to_string()).collect()),
        hash_key_range: Some(hash_range(c.start_hash, c.end_hash)),
    }
}
