//! Byte layouts of everything the store persists, with their encoders and decoders.
//!
//! The diagrams live in the crate docs (`lib.rs`); this module is the single place that
//! knows the offsets. Every integer is big-endian. Decoders take untrusted bytes (a file
//! after a crash, or bit rot) and must never panic: they return `DecodeError` and the
//! caller turns it into `StorageError::Corrupt` with the file and offset, or, at the tail
//! of a file that was being written, into a truncation.
//!
//! Persisted: never reorder or reuse a field; add a new format version instead.

use bytes::Bytes;

use crate::{AppendRecord, LogId, StoredRecord};

/// Opens every file the store writes: journal, segment and index files.
pub(crate) const MAGIC: [u8; 8] = *b"MILLSTRM";
/// Bumped on any incompatible change of layout or meaning; written into every new file.
/// Version 2 changed the meaning of a journal's checkpoint unit (see the crate docs,
/// "Journal set"), not any layout, so version-1 files are still read. Version 3 added the
/// placed-frames unit kind; version-1 and -2 files hold none and are read unchanged.
pub(crate) const FORMAT_VERSION: u32 = 3;
/// Oldest version this build reads. Version-1 journals get version-1 recovery rules.
pub(crate) const FORMAT_VERSION_MIN: u32 = 1;

/// File kinds stored in the header. Persisted ordinals: never reuse.
pub(crate) const KIND_JOURNAL: u32 = 1;
pub(crate) const KIND_SEGMENT: u32 = 2;
pub(crate) const KIND_INDEX: u32 = 3;

/// `| magic 8 | version u32 | kind u32 | id u64 | base_sequence u64 | arrival_floor_ms u64 |
///  crc32c u32 | reserved u32 |`
pub(crate) const FILE_HEADER_LEN: usize = 48;
const _: () = assert!(FILE_HEADER_LEN == 8 + 4 + 4 + 8 + 8 + 8 + 4 + 4);
/// The header CRC covers every byte before it.
const FILE_HEADER_CRC_AT: usize = 40;

/// `| body_len u32 | crc32c u32 | log_id u64 | first_sequence u64 | record_count u32 |
///  arrival_ms u64 |` followed by `body_len` bytes of records.
pub(crate) const FRAME_HEADER_LEN: usize = 36;
const _: () = assert!(FRAME_HEADER_LEN == 4 + 4 + 8 + 8 + 4 + 8);
/// `| flags u8 | key_len u32 | data_len u32 |` then key, then data.
pub(crate) const RECORD_HEADER_LEN: usize = 9;
const _: () = assert!(RECORD_HEADER_LEN == 1 + 4 + 4);
/// Upper bound on one frame body. A decoder refuses anything larger, so a corrupt length
/// can never make recovery allocate gigabytes. It is well above `APPEND_BYTES_MAX`.
pub(crate) const FRAME_BODY_MAX: usize = 256 << 20;
const _: () = assert!(FRAME_BODY_MAX >= crate::APPEND_BYTES_MAX + crate::writer::BATCH_BYTES_MAX);

/// `| payload_len u32 | crc32c u32 | commit_no u64 | kind u32 |` then the payload.
pub(crate) const UNIT_HEADER_LEN: usize = 20;
const _: () = assert!(UNIT_HEADER_LEN == 4 + 4 + 8 + 4);
/// Journal unit kinds. Persisted ordinals: never reuse.
pub(crate) const UNIT_FRAMES: u32 = 1;
pub(crate) const UNIT_CHECKPOINT: u32 = 2;
/// Entries tagged `PLACEMENT_*`: whole frames, or headers of frames written straight to
/// their segment and synced with the unit (format version 3).
pub(crate) const UNIT_PLACED: u32 = 3;
/// Entry tags of a `UNIT_PLACED` payload. Persisted: never reuse.
pub(crate) const PLACEMENT_INLINE: u8 = 0;
pub(crate) const PLACEMENT_SEGMENT: u8 = 1;
/// A unit is one group commit; bounded so a corrupt length is caught early.
pub(crate) const UNIT_PAYLOAD_MAX: usize = 1 << 30;
/// Checkpoint payload: `| entry_count u32 |` then entries `| log_id u64 | next_sequence u64 |`.
pub(crate) const CHECKPOINT_ENTRY_LEN: usize = 16;
const _: () = assert!(CHECKPOINT_ENTRY_LEN == 8 + 8);

