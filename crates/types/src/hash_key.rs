//! The 128-bit hash-key space that shards partition.
//!
//! AWS routes a record by the MD5 digest of its partition key's UTF-8 bytes, read as a
//! big-endian unsigned integer, unless the producer gives an explicit hash key.

use md5::{Digest, Md5};

/// A point in the hash-key space, `0 ..= 2^128 - 1`.
pub type HashKey = u128;

pub fn hash_partition_key(partition_key: &str) -> HashKey {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// Parses a decimal hash key; `None` when it is not a decimal integer below 2^128.
pub fn parse_hash_key(text: &str) -> Option<HashKey> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u128>().ok()
}

/// The even split AWS uses at CreateStream: `w = floor(2^128 / n)`, shard `i` covers
/// `[i*w, (i+1)*w - 1]` and the last shard ends at `2^128 - 1`.
pub fn even_ranges(shard_count: u32) -> Vec<(HashKey, HashKey)> {
    assert!(shard_count > 0, "a stream has at least one shard");
    if shard_count == 1 {
        return vec![(0, u128::MAX)];
    }
    let n = u128::from(shard_count);
    // 2^128 / n computed without overflow (n >= 2): (2^128 - 1) / n, corrected when n
    // divides 2^128.
    let mut width = u128::MAX / n;
    if (u128::MAX % n) == n - 1 {
        width += 1;
    }
    (0..n)
        .map(|i| {
            let start = i * width;
            let end = if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * width - 1
            };
            (start, end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_routing_matches_aws() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_partition_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }

    #[test]
    fn even_ranges_match_aws_examples() {
        let two = even_ranges(2);
        assert_eq!(two[0].1, 170141183460469231731687303715884105727);
        assert_eq!(two[1].0, 170141183460469231731687303715884105728);
        assert_eq!(two[1].1, u128::MAX);
        assert_eq!(even_ranges(3)[0].1, 113427455640312821154458202477256070484);
        assert_eq!(even_ranges(1), vec![(0, u128::MAX)]);
    }

    #[test]
    fn even_ranges_cover_the_space_exactly() {
        for n in [1, 2, 3, 4, 5, 7, 64, 1000] {
            let ranges = even_ranges(n);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().map(|r| r.1), Some(u128::MAX));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }
    }

    #[test]
    fn parse_hash_key_rejects_out_of_range() {
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Some(u128::MAX)
        );
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(parse_hash_key("-1"), None);
    }
}
