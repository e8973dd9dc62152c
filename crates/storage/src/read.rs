//! The disk read path: positional reads of segment files on the blocking pool.
//!
//! Readers plan under the log's segment lock (which segment, which offset from the sparse
//! index, how many bytes are valid) and read without it, so a reader never holds up the
//! journal thread for longer than a binary search. Only bytes below the planned length
//! and records below the durable tail are returned: the journal thread may be appending
//! past both concurrently. The durable tail may also be ahead of the segments (the
//! journal acknowledges a group commit the cache holds before copying it, and gathers a
//! log's copies): a segment read stops where the segments end, and `Store::read` takes
//! the rest from the cache.

use std::sync::Arc;

use crate::cache::fits;
use crate::segment::{ChunkReader, HandleCache};
use crate::{LogShared, StorageError, StoredRecord, format};

/// How often a read re-plans after retention deleted the file it planned to read.
const REPLAN_MAX: usize = 8;

struct Plan {
    path: std::path::PathBuf,
    offset: u64,
    len: u64,
    end: u64,
}

fn open(handles: &HandleCache, plan: &Plan) -> Result<Option<Arc<std::fs::File>>, StorageError> {
    match handles.get(&plan.path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(&plan.path, e)),
    }
}

fn corrupt(plan: &Plan, offset: u64, reason: impl std::fmt::Display) -> StorageError {
    StorageError::corrupt(&plan.path, offset, format!("reading segment: {reason}"))
}

pub(crate) fn read_segments(
    shared: &LogShared,
    handles: &HandleCache,
    from: u64,
    until: u64,
    max_records: usize,
    max_bytes: usize,
) -> Result<Vec<StoredRecord>, StorageError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = from;
    let mut replans = 0;
    while cursor < until {
        let plan = {
            let segments = shared.segments.lock();
            if let Some(first) = segments.first_sequence() {
                cursor = cursor.max(first); // retention may have moved on meanwhile
            }
            let Some(i) = segments.find(cursor) else {
                break;
            };
            let segment = &segments.segments[i];
            Plan {
                path: segment.path.clone(),
                offset: segment.locate(cursor),
                len: segment.len,
                end: segment.end,
            }
        };
        let Some(file) = open(handles, &plan)? else {
            replans += 1;
            if replans > REPLAN_MAX {
                break;
            }
            continue;
        };
        let mut reader = ChunkReader::new(&file, plan.len);
        let mut offset = plan.offset;
        while offset < plan.len {
            let (header, frame) = reader
                .frame(offset)
                .map_err(|e| StorageError::io(&plan.path, e))?
                .map_err(|e| corrupt(&plan, offset, e))?;
            offset += header.frame_len() as u64;
            if header.end_sequence() <= cursor {
                continue;
            }
            let records = format::decode_frame_records(&header, &frame)
                .map_err(|e| corrupt(&plan, offset, e))?;
            for record in records {
                if record.sequence < cursor {
                    continue;
                }
                if record.sequence >= until
                    || !fits(out.len(), bytes, &record, max_records, max_bytes)
                {
                    return Ok(out);
                }
                assert_eq!(record.sequence, cursor, "segment records are contiguous");
                bytes += record.key.len() + record.data.len();
                cursor += 1;
                out.push(record);
            }
        }
        if cursor < plan.end.min(until) {
            return Err(corrupt(
                &plan,
                offset,
                format!("segment ended before sequence {cursor}"),
            ));
        }
    }
    Ok(out)
}

/// Where `sequence_at_time` found its answer in the segments.
pub(crate) enum AtTime {
    /// The first record that arrived at or after the time.
    Found(u64),
    /// No record in the segments did; they end (durable and copied) at this sequence. The
    /// journal answers appends before it copies their frames when the cache holds them, so
    /// durable records past this may be in the cache alone.
    After(u64),
}

pub(crate) fn sequence_at_time(
    shared: &LogShared,
    handles: &HandleCache,
    arrival_ms: u64,
) -> Result<AtTime, StorageError> {
    for _ in 0..REPLAN_MAX {
        let durable = *shared.durable.borrow();
        let plan = {
            let segments = shared.segments.lock();
            // Per-segment newest arrival is monotonic along the log: the first segment
            // whose newest arrival reaches the time holds the answer.
            let Some(segment) = segments
                .segments
                .iter()
                .find(|s| s.max_arrival.is_some_and(|a| a >= arrival_ms))
            else {
                let end = segments.segments.last().map_or(durable, |s| s.end);
                return Ok(AtTime::After(end.min(durable)));
            };
            Plan {
                path: segment.path.clone(),
                offset: segment.locate_time(arrival_ms),
                len: segment.len,
                end: segment.end,
            }
        };
        let Some(file) = open(handles, &plan)? else {
            continue;
        };
        let mut reader = ChunkReader::new(&file, plan.len);
        let mut offset = plan.offset;
        while offset < plan.len {
            let (header, _) = reader
                .frame(offset)
                .map_err(|e| StorageError::io(&plan.path, e))?
                .map_err(|e| corrupt(&plan, offset, e))?;
            if header.arrival_ms >= arrival_ms {
                return Ok(AtTime::Found(header.first_sequence.min(durable)));
            }
            offset += header.frame_len() as u64;
        }
        return Ok(AtTime::Found(plan.end.min(durable)));
    }
    Ok(AtTime::Found(*shared.durable.borrow()))
}