/// Index entry: `| sequence u64 | arrival_ms u64 | file_offset u64 |`, big-endian so keys sort
/// numerically.
pub(crate) const INDEX_ENTRY_LEN: usize = 24;
const _: () = assert!(INDEX_ENTRY_LEN == 8 + 8 + 8);
/// Index file: header, then `| entry_count u64 | segment_len u64 | end_sequence u64 |
/// max_arrival_ms u64 |`, the entries, and a crc32c u32 over meta and entries.
pub(crate) const INDEX_META_LEN: usize = 32;
const _: () = assert!(INDEX_META_LEN == 8 * 4);

/// Why bytes failed to decode. Callers attach the file and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Fewer bytes than the layout needs: at the end of a file this is a torn write.
    Short { needed: usize, available: usize },
    /// The bytes are all there but wrong (checksum, magic, bounds).
    Invalid(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Short { needed, available } => {
                write!(f, "truncated: needed {needed} bytes, found {available}")
            }
            DecodeError::Invalid(reason) => f.write_str(reason),
        }
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

fn need(bytes: &[u8], needed: usize) -> Result<(), DecodeError> {
    if bytes.len() < needed {
        return Err(DecodeError::Short {
            needed,
            available: bytes.len(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// File header
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub kind: u32,
    /// Journal: generation. Segment and index: the log id.
    pub id: u64,
    /// Segment and index: sequence of the first record the segment may hold.
    pub base_sequence: u64,
    /// Segment: newest arrival of the log when the segment was started, so arrival times
    /// stay monotonic across a restart even after retention deleted every record.
    pub arrival_floor_ms: u64,
}

pub(crate) fn encode_file_header(header: &FileHeader) -> [u8; FILE_HEADER_LEN] {
    encode_file_header_version(header, FORMAT_VERSION)
}

/// `version` is `FORMAT_VERSION` except in tests that build an older directory.
pub(crate) fn encode_file_header_version(
    header: &FileHeader,
    version: u32,
) -> [u8; FILE_HEADER_LEN] {
    let mut out = [0u8; FILE_HEADER_LEN];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&version.to_be_bytes());
    out[12..16].copy_from_slice(&header.kind.to_be_bytes());
    out[16..24].copy_from_slice(&header.id.to_be_bytes());
    out[24..32].copy_from_slice(&header.base_sequence.to_be_bytes());
    out[32..40].copy_from_slice(&header.arrival_floor_ms.to_be_bytes());
    let crc = crc32c::crc32c(&out[..FILE_HEADER_CRC_AT]);
    out[40..44].copy_from_slice(&crc.to_be_bytes());
    out
}

pub(crate) fn decode_file_header(bytes: &[u8]) -> Result<FileHeader, DecodeError> {
    decode_file_header_version(bytes).map(|(header, _)| header)
}

/// The header and the format version the file was written with.
pub(crate) fn decode_file_header_version(bytes: &[u8]) -> Result<(FileHeader, u32), DecodeError> {
    need(bytes, FILE_HEADER_LEN)?;
    if bytes[0..8] != MAGIC {
        return Err(DecodeError::Invalid("bad magic".into()));
    }
    let crc = be_u32(bytes, 40);
    if crc != crc32c::crc32c(&bytes[..FILE_HEADER_CRC_AT]) {
        return Err(DecodeError::Invalid("file header checksum mismatch".into()));
    }
    let version = be_u32(bytes, 8);
    if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version) {
        return Err(DecodeError::Invalid(format!(
            "unsupported format version {version} (this build reads \
             {FORMAT_VERSION_MIN} to {FORMAT_VERSION})"
        )));
    }
    let header = FileHeader {
        kind: be_u32(bytes, 12),
        id: be_u64(bytes, 16),
        base_sequence: be_u64(bytes, 24),
        arrival_floor_ms: be_u64(bytes, 32),
    };
    Ok((header, version))
}

// ---------------------------------------------------------------------------------------
// Batch frame
// ---------------------------------------------------------------------------------------

/// The fixed part of a batch frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub body_len: u32,
    pub crc: u32,
    pub log_id: LogId,
    pub first_sequence: u64,
    pub record_count: u32,
    pub arrival_ms: u64,
}

impl FrameHeader {
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.body_len as usize
    }
    pub fn end_sequence(&self) -> u64 {
        self.first_sequence + u64::from(self.record_count)
    }
}

