//! The in-memory cache of recent durable records, shared by all logs.
//!
//! Writers insert each acknowledged batch (after the journal sync, before publishing the
//! new durable tail), so a reader that follows the tail finds its records here without
//! touching a file. One byte budget covers every log; the oldest batch of the whole store
//! goes first. Per log the cached batches are a contiguous run of sequences ending at the
//! durable tail: insertion is in sequence order and eviction takes the oldest, so a hit on
//! the first wanted record means every later durable record is here too.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{LogId, StoredRecord};

/// Bookkeeping overhead charged per cached record on top of key and data.
pub(crate) const RECORD_OVERHEAD_BYTES: u64 = 64;

struct CachedBatch {
    first_sequence: u64,
    records: Arc<[StoredRecord]>,
    bytes: u64,
}

#[derive(Default)]
struct CacheInner {
    bytes: u64,
    /// Insertion order across logs, for eviction. Entries of deleted logs go stale and are
    /// skipped when they reach the front.
    order: VecDeque<(LogId, u64)>,
    logs: HashMap<LogId, VecDeque<CachedBatch>>,
}

pub(crate) struct RecordCache {
    max_bytes: u64,
    inner: Mutex<CacheInner>,
}

/// Whether a record still fits a read of `max_records` / `max_bytes`. The first record is
/// always taken, so a record larger than `max_bytes` cannot wedge a reader.
pub(crate) fn fits(
    taken: usize,
    bytes: usize,
    record: &StoredRecord,
    max_records: usize,
    max_bytes: usize,
) -> bool {
    taken < max_records && (taken == 0 || bytes + record.key.len() + record.data.len() <= max_bytes)
}

/// The bytes a batch counts for in the cache.
pub(crate) fn cached_bytes(records: &[StoredRecord]) -> u64 {
    records
        .iter()
        .map(|r| (r.key.len() + r.data.len()) as u64 + RECORD_OVERHEAD_BYTES)
        .sum()
}

impl RecordCache {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    #[cfg(test)]
    pub fn insert(&self, log: LogId, first_sequence: u64, records: Arc<[StoredRecord]>) {
        self.insert_many(std::iter::once((log, first_sequence, records)));
    }

    /// Inserts each log's batch, in order, taking the lock once.
    pub fn insert_many(
        &self,
        batches: impl IntoIterator<Item = (LogId, u64, Arc<[StoredRecord]>)>,
    ) {
        if self.max_bytes == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        for (log, first_sequence, records) in batches {
            inner.insert(log, first_sequence, records);
            inner.evict(self.max_bytes);
        }
    }

