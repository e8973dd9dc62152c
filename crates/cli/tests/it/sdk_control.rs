//! Control plane through the AWS SDK for Rust: lifecycle, listing, tags, settings, consumers.

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{
    MetricsName, MinimumThroughputBillingCommitmentInputStatus, ScalingType, StreamMode,
    StreamModeDetails,
};

use crate::support::TestServer;

fn code<E: ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or("<none>").to_string()
}

#[tokio::test]
async fn stream_lifecycle_describe_list_and_delete() {
    let server = TestServer::start();
    let client = server.client();
    for name in ["alpha", "beta", "gamma"] {
        client
            .create_stream()
            .stream_name(name)
            .shard_count(3)
            .send()
            .await
            .unwrap();
    }
    let again = client
        .create_stream()
        .stream_name("alpha")
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again.into_service_error()), "ResourceInUseException");

    let description = client
        .describe_stream()
        .stream_name("beta")
        .send()
        .await
        .unwrap();
    let description = description.stream_description().unwrap();
    assert_eq!(description.stream_status().as_str(), "ACTIVE");
    assert_eq!(description.shards().len(), 3);
    assert_eq!(description.retention_period_hours(), 24);
    assert_eq!(
        description.stream_arn(),
        "arn:aws:kinesis:us-east-1:000000000000:stream/beta"
    );
    assert_eq!(
        description
            .stream_mode_details()
            .map(|m| m.stream_mode().as_str()),
        Some("PROVISIONED")
    );
    assert_eq!(
        description.shards()[2]
            .hash_key_range()
            .unwrap()
            .ending_hash_key(),
        u128::MAX.to_string()
    );

    let summary = client
        .describe_stream_summary()
        .stream_arn(description.stream_arn())
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.open_shard_count(), 3);
    assert_eq!(
        summary.stream_id(),
        None,
        "a StreamId would send SDK calls to AWS itself"
    );

    let page = client.list_streams().limit(2).send().await.unwrap();
    assert_eq!(page.stream_names(), ["alpha", "beta"]);
    assert!(page.has_more_streams());
    let rest = client
        .list_streams()
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.stream_names(), ["gamma"]);
    assert!(!rest.has_more_streams());
    let legacy = client
        .list_streams()
        .exclusive_start_stream_name("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.stream_names(), ["beta", "gamma"]);

    client
        .delete_stream()
        .stream_name("beta")
        .send()
        .await
        .unwrap();
    let gone = client
        .describe_stream()
        .stream_name("beta")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&gone), "ResourceNotFoundException");
    assert_eq!(
        gone.message(),
        Some("Stream beta under account 000000000000 not found.")
    );
    // The name is free again.
    client
        .create_stream()
        .stream_name("beta")
        .shard_count(1)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn list_shards_paginates_and_filters() {
    let server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("wide")
        .shard_count(5)
        .send()
        .await
        .unwrap();
    let first = client
        .list_shards()
        .stream_name("wide")
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.shards().len(), 2);
    let token = first.next_token().unwrap().to_string();
    let both = client
        .list_shards()
        .stream_name("wide")
        .next_token(&token)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&both), "InvalidArgumentException");
    let second = client
        .list_shards()
        .next_token(&token)
        .max_results(10)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = second.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(
        ids,
        [
            "shardId-000000000002",
            "shardId-000000000003",
            "shardId-000000000004"
        ]
    );
    assert!(second.next_token().is_none());
    let after = client
        .list_shards()
        .stream_name("wide")
        .exclusive_start_shard_id("shardId-000000000003")
        .send()
        .await
        .unwrap();
    assert_eq!(after.shards().len(), 1);
    let neither = client
        .list_shards()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&neither), "InvalidArgumentException");
}