/// Encoded size of one record inside a frame body.
pub(crate) fn record_encoded_len(record: &AppendRecord) -> usize {
    RECORD_HEADER_LEN + record.key.len() + record.data.len()
}

/// Encodes one frame for `records` (which must be non-empty and fit the u32 length fields;
/// the append path enforces `APPEND_BYTES_MAX` long before).
pub(crate) fn encode_frame<'a>(
    log_id: LogId,
    first_sequence: u64,
    arrival_ms: u64,
    records: impl Iterator<Item = &'a AppendRecord> + Clone,
) -> Vec<u8> {
    let body_len: usize = records.clone().map(record_encoded_len).sum();
    let count = records.clone().count();
    assert!(count > 0, "a frame holds at least one record");
    assert!(
        body_len <= FRAME_BODY_MAX,
        "frame body {body_len} exceeds FRAME_BODY_MAX"
    );
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body_len);
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&[0u8; 4]); // crc, filled in below
    out.extend_from_slice(&log_id.to_be_bytes());
    out.extend_from_slice(&first_sequence.to_be_bytes());
    out.extend_from_slice(&(count as u32).to_be_bytes());
    out.extend_from_slice(&arrival_ms.to_be_bytes());
    for record in records {
        out.push(record.flags);
        out.extend_from_slice(&(record.key.len() as u32).to_be_bytes());
        out.extend_from_slice(&(record.data.len() as u32).to_be_bytes());
        out.extend_from_slice(&record.key);
        out.extend_from_slice(&record.data);
    }
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes and bounds-checks the fixed part; does not look at the body.
pub(crate) fn decode_frame_header(bytes: &[u8]) -> Result<FrameHeader, DecodeError> {
    need(bytes, FRAME_HEADER_LEN)?;
    let header = FrameHeader {
        body_len: be_u32(bytes, 0),
        crc: be_u32(bytes, 4),
        log_id: be_u64(bytes, 8),
        first_sequence: be_u64(bytes, 16),
        record_count: be_u32(bytes, 24),
        arrival_ms: be_u64(bytes, 28),
    };
    if header.body_len as usize > FRAME_BODY_MAX {
        return Err(DecodeError::Invalid(format!(
            "frame body length {} too large",
            header.body_len
        )));
    }
    if header.record_count == 0 {
        return Err(DecodeError::Invalid("frame with zero records".into()));
    }
    // Each record needs at least its header, so a count beyond this is garbage.
    if header.record_count as usize > header.body_len as usize / RECORD_HEADER_LEN {
        return Err(DecodeError::Invalid(
            "frame record count exceeds body".into(),
        ));
    }
    if header
        .first_sequence
        .checked_add(u64::from(header.record_count))
        .is_none()
    {
        return Err(DecodeError::Invalid("frame sequence overflows".into()));
    }
    Ok(header)
}

/// Verifies the checksum of a whole frame (`bytes` starts at the frame and holds at least
/// `frame_len` bytes).
pub(crate) fn verify_frame(header: &FrameHeader, bytes: &[u8]) -> Result<(), DecodeError> {
    need(bytes, header.frame_len())?;
    if crc32c::crc32c(&bytes[8..header.frame_len()]) != header.crc {
        return Err(DecodeError::Invalid("frame checksum mismatch".into()));
    }
    Ok(())
}

