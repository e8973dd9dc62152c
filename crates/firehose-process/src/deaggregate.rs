//! Splitting one put record into several: KPL aggregation and `RecordDeAggregation`.
//!
//! KPL aggregated record layout (what the Kinesis Producer Library writes and the KCL reads):
//!
//! ```text
//! | magic F3 89 9A C2 | protobuf AggregatedRecord | MD5(protobuf), 16 bytes |
//!
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;   // ignored, as the KCL does
//! }
//! ```
//!
//! The protobuf is decoded by hand (varints and length-delimited fields only need ~100 lines,
//! and prost would bring a build script). Every length is checked against the bytes that remain,
//! so hostile input can make us fail but never over-read or over-allocate. Unknown fields of wire
//! types 0, 1, 2 and 5 are skipped, so newer KPL versions still decode; groups (3, 4) are
//! rejected because proto2 groups never appear in this schema.
//!
//! The engine delivers a record whose magic or digest does not match unchanged (the KCL does the
//! same), so [`DeaggregationError`] separates "not aggregated" from "aggregated but corrupt".

use bytes::Bytes;
use md5::{Digest, Md5};

/// Most sub-records `RecordDeAggregation` may produce from one record; more fails the record.
pub const SUB_RECORDS_MAX: usize = 500;

/// First bytes of every KPL aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const KPL_DIGEST_LEN: usize = 16;
const _: () = assert!(KPL_DIGEST_LEN == 128 / 8, "MD5 digests are 128 bits");

/// One user record carried inside a KPL aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KplRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Bytes,
}

/// Why a record could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeaggregationError {
    /// No KPL magic, or too short to hold magic and digest: an ordinary record.
    #[error("record is not KPL aggregated")]
    NotAggregated,
    /// KPL magic present but the MD5 does not match the protobuf; the KCL then treats the
    /// record as an ordinary one.
    #[error("KPL aggregated record digest does not match its content")]
    DigestMismatch,
    #[error("malformed KPL protobuf at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: &'static str },
    #[error("KPL record {record} is missing required field {field}")]
    MissingField { record: usize, field: &'static str },
    #[error("KPL record {record} refers to {table} entry {index}, but the table has {len}")]
    IndexOutOfRange {
        record: usize,
        table: &'static str,
        index: u64,
        len: usize,
    },
    #[error("record holds more than {max} sub-records")]
    TooManySubRecords { max: usize },
    #[error("sub-record {index} is not valid JSON: {reason}")]
    InvalidJson { index: usize, reason: String },
    #[error("the delimiter is empty")]
    EmptyDelimiter,
}

/// True when `data` has the KPL magic, room for the digest, and a digest that matches.
/// This hashes the record; callers about to split it can call [`deaggregate_kpl`] directly,
/// which reports the same facts as `NotAggregated` / `DigestMismatch`.
pub fn is_kpl_aggregated(data: &[u8]) -> bool {
    verified_protobuf(data).is_ok()
}

/// Splits a KPL aggregated record into its user records, in order.
///
/// # Errors
/// [`DeaggregationError::NotAggregated`] or [`DeaggregationError::DigestMismatch`] when the
/// record should be delivered as is; any other variant when it is aggregated but corrupt.
pub fn deaggregate_kpl(data: &[u8]) -> Result<Vec<KplRecord>, DeaggregationError> {
    let protobuf = verified_protobuf(data)?;
    let base = KPL_MAGIC.len();
    let mut partition_keys: Vec<&str> = Vec::new();
    let mut explicit_hash_keys: Vec<&str> = Vec::new();
    // (offset of the message for error reporting, its bytes)
    let mut raw_records: Vec<(usize, &[u8])> = Vec::new();

    let mut reader = Reader::new(protobuf, base);
    while !reader.is_empty() {
        let (field, wire_type) = reader.key()?;
        match (field, wire_type) {
            (1, WIRE_LEN) => partition_keys.push(reader.string()?),
            (2, WIRE_LEN) => explicit_hash_keys.push(reader.string()?),
            (3, WIRE_LEN) => {
                let offset = reader.offset();
                raw_records.push((offset, reader.length_delimited()?));
            }
            (1..=3, _) => return Err(reader.malformed("wrong wire type for a known field")),
            _ => reader.skip(wire_type)?,
        }
    }

    raw_records
        .into_iter()
        .enumerate()
        .map(|(index, (offset, bytes))| {
            decode_record(
                index,
                Reader::new(bytes, offset),
                &partition_keys,
                &explicit_hash_keys,
            )
        })
        .collect()
}

