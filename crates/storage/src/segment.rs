//! Per-log segment files: in-memory metadata with the sparse index, the positional frame
//! reader shared by recovery and the read path, and the segment scanner.
//!
//! Invariants (checked on recovery, relied on by readers):
//! - Segments of a log are contiguous: each one's `base` is the previous one's `end`.
//! - Every non-last segment is sealed: complete, fdatasync'ed before its successor was
//!   created, never written again. Only the last (active) segment grows, and only the
//!   journal thread writes it.
//! - Arrival times never decrease along a log, so per-segment `max_arrival` is monotonic
//!   and both the sequence and the time index can be binary searched.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::format::{
    self, DecodeError, FILE_HEADER_LEN, FileHeader, FrameHeader, IndexEntry, IndexFile,
};
use crate::{LogId, StorageError};

/// One sparse index point per this many bytes of segment, so a lookup scans at most about
/// this much (plus one frame) and the index costs ~24 B per 4 KiB (0.6 %) of memory.
pub(crate) const INDEX_INTERVAL_BYTES: u64 = 4096;
/// Read granularity of `ChunkReader`: large enough that a scan is sequential I/O, small
/// enough that a point read does not drag in megabytes.
const READ_CHUNK_BYTES: usize = 256 << 10;
/// Chunk buffers kept for reuse: at most 16 MiB idle.
const POOLED_READ_CHUNKS_MAX: usize = 64;

/// `ChunkReader`'s buffers, handed back once every record sliced from them is dropped.
///
/// A fresh buffer is zero-filled (`vec![0; n]`, since a read needs initialised memory) and
/// then faulted in by the kernel page by page; on a 1 KiB read-back served from segments
/// that pair was a quarter of the server's CPU (BENCHMARKS.md, round 4). A reused buffer
/// needs neither: the read overwrites all of it.
static READ_CHUNKS: ChunkPool = ChunkPool {
    free: Mutex::new(Vec::new()),
};

struct ChunkPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl ChunkPool {
    /// A buffer of `len` initialised bytes, reused when `len` fits a chunk-sized one.
    fn take(&self, len: usize) -> Vec<u8> {
        let pooled = if len <= READ_CHUNK_BYTES {
            self.free.lock().pop()
        } else {
            None
        };
        match pooled {
            Some(mut buffer) => {
                // Zero-fills only what a shorter earlier read left uninitialised.
                buffer.resize(len, 0);
                buffer
            }
            None => vec![0; len],
        }
    }

    fn give_back(&self, buffer: Vec<u8>) {
        if buffer.capacity() == READ_CHUNK_BYTES {
            let mut free = self.free.lock();
            if free.len() < POOLED_READ_CHUNKS_MAX {
                free.push(buffer);
            }
        }
    }

    /// `buffer` as `Bytes` that come back to this pool when the last slice is dropped.
    fn share(&'static self, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(PooledChunk { buffer, pool: self })
    }
}

struct PooledChunk {
    buffer: Vec<u8>,
    pool: &'static ChunkPool,
}

impl AsRef<[u8]> for PooledChunk {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for PooledChunk {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

pub(crate) fn log_dir(logs_dir: &Path, id: LogId) -> PathBuf {
    logs_dir.join(format!("{id:016x}"))
}

pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

pub(crate) fn index_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// What the store knows about one segment file without reading it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub path: PathBuf,
    /// Sequence of the first record the segment holds (or will hold, when empty).
    pub base: u64,
    /// One past the last record's sequence; `== base` when empty.
    pub end: u64,
    /// Bytes of valid data, header included; the next frame goes here.
    pub len: u64,
    pub max_arrival: Option<u64>,
    /// Sparse: the first frame, then one frame per `INDEX_INTERVAL_BYTES`.
    pub index: Vec<IndexEntry>,
}

impl SegmentMeta {
    pub fn new_empty(path: PathBuf, base: u64) -> Self {
        Self {
            path,
            base,
            end: base,
            len: FILE_HEADER_LEN as u64,
            max_arrival: None,
            index: Vec::new(),
        }
    }

