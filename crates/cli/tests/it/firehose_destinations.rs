//! Firehose delivering to real parts started by the test: moto's S3 server, an HTTP endpoint
//! receiver, a Lambda Invoke endpoint that transforms records, PostgreSQL behind a Redshift
//! destination, Parquet conversion, and a Millstream data stream as the source.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, CopyCommand, DataFormatConversionConfiguration,
    DeliveryStreamType, Deserializer, HttpEndpointBufferingHints, HttpEndpointCommonAttribute,
    HttpEndpointConfiguration, HttpEndpointDestinationConfiguration,
    HttpEndpointRequestConfiguration, HttpEndpointRetryOptions, InputFormatConfiguration,
    KinesisStreamSourceConfiguration, OpenXJsonSerDe, OutputFormatConfiguration, ParquetSerDe,
    ProcessingConfiguration, Processor, ProcessorParameter, ProcessorParameterName, ProcessorType,
    Record, RedshiftDestinationConfiguration, S3DestinationConfiguration, SchemaConfiguration,
    Serializer,
};
use base64::Engine as _;

use crate::external::{MotoS3, Postgres};
use crate::firehose::{embedded_objects, eventually, firehose_client, gunzip, s3_config};
use crate::support::TestServer;

const WAIT: Duration = Duration::from_secs(30);

/// One request as an in-test HTTP server saw it.
#[derive(Debug, Clone)]
struct SeenRequest {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

type Responder = dyn Fn(&SeenRequest) -> (u16, Vec<u8>) + Send + Sync;

/// A small HTTP/1.1 server (keep-alive, Content-Length bodies) that records every request and
/// answers through `respond`.
fn http_server(respond: Arc<Responder>) -> (String, Arc<Mutex<Vec<SeenRequest>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<SeenRequest>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let respond = respond.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut headers = BTreeMap::new();
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
                    }
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let request = SeenRequest {
                        path,
                        headers,
                        body,
                    };
                    let (status, answer) = respond(&request);
                    log.lock().unwrap().push(request);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    if writer.write_all(head.as_bytes()).is_err()
                        || writer.write_all(&answer).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (address, seen)
}

fn newline() -> Processor {
    Processor::builder()
        .r#type(ProcessorType::AppendDelimiterToRecord)
        .build()
        .unwrap()
}

fn records(lines: &[&str]) -> Option<Vec<Record>> {
    Some(
        lines
            .iter()
            .map(|line| Record::builder().data(Blob::new(*line)).build().unwrap())
            .collect(),
    )
}

