//! GetRecords' CBOR body (`application/x-amz-cbor-1.1`, what the Java SDKs and the KCL
//! read), written from the stored records like `records_json::encode_page`: each record's
//! data goes out as a byte string and its sequence number and partition key as text,
//! without building the model's `String`s first. The output is byte for byte what
//! `ciborium` makes of `page.into_output()` (definite lengths, shortest heads, timestamps as
//! tag 1 around integer milliseconds); a proptest below pins that.

use bytes::Bytes;
use millstream_aws_protocol::Protocol;
use millstream_streams::partition_key_text;

use crate::records_json::{BUFFERS, GetRecordsPage, PooledBody, RecordsBody, ShardEventPage};

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
/// Epoch-based date/time, as AWS's CBOR protocol sends timestamps.
const TAG_EPOCH: u64 = 1;

pub fn encode_page(page: &GetRecordsPage) -> Bytes {
    encode_body(&page.body())
}

/// The payload `ciborium` makes of `event.into_event()`, byte for byte.
pub fn encode_event(event: &ShardEventPage) -> Bytes {
    encode_body(&event.body())
}

/// Bytes of one record's CBOR besides its data, sequence digits and partition key: member
/// names and heads, the tagged timestamp, an encryption type; rounded up.
const RECORD_OVERHEAD: usize = 128;
/// Bytes of the body besides its records and position, without child shards.
const BODY_OVERHEAD: usize = 128;

/// Enough for the CBOR of `body` without child shards, data being raw bytes here.
fn capacity(body: &RecordsBody<'_>) -> usize {
    body.capacity(RECORD_OVERHEAD, BODY_OVERHEAD, |len| len)
}

fn encode_body(body: &RecordsBody<'_>) -> Bytes {
    let mut out = BUFFERS.take(capacity(body));
    let members =
        2 + usize::from(body.position.is_some()) + usize::from(body.child_shards.is_some());
    head(&mut out, MAJOR_MAP, members as u64);
    text(&mut out, "Records");
    head(&mut out, MAJOR_ARRAY, body.records.len() as u64);
    let mut digits = Vec::with_capacity(64);
    for record in body.records.iter() {
        head(&mut out, MAJOR_MAP, 4 + u64::from(record.encrypted()));
        text(&mut out, "SequenceNumber");
        digits.clear();
        record.sequence_parts().append_to(&mut digits);
        text_bytes(&mut out, &digits);
        text(&mut out, "ApproximateArrivalTimestamp");
        head(&mut out, MAJOR_TAG, TAG_EPOCH);
        integer(&mut out, record.arrival_ms() as i64);
        text(&mut out, "Data");
        head(&mut out, MAJOR_BYTES, record.data().len() as u64);
        out.extend_from_slice(record.data());
        text(&mut out, "PartitionKey");
        match std::str::from_utf8(record.partition_key()) {
            Ok(key) => text(&mut out, key),
            Err(_) => text(&mut out, &partition_key_text(record.partition_key())),
        }
        if record.encrypted() {
            text(&mut out, "EncryptionType");
            text(&mut out, "KMS");
        }
    }
    if let Some(position) = body.position {
        text(&mut out, body.position_member);
        text(&mut out, position);
    }
    text(&mut out, "MillisBehindLatest");
    integer(&mut out, body.millis_behind_latest);
    if let Some(children) = body.child_shards {
        // Rare (a closed shard's last page) and nested: the generic encoder's own bytes.
        text(&mut out, "ChildShards");
        out.extend_from_slice(&millstream_aws_protocol::encode(Protocol::Cbor, children));
    }
    PooledBody::into_bytes(out, &BUFFERS)
}

/// A data item's head: major type and argument, in the shortest form.
fn head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

fn integer(out: &mut Vec<u8>, value: i64) {
    if value >= 0 {
        head(out, MAJOR_UNSIGNED, value as u64);
    } else {
        // -1 - n encodes n.
        head(out, MAJOR_NEGATIVE, !(value as u64));
    }
}