#[tokio::test]
async fn tags_retention_encryption_monitoring_round_trip() {
    let server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("settings")
        .shard_count(1)
        .tags("team", "data")
        .send()
        .await
        .unwrap();
    client
        .add_tags_to_stream()
        .stream_name("settings")
        .tags("env", "test")
        .tags("team", "ops")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_stream()
        .stream_name("settings")
        .send()
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = tags
        .tags()
        .iter()
        .map(|t| (t.key(), t.value().unwrap_or("")))
        .collect();
    assert_eq!(pairs, [("env", "test"), ("team", "ops")]);
    client
        .remove_tags_from_stream()
        .stream_name("settings")
        .tag_keys("env")
        .tag_keys("missing")
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/settings";
    client
        .tag_resource()
        .resource_arn(arn)
        .tags("cost", "1")
        .send()
        .await
        .unwrap();
    let by_arn = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.tags().len(), 2);
    client
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("cost")
        .send()
        .await
        .unwrap();

    client
        .increase_stream_retention_period()
        .stream_name("settings")
        .retention_period_hours(168)
        .send()
        .await
        .unwrap();
    let shorter = client
        .increase_stream_retention_period()
        .stream_name("settings")
        .retention_period_hours(48)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&shorter), "InvalidArgumentException");
    let too_long = client
        .increase_stream_retention_period()
        .stream_name("settings")
        .retention_period_hours(9000)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&too_long), "InvalidArgumentException");
    client
        .decrease_stream_retention_period()
        .stream_name("settings")
        .retention_period_hours(24)
        .send()
        .await
        .unwrap();
    let too_short = client
        .decrease_stream_retention_period()
        .stream_name("settings")
        .retention_period_hours(23)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        too_short.message(),
        Some(
            "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."
        )
    );

    client
        .start_stream_encryption()
        .stream_name("settings")
        .encryption_type(aws_sdk_kinesis::types::EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();
    let put = client
        .put_record()
        .stream_name("settings")
        .partition_key("k")
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.encryption_type().map(|e| e.as_str()), Some("KMS"));
    client
        .stop_stream_encryption()
        .stream_name("settings")
        .encryption_type(aws_sdk_kinesis::types::EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();

    let enabled = client
        .enable_enhanced_monitoring()
        .stream_name("settings")
        .shard_level_metrics(MetricsName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.desired_shard_level_metrics().len(), 7);
    let disabled = client
        .disable_enhanced_monitoring()
        .stream_name("settings")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.current_shard_level_metrics().len(), 7);
    assert_eq!(disabled.desired_shard_level_metrics().len(), 6);

    let summary = client
        .describe_stream_summary()
        .stream_name("settings")
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.retention_period_hours(), 24);
    assert_eq!(
        summary.enhanced_monitoring()[0].shard_level_metrics().len(),
        6
    );
}

#[tokio::test]
async fn modes_limits_account_settings_and_policies() {
    let server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("elastic")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.on_demand_stream_count(), 1);
    assert_eq!(limits.open_shard_count(), 4);
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/elastic";
    let split = client
        .update_shard_count()
        .stream_name("elastic")
        .target_shard_count(8)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&split), "ValidationException");
    client
        .update_stream_mode()
        .stream_arn(arn)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::Provisioned)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let summary = client
        .describe_stream_summary()
        .stream_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .stream_mode_details()
            .unwrap()
            .stream_mode()
            .as_str(),
        "PROVISIONED"
    );

    client
        .update_max_record_size()
        .stream_arn(arn)
        .max_record_size_in_kib(2048)
        .send()
        .await
        .unwrap();
    let summary = client
        .describe_stream_summary()
        .stream_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .max_record_size_in_kib(),
        Some(2048)
    );
    let big = vec![7u8; 1_500_000];
    client
        .put_record()
        .stream_arn(arn)
        .partition_key("big")
        .data(aws_sdk_kinesis::primitives::Blob::new(big))
        .send()
        .await
        .unwrap();

    let settings = client
        .update_account_settings()
        .minimum_throughput_billing_commitment(
            aws_sdk_kinesis::types::MinimumThroughputBillingCommitmentInput::builder()
                .status(MinimumThroughputBillingCommitmentInputStatus::Enabled)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        settings
            .minimum_throughput_billing_commitment()
            .unwrap()
            .status()
            .as_str(),
        "ENABLED"
    );
    let described = client.describe_account_settings().send().await.unwrap();
    assert_eq!(
        described
            .minimum_throughput_billing_commitment()
            .unwrap()
            .status()
            .as_str(),
        "ENABLED"
    );

    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    client
        .put_resource_policy()
        .resource_arn(arn)
        .policy(policy)
        .send()
        .await
        .unwrap();
    let got = client
        .get_resource_policy()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), policy);
    client
        .delete_resource_policy()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn consumers_register_describe_list_deregister() {
    let server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("fanout")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/fanout";
    let registered = client
        .register_stream_consumer()
        .stream_arn(arn)
        .consumer_name("app-1")
        .send()
        .await
        .unwrap();
    let consumer = registered.consumer().unwrap();
    assert!(
        consumer
            .consumer_arn()
            .starts_with(&format!("{arn}/consumer/app-1:"))
    );
    let duplicate = client
        .register_stream_consumer()
        .stream_arn(arn)
        .consumer_name("app-1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&duplicate), "ResourceInUseException");
    let described = client
        .describe_stream_consumer()
        .consumer_arn(consumer.consumer_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .consumer_description()
            .unwrap()
            .consumer_status()
            .as_str(),
        "ACTIVE"
    );
    let by_name = client
        .describe_stream_consumer()
        .stream_arn(arn)
        .consumer_name("app-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_name.consumer_description().unwrap().consumer_arn(),
        consumer.consumer_arn()
    );
    client
        .register_stream_consumer()
        .stream_arn(arn)
        .consumer_name("app-2")
        .send()
        .await
        .unwrap();
    let listed = client
        .list_stream_consumers()
        .stream_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.consumers().len(), 2);
    let in_use = client
        .delete_stream()
        .stream_name("fanout")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&in_use), "ResourceInUseException");
    client
        .deregister_stream_consumer()
        .consumer_arn(consumer.consumer_arn())
        .send()
        .await
        .unwrap();
    let listed = client
        .list_stream_consumers()
        .stream_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.consumers().len(), 1);
    client
        .delete_stream()
        .stream_name("fanout")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
}