    /// Records a frame that now lives at `offset`. Frames arrive in file order.
    pub fn note_frame(&mut self, offset: u64, header: &FrameHeader) {
        assert_eq!(
            offset, self.len,
            "frames are appended at the end of a segment"
        );
        assert_eq!(
            header.first_sequence, self.end,
            "segment sequences are contiguous"
        );
        assert!(
            self.max_arrival.is_none_or(|a| a <= header.arrival_ms),
            "arrival times never decrease within a log"
        );
        let due = self
            .index
            .last()
            .is_none_or(|e| offset - e.file_offset >= INDEX_INTERVAL_BYTES);
        if due {
            self.index.push(IndexEntry {
                sequence: header.first_sequence,
                arrival_ms: header.arrival_ms,
                file_offset: offset,
            });
        }
        self.end = header.end_sequence();
        self.len = offset + header.frame_len() as u64;
        self.max_arrival = Some(header.arrival_ms);
    }

    /// File offset of a frame at or before the one holding `sequence`.
    pub fn locate(&self, sequence: u64) -> u64 {
        let i = self.index.partition_point(|e| e.sequence <= sequence);
        if i == 0 {
            FILE_HEADER_LEN as u64
        } else {
            self.index[i - 1].file_offset
        }
    }

    /// File offset of a frame at or before the first one that arrived at or after `arrival_ms`.
    pub fn locate_time(&self, arrival_ms: u64) -> u64 {
        let i = self.index.partition_point(|e| e.arrival_ms < arrival_ms);
        if i == 0 {
            FILE_HEADER_LEN as u64
        } else {
            self.index[i - 1].file_offset
        }
    }

    pub fn to_index_file(&self) -> IndexFile {
        IndexFile {
            segment_len: self.len,
            end_sequence: self.end,
            max_arrival_ms: self.max_arrival.unwrap_or(0),
            entries: self.index.clone(),
        }
    }
}

/// The segments of one log, oldest first; the last one is the active segment.
#[derive(Debug, Default)]
pub(crate) struct SegmentSet {
    pub segments: Vec<SegmentMeta>,
}

impl SegmentSet {
    /// Index of the segment holding `sequence`, if any.
    pub fn find(&self, sequence: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.base <= sequence);
        if i == 0 {
            return None;
        }
        (sequence < self.segments[i - 1].end).then_some(i - 1)
    }

    pub fn first_sequence(&self) -> Option<u64> {
        self.segments.first().map(|s| s.base)
    }
}

/// Positional reads of a file in chunks, handing out zero-copy `Bytes` slices.
pub(crate) struct ChunkReader<'a> {
    file: &'a File,
    /// Bytes at or beyond this offset are not ours to read (not yet written, or torn).
    limit: u64,
    chunk: Bytes,
    chunk_start: u64,
}

impl<'a> ChunkReader<'a> {
    pub fn new(file: &'a File, limit: u64) -> Self {
        Self {
            file,
            limit,
            chunk: Bytes::new(),
            chunk_start: 0,
        }
    }

    /// `len` bytes at `offset`, or `Short` if they reach past the limit.
    pub fn get(&mut self, offset: u64, len: usize) -> io::Result<Result<Bytes, DecodeError>> {
        let available = self.limit.saturating_sub(offset);
        if (len as u64) > available {
            return Ok(Err(DecodeError::Short {
                needed: len,
                available: available as usize,
            }));
        }
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if offset < self.chunk_start || offset + len as u64 > chunk_end {
            let want = (len.max(READ_CHUNK_BYTES) as u64).min(available) as usize;
            let mut buffer = READ_CHUNKS.take(want);
            self.file.read_exact_at(&mut buffer, offset)?;
            self.chunk = READ_CHUNKS.share(buffer);
            self.chunk_start = offset;
        }
        let at = (offset - self.chunk_start) as usize;
        Ok(Ok(self.chunk.slice(at..at + len)))
    }

