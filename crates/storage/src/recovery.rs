//! Opening a store: find the authoritative journal, load and check every log's segments,
//! cut torn tails, replay the journal into the segments.
//!
//! What recovery may assume (established by the write path, see `journal.rs`):
//! - The journals present are a run of generations, each starting with a checkpoint
//!   unit; every one is replayed, oldest first (the "Journal set" in the crate docs). The
//!   newest may lack a valid checkpoint unit (a checkpoint that crashed creating it): it
//!   holds nothing and is deleted. Version-1 directories: see `open_journals`.
//! - The oldest journal's checkpoint lists, per log, a sequence `S` below which the
//!   segments were fsynced. Newer checkpoints' sequences are only promises of their
//!   checkpoint job, kept before it deleted the older journals.
//! - Consecutive journals continue each other's commit numbers.
//! - Every non-last segment is complete and was fsynced before its successor existed.
//! - Anything acknowledged is in a complete, checksummed journal unit, written before the
//!   journal's torn tail (if any) and after the checkpoint, or below `S` in a segment.
//!
//! Hence the rules:
//! - A defect in a non-last segment, or in a last segment below `S`, is corruption.
//! - A defect in the last segment at or above `S` is a torn tail (the process died between
//!   journal sync and page-cache write, or the machine lost unsynced pages): truncate, and
//!   the journal supplies the rest.
//! - In the journal, zeros from the end of the last valid unit to the end of the file are
//!   space written ahead (`space.rs`): the clean end, kept. Otherwise an invalid unit
//!   followed by no valid later unit is a torn tail (truncate); followed by a valid later
//!   unit it is corruption: something acknowledged would be skipped.
//! - A unit placing a frame its segment does not hold ends the journal like a torn unit:
//!   it was acknowledged only after the segment's sync, which never returned.
//! - Replaying a frame: already in the segment (end <= segment end) -> skip; continues the
//!   segment exactly -> append; anything else -> corruption (a gap would lose records).
//!   So a frame found in a segment and in a journal, or in two journals, is applied once.
//! - A non-newest journal is never written again: an invalid tail there is left alone if
//!   the next journal's checkpoint continues its commit numbers, and is corruption (a lost
//!   unit) if it does not.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::RecordCache;
use crate::format::{self, DecodeError, FILE_HEADER_LEN, FileHeader, UNIT_HEADER_LEN};
use crate::io::{WriteLayer, sync_dir};
use crate::journal::{self, Journal, LogFiles, Metrics};
use crate::segment::{self, ChunkReader, HandleCache, SegmentMeta, SegmentSet};
use crate::{LogId, LogShared, StorageError, StoreConfig, TailState};

