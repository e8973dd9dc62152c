//! Shard ids: `shardId-` followed by the 12-digit zero-padded shard index.

use std::fmt;

const PREFIX: &str = "shardId-";
const INDEX_DIGITS: usize = 12;

/// A shard's index within its stream; indexes are assigned in creation order and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl ShardId {
    /// Parses `shardId-000000000001`. Like AWS, it also takes the digits after the last `-`
    /// (so `shard-1` and a bare `1` name shard 1); anything else is `None`.
    pub fn parse(text: &str) -> Option<ShardId> {
        let digits = text.rsplit('-').next().unwrap_or(text);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .map(ShardId)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:0width$}", self.0, width = INDEX_DIGITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_aws_shard_ids() {
        assert_eq!(ShardId(7).to_string(), "shardId-000000000007");
        assert_eq!(ShardId::parse("shardId-000000000007"), Some(ShardId(7)));
        assert_eq!(ShardId::parse("7"), Some(ShardId(7)));
        assert_eq!(ShardId::parse("shardId-"), None);
        assert_eq!(ShardId::parse("shardId-x"), None);
        assert_eq!(ShardId::parse("shardId-99999999999999999999"), None);
    }
}
