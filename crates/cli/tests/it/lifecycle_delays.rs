//! `--create-stream-ms`, `--delete-stream-ms`, `--update-stream-ms`: the CREATING, DELETING
//! and UPDATING states other emulators expose, with what each allows.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;

use crate::support::TestServer;

async fn status(client: &aws_sdk_kinesis::Client, stream: &str) -> Option<String> {
    match client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
    {
        Ok(output) => Some(
            output
                .stream_description_summary()
                .unwrap()
                .stream_status()
                .as_str()
                .to_string(),
        ),
        Err(err) => {
            assert_eq!(
                err.into_service_error().code(),
                Some("ResourceNotFoundException")
            );
            None
        }
    }
}

/// Polls until the stream's status is `want` (None = gone); fails after 10 s.
async fn wait_for(client: &aws_sdk_kinesis::Client, stream: &str, want: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(client, stream).await.as_deref() != want {
        assert!(Instant::now() < deadline, "{stream} never reached {want:?}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn streams_pass_through_creating_updating_and_deleting() {
    let server = TestServer::start_with(&[
        "--create-stream-ms",
        "400",
        "--delete-stream-ms",
        "400",
        "--update-stream-ms",
        "400",
    ]);
    let client = server.client();
    client
        .create_stream()
        .stream_name("slow")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    assert_eq!(status(&client, "slow").await.as_deref(), Some("CREATING"));
    let described = client
        .describe_stream()
        .stream_name("slow")
        .send()
        .await
        .unwrap();
    assert!(
        described.stream_description().unwrap().shards().is_empty(),
        "no shards while CREATING"
    );
    let early = client
        .put_record()
        .stream_name("slow")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        early.into_service_error().code(),
        Some("ResourceNotFoundException")
    );
    wait_for(&client, "slow", Some("ACTIVE")).await;
    client
        .put_record()
        .stream_name("slow")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();

    client
        .split_shard()
        .stream_name("slow")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1000")
        .send()
        .await
        .unwrap();
    assert_eq!(status(&client, "slow").await.as_deref(), Some("UPDATING"));
    let busy = client
        .merge_shards()
        .stream_name("slow")
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000003")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(busy.code(), Some("ResourceInUseException"));
    assert_eq!(
        busy.message(),
        Some("Stream slow under account 000000000000 not ACTIVE, instead in state UPDATING")
    );
    // Data keeps flowing while UPDATING.
    client
        .put_record()
        .stream_name("slow")
        .partition_key("k")
        .data(Blob::new("y"))
        .send()
        .await
        .unwrap();
    wait_for(&client, "slow", Some("ACTIVE")).await;

    client
        .delete_stream()
        .stream_name("slow")
        .send()
        .await
        .unwrap();
    assert_eq!(status(&client, "slow").await.as_deref(), Some("DELETING"));
    wait_for(&client, "slow", None).await;
    let listed = client.list_streams().send().await.unwrap();
    assert!(listed.stream_names().is_empty());
}

/// AWS lets a stream be deleted while it is being created: it goes to DELETING at once, never
/// becomes ACTIVE (no shards, no data), and is gone after the deletion delay.
#[tokio::test]
async fn a_stream_deleted_while_creating_never_becomes_active() {
    let server =
        TestServer::start_with(&["--create-stream-ms", "400", "--delete-stream-ms", "800"]);
    let client = server.client();
    client
        .create_stream()
        .stream_name("brief")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    assert_eq!(status(&client, "brief").await.as_deref(), Some("CREATING"));
    client
        .delete_stream()
        .stream_name("brief")
        .send()
        .await
        .expect("a CREATING stream can be deleted");
    assert_eq!(status(&client, "brief").await.as_deref(), Some("DELETING"));
    // Past the creation delay it is still DELETING, without shards, and takes no records.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let described = client
        .describe_stream()
        .stream_name("brief")
        .send()
        .await
        .unwrap();
    let description = described.stream_description().unwrap();
    assert_eq!(description.stream_status().as_str(), "DELETING");
    assert!(
        description.shards().is_empty(),
        "{:?}",
        description.shards()
    );
    let put = client
        .put_record()
        .stream_name("brief")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(put.code(), Some("ResourceNotFoundException"));
    wait_for(&client, "brief", None).await;
}
