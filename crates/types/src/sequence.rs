//! Sequence numbers in AWS's 186-bit layout.
//!
//! Kinesis sequence numbers are decimal strings of 186-bit integers. The KCL parses any
//! 186-bit number whose top nibble is 2 and checks that the shard index embedded in bits
//! 4..36 matches the shard it checkpoints, so we reproduce the layout exactly (as reverse-
//! engineered by kinesalite and confirmed against numbers AWS hands out). As 47 hex digits,
//! most significant first:
//!
//! ```text
//! | 2 | creation_secs (9) | shard_index & 0xf (1) | counter (16) | 00 (2) | arrival_secs (9) | shard_index (8) | 2 |
//! ```
//!
//! Within one shard creation time and index are fixed, so numbers order by `counter`, then by
//! arrival; the counter alone decides, because it grows with every record. A child shard is
//! created after its parents' close and (see the streams crate) in a later second, so its
//! numbers also compare above every number of its parents.
//!
//! Persisted inside iterators held by clients and checkpointed by the KCL: never change.

use std::fmt;

const VERSION: u64 = 2;
const TOP_NIBBLE: u64 = 2;
/// 36 bits of epoch seconds, as AWS has; good until the year 4147.
const SECS_MASK: u64 = (1 << 36) - 1;
/// The counter's top bit stays clear in AWS numbers.
pub const COUNTER_MAX: u64 = (1 << 63) - 1;

/// The fields of one sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceParts {
    pub creation_secs: u64,
    pub shard_index: u32,
    pub counter: u64,
    pub arrival_secs: u64,
}

/// Why a decimal string is not one of our sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a sequence number in the version 2 layout")]
pub struct MalformedSequenceNumber;

/// A 192-bit unsigned integer as three 64-bit limbs, most significant first: only what
/// decimal conversion needs. Hand-written because a bignum crate for two conversions would
/// cost more build time than these forty lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct U192([u64; 3]);

/// 10^63 > 2^192: seven nine-digit chunks hold any value.
const DECIMAL_DIGITS_MAX: usize = 63;