    /// Whether batches of `bytes` (`cached_bytes`) inserted at once are all held
    /// afterwards: eviction takes the oldest first, so they are unless they are more than
    /// the whole cache (or the cache is off). Once held, a batch stays until more than
    /// `max_bytes` were inserted after its start.
    pub fn holds(&self, bytes: u64) -> bool {
        self.max_bytes > 0 && bytes <= self.max_bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Records `from..until` if the cache holds `from`; `None` sends the reader to disk.
    pub fn read(
        &self,
        log: LogId,
        from: u64,
        until: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Option<Vec<StoredRecord>> {
        self.read_after(log, from, until, &[], max_records, max_bytes)
    }

    /// `read`, continuing a read that already `taken` records (from the segments): the
    /// limits count them too.
    pub fn read_after(
        &self,
        log: LogId,
        from: u64,
        until: u64,
        taken: &[StoredRecord],
        max_records: usize,
        max_bytes: usize,
    ) -> Option<Vec<StoredRecord>> {
        let taken_bytes: usize = taken.iter().map(|r| r.key.len() + r.data.len()).sum();
        let inner = self.inner.lock();
        let batches = inner.logs.get(&log)?;
        let front = batches.front()?;
        if from < front.first_sequence {
            return None;
        }
        let start = batches.partition_point(|b| b.first_sequence + b.records.len() as u64 <= from);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for batch in batches.iter().skip(start) {
            for record in batch.records.iter() {
                if record.sequence < from {
                    continue;
                }
                if record.sequence >= until
                    || !fits(
                        taken.len() + out.len(),
                        taken_bytes + bytes,
                        record,
                        max_records,
                        max_bytes,
                    )
                {
                    return Some(out);
                }
                bytes += record.key.len() + record.data.len();
                out.push(record.clone());
            }
        }
        Some(out)
    }

    /// The first record of `log` in `from..until` that arrived at or after `arrival_ms`
    /// (`until` if none did); `None` if the cache does not hold `from` (and `from` is below
    /// `until`).
    pub fn sequence_at_time(
        &self,
        log: LogId,
        from: u64,
        until: u64,
        arrival_ms: u64,
    ) -> Option<u64> {
        if from >= until {
            return Some(until);
        }
        let inner = self.inner.lock();
        let batches = inner.logs.get(&log)?;
        if from < batches.front()?.first_sequence {
            return None;
        }
        let start = batches.partition_point(|b| b.first_sequence + b.records.len() as u64 <= from);
        let found = batches
            .iter()
            .skip(start)
            .flat_map(|batch| batch.records.iter())
            .filter(|record| record.sequence >= from)
            .take_while(|record| record.sequence < until)
            .find(|record| record.arrival_ms >= arrival_ms);
        Some(found.map_or(until, |record| record.sequence))
    }

    pub fn remove_log(&self, log: LogId) {
        let mut inner = self.inner.lock();
        if let Some(batches) = inner.logs.remove(&log) {
            inner.bytes -= batches.iter().map(|b| b.bytes).sum::<u64>();
        }
    }

    pub fn bytes(&self) -> u64 {
        self.inner.lock().bytes
    }
}

impl CacheInner {
    fn insert(&mut self, log: LogId, first_sequence: u64, records: Arc<[StoredRecord]>) {
        if records.is_empty() {
            return;
        }
        let bytes = cached_bytes(&records);
        let batches = self.logs.entry(log).or_default();
        if let Some(last) = batches.back() {
            let last_end = last.first_sequence + last.records.len() as u64;
            if last_end != first_sequence {
                // Not contiguous (cannot happen while the writer is alive; defensive
                // after delete + re-create): restart this log's run. Its entries in
                // `order` go stale and are skipped.
                self.bytes -= batches.drain(..).map(|b| b.bytes).sum::<u64>();
            }
        }
        batches.push_back(CachedBatch {
            first_sequence,
            records,
            bytes,
        });
        self.bytes += bytes;
        self.order.push_back((log, first_sequence));
    }

    fn evict(&mut self, max_bytes: u64) {
        while self.bytes > max_bytes {
            let Some((log, first_sequence)) = self.order.pop_front() else {
                break;
            };
            let Some(batches) = self.logs.get_mut(&log) else {
                continue;
            };
            if batches
                .front()
                .is_some_and(|b| b.first_sequence == first_sequence)
            {
                let batch = batches.pop_front().expect("front checked just above");
                self.bytes -= batch.bytes;
                if batches.is_empty() {
                    self.logs.remove(&log);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn batch(first: u64, n: u64, size: usize) -> Arc<[StoredRecord]> {
        (first..first + n)
            .map(|sequence| StoredRecord {
                sequence,
                arrival_ms: 1,
                key: Bytes::new(),
                data: Bytes::from(vec![0u8; size]),
                flags: 0,
            })
            .collect()
    }

    #[test]
    fn evicts_oldest_across_logs_and_misses_below_the_run() {
        let cache = RecordCache::new(3 * (100 + RECORD_OVERHEAD_BYTES));
        cache.insert(1, 0, batch(0, 1, 100));
        cache.insert(2, 0, batch(0, 1, 100));
        cache.insert(1, 1, batch(1, 1, 100));
        cache.insert(1, 2, batch(2, 1, 100));
        assert!(
            cache.read(1, 0, 3, 10, 1000).is_none(),
            "log 1 seq 0 was evicted first"
        );
        assert_eq!(cache.read(2, 0, 1, 10, 1000).unwrap().len(), 1);
        cache.insert(1, 3, batch(3, 1, 100));
        assert!(
            cache.read(2, 0, 1, 10, 1000).is_none(),
            "then log 2's batch"
        );
        let got = cache.read(1, 1, 4, 10, 1000).unwrap();
        assert_eq!(
            got.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(cache.read(1, 1, 3, 10, 150).unwrap().len(), 1, "byte limit");
        assert_eq!(
            cache.read(1, 1, 2, 10, 1000).unwrap().len(),
            1,
            "durable limit"
        );
        cache.remove_log(1);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn holds_what_it_says_it_holds() {
        let one = 100 + RECORD_OVERHEAD_BYTES;
        let cache = RecordCache::new(3 * one);
        let (a, b) = (batch(0, 2, 100), batch(0, 1, 100));
        assert!(cache.holds(cached_bytes(&a) + cached_bytes(&b)));
        cache.insert_many([(1, 0, a), (2, 0, b)]);
        // Older batches make room: the new ones are all held.
        let c = batch(2, 3, 100);
        assert!(cache.holds(cached_bytes(&c)));
        cache.insert_many([(1, 2, c)]);
        assert!(cache.read(1, 0, 5, 10, 1000).is_none());
        assert_eq!(cache.read(1, 2, 5, 10, 1000).unwrap().len(), 3);
        // More than the whole cache: the first of them are gone again.
        let (d, e) = (batch(0, 2, 100), batch(2, 2, 100));
        assert!(!cache.holds(cached_bytes(&d) + cached_bytes(&e)));
        cache.insert_many([(3, 0, d), (3, 2, e)]);
        assert!(cache.read(3, 0, 4, 10, 1000).is_none());
        assert!(!RecordCache::new(0).holds(1));
    }

    #[test]
    fn finds_the_first_record_that_arrived_at_or_after_a_time() {
        let cache = RecordCache::new(1 << 20);
        let at = |first: u64, n: u64, arrival_ms: u64| -> Arc<[StoredRecord]> {
            (first..first + n)
                .map(|sequence| StoredRecord {
                    sequence,
                    arrival_ms,
                    key: Bytes::new(),
                    data: Bytes::new(),
                    flags: 0,
                })
                .collect()
        };
        cache.insert_many([(1, 4, at(4, 2, 10)), (1, 6, at(6, 2, 20))]);
        assert_eq!(cache.sequence_at_time(1, 4, 8, 15), Some(6));
        assert_eq!(
            cache.sequence_at_time(1, 5, 8, 5),
            Some(5),
            "not before `from`"
        );
        assert_eq!(
            cache.sequence_at_time(1, 4, 8, 21),
            Some(8),
            "none: `until`"
        );
        assert_eq!(
            cache.sequence_at_time(1, 4, 6, 15),
            Some(6),
            "not past `until`"
        );
        assert_eq!(cache.sequence_at_time(1, 3, 8, 15), None, "below the cache");
        assert_eq!(cache.sequence_at_time(1, 8, 8, 15), Some(8));
    }

    #[test]
    fn a_run_restarted_after_a_gap_gives_back_the_bytes_it_dropped() {
        let one = 100 + RECORD_OVERHEAD_BYTES;
        let cache = RecordCache::new(10 * one);
        cache.insert_many([(1, 0, batch(0, 2, 100)), (2, 0, batch(0, 1, 100))]);
        assert_eq!(cache.bytes(), 3 * one);
        cache.insert(1, 7, batch(7, 1, 100));
        assert_eq!(cache.bytes(), 2 * one, "log 1's old run no longer counts");
        assert!(cache.read(1, 0, 8, 10, 1000).is_none());
        assert_eq!(cache.read(1, 7, 8, 10, 1000).unwrap().len(), 1);
        // The stale order entries of the dropped run are skipped by eviction.
        for first in 8..20 {
            cache.insert(1, first, batch(first, 1, 100));
        }
        assert_eq!(cache.bytes(), 10 * one);
    }
}