fn text(out: &mut Vec<u8>, value: &str) {
    text_bytes(out, value.as_bytes());
}

fn text_bytes(out: &mut Vec<u8>, utf8: &[u8]) {
    head(out, MAJOR_TEXT, utf8.len() as u64);
    out.extend_from_slice(utf8);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::GetRecordsOutput;
    use crate::records_json::test_pages::{StoredFields, child_shards, event_of, stored_page};

    fn generic(output: &GetRecordsOutput) -> Bytes {
        millstream_aws_protocol::encode(Protocol::Cbor, output)
    }

    fn page(
        records: Vec<StoredFields>,
        iterator: Option<String>,
        behind: i64,
        children: bool,
    ) -> GetRecordsPage {
        GetRecordsPage {
            records: stored_page(1_764_000_000_000, 5, records),
            next_shard_iterator: iterator,
            millis_behind_latest: behind,
            child_shards: children.then(child_shards),
        }
    }

    #[test]
    fn heads_take_the_shortest_form_at_every_boundary() {
        for (argument, len) in [
            (0u64, 1),
            (23, 1),
            (24, 2),
            (255, 2),
            (256, 3),
            (65_535, 3),
            (65_536, 5),
            (u32::MAX as u64, 5),
            (u32::MAX as u64 + 1, 9),
            (u64::MAX, 9),
        ] {
            let mut out = Vec::new();
            head(&mut out, MAJOR_UNSIGNED, argument);
            assert_eq!(out.len(), len, "{argument}");
            assert_eq!(&out[..], &generic_u64(argument)[..], "{argument}");
        }
        for value in [-1i64, -24, -25, -256, -257, i64::MIN] {
            let mut out = Vec::new();
            integer(&mut out, value);
            assert_eq!(
                &out[..],
                &millstream_aws_protocol::encode(Protocol::Cbor, &value)[..]
            );
        }
    }

    fn generic_u64(value: u64) -> Bytes {
        millstream_aws_protocol::encode(Protocol::Cbor, &value)
    }

    proptest! {
        #[test]
        fn a_page_encodes_as_ciborium_encodes_its_model_output(
            records in proptest::collection::vec(
                (
                    prop_oneof![
                        "\\PC{0,40}".prop_map(String::into_bytes),
                        proptest::collection::vec(any::<u8>(), 0..12),
                    ],
                    proptest::collection::vec(any::<u8>(), 0..300),
                    0u64..(1 << 62),
                    0u64..4_102_444_800_000,
                    any::<bool>(),
                ),
                0..30,
            ),
            iterator in proptest::option::of("[A-Za-z0-9+/=]{0,300}"),
            behind in any::<i64>(),
            children in any::<bool>(),
        ) {
            let page = page(records, iterator, behind, children);
            let event = event_of(&page);
            let direct = encode_page(&page);
            prop_assert_eq!(&direct[..], &generic(&page.into_output())[..]);
            let direct = encode_event(&event);
            let generic_event = millstream_aws_protocol::encode(Protocol::Cbor, &event.into_event());
            prop_assert_eq!(&direct[..], &generic_event[..]);
        }
    }

    #[test]
    fn a_large_page_with_long_records_matches_too() {
        let records = (0..40)
            .map(|i| {
                (
                    vec![b'k'; 300],
                    vec![i as u8; 70_000],
                    i,
                    1_764_150_000_749,
                    i % 2 == 0,
                )
            })
            .collect();
        let page = page(records, Some("A".repeat(300)), 86_400_000, false);
        let direct = encode_page(&page);
        assert!(
            direct.len() <= capacity(&page.body()),
            "no reallocation needed"
        );
        assert!(
            capacity(&page.body()) < direct.len() + 40 * 200,
            "and not much more"
        );
        assert_eq!(direct, generic(&page.into_output()));
    }
}