pub(crate) fn recover(
    config: Arc<StoreConfig>,
    layer: Arc<dyn WriteLayer>,
    metrics: Arc<Metrics>,
    handles: Arc<HandleCache>,
    cache: Arc<RecordCache>,
) -> Result<Journal, StorageError> {
    let root = config.data_dir.clone();
    let journal_dir = root.join("journal");
    let logs_dir = root.join("logs");
    for dir in [&root, &journal_dir, &logs_dir] {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    }
    let lock_path = root.join("LOCK");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StorageError::io(&lock_path, e))?;
    lock.try_lock().map_err(|e| {
        StorageError::io(
            &lock_path,
            std::io::Error::other(format!("store is in use by another process: {e}")),
        )
    })?;

    let mut chain = open_journals(&*layer, &journal_dir)?;
    let found = chain
        .pop()
        .expect("open_journals returns at least one journal");
    let mut salvages = Vec::new();
    // The oldest journal's checkpoint is the one whose promise holds: segments are fsynced
    // below it. A newer one's may still have been waiting for its background sync.
    let checkpoint: HashMap<LogId, u64> = chain
        .first()
        .unwrap_or(&found)
        .checkpoint
        .iter()
        .copied()
        .collect();
    let first_commit = chain.first().map_or(0, |j| j.next_commit);
    let older: Vec<OlderJournal> = chain
        .into_iter()
        .map(|j| OlderJournal {
            file: j.file,
            path: j.path,
            units_start: j.units_start,
            next_commit: j.next_commit,
        })
        .collect();

    let mut journal = Journal::new(
        config.clone(),
        layer.clone(),
        metrics,
        handles,
        cache,
        journal_dir,
        logs_dir.clone(),
        found.file,
        found.path,
        found.generation,
        found.units_start,
        found.next_commit,
        lock,
    )
    .map_err(|e| StorageError::io(&root, e))?;

    for entry in std::fs::read_dir(&logs_dir).map_err(|e| StorageError::io(&logs_dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(&logs_dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".deleted") {
            // A delete that crashed after its atomic rename: finish it.
            std::fs::remove_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
            continue;
        }
        let Ok(id) = u64::from_str_radix(&name, 16) else {
            tracing::warn!(path = %path.display(), "ignoring unexpected entry in the logs directory");
            continue;
        };
        if let Some((files, salvage)) =
            recover_log(&*layer, &path, id, checkpoint.get(&id).copied())?
        {
            if let Some(salvage) = salvage {
                salvages.push((id, salvage));
            }
            journal.logs.insert(id, files);
        }
    }

    // In generation order; each frame is applied at most once (by sequence), so a frame
    // already in a segment, or in two journals, is skipped.
    // A journal's checkpoint unit takes the commit number after the last unit of the
    // journal before it, so a unit lost from an older journal shows as a gap here.
    let mut next_commit = first_commit;
    for (i, old) in older.iter().enumerate() {
        if i > 0 && old.next_commit != next_commit + 1 {
            return Err(commit_gap(&old.path, next_commit, old.next_commit - 1));
        }
        let (_, after) = replay(
            &mut journal,
            &old.file,
            &old.path,
            old.units_start,
            old.next_commit,
            false,
        )?;
        next_commit = after;
    }
    if !older.is_empty() && journal.next_commit != next_commit + 1 {
        return Err(commit_gap(
            &journal.path,
            next_commit,
            journal.next_commit - 1,
        ));
    }
    let file = journal
        .file
        .try_clone()
        .map_err(|e| StorageError::io(&journal.path, e))?;
    let path = journal.path.clone();
    let (start, first) = (journal.len, journal.next_commit);
    let (len, after) = replay(&mut journal, &file, &path, start, first, true)?;
    journal.len = len;
    journal.next_commit = after;
    // A torn segment tail was cut although valid frames followed it: only fine if the
    // journal gave all of them back. Otherwise the cut lost data: corruption.
    for (id, salvage) in salvages {
        let next = journal.logs.get(&id).map_or(0, |files| files.next_sequence);
        if next < salvage.end_sequence {
            return Err(StorageError::corrupt(
                &salvage.path,
                salvage.bad_offset,
                format!(
                    "{}; valid frames up to sequence {} follow (at offset {}) and the journal \
                     restores only up to {next}",
                    salvage.reason, salvage.end_sequence, salvage.later_offset
                ),
            ));
        }
    }
    Ok(journal)
}

/// A journal older than the current one, still present: replayed, then left for the next
/// checkpoint's job to delete.
struct OlderJournal {
    file: File,
    path: PathBuf,
    units_start: u64,
    next_commit: u64,
}

/// A journal's checkpoint unit says the journal's first frames unit is `commit`; the
/// journals before it (or nothing, for the oldest) end elsewhere: units are missing.
fn commit_gap(path: &Path, expected: u64, found: u64) -> StorageError {
    StorageError::corrupt(
        path,
        FILE_HEADER_LEN as u64,
        format!(
            "the journals before this one end before commit {expected}, but this one's \
             checkpoint is commit {found}: journal units are missing"
        ),
    )
}

struct FoundJournal {
    file: File,
    path: PathBuf,
    generation: u64,
    /// Format version of its header (1: written by a build whose newest journal
    /// superseded all older ones).
    version: u32,
    checkpoint: Vec<(LogId, u64)>,
    /// Offset of the first unit after the checkpoint unit.
    units_start: u64,
    next_commit: u64,
}

