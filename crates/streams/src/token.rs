//! Shard iterators and pagination tokens: self-describing, authenticated, stateless.
//!
//! A token is `base64(prefix | kind | payload | mac)`:
//!
//! ```text
//! | 00 00 00 00 00 00 00 01 | kind u8 | payload ... | HMAC-SHA256(secret, kind|payload)[..16] |
//! ```
//!
//! The 8-byte prefix mirrors the first bytes of AWS's own tokens (they begin `AAAAAAAAAAE`),
//! which some tools use to recognise an iterator. The MAC, keyed by a secret kept in the
//! metadata store, makes tokens unforgeable and lets them survive a restart: nothing about
//! an iterator is held in memory. Persisted in clients' hands for up to 5 minutes: a layout
//! change needs a new `kind`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 1];
const MAC_LEN: usize = 16;
pub(crate) const KIND_ITERATOR: u8 = 1;
pub(crate) const KIND_LIST_SHARDS: u8 = 2;
pub(crate) const KIND_LIST_STREAMS: u8 = 3;
pub(crate) const KIND_LIST_CONSUMERS: u8 = 4;
/// An iterator from a GetRecords answered at the shard's tip (nothing there, or after waiting
/// there): the payload of `KIND_ITERATOR`; the kind tells the next GetRecords that its
/// consumer polls the tip (module `tip`).
pub(crate) const KIND_ITERATOR_AT_TIP: u8 = 5;

#[derive(Clone)]
pub(crate) struct TokenSealer {
    secret: [u8; 32],
}

impl TokenSealer {
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn mac(&self, kind: u8, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(&[kind]);
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    pub fn seal(&self, kind: u8, payload: &[u8]) -> String {
        let mut bytes = Vec::with_capacity(PREFIX.len() + 1 + payload.len() + MAC_LEN);
        bytes.extend_from_slice(&PREFIX);
        bytes.push(kind);
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(&self.mac(kind, payload));
        STANDARD.encode(bytes)
    }

    /// The payload of a token of `kind`, or `None` if it is not one of ours.
    pub fn open(&self, kind: u8, token: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(token.as_bytes()).ok()?;
        if bytes.len() < PREFIX.len() + 1 + MAC_LEN || bytes[..PREFIX.len()] != PREFIX {
            return None;
        }
        if bytes[PREFIX.len()] != kind {
            return None;
        }
        let payload = &bytes[PREFIX.len() + 1..bytes.len() - MAC_LEN];
        let expected = self.mac(kind, payload);
        // Constant-time comparison: the MAC is the only thing standing between a client
        // and positions in other streams.
        let given = &bytes[bytes.len() - MAC_LEN..];
        let diff = expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then(|| payload.to_vec())
    }
}

const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 4;

/// Where a shard iterator points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IteratorPosition {
    pub stream: String,
    pub incarnation: u64,
    pub shard_index: u32,
    /// Storage sequence of the next record to return.
    pub position: u64,
    pub issued_ms: u64,
}

impl IteratorPosition {
    /// `| incarnation u64 | shard u32 | position u64 | issued_ms u64 | nonce u32 | stream name ... |`
    ///
    /// The random nonce makes every iterator handed out distinct, even two for the same
    /// position in the same millisecond: clients (the DynamoDB Streams adapter among them)
    /// treat an iterator equal to the one they sent as "nothing changed".
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.stream.len());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.shard_index.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(&self.issued_ms.to_be_bytes());
        out.extend_from_slice(&rand::random::<u32>().to_be_bytes());
        out.extend_from_slice(self.stream.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<IteratorPosition> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        Some(IteratorPosition {
            incarnation: u64_at(0)?,
            shard_index: u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?),
            position: u64_at(12)?,
            issued_ms: u64_at(20)?,
            stream: String::from_utf8(bytes[HEADER_LEN..].to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tampered_tokens_are_rejected() {
        let sealer = TokenSealer::new([7; 32]);
        let token = sealer.seal(KIND_ITERATOR, b"hello");
        assert!(token.starts_with("AAAAAAAAAAE"));
        assert_eq!(
            sealer.open(KIND_ITERATOR, &token).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(sealer.open(KIND_LIST_SHARDS, &token), None);
        let other = TokenSealer::new([8; 32]);
        assert_eq!(other.open(KIND_ITERATOR, &token), None);
        let mut bytes = STANDARD.decode(&token).unwrap();
        bytes[10] ^= 1;
        assert_eq!(sealer.open(KIND_ITERATOR, &STANDARD.encode(bytes)), None);
    }

    proptest! {
        #[test]
        fn iterator_positions_round_trip(incarnation in any::<u64>(), shard in any::<u32>(), position in any::<u64>(), issued in any::<u64>(), stream in "[a-zA-Z0-9_.-]{1,128}") {
            let it = IteratorPosition { stream, incarnation, shard_index: shard, position, issued_ms: issued };
            let sealer = TokenSealer::new([1; 32]);
            let token = sealer.seal(KIND_ITERATOR, &it.encode());
            prop_assert!(token.len() <= 512);
            let back = sealer.open(KIND_ITERATOR, &token).and_then(|p| IteratorPosition::decode(&p));
            prop_assert_eq!(back, Some(it));
        }

        #[test]
        fn opening_arbitrary_text_never_panics(text in ".{0,600}") {
            let sealer = TokenSealer::new([1; 32]);
            let _ = sealer.open(KIND_ITERATOR, &text);
        }
    }
}
