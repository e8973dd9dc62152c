//! A GetRecords repeated at a shard's tip waits there for the next record.
//!
//! A polling consumer that has caught up asks again and again. A record written just after
//! an empty answer reaches it only at its next poll, after its own sleep and a round trip:
//! that cadence, not the server, bounds its put-to-get latency. So when a consumer asks
//! again at a shard's tip, the request waits (up to `StreamsConfig::tip_wait`) for the
//! shard's durable tail to move and is answered as soon as it does: the answer its next poll
//! would have had, sooner, with fewer empty polls.
//!
//! Two facts decide whether a read that finds nothing may wait:
//! - The iterator came from an answer at the tip (nothing there, or after waiting there):
//!   such answers hand out iterators of their own kind (`KIND_ITERATOR_AT_TIP`), so the fact
//!   travels with the consumer whichever pooled connection its next request takes. A backlog
//!   read, and the first empty answer of a consumer that drains a shard and stops there, are
//!   answered at once, as AWS would.
//! - The connection's previous request was not an empty GetRecords of another shard. That is
//!   what one thread walking several shards' tips over one connection looks like, and a wait
//!   there would hold back its next request for another shard. Threads sharing a connection
//!   pool do not look like that: their requests change connections when answers with records
//!   come back together, and such an answer does not count.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use millstream_storage::LogId;

/// Nothing remembered: no GetRecords answered on the connection yet.
const NOTHING: u64 = u64::MAX;

/// What one client connection's latest GetRecords found, shared by all of its requests.
#[derive(Debug)]
pub struct ConnectionPolls {
    /// `log << 1 | found nothing`, or `NOTHING`. Log ids are allocated upwards from zero, so
    /// the shift loses nothing a server will ever reach.
    last_answer: AtomicU64,
}

impl Default for ConnectionPolls {
    fn default() -> Self {
        Self {
            last_answer: AtomicU64::new(NOTHING),
        }
    }
}

impl ConnectionPolls {
    /// Whether the connection's previous request was an empty GetRecords of a shard other
    /// than `log`'s: a walk over several shards' tips, which must not wait.
    pub(crate) fn walks_shards(&self, log: LogId) -> bool {
        let last = self.last_answer.load(Relaxed);
        last != NOTHING && last & 1 == 1 && last >> 1 != log
    }

    /// Records a GetRecords answer of `log`.
    pub(crate) fn answered(&self, log: LogId, found_nothing: bool) {
        self.last_answer
            .store(log << 1 | u64::from(found_nothing), Relaxed);
    }
}

/// Counts one waiting call for as long as it waits, including when its client hangs up and
/// the request's future is dropped mid-wait.
pub(crate) struct TipWaiting<'a>(&'a AtomicU64);

impl<'a> TipWaiting<'a> {
    pub(crate) fn count(waiting: &'a AtomicU64) -> Self {
        waiting.fetch_add(1, Relaxed);
        TipWaiting(waiting)
    }
}

impl Drop for TipWaiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_answer_of_another_shard_marks_a_walk() {
        let connection = ConnectionPolls::default();
        assert!(!connection.walks_shards(0), "a fresh connection");
        connection.answered(3, true);
        assert!(!connection.walks_shards(3), "the same shard again");
        assert!(connection.walks_shards(0), "log 0 is a real log id");
        assert!(connection.walks_shards(4));
        connection.answered(3, false);
        assert!(
            !connection.walks_shards(4),
            "an answer with records: pooled threads swap connections after those"
        );
    }
}
