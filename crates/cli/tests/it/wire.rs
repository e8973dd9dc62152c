//! Exact wire behaviour: error envelopes pinned by golden files, CBOR, protocol-level errors.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::{TestServer, json_request, raw_request};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kinesis")
}

/// Each golden file holds `setup` requests, then one `request` and the full `expected`
/// envelope: status, `__type`, the message and the key carrying it, and the
/// `x-amzn-ErrorType` header. `UPDATE_GOLDEN=1` rewrites `expected` from the server's answer.
#[tokio::test]
async fn error_envelopes_match_golden_files() {
    let server = TestServer::start();
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected a golden file per validation rule, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in files {
        let mut case: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for setup in case["setup"].as_array().cloned().unwrap_or_default() {
            let response = json_request(
                server.port,
                setup["operation"].as_str().unwrap(),
                setup["body"].clone(),
            );
            // Cases share one server: a stream an earlier case created may already exist.
            let already_there = response.json()["__type"] == "ResourceInUseException";
            assert!(
                response.status == 200 || already_there,
                "{}: setup failed: {}",
                path.display(),
                String::from_utf8_lossy(&response.body)
            );
        }
        let request = &case["request"];
        let response = json_request(
            server.port,
            request["operation"].as_str().unwrap(),
            request["body"].clone(),
        );
        let body = response.json();
        let (key, message) = if let Some(m) = body.get("message") {
            ("message", m.clone())
        } else if let Some(m) = body.get("Message") {
            ("Message", m.clone())
        } else {
            ("none", Value::Null)
        };
        let actual = json!({
            "status": response.status,
            "type": body["__type"],
            "message_key": key,
            "message": message,
            "error_type_header": response.header("x-amzn-errortype"),
        });
        assert!(
            response.header("x-amzn-requestid").is_some(),
            "{}: no request id",
            path.display()
        );
        if update {
            case["expected"] = actual;
            std::fs::write(&path, serde_json::to_string_pretty(&case).unwrap() + "\n").unwrap();
        } else if case["expected"] != actual {
            failures.push(format!(
                "{}:\n  expected {}\n  actual   {}",
                path.display(),
                case["expected"],
                actual
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn protocol_errors_have_the_right_envelope() {
    let server = TestServer::start();
    let unknown = json_request(server.port, "NoSuchOperation", json!({}));
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.json(),
        json!({"__type": "UnknownOperationException"})
    );

    let malformed = raw_request(
        server.port,
        Some("Kinesis_20131202.ListStreams"),
        Some("application/x-amz-json-1.1"),
        b"{not json",
        true,
    );
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["__type"], "SerializationException");

    let wrong_type = json_request(
        server.port,
        "CreateStream",
        json!({"StreamName": true, "ShardCount": 1}),
    );
    assert_eq!(
        wrong_type.json(),
        json!({"__type": "SerializationException", "Message": "class java.lang.Boolean can not be converted to an String"})
    );

    let unsigned = raw_request(
        server.port,
        Some("Kinesis_20131202.ListStreams"),
        Some("application/x-amz-json-1.1"),
        b"{}",
        false,
    );
    assert_eq!(unsigned.status, 400);
    assert_eq!(
        unsigned.json(),
        json!({"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})
    );

    let huge = vec![b' '; 17 << 20];
    let too_big = raw_request(
        server.port,
        Some("Kinesis_20131202.ListStreams"),
        Some("application/x-amz-json-1.1"),
        &huge,
        true,
    );
    assert_eq!(too_big.status, 413);

    let bad_base64 = json_request(
        server.port,
        "PutRecord",
        json!({"StreamName": "s", "PartitionKey": "k", "Data": "not base64!"}),
    );
    assert_eq!(bad_base64.status, 400);
    assert_eq!(bad_base64.json()["__type"], "SerializationException");
}

/// AWS names an unknown operation, and refuses a body that is not a JSON object, before it
/// checks the signature; a signature problem comes only after both.
#[tokio::test]
async fn unknown_targets_and_non_json_bodies_are_refused_before_authentication() {
    let server = TestServer::start();
    for target in [
        None,
        Some("Whatever"),
        Some("Kinesis_20131202.Whatever"),
        Some("Kinesis_20131202."),
    ] {
        let unknown = raw_request(
            server.port,
            target,
            Some("application/x-amz-json-1.1"),
            b"{}",
            false,
        );
        assert_eq!(unknown.status, 400, "{target:?}");
        assert_eq!(
            unknown.json(),
            json!({"__type": "UnknownOperationException"}),
            "{target:?}"
        );
    }
    for body in [&b""[..], b"hello", b"  [1]"] {
        for signed in [false, true] {
            let refused = raw_request(
                server.port,
                Some("Kinesis_20131202.ListStreams"),
                Some("application/x-amz-json-1.1"),
                body,
                signed,
            );
            assert_eq!(refused.status, 400);
            assert_eq!(
                refused.json(),
                json!({"__type": "SerializationException"}),
                "{body:?}"
            );
        }
    }
    let firehose_empty = raw_request(
        server.port,
        Some("Firehose_20150804.ListDeliveryStreams"),
        Some("application/x-amz-json-1.1"),
        b"",
        false,
    );
    assert_eq!(
        firehose_empty.json(),
        json!({"__type": "SerializationException"})
    );
}

/// Every API response carries an `x-amz-id-2` like AWS's: base64 of 72 bytes, new each time.
#[tokio::test]
async fn responses_carry_an_extended_request_id() {
    use base64::Engine as _;
    let server = TestServer::start();
    let ids: Vec<String> = [json!({}), json!({"Limit": 0})]
        .into_iter()
        .map(|body| {
            let response = json_request(server.port, "ListStreams", body);
            response
                .header("x-amz-id-2")
                .expect("x-amz-id-2")
                .to_string()
        })
        .collect();
    for id in &ids {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(id)
            .expect("base64");
        assert_eq!(bytes.len(), 72, "{id}");
    }
    assert_ne!(ids[0], ids[1]);
}

fn cbor(value: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn cbor_request(port: u16, operation: &str, body: ciborium::Value) -> (u16, ciborium::Value) {
    let response = raw_request(
        port,
        Some(&format!("Kinesis_20131202.{operation}")),
        Some("application/x-amz-cbor-1.1"),
        &cbor(&body),
        true,
    );
    assert_eq!(
        response.header("content-type"),
        Some("application/x-amz-cbor-1.1")
    );
    let value = if response.body.is_empty() {
        ciborium::Value::Null
    } else {
        ciborium::from_reader(&response.body[..]).unwrap()
    };
    (response.status, value)
}

fn field<'a>(value: &'a ciborium::Value, name: &str) -> &'a ciborium::Value {
    value
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {value:?}"))
}

/// The Java SDKs (and so the KCL) speak CBOR: blobs as byte strings and timestamps as tag 1
/// over epoch milliseconds. The same data read over JSON must agree.
#[tokio::test]
async fn cbor_and_json_answers_agree() {
    use ciborium::Value as C;
    let server = TestServer::start();
    let text = |s: &str| C::Text(s.to_string());
    let (status, _) = cbor_request(
        server.port,
        "CreateStream",
        C::Map(vec![
            (text("StreamName"), text("cbor")),
            (text("ShardCount"), C::Integer(1.into())),
        ]),
    );
    assert_eq!(status, 200);
    let payload: Vec<u8> = vec![0, 1, 2, 250, 255];
    let (status, put) = cbor_request(
        server.port,
        "PutRecord",
        C::Map(vec![
            (text("StreamName"), text("cbor")),
            (text("PartitionKey"), text("k")),
            (text("Data"), C::Bytes(payload.clone())),
        ]),
    );
    assert_eq!(status, 200);
    let sequence = field(&put, "SequenceNumber").as_text().unwrap().to_string();

    let iterator_request = |protocol_is_cbor: bool| {
        if protocol_is_cbor {
            let (_, out) = cbor_request(
                server.port,
                "GetShardIterator",
                C::Map(vec![
                    (text("StreamName"), text("cbor")),
                    (text("ShardId"), text("shardId-000000000000")),
                    (text("ShardIteratorType"), text("TRIM_HORIZON")),
                ]),
            );
            field(&out, "ShardIterator").as_text().unwrap().to_string()
        } else {
            json_request(server.port, "GetShardIterator", json!({"StreamName": "cbor", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}))
                .json()["ShardIterator"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (status, records) = cbor_request(
        server.port,
        "GetRecords",
        C::Map(vec![(text("ShardIterator"), text(&iterator_request(true)))]),
    );
    assert_eq!(status, 200);
    let record = &field(&records, "Records").as_array().unwrap()[0];
    assert_eq!(field(record, "Data").as_bytes().unwrap(), &payload);
    assert_eq!(field(record, "SequenceNumber").as_text().unwrap(), sequence);
    let C::Tag(1, millis) = field(record, "ApproximateArrivalTimestamp") else {
        panic!("timestamp must be tag 1")
    };
    let millis: i128 = millis.as_integer().expect("integer milliseconds").into();

    let json_records = json_request(
        server.port,
        "GetRecords",
        json!({"ShardIterator": iterator_request(false)}),
    )
    .json();
    let json_record = &json_records["Records"][0];
    assert_eq!(json_record["Data"], "AAEC+v8=");
    assert_eq!(json_record["SequenceNumber"], sequence.as_str());
    let seconds = json_record["ApproximateArrivalTimestamp"].as_f64().unwrap();
    assert_eq!((seconds * 1000.0).round() as i128, millis);

    // Errors come back in CBOR too.
    let (status, error) = cbor_request(
        server.port,
        "DescribeStream",
        C::Map(vec![(text("StreamName"), text("missing"))]),
    );
    assert_eq!(status, 400);
    assert_eq!(
        field(&error, "__type").as_text(),
        Some("ResourceNotFoundException")
    );
}
