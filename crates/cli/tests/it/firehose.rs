//! Firehose through the AWS SDK for Rust: every operation, the main error paths, and delivery
//! into the embedded object store (buckets as directories under the data directory).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_firehose::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamEncryptionConfigurationInput,
    DeliveryStreamStatus, DeliveryStreamType, DynamicPartitioningConfiguration,
    ExtendedS3DestinationConfiguration, ExtendedS3DestinationUpdate, KeyType,
    ProcessingConfiguration, Processor, ProcessorParameter, ProcessorParameterName, ProcessorType,
    Record, Tag,
};

use crate::support::TestServer;

pub fn firehose_client(endpoint: &str) -> aws_sdk_firehose::Client {
    let config = aws_sdk_firehose::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_firehose::Client::from_conf(config)
}

pub fn s3_config(
    bucket: &str,
) -> aws_sdk_firehose::types::builders::ExtendedS3DestinationConfigurationBuilder {
    ExtendedS3DestinationConfiguration::builder()
        .role_arn("arn:aws:iam::000000000000:role/firehose")
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(1)
                .build(),
        )
}

/// PutRecordBatch that must accept every record.
async fn put_batch(
    client: &aws_sdk_firehose::Client,
    stream: &str,
    records: Vec<Record>,
) -> aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput {
    let put = client
        .put_record_batch()
        .delivery_stream_name(stream)
        .set_records(Some(records))
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_put_count(), 0);
    put
}

/// Processing that only appends a newline to every record (objects of JSON lines).
fn newline_processing() -> ProcessingConfiguration {
    ProcessingConfiguration::builder()
        .enabled(true)
        .processors(newline_processor())
        .build()
}

fn newline_processor() -> Processor {
    Processor::builder()
        .r#type(ProcessorType::AppendDelimiterToRecord)
        .build()
        .unwrap()
}