/// Every journal recovery must replay, oldest first (never empty: a new store gets one).
///
/// Since format version 2 a checkpoint syncs segments *after* the new journal is in use
/// and deletes the older journals only then, so every journal present is replayed. All
/// but the newest were complete when their successor was created: any defect in their
/// start is corruption. The newest may be a checkpoint that crashed while writing it
/// (no valid checkpoint unit yet): nothing was written to it, so it is deleted.
///
/// A directory whose newest valid journal is version 1 was last run by a build that
/// synced segments *before* starting a new journal: there, older journals are superseded
/// (everything in them is in fsynced segments) and deleted unread, as that build did.
fn open_journals(layer: &dyn WriteLayer, dir: &Path) -> Result<Vec<FoundJournal>, StorageError> {
    let mut generations = journal::list_journals(dir).map_err(|e| StorageError::io(dir, e))?;
    generations.sort_unstable();
    let mut chain: Vec<FoundJournal> = Vec::new();
    let count = generations.len();
    for (i, generation) in generations.iter().copied().enumerate() {
        let path = journal::journal_path(dir, generation);
        match read_journal_start(&path, generation)? {
            Ok(journal) => chain.push(journal),
            Err((offset, reason)) => {
                if i + 1 == count && i > 0 {
                    tracing::warn!(path = %path.display(), %reason, "discarding incomplete new journal");
                    std::fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
                    sync_dir(dir).map_err(|e| StorageError::io(dir, e))?;
                } else {
                    return Err(StorageError::corrupt(&path, offset, reason));
                }
            }
        }
    }
    if chain.last().is_some_and(|newest| newest.version < 2) {
        let newest = chain.pop().expect("checked above");
        for superseded in chain.drain(..) {
            std::fs::remove_file(&superseded.path)
                .map_err(|e| StorageError::io(&superseded.path, e))?;
        }
        chain.push(newest);
    }
    let found = chain.pop();
    if let Some(found) = found {
        chain.push(found);
        return Ok(chain);
    }
    // A new store.
    let path = journal::journal_path(dir, 1);
    let header = FileHeader {
        kind: format::KIND_JOURNAL,
        id: 1,
        base_sequence: 0,
        arrival_floor_ms: 0,
    };
    let mut bytes = format::encode_file_header(&header).to_vec();
    let mut unit = Vec::new();
    format::begin_unit(&mut unit);
    format::encode_checkpoint(&mut unit, &[]);
    format::finish_unit(&mut unit, 0, format::UNIT_CHECKPOINT);
    bytes.extend_from_slice(&unit);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| StorageError::io(&path, e))?;
    layer
        .write_all_at(&file, &bytes, 0)
        .map_err(|e| StorageError::io(&path, e))?;
    layer
        .sync_data(&file)
        .map_err(|e| StorageError::io(&path, e))?;
    sync_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    Ok(vec![FoundJournal {
        file,
        path,
        generation: 1,
        version: format::FORMAT_VERSION,
        checkpoint: Vec::new(),
        units_start: bytes.len() as u64,
        next_commit: 1,
    }])
}

/// Header and checkpoint unit of one journal; the inner error says why it is not usable.
#[allow(clippy::type_complexity)]
fn read_journal_start(
    path: &Path,
    generation: u64,
) -> Result<Result<FoundJournal, (u64, String)>, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    let mut reader = ChunkReader::new(&file, len);
    let io = |e| StorageError::io(path, e);
    let (header, version) = match reader.get(0, FILE_HEADER_LEN).map_err(io)? {
        Ok(bytes) => match format::decode_file_header_version(&bytes) {
            Ok(header) => header,
            Err(e) => return Ok(Err((0, e.to_string()))),
        },
        Err(e) => return Ok(Err((0, e.to_string()))),
    };
    if header.kind != format::KIND_JOURNAL || header.id != generation {
        return Ok(Err((0, "not the journal its name says".into())));
    }
    let at = FILE_HEADER_LEN as u64;
    let unit = match read_unit(&mut reader, at).map_err(io)? {
        Ok((unit_header, unit)) if unit_header.kind == format::UNIT_CHECKPOINT => {
            (unit_header, unit)
        }
        Ok(_) => return Ok(Err((at, "journal does not start with a checkpoint".into()))),
        Err(e) => return Ok(Err((at, e.to_string()))),
    };
    let checkpoint = match format::decode_checkpoint(&unit.1[UNIT_HEADER_LEN..]) {
        Ok(checkpoint) => checkpoint,
        Err(e) => return Ok(Err((at, e.to_string()))),
    };
    drop(reader);
    Ok(Ok(FoundJournal {
        file,
        path: path.to_path_buf(),
        generation,
        version,
        checkpoint,
        units_start: at + unit.0.unit_len() as u64,
        next_commit: unit.0.commit_no + 1,
    }))
}

fn read_unit(
    reader: &mut ChunkReader<'_>,
    offset: u64,
) -> std::io::Result<Result<(format::UnitHeader, bytes::Bytes), DecodeError>> {
    let header = match reader.get(offset, UNIT_HEADER_LEN)? {
        Ok(bytes) => match format::decode_unit_header(&bytes) {
            Ok(header) => header,
            Err(e) => return Ok(Err(e)),
        },
        Err(e) => return Ok(Err(e)),
    };
    let unit = match reader.get(offset, header.unit_len())? {
        Ok(unit) => unit,
        Err(e) => return Ok(Err(e)),
    };
    Ok(format::verify_unit(&header, &unit).map(|()| (header, unit)))
}

