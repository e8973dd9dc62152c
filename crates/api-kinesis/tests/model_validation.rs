//! Golden ValidationException messages for the generated Kinesis shapes, plus JSON/CBOR
//! round trips. Expected strings follow AWS's wording as recorded by kinesalite's tests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::collections::BTreeMap;

use bytes::Bytes;
use millstream_api_kinesis::model::*;
use millstream_aws_protocol::{Blob, Protocol, Timestamp, Validate, decode, encode};
use proptest::prelude::*;

fn message<T: Validate>(input: &T) -> String {
    input
        .validate_input()
        .expect_err("input should be invalid")
        .message()
}

fn entry(partition_key: &str) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry {
        data: Some(Blob(Bytes::from_static(b"data"))),
        partition_key: Some(partition_key.to_owned()),
        ..Default::default()
    }
}

#[test]
fn create_stream_with_empty_name_fails_pattern_then_length() {
    let input = CreateStreamInput {
        stream_name: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "2 validation errors detected: \
         Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
}

#[test]
fn create_stream_reports_shard_count_before_stream_name() {
    let input = CreateStreamInput {
        stream_name: Some("bad name!".to_owned()),
        shard_count: Some(0),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "2 validation errors detected: \
         Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1; \
         Value 'bad name!' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
    );
}

#[test]
fn create_stream_without_name_reports_null() {
    assert_eq!(
        message(&CreateStreamInput::default()),
        "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null"
    );
}

#[test]
fn put_records_with_501_entries_fails_list_length() {
    let input = PutRecordsInput {
        stream_name: Some("s".to_owned()),
        records: Some(vec![entry("k"); 501]),
        ..Default::default()
    };
    let text = message(&input);
    assert!(text.starts_with("1 validation error detected: Value '[com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@"), "{text}");
    assert!(text.ends_with("]' at 'records' failed to satisfy constraint: Member must have length less than or equal to 500"), "{text}");
    assert_eq!(text.matches("PutRecordsRequestEntry@").count(), 501);
}

#[test]
fn put_records_lists_at_most_ten_violations() {
    let input = PutRecordsInput {
        stream_name: Some(String::new()),
        records: Some(vec![entry(""); 501]),
        ..Default::default()
    };
    let errors = input.validate_input().unwrap_err();
    assert_eq!(errors.len(), 10);
    assert!(
        errors
            .message()
            .starts_with("10 validation errors detected: ")
    );
    assert!(errors.violations()[0].ends_with("at 'records' failed to satisfy constraint: Member must have length less than or equal to 500"));
    assert_eq!(
        errors.violations()[1],
        "Value '' at 'records.1.member.partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
    assert!(errors.violations()[9].contains("'records.9.member.partitionKey'"));
}

#[test]
fn put_records_entry_with_long_partition_key_uses_member_path() {
    let key = "a".repeat(257);
    let input = PutRecordsInput {
        stream_name: Some("s".to_owned()),
        records: Some(vec![entry(&key)]),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        format!(
            "1 validation error detected: Value '{key}' at 'records.1.member.partitionKey' failed to satisfy constraint: \
             Member must have length less than or equal to 256"
        )
    );
}

#[test]
fn partition_key_length_counts_utf16_units() {
    // 128 emoji = 256 UTF-16 units: fits. 129 = 258: too long.
    let fits = PutRecordsRequestEntry {
        partition_key: Some("😀".repeat(128)),
        ..entry("")
    };
    let mut errors = millstream_aws_protocol::ValidationErrors::new();
    fits.validate("", &mut errors);
    assert!(errors.is_empty(), "{errors}");
    let too_long = PutRecordsRequestEntry {
        partition_key: Some("😀".repeat(129)),
        ..entry("")
    };
    too_long.validate("", &mut errors);
    assert_eq!(errors.len(), 1);
}

#[test]
fn put_record_blob_renders_as_java_heap_byte_buffer() {
    let input = PutRecordInput {
        stream_name: Some("s".to_owned()),
        partition_key: Some("k".to_owned()),
        data: Some(Blob(Bytes::from(vec![0u8; 10_485_761]))),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=10485761 cap=10485761]' at 'data' \
         failed to satisfy constraint: Member must have length less than or equal to 10485760"
    );
}

#[test]
fn get_shard_iterator_with_bad_type_lists_the_enum() {
    let input = GetShardIteratorInput {
        stream_name: Some("s".to_owned()),
        shard_id: Some("shardId-000000000000".to_owned()),
        shard_iterator_type: Some("SOMEWHERE".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value 'SOMEWHERE' at 'shardIteratorType' failed to satisfy constraint: \
         Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]"
    );
}

#[test]
fn get_records_limit_zero_fails_minimum() {
    let input = GetRecordsInput {
        shard_iterator: Some("it".to_owned()),
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
         Member must have value greater than or equal to 1"
    );
}

#[test]
fn list_tags_for_stream_limit_51_fails_maximum() {
    let input = ListTagsForStreamInput {
        stream_name: Some("s".to_owned()),
        limit: Some(51),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '51' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 50"
    );
}

#[test]
fn tag_key_too_long_is_reported_against_the_whole_map() {
    let key = "k".repeat(129);
    let input = AddTagsToStreamInput {
        stream_name: Some("s".to_owned()),
        tags: Some(BTreeMap::from([(key.clone(), "v".to_owned())])),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        format!(
            "1 validation error detected: Value '{{{key}=v}}' at 'tags' failed to satisfy constraint: \
             Map keys must satisfy constraint: [Member must have length less than or equal to 128, \
             Member must have length greater than or equal to 1]"
        )
    );
}

#[test]
fn tag_key_list_members_are_reported_against_the_list() {
    let key = "k".repeat(129);
    let input = RemoveTagsFromStreamInput {
        stream_name: Some("s".to_owned()),
        tag_keys: Some(vec!["ok".to_owned(), key.clone()]),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        format!(
            "1 validation error detected: Value '[ok, {key}]' at 'tagKeys' failed to satisfy constraint: \
             Member must satisfy constraint: [Member must have length less than or equal to 128, \
             Member must have length greater than or equal to 1]"
        )
    );
}

#[test]
fn nested_structures_validate_with_dotted_paths() {
    let input = ListShardsInput {
        stream_name: Some("s".to_owned()),
        shard_filter: Some(ShardFilter {
            r#type: Some("NOPE".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value 'NOPE' at 'shardFilter.type' failed to satisfy constraint: \
         Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"
    );
}

#[test]
fn valid_inputs_pass() {
    let input = PutRecordsInput {
        stream_name: Some("my-stream_1.x".to_owned()),
        stream_arn: Some("arn:aws:kinesis:us-east-1:123456789012:stream/my-stream".to_owned()),
        records: Some(vec![PutRecordsRequestEntry {
            explicit_hash_key: Some("340282366920938463463374607431768211455".to_owned()),
            ..entry("k")
        }]),
        ..Default::default()
    };
    assert_eq!(input.validate_input(), Ok(()));
    let arn = RegisterStreamConsumerInput {
        stream_arn: Some("arn:aws:kinesis:us-east-1:123456789012:stream/s".to_owned()),
        consumer_name: Some("c".to_owned()),
        ..Default::default()
    };
    assert_eq!(arn.validate_input(), Ok(()));
    assert!(DescribeLimitsInput::default().validate_input().is_ok());
}

#[test]
fn operations_table_covers_the_model() {
    assert_eq!(OPERATIONS.len(), 39);
    assert_eq!(Operation::ALL.len(), OPERATIONS.len());
    for (operation, (name, has_input, has_output)) in Operation::ALL.iter().zip(OPERATIONS) {
        assert_eq!(operation.name(), *name);
        assert_eq!(Operation::from_target_name(name), Some(*operation));
        assert_eq!(operation.has_input(), *has_input);
        assert_eq!(operation.has_output(), *has_output);
    }
    assert_eq!(
        Operation::from_target("Kinesis_20131202.PutRecords"),
        Some(Operation::PutRecords)
    );
    assert_eq!(Operation::from_target("Kinesis_20131202.Nope"), None);
    assert_eq!(Operation::from_target("PutRecords"), None);
}

#[test]
fn wire_names_follow_the_model() {
    let input = CreateStreamInput {
        stream_name: Some("s".to_owned()),
        max_record_size_in_kib: Some(2048),
        warm_throughput_mi_bps: Some(0),
        ..Default::default()
    };
    assert_eq!(
        &encode(Protocol::Json, &input)[..],
        br#"{"StreamName":"s","WarmThroughputMiBps":0,"MaxRecordSizeInKiB":2048}"#
    );
}

fn arb_text() -> impl Strategy<Value = String> {
    ".{0,16}"
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        proptest::option::of(arb_text()),
        proptest::option::of(0i64..4_102_444_800_000),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
        proptest::option::of(arb_text()),
        proptest::option::of(prop_oneof![Just("NONE".to_owned()), Just("KMS".to_owned())]),
    )
        .prop_map(
            |(sequence_number, arrival, data, partition_key, encryption_type)| Record {
                sequence_number,
                approximate_arrival_timestamp: arrival.map(Timestamp::from_millis),
                data: data.map(Blob::from),
                partition_key,
                encryption_type,
            },
        )
}

fn arb_get_records_output() -> impl Strategy<Value = GetRecordsOutput> {
    (
        proptest::option::of(proptest::collection::vec(arb_record(), 0..4)),
        proptest::option::of(arb_text()),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(records, next_shard_iterator, millis_behind_latest)| GetRecordsOutput {
                records,
                next_shard_iterator,
                millis_behind_latest,
                ..Default::default()
            },
        )
}

fn arb_put_records_input() -> impl Strategy<Value = PutRecordsInput> {
    (
        proptest::option::of(arb_text()),
        proptest::option::of(proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..32),
                arb_text(),
                proptest::option::of("[0-9]{1,39}"),
            ),
            0..4,
        )),
    )
        .prop_map(|(stream_name, records)| PutRecordsInput {
            stream_name,
            records: records.map(|records| {
                records
                    .into_iter()
                    .map(
                        |(data, partition_key, explicit_hash_key)| PutRecordsRequestEntry {
                            data: Some(Blob::from(data)),
                            partition_key: Some(partition_key),
                            explicit_hash_key,
                        },
                    )
                    .collect()
            }),
            ..Default::default()
        })
}

