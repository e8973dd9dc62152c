//! Wire behaviour of `decode`/`encode`, `Blob` and `Timestamp` in both protocols.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use bytes::Bytes;
use millstream_aws_protocol::{Blob, Protocol, ProtocolError, Timestamp, decode, encode};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "Data", default, skip_serializing_if = "Option::is_none")]
    data: Option<Blob>,
    #[serde(
        rename = "PartitionKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    partition_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Shape {
    #[serde(
        rename = "StreamName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    stream_name: Option<String>,
    #[serde(rename = "Limit", default, skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
    #[serde(rename = "Flag", default, skip_serializing_if = "Option::is_none")]
    flag: Option<bool>,
    #[serde(rename = "At", default, skip_serializing_if = "Option::is_none")]
    at: Option<Timestamp>,
    #[serde(rename = "Records", default, skip_serializing_if = "Option::is_none")]
    records: Option<Vec<Entry>>,
    #[serde(rename = "Tags", default, skip_serializing_if = "Option::is_none")]
    tags: Option<std::collections::BTreeMap<String, String>>,
}

fn serialization_message(result: Result<Shape, ProtocolError>) -> Option<String> {
    match result {
        Ok(value) => panic!("expected SerializationException, decoded {value:?}"),
        Err(err) => {
            assert_eq!(err.code(), "SerializationException");
            err.message().map(str::to_owned)
        }
    }
}

#[test]
fn ciborium_is_not_human_readable_so_blobs_are_byte_strings() {
    let shape = Shape {
        records: Some(vec![Entry {
            data: Some(Blob(Bytes::from_static(b"hi"))),
            partition_key: None,
        }]),
        ..Shape::default()
    };
    let cbor = encode(Protocol::Cbor, &shape);
    // Records: [ { "Data": h'6869' } ]  — 0x42 is a 2-byte byte string.
    assert!(
        cbor.windows(3).any(|w| w == [0x42, b'h', b'i']),
        "{cbor:02x?}"
    );
    let json = encode(Protocol::Json, &shape);
    assert_eq!(&json[..], br#"{"Records":[{"Data":"aGk="}]}"#);
    assert_eq!(decode::<Shape>(Protocol::Cbor, &cbor).unwrap(), shape);
    assert_eq!(decode::<Shape>(Protocol::Json, &json).unwrap(), shape);
}

#[test]
fn empty_body_and_empty_object_decode_as_all_absent() {
    for protocol in [Protocol::Json, Protocol::Cbor] {
        assert_eq!(decode::<Shape>(protocol, b"").unwrap(), Shape::default());
    }
    assert_eq!(
        decode::<Shape>(Protocol::Json, b"{}").unwrap(),
        Shape::default()
    );
    assert_eq!(
        decode::<Shape>(Protocol::Json, b"  \n").unwrap(),
        Shape::default()
    );
    assert_eq!(
        decode::<Shape>(Protocol::Cbor, &[0xa0]).unwrap(),
        Shape::default()
    );
}

#[test]
fn json_null_is_absent_and_unknown_members_are_ignored() {
    let shape: Shape = decode(
        Protocol::Json,
        br#"{"StreamName":null,"Limit":5,"Bogus":{"x":[1,2]}}"#,
    )
    .unwrap();
    assert_eq!(
        shape,
        Shape {
            limit: Some(5),
            ..Shape::default()
        }
    );
}

#[test]
fn cbor_accepts_indefinite_maps_arrays_and_strings() {
    // {_ "StreamName": (_ "ab", "c"), "Records": [_ {_ "Data": (_ h'01', h'02'), "PartitionKey": "k"}]}
    let mut body = vec![0xbf];
    body.extend([0x6a]);
    body.extend(b"StreamName");
    body.extend([0x7f, 0x62, b'a', b'b', 0x61, b'c', 0xff]);
    body.extend([0x67]);
    body.extend(b"Records");
    body.extend([0x9f, 0xbf, 0x64]);
    body.extend(b"Data");
    body.extend([0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, 0x6c]);
    body.extend(b"PartitionKey");
    body.extend([0x61, b'k', 0xff, 0xff, 0xff]);
    let shape: Shape = decode(Protocol::Cbor, &body).unwrap();
    assert_eq!(shape.stream_name.as_deref(), Some("abc"));
    let records = shape.records.unwrap();
    assert_eq!(records[0].data, Some(Blob(Bytes::from_static(&[1, 2]))));
    assert_eq!(records[0].partition_key.as_deref(), Some("k"));
}

#[test]
fn cbor_accepts_chunked_map_keys() {
    // {_ (_ "Stream", "Name"): "s"} — a chunked key needs the Value fallback path.
    let mut body = vec![0xbf, 0x7f, 0x66];
    body.extend(b"Stream");
    body.extend([0x64]);
    body.extend(b"Name");
    body.extend([0xff, 0x61, b's', 0xff]);
    let shape: Shape = decode(Protocol::Cbor, &body).unwrap();
    assert_eq!(shape.stream_name.as_deref(), Some("s"));
}

#[test]
fn json_timestamps_are_epoch_seconds_without_exponent() {
    let cases = [
        (1_506_440_188_749, "1506440188.749"),
        (1_506_440_188_000, "1506440188.0"),
        (1_506_440_188_700, "1506440188.7"),
        (0, "0.0"),
        (1, "0.001"),
        (-1, "-0.001"),
        (253_402_300_799_999, "253402300799.999"),
    ];
    for (millis, text) in cases {
        let json = serde_json::to_string(&Timestamp::from_millis(millis)).unwrap();
        assert_eq!(json, text);
        assert_eq!(Timestamp::from_millis(millis).to_json_seconds(), text);
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_millis(), millis);
    }
}