/// Loads one log's segments. `durable_floor` is the checkpointed sequence below which the
/// segments must be intact. Returns `None` for a log whose creation never completed.
/// A cut made in a last segment ahead of later valid frames; checked after replay.
struct Salvage {
    path: PathBuf,
    bad_offset: u64,
    reason: String,
    later_offset: u64,
    end_sequence: u64,
}

fn recover_log(
    layer: &dyn WriteLayer,
    dir: &Path,
    id: LogId,
    durable_floor: Option<u64>,
) -> Result<Option<(LogFiles, Option<Salvage>)>, StorageError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = name
            .strip_suffix(".seg")
            .and_then(|b| b.parse::<u64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    // The newest segment can be a roll that crashed before its header was durable; it
    // holds nothing (the header is written and synced before any frame), so drop it.
    // Likewise a lone segment 0 with a torn header is a `create_log` that never returned.
    while bases.len() > 1 || bases == [0] {
        let path = segment::segment_path(dir, *bases.last().expect("not empty"));
        let len = std::fs::metadata(&path)
            .map_err(|e| StorageError::io(&path, e))?
            .len();
        let mut head = vec![0u8; FILE_HEADER_LEN.min(len as usize)];
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut head, 0))
            .map_err(|e| StorageError::io(&path, e))?;
        let torn_create =
            len <= FILE_HEADER_LEN as u64 && format::decode_file_header(&head).is_err();
        if !torn_create {
            break;
        }
        std::fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        bases.pop();
    }
    if bases.is_empty() {
        // `create_log` crashed before its first segment was durable; it never returned.
        std::fs::remove_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        return Ok(None);
    }

    let mut set = SegmentSet::default();
    let mut arrival_floor = 0u64;
    let last_index = bases.len() - 1;
    let mut salvage = None;
    for (i, base) in bases.iter().copied().enumerate() {
        let path = segment::segment_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        let header = segment::read_file_header(&file, &path)?;
        if header.kind != format::KIND_SEGMENT || header.id != id || header.base_sequence != base {
            return Err(StorageError::corrupt(
                &path,
                0,
                "segment header does not match its name",
            ));
        }
        if let Some(previous) = set.segments.last()
            && previous.end != base
        {
            return Err(StorageError::corrupt(
                &path,
                0,
                format!(
                    "segment starts at {base} but the previous one ends at {}",
                    previous.end
                ),
            ));
        }
        arrival_floor = arrival_floor.max(header.arrival_floor_ms);
        let file_len = file
            .metadata()
            .map_err(|e| StorageError::io(&path, e))?
            .len();
        let meta = if i < last_index {
            // Sealed: complete by construction, so any defect is corruption.
            match segment::load_index(&path, id, base, Some(file_len)) {
                Some(meta) => meta,
                None => {
                    let scan = segment::scan_segment(&path, &file, id, &header)?;
                    if let Some((offset, reason)) = scan.bad {
                        return Err(StorageError::corrupt(
                            &path,
                            offset,
                            format!("sealed segment: {reason}"),
                        ));
                    }
                    if scan.meta.end == base {
                        return Err(StorageError::corrupt(&path, 0, "sealed segment is empty"));
                    }
                    segment::write_index(&scan.meta, id);
                    scan.meta
                }
            }
        } else {
            let floor = durable_floor.unwrap_or(0);
            // The index persisted at the last checkpoint covers the fsynced prefix (it ends
            // exactly at the checkpointed sequence): scan only what came after it. Damage
            // in that prefix is then found by the read path's checksums, as in sealed
            // segments.
            let start = segment::load_index(&path, id, base, None)
                .filter(|meta| durable_floor == Some(meta.end) && meta.len <= file_len)
                .unwrap_or_else(|| SegmentMeta::new_empty(path.clone(), base));
            let scan = segment::scan_segment_from(&file, id, start)?;
            if let Some((offset, reason)) = scan.bad {
                if scan.meta.end < floor {
                    return Err(StorageError::corrupt(
                        &path,
                        offset,
                        format!("{reason}, below the checkpointed sequence {floor}"),
                    ));
                }
                if let Some((later_offset, end_sequence)) =
                    segment::find_later_frames(&file, file_len, offset, id)
                        .map_err(|e| StorageError::io(&path, e))?
                {
                    salvage = Some(Salvage {
                        path: path.clone(),
                        bad_offset: offset,
                        reason: reason.to_string(),
                        later_offset,
                        end_sequence,
                    });
                }
                tracing::warn!(path = %path.display(), offset, %reason, "truncating torn segment tail");
                layer
                    .set_len(&file, offset)
                    .map_err(|e| StorageError::io(&path, e))?;
                layer
                    .sync_data(&file)
                    .map_err(|e| StorageError::io(&path, e))?;
            } else if scan.meta.end < floor {
                return Err(StorageError::corrupt(
                    &path,
                    scan.meta.len,
                    format!(
                        "segment ends at sequence {} below the checkpointed {floor}",
                        scan.meta.end
                    ),
                ));
            }
            scan.meta
        };
        if let Some(max) = meta.max_arrival {
            arrival_floor = arrival_floor.max(max);
        }
        set.segments.push(meta);
    }
    let first_sequence = set.first_sequence().expect("at least one segment");
    let next_sequence = set
        .segments
        .last()
        .map_or(first_sequence, |s: &SegmentMeta| s.end);
    let tail = TailState {
        next_sequence,
        first_sequence,
        last_arrival_ms: (arrival_floor > 0 || next_sequence > 0).then_some(arrival_floor),
        sealed: false,
    };
    let shared = Arc::new(LogShared::new(id, dir.to_path_buf(), set, tail));
    let files = LogFiles {
        shared,
        // Opened again on the next append (replay included): idle logs hold no descriptor.
        active: None,
        placed_sync: None,
        unflushed: false,
        next_sequence,
        last_arrival_ms: arrival_floor,
        // Replayed or truncated data may be unsynced; syncing at the next checkpoint is
        // what lets that checkpoint drop the journal.
        dirty: true,
        pending: crate::journal::PendingCopies::default(),
    };
    Ok(Some((files, salvage)))
}

