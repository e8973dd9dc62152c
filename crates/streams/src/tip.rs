//! A GetRecords repeated at a shard's tip waits there for the next record.
//!
//! A polling consumer that has caught up asks again and again. A record written just after
//! an empty answer reaches it only at its next poll, after its own sleep and a round trip:
//! that cadence, not the server, bounds its put-to-get latency. When a connection asks for
//! a shard again right after an empty answer for that shard, the request waits (up to
//! `StreamsConfig::tip_wait`) for the shard's durable tail to move, and is answered as soon
//! as it does: the answer its next poll would have had, sooner, with fewer empty polls.
//!
//! Only that pattern waits, because only there is the connection known to have nothing
//! better to do. A consumer reading a backlog, one draining a shard until its first empty
//! answer, and one walking several shards over one connection are all answered at once, as
//! AWS would: a wait would only hold back their next request for another shard. HTTP/1.1
//! carries one request at a time, so "the connection's previous request" is well defined;
//! over HTTP/2 concurrent requests simply overwrite each other's memory and rarely wait.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use millstream_storage::LogId;

/// No log: the connection's latest request was not an empty GetRecords, or a waited one.
const NO_LOG: LogId = LogId::MAX;

/// What one client connection's latest request found, shared by all of its requests.
#[derive(Debug)]
pub struct ConnectionPolls {
    /// The log whose tip the connection's latest GetRecords reached: found empty there, or
    /// waited there. `NO_LOG` after any other request.
    polling_tip_of: AtomicU64,
}

impl Default for ConnectionPolls {
    fn default() -> Self {
        Self {
            polling_tip_of: AtomicU64::new(NO_LOG),
        }
    }
}

impl ConnectionPolls {
    /// Any request other than GetRecords ends the connection's polling of a tip.
    pub fn forget(&self) {
        self.polling_tip_of.store(NO_LOG, Relaxed);
    }

    /// Whether an empty read of `log` should wait: the previous request on this connection
    /// was a GetRecords at `log`'s tip.
    pub(crate) fn is_polling_tip_of(&self, log: LogId) -> bool {
        self.polling_tip_of.load(Relaxed) == log
    }

    /// Records how a GetRecords of `log` was answered: `at_tip` when it found nothing or
    /// waited for what it returns (a consumer that keeps up stays a tip poller).
    pub(crate) fn answered(&self, log: LogId, at_tip: bool) {
        self.polling_tip_of
            .store(if at_tip { log } else { NO_LOG }, Relaxed);
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
    fn only_a_repeat_after_a_tip_answer_on_the_same_log_is_a_tip_poll() {
        let connection = ConnectionPolls::default();
        assert!(!connection.is_polling_tip_of(0), "log 0 is a real log id");
        connection.answered(3, true);
        assert!(connection.is_polling_tip_of(3));
        assert!(!connection.is_polling_tip_of(4));
        connection.answered(3, false);
        assert!(!connection.is_polling_tip_of(3), "a backlog page ends it");
        connection.answered(3, true);
        connection.forget();
        assert!(
            !connection.is_polling_tip_of(3),
            "another operation ends it"
        );
    }
}