/// Decodes the records of a verified frame. `frame` holds exactly one frame; the records
/// share its buffer (no copy).
pub(crate) fn decode_frame_records(
    header: &FrameHeader,
    frame: &Bytes,
) -> Result<Vec<StoredRecord>, DecodeError> {
    need(frame, header.frame_len())?;
    let mut records = Vec::with_capacity(header.record_count as usize);
    let mut at = FRAME_HEADER_LEN;
    let end = header.frame_len();
    for i in 0..u64::from(header.record_count) {
        if end - at < RECORD_HEADER_LEN {
            return Err(DecodeError::Invalid("record header runs past frame".into()));
        }
        let flags = frame[at];
        let key_len = be_u32(frame, at + 1) as usize;
        let data_len = be_u32(frame, at + 5) as usize;
        at += RECORD_HEADER_LEN;
        if end - at < key_len || end - at - key_len < data_len {
            return Err(DecodeError::Invalid("record runs past frame".into()));
        }
        let key = frame.slice(at..at + key_len);
        at += key_len;
        let data = frame.slice(at..at + data_len);
        at += data_len;
        records.push(StoredRecord {
            sequence: header.first_sequence + i,
            arrival_ms: header.arrival_ms,
            key,
            data,
            flags,
        });
    }
    if at != end {
        return Err(DecodeError::Invalid(
            "trailing bytes after last record".into(),
        ));
    }
    Ok(records)
}

/// Full decode of one frame at the start of `bytes`: header, checksum, records.
#[cfg(test)]
pub(crate) fn decode_frame(bytes: &Bytes) -> Result<(FrameHeader, Vec<StoredRecord>), DecodeError> {
    let header = decode_frame_header(bytes)?;
    verify_frame(&header, bytes)?;
    let frame = bytes.slice(..header.frame_len());
    let records = decode_frame_records(&header, &frame)?;
    Ok((header, records))
}

// ---------------------------------------------------------------------------------------
// Journal unit
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnitHeader {
    pub payload_len: u32,
    pub crc: u32,
    pub commit_no: u64,
    pub kind: u32,
}

impl UnitHeader {
    pub fn unit_len(&self) -> usize {
        UNIT_HEADER_LEN + self.payload_len as usize
    }
}

/// Starts a unit buffer; append the payload, then call `finish_unit`.
pub(crate) fn begin_unit(buffer: &mut Vec<u8>) {
    buffer.clear();
    buffer.extend_from_slice(&[0u8; UNIT_HEADER_LEN]);
}

/// Fills in the header of a unit started with `begin_unit`.
pub(crate) fn finish_unit(buffer: &mut [u8], commit_no: u64, kind: u32) {
    let payload_len = buffer.len() - UNIT_HEADER_LEN;
    assert!(payload_len <= UNIT_PAYLOAD_MAX, "journal unit too large");
    buffer[0..4].copy_from_slice(&(payload_len as u32).to_be_bytes());
    buffer[8..16].copy_from_slice(&commit_no.to_be_bytes());
    buffer[16..20].copy_from_slice(&kind.to_be_bytes());
    let crc = crc32c::crc32c(&buffer[8..]);
    buffer[4..8].copy_from_slice(&crc.to_be_bytes());
}

pub(crate) fn decode_unit_header(bytes: &[u8]) -> Result<UnitHeader, DecodeError> {
    need(bytes, UNIT_HEADER_LEN)?;
    let header = UnitHeader {
        payload_len: be_u32(bytes, 0),
        crc: be_u32(bytes, 4),
        commit_no: be_u64(bytes, 8),
        kind: be_u32(bytes, 16),
    };
    if header.payload_len as usize > UNIT_PAYLOAD_MAX {
        return Err(DecodeError::Invalid("journal unit too large".into()));
    }
    if ![UNIT_FRAMES, UNIT_CHECKPOINT, UNIT_PLACED].contains(&header.kind) {
        return Err(DecodeError::Invalid(format!(
            "unknown journal unit kind {}",
            header.kind
        )));
    }
    Ok(header)
}

/// `bytes` holds the whole unit (header included).
pub(crate) fn verify_unit(header: &UnitHeader, bytes: &[u8]) -> Result<(), DecodeError> {
    need(bytes, header.unit_len())?;
    if crc32c::crc32c(&bytes[8..header.unit_len()]) != header.crc {
        return Err(DecodeError::Invalid(
            "journal unit checksum mismatch".into(),
        ));
    }
    Ok(())
}

