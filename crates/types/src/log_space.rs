//! How the services share one store's log ids.
//!
//! Every service keeps its logs in the same store (one journal, one group commit), and each
//! garbage-collects logs its metadata no longer references when it opens. Disjoint id ranges
//! keep one service from ever collecting another's logs.

use std::ops::Range;

/// Shard logs of Data Streams.
pub const STREAMS: Range<u64> = 0..1 << 48;
/// Firehose DirectPut buffers (one log per delivery stream).
pub const FIREHOSE: Range<u64> = 1 << 48..2 << 48;
