//! `Timestamp`: epoch seconds (with a millisecond fraction) in JSON, CBOR tag 1 + integer
//! epoch *milliseconds* in CBOR. The CBOR form violates RFC 8949 (which says seconds), but it
//! is what the AWS SDK for Java sends and expects, in both directions.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::codec::type_mismatch;

/// CBOR tag for "epoch-based date/time".
const CBOR_TAG_EPOCH: u64 = 1;

/// A model `timestamp`, held as epoch milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(epoch_millis: i64) -> Self {
        Self(epoch_millis)
    }

    pub const fn as_millis(&self) -> i64 {
        self.0
    }

    /// JSON rendering: epoch seconds, always with a fraction, never in exponent notation
    /// (`1506440188.749`, `1506440188.0`).
    pub fn to_json_seconds(&self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (seconds, millis) = (abs / 1000, abs % 1000);
        if millis == 0 {
            format!("{sign}{seconds}.0")
        } else {
            let fraction = format!("{millis:03}");
            format!("{sign}{seconds}.{}", fraction.trim_end_matches('0'))
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            // serde_json prints f64 with ryu, which uses plain notation for every magnitude an
            // epoch-seconds value can take (|x| < 1e16) and prints the shortest round-tripping
            // digits, so `x.749` stays `x.749`. `json_seconds_never_use_exponent` pins this.
            serializer.serialize_f64(self.0 as f64 / 1000.0)
        } else {
            ciborium::tag::Required::<i64, CBOR_TAG_EPOCH>(self.0).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(SecondsVisitor)
        } else {
            // Tag 1 (or any tag, or none) around an integer or float count of milliseconds.
            let ciborium::tag::Captured(_tag, Millis(millis)) =
                ciborium::tag::Captured::<Millis>::deserialize(deserializer)?;
            Ok(Timestamp(millis))
        }
    }
}

fn millis_from_seconds_f64<E: de::Error>(seconds: f64) -> Result<i64, E> {
    let millis = (seconds * 1000.0).round();
    if millis.is_finite() && millis.abs() < 9.0e18 {
        Ok(millis as i64)
    } else {
        Err(E::custom(format!("Timestamp out of range: {seconds}")))
    }
}

struct SecondsVisitor;

impl<'de> Visitor<'de> for SecondsVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("epoch seconds")
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Timestamp, E> {
        seconds
            .checked_mul(1000)
            .map(Timestamp)
            .ok_or_else(|| E::custom(format!("Timestamp out of range: {seconds}")))
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Timestamp, E> {
        i64::try_from(seconds)
            .map_err(|_| E::custom(format!("Timestamp out of range: {seconds}")))
            .and_then(|seconds| self.visit_i64(seconds))
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Timestamp, E> {
        millis_from_seconds_f64(seconds).map(Timestamp)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Timestamp, E> {
        Err(E::custom(type_mismatch::boolean("an Date")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Timestamp, E> {
        Err(E::custom(type_mismatch::string("an Date")))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
        Err(de::Error::custom(type_mismatch::START_OF_LIST))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
        Err(de::Error::custom(type_mismatch::START_OF_STRUCTURE))
    }
}

/// Epoch milliseconds as CBOR carries them: an integer, or (unverified, tolerated) a float.
struct Millis(i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MillisVisitor)
    }
}

struct MillisVisitor;

impl<'de> Visitor<'de> for MillisVisitor {
    type Value = Millis;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("epoch milliseconds")
    }

    fn visit_i64<E: de::Error>(self, millis: i64) -> Result<Millis, E> {
        Ok(Millis(millis))
    }

    fn visit_u64<E: de::Error>(self, millis: u64) -> Result<Millis, E> {
        i64::try_from(millis)
            .map(Millis)
            .map_err(|_| E::custom(format!("Timestamp out of range: {millis}")))
    }

    fn visit_i128<E: de::Error>(self, millis: i128) -> Result<Millis, E> {
        i64::try_from(millis)
            .map(Millis)
            .map_err(|_| E::custom(format!("Timestamp out of range: {millis}")))
    }

    fn visit_u128<E: de::Error>(self, millis: u128) -> Result<Millis, E> {
        i64::try_from(millis)
            .map(Millis)
            .map_err(|_| E::custom(format!("Timestamp out of range: {millis}")))
    }

    fn visit_f64<E: de::Error>(self, millis: f64) -> Result<Millis, E> {
        if millis.is_finite() && millis.abs() < 9.0e18 {
            Ok(Millis(millis.round() as i64))
        } else {
            Err(E::custom(format!("Timestamp out of range: {millis}")))
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Millis, E> {
        Err(E::custom(type_mismatch::boolean("an Date")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Millis, E> {
        Err(E::custom(type_mismatch::string("an Date")))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Millis, A::Error> {
        Err(de::Error::custom(type_mismatch::START_OF_LIST))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Millis, A::Error> {
        Err(de::Error::custom(type_mismatch::START_OF_STRUCTURE))
    }
}