/// One frame of a frames unit, as recovery replays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitEntry<'a> {
    /// The whole frame is in the unit.
    Inline(FrameHeader, &'a [u8]),
    /// Only the header is: the frame was written to its log's active segment and synced
    /// together with the unit, so a durable unit implies a durable frame there.
    InSegment(FrameHeader),
}

/// Appends a whole frame to a `UNIT_PLACED` payload.
pub(crate) fn push_inline_entry(buffer: &mut Vec<u8>, frame: &[u8]) {
    buffer.push(PLACEMENT_INLINE);
    buffer.extend_from_slice(frame);
}

/// Appends the header of a frame that went straight to its segment.
pub(crate) fn push_segment_entry(buffer: &mut Vec<u8>, frame: &[u8]) {
    buffer.push(PLACEMENT_SEGMENT);
    buffer.extend_from_slice(&frame[..FRAME_HEADER_LEN]);
}

/// The entries of a checksum-valid frames unit (`UNIT_FRAMES` or `UNIT_PLACED`); inline
/// frames are checksum-verified. The error carries the entry's offset in `payload`.
pub(crate) fn decode_unit_entries(
    kind: u32,
    payload: &[u8],
) -> Result<Vec<UnitEntry<'_>>, (usize, DecodeError)> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let placement = if kind == UNIT_PLACED {
            let tag = payload[at];
            at += 1;
            tag
        } else {
            PLACEMENT_INLINE
        };
        let rest = &payload[at..];
        let header = decode_frame_header(rest).map_err(|e| (at, e))?;
        match placement {
            PLACEMENT_INLINE => {
                verify_frame(&header, rest).map_err(|e| (at, e))?;
                entries.push(UnitEntry::Inline(header, &rest[..header.frame_len()]));
                at += header.frame_len();
            }
            PLACEMENT_SEGMENT => {
                entries.push(UnitEntry::InSegment(header));
                at += FRAME_HEADER_LEN;
            }
            other => {
                return Err((
                    at - 1,
                    DecodeError::Invalid(format!("unknown frame placement {other}")),
                ));
            }
        }
    }
    Ok(entries)
}

pub(crate) fn encode_checkpoint(buffer: &mut Vec<u8>, entries: &[(LogId, u64)]) {
    buffer.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (log, next) in entries {
        buffer.extend_from_slice(&log.to_be_bytes());
        buffer.extend_from_slice(&next.to_be_bytes());
    }
}