fn moto_objects(moto: &MotoS3, bucket: &str) -> millstream_firehose_sinks::ObjectTarget {
    let endpoint = moto.endpoint.clone();
    millstream_firehose_sinks::ObjectTarget::with_env(
        millstream_firehose_sinks::ObjectBackend::S3 {
            endpoint: Some(endpoint.clone()),
            region: "us-east-1".to_string(),
        },
        bucket,
        move |name| match name {
            "AWS_ACCESS_KEY_ID" => Some("testing".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("testing".to_string()),
            "AWS_ENDPOINT_URL_S3" => Some(endpoint.clone()),
            _ => None,
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_gzip_objects_to_an_s3_compatible_server() {
    let moto = MotoS3::start();
    moto.create_bucket("landing");
    let server = TestServer::start_with_env(
        &["--firehose-s3-endpoint", &moto.endpoint],
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("to-moto")
        .extended_s3_destination_configuration(
            s3_config("landing")
                .prefix("in/")
                .compression_format(CompressionFormat::Gzip)
                .processing_configuration(
                    ProcessingConfiguration::builder()
                        .enabled(true)
                        .processors(newline())
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_record_batch()
        .delivery_stream_name("to-moto")
        .set_records(records(&["one", "two", "three"]))
        .send()
        .await
        .unwrap();
    let bucket = moto_objects(&moto, "landing");
    let mut keys = Vec::new();
    for _ in 0..300 {
        keys = bucket.list("in/").await.unwrap();
        if !keys.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].ends_with(".gz") && keys[0].contains("/to-moto-1-"),
        "{keys:?}"
    );
    let body = bucket.get(&keys[0]).await.unwrap();
    assert_eq!(gunzip(&body), b"one\ntwo\nthree\n");
    let head = bucket.head(&keys[0]).await.unwrap();
    assert_eq!(head.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(
        head.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert!(
        embedded_objects(&server.data_dir, "landing").is_empty(),
        "nothing went to the embedded store"
    );
}

/// AWS only takes https:// endpoints; the server maps this one to the plain-HTTP receiver.
const RECEIVER: &str = "https://receiver.test/ingest";

fn server_with_receiver(receiver: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("millstream.toml");
    std::fs::write(
        &config,
        format!(
            "[firehose]\nbackoff_scale = 0.01\n[firehose.http_endpoint_rewrites]\n\"https://receiver.test\" = \"{receiver}\"\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]);
    (server, dir)
}

fn http_destination(url: &str, retry_seconds: i32) -> HttpEndpointDestinationConfiguration {
    HttpEndpointDestinationConfiguration::builder()
        .endpoint_configuration(
            HttpEndpointConfiguration::builder()
                .url(url)
                .name("receiver")
                .access_key("sesame")
                .build()
                .unwrap(),
        )
        .request_configuration(
            HttpEndpointRequestConfiguration::builder()
                .content_encoding(aws_sdk_firehose::types::ContentEncoding::None)
                .common_attributes(
                    HttpEndpointCommonAttribute::builder()
                        .attribute_name("env")
                        .attribute_value("test")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .buffering_hints(
            HttpEndpointBufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(1)
                .build(),
        )
        .retry_options(
            HttpEndpointRetryOptions::builder()
                .duration_in_seconds(retry_seconds)
                .build(),
        )
        .s3_configuration(
            S3DestinationConfiguration::builder()
                .role_arn("arn:aws:iam::000000000000:role/r")
                .bucket_arn("arn:aws:s3:::http-backup")
                .error_output_prefix("failed/!{firehose:error-output-type}/")
                .prefix("ok/!{timestamp:yyyy}/")
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoint_gets_the_firehose_request_contract() {
    let responder: Arc<Responder> = Arc::new(|request: &SeenRequest| {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let answer = serde_json::json!({ "requestId": body["requestId"], "timestamp": 1 });
        (200, answer.to_string().into_bytes())
    });
    let (url, seen) = http_server(responder);
    let (server, _config) = server_with_receiver(&url);
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("to-http")
        .http_endpoint_destination_configuration(http_destination(RECEIVER, 60))
        .send()
        .await
        .unwrap();
    client
        .put_record_batch()
        .delivery_stream_name("to-http")
        .set_records(records(&["a", "bb", "ccc"]))
        .send()
        .await
        .unwrap();
    let request = eventually(WAIT, "an HTTP delivery", || {
        seen.lock().unwrap().first().cloned()
    });
    assert_eq!(request.path, "/ingest");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-amz-firehose-protocol-version"], "1.0");
    assert_eq!(request.headers["x-amz-firehose-access-key"], "sesame");
    assert_eq!(
        request.headers["x-amz-firehose-source-arn"],
        "arn:aws:firehose:us-east-1:000000000000:deliverystream/to-http"
    );
    let attributes: serde_json::Value =
        serde_json::from_str(&request.headers["x-amz-firehose-common-attributes"]).unwrap();
    assert_eq!(attributes["commonAttributes"]["env"], "test");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body["requestId"].as_str(),
        Some(request.headers["x-amz-firehose-request-id"].as_str())
    );
    let data: Vec<Vec<u8>> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            base64::engine::general_purpose::STANDARD
                .decode(r["data"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(data, [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_http_endpoint_sends_the_batch_to_the_error_output() {
    let responder: Arc<Responder> =
        Arc::new(|_: &SeenRequest| (503, br#"{"errorMessage":"down for maintenance"}"#.to_vec()));
    let (url, seen) = http_server(responder);
    let (server, _config) = server_with_receiver(&url);
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("to-broken-http")
        .http_endpoint_destination_configuration(http_destination(RECEIVER, 0))
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .delivery_stream_name("to-broken-http")
        .record(Record::builder().data(Blob::new("lost?")).build().unwrap())
        .send()
        .await
        .unwrap();
    let objects = eventually(WAIT, "the error object", || {
        let objects = embedded_objects(&server.data_dir, "http-backup");
        (!objects.is_empty()).then_some(objects)
    });
    assert!(!seen.lock().unwrap().is_empty(), "the endpoint was tried");
    let (key, body) = objects.iter().next().unwrap();
    assert!(key.starts_with("failed/http-endpoint-failed/"), "{key}");
    let error: serde_json::Value =
        serde_json::from_slice(body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(error["errorCode"], "HttpEndpoint.DestinationException");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("down for maintenance"),
        "{error}"
    );
    assert_eq!(error["rawData"], "bG9zdD8=");
}

/// Plays the Lambda Invoke API: uppercases records, drops `drop`, fails `fail`, and gives every
/// kept record a partition key.
fn fake_lambda() -> (String, Arc<Mutex<Vec<SeenRequest>>>) {
    http_server(Arc::new(|request: &SeenRequest| {
        let event: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let records: Vec<serde_json::Value> = event["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(record["data"].as_str().unwrap())
                    .unwrap();
                let text = String::from_utf8(data).unwrap();
                match text.as_str() {
                    "drop" => serde_json::json!({"recordId": record["recordId"], "result": "Dropped"}),
                    "fail" => serde_json::json!({"recordId": record["recordId"], "result": "ProcessingFailed"}),
                    _ => serde_json::json!({
                        "recordId": record["recordId"],
                        "result": "Ok",
                        "data": base64::engine::general_purpose::STANDARD.encode(format!("{}\n", text.to_uppercase())),
                    }),
                }
            })
            .collect();
        (
            200,
            serde_json::json!({ "records": records })
                .to_string()
                .into_bytes(),
        )
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_transformation_follows_the_record_contract() {
    let (lambda_url, invocations) = fake_lambda();
    let server = TestServer::start_with(&["--lambda-endpoint", &lambda_url]);
    let client = firehose_client(&server.endpoint);
    let function = "arn:aws:lambda:us-east-1:000000000000:function:upper";
    let lambda = Processor::builder()
        .r#type(ProcessorType::Lambda)
        .parameters(
            ProcessorParameter::builder()
                .parameter_name(ProcessorParameterName::LambdaArn)
                .parameter_value(function)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client
        .create_delivery_stream()
        .delivery_stream_name("transformed")
        .extended_s3_destination_configuration(
            s3_config("xform")
                .prefix("out/")
                .error_output_prefix("err/!{firehose:error-output-type}/")
                .processing_configuration(
                    ProcessingConfiguration::builder()
                        .enabled(true)
                        .processors(lambda)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_record_batch()
        .delivery_stream_name("transformed")
        .set_records(records(&["hello", "drop", "fail", "world"]))
        .send()
        .await
        .unwrap();
    let objects = eventually(WAIT, "data and error objects", || {
        let objects = embedded_objects(&server.data_dir, "xform");
        (objects.len() >= 2).then_some(objects)
    });
    let data: Vec<&Vec<u8>> = objects
        .iter()
        .filter(|(k, _)| k.starts_with("out/"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(data, [&b"HELLO\nWORLD\n".to_vec()]);
    let (error_key, error_body) = objects.iter().find(|(k, _)| k.starts_with("err/")).unwrap();
    assert!(
        error_key.starts_with("err/processing-failed/"),
        "{error_key}"
    );
    let error: serde_json::Value =
        serde_json::from_slice(error_body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(error["errorCode"], "Lambda.ProcessingFailedStatus");
    assert_eq!(error["lambdaArn"], function);
    assert_eq!(error["rawData"], "ZmFpbA==");
    let invocation = invocations.lock().unwrap()[0].clone();
    assert!(
        invocation.path.starts_with("/2015-03-31/functions/"),
        "{}",
        invocation.path
    );
    assert_eq!(
        invocation.headers["x-amz-invocation-type"],
        "RequestResponse"
    );
    let event: serde_json::Value = serde_json::from_slice(&invocation.body).unwrap();
    assert_eq!(
        event["deliveryStreamArn"],
        "arn:aws:firehose:us-east-1:000000000000:deliverystream/transformed"
    );
    assert_eq!(event["region"], "us-east-1");
    assert_eq!(event["records"].as_array().unwrap().len(), 4);
    assert!(event["records"][0]["approximateArrivalTimestamp"].is_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_destination_copies_rows_into_postgresql() {
    let postgres = Postgres::start();
    postgres.psql("CREATE TABLE orders (id integer, item text, qty integer)");
    let cluster = "analytics.abc123.us-east-1.redshift.amazonaws.com";
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("millstream.toml");
    std::fs::write(
        &config,
        format!(
            "[firehose]\nbackoff_scale = 0.01\n[firehose.redshift_endpoints]\n\"{cluster}\" = \"127.0.0.1:{}\"\n",
            postgres.port
        ),
    )
    .unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]);
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("to-redshift")
        .redshift_destination_configuration(
            RedshiftDestinationConfiguration::builder()
                .role_arn("arn:aws:iam::000000000000:role/r")
                .cluster_jdbcurl(format!(
                    "jdbc:redshift://{cluster}:5439/{}",
                    postgres.database
                ))
                .username(&postgres.user)
                .password(&postgres.password)
                .copy_command(
                    CopyCommand::builder()
                        .data_table_name("orders")
                        .data_table_columns("id,item,qty")
                        .copy_options("CSV")
                        .build()
                        .unwrap(),
                )
                .s3_configuration(
                    S3DestinationConfiguration::builder()
                        .role_arn("arn:aws:iam::000000000000:role/r")
                        .bucket_arn("arn:aws:s3:::staging")
                        .buffering_hints(
                            BufferingHints::builder()
                                .size_in_mbs(1)
                                .interval_in_seconds(1)
                                .build(),
                        )
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
        .delivery_stream_name("to-redshift")
        .set_records(records(&["1,apple,3\n", "2,\"pear, green\",5\n"]))
        .send()
        .await
        .unwrap();
    let rows = eventually(WAIT, "rows in PostgreSQL", || {
        let out = postgres.psql("SELECT id, item, qty FROM orders ORDER BY id");
        (out.lines().count() >= 2).then_some(out)
    });
    assert_eq!(rows.trim(), "1|apple|3\n2|pear, green|5");
    let staged = embedded_objects(&server.data_dir, "staging");
    assert_eq!(staged.len(), 1, "the batch was staged as on AWS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_become_parquet_with_the_configured_schema() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("millstream.toml");
    std::fs::write(
        &config,
        r#"
[[firehose.tables]]
database = "shop"
table = "events"
columns = [
  { name = "id", type = "bigint" },
  { name = "name", type = "string" },
  { name = "price", type = "double" },
  { name = "tags", type = "array<string>" },
]
"#,
    )
    .unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]);
    let client = firehose_client(&server.endpoint);
    client
        .create_delivery_stream()
        .delivery_stream_name("to-parquet")
        .extended_s3_destination_configuration(
            s3_config("warehouse")
                .prefix("events/")
                .error_output_prefix("errors/!{firehose:error-output-type}/")
                .buffering_hints(
                    BufferingHints::builder()
                        .size_in_mbs(64)
                        .interval_in_seconds(1)
                        .build(),
                )
                .data_format_conversion_configuration(
                    DataFormatConversionConfiguration::builder()
                        .enabled(true)
                        .schema_configuration(
                            SchemaConfiguration::builder()
                                .database_name("shop")
                                .table_name("events")
                                .role_arn("arn:aws:iam::000000000000:role/r")
                                .build(),
                        )
                        .input_format_configuration(
                            InputFormatConfiguration::builder()
                                .deserializer(
                                    Deserializer::builder()
                                        .open_x_json_ser_de(OpenXJsonSerDe::builder().build())
                                        .build(),
                                )
                                .build(),
                        )
                        .output_format_configuration(
                            OutputFormatConfiguration::builder()
                                .serializer(
                                    Serializer::builder()
                                        .parquet_ser_de(ParquetSerDe::builder().build())
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_record_batch()
        .delivery_stream_name("to-parquet")
        .set_records(records(&[
            r#"{"id": 1, "Name": "kettle", "price": 19.5, "tags": ["home"]}"#,
            r#"{"id": "not a number"}"#,
            r#"{"id": 2, "name": "lamp", "price": 7.25, "tags": []}"#,
        ]))
        .send()
        .await
        .unwrap();
    let objects = eventually(WAIT, "a parquet object and an error object", || {
        let objects = embedded_objects(&server.data_dir, "warehouse");
        (objects.len() >= 2).then_some(objects)
    });
    let (key, parquet) = objects
        .iter()
        .find(|(k, _)| k.starts_with("events/"))
        .unwrap();
    assert!(key.ends_with(".parquet"), "{key}");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet.clone()),
    )
    .unwrap();
    let schema = reader.schema().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "price", "tags"]);
    let batches: Vec<_> = reader.build().unwrap().map(Result::unwrap).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
    let names = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap();
    assert_eq!(
        names.value(0),
        "kettle",
        "OpenX matches keys case-insensitively"
    );
    assert_eq!(names.value(1), "lamp");
    let (error_key, _) = objects
        .iter()
        .find(|(k, _)| k.starts_with("errors/"))
        .unwrap();
    assert!(
        error_key.starts_with("errors/format-conversion-failed/"),
        "{error_key}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_stream_source_is_delivered_from_latest() {
    let server = TestServer::start();
    let kinesis = server.client();
    kinesis
        .create_stream()
        .stream_name("clicks-src")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    kinesis
        .put_record()
        .stream_name("clicks-src")
        .partition_key("before")
        .data(aws_sdk_kinesis::primitives::Blob::new("before\n"))
        .send()
        .await
        .unwrap();
    let arn = kinesis
        .describe_stream_summary()
        .stream_name("clicks-src")
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_string();
    let client = firehose_client(&server.endpoint);
    // LATEST is the creation instant: wait past it so "before" is unambiguously earlier.
    tokio::time::sleep(Duration::from_millis(20)).await;
    client
        .create_delivery_stream()
        .delivery_stream_name("from-kinesis")
        .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
        .kinesis_stream_source_configuration(
            KinesisStreamSourceConfiguration::builder()
                .kinesis_stream_arn(&arn)
                .role_arn("arn:aws:iam::000000000000:role/r")
                .build()
                .unwrap(),
        )
        .extended_s3_destination_configuration(s3_config("from-kds").build().unwrap())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for n in 0..20 {
        kinesis
            .put_record()
            .stream_name("clicks-src")
            .partition_key(format!("key-{n}"))
            .data(aws_sdk_kinesis::primitives::Blob::new(format!(
                "after-{n}\n"
            )))
            .send()
            .await
            .unwrap();
    }
    let lines = eventually(WAIT, "20 records from the stream", || {
        let mut lines: Vec<String> = embedded_objects(&server.data_dir, "from-kds")
            .values()
            .flat_map(|body| {
                String::from_utf8(body.clone())
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        (lines.len() >= 20).then_some(lines)
    });
    let mut expected: Vec<String> = (0..20).map(|n| format!("after-{n}")).collect();
    expected.sort();
    assert_eq!(lines, expected, "only records after creation, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_format_has_its_framing_and_extension() {
    let server = TestServer::start();
    let client = firehose_client(&server.endpoint);
    let formats = [
        ("zip", CompressionFormat::Zip, ".zip"),
        ("snappy", CompressionFormat::Snappy, ".snappy"),
        ("hadoop", CompressionFormat::HadoopSnappy, ".snappy"),
        ("plain", CompressionFormat::Uncompressed, ""),
    ];
    for (name, format, _) in &formats {
        client
            .create_delivery_stream()
            .delivery_stream_name(*name)
            .extended_s3_destination_configuration(
                s3_config(&format!("c-{name}"))
                    .compression_format(format.clone())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        client
            .put_record_batch()
            .delivery_stream_name(*name)
            .set_records(records(&["abc", "def"]))
            .send()
            .await
            .unwrap();
    }
    for (name, _, extension) in formats {
        let objects = eventually(WAIT, name, || {
            let objects = embedded_objects(&server.data_dir, &format!("c-{name}"));
            (!objects.is_empty()).then_some(objects)
        });
        let (key, body) = objects.iter().next().unwrap();
        let file = key.rsplit('/').next().unwrap();
        assert!(file.starts_with(&format!("{name}-1-")), "{key}");
        let stem_len = format!("{name}-1-").len() + "2026-01-01-00-00-00-".len() + 36;
        assert_eq!(&file[stem_len..], extension, "{key}");
        let plain = match name {
            "zip" => {
                // One deflated entry, read with flate2 straight from the local file header.
                assert_eq!(&body[..4], b"PK\x03\x04");
                let name_len = u16::from_le_bytes([body[26], body[27]]) as usize;
                let extra_len = u16::from_le_bytes([body[28], body[29]]) as usize;
                let compressed =
                    u32::from_le_bytes([body[18], body[19], body[20], body[21]]) as usize;
                let start = 30 + name_len + extra_len;
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(&body[start..start + compressed])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            "snappy" => {
                assert_eq!(&body[..8], b"\x82SNAPPY\x00");
                millstream_firehose_format::Compression::Snappy
                    .decompress(body)
                    .unwrap()
            }
            "hadoop" => {
                assert_eq!(&body[..4], &6u32.to_be_bytes(), "raw length first");
                millstream_firehose_format::Compression::HadoopSnappy
                    .decompress(body)
                    .unwrap()
            }
            _ => body.clone(),
        };
        assert_eq!(plain, b"abcdef", "{name}");
    }
}

/// A KPL aggregated record, encoded here independently of the server's decoder: magic,
/// protobuf `AggregatedRecord { partition_key_table = 1; records = 3 { partition_key_index = 1;
/// data = 3 } }`, then the MD5 of the protobuf.
fn kpl_aggregate(parts: &[&str]) -> Vec<u8> {
    fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
    fn field(tag: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(tag << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
    let mut message = Vec::new();
    field(1, b"pk", &mut message);
    for part in parts {
        let mut record = Vec::new();
        varint(1 << 3, &mut record);
        varint(0, &mut record);
        field(3, part.as_bytes(), &mut record);
        field(3, &record, &mut message);
    }
    use md5::Digest;
    let digest = md5::Md5::digest(&message);
    let mut out = vec![0xF3, 0x89, 0x9A, 0xC2];
    out.extend_from_slice(&message);
    out.extend_from_slice(&digest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_records_are_split_before_delivery() {
    let server = TestServer::start();
    let client = firehose_client(&server.endpoint);
    let deaggregation = Processor::builder()
        .r#type(ProcessorType::RecordDeAggregation)
        .parameters(
            ProcessorParameter::builder()
                .parameter_name(ProcessorParameterName::SubRecordType)
                .parameter_value("JSON")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client
        .create_delivery_stream()
        .delivery_stream_name("json-agg")
        .extended_s3_destination_configuration(
            s3_config("split")
                .processing_configuration(
                    ProcessingConfiguration::builder()
                        .enabled(true)
                        .processors(newline())
                        .processors(deaggregation)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .delivery_stream_name("json-agg")
        .record(
            Record::builder()
                .data(Blob::new("{\"a\":1}{\"a\":2}\n{\"a\":3}"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let objects = eventually(WAIT, "the split JSON records", || {
        let objects = embedded_objects(&server.data_dir, "split");
        (!objects.is_empty()).then_some(objects)
    });
    assert_eq!(
        objects.values().next().unwrap(),
        b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n",
        "one line per sub-record (the delimiter applies after de-aggregation)"
    );

    // From a Kinesis stream, KPL aggregates are unpacked without any processor.
    let kinesis = server.client();
    kinesis
        .create_stream()
        .stream_name("kpl-src")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let arn = kinesis
        .describe_stream_summary()
        .stream_name("kpl-src")
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_string();
    client
        .create_delivery_stream()
        .delivery_stream_name("from-kpl")
        .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
        .kinesis_stream_source_configuration(
            KinesisStreamSourceConfiguration::builder()
                .kinesis_stream_arn(&arn)
                .role_arn("arn:aws:iam::000000000000:role/r")
                .build()
                .unwrap(),
        )
        .extended_s3_destination_configuration(s3_config("kpl").build().unwrap())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    kinesis
        .put_record()
        .stream_name("kpl-src")
        .partition_key("pk")
        .data(aws_sdk_kinesis::primitives::Blob::new(kpl_aggregate(&[
            "x1;", "x2;", "x3;",
        ])))
        .send()
        .await
        .unwrap();
    let objects = eventually(WAIT, "the unpacked KPL records", || {
        let objects = embedded_objects(&server.data_dir, "kpl");
        (!objects.is_empty()).then_some(objects)
    });
    assert_eq!(objects.values().next().unwrap(), b"x1;x2;x3;");
}