fn verified_protobuf(data: &[u8]) -> Result<&[u8], DeaggregationError> {
    if data.len() < KPL_MAGIC.len() + KPL_DIGEST_LEN || !data.starts_with(&KPL_MAGIC) {
        return Err(DeaggregationError::NotAggregated);
    }
    let (protobuf, digest) =
        data[KPL_MAGIC.len()..].split_at(data.len() - KPL_MAGIC.len() - KPL_DIGEST_LEN);
    if Md5::digest(protobuf).as_slice() != digest {
        return Err(DeaggregationError::DigestMismatch);
    }
    Ok(protobuf)
}

fn decode_record(
    index: usize,
    mut reader: Reader<'_>,
    partition_keys: &[&str],
    explicit_hash_keys: &[&str],
) -> Result<KplRecord, DeaggregationError> {
    let mut partition_key_index = None;
    let mut explicit_hash_key_index = None;
    let mut data = None;
    while !reader.is_empty() {
        let (field, wire_type) = reader.key()?;
        match (field, wire_type) {
            (1, WIRE_VARINT) => partition_key_index = Some(reader.varint()?),
            (2, WIRE_VARINT) => explicit_hash_key_index = Some(reader.varint()?),
            (3, WIRE_LEN) => data = Some(reader.length_delimited()?),
            (1..=3, _) => return Err(reader.malformed("wrong wire type for a known field")),
            _ => reader.skip(wire_type)?,
        }
    }
    let missing = |field| DeaggregationError::MissingField {
        record: index,
        field,
    };
    let partition_key_index = partition_key_index.ok_or_else(|| missing("partition_key_index"))?;
    let data = data.ok_or_else(|| missing("data"))?;
    let lookup = |table: &'static str, entries: &[&str], wanted: u64| {
        usize::try_from(wanted)
            .ok()
            .and_then(|i| entries.get(i))
            .map(|entry| (*entry).to_owned())
            .ok_or(DeaggregationError::IndexOutOfRange {
                record: index,
                table,
                index: wanted,
                len: entries.len(),
            })
    };
    Ok(KplRecord {
        partition_key: lookup("partition_key_table", partition_keys, partition_key_index)?,
        explicit_hash_key: explicit_hash_key_index
            .map(|wanted| lookup("explicit_hash_key_table", explicit_hash_keys, wanted))
            .transpose()?,
        data: Bytes::copy_from_slice(data),
    })
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;
/// A u64 varint never needs more than ten 7-bit groups.
const VARINT_BYTES_MAX: usize = 10;

/// Protobuf wire-format reader over a slice; `base` makes error offsets absolute.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Self {
            bytes,
            position: 0,
            base,
        }
    }

    fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn offset(&self) -> usize {
        self.base + self.position
    }

    fn malformed(&self, reason: &'static str) -> DeaggregationError {
        DeaggregationError::Malformed {
            offset: self.offset(),
            reason,
        }
    }

    fn varint(&mut self) -> Result<u64, DeaggregationError> {
        let mut value: u64 = 0;
        for i in 0..VARINT_BYTES_MAX {
            let Some(&byte) = self.bytes.get(self.position) else {
                return Err(self.malformed("truncated varint"));
            };
            self.position += 1;
            // The tenth group holds only bit 63; anything more overflows u64.
            if i == VARINT_BYTES_MAX - 1 && byte > 1 {
                return Err(self.malformed("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("varint longer than 10 bytes"))
    }

    fn key(&mut self) -> Result<(u64, u8), DeaggregationError> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(self.malformed("field number 0"));
        }
        let wire_type = u8::try_from(key & 0x7).expect("masked to three bits");
        Ok((field, wire_type))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DeaggregationError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.malformed("field extends past the end of the message"))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], DeaggregationError> {
        let len = self.varint()?;
        // A length that does not fit usize is certainly longer than what remains.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len)
    }

    fn string(&mut self) -> Result<&'a str, DeaggregationError> {
        let offset = self.offset();
        let bytes = self.length_delimited()?;
        std::str::from_utf8(bytes).map_err(|_| DeaggregationError::Malformed {
            offset,
            reason: "string field is not UTF-8",
        })
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), DeaggregationError> {
        match wire_type {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => self.length_delimited().map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            _ => Err(self.malformed("unsupported wire type")),
        }
    }
}

