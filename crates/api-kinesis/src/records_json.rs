//! GetRecords' awsJson1.1 body and SubscribeToShard's event payload, written by hand from
//! the records as stored.
//!
//! Why not serde_json over the model: it writes every string through its escape scan, and a
//! record's `Data` is base64, which never needs escaping. On a 1 KiB read-back that scan was
//! 27 % of the server's CPU, the intermediate base64 `String` per record another copy, and
//! the doubling growth of the output buffer a multi-megabyte reallocation per page
//! (BENCHMARKS.md, "What bounds the misses"); building the model's two `String`s per record
//! (sequence number, partition key) and freeing them was another ~15 % after that. Here
//! `Data` is base64-encoded straight into an output buffer sized up front, each sequence
//! number is written as digits straight into it, and strings with nothing to escape
//! (sequence numbers, nearly every partition key) are copied as they are; any other string,
//! timestamps, numbers and child shards go through serde_json, so escaping and number
//! formatting are serde_json's own. The output is byte for byte what `serde_json::to_vec`
//! makes of the model output of the same records (`into_output`, `into_event`; pinned by
//! the tests below).
//!
//! Output buffers are reused (`BufferPool`): a fresh 14 MB page buffer is fresh memory the
//! kernel zero-fills one 4 KiB fault at a time, and those faults were a sixth of the
//! server's CPU on a 1 KiB read-back (BENCHMARKS.md, round 4).

use std::sync::Mutex;

use bytes::Bytes;
use serde::Serialize;

use millstream_streams::{PageRecord, PageRecords, partition_key_text};

use crate::convert;
use crate::model::{ChildShard, GetRecordsOutput, Record, SubscribeToShardEvent};

/// GetRecords' result before it is encoded, the records as stored: the server writes it
/// straight (`encode_page`, `records_cbor::encode_page`); `into_output` is the model shape
/// those encoders are pinned to.
#[derive(Debug, Clone)]
pub struct GetRecordsPage {
    pub records: PageRecords,
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: i64,
    pub child_shards: Option<Vec<ChildShard>>,
}

impl GetRecordsPage {
    pub fn into_output(self) -> GetRecordsOutput {
        GetRecordsOutput {
            records: Some(model_records(self.records)),
            next_shard_iterator: self.next_shard_iterator,
            millis_behind_latest: Some(self.millis_behind_latest),
            child_shards: self.child_shards,
        }
    }
}

/// A SubscribeToShardEvent before it is encoded: records as stored, like `GetRecordsPage`,
/// and written the same way (`encode_event`, `records_cbor::encode_event`).
#[derive(Debug, Clone)]
pub struct ShardEventPage {
    pub records: PageRecords,
    pub continuation_sequence_number: Option<String>,
    pub millis_behind_latest: i64,
    pub child_shards: Option<Vec<ChildShard>>,
}

impl ShardEventPage {
    pub fn into_event(self) -> SubscribeToShardEvent {
        SubscribeToShardEvent {
            records: Some(model_records(self.records)),
            continuation_sequence_number: self.continuation_sequence_number,
            millis_behind_latest: Some(self.millis_behind_latest),
            child_shards: self.child_shards,
        }
    }
}

fn model_records(records: PageRecords) -> Vec<Record> {
    records
        .into_outs()
        .into_iter()
        .map(convert::record)
        .collect()
}

/// What GetRecords' output and a SubscribeToShardEvent have in common, in member order:
/// `Records`, one optional string naming where to go on (`position_member`),
/// `MillisBehindLatest`, optional `ChildShards`.
pub(crate) struct RecordsBody<'a> {
    pub records: &'a PageRecords,
    pub position_member: &'static str,
    pub position: &'a Option<String>,
    pub millis_behind_latest: i64,
    pub child_shards: &'a Option<Vec<ChildShard>>,
}

impl GetRecordsPage {
    pub(crate) fn body(&self) -> RecordsBody<'_> {
        RecordsBody {
            records: &self.records,
            position_member: "NextShardIterator",
            position: &self.next_shard_iterator,
            millis_behind_latest: self.millis_behind_latest,
            child_shards: &self.child_shards,
        }
    }
}

impl ShardEventPage {
    pub(crate) fn body(&self) -> RecordsBody<'_> {
        RecordsBody {
            records: &self.records,
            position_member: "ContinuationSequenceNumber",
            position: &self.continuation_sequence_number,
            millis_behind_latest: self.millis_behind_latest,
            child_shards: &self.child_shards,
        }
    }
}

