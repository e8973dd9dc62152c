//! The data plane: PutRecord(s), GetShardIterator, GetRecords.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use millstream_storage::{AppendRecord, LogId, StorageError, StoredRecord};
use millstream_types::hash_key::{hash_partition_key, parse_hash_key};
use millstream_types::limits::{GET_RECORDS_BYTES_MAX, GET_RECORDS_LIMIT_MAX, ITERATOR_TTL};
use millstream_types::sequence::COUNTER_MAX;
use millstream_types::{SequenceParts, ShardId};

use crate::meta::ShardMeta;
use crate::tip::{ConnectionPolls, TipWaiting};
use crate::token::{IteratorPosition, KIND_ITERATOR, KIND_ITERATOR_AT_TIP};
use crate::{Result, StreamRef, StreamView, Streams, StreamsError, format_java_date, now_ms};

/// Record flag: written while server-side encryption was on.
/// A stored record's flag: written to a stream with server-side encryption on.
pub const FLAG_ENCRYPTED: u8 = 1;
/// How often a put retries routing when it raced with a reshard.
const RESHARD_RETRIES: usize = 200;

#[derive(Debug, Clone)]
pub struct PutEntry {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutResult {
    Stored {
        shard_id: ShardId,
        sequence_number: String,
    },
    /// Per-entry failure, reported inside a successful PutRecords.
    Failed {
        error_code: &'static str,
        error_message: String,
    },
}

#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub results: Vec<PutResult>,
    pub encrypted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IteratorType {
    AtSequenceNumber,
    AfterSequenceNumber,
    TrimHorizon,
    Latest,
    AtTimestamp,
}

impl IteratorType {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "AT_SEQUENCE_NUMBER" => Self::AtSequenceNumber,
            "AFTER_SEQUENCE_NUMBER" => Self::AfterSequenceNumber,
            "TRIM_HORIZON" => Self::TrimHorizon,
            "LATEST" => Self::Latest,
            "AT_TIMESTAMP" => Self::AtTimestamp,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtSequenceNumber => "AT_SEQUENCE_NUMBER",
            Self::AfterSequenceNumber => "AFTER_SEQUENCE_NUMBER",
            Self::TrimHorizon => "TRIM_HORIZON",
            Self::Latest => "LATEST",
            Self::AtTimestamp => "AT_TIMESTAMP",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecordOut {
    pub sequence_number: String,
    pub arrival_ms: u64,
    pub data: Bytes,
    pub partition_key: String,
    pub encrypted: bool,
}

/// The records of one GetRecords page as the store returned them. Turning them into
/// `RecordOut`s builds two strings per record; a response encoder can instead write each
/// record's sequence number and partition key straight into its output (`iter`).
#[derive(Debug, Clone)]
pub struct PageRecords {
    shard_created_ms: u64,
    shard_index: u32,
    records: Vec<StoredRecord>,
}

impl PageRecords {
    /// Records of the shard with this creation time and index, in sequence order.
    pub fn new(shard_created_ms: u64, shard_index: u32, records: Vec<StoredRecord>) -> Self {
        Self {
            shard_created_ms,
            shard_index,
            records,
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of record data on the page (for metrics).
    pub fn data_bytes(&self) -> u64 {
        self.records.iter().map(|r| r.data.len() as u64).sum()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = PageRecord<'_>> {
        self.records
            .iter()
            .map(|record| PageRecord { page: self, record })
    }

    pub fn into_outs(self) -> Vec<RecordOut> {
        let Self {
            shard_created_ms,
            shard_index,
            records,
        } = self;
        records
            .into_iter()
            .map(|record| to_record_out(shard_created_ms, shard_index, record))
            .collect()
    }
}

/// One record of a `PageRecords`, with what `RecordOut` would hold, unconverted.
#[derive(Debug, Clone, Copy)]
pub struct PageRecord<'a> {
    page: &'a PageRecords,
    record: &'a StoredRecord,
}

impl PageRecord<'_> {
    pub fn sequence_parts(&self) -> SequenceParts {
        sequence_parts(
            self.page.shard_created_ms,
            self.page.shard_index,
            self.record,
        )
    }

    pub fn arrival_ms(&self) -> u64 {
        self.record.arrival_ms
    }