/// Every object under a bucket of the embedded store: key -> bytes.
pub fn embedded_objects(data_dir: &Path, bucket: &str) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let key = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                // Temporary files of an upload in progress are not objects.
                if !key.contains("#") && !key.starts_with('.') && !key.contains("/.") {
                    out.insert(key, std::fs::read(&path).unwrap());
                }
            }
        }
    }
    let root: PathBuf = data_dir.join("buckets").join(bucket);
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Waits until `check` returns Some, polling; panics with `what` after `limit`.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_operations_and_errors() {
    let server = TestServer::start();
    let client = firehose_client(&server.endpoint);

    let created = client
        .create_delivery_stream()
        .delivery_stream_name("orders")
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(
            s3_config("orders-bucket")
                .prefix("raw/")
                .error_output_prefix("errors/!{firehose:error-output-type}/")
                .compression_format(CompressionFormat::Gzip)
                .build()
                .unwrap(),
        )
        .tags(Tag::builder().key("team").value("data").build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.delivery_stream_arn(),
        Some("arn:aws:firehose:us-east-1:000000000000:deliverystream/orders")
    );

    let duplicate = client
        .create_delivery_stream()
        .delivery_stream_name("orders")
        .extended_s3_destination_configuration(s3_config("b").build().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(duplicate.is_resource_in_use_exception(), "{duplicate:?}");

    let no_destination = client
        .create_delivery_stream()
        .delivery_stream_name("nowhere")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        no_destination.is_invalid_argument_exception(),
        "{no_destination:?}"
    );

    let bad_prefix = client
        .create_delivery_stream()
        .delivery_stream_name("badprefix")
        .extended_s3_destination_configuration(
            s3_config("b")
                .prefix("year=!{timestamp:yyyy}/")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        bad_prefix.is_invalid_argument_exception(),
        "an expression prefix needs an ErrorOutputPrefix: {bad_prefix:?}"
    );

    let described = client
        .describe_delivery_stream()
        .delivery_stream_name("orders")
        .send()
        .await
        .unwrap();
    let description = described.delivery_stream_description().unwrap();
    assert_eq!(
        description.delivery_stream_status(),
        &DeliveryStreamStatus::Active
    );
    assert_eq!(description.version_id(), "1");
    assert_eq!(
        description.delivery_stream_type(),
        &DeliveryStreamType::DirectPut
    );
    let destination = &description.destinations()[0];
    assert_eq!(destination.destination_id(), "destinationId-000000000001");
    let s3 = destination.extended_s3_destination_description().unwrap();
    assert_eq!(s3.bucket_arn(), "arn:aws:s3:::orders-bucket");
    assert_eq!(s3.compression_format(), &CompressionFormat::Gzip);
    assert_eq!(s3.prefix(), Some("raw/"));
    assert_eq!(s3.buffering_hints().unwrap().interval_in_seconds(), Some(1));
    assert!(
        destination.s3_destination_description().is_some(),
        "AWS also describes the plain S3 view"
    );

    for name in ["alpha", "beta"] {
        client
            .create_delivery_stream()
            .delivery_stream_name(name)
            .extended_s3_destination_configuration(s3_config("b").build().unwrap())
            .send()
            .await
            .unwrap();
    }
    let page = client
        .list_delivery_streams()
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.delivery_stream_names(), ["alpha", "beta"]);
    assert!(page.has_more_delivery_streams());
    let rest = client
        .list_delivery_streams()
        .exclusive_start_delivery_stream_name("beta")
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.delivery_stream_names(), ["orders"]);
    assert!(!rest.has_more_delivery_streams());

    client
        .tag_delivery_stream()
        .delivery_stream_name("orders")
        .tags(Tag::builder().key("env").value("dev").build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_delivery_stream()
        .delivery_stream_name("orders")
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].key(), "env");
    assert!(tags.has_more_tags());
    client
        .untag_delivery_stream()
        .delivery_stream_name("orders")
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_delivery_stream()
        .delivery_stream_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), "team");

    let stale = client
        .update_destination()
        .delivery_stream_name("orders")
        .current_delivery_stream_version_id("7")
        .destination_id("destinationId-000000000001")
        .extended_s3_destination_update(
            ExtendedS3DestinationUpdate::builder().prefix("v2/").build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(stale.is_concurrent_modification_exception(), "{stale:?}");
    client
        .update_destination()
        .delivery_stream_name("orders")
        .current_delivery_stream_version_id("1")
        .destination_id("destinationId-000000000001")
        .extended_s3_destination_update(
            ExtendedS3DestinationUpdate::builder().prefix("v2/").build(),
        )
        .send()
        .await
        .unwrap();
    let after = client
        .describe_delivery_stream()
        .delivery_stream_name("orders")
        .send()
        .await
        .unwrap();
    let description = after.delivery_stream_description().unwrap();
    assert_eq!(description.version_id(), "2");
    let s3 = description.destinations()[0]
        .extended_s3_destination_description()
        .unwrap();
    assert_eq!(s3.prefix(), Some("v2/"));
    assert_eq!(
        s3.compression_format(),
        &CompressionFormat::Gzip,
        "members not in the update keep their values"
    );
    assert!(description.last_update_timestamp().is_some());

    client
        .start_delivery_stream_encryption()
        .delivery_stream_name("orders")
        .delivery_stream_encryption_configuration_input(
            DeliveryStreamEncryptionConfigurationInput::builder()
                .key_type(KeyType::AwsOwnedCmk)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let encrypted = eventually(Duration::from_secs(10), "encryption ENABLED", || {
        let status = futures_block(
            client
                .describe_delivery_stream()
                .delivery_stream_name("orders")
                .send(),
        );
        let status = status
            .delivery_stream_description()?
            .delivery_stream_encryption_configuration()?
            .status()?
            .as_str()
            .to_string();
        (status == "ENABLED").then_some(status)
    });
    assert_eq!(encrypted, "ENABLED");
    let put = client
        .put_record()
        .delivery_stream_name("orders")
        .record(Record::builder().data(Blob::new("x")).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(put.encrypted(), Some(true));
    assert!(put.record_id().len() >= 32);
    client
        .stop_delivery_stream_encryption()
        .delivery_stream_name("orders")
        .send()
        .await
        .unwrap();

    let missing = client
        .put_record()
        .delivery_stream_name("nope")
        .record(Record::builder().data(Blob::new("x")).build().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception());
    assert_eq!(
        missing.meta().message(),
        Some("Firehose nope under account 000000000000 not found.")
    );

    let too_big = client
        .put_record()
        .delivery_stream_name("orders")
        .record(
            Record::builder()
                .data(Blob::new(vec![b'a'; 1_024_001]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        too_big.as_service_error().and_then(|e| e.meta().code()),
        Some("ValidationException")
    );

    client
        .delete_delivery_stream()
        .delivery_stream_name("orders")
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "deletion", || {
        let names = futures_block(client.list_delivery_streams().send());
        (!names
            .delivery_stream_names()
            .contains(&"orders".to_string()))
        .then_some(())
    });
    let gone = client
        .describe_delivery_stream()
        .delivery_stream_name("orders")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(gone.is_resource_not_found_exception());
}

/// Runs an SDK call to completion from inside `eventually`'s synchronous closure.
fn futures_block<F, T, E>(future: F) -> T
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_put_is_delivered_to_gzip_objects_with_aws_keys() {
    let server = TestServer::start();
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("clicks")
        .extended_s3_destination_configuration(
            s3_config("lake")
                .prefix("clicks/")
                .compression_format(CompressionFormat::Gzip)
                .processing_configuration(newline_processing())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut expected = Vec::new();
    for batch in 0..4 {
        let records: Vec<Record> = (0..50)
            .map(|i| {
                let line = format!("{{\"batch\":{batch},\"i\":{i}}}");
                expected.push(line.clone());
                Record::builder().data(Blob::new(line)).build().unwrap()
            })
            .collect();
        let put = put_batch(&client, "clicks", records).await;
        assert_eq!(put.request_responses().len(), 50);
    }
    let objects = eventually(Duration::from_secs(20), "every record in objects", || {
        let objects = embedded_objects(&server.data_dir, "lake");
        let lines: usize = objects
            .values()
            .map(|body| {
                gunzip(body)
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
            })
            .sum();
        (lines >= expected.len()).then_some(objects)
    });
    let mut delivered = Vec::new();
    for (key, body) in &objects {
        // clicks/yyyy/MM/dd/HH/clicks-1-yyyy-MM-dd-HH-mm-ss-<uuid>.gz
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 6, "{key}");
        assert_eq!(parts[0], "clicks");
        assert_eq!(parts[1].len(), 4);
        let name = parts[5];
        assert!(name.starts_with("clicks-1-"), "{key}");
        assert!(name.ends_with(".gz"), "{key}");
        let stamp_and_id = &name["clicks-1-".len()..name.len() - 3];
        assert_eq!(stamp_and_id.split('-').count(), 6 + 5, "{key}");
        let text = String::from_utf8(gunzip(body)).unwrap();
        assert!(text.ends_with('\n'));
        delivered.extend(text.lines().map(str::to_string));
    }
    assert_eq!(delivered, expected, "every record once, in order");

    let labels = [("delivery_stream", "clicks")];
    // Counted just after each object is written: wait for the last one.
    let metrics = eventually(Duration::from_secs(10), "delivery metrics", || {
        let text = crate::cli_observability::scrape(server.port);
        let delivered = crate::cli_observability::sample(
            &text,
            "firehose_delivery_to_s3_records_total",
            &labels,
        );
        (delivered == Some(200.0)).then_some(text)
    });
    let value = |name: &str| crate::cli_observability::sample(&metrics, name, &labels);
    assert_eq!(value("firehose_incoming_records_total"), Some(200.0));
    assert_eq!(value("firehose_incoming_put_requests_total"), Some(4.0));
    assert_eq!(value("firehose_delivery_to_s3_records_total"), Some(200.0));
    assert_eq!(
        value("firehose_delivery_to_s3_object_count_total"),
        Some(objects.len() as f64)
    );
    let bytes_in_objects: usize = objects.values().map(Vec::len).sum();
    assert_eq!(
        value("firehose_delivery_to_s3_bytes_total"),
        Some(bytes_in_objects as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_partitioning_splits_objects_by_jq_keys() {
    let server = TestServer::start();
    let client = firehose_client(&server.endpoint);
    let extraction = Processor::builder()
        .r#type(ProcessorType::MetadataExtraction)
        .parameters(
            ProcessorParameter::builder()
                .parameter_name(ProcessorParameterName::MetadataExtractionQuery)
                .parameter_value("{customer:.customer}")
                .build()
                .unwrap(),
        )
        .parameters(
            ProcessorParameter::builder()
                .parameter_name(ProcessorParameterName::JsonParsingEngine)
                .parameter_value("JQ-1.6")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client
        .create_delivery_stream()
        .delivery_stream_name("partitioned")
        .extended_s3_destination_configuration(
            s3_config("parts")
                .prefix("customer=!{partitionKeyFromQuery:customer}/")
                .error_output_prefix("errors/!{firehose:error-output-type}/")
                .dynamic_partitioning_configuration(
                    DynamicPartitioningConfiguration::builder()
                        .enabled(true)
                        .build(),
                )
                .processing_configuration(
                    ProcessingConfiguration::builder()
                        .enabled(true)
                        .processors(extraction)
                        .processors(newline_processor())
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let records = [
        r#"{"customer":"a","n":1}"#,
        r#"{"customer":"b","n":2}"#,
        "not json",
        r#"{"customer":"a","n":3}"#,
    ];
    client
        .put_record_batch()
        .delivery_stream_name("partitioned")
        .set_records(Some(
            records
                .iter()
                .map(|r| Record::builder().data(Blob::new(*r)).build().unwrap())
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    let objects = eventually(Duration::from_secs(20), "three partitions", || {
        let objects = embedded_objects(&server.data_dir, "parts");
        (objects.len() >= 3).then_some(objects)
    });
    let by_prefix: BTreeMap<String, String> = objects
        .iter()
        .map(|(key, body)| {
            let prefix = key.rsplit_once('/').unwrap().0.to_string();
            (prefix, String::from_utf8(body.clone()).unwrap())
        })
        .collect();
    assert_eq!(
        by_prefix["customer=a"],
        "{\"customer\":\"a\",\"n\":1}\n{\"customer\":\"a\",\"n\":3}\n"
    );
    assert_eq!(by_prefix["customer=b"], "{\"customer\":\"b\",\"n\":2}\n");
    let (error_prefix, error_body) = by_prefix
        .iter()
        .find(|(prefix, _)| prefix.starts_with("errors/"))
        .expect("an error object");
    // AWS documents no error-output-type of its own for partitioning failures; they are
    // processing failures of the metadata extraction step.
    assert!(
        error_prefix.starts_with("errors/processing-failed"),
        "{error_prefix}"
    );
    let error: serde_json::Value =
        serde_json::from_str(error_body.lines().next().unwrap()).unwrap();
    assert_eq!(error["rawData"], "bm90IGpzb24=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_without_duplicate_objects() {
    let mut server = TestServer::start();
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("durable")
        .extended_s3_destination_configuration(
            s3_config("safe")
                .processing_configuration(newline_processing())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut next = 0u32;
    for _round in 0..5 {
        let client = firehose_client(&server.endpoint);
        // Writers race the kill: whatever was acknowledged before it must be delivered.
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            let records: Vec<Record> = (0..20)
                .map(|i| {
                    Record::builder()
                        .data(Blob::new(format!("r{:06}", next + i)))
                        .build()
                        .unwrap()
                })
                .collect();
            if client
                .put_record_batch()
                .delivery_stream_name("durable")
                .set_records(Some(records))
                .send()
                .await
                .is_ok_and(|out| out.failed_put_count() == 0)
            {
                acknowledged.extend((next..next + 20).map(|n| format!("r{n:06}")));
            }
            next += 20;
        }
        server.crash_and_restart();
    }
    let expected = acknowledged.len();
    let objects = eventually(Duration::from_secs(30), "every acknowledged record", || {
        let objects = embedded_objects(&server.data_dir, "safe");
        let lines: usize = objects
            .values()
            .map(|b| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count())
            .sum();
        (lines >= expected).then_some(objects)
    });
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for body in objects.values() {
        for line in String::from_utf8(body.clone()).unwrap().lines() {
            *seen.entry(line.to_string()).or_default() += 1;
        }
    }
    for record in &acknowledged {
        assert!(seen.contains_key(record), "acknowledged {record} was lost");
    }
    let duplicated: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(r, _)| r)
        .collect();
    assert!(
        duplicated.is_empty(),
        "records in two objects: {duplicated:?}"
    );
}

/// Records that waited in the log longer than the buffer interval (here: across a crash)
/// are a backlog: read 500 at a time, they must fill buffers to the size hint, not leave as
/// one small object per read step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_older_than_the_interval_fills_buffers_instead_of_many_small_objects() {
    let mut server = TestServer::start();
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("backlog")
        .extended_s3_destination_configuration(
            s3_config("late")
                .buffering_hints(
                    BufferingHints::builder()
                        .size_in_mbs(5)
                        .interval_in_seconds(5)
                        .build(),
                )
                .processing_configuration(newline_processing())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let filler = "x".repeat(900);
    let started = Instant::now();
    for batch in 0..6 {
        let records: Vec<Record> = (0..500)
            .map(|i| {
                let line = format!("{{\"r\":{},\"pad\":\"{filler}\"}}", batch * 500 + i);
                Record::builder().data(Blob::new(line)).build().unwrap()
            })
            .collect();
        put_batch(&client, "backlog", records).await;
    }
    // 2.7 MB is under the 5 MiB hint and the interval has not passed: all still buffered.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "puts were too slow"
    );
    server.kill();
    assert!(embedded_objects(&server.data_dir, "late").is_empty());
    std::thread::sleep(Duration::from_secs(6));
    server.crash_and_restart();
    let objects = eventually(Duration::from_secs(30), "the backlog delivered", || {
        let objects = embedded_objects(&server.data_dir, "late");
        let lines: usize = objects
            .values()
            .map(|b| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count())
            .sum();
        (lines >= 3_000).then_some(objects)
    });
    let mut seen: Vec<u64> = Vec::new();
    for body in objects.values() {
        let numbers: Vec<u64> = String::from_utf8(body.clone())
            .unwrap()
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["r"].as_u64().unwrap()
            })
            .collect();
        assert!(numbers.is_sorted(), "in order within an object");
        seen.extend(numbers);
    }
    // Keys of objects written in the same second differ only by a random id: sort.
    seen.sort_unstable();
    assert_eq!(seen, (0..3_000).collect::<Vec<u64>>(), "each record once");
    // One read step is 500 records: six objects would mean a flush per step.
    assert!(objects.len() <= 2, "{} objects for 2.7 MB", objects.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_destination_moves_delivery_without_losing_records() {
    let server = TestServer::start();
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("moving")
        .extended_s3_destination_configuration(
            s3_config("moves")
                .prefix("before/")
                .processing_configuration(newline_processing())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let put = |from: u32| {
        let client = client.clone();
        async move {
            let records: Vec<Record> = (from..from + 10)
                .map(|n| {
                    Record::builder()
                        .data(Blob::new(format!("m{n:03}")))
                        .build()
                        .unwrap()
                })
                .collect();
            client
                .put_record_batch()
                .delivery_stream_name("moving")
                .set_records(Some(records))
                .send()
                .await
                .unwrap();
        }
    };
    put(0).await;
    eventually(Duration::from_secs(20), "the first batch", || {
        (!embedded_objects(&server.data_dir, "moves").is_empty()).then_some(())
    });
    client
        .update_destination()
        .delivery_stream_name("moving")
        .current_delivery_stream_version_id("1")
        .destination_id("destinationId-000000000001")
        .extended_s3_destination_update(
            ExtendedS3DestinationUpdate::builder()
                .prefix("after/")
                .build(),
        )
        .send()
        .await
        .unwrap();
    put(10).await;
    let objects = eventually(Duration::from_secs(20), "all 20 records", || {
        let objects = embedded_objects(&server.data_dir, "moves");
        let lines: usize = objects
            .values()
            .map(|b| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count())
            .sum();
        (lines >= 20).then_some(objects)
    });
    let mut lines = Vec::new();
    for (key, body) in &objects {
        let text = String::from_utf8(body.clone()).unwrap();
        if text.contains("m010") {
            assert!(key.starts_with("after/"), "{key}");
            assert!(
                key.contains("/moving-2-"),
                "version 2 names the objects: {key}"
            );
        }
        lines.extend(text.lines().map(str::to_string));
    }
    lines.sort();
    let expected: Vec<String> = (0..20).map(|n| format!("m{n:03}")).collect();
    assert_eq!(
        lines, expected,
        "each record exactly once across the update"
    );

    // Deleted and created again under the same name: a fresh stream, nothing carried over.
    client
        .delete_delivery_stream()
        .delivery_stream_name("moving")
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "deletion", || {
        let names = futures_block(client.list_delivery_streams().send());
        names.delivery_stream_names().is_empty().then_some(())
    });
    client
        .create_delivery_stream()
        .delivery_stream_name("moving")
        .extended_s3_destination_configuration(s3_config("moves-again").build().unwrap())
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .delivery_stream_name("moving")
        .record(Record::builder().data(Blob::new("fresh")).build().unwrap())
        .send()
        .await
        .unwrap();
    let again = eventually(
        Duration::from_secs(20),
        "the new incarnation's object",
        || {
            let objects = embedded_objects(&server.data_dir, "moves-again");
            (!objects.is_empty()).then_some(objects)
        },
    );
    assert_eq!(again.values().next().unwrap(), b"fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backup_keeps_source_records_and_failures_show_in_describe() {
    // Nothing listens on port 1: every write to "S3" fails until the stream is fixed.
    let server = TestServer::start_with_env(
        &["--firehose-s3-endpoint", "http://127.0.0.1:1"],
        &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "y")],
    );
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("unreachable")
        .extended_s3_destination_configuration(s3_config("nowhere").build().unwrap())
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .delivery_stream_name("unreachable")
        .record(
            Record::builder()
                .data(Blob::new("waiting"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let failure = eventually(Duration::from_secs(20), "a failure description", || {
        let described = futures_block(
            client
                .describe_delivery_stream()
                .delivery_stream_name("unreachable")
                .send(),
        );
        let failure = described
            .delivery_stream_description()?
            .failure_description()?
            .clone();
        Some(failure)
    });
    assert_eq!(failure.r#type().as_str(), "UNKNOWN_ERROR");
    assert!(
        failure.details().contains("nowhere"),
        "{}",
        failure.details()
    );

    let embedded = TestServer::start();
    let client = firehose_client(&embedded.endpoint);
    let upper = Processor::builder()
        .r#type(ProcessorType::AppendDelimiterToRecord)
        .build()
        .unwrap();
    client
        .create_delivery_stream()
        .delivery_stream_name("with-backup")
        .extended_s3_destination_configuration(
            s3_config("main")
                .processing_configuration(
                    ProcessingConfiguration::builder()
                        .enabled(true)
                        .processors(upper)
                        .build(),
                )
                .s3_backup_mode(aws_sdk_firehose::types::S3BackupMode::Enabled)
                .s3_backup_configuration(
                    aws_sdk_firehose::types::S3DestinationConfiguration::builder()
                        .role_arn("arn:aws:iam::000000000000:role/r")
                        .bucket_arn("arn:aws:s3:::backup")
                        .prefix("source/")
                        .buffering_hints(
                            BufferingHints::builder()
                                .size_in_mbs(1)
                                .interval_in_seconds(1)
                                .build(),
                        )
                        .compression_format(CompressionFormat::Gzip)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_record_batch()
        .delivery_stream_name("with-backup")
        .set_records(Some(vec![
            Record::builder().data(Blob::new("x")).build().unwrap(),
            Record::builder().data(Blob::new("y")).build().unwrap(),
        ]))
        .send()
        .await
        .unwrap();
    let (main, backup) = eventually(Duration::from_secs(20), "main and backup objects", || {
        let main = embedded_objects(&embedded.data_dir, "main");
        let backup = embedded_objects(&embedded.data_dir, "backup");
        (!main.is_empty() && !backup.is_empty()).then_some((main, backup))
    });
    assert_eq!(
        main.values().next().unwrap(),
        b"x\ny\n",
        "processed records"
    );
    let (key, body) = backup.iter().next().unwrap();
    assert!(key.starts_with("source/") && key.ends_with(".gz"), "{key}");
    assert_eq!(gunzip(body), b"xy", "the untransformed source records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_buffering_flushes_each_read_and_batches_have_limits() {
    let server = TestServer::start();
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("unbuffered")
        .extended_s3_destination_configuration(
            s3_config("zero")
                .buffering_hints(
                    BufferingHints::builder()
                        .size_in_mbs(128)
                        .interval_in_seconds(0)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for (n, text) in ["first", "second"].iter().enumerate() {
        client
            .put_record()
            .delivery_stream_name("unbuffered")
            .record(Record::builder().data(Blob::new(*text)).build().unwrap())
            .send()
            .await
            .unwrap();
        // With a 128 MiB / 0 s hint each record is delivered on its own, well before the
        // next one arrives.
        eventually(Duration::from_secs(20), "an object per record", || {
            (embedded_objects(&server.data_dir, "zero").len() == n + 1).then_some(())
        });
    }
    let bodies: Vec<Vec<u8>> = embedded_objects(&server.data_dir, "zero")
        .into_values()
        .collect();
    assert!(bodies.contains(&b"first".to_vec()) && bodies.contains(&b"second".to_vec()));

    let too_much: Vec<Record> = (0..500)
        .map(|_| {
            Record::builder()
                .data(Blob::new(vec![7u8; 9_000]))
                .build()
                .unwrap()
        })
        .collect();
    let refused = client
        .put_record_batch()
        .delivery_stream_name("unbuffered")
        .set_records(Some(too_much))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        refused.is_invalid_argument_exception(),
        "4.5 MB in one call: {refused:?}"
    );
    let too_many: Vec<Record> = (0..501)
        .map(|_| Record::builder().data(Blob::new("x")).build().unwrap())
        .collect();
    let refused = client
        .put_record_batch()
        .delivery_stream_name("unbuffered")
        .set_records(Some(too_many))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.as_service_error().and_then(|e| e.meta().code()),
        Some("ValidationException")
    );
}