/// Bytes of a record's JSON besides its data, sequence number and partition key: member
/// names, quotes, separators, a timestamp and an encryption type, rounded up.
const RECORD_OVERHEAD: usize = 160;
/// Bytes of the body besides its records, without child shards, rounded up.
const BODY_OVERHEAD: usize = 512;

/// Buffers kept for reuse, at most this many...
const POOLED_BUFFERS_MAX: usize = 4;
/// ...of at most this capacity each (a full 10 MB page of 1 KiB records needs ~14 MB), so
/// an idle server holds at most 64 MiB of them.
const POOLED_CAPACITY_MAX: usize = 16 << 20;
/// Smaller buffers are cheap to allocate: neither taken from the pool nor kept in it.
const POOLED_CAPACITY_MIN: usize = 1 << 20;

/// Output buffers of finished responses, handed back when the response body is dropped.
pub(crate) static BUFFERS: BufferPool = BufferPool {
    free: Mutex::new(Vec::new()),
};

pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// An empty buffer with room for `capacity` bytes, reusing the smallest pooled one that
    /// is large enough (a small page never takes the buffer a big one needs).
    pub(crate) fn take(&self, capacity: usize) -> Vec<u8> {
        if capacity < POOLED_CAPACITY_MIN {
            return Vec::with_capacity(capacity);
        }
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            (0..free.len())
                .filter(|&i| free[i].capacity() >= capacity)
                .min_by_key(|&i| free[i].capacity())
                .map(|i| free.swap_remove(i))
        };
        reused.unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() < POOLED_CAPACITY_MIN || buffer.capacity() > POOLED_CAPACITY_MAX {
            return;
        }
        buffer.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < POOLED_BUFFERS_MAX {
            free.push(buffer);
        }
    }
}

/// A response body that returns its buffer to the pool once the server has sent it.
pub(crate) struct PooledBody {
    buffer: Vec<u8>,
    pool: &'static BufferPool,
}

impl PooledBody {
    pub(crate) fn into_bytes(buffer: Vec<u8>, pool: &'static BufferPool) -> Bytes {
        Bytes::from_owner(PooledBody { buffer, pool })
    }
}

impl AsRef<[u8]> for PooledBody {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

/// The body `serde_json::to_vec(&page.into_output())` would make, byte for byte, without a
/// `String` per sequence number and partition key in between.
pub fn encode_page(page: &GetRecordsPage) -> Bytes {
    encode_body(&page.body())
}

/// The payload `serde_json::to_vec(&event.into_event())` would make, byte for byte.
pub fn encode_event(event: &ShardEventPage) -> Bytes {
    encode_body(&event.body())
}

fn encode_body(body: &RecordsBody<'_>) -> Bytes {
    let mut out = BUFFERS.take(body_capacity_of(body));
    let mut object = ObjectWriter::open(&mut out);
    object.key("Records");
    object.out.push(b'[');
    for (index, record) in body.records.iter().enumerate() {
        if index > 0 {
            object.out.push(b',');
        }
        write_page_record(object.out, record);
    }
    object.out.push(b']');
    object.string_field(body.position_member, body.position);
    object.value_field("MillisBehindLatest", &Some(body.millis_behind_latest));
    object.value_field("ChildShards", body.child_shards);
    object.close();
    PooledBody::into_bytes(out, &BUFFERS)
}

/// Enough for the JSON of `body` without child shards.
pub(crate) fn body_capacity_of(body: &RecordsBody<'_>) -> usize {
    body.capacity(RECORD_OVERHEAD, BODY_OVERHEAD, base64_len)
}

impl RecordsBody<'_> {
    /// Output bytes for these records when each costs `record_overhead` besides its data
    /// (`data_len` of it once encoded), sequence digits and partition key.
    pub(crate) fn capacity(
        &self,
        record_overhead: usize,
        body_overhead: usize,
        data_len: impl Fn(usize) -> usize,
    ) -> usize {
        let records: usize = self
            .records
            .iter()
            .map(|record| {
                record_overhead
                    + SEQUENCE_NUMBER_LEN
                    + data_len(record.data().len())
                    + record.partition_key().len()
            })
            .sum();
        body_overhead + records + self.position.as_ref().map_or(0, String::len)
    }
}

/// Digits of our sequence numbers (186-bit values with a top nibble of 2).
const SEQUENCE_NUMBER_LEN: usize = 56;