pub(crate) fn decode_checkpoint(payload: &[u8]) -> Result<Vec<(LogId, u64)>, DecodeError> {
    need(payload, 4)?;
    let count = be_u32(payload, 0) as usize;
    let expected = count
        .checked_mul(CHECKPOINT_ENTRY_LEN)
        .and_then(|n| n.checked_add(4))
        .ok_or_else(|| DecodeError::Invalid("checkpoint entry count overflows".into()))?;
    if payload.len() != expected {
        return Err(DecodeError::Invalid(
            "checkpoint length does not match its count".into(),
        ));
    }
    Ok((0..count)
        .map(|i| {
            let at = 4 + i * CHECKPOINT_ENTRY_LEN;
            (be_u64(payload, at), be_u64(payload, at + 8))
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Sparse index
// ---------------------------------------------------------------------------------------

/// One sparse index point: the frame at `file_offset` starts with `sequence` and arrived at
/// `arrival_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub sequence: u64,
    pub arrival_ms: u64,
    pub file_offset: u64,
}

pub(crate) fn encode_index_entry(entry: &IndexEntry) -> [u8; INDEX_ENTRY_LEN] {
    let mut out = [0u8; INDEX_ENTRY_LEN];
    out[0..8].copy_from_slice(&entry.sequence.to_be_bytes());
    out[8..16].copy_from_slice(&entry.arrival_ms.to_be_bytes());
    out[16..24].copy_from_slice(&entry.file_offset.to_be_bytes());
    out
}

pub(crate) fn decode_index_entry(bytes: &[u8]) -> Result<IndexEntry, DecodeError> {
    need(bytes, INDEX_ENTRY_LEN)?;
    Ok(IndexEntry {
        sequence: be_u64(bytes, 0),
        arrival_ms: be_u64(bytes, 8),
        file_offset: be_u64(bytes, 16),
    })
}

/// What an index file says about its (sealed) segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexFile {
    pub segment_len: u64,
    pub end_sequence: u64,
    pub max_arrival_ms: u64,
    pub entries: Vec<IndexEntry>,
}

/// Encodes the index file body (everything after the file header).
pub(crate) fn encode_index_body(index: &IndexFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_META_LEN + index.entries.len() * INDEX_ENTRY_LEN + 4);
    out.extend_from_slice(&(index.entries.len() as u64).to_be_bytes());
    out.extend_from_slice(&index.segment_len.to_be_bytes());
    out.extend_from_slice(&index.end_sequence.to_be_bytes());
    out.extend_from_slice(&index.max_arrival_ms.to_be_bytes());
    for entry in &index.entries {
        out.extend_from_slice(&encode_index_entry(entry));
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

pub(crate) fn decode_index_body(bytes: &[u8]) -> Result<IndexFile, DecodeError> {
    need(bytes, INDEX_META_LEN + 4)?;
    let count = be_u64(bytes, 0);
    let expected = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(INDEX_ENTRY_LEN))
        .and_then(|n| n.checked_add(INDEX_META_LEN + 4))
        .ok_or_else(|| DecodeError::Invalid("index entry count overflows".into()))?;
    if bytes.len() != expected {
        return Err(DecodeError::Invalid(
            "index length does not match its count".into(),
        ));
    }
    let crc = be_u32(bytes, expected - 4);
    if crc != crc32c::crc32c(&bytes[..expected - 4]) {
        return Err(DecodeError::Invalid("index checksum mismatch".into()));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        entries.push(decode_index_entry(
            &bytes[INDEX_META_LEN + i * INDEX_ENTRY_LEN..],
        )?);
    }
    Ok(IndexFile {
        segment_len: be_u64(bytes, 8),
        end_sequence: be_u64(bytes, 16),
        max_arrival_ms: be_u64(bytes, 24),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn arb_record() -> impl Strategy<Value = AppendRecord> {
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<u8>(),
        )
            .prop_map(|(key, data, flags)| AppendRecord {
                key: Bytes::from(key),
                data: Bytes::from(data),
                flags,
            })
    }

    proptest! {
        #[test]
        fn frame_round_trips(
            log in any::<u64>(),
            first in 0u64..u64::MAX / 2,
            arrival in any::<u64>(),
            records in proptest::collection::vec(arb_record(), 1..20),
        ) {
            let encoded = Bytes::from(encode_frame(log, first, arrival, records.iter()));
            let (header, decoded) = decode_frame(&encoded).unwrap();
            prop_assert_eq!(header.log_id, log);
            prop_assert_eq!(header.first_sequence, first);
            prop_assert_eq!(header.arrival_ms, arrival);
            prop_assert_eq!(header.frame_len(), encoded.len());
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (got, want)) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(got.sequence, first + i as u64);
                prop_assert_eq!(&got.key, &want.key);
                prop_assert_eq!(&got.data, &want.data);
                prop_assert_eq!(got.flags, want.flags);
            }
        }

        #[test]
        fn frame_bit_flip_is_detected(
            records in proptest::collection::vec(arb_record(), 1..5),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut encoded = encode_frame(7, 3, 99, records.iter());
            let at = flip.index(encoded.len());
            encoded[at] ^= 1 << bit;
            prop_assert!(decode_frame(&Bytes::from(encoded)).is_err());
        }

        #[test]
        fn frame_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let bytes = Bytes::from(bytes);
            let _ = decode_frame(&bytes);
            if let Ok(header) = decode_frame_header(&bytes) {
                let _ = decode_frame_records(&header, &bytes);
            }
        }

        #[test]
        fn file_header_round_trips(
            kind in any::<u32>(), id in any::<u64>(), base in any::<u64>(), floor in any::<u64>()
        ) {
            let header = FileHeader { kind, id, base_sequence: base, arrival_floor_ms: floor };
            prop_assert_eq!(decode_file_header(&encode_file_header(&header)).unwrap(), header);
        }

        #[test]
        fn file_header_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_file_header(&bytes);
        }

        #[test]
        fn unit_round_trips(
            commit in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut buffer = Vec::new();
            begin_unit(&mut buffer);
            buffer.extend_from_slice(&payload);
            finish_unit(&mut buffer, commit, UNIT_FRAMES);
            let header = decode_unit_header(&buffer).unwrap();
            verify_unit(&header, &buffer).unwrap();
            prop_assert_eq!(header.commit_no, commit);
            prop_assert_eq!(&buffer[UNIT_HEADER_LEN..], &payload[..]);
        }

        #[test]
        fn placed_unit_entries_round_trip(
            placements in proptest::collection::vec((any::<bool>(), arb_record()), 1..8),
        ) {
            let frames: Vec<Vec<u8>> = placements
                .iter()
                .enumerate()
                .map(|(i, (_, record))| encode_frame(i as u64, 10 * i as u64, 7, std::iter::once(record)))
                .collect();
            let mut payload = Vec::new();
            for ((in_segment, _), frame) in placements.iter().zip(&frames) {
                if *in_segment {
                    push_segment_entry(&mut payload, frame);
                } else {
                    push_inline_entry(&mut payload, frame);
                }
            }
            let entries = decode_unit_entries(UNIT_PLACED, &payload).unwrap();
            prop_assert_eq!(entries.len(), frames.len());
            for (entry, ((in_segment, _), frame)) in entries.iter().zip(placements.iter().zip(&frames)) {
                let expected = decode_frame_header(frame).unwrap();
                match entry {
                    UnitEntry::Inline(header, bytes) => {
                        prop_assert!(!in_segment);
                        prop_assert_eq!(*header, expected);
                        prop_assert_eq!(*bytes, &frame[..]);
                    }
                    UnitEntry::InSegment(header) => {
                        prop_assert!(in_segment);
                        prop_assert_eq!(*header, expected);
                    }
                }
            }
        }

        #[test]
        fn unit_entry_decoder_never_panics(
            kind in prop_oneof![Just(UNIT_FRAMES), Just(UNIT_PLACED)],
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let _ = decode_unit_entries(kind, &bytes);
        }

        #[test]
        fn unit_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(header) = decode_unit_header(&bytes) {
                let _ = verify_unit(&header, &bytes);
            }
        }

        #[test]
        fn checkpoint_round_trips(entries in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..50)) {
            let mut buffer = Vec::new();
            encode_checkpoint(&mut buffer, &entries);
            prop_assert_eq!(decode_checkpoint(&buffer).unwrap(), entries);
        }

        #[test]
        fn checkpoint_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_checkpoint(&bytes);
        }

        #[test]
        fn index_entry_round_trips(sequence in any::<u64>(), arrival in any::<u64>(), offset in any::<u64>()) {
            let entry = IndexEntry { sequence, arrival_ms: arrival, file_offset: offset };
            prop_assert_eq!(decode_index_entry(&encode_index_entry(&entry)).unwrap(), entry);
        }

        #[test]
        fn index_entries_sort_like_their_sequences(a in any::<u64>(), b in any::<u64>()) {
            let ea = encode_index_entry(&IndexEntry { sequence: a, arrival_ms: 0, file_offset: 0 });
            let eb = encode_index_entry(&IndexEntry { sequence: b, arrival_ms: 0, file_offset: 0 });
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
        }

        #[test]
        fn index_file_round_trips(
            entries in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 0..30),
            len in any::<u64>(), end in any::<u64>(), max in any::<u64>(),
        ) {
            let index = IndexFile {
                segment_len: len,
                end_sequence: end,
                max_arrival_ms: max,
                entries: entries
                    .into_iter()
                    .map(|(s, a, o)| IndexEntry { sequence: s, arrival_ms: a, file_offset: o })
                    .collect(),
            };
            prop_assert_eq!(decode_index_body(&encode_index_body(&index)).unwrap(), index);
        }

        #[test]
        fn index_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_index_body(&bytes);
        }
    }
}