    /// The whole frame at `offset` with its header, checksum verified.
    pub fn frame(&mut self, offset: u64) -> io::Result<Result<(FrameHeader, Bytes), DecodeError>> {
        let header = match self.get(offset, format::FRAME_HEADER_LEN)? {
            Ok(bytes) => match format::decode_frame_header(&bytes) {
                Ok(header) => header,
                Err(e) => return Ok(Err(e)),
            },
            Err(e) => return Ok(Err(e)),
        };
        let frame = match self.get(offset, header.frame_len())? {
            Ok(frame) => frame,
            Err(e) => return Ok(Err(e)),
        };
        Ok(format::verify_frame(&header, &frame).map(|()| (header, frame)))
    }
}

/// Result of scanning a segment file frame by frame.
pub(crate) struct Scan {
    pub meta: SegmentMeta,
    /// The first offset that did not hold a valid frame, with the reason; `None` if the
    /// frames end exactly at the end of the file.
    pub bad: Option<(u64, DecodeError)>,
}

pub(crate) fn read_file_header(file: &File, path: &Path) -> Result<FileHeader, StorageError> {
    let mut buffer = [0u8; FILE_HEADER_LEN];
    let len = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    if len < FILE_HEADER_LEN as u64 {
        return Err(StorageError::corrupt(
            path,
            0,
            "file shorter than its header",
        ));
    }
    file.read_exact_at(&mut buffer, 0)
        .map_err(|e| StorageError::io(path, e))?;
    format::decode_file_header(&buffer).map_err(|e| StorageError::corrupt(path, 0, e.to_string()))
}

/// Walks every frame of a segment, verifying checksums and that the frames belong to this
/// log, continue its sequences and never go back in time.
pub(crate) fn scan_segment(
    path: &Path,
    file: &File,
    log: LogId,
    header: &FileHeader,
) -> Result<Scan, StorageError> {
    let meta = SegmentMeta::new_empty(path.to_path_buf(), header.base_sequence);
    scan_segment_from(file, log, meta)
}

/// Continues a scan after what `meta` already describes (from a persisted index).
pub(crate) fn scan_segment_from(
    file: &File,
    log: LogId,
    mut meta: SegmentMeta,
) -> Result<Scan, StorageError> {
    let path = meta.path.clone();
    let path = path.as_path();
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    let mut reader = ChunkReader::new(file, file_len);
    let mut offset = meta.len;
    while offset < file_len {
        let (frame, _) = match reader
            .frame(offset)
            .map_err(|e| StorageError::io(path, e))?
        {
            Ok(frame) => frame,
            Err(e) => {
                return Ok(Scan {
                    meta,
                    bad: Some((offset, e)),
                });
            }
        };
        let problem = if frame.log_id != log {
            Some(format!(
                "frame of log {} in a segment of log {log}",
                frame.log_id
            ))
        } else if frame.first_sequence != meta.end {
            Some(format!(
                "frame starts at sequence {} but {} was expected",
                frame.first_sequence, meta.end
            ))
        } else if meta.max_arrival.is_some_and(|a| a > frame.arrival_ms) {
            Some("arrival time goes backwards".to_string())
        } else {
            None
        };
        if let Some(reason) = problem {
            return Ok(Scan {
                meta,
                bad: Some((offset, DecodeError::Invalid(reason))),
            });
        }
        meta.note_frame(offset, &frame);
        offset += frame.frame_len() as u64;
    }
    Ok(Scan { meta, bad: None })
}