/// Re-applies one journal's units after its checkpoint (from `start`, expecting commit
/// `next_commit` first) to the segments. Returns where the valid units end and the commit
/// number after the last one. A torn tail is cut off the newest journal (it is written
/// next); on an older one it is left alone (the next checkpoint deletes that journal),
/// and the caller's commit-number check against the next journal tells whether a unit is
/// missing.
fn replay(
    journal: &mut Journal,
    file: &File,
    path: &Path,
    start: u64,
    mut next_commit: u64,
    newest: bool,
) -> Result<(u64, u64), StorageError> {
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    let mut reader = ChunkReader::new(file, file_len);
    let mut offset = start;
    let mut replayed = 0u64;
    let bad = loop {
        if offset == file_len {
            break None;
        }
        let (header, unit) =
            match read_unit(&mut reader, offset).map_err(|e| StorageError::io(path, e))? {
                Ok(unit) => unit,
                Err(e) => break Some((offset, e.to_string())),
            };
        let frames_unit = header.kind == format::UNIT_FRAMES || header.kind == format::UNIT_PLACED;
        if !frames_unit || header.commit_no != next_commit {
            break Some((
                offset,
                format!(
                    "unexpected unit (kind {}, commit {})",
                    header.kind, header.commit_no
                ),
            ));
        }
        let entries = format::decode_unit_entries(header.kind, &unit[UNIT_HEADER_LEN..]).map_err(
            |(at, e)| {
                StorageError::corrupt(
                    path,
                    offset + (UNIT_HEADER_LEN + at) as u64,
                    format!("frame in a valid unit: {e}"),
                )
            },
        )?;
        // A placed frame was written to its segment and synced together with the unit;
        // the unit was acknowledged only once both syncs returned. One missing from its
        // segment means the process died between the two: nothing in this unit was
        // acknowledged, so the journal ends before it, like a torn unit.
        let missing = entries.iter().find_map(|entry| match entry {
            format::UnitEntry::InSegment(frame) => journal
                .logs
                .get(&frame.log_id)
                .filter(|files| frame.end_sequence() > files.next_sequence)
                .map(|files| (frame, files.next_sequence)),
            format::UnitEntry::Inline(..) => None,
        });
        if let Some((frame, segment_end)) = missing {
            break Some((
                offset,
                format!(
                    "unit places records {}..{} of log {} in a segment that ends at {}",
                    frame.first_sequence,
                    frame.end_sequence(),
                    frame.log_id,
                    segment_end
                ),
            ));
        }
        for (at, entry) in entries.into_iter().enumerate() {
            let format::UnitEntry::Inline(frame_header, frame_bytes) = entry else {
                continue; // in its segment: checked above
            };
            // No directory: the log was deleted (ids are never reused).
            let Some(files) = journal.logs.get_mut(&frame_header.log_id) else {
                continue;
            };
            if frame_header.end_sequence() <= files.next_sequence {
                continue; // already in the segment (or replayed from an older journal)
            }
            if frame_header.first_sequence != files.next_sequence {
                return Err(StorageError::corrupt(
                    path,
                    offset,
                    format!(
                        "journal frame {at} of this unit (log {}) starts at {} but its \
                         segments end at {}",
                        frame_header.log_id, frame_header.first_sequence, files.next_sequence
                    ),
                ));
            }
            files
                .append_frame(
                    &*journal.layer,
                    &journal.config,
                    &journal.metrics,
                    &frame_header,
                    frame_bytes,
                )
                .map_err(|e| StorageError::io(&files.shared.dir, e))?;
            files.next_sequence = frame_header.end_sequence();
            {
                let mut tail = files.shared.tail.lock();
                tail.next_sequence = files.next_sequence;
                tail.last_arrival_ms = Some(files.last_arrival_ms);
            }
            files.shared.durable.send_replace(files.next_sequence);
            replayed += 1;
        }
        offset += header.unit_len() as u64;
        next_commit += 1;
    };
    if let Some((bad_offset, _)) = bad
        && zeros_to_end(file, bad_offset, file_len).map_err(|e| StorageError::io(path, e))?
    {
        // Space the journal wrote ahead of its units (`space.rs`): its clean end. The
        // newest journal keeps it for the units to come.
        tracing::info!(path = %path.display(), end = bad_offset, zeros = file_len - bad_offset, "journal ends where its space written ahead begins");
        if newest {
            journal.prepared_to = file_len;
        }
    } else if let Some((bad_offset, reason)) = bad {
        if let Some(later) = find_later_unit(&mut reader, bad_offset, file_len, next_commit)
            .map_err(|e| StorageError::io(path, e))?
        {
            return Err(StorageError::corrupt(
                path,
                bad_offset,
                format!("{reason}; a valid unit follows at offset {later}"),
            ));
        }
        if newest {
            tracing::warn!(path = %path.display(), offset = bad_offset, %reason, "truncating torn journal tail");
            journal
                .layer
                .set_len(file, bad_offset)
                .map_err(|e| StorageError::io(path, e))?;
            journal
                .layer
                .sync_data(file)
                .map_err(|e| StorageError::io(path, e))?;
        } else {
            tracing::warn!(path = %path.display(), offset = bad_offset, %reason, "ignoring invalid bytes at the end of an old journal");
        }
    }
    if replayed > 0 {
        tracing::info!(frames = replayed, journal = %path.display(), "replayed journal into segments");
    }
    Ok((offset, next_commit))
}