/// Splits concatenated JSON documents (`{"a":1}{"a":2}`, any whitespace between them) into each
/// document's bytes, without the surrounding whitespace. Empty or all-whitespace input has no
/// sub-records.
///
/// # Errors
/// [`DeaggregationError::InvalidJson`] when any document is malformed (the whole record fails,
/// nothing is partially split); [`DeaggregationError::TooManySubRecords`] past
/// [`SUB_RECORDS_MAX`].
pub fn split_json(data: &[u8]) -> Result<Vec<Bytes>, DeaggregationError> {
    let mut documents = Vec::new();
    let mut stream =
        serde_json::Deserializer::from_slice(data).into_iter::<serde::de::IgnoredAny>();
    loop {
        // The stream skips leading whitespace itself; find the document start the same way.
        let start = stream.byte_offset()
            + data[stream.byte_offset()..]
                .iter()
                .take_while(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
                .count();
        match stream.next() {
            None => return Ok(documents),
            Some(Err(error)) => {
                return Err(DeaggregationError::InvalidJson {
                    index: documents.len(),
                    reason: error.to_string(),
                });
            }
            Some(Ok(_)) => {
                if documents.len() == SUB_RECORDS_MAX {
                    return Err(DeaggregationError::TooManySubRecords {
                        max: SUB_RECORDS_MAX,
                    });
                }
                documents.push(Bytes::copy_from_slice(&data[start..stream.byte_offset()]));
            }
        }
    }
}

/// Splits `data` at every occurrence of `delimiter`. Empty pieces (a trailing delimiter, two
/// delimiters in a row) are not sub-records.
///
/// # Errors
/// [`DeaggregationError::EmptyDelimiter`]; [`DeaggregationError::TooManySubRecords`] past
/// [`SUB_RECORDS_MAX`].
pub fn split_delimited(data: &[u8], delimiter: &[u8]) -> Result<Vec<Bytes>, DeaggregationError> {
    if delimiter.is_empty() {
        return Err(DeaggregationError::EmptyDelimiter);
    }
    let mut pieces = Vec::new();
    let mut push = |piece: &[u8]| {
        if piece.is_empty() {
            return Ok(());
        }
        if pieces.len() == SUB_RECORDS_MAX {
            return Err(DeaggregationError::TooManySubRecords {
                max: SUB_RECORDS_MAX,
            });
        }
        pieces.push(Bytes::copy_from_slice(piece));
        Ok(())
    };
    let mut start = 0;
    let mut position = 0;
    while position + delimiter.len() <= data.len() {
        if data[position..].starts_with(delimiter) {
            push(&data[start..position])?;
            position += delimiter.len();
            start = position;
        } else {
            position += 1;
        }
    }
    push(&data[start..])?;
    Ok(pieces)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Independent protobuf encoder: written from the wire-format spec, sharing nothing with
    /// the decoder above.
    mod encode {
        pub fn varint(out: &mut Vec<u8>, mut value: u64) {
            while value >= 0x80 {
                out.push((value as u8) | 0x80);
                value >>= 7;
            }
            out.push(value as u8);
        }
        pub fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
            varint(out, (field << 3) | wire_type);
        }
        pub fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
            key(out, field, 2);
            varint(out, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        pub fn varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
            key(out, field, 0);
            varint(out, value);
        }
    }

    struct TestRecord<'a> {
        partition_key_index: Option<u64>,
        explicit_hash_key_index: Option<u64>,
        data: Option<&'a [u8]>,
        extra: Vec<u8>,
    }

    fn record(pk: u64, ehk: Option<u64>, data: &[u8]) -> TestRecord<'_> {
        TestRecord {
            partition_key_index: Some(pk),
            explicit_hash_key_index: ehk,
            data: Some(data),
            extra: Vec::new(),
        }
    }

    fn protobuf(keys: &[&str], hash_keys: &[&str], records: &[TestRecord<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for key in keys {
            encode::bytes_field(&mut out, 1, key.as_bytes());
        }
        for key in hash_keys {
            encode::bytes_field(&mut out, 2, key.as_bytes());
        }
        for record in records {
            let mut message = Vec::new();
            if let Some(index) = record.partition_key_index {
                encode::varint_field(&mut message, 1, index);
            }
            if let Some(index) = record.explicit_hash_key_index {
                encode::varint_field(&mut message, 2, index);
            }
            if let Some(data) = record.data {
                encode::bytes_field(&mut message, 3, data);
            }
            message.extend_from_slice(&record.extra);
            encode::bytes_field(&mut out, 3, &message);
        }
        out
    }

    fn aggregate(protobuf: &[u8]) -> Vec<u8> {
        let mut out = vec![0xF3, 0x89, 0x9A, 0xC2];
        out.extend_from_slice(protobuf);
        out.extend_from_slice(&Md5::digest(protobuf));
        out
    }

    #[test]
    fn kpl_round_trip_keeps_order_keys_and_data() {
        let big = vec![7u8; 300]; // length needs a two-byte varint
        let records = [
            record(0, None, b"first"),
            record(1, Some(0), b""),
            record(0, Some(0), &big),
        ];
        let data = aggregate(&protobuf(
            &["pk-a", "pk-b"],
            &["340282366920938463463374607431768211455"],
            &records,
        ));
        assert!(is_kpl_aggregated(&data));
        let out = deaggregate_kpl(&data).unwrap();
        assert_eq!(
            out,
            vec![
                KplRecord {
                    partition_key: "pk-a".into(),
                    explicit_hash_key: None,
                    data: Bytes::from_static(b"first")
                },
                KplRecord {
                    partition_key: "pk-b".into(),
                    explicit_hash_key: Some("340282366920938463463374607431768211455".into()),
                    data: Bytes::new(),
                },
                KplRecord {
                    partition_key: "pk-a".into(),
                    explicit_hash_key: Some("340282366920938463463374607431768211455".into()),
                    data: Bytes::from(big.clone()),
                },
            ]
        );
    }

    #[test]
    fn kpl_with_no_records_yields_nothing() {
        let data = aggregate(&protobuf(&["pk"], &[], &[]));
        assert_eq!(deaggregate_kpl(&data).unwrap(), vec![]);
    }

    #[test]
    fn kpl_corrupt_digest_is_reported_as_mismatch() {
        let mut data = aggregate(&protobuf(&["pk"], &[], &[record(0, None, b"x")]));
        let last = data.len() - 1;
        data[last] ^= 0x01;
        assert!(!is_kpl_aggregated(&data));
        assert_eq!(
            deaggregate_kpl(&data),
            Err(DeaggregationError::DigestMismatch)
        );
    }

    #[test]
    fn kpl_changed_payload_is_reported_as_mismatch() {
        let mut data = aggregate(&protobuf(&["pk"], &[], &[record(0, None, b"abc")]));
        data[6] ^= 0x20;
        assert_eq!(
            deaggregate_kpl(&data),
            Err(DeaggregationError::DigestMismatch)
        );
    }

    #[test]
    fn plain_records_are_not_aggregated() {
        for data in [
            &b""[..],
            b"{\"a\":1}",
            &[0xF3, 0x89, 0x9A, 0xC2],
            &[
                0xF3, 0x89, 0x9A, 0xC3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ] {
            assert!(!is_kpl_aggregated(data));
            assert_eq!(
                deaggregate_kpl(data),
                Err(DeaggregationError::NotAggregated)
            );
        }
    }

    #[test]
    fn kpl_truncated_protobuf_with_valid_digest_is_malformed() {
        let full = protobuf(&["pk"], &[], &[record(0, None, b"hello world")]);
        for cut in 1..full.len() {
            let data = aggregate(&full[..cut]);
            match deaggregate_kpl(&data) {
                Err(DeaggregationError::Malformed { .. }) => {}
                // Cutting exactly after the key table leaves a valid message without records.
                Ok(records) => assert!(records.is_empty(), "cut at {cut}"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn kpl_skips_unknown_fields_of_every_supported_wire_type() {
        let mut unknown = Vec::new();
        encode::varint_field(&mut unknown, 9, u64::MAX); // varint, ten bytes
        encode::key(&mut unknown, 10, 1);
        unknown.extend_from_slice(&[1; 8]); // fixed64
        encode::bytes_field(&mut unknown, 11, b"ignored"); // length-delimited
        encode::key(&mut unknown, 12, 5);
        unknown.extend_from_slice(&[2; 4]); // fixed32

        let mut tag = Vec::new();
        encode::bytes_field(&mut tag, 1, b"key");
        let mut with_tag = record(0, None, b"payload");
        with_tag.extra = unknown.clone();
        encode::bytes_field(&mut with_tag.extra, 4, &tag); // tags, ignored

        let mut message = unknown.clone();
        message.extend_from_slice(&protobuf(&["pk"], &[], &[with_tag]));
        message.extend_from_slice(&unknown);
        let out = deaggregate_kpl(&aggregate(&message)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, Bytes::from_static(b"payload"));
        assert_eq!(out[0].partition_key, "pk");
    }

    #[test]
    fn kpl_group_wire_type_is_malformed() {
        let mut message = protobuf(&["pk"], &[], &[record(0, None, b"x")]);
        encode::key(&mut message, 7, 3);
        assert!(matches!(
            deaggregate_kpl(&aggregate(&message)),
            Err(DeaggregationError::Malformed {
                reason: "unsupported wire type",
                ..
            })
        ));
    }

    #[test]
    fn kpl_index_out_of_range_names_the_table() {
        let data = aggregate(&protobuf(
            &["pk"],
            &[],
            &[record(0, None, b"a"), record(1, None, b"b")],
        ));
        assert_eq!(
            deaggregate_kpl(&data),
            Err(DeaggregationError::IndexOutOfRange {
                record: 1,
                table: "partition_key_table",
                index: 1,
                len: 1
            })
        );
        let data = aggregate(&protobuf(&["pk"], &["1"], &[record(0, Some(5), b"a")]));
        assert_eq!(
            deaggregate_kpl(&data),
            Err(DeaggregationError::IndexOutOfRange {
                record: 0,
                table: "explicit_hash_key_table",
                index: 5,
                len: 1
            })
        );
        let data = aggregate(&protobuf(&["pk"], &[], &[record(u64::MAX, None, b"a")]));
        assert!(matches!(
            deaggregate_kpl(&data),
            Err(DeaggregationError::IndexOutOfRange { .. })
        ));
    }

    #[test]
    fn kpl_missing_required_fields_are_reported() {
        let no_data = TestRecord {
            partition_key_index: Some(0),
            explicit_hash_key_index: None,
            data: None,
            extra: Vec::new(),
        };
        let data = aggregate(&protobuf(&["pk"], &[], &[no_data]));
        assert_eq!(
            deaggregate_kpl(&data),
            Err(DeaggregationError::MissingField {
                record: 0,
                field: "data"
            })
        );
        let no_key = TestRecord {
            partition_key_index: None,
            explicit_hash_key_index: None,
            data: Some(b"x"),
            extra: Vec::new(),
        };
        let data = aggregate(&protobuf(&["pk"], &[], &[no_key]));
        assert_eq!(
            deaggregate_kpl(&data),
            Err(DeaggregationError::MissingField {
                record: 0,
                field: "partition_key_index"
            })
        );
    }

    #[test]
    fn kpl_huge_length_prefix_fails_without_allocating() {
        let mut message = Vec::new();
        encode::key(&mut message, 3, 2);
        encode::varint(&mut message, u64::MAX);
        assert!(matches!(
            deaggregate_kpl(&aggregate(&message)),
            Err(DeaggregationError::Malformed { .. })
        ));
    }

    #[test]
    fn kpl_overlong_varint_is_malformed() {
        let mut message = Vec::new();
        encode::key(&mut message, 9, 0);
        message.extend_from_slice(&[0xFF; 10]);
        message.push(0x01);
        assert!(matches!(
            deaggregate_kpl(&aggregate(&message)),
            Err(DeaggregationError::Malformed { .. })
        ));
    }

    #[test]
    fn kpl_non_utf8_partition_key_is_malformed() {
        let mut message = Vec::new();
        encode::bytes_field(&mut message, 1, &[0xFF, 0xFE]);
        assert!(matches!(
            deaggregate_kpl(&aggregate(&message)),
            Err(DeaggregationError::Malformed {
                reason: "string field is not UTF-8",
                ..
            })
        ));
    }

    #[test]
    fn kpl_decoder_never_panics_on_arbitrary_protobufs() {
        // Deterministic pseudo-random bytes behind a valid digest exercise every decode path.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = deaggregate_kpl(&aggregate(&bytes));
        }
    }

    fn strings(pieces: &[Bytes]) -> Vec<&str> {
        pieces
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn split_json_separates_concatenated_documents_and_drops_whitespace() {
        let data = b"{\"a\":1}{\"a\":2}\n{\"b\": [1, 2]}\r\n\t {\"c\":\"}{\"}  \n";
        let out = split_json(data).unwrap();
        assert_eq!(
            strings(&out),
            vec![
                "{\"a\":1}",
                "{\"a\":2}",
                "{\"b\": [1, 2]}",
                "{\"c\":\"}{\"}"
            ]
        );
        for piece in &out {
            serde_json::from_slice::<serde_json::Value>(piece).unwrap();
        }
    }

    #[test]
    fn split_json_accepts_scalars_and_empty_input() {
        assert_eq!(
            strings(&split_json(b" 1 \"x\" [true] null").unwrap()),
            vec!["1", "\"x\"", "[true]", "null"]
        );
        assert!(split_json(b"").unwrap().is_empty());
        assert!(split_json(b" \n ").unwrap().is_empty());
    }

    #[test]
    fn split_json_rejects_malformed_documents() {
        assert!(matches!(
            split_json(b"{\"a\":1}{\"a\":"),
            Err(DeaggregationError::InvalidJson { index: 1, .. })
        ));
        assert!(matches!(
            split_json(b"{\"a\":1} garbage"),
            Err(DeaggregationError::InvalidJson { index: 1, .. })
        ));
        assert!(matches!(
            split_json(b"}"),
            Err(DeaggregationError::InvalidJson { index: 0, .. })
        ));
    }

    #[test]
    fn split_json_caps_sub_records() {
        let exactly = "{}".repeat(SUB_RECORDS_MAX);
        assert_eq!(
            split_json(exactly.as_bytes()).unwrap().len(),
            SUB_RECORDS_MAX
        );
        let over = "{}".repeat(SUB_RECORDS_MAX + 1);
        assert_eq!(
            split_json(over.as_bytes()),
            Err(DeaggregationError::TooManySubRecords {
                max: SUB_RECORDS_MAX
            })
        );
    }

    #[test]
    fn split_delimited_splits_on_multi_byte_delimiters() {
        assert_eq!(
            strings(&split_delimited(b"a\nbb\nccc\n", b"\n").unwrap()),
            vec!["a", "bb", "ccc"]
        );
        assert_eq!(
            strings(&split_delimited(b"a||b|c||||d", b"||").unwrap()),
            vec!["a", "b|c", "d"]
        );
        assert_eq!(
            strings(&split_delimited(b"no delimiter", b"\n").unwrap()),
            vec!["no delimiter"]
        );
        assert!(split_delimited(b"", b"\n").unwrap().is_empty());
        assert_eq!(
            split_delimited(b"a", b""),
            Err(DeaggregationError::EmptyDelimiter)
        );
    }

    #[test]
    fn split_delimited_caps_sub_records() {
        let exactly = "x,".repeat(SUB_RECORDS_MAX);
        assert_eq!(
            split_delimited(exactly.as_bytes(), b",").unwrap().len(),
            SUB_RECORDS_MAX
        );
        let over = "x,".repeat(SUB_RECORDS_MAX + 1);
        assert_eq!(
            split_delimited(over.as_bytes(), b","),
            Err(DeaggregationError::TooManySubRecords {
                max: SUB_RECORDS_MAX
            })
        );
    }
}