/// "00".."99": two digits per division when writing decimals.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// `value` (< 10^9) as exactly nine digits, zero-padded.
fn write_chunk(out: &mut [u8], mut value: u32) {
    debug_assert_eq!(out.len(), 9);
    for end in [9, 7, 5, 3] {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        out[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    out[0] = b'0' + value as u8;
}

impl U192 {
    fn from_decimal(text: &str) -> Option<U192> {
        let mut limbs = [0u64; 3];
        for digit in text.bytes() {
            if !digit.is_ascii_digit() {
                return None;
            }
            let mut carry = u128::from(digit - b'0');
            for limb in limbs.iter_mut().rev() {
                let wide = u128::from(*limb) * 10 + carry;
                *limb = wide as u64;
                carry = wide >> 64;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(U192(limbs))
    }

    /// Decimal digits, most significant first, without leading zeros.
    ///
    /// Works in 32-bit limbs and base-10^9 chunks so that every step is a `u64` division
    /// by a constant, which compiles to a multiply. Dividing `u128`s by 10^19 called the
    /// runtime's `__udivti3` nine times per number: with its four allocations it was a
    /// fifth of the server's CPU on a 1 KiB read-back (every record's number is encoded).
    fn to_decimal(self) -> String {
        let mut digits = [0; DECIMAL_DIGITS_MAX];
        let start = self.write_decimal(&mut digits);
        std::str::from_utf8(&digits[start..])
            .expect("ASCII digits")
            .to_owned()
    }

    /// Writes the decimal digits right-aligned into `digits`; returns where they start.
    fn write_decimal(self, digits: &mut [u8; DECIMAL_DIGITS_MAX]) -> usize {
        const CHUNK: u64 = 1_000_000_000;
        const CHUNK_DIGITS: usize = 9;
        let mut limbs = [0u32; 6];
        for (i, limb) in self.0.iter().enumerate() {
            limbs[2 * i] = (limb >> 32) as u32;
            limbs[2 * i + 1] = *limb as u32;
        }
        digits.fill(b'0');
        let mut start = DECIMAL_DIGITS_MAX;
        let mut first_nonzero = 0;
        loop {
            while first_nonzero < limbs.len() && limbs[first_nonzero] == 0 {
                first_nonzero += 1;
            }
            if first_nonzero == limbs.len() {
                break;
            }
            let mut remainder = 0u64;
            for limb in &mut limbs[first_nonzero..] {
                let wide = (remainder << 32) | u64::from(*limb);
                *limb = (wide / CHUNK) as u32;
                remainder = wide % CHUNK;
            }
            start -= CHUNK_DIGITS;
            write_chunk(&mut digits[start..start + CHUNK_DIGITS], remainder as u32);
        }
        // The last chunk was zero-padded; a zero value has no chunk at all.
        digits[start..]
            .iter()
            .position(|&d| d != b'0')
            .map_or(DECIMAL_DIGITS_MAX - 1, |offset| start + offset)
    }

    /// Bits `[shift, shift + width)` as an integer (width <= 64).
    fn bits(&self, shift: u32, width: u32) -> u64 {
        let low = (u128::from(self.0[1]) << 64) | u128::from(self.0[2]);
        let value = if shift >= 128 {
            self.0[0] >> (shift - 128)
        } else if shift + width <= 128 {
            (low >> shift) as u64
        } else {
            ((low >> shift) as u64) | (self.0[0] << (128 - shift))
        };
        if width == 64 {
            value
        } else {
            value & ((1u64 << width) - 1)
        }
    }

    fn set_bits(&mut self, shift: u32, width: u32, value: u64) {
        debug_assert!(width == 64 || value < (1u64 << width));
        for bit in 0..width {
            if (value >> bit) & 1 == 1 {
                let position = shift + bit;
                let limb = 2 - (position / 64) as usize;
                self.0[limb] |= 1u64 << (position % 64);
            }
        }
    }

    fn bit_length(&self) -> u32 {
        for (i, limb) in self.0.iter().enumerate() {
            if *limb != 0 {
                return (3 - i as u32) * 64 - limb.leading_zeros();
            }
        }
        0
    }
}

// Bit offsets from the least significant bit.
const VERSION_SHIFT: u32 = 0;
const INDEX_SHIFT: u32 = 4;
const ARRIVAL_SHIFT: u32 = 36;
const RESERVED_SHIFT: u32 = 72;
const COUNTER_SHIFT: u32 = 80;
const INDEX_DIGIT_SHIFT: u32 = 144;
const CREATION_SHIFT: u32 = 148;
const TOP_SHIFT: u32 = 184;
const _: () = assert!(CREATION_SHIFT + 36 == TOP_SHIFT && COUNTER_SHIFT + 64 == INDEX_DIGIT_SHIFT);
const BIT_LENGTH: u32 = 186;

impl SequenceParts {
    pub fn encode(&self) -> String {
        self.value().to_decimal()
    }

    /// Appends the decimal text `encode` returns, without a `String` of its own (response
    /// encoders write it straight into their output).
    pub fn append_to(&self, out: &mut Vec<u8>) {
        let mut digits = [0; DECIMAL_DIGITS_MAX];
        let start = self.value().write_decimal(&mut digits);
        out.extend_from_slice(&digits[start..]);
    }

    fn value(&self) -> U192 {
        assert!(self.counter <= COUNTER_MAX, "sequence counter overflow");
        let mut value = U192([0; 3]);
        value.set_bits(VERSION_SHIFT, 4, VERSION);
        value.set_bits(INDEX_SHIFT, 32, u64::from(self.shard_index));
        value.set_bits(ARRIVAL_SHIFT, 36, self.arrival_secs & SECS_MASK);
        value.set_bits(COUNTER_SHIFT, 64, self.counter);
        value.set_bits(INDEX_DIGIT_SHIFT, 4, u64::from(self.shard_index & 0xf));
        value.set_bits(CREATION_SHIFT, 36, self.creation_secs & SECS_MASK);
        value.set_bits(TOP_SHIFT, 4, TOP_NIBBLE);
        value
    }

    /// Decodes a decimal sequence number of our layout.
    ///
    /// # Errors
    /// `MalformedSequenceNumber` when the text is not a canonical decimal of a 186-bit number
    /// carrying the version-2 markers.
    pub fn decode(text: &str) -> Result<SequenceParts, MalformedSequenceNumber> {
        if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
            return Err(MalformedSequenceNumber);
        }
        let value = U192::from_decimal(text).ok_or(MalformedSequenceNumber)?;
        let well_formed = value.bit_length() == BIT_LENGTH
            && value.bits(TOP_SHIFT, 4) == TOP_NIBBLE
            && value.bits(VERSION_SHIFT, 4) == VERSION
            && value.bits(RESERVED_SHIFT, 8) == 0
            && value.bits(INDEX_DIGIT_SHIFT, 4) == value.bits(INDEX_SHIFT, 4);
        if !well_formed {
            return Err(MalformedSequenceNumber);
        }
        Ok(SequenceParts {
            creation_secs: value.bits(CREATION_SHIFT, 36),
            shard_index: value.bits(INDEX_SHIFT, 32) as u32,
            counter: value.bits(COUNTER_SHIFT, 64),
            arrival_secs: value.bits(ARRIVAL_SHIFT, 36),
        })
    }
}

impl fmt::Display for SequenceParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// Whether `text` matches the model's SequenceNumber pattern `0|([1-9]\d{0,128})`.
pub fn is_decimal_sequence(text: &str) -> bool {
    text == "0"
        || (!text.is_empty()
            && text.len() <= 129
            && !text.starts_with('0')
            && text.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_the_aws_documentation_example() {
        let parts =
            SequenceParts::decode("49590338271490256608559692538361571095921575989136588898")
                .expect("AWS's own example is well formed");
        assert_eq!(parts.shard_index, 6);
        // Shard created 2018-11-21.
        assert!((1_542_758_400..1_542_844_800).contains(&parts.creation_secs));
        assert_eq!(
            parts.encode(),
            "49590338271490256608559692538361571095921575989136588898"
        );
    }

    #[test]
    fn rejects_foreign_numbers() {
        for text in ["0", "1", "0123", "12345678901234567890", "abc", ""] {
            assert!(SequenceParts::decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn decimal_conversion_at_the_edges() {
        let cases = [
            ([0, 0, 0], "0"),
            ([0, 0, 1], "1"),
            ([0, 0, 999_999_999], "999999999"),
            ([0, 0, 1_000_000_000], "1000000000"),
            ([0, 0, u64::MAX], "18446744073709551615"),
            ([0, 1, 0], "18446744073709551616"),
            (
                [u64::MAX; 3],
                "6277101735386680763835789423207666416102355444464034512895",
            ),
        ];
        for (limbs, text) in cases {
            assert_eq!(U192(limbs).to_decimal(), text);
            assert_eq!(U192::from_decimal(text), Some(U192(limbs)));
        }
    }

    proptest! {
        #[test]
        fn decimal_conversion_round_trips(limbs in any::<[u64; 3]>()) {
            let text = U192(limbs).to_decimal();
            prop_assert!(text == "0" || !text.starts_with('0'), "canonical: {}", text);
            prop_assert_eq!(U192::from_decimal(&text), Some(U192(limbs)));
        }

        #[test]
        fn round_trips(creation in 0u64..(1 << 36), index in any::<u32>(), counter in 0..=COUNTER_MAX, arrival in 0u64..(1 << 36)) {
            let parts = SequenceParts { creation_secs: creation, shard_index: index, counter, arrival_secs: arrival };
            let text = parts.encode();
            let mut appended = b"prefix".to_vec();
            parts.append_to(&mut appended);
            prop_assert_eq!(&appended[6..], text.as_bytes());
            prop_assert_eq!(text.len(), 56);
            prop_assert!(is_decimal_sequence(&text));
            prop_assert_eq!(SequenceParts::decode(&text), Ok(parts));
        }

        #[test]
        fn orders_numerically_by_counter_within_a_shard(creation in 0u64..(1 << 36), index in any::<u32>(), a in 0..COUNTER_MAX, b in 0..COUNTER_MAX, t1 in 0u64..(1<<36), t2 in 0u64..(1<<36)) {
            let x = SequenceParts { creation_secs: creation, shard_index: index, counter: a, arrival_secs: t1 }.encode();
            let y = SequenceParts { creation_secs: creation, shard_index: index, counter: b, arrival_secs: t2 }.encode();
            // Equal-length decimals compare like integers.
            if a < b { prop_assert!(x < y); }
        }

        #[test]
        fn decoder_never_panics(text in "[0-9]{0,140}") {
            let _ = SequenceParts::decode(&text);
        }
    }
}