#[test]
fn json_timestamps_accept_integer_and_float_seconds() {
    let shape: Shape = decode(Protocol::Json, br#"{"At":1506440188}"#).unwrap();
    assert_eq!(shape.at, Some(Timestamp::from_millis(1_506_440_188_000)));
    let shape: Shape = decode(Protocol::Json, br#"{"At":1506440188.749}"#).unwrap();
    assert_eq!(shape.at, Some(Timestamp::from_millis(1_506_440_188_749)));
    let shape: Shape = decode(Protocol::Json, br#"{"At":1.506440188749E9}"#).unwrap();
    assert_eq!(shape.at, Some(Timestamp::from_millis(1_506_440_188_749)));
}

#[test]
fn cbor_timestamps_are_tag_one_with_milliseconds() {
    let encoded = encode(Protocol::Cbor, &Timestamp::from_millis(1_506_440_188_749));
    // tag 1 (0xc1), then uint64 (0x1b) 1506440188749.
    let mut expected = vec![0xc1, 0x1b];
    expected.extend(1_506_440_188_749u64.to_be_bytes());
    assert_eq!(&encoded[..], &expected[..]);

    let millis = 1_506_440_188_749i64;
    let decode_ts = |bytes: Vec<u8>| {
        let mut body = vec![0xa1, 0x62, b'A', b't'];
        body.extend(bytes);
        decode::<Shape>(Protocol::Cbor, &body)
            .unwrap()
            .at
            .unwrap()
            .as_millis()
    };
    assert_eq!(decode_ts(expected.clone()), millis);
    assert_eq!(
        decode_ts(expected[1..].to_vec()),
        millis,
        "untagged integer"
    );
    let mut tagged_float = vec![0xc1, 0xfb];
    tagged_float.extend((millis as f64).to_be_bytes());
    assert_eq!(decode_ts(tagged_float.clone()), millis, "tagged float");
    assert_eq!(
        decode_ts(tagged_float[1..].to_vec()),
        millis,
        "untagged float"
    );
}

#[test]
fn type_mismatches_use_aws_serialization_messages() {
    let decode_json = |body: &str| serialization_message(decode(Protocol::Json, body.as_bytes()));
    assert_eq!(
        decode_json(r#"{"StreamName":true}"#).as_deref(),
        Some("class java.lang.Boolean can not be converted to an String")
    );
    assert_eq!(
        decode_json(r#"{"StreamName":23}"#).as_deref(),
        Some(
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"
        )
    );
    assert_eq!(
        decode_json(r#"{"StreamName":[]}"#).as_deref(),
        Some("Start of list found where not expected")
    );
    assert_eq!(
        decode_json(r#"{"StreamName":{}}"#).as_deref(),
        Some("Start of structure or map found where not expected.")
    );
    assert_eq!(
        decode_json(r#"{"Records":"23"}"#).as_deref(),
        Some("Expected list or null")
    );
    assert_eq!(
        decode_json(r#"{"Records":["23"]}"#).as_deref(),
        Some("Expected null")
    );
    assert_eq!(
        decode_json(r#"{"Tags":23}"#).as_deref(),
        Some("Expected map or null")
    );
    assert_eq!(
        decode_json(r#"{"Limit":"23"}"#).as_deref(),
        Some("class java.lang.String can not be converted to an Integer")
    );
    assert_eq!(
        decode_json(r#"{"Records":[{"Data":23}]}"#).as_deref(),
        Some(
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"
        )
    );
    assert_eq!(
        decode_json(r#"{"Records":[{"Data":"23456"}]}"#).as_deref(),
        Some(
            "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"
        )
    );
    assert_eq!(
        decode_json(r#"{"Records":[{"Data":"+/+="}]}"#).as_deref(),
        Some(
            "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
        )
    );
    assert_eq!(
        decode_json(r#"{"StreamName":"#),
        None,
        "unparseable body has no message"
    );
}

#[test]
fn cbor_type_mismatches_use_aws_serialization_messages() {
    // {"StreamName": 23}
    let mut body = vec![0xa1, 0x6a];
    body.extend(b"StreamName");
    body.push(0x17);
    assert_eq!(
        serialization_message(decode(Protocol::Cbor, &body)).as_deref(),
        Some(
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"
        )
    );
    assert_eq!(
        serialization_message(decode(Protocol::Cbor, &[0xbf, 0x61])),
        None
    );
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        proptest::option::of(".{0,20}"),
    )
        .prop_map(|(data, partition_key)| Entry {
            data: data.map(Blob::from),
            partition_key,
        })
}

fn arb_shape() -> impl Strategy<Value = Shape> {
    (
        proptest::option::of(".{0,30}"),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(-62_135_596_800_000i64..253_402_300_799_999),
        proptest::option::of(proptest::collection::vec(arb_entry(), 0..5)),
        proptest::option::of(proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4)),
    )
        .prop_map(|(stream_name, limit, flag, at, records, tags)| Shape {
            stream_name,
            limit,
            flag,
            at: at.map(Timestamp::from_millis),
            records,
            tags,
        })
}

proptest! {
    #[test]
    fn json_and_cbor_round_trip_and_agree(shape in arb_shape()) {
        let from_json: Shape = decode(Protocol::Json, &encode(Protocol::Json, &shape)).unwrap();
        let from_cbor: Shape = decode(Protocol::Cbor, &encode(Protocol::Cbor, &shape)).unwrap();
        prop_assert_eq!(&from_json, &shape);
        prop_assert_eq!(&from_cbor, &shape);
    }
}