    /// The partition key as stored: UTF-8 (see `partition_key_text`).
    pub fn partition_key(&self) -> &[u8] {
        &self.record.key
    }

    pub fn data(&self) -> &Bytes {
        &self.record.data
    }

    pub fn encrypted(&self) -> bool {
        self.record.flags & FLAG_ENCRYPTED != 0
    }
}

#[derive(Debug, Clone)]
pub struct ChildShardOut {
    pub shard_id: ShardId,
    pub parent_shards: Vec<ShardId>,
    pub start_hash: u128,
    pub end_hash: u128,
}

#[derive(Debug, Clone)]
pub struct GetRecordsOutcome {
    /// The stream snapshot the read used (for metrics and shard-level settings).
    pub view: std::sync::Arc<StreamView>,
    pub shard_id: ShardId,
    pub records: PageRecords,
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: u64,
    pub child_shards: Vec<ChildShardOut>,
    /// How long the request waited at the shard's tip before this answer (module `tip`).
    pub waited_at_tip: Option<Duration>,
}

pub fn sequence_number(shard: &ShardMeta, storage_sequence: u64, arrival_ms: u64) -> String {
    SequenceParts {
        creation_secs: shard.created_ms / 1000,
        shard_index: shard.index,
        counter: storage_sequence + 1,
        arrival_secs: arrival_ms / 1000,
    }
    .encode()
}

/// The parts `sequence_number` encodes, for a stored record of the shard with this creation
/// time and index.
fn sequence_parts(shard_created_ms: u64, shard_index: u32, record: &StoredRecord) -> SequenceParts {
    SequenceParts {
        creation_secs: shard_created_ms / 1000,
        shard_index,
        counter: record.sequence + 1,
        arrival_secs: record.arrival_ms / 1000,
    }
}

/// A stored partition key as text. Keys arrive as JSON or CBOR strings, so they are UTF-8;
/// the lossy conversion is only a guard, because its chunk walk cost ~5 % of the server's
/// CPU on a 1 KiB read-back where the validating fast path costs next to nothing.
pub fn partition_key_text(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(key).into_owned(),
    }
}

pub fn starting_sequence_number(shard: &ShardMeta) -> String {
    SequenceParts {
        creation_secs: shard.created_ms / 1000,
        shard_index: shard.index,
        counter: 0,
        arrival_secs: shard.created_ms / 1000,
    }
    .encode()
}

/// Compares above every record of the shard: the largest counter, stamped with the close time.
pub fn ending_sequence_number(shard: &ShardMeta) -> Option<String> {
    shard.closed.map(|closed| {
        SequenceParts {
            creation_secs: shard.created_ms / 1000,
            shard_index: shard.index,
            counter: COUNTER_MAX,
            arrival_secs: closed.closed_ms / 1000,
        }
        .encode()
    })
}

pub(crate) fn child_shards(view: &StreamView, parent: u32) -> Vec<ChildShardOut> {
    view.meta
        .shards
        .iter()
        .filter(|s| s.parent == Some(parent) || s.adjacent_parent == Some(parent))
        .map(|s| ChildShardOut {
            shard_id: ShardId(s.index),
            parent_shards: s
                .parent
                .iter()
                .chain(s.adjacent_parent.iter())
                .map(|p| ShardId(*p))
                .collect(),
            start_hash: s.start_hash,
            end_hash: s.end_hash,
        })
        .collect()
}

/// A shard id as AWS reads one: `ShardId::parse`, and at most 2147483647 (AWS's shard numbers
/// are 32-bit signed; a larger one is not an id at all).
pub(crate) fn parse_shard_id(text: &str) -> Option<ShardId> {
    ShardId::parse(text).filter(|id| id.0 <= i32::MAX as u32)
}

impl Streams {
    /// GetShardIterator's answer for a shard it cannot find: AWS names it in its canonical
    /// form when the id parses as one (`shardId-5` is `shardId-000000000005`), and echoes the
    /// text otherwise.
    fn missing_shard(&self, parsed: Option<ShardId>, text: &str, stream: &str) -> StreamsError {
        match parsed {
            Some(id) => self.shard_not_found(&id.to_string(), stream),
            None => self.could_not_find_shard(text, stream),
        }
    }