/// Whether `file` holds only zero bytes from `from` to `to`.
fn zeros_to_end(file: &File, from: u64, to: u64) -> std::io::Result<bool> {
    let mut buffer = vec![0u8; (to - from).min(1 << 20) as usize];
    let mut at = from;
    while at < to {
        let len = (to - at).min(buffer.len() as u64) as usize;
        file.read_exact_at(&mut buffer[..len], at)?;
        if buffer[..len].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += len as u64;
    }
    Ok(true)
}

/// Looks for a checksum-valid unit at any offset after a bad one. Only commit numbers at
/// or after the expected one count: a unit is only ever written after its predecessor.
fn find_later_unit(
    reader: &mut ChunkReader<'_>,
    bad_offset: u64,
    file_len: u64,
    expected_commit: u64,
) -> std::io::Result<Option<u64>> {
    let mut offset = bad_offset + 1;
    while offset + UNIT_HEADER_LEN as u64 <= file_len {
        if let Ok(bytes) = reader.get(offset, UNIT_HEADER_LEN)?
            && let Ok(header) = format::decode_unit_header(&bytes)
            && header.commit_no >= expected_commit
            && header.commit_no < expected_commit + (1 << 32)
            && read_unit(reader, offset)?.is_ok()
        {
            return Ok(Some(offset));
        }
        offset += 1;
    }
    Ok(None)
}
