//! Domain vocabulary shared by every Millstream crate: AWS limits, the 128-bit hash-key
//! space, shard ids and the 186-bit sequence-number layout.
//!
//! Nothing here knows about HTTP or wire formats; the decimal strings of sequence numbers and
//! hash keys are produced here because AWS defines them as numbers, and every layer compares
//! them numerically.

pub mod hash_key;
pub mod limits;
pub mod log_space;
pub mod sequence;
pub mod shard_id;

pub use hash_key::{HashKey, hash_partition_key};
pub use sequence::SequenceParts;
pub use shard_id::ShardId;