    /// AWS's answer for a shard id that names no shard it could look up: malformed ones
    /// (echoed as given) in every operation, and unknown ones in split and merge.
    pub(crate) fn could_not_find_shard(&self, shard: &str, stream: &str) -> StreamsError {
        StreamsError::NotFound(format!(
            "Could not find shard {shard} in stream {stream} under account {}.",
            self.account()
        ))
    }

    fn shard_not_found(&self, shard: &str, stream: &str) -> StreamsError {
        StreamsError::NotFound(format!(
            "Shard {shard} in stream {stream} under account {} does not exist",
            self.account()
        ))
    }

    /// Writes entries, each to the open shard owning its hash key. Entries for the same shard
    /// keep their request order; shards are written concurrently.
    ///
    /// # Errors
    /// Whole-request failures (unknown stream, bad explicit hash key, oversize record).
    /// Storage failures of one shard fail only its entries.
    pub async fn put_records(
        &self,
        target: &StreamRef,
        entries: Vec<PutEntry>,
    ) -> Result<PutOutcome> {
        let mut view = self.data_view(target)?;
        let max_record_bytes = view.meta.max_record_size_kib as usize * 1024;
        let mut hashes = Vec::with_capacity(entries.len());
        for entry in &entries {
            let size = entry.partition_key.len() + entry.data.len();
            if size > max_record_bytes {
                return Err(StreamsError::InvalidArgument(format!(
                    "Record size {size} bytes exceeds the maximum record size of {} KiB of stream {} under account {}.",
                    view.meta.max_record_size_kib,
                    view.meta.name,
                    self.account()
                )));
            }
            let hash = match &entry.explicit_hash_key {
                Some(text) => parse_hash_key(text).ok_or_else(|| {
                    StreamsError::InvalidArgument(format!(
                        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
                    ))
                })?,
                None => hash_partition_key(&entry.partition_key),
            };
            hashes.push(hash);
        }
        let mut results: Vec<Option<PutResult>> = vec![None; entries.len()];
        let mut pending: Vec<usize> = (0..entries.len()).collect();
        let mut encrypted = false;
        for attempt in 0..=RESHARD_RETRIES {
            encrypted = view.meta.encryption_key.is_some();
            let flags = if encrypted { FLAG_ENCRYPTED } else { 0 };
            // Group by shard, preserving request order within each group; entries over
            // their shard's quota (when emulated) fail alone, as AWS reports them.
            let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
            // Where each shard's group is in `groups`: a 500-record request can span
            // hundreds of shards, and a scan of the groups per record was quadratic.
            let mut group_of: HashMap<u32, usize> =
                HashMap::with_capacity(pending.len().min(view.meta.shards.len()));
            for &i in &pending {
                let routed = view.route(hashes[i]);
                let size = entries[i].partition_key.len() + entries[i].data.len();
                if !self.inner.throttle.admit_write(routed.log_id, size) {
                    results[i] = Some(PutResult::Failed {
                        error_code: "ProvisionedThroughputExceededException",
                        error_message: format!(
                            "Rate exceeded for shard {} in stream {} under account {}.",
                            ShardId(routed.index),
                            view.meta.name,
                            self.account()
                        ),
                    });
                    continue;
                }
                let shard = routed.index;
                match group_of.entry(shard) {
                    Entry::Occupied(at) => groups[*at.get()].1.push(i),
                    Entry::Vacant(at) => {
                        at.insert(groups.len());
                        groups.push((shard, vec![i]));
                    }
                }
            }
            let appends = groups
                .iter()
                .map(|(shard, members)| {
                    let log = view.meta.shards[*shard as usize].log_id;
                    let records = members
                        .iter()
                        .map(|&i| AppendRecord {
                            key: Bytes::copy_from_slice(entries[i].partition_key.as_bytes()),
                            data: entries[i].data.clone(),
                            flags,
                        })
                        .collect();
                    (log, records)
                })
                .collect();
            let outcomes = self.inner.store.append_many(appends).await;
            let mut resealed = Vec::new();
            for ((shard_index, members), outcome) in groups.into_iter().zip(outcomes) {
                let shard = &view.meta.shards[shard_index as usize];
                match outcome {
                    Ok(ack) => {
                        for (offset, &i) in members.iter().enumerate() {
                            results[i] = Some(PutResult::Stored {
                                shard_id: ShardId(shard.index),
                                sequence_number: sequence_number(
                                    shard,
                                    ack.first_sequence + offset as u64,
                                    ack.arrival_ms,
                                ),
                            });
                        }
                    }
                    Err(StorageError::Sealed(_)) => resealed.extend(members),
                    Err(err) => {
                        tracing::error!(error = %err, shard = shard.index, stream = %view.meta.name, "append failed");
                        for &i in &members {
                            results[i] = Some(PutResult::Failed {
                                error_code: "InternalFailure",
                                error_message: "Internal Service Failure".to_string(),
                            });
                        }
                    }
                }
            }
            if resealed.is_empty() {
                break;
            }
            if attempt == RESHARD_RETRIES {
                return Err(StreamsError::InUse(format!(
                    "Stream {} under account {} is being resharded; retry the request.",
                    view.meta.name,
                    self.account()
                )));
            }
            // The shard closed under us: wait for the reshard to publish its new map.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            view = self.data_view(target)?;
            pending = resealed;
        }
        let results = results
            .into_iter()
            .map(|r| r.expect("every entry is stored, failed, or the request errored"))
            .collect();
        Ok(PutOutcome { results, encrypted })
    }

