//! Resharding through the AWS SDK for Rust: parents read to their end, then children.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ScalingType, Shard, ShardFilter, ShardFilterType};

use crate::support::{TestServer, trim_horizon_iterator};

async fn put(client: &aws_sdk_kinesis::Client, stream: &str, hash: u128, data: &str) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("ignored")
        .explicit_hash_key(hash.to_string())
        .data(Blob::new(data))
        .send()
        .await
        .unwrap()
        .shard_id()
        .to_string()
}

/// Reads a shard from TRIM_HORIZON to its end; returns the data and the child shard ids.
async fn drain_closed(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
) -> (Vec<String>, Vec<String>) {
    let mut iterator = trim_horizon_iterator(client, stream, shard).await;
    let mut data = Vec::new();
    for _ in 0..10 {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap();
        data.extend(
            page.records()
                .iter()
                .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap()),
        );
        match page.next_shard_iterator() {
            Some(next) => {
                assert!(
                    page.child_shards().is_empty(),
                    "ChildShards only at the end of a closed shard"
                );
                iterator = next.to_string();
            }
            None => {
                let children = page.child_shards().iter().map(|c| {
                    assert!(!c.parent_shards().is_empty());
                    c.shard_id().to_string()
                });
                return (data, children.collect());
            }
        }
    }
    panic!("closed shard {shard} never reported its end");
}

fn open_cover_whole_space(shards: &[Shard]) -> bool {
    let mut open: Vec<(u128, u128)> = shards
        .iter()
        .filter(|s| {
            s.sequence_number_range()
                .unwrap()
                .ending_sequence_number()
                .is_none()
        })
        .map(|s| {
            let r = s.hash_key_range().unwrap();
            (
                r.starting_hash_key().parse().unwrap(),
                r.ending_hash_key().parse().unwrap(),
            )
        })
        .collect();
    open.sort();
    open.first().map(|f| f.0) == Some(0)
        && open.last().map(|l| l.1) == Some(u128::MAX)
        && open.windows(2).all(|w| w[0].1 + 1 == w[1].0)
}

#[tokio::test]
async fn split_then_merge_keeps_lineage_and_every_record() {
    let server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("resharded")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    put(&client, "resharded", 1, "before-low").await;
    put(&client, "resharded", u128::MAX - 1, "before-high").await;
    let middle = 1u128 << 127;
    client
        .split_shard()
        .stream_name("resharded")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(middle.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        put(&client, "resharded", 1, "after-low").await,
        "shardId-000000000001"
    );
    assert_eq!(
        put(&client, "resharded", u128::MAX - 1, "after-high").await,
        "shardId-000000000002"
    );

    let again = client
        .split_shard()
        .stream_name("resharded")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("5")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_kinesis::error::ProvideErrorMetadata::code(&again),
        Some("InvalidArgumentException")
    );

    let (parent_data, children) = drain_closed(&client, "resharded", "shardId-000000000000").await;
    assert_eq!(parent_data, ["before-low", "before-high"]);
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);

    let inverted = client
        .merge_shards()
        .stream_name("resharded")
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_kinesis::error::ProvideErrorMetadata::message(&inverted),
        Some(
            "Shards shardId-000000000002 and shardId-000000000001 in stream resharded under account 000000000000 are not an adjacent pair of shards eligible for merging"
        ),
        "the shard to merge must hold the lower range"
    );
    client
        .merge_shards()
        .stream_name("resharded")
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .unwrap();
    assert_eq!(
        put(&client, "resharded", 7, "merged").await,
        "shardId-000000000003"
    );
    let (low, low_children) = drain_closed(&client, "resharded", "shardId-000000000001").await;
    assert_eq!(low, ["after-low"]);
    assert_eq!(low_children, ["shardId-000000000003"]);
    let shards = client
        .list_shards()
        .stream_name("resharded")
        .send()
        .await
        .unwrap()
        .shards()
        .to_vec();
    assert_eq!(shards.len(), 4);
    let merged = &shards[3];
    assert_eq!(merged.parent_shard_id(), Some("shardId-000000000001"));
    assert_eq!(
        merged.adjacent_parent_shard_id(),
        Some("shardId-000000000002")
    );
    assert!(open_cover_whole_space(&shards));
    // Children's numbers sort above their parents'.
    let parent_end = shards[0]
        .sequence_number_range()
        .unwrap()
        .ending_sequence_number()
        .unwrap()
        .to_string();
    let child_start = shards[1]
        .sequence_number_range()
        .unwrap()
        .starting_sequence_number()
        .to_string();
    assert!(child_start > parent_end);

    let latest = client
        .list_shards()
        .stream_name("resharded")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let open: Vec<&str> = latest.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(open, ["shardId-000000000003"]);
    let horizon = client
        .list_shards()
        .stream_name("resharded")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtTrimHorizon)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let roots: Vec<&str> = horizon.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(roots, ["shardId-000000000000"]);
}

#[tokio::test]
async fn update_shard_count_rescales_evenly_through_real_splits_and_merges() {
    let server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("scaled")
        .shard_count(4)
        .send()
        .await
        .unwrap();
    for step in [3, 6, 5, 10] {
        let output = client
            .update_shard_count()
            .stream_name("scaled")
            .target_shard_count(step)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .unwrap();
        assert_eq!(output.target_shard_count(), Some(step));
        let shards = client
            .list_shards()
            .stream_name("scaled")
            .send()
            .await
            .unwrap()
            .shards()
            .to_vec();
        let open: Vec<&Shard> = shards
            .iter()
            .filter(|s| {
                s.sequence_number_range()
                    .unwrap()
                    .ending_sequence_number()
                    .is_none()
            })
            .collect();
        assert_eq!(open.len(), step as usize);
        assert!(open_cover_whole_space(&shards));
        for shard in &shards {
            assert!(
                shard.adjacent_parent_shard_id().is_none() || shard.parent_shard_id().is_some()
            );
        }
        // Evenly spaced, as AWS leaves them.
        let expected = millstream_even_ranges(step as u32);
        let mut ranges: Vec<(u128, u128)> = open
            .iter()
            .map(|s| {
                let r = s.hash_key_range().unwrap();
                (
                    r.starting_hash_key().parse().unwrap(),
                    r.ending_hash_key().parse().unwrap(),
                )
            })
            .collect();
        ranges.sort();
        assert_eq!(ranges, expected);
    }
    let too_far = client
        .update_shard_count()
        .stream_name("scaled")
        .target_shard_count(25)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_kinesis::error::ProvideErrorMetadata::code(&too_far),
        Some("LimitExceededException")
    );
}

fn millstream_even_ranges(n: u32) -> Vec<(u128, u128)> {
    if n == 1 {
        return vec![(0, u128::MAX)];
    }
    let n = u128::from(n);
    let width = if u128::MAX % n == n - 1 {
        u128::MAX / n + 1
    } else {
        u128::MAX / n
    };
    (0..n)
        .map(|i| {
            (
                i * width,
                if i == n - 1 {
                    u128::MAX
                } else {
                    (i + 1) * width - 1
                },
            )
        })
        .collect()
}