/// What `write_record` writes for `convert::record` of the same record.
fn write_page_record(out: &mut Vec<u8>, record: PageRecord<'_>) {
    let mut object = ObjectWriter::open(out);
    object.key("SequenceNumber");
    object.out.push(b'"');
    record.sequence_parts().append_to(object.out);
    object.out.push(b'"');
    object.value_field(
        "ApproximateArrivalTimestamp",
        &convert::timestamp(record.arrival_ms()),
    );
    object.key("Data");
    write_base64_string(object.out, record.data());
    match std::str::from_utf8(record.partition_key()) {
        Ok(key) => object.str_field("PartitionKey", key),
        Err(_) => object.str_field("PartitionKey", &partition_key_text(record.partition_key())),
    }
    if record.encrypted() {
        object.str_field("EncryptionType", "KMS");
    }
    object.close();
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// `"<base64>"`, encoded straight into `out`'s spare capacity (SIMD, no zero-fill first).
fn write_base64_string(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'"');
    base64_simd::STANDARD.encode_append(data, out);
    out.push(b'"');
}

/// Writes one JSON object's members in order, skipping absent ones as the generated
/// shapes' `skip_serializing_if = "Option::is_none"` does.
struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    /// `"name":`, after a comma unless it is the first member. Names are ASCII
    /// identifiers from the model: nothing to escape.
    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn value_field<T: Serialize>(&mut self, name: &str, value: &Option<T>) {
        if let Some(value) = value {
            self.key(name);
            serde_json::to_writer(&mut *self.out, value)
                .expect("model values have string keys and finite numbers");
        }
    }

    /// A string member; copied as it is when serde_json would escape nothing in it
    /// (control characters, `"` and `\\` are all it escapes).
    fn string_field(&mut self, name: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.str_field(name, value);
        }
    }

    fn str_field(&mut self, name: &str, value: &str) {
        // No early exit, so the scan compiles to vector compares.
        let needs_escape = value.bytes().fold(false, |found, b| {
            found | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if needs_escape {
            self.value_field(name, &Some(value));
            return;
        }
        self.key(name);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// Pages of stored records for the encoders' tests.
#[cfg(test)]
pub(crate) mod test_pages {
    use bytes::Bytes;
    use millstream_streams::{FLAG_ENCRYPTED, PageRecords, StoredRecord};

    use super::{GetRecordsPage, ShardEventPage};
    use crate::model::{ChildShard, HashKeyRange};

    /// Key, data, storage sequence, arrival, encrypted.
    pub type StoredFields = (Vec<u8>, Vec<u8>, u64, u64, bool);

    pub fn stored_page(created_ms: u64, index: u32, records: Vec<StoredFields>) -> PageRecords {
        let records = records
            .into_iter()
            .map(
                |(key, data, sequence, arrival_ms, encrypted)| StoredRecord {
                    sequence,
                    arrival_ms,
                    key: Bytes::from(key),
                    data: Bytes::from(data),
                    flags: if encrypted { FLAG_ENCRYPTED } else { 0 },
                },
            )
            .collect();
        PageRecords::new(created_ms, index, records)
    }

    /// The same records as a SubscribeToShardEvent, the iterator's place taken by a
    /// continuation sequence number.
    pub fn event_of(page: &GetRecordsPage) -> ShardEventPage {
        ShardEventPage {
            records: page.records.clone(),
            continuation_sequence_number: page.next_shard_iterator.clone(),
            millis_behind_latest: page.millis_behind_latest,
            child_shards: page.child_shards.clone(),
        }
    }

    /// What a closed shard's last page names: one child of shard 0.
    pub fn child_shards() -> Vec<ChildShard> {
        vec![ChildShard {
            shard_id: Some("shardId-000000000002".into()),
            parent_shards: Some(vec!["shardId-000000000000".into()]),
            hash_key_range: Some(HashKeyRange {
                starting_hash_key: Some("0".into()),
                ending_hash_key: Some("340282366920938463463374607431768211455".into()),
            }),
        }]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use test_pages::{child_shards, event_of, stored_page};

    fn serde_body(output: &GetRecordsOutput) -> Vec<u8> {
        serde_json::to_vec(output).expect("serialisable")
    }

    #[test]
    fn an_empty_page_and_a_heartbeat_event_read_as_aws_writes_them() {
        let page = GetRecordsPage {
            records: stored_page(1_764_000_000_000, 0, Vec::new()),
            next_shard_iterator: Some("AAAA+/=".into()),
            millis_behind_latest: 0,
            child_shards: None,
        };
        assert_eq!(
            &encode_page(&page)[..],
            br#"{"Records":[],"NextShardIterator":"AAAA+/=","MillisBehindLatest":0}"#
        );
        let event = ShardEventPage {
            records: page.records,
            continuation_sequence_number: Some(
                "49590338271490256608559692538361571095921575989136588898".into(),
            ),
            millis_behind_latest: 12,
            child_shards: None,
        };
        assert_eq!(
            &encode_event(&event)[..],
            &br#"{"Records":[],"ContinuationSequenceNumber":"49590338271490256608559692538361571095921575989136588898","MillisBehindLatest":12}"#[..]
        );
    }

    #[test]
    fn a_sent_page_buffer_is_reused_and_small_ones_are_not_kept() {
        let pool: &'static BufferPool = Box::leak(Box::new(BufferPool {
            free: Mutex::new(Vec::new()),
        }));
        let mut buffer = pool.take(2 << 20);
        buffer.extend_from_slice(b"page");
        let address = buffer.as_ptr();
        let body = PooledBody::into_bytes(buffer, pool);
        assert_eq!(&body[..], b"page");
        drop(body);
        let small = pool.take(1000);
        assert_ne!(small.as_ptr(), address, "a small page allocates its own");
        let again = pool.take(1 << 20);
        assert_eq!(again.as_ptr(), address, "the sent page's buffer came back");
        assert!(again.is_empty());
        // Of two that fit, the smaller one is taken.
        let larger = PooledBody::into_bytes(Vec::with_capacity(8 << 20), pool);
        drop(larger);
        drop(PooledBody::into_bytes(again, pool));
        let smaller = pool.take(1 << 20);
        assert_eq!(smaller.as_ptr(), address);
        pool.free.lock().expect("lock").clear();
        drop(PooledBody::into_bytes(vec![0; 100], pool));
        drop(PooledBody::into_bytes(
            Vec::with_capacity(POOLED_CAPACITY_MAX + 1),
            pool,
        ));
        assert!(pool.free.lock().expect("lock").is_empty());
        for _ in 0..POOLED_BUFFERS_MAX + 2 {
            drop(PooledBody::into_bytes(pool.take(2 << 20), pool));
        }
        assert_eq!(
            pool.free.lock().expect("lock").len(),
            1,
            "one buffer, reused"
        );
        let held: Vec<Bytes> = (0..POOLED_BUFFERS_MAX + 2)
            .map(|_| PooledBody::into_bytes(pool.take(2 << 20), pool))
            .collect();
        drop(held);
        assert_eq!(pool.free.lock().expect("lock").len(), POOLED_BUFFERS_MAX);
    }

    proptest! {
        #[test]
        fn a_page_encodes_as_serde_encodes_its_model_output(
            records in proptest::collection::vec(
                (
                    prop_oneof![
                        "\\PC{0,40}|[\\x00-\\x1f\"\\\\]{0,8}".prop_map(String::into_bytes),
                        proptest::collection::vec(any::<u8>(), 0..12),
                    ],
                    proptest::collection::vec(any::<u8>(), 0..300),
                    0u64..(1 << 62),
                    0u64..4_102_444_800_000,
                    any::<bool>(),
                ),
                0..20,
            ),
            created_ms in 0u64..4_102_444_800_000,
            index in any::<u32>(),
            iterator in proptest::option::of("[A-Za-z0-9+/=]{0,80}"),
            behind in any::<i64>(),
            children in any::<bool>(),
        ) {
            let page = GetRecordsPage {
                records: stored_page(created_ms, index, records),
                next_shard_iterator: iterator,
                millis_behind_latest: behind,
                child_shards: children.then(child_shards),
            };
            let event = event_of(&page);
            let fast = encode_page(&page);
            prop_assert_eq!(&fast[..], &serde_body(&page.into_output())[..]);
            let fast = encode_event(&event);
            let serde = serde_json::to_vec(&event.into_event()).expect("serialisable");
            prop_assert_eq!(&fast[..], &serde[..]);
        }
    }

    #[test]
    fn a_full_page_of_large_records_fits_its_capacity() {
        let records = (0..10)
            .map(|i| {
                (
                    "k".repeat(256).into_bytes(),
                    vec![i as u8; 1 << 20],
                    i,
                    1_764_150_000_749,
                    true,
                )
            })
            .collect();
        let page = GetRecordsPage {
            records: stored_page(1_764_150_000_000, 7, records),
            next_shard_iterator: Some("A".repeat(300)),
            millis_behind_latest: 0,
            child_shards: None,
        };
        let body = encode_page(&page);
        assert!(
            body.len() <= body_capacity_of(&page.body()),
            "no reallocation needed"
        );
        assert_eq!(body, serde_body(&page.into_output()));
    }
}