    /// PutRecord: one entry; `sequence_for_ordering` must be a well-formed sequence number
    /// that is not from the future (the new record is greater by construction). Like AWS, it
    /// need not come from this stream: a producer may carry one over a stream's re-creation.
    ///
    /// # Errors
    /// As `put_records`, and `InvalidArgument` for a bad `SequenceNumberForOrdering`.
    pub async fn put_record(
        &self,
        target: &StreamRef,
        entry: PutEntry,
        sequence_for_ordering: Option<&str>,
    ) -> Result<(ShardId, String, bool)> {
        if let Some(ordering) = sequence_for_ordering {
            let view = self.data_view(target)?;
            let valid = SequenceParts::decode(ordering)
                .is_ok_and(|parts| parts.arrival_secs <= now_ms() / 1000 + 1);
            if !valid {
                return Err(StreamsError::InvalidArgument(format!(
                    "ExclusiveMinimumSequenceNumber {ordering} used in PutRecord on stream {} under account {} is invalid.",
                    view.meta.name,
                    self.account()
                )));
            }
        }
        let outcome = self.put_records(target, vec![entry]).await?;
        match outcome.results.into_iter().next() {
            Some(PutResult::Stored {
                shard_id,
                sequence_number,
            }) => Ok((shard_id, sequence_number, outcome.encrypted)),
            Some(PutResult::Failed {
                error_code,
                error_message,
            }) => {
                if error_code == "ProvisionedThroughputExceededException" {
                    Err(StreamsError::ThroughputExceeded(error_message))
                } else {
                    Err(StreamsError::Metadata(error_message))
                }
            }
            None => unreachable!("put_records returns one result per entry"),
        }
    }

    /// The storage position of the oldest record still within retention.
    async fn trim_horizon(&self, view: &StreamView, shard: &ShardMeta) -> Result<u64> {
        let cutoff = now_ms().saturating_sub(view.retention_ms());
        let tail = self.inner.store.tail(shard.log_id)?;
        let at = self
            .inner
            .store
            .sequence_at_time(shard.log_id, cutoff)
            .await?;
        Ok(at.max(tail.first_sequence))
    }

    /// # Errors
    /// `NotFound` for an unknown stream/shard, `InvalidArgument` for inconsistent parameters
    /// or a sequence number from elsewhere.
    pub async fn get_shard_iterator(
        &self,
        target: &StreamRef,
        shard_text: &str,
        kind: IteratorType,
        starting_sequence: Option<&str>,
        timestamp_ms: Option<i64>,
    ) -> Result<String> {
        // AWS reads the shard id before it looks for the stream: an unknown stream is answered
        // as a missing shard.
        let parsed = parse_shard_id(shard_text);
        let view = match self.data_view(target) {
            Ok(view) => view,
            Err(StreamsError::NotFound(message)) => {
                return Err(match self.resolve_name(target) {
                    Ok(name) => self.missing_shard(parsed, shard_text, &name),
                    Err(_) => StreamsError::NotFound(message),
                });
            }
            Err(e) => return Err(e),
        };
        let name = view.meta.name.clone();
        let shard = parsed
            .and_then(|id| view.shard(id))
            .filter(|s| !view.is_expired(s, now_ms()))
            .ok_or_else(|| self.missing_shard(parsed, shard_text, &name))?;
        if !self.inner.throttle.admit_iterator(shard.log_id) {
            return Err(StreamsError::ThroughputExceeded(format!(
                "Rate exceeded for shard {} in stream {} under account {}.",
                ShardId(shard.index),
                name,
                self.account()
            )));
        }
        let position = self
            .start_position(
                &view,
                shard,
                kind,
                starting_sequence,
                timestamp_ms,
                "GetShardIterator",
            )
            .await?;
        Ok(self.seal_iterator(&view, shard.index, position, false))
    }

