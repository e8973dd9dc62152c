//! Optional emulation of AWS's per-shard throughput quotas (off by default: a self-hosted
//! store should not throttle itself, but users testing their back-off logic can turn it on).
//!
//! Token buckets per shard, each holding one second of quota so short bursts pass as on AWS:
//! writes 1 MiB/s and 1,000 records/s (PutRecords fails only the excess entries), GetRecords
//! 5 calls/s and 2 MiB/s (the bytes of a read are charged after it, so a large read throttles
//! the next calls until the bucket refills), GetShardIterator 5 calls/s.

use std::collections::HashMap;
use std::time::Instant;

use millstream_types::limits::{
    SHARD_READ_BYTES_PER_SECOND, SHARD_READ_CALLS_PER_SECOND, SHARD_WRITE_BYTES_PER_SECOND,
    SHARD_WRITE_RECORDS_PER_SECOND,
};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    per_second: f64,
    last: Instant,
}

impl Bucket {
    fn full(per_second: u64, now: Instant) -> Self {
        Self {
            tokens: per_second as f64,
            per_second: per_second as f64,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.last = now;
    }

    fn has(&self, amount: f64) -> bool {
        self.tokens >= amount
    }
}

#[derive(Debug, Clone, Copy)]
struct ShardBuckets {
    write_bytes: Bucket,
    write_records: Bucket,
    read_calls: Bucket,
    read_bytes: Bucket,
    iterator_calls: Bucket,
}

impl ShardBuckets {
    fn new(now: Instant) -> Self {
        Self {
            write_bytes: Bucket::full(SHARD_WRITE_BYTES_PER_SECOND, now),
            write_records: Bucket::full(SHARD_WRITE_RECORDS_PER_SECOND, now),
            read_calls: Bucket::full(SHARD_READ_CALLS_PER_SECOND, now),
            read_bytes: Bucket::full(SHARD_READ_BYTES_PER_SECOND, now),
            iterator_calls: Bucket::full(SHARD_READ_CALLS_PER_SECOND, now),
        }
    }

    fn refill(&mut self, now: Instant) {
        for bucket in [
            &mut self.write_bytes,
            &mut self.write_records,
            &mut self.read_calls,
            &mut self.read_bytes,
            &mut self.iterator_calls,
        ] {
            bucket.refill(now);
        }
    }
}

/// Per-shard quotas keyed by the shard's storage log (unique for the life of the store).
pub(crate) struct Throttle {
    enabled: bool,
    shards: parking_lot::Mutex<HashMap<u64, ShardBuckets>>,
}

impl Throttle {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            shards: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, log: u64, f: impl FnOnce(&mut ShardBuckets) -> T) -> T {
        let now = Instant::now();
        let mut shards = self.shards.lock();
        let buckets = shards.entry(log).or_insert_with(|| ShardBuckets::new(now));
        buckets.refill(now);
        f(buckets)
    }

    /// Takes write quota for one record of `bytes`; false when the shard is over quota.
    pub fn admit_write(&self, log: u64, bytes: usize) -> bool {
        if !self.enabled {
            return true;
        }
        self.with(log, |b| {
            let admit = b.write_records.has(1.0) && b.write_bytes.has(bytes as f64);
            if admit {
                b.write_records.tokens -= 1.0;
                b.write_bytes.tokens -= bytes as f64;
            }
            admit
        })
    }

    /// Takes one GetRecords call; false when over the call rate or still paying for bytes.
    pub fn admit_read(&self, log: u64) -> bool {
        if !self.enabled {
            return true;
        }
        self.with(log, |b| {
            let admit = b.read_calls.has(1.0) && b.read_bytes.tokens > 0.0;
            if admit {
                b.read_calls.tokens -= 1.0;
            }
            admit
        })
    }

    /// Charges the bytes a read returned (may go into debt).
    pub fn charge_read(&self, log: u64, bytes: usize) {
        if self.enabled {
            self.with(log, |b| b.read_bytes.tokens -= bytes as f64);
        }
    }

    pub fn admit_iterator(&self, log: u64) -> bool {
        if !self.enabled {
            return true;
        }
        self.with(log, |b| {
            let admit = b.iterator_calls.has(1.0);
            if admit {
                b.iterator_calls.tokens -= 1.0;
            }
            admit
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_admits_everything() {
        let throttle = Throttle::new(false);
        for _ in 0..10_000 {
            assert!(throttle.admit_write(1, 1 << 20));
            assert!(throttle.admit_read(1));
        }
    }

    #[test]
    fn writes_stop_at_one_second_of_quota() {
        let throttle = Throttle::new(true);
        let admitted = (0..2000).filter(|_| throttle.admit_write(1, 10)).count();
        // 1,000 records of burst plus at most a few refilled while the loop ran.
        assert!((1000..1100).contains(&admitted), "{admitted}");
        let big = Throttle::new(true);
        assert!(big.admit_write(2, 1 << 20));
        assert!(
            !big.admit_write(2, 1 << 20),
            "the second MiB in the same instant is over quota"
        );
        assert!(big.admit_write(3, 1 << 20), "quotas are per shard");
    }

    #[test]
    fn a_large_read_throttles_the_next_calls() {
        let throttle = Throttle::new(true);
        assert!(throttle.admit_read(1));
        throttle.charge_read(1, 10 << 20);
        assert!(!throttle.admit_read(1));
    }
}