fn arb_create_stream_input() -> impl Strategy<Value = CreateStreamInput> {
    (
        proptest::option::of(arb_text()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(proptest::collection::btree_map(
            arb_text(),
            arb_text(),
            0..3,
        )),
    )
        .prop_map(|(stream_name, shard_count, tags)| CreateStreamInput {
            stream_name,
            shard_count,
            tags,
            stream_mode_details: Some(StreamModeDetails {
                stream_mode: Some("ON_DEMAND".to_owned()),
            }),
            ..Default::default()
        })
}

fn round_trips<T>(value: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let from_json: T = decode(Protocol::Json, &encode(Protocol::Json, value)).unwrap();
    let from_cbor: T = decode(Protocol::Cbor, &encode(Protocol::Cbor, value)).unwrap();
    prop_assert_eq!(&from_json, value);
    prop_assert_eq!(&from_cbor, value);
    prop_assert_eq!(&from_json, &from_cbor);
    Ok(())
}

proptest! {
    #[test]
    fn get_records_output_round_trips_in_both_protocols(value in arb_get_records_output()) {
        round_trips(&value)?;
    }

    #[test]
    fn put_records_input_round_trips_in_both_protocols(value in arb_put_records_input()) {
        round_trips(&value)?;
    }

    #[test]
    fn create_stream_input_round_trips_in_both_protocols(value in arb_create_stream_input()) {
        round_trips(&value)?;
    }
}