    /// The storage position an iterator (or a subscription) of `kind` starts at, with AWS's
    /// errors for parameters that do not fit the type.
    pub(crate) async fn start_position(
        &self,
        view: &StreamView,
        shard: &ShardMeta,
        kind: IteratorType,
        starting_sequence: Option<&str>,
        timestamp_ms: Option<i64>,
        operation: &str,
    ) -> Result<u64> {
        let needs_sequence = matches!(
            kind,
            IteratorType::AtSequenceNumber | IteratorType::AfterSequenceNumber
        );
        match (needs_sequence, starting_sequence.is_some(), kind) {
            (true, false, _) => {
                return Err(StreamsError::InvalidArgument(format!(
                    "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {} and no StartingSequenceNumber.",
                    kind.as_str()
                )));
            }
            (false, true, _) => {
                return Err(StreamsError::InvalidArgument(format!(
                    "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {} and also a StartingSequenceNumber.",
                    kind.as_str()
                )));
            }
            _ => {}
        }
        let tail = self.inner.store.tail(shard.log_id)?;
        let end = shard
            .closed
            .map(|c| c.end_position)
            .unwrap_or(tail.next_sequence);
        let position = match kind {
            IteratorType::TrimHorizon => self.trim_horizon(view, shard).await?,
            IteratorType::Latest => end,
            IteratorType::AtTimestamp => {
                let Some(timestamp) = timestamp_ms else {
                    return Err(StreamsError::InvalidArgument(
                        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.".to_string(),
                    ));
                };
                let now = now_ms();
                if timestamp > now as i64 {
                    return Err(StreamsError::InvalidArgument(format!(
                        "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {timestamp}, currentTimestampInMillis: {now}"
                    )));
                }
                let at = self
                    .inner
                    .store
                    .sequence_at_time(shard.log_id, timestamp.max(0) as u64)
                    .await?;
                at.max(self.trim_horizon(view, shard).await?)
            }
            IteratorType::AtSequenceNumber | IteratorType::AfterSequenceNumber => {
                let text = starting_sequence.expect("checked above");
                let counter = self.decode_for_shard(text, view, shard, operation)?;
                let after = kind == IteratorType::AfterSequenceNumber;
                let position = match (counter, after) {
                    (COUNTER_MAX, _) => end,
                    (0, false) => 0,
                    (c, false) => c - 1,
                    (c, true) => c,
                };
                position
                    .min(end)
                    .max(self.trim_horizon(view, shard).await?.min(end))
            }
        };
        Ok(position)
    }

    /// The counter in a sequence number given for `shard`, with AWS's errors for numbers that
    /// are malformed or belong elsewhere.
    pub(crate) fn decode_for_shard(
        &self,
        text: &str,
        view: &StreamView,
        shard: &ShardMeta,
        operation: &str,
    ) -> Result<u64> {
        let invalid = || {
            StreamsError::InvalidArgument(format!(
                "StartingSequenceNumber {text} used in {operation} on shard {} in stream {} under account {} is invalid.",
                ShardId(shard.index),
                view.meta.name,
                self.account()
            ))
        };
        let parts = SequenceParts::decode(text).map_err(|_| invalid())?;
        if parts.shard_index != shard.index {
            return Err(StreamsError::InvalidArgument(format!(
                "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                ShardId(parts.shard_index),
                ShardId(shard.index)
            )));
        }
        if parts.creation_secs != shard.created_ms / 1000 {
            return Err(StreamsError::InvalidArgument(format!(
                "StartingSequenceNumber {text} used in {operation} on shard {} in stream {} under account {} is invalid because it did not come from this stream.",
                ShardId(shard.index),
                view.meta.name,
                self.account()
            )));
        }
        Ok(parts.counter)
    }