/// After a bad frame at `bad_offset`: the highest end sequence of any checksum-valid frame
/// of `log` found at a later offset (searched byte by byte, so it finds frames after a
/// damaged length field too). Recovery uses it to prove that cutting the tail there loses
/// nothing the journal does not restore.
pub(crate) fn find_later_frames(
    file: &File,
    file_len: u64,
    bad_offset: u64,
    log: LogId,
) -> io::Result<Option<(u64, u64)>> {
    let mut reader = ChunkReader::new(file, file_len);
    let mut found: Option<(u64, u64)> = None;
    let mut offset = bad_offset + 1;
    while offset + format::FRAME_HEADER_LEN as u64 <= file_len {
        if let Ok((header, _)) = reader.frame(offset)?
            && header.log_id == log
        {
            if found.is_none_or(|(_, end)| header.end_sequence() > end) {
                found = Some((offset, header.end_sequence()));
            }
            offset += header.frame_len() as u64;
            continue;
        }
        offset += 1;
    }
    Ok(found)
}

/// Loads the persisted index of a sealed segment if it still describes the file exactly.
pub(crate) fn load_index(
    segment: &Path,
    log: LogId,
    base: u64,
    segment_len: Option<u64>,
) -> Option<SegmentMeta> {
    let bytes = std::fs::read(index_path(segment)).ok()?;
    let header = format::decode_file_header(&bytes).ok()?;
    if header.kind != format::KIND_INDEX || header.id != log || header.base_sequence != base {
        return None;
    }
    let index = format::decode_index_body(&bytes[FILE_HEADER_LEN..]).ok()?;
    // The index is only a cache of the segment: any disagreement means rebuild by scanning.
    let plausible = segment_len.is_none_or(|len| index.segment_len == len)
        && index.segment_len >= FILE_HEADER_LEN as u64
        && index
            .entries
            .first()
            .is_some_and(|e| e.sequence == base && e.file_offset == FILE_HEADER_LEN as u64)
        && index
            .entries
            .windows(2)
            .all(|w| w[0].sequence < w[1].sequence && w[0].file_offset < w[1].file_offset)
        && index
            .entries
            .last()
            .is_some_and(|e| e.sequence < index.end_sequence && e.file_offset < index.segment_len);
    if !plausible {
        return None;
    }
    Some(SegmentMeta {
        path: segment.to_path_buf(),
        base,
        end: index.end_sequence,
        len: index.segment_len,
        max_arrival: Some(index.max_arrival_ms),
        index: index.entries,
    })
}

/// Persists the index of a segment: when it is sealed, and for the active segment at each
/// journal checkpoint (so recovery scans only what was written since). Best effort and
/// not fsynced: it is a cache that recovery validates and rebuilds when missing or stale.
pub(crate) fn write_index(meta: &SegmentMeta, log: LogId) {
    let header = format::encode_file_header(&FileHeader {
        kind: format::KIND_INDEX,
        id: log,
        base_sequence: meta.base,
        arrival_floor_ms: 0,
    });
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&format::encode_index_body(&meta.to_index_file()));
    if let Err(e) = std::fs::write(index_path(&meta.path), bytes) {
        tracing::warn!(path = %meta.path.display(), error = %e, "could not persist segment index");
    }
}

/// An LRU of read-only file handles, so thousands of segments never mean thousands of
/// open descriptors. A handle to a file that retention has since unlinked keeps working
/// (POSIX), which is what a read in progress wants.
#[derive(Debug)]
pub(crate) struct HandleCache {
    capacity: usize,
    clock: AtomicU64,
    handles: Mutex<HashMap<PathBuf, (Arc<File>, u64)>>,
}

