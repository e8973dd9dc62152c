//! Self-checking record payloads.
//!
//! Every record is `size` bytes (at least [`HEADER`]):
//!
//! ```text
//! [0..8)   record id, u64 LE: producer << 40 | the producer's counter
//! [8..16)  send time, u64 LE: microseconds since the bench started (for put-to-consume latency)
//! [16..24) content hash, u64 LE: hash of bytes [0..16) and [32..size)
//! [24..32) magic "MSBENCH1"
//! [32..)   filler, one of FILLERS deterministic patterns (chosen by id)
//! ```
//!
//! A reader recomputes the hash from the bytes it got, so any changed, truncated or extended
//! byte is caught without keeping a copy of what was sent.

pub const HEADER: usize = 32;
const MAGIC: &[u8; 8] = b"MSBENCH1";
const FILLERS: usize = 64;

/// A 64-bit hash of `bytes`, eight at a time (not cryptographic; it only has to catch
/// accidental damage).
pub fn hash64(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    // Final avalanche (splitmix64's).
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

fn content_hash(head: &[u8], filler: &[u8]) -> u64 {
    hash64(head, hash64(filler, 0x6d69_6c6c))
}

/// A small pseudo-random generator (splitmix64) for keys and fillers.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Builds payloads of one size; fillers are made once.
pub struct Payloads {
    size: usize,
    fillers: Vec<Vec<u8>>,
}

/// What a reader learns from a payload that checks out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub id: u64,
    pub sent_us: u64,
}

impl Payloads {
    /// # Errors
    /// When `size` cannot hold the header.
    pub fn new(size: usize) -> anyhow::Result<Payloads> {
        anyhow::ensure!(
            size >= HEADER,
            "record size must be at least {HEADER} bytes (the self-check header)"
        );
        let mut rng = SplitMix(0x4d53_4245_4e43_4831 ^ size as u64);
        let fillers = (0..FILLERS)
            .map(|_| {
                let mut filler = Vec::with_capacity(size - HEADER + 8);
                while filler.len() < size - HEADER {
                    filler.extend_from_slice(&rng.next_u64().to_le_bytes());
                }
                filler.truncate(size - HEADER);
                filler
            })
            .collect();
        Ok(Payloads { size, fillers })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn build(&self, id: u64, sent_us: u64) -> Vec<u8> {
        let filler = &self.fillers[(id % FILLERS as u64) as usize];
        let mut out = Vec::with_capacity(self.size);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&sent_us.to_le_bytes());
        let hash = content_hash(&out[..16], filler);
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(filler);
        out
    }
}

/// Checks a payload's size, magic and hash; `None` when any of them is wrong.
pub fn decode(data: &[u8], size: usize) -> Option<Decoded> {
    if data.len() != size || data.len() < HEADER || &data[24..32] != MAGIC {
        return None;
    }
    let word = |range: std::ops::Range<usize>| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&data[range]);
        u64::from_le_bytes(bytes)
    };
    (content_hash(&data[..16], &data[HEADER..]) == word(16..24)).then(|| Decoded {
        id: word(0..8),
        sent_us: word(8..16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_catches_damage() {
        let payloads = Payloads::new(100).unwrap();
        let data = payloads.build(42, 7);
        assert_eq!(data.len(), 100);
        assert_eq!(decode(&data, 100), Some(Decoded { id: 42, sent_us: 7 }));
        for index in [0, 9, 17, 25, 33, 99] {
            let mut bad = data.clone();
            bad[index] ^= 1;
            assert_eq!(decode(&bad, 100), None, "flipped byte {index}");
        }
        assert_eq!(decode(&data[..99], 100), None);
        assert!(Payloads::new(HEADER - 1).is_err());
        assert!(decode(&Payloads::new(HEADER).unwrap().build(1, 2), HEADER).is_some());
    }
}