    /// `at_tip`: handed out by an answer at the shard's tip (module `tip`).
    pub(crate) fn seal_iterator(
        &self,
        view: &StreamView,
        shard_index: u32,
        position: u64,
        at_tip: bool,
    ) -> String {
        let iterator = IteratorPosition {
            stream: view.meta.name.clone(),
            incarnation: view.meta.incarnation,
            shard_index,
            position,
            issued_ms: now_ms(),
        };
        let kind = if at_tip {
            KIND_ITERATOR_AT_TIP
        } else {
            KIND_ITERATOR
        };
        self.inner.sealer.seal(kind, &iterator.encode())
    }

    /// Reads from the position an iterator names. With `connection` given, a poll repeated
    /// at an open shard's tip waits up to `tip_wait` for the next record (module `tip`).
    ///
    /// # Errors
    /// `InvalidArgument` for a malformed iterator, `ExpiredIterator` after 5 minutes,
    /// `NotFound` when the stream or shard is gone.
    pub async fn get_records(
        &self,
        iterator: &str,
        limit: Option<usize>,
        stream_arn: Option<&str>,
        connection: Option<&ConnectionPolls>,
    ) -> Result<GetRecordsOutcome> {
        // The AWS CLI's `--query ShardIterator` output keeps JSON quotes; AWS accepts them.
        let token = iterator.trim_matches('"');
        let sealer = &self.inner.sealer;
        let (payload, polls_tip) = match sealer.open(KIND_ITERATOR, token) {
            Some(payload) => (Some(payload), false),
            None => (sealer.open(KIND_ITERATOR_AT_TIP, token), true),
        };
        let position = payload
            .and_then(|payload| IteratorPosition::decode(&payload))
            .ok_or_else(|| StreamsError::InvalidArgument("Invalid ShardIterator.".to_string()))?;
        let now = now_ms();
        let ttl = ITERATOR_TTL.as_millis() as u64;
        if now > position.issued_ms + ttl {
            return Err(StreamsError::ExpiredIterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl} milliseconds.",
                format_java_date(position.issued_ms),
                format_java_date(now)
            )));
        }
        let target = StreamRef {
            name: Some(position.stream.clone()),
            arn: stream_arn.map(str::to_string),
        };
        let shard_id = ShardId(position.shard_index);
        let view = self.iterator_view(&target, &position, now)?;
        let log_id = view.shard(shard_id).expect("iterator_view found it").log_id;
        if !self.inner.throttle.admit_read(log_id) {
            return Err(StreamsError::ThroughputExceeded(format!(
                "Rate exceeded for Shard - {shard_id} in stream {} under account {}.",
                view.meta.name,
                self.account()
            )));
        }
        let limit = limit
            .unwrap_or(GET_RECORDS_LIMIT_MAX)
            .min(GET_RECORDS_LIMIT_MAX);
        let page = self
            .read_page(view, shard_id, position.position, limit, now, false)
            .await?;
        let Some(connection) = connection else {
            return Ok(page.outcome);
        };
        let wait = self.inner.config.tip_wait;
        if !(page.found_nothing && page.shard_open)
            || wait.is_zero()
            || !polls_tip
            || connection.walks_shards(log_id)
        {
            connection.answered(log_id, page.found_nothing);
            return Ok(page.outcome);
        }
        let waiting_since = Instant::now();
        self.wait_at_tip(&position.stream, log_id, position.position, wait)
            .await;
        let waited = waiting_since.elapsed();
        // Answered as a request arriving now would be: the stream may have changed meanwhile.
        let now = now_ms();
        let view = self.iterator_view(&target, &position, now)?;
        let page = self
            .read_page(view, shard_id, position.position, limit, now, true)
            .await?;
        connection.answered(log_id, page.found_nothing);
        Ok(GetRecordsOutcome {
            waited_at_tip: Some(waited),
            ..page.outcome
        })
    }

    /// The stream an iterator reads, with AWS's errors when it or the iterator's shard is gone.
    fn iterator_view(
        &self,
        target: &StreamRef,
        position: &IteratorPosition,
        now: u64,
    ) -> Result<Arc<StreamView>> {
        let view = self.data_view(target)?;
        if view.meta.incarnation != position.incarnation {
            return Err(self.stream_not_found(&position.stream));
        }
        let shard_id = ShardId(position.shard_index);
        if view.shard(shard_id).is_none_or(|s| view.is_expired(s, now)) {
            return Err(self.shard_not_found(&shard_id.to_string(), &view.meta.name));
        }
        Ok(view)
    }

    async fn read_page(
        &self,
        view: Arc<StreamView>,
        shard_id: ShardId,
        from: u64,
        limit: usize,
        now: u64,
        waited: bool,
    ) -> Result<Page> {
        let shard = view.shard(shard_id).expect("iterator_view found it");
        let stored = self
            .inner
            .store
            .read(shard.log_id, from, limit, GET_RECORDS_BYTES_MAX)
            .await?;
        let returned_bytes: usize = stored.iter().map(|r| r.key.len() + r.data.len()).sum();
        self.inner
            .throttle
            .charge_read(shard.log_id, returned_bytes);
        let found_nothing = stored.is_empty();
        let cutoff = now.saturating_sub(view.retention_ms());
        let next_position = stored.last().map(|r| r.sequence + 1).unwrap_or(from);
        let records = PageRecords::new(
            shard.created_ms,
            shard.index,
            stored
                .into_iter()
                .filter(|r| r.arrival_ms >= cutoff)
                .collect(),
        );
        let tail = self.inner.store.tail(shard.log_id)?;
        if let Some(closed) = shard.closed
            && next_position >= closed.end_position
            && records.is_empty()
        {
            return Ok(Page {
                found_nothing,
                shard_open: false,
                outcome: GetRecordsOutcome {
                    shard_id,
                    child_shards: child_shards(&view, shard.index),
                    view,
                    records,
                    next_shard_iterator: None,
                    millis_behind_latest: 0,
                    waited_at_tip: None,
                },
            });
        }
        let millis_behind_latest = match records.records.last() {
            Some(last) if next_position < tail.next_sequence => now.saturating_sub(last.arrival_ms),
            _ => 0,
        };
        let shard_open = shard.closed.is_none();
        let at_tip = found_nothing || waited;
        let next_shard_iterator =
            Some(self.seal_iterator(&view, shard.index, next_position, at_tip));
        Ok(Page {
            found_nothing,
            shard_open,
            outcome: GetRecordsOutcome {
                shard_id,
                view,
                records,
                next_shard_iterator,
                millis_behind_latest,
                child_shards: Vec::new(),
                waited_at_tip: None,
            },
        })
    }

    /// Returns once `log` holds a record at `position`, the stream changes (a reshard may
    /// have closed the shard), the server begins to shut down, or `wait` has passed; at once
    /// if the stream or its log went away since the read (the read after reports that).
    async fn wait_at_tip(&self, stream: &str, log: LogId, position: u64, wait: Duration) {
        let (Ok(mut tail), Ok(entry)) = (self.inner.store.watch_tail(log), self.entry(stream))
        else {
            return;
        };
        let mut changes = entry.changes.subscribe();
        drop(entry);
        let mut shutdown = self.inner.shutdown.subscribe();
        let _waiting = TipWaiting::count(&self.inner.tip_waiting);
        tokio::select! {
            // An error: the log was removed with its stream; the second read reports it.
            _ = tail.wait_for(|&next_sequence| next_sequence > position) => {}
            _ = changes.changed() => {}
            _ = shutdown.wait_for(|&shutting_down| shutting_down) => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One GetRecords answer and what decides whether its poll may wait at the tip.
struct Page {
    outcome: GetRecordsOutcome,
    /// The store had no record at the iterator's position (before retention filtering).
    found_nothing: bool,
    shard_open: bool,
}

fn to_record_out(shard_created_ms: u64, shard_index: u32, record: StoredRecord) -> RecordOut {
    RecordOut {
        sequence_number: sequence_parts(shard_created_ms, shard_index, &record).encode(),
        arrival_ms: record.arrival_ms,
        partition_key: partition_key_text(&record.key),
        data: record.data,
        encrypted: record.flags & FLAG_ENCRYPTED != 0,
    }
}