impl HandleCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            clock: AtomicU64::new(0),
            handles: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, path: &Path) -> io::Result<Arc<File>> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        if let Some((file, used)) = self.handles.lock().get_mut(path) {
            *used = now;
            return Ok(file.clone());
        }
        // Open outside the lock: it is a system call.
        let file = Arc::new(File::open(path)?);
        let mut handles = self.handles.lock();
        if handles.len() >= self.capacity {
            let oldest = handles
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone());
            if let Some(oldest) = oldest {
                handles.remove(&oldest);
            }
        }
        handles.insert(path.to_path_buf(), (file.clone(), now));
        Ok(file)
    }

    pub fn invalidate(&self, path: &Path) {
        self.handles.lock().remove(path);
    }

    pub fn invalidate_dir(&self, dir: &Path) {
        self.handles.lock().retain(|p, _| !p.starts_with(dir));
    }

    pub fn len(&self) -> usize {
        self.handles.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_buffers_come_back_when_the_last_slice_is_dropped() {
        let pool: &'static ChunkPool = Box::leak(Box::new(ChunkPool {
            free: Mutex::new(Vec::new()),
        }));
        let mut buffer = pool.take(READ_CHUNK_BYTES);
        buffer[..4].copy_from_slice(b"data");
        let address = buffer.as_ptr();
        let chunk = pool.share(buffer);
        let record = chunk.slice(0..4);
        drop(chunk);
        assert!(
            pool.free.lock().is_empty(),
            "a slice still holds the buffer"
        );
        assert_eq!(&record[..], b"data");
        drop(record);
        let reused = pool.take(100);
        assert_eq!(reused.as_ptr(), address);
        assert_eq!(reused.len(), 100);
        // A shorter chunk keeps the buffer whole; a longer take after it zero-fills the gap.
        pool.give_back(reused);
        let again = pool.take(READ_CHUNK_BYTES);
        assert_eq!((again.as_ptr(), again.len()), (address, READ_CHUNK_BYTES));
        assert!(again[100..].iter().all(|&b| b == 0));
        // Oversized buffers (one frame larger than a chunk) are not kept.
        drop(pool.share(pool.take(READ_CHUNK_BYTES + 1)));
        assert!(pool.free.lock().is_empty());
        for _ in 0..POOLED_READ_CHUNKS_MAX + 3 {
            pool.give_back(Vec::with_capacity(READ_CHUNK_BYTES));
        }
        assert_eq!(pool.free.lock().len(), POOLED_READ_CHUNKS_MAX);
    }

    #[test]
    fn sparse_index_points_at_or_before_the_wanted_frame() {
        let mut meta = SegmentMeta::new_empty(PathBuf::from("x"), 10);
        let mut offset = FILE_HEADER_LEN as u64;
        for i in 0..100u64 {
            let header = FrameHeader {
                body_len: 1000,
                crc: 0,
                log_id: 1,
                first_sequence: 10 + i * 2,
                record_count: 2,
                arrival_ms: 1000 + i,
            };
            meta.note_frame(offset, &header);
            offset += header.frame_len() as u64;
        }
        assert_eq!(meta.end, 210);
        assert!(meta.index.len() > 10 && meta.index.len() < 100);
        for seq in 10..210 {
            let at = meta.locate(seq);
            let entry = meta.index.iter().find(|e| e.file_offset == at);
            assert!(at == FILE_HEADER_LEN as u64 || entry.is_some_and(|e| e.sequence <= seq));
        }
        for t in 990..1110 {
            let at = meta.locate_time(t);
            let entry = meta.index.iter().find(|e| e.file_offset == at);
            assert!(at == FILE_HEADER_LEN as u64 || entry.is_some_and(|e| e.arrival_ms < t));
        }
    }

    #[test]
    fn segment_set_finds_the_holder() {
        let mut set = SegmentSet::default();
        let mut a = SegmentMeta::new_empty(PathBuf::from("a"), 0);
        a.end = 5;
        let mut b = SegmentMeta::new_empty(PathBuf::from("b"), 5);
        b.end = 9;
        set.segments = vec![a, b, SegmentMeta::new_empty(PathBuf::from("c"), 9)];
        assert_eq!(set.find(0), Some(0));
        assert_eq!(set.find(4), Some(0));
        assert_eq!(set.find(5), Some(1));
        assert_eq!(set.find(8), Some(1));
        assert_eq!(set.find(9), None);
    }
}
