//! Read-back verification: every acknowledged record came back exactly once, in the shard
//! and at the sequence number its acknowledgement named, in sequence order per shard, with
//! the bytes that were sent (checked by the hash inside each payload, see `payload`).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::payload::{self, Decoded, hash64};

/// Problems listed by id in the report (the counts are always complete).
const SAMPLES_MAX: usize = 5;

fn sequence_hash(sequence: &str) -> u64 {
    hash64(sequence.as_bytes(), 0x5e9)
}

/// Kinesis sequence numbers are decimal integers without leading zeros.
fn compare_sequences(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What the producers were told: record id -> (shard index, sequence number).
#[derive(Default)]
pub struct Acks {
    acked: HashMap<u64, (u32, u64)>,
    /// Ids sent in requests that failed without an answer: they may or may not be stored.
    uncertain: HashSet<u64>,
}

impl Acks {
    pub fn ack(&mut self, id: u64, shard: u32, sequence: &str) {
        self.acked.insert(id, (shard, sequence_hash(sequence)));
    }

    pub fn uncertain(&mut self, id: u64) {
        self.uncertain.insert(id);
    }

    pub fn merge(&mut self, other: Acks) {
        self.acked.extend(other.acked);
        self.uncertain.extend(other.uncertain);
    }
}

/// What one shard's reader saw, in the order it saw it.
pub struct ShardCheck {
    shard: u32,
    last_sequence: Option<String>,
    /// (record id, sequence-number hash) per record with a valid payload.
    seen: Vec<(u64, u64)>,
    pub records: u64,
    pub bytes: u64,
    corrupt: u64,
    out_of_order: u64,
    samples: Vec<String>,
}

impl ShardCheck {
    pub fn new(shard: u32) -> ShardCheck {
        ShardCheck {
            shard,
            last_sequence: None,
            seen: Vec::new(),
            records: 0,
            bytes: 0,
            corrupt: 0,
            out_of_order: 0,
            samples: Vec::new(),
        }
    }

    fn sample(&mut self, text: impl FnOnce() -> String) {
        if self.samples.len() < SAMPLES_MAX {
            self.samples.push(text());
        }
    }

    /// Records one record read from this shard; returns its decoded header when the payload
    /// checks out.
    pub fn observe(&mut self, sequence: &str, data: &[u8], size: usize) -> Option<Decoded> {
        let shard = self.shard;
        self.records += 1;
        self.bytes += data.len() as u64;
        if let Some(last) = &self.last_sequence
            && compare_sequences(sequence, last) != Ordering::Greater
        {
            self.out_of_order += 1;
            let last = last.clone();
            self.sample(|| format!("shard {shard}: {sequence} read after {last}"));
        }
        self.last_sequence = Some(sequence.to_owned());
        match payload::decode(data, size) {
            Some(decoded) => {
                self.seen.push((decoded.id, sequence_hash(sequence)));
                Some(decoded)
            }
            None => {
                self.corrupt += 1;
                self.sample(|| {
                    format!(
                        "shard {shard}: record {sequence} is damaged ({} bytes)",
                        data.len()
                    )
                });
                None
            }
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub acked: u64,
    pub read: u64,
    pub missing: u64,
    pub duplicates: u64,
    /// Valid payloads that nobody acknowledged (and that were not in a failed request).
    pub unexpected: u64,
    /// Read from another shard, or at another sequence number, than acknowledged.
    pub misplaced: u64,
    pub out_of_order: u64,
    pub corrupt: u64,
    /// Records of requests that failed without an answer and were read back anyway.
    pub uncertain_stored: u64,
    pub samples: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.missing == 0
            && self.duplicates == 0
            && self.unexpected == 0
            && self.misplaced == 0
            && self.out_of_order == 0
            && self.corrupt == 0
    }

    pub fn summary(&self) -> String {
        if self.ok() {
            return format!(
                "OK: {} acknowledged, {} consumed, exactly once, in order, bytes intact",
                self.acked, self.read
            );
        }
        let mut problems = Vec::new();
        for (name, count) in [
            ("missing", self.missing),
            ("duplicated", self.duplicates),
            ("unexpected", self.unexpected),
            ("misplaced", self.misplaced),
            ("out of order", self.out_of_order),
            ("corrupt", self.corrupt),
        ] {
            if count > 0 {
                problems.push(format!("{count} {name}"));
            }
        }
        format!(
            "FAILED: {} ({} acknowledged, {} consumed)",
            problems.join(", "),
            self.acked,
            self.read
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.ok(),
            "acked": self.acked,
            "read": self.read,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "unexpected": self.unexpected,
            "misplaced": self.misplaced,
            "out_of_order": self.out_of_order,
            "corrupt": self.corrupt,
            "uncertain_stored": self.uncertain_stored,
            "samples": self.samples,
        })
    }
}

pub fn verdict(acks: &Acks, checks: &[ShardCheck]) -> Verdict {
    let mut verdict = Verdict {
        acked: acks.acked.len() as u64,
        ..Verdict::default()
    };
    let mut samples = Vec::new();
    let mut seen_count: HashMap<u64, u32> = HashMap::with_capacity(acks.acked.len());
    for check in checks {
        verdict.read += check.records;
        verdict.corrupt += check.corrupt;
        verdict.out_of_order += check.out_of_order;
        samples.extend(check.samples.iter().cloned());
        for &(id, sequence) in &check.seen {
            let count = seen_count.entry(id).or_default();
            *count += 1;
            match acks.acked.get(&id) {
                Some(_) if *count > 1 => {
                    verdict.duplicates += 1;
                    samples.push(format!("record {id:#x} read {count} times"));
                }
                Some(&(shard, expected)) => {
                    if shard != check.shard || sequence != expected {
                        verdict.misplaced += 1;
                        samples.push(format!(
                            "record {id:#x} read from shard {} at another position than acknowledged (shard {shard})",
                            check.shard
                        ));
                    }
                }
                None if acks.uncertain.contains(&id) => {
                    if *count > 1 {
                        verdict.duplicates += 1;
                    } else {
                        verdict.uncertain_stored += 1;
                    }
                }
                None => {
                    verdict.unexpected += 1;
                    samples.push(format!("record {id:#x} was never acknowledged"));
                }
            }
        }
    }
    for id in acks.acked.keys() {
        if !seen_count.contains_key(id) {
            verdict.missing += 1;
            if samples.len() < SAMPLES_MAX * 4 {
                samples.push(format!("acknowledged record {id:#x} never read back"));
            }
        }
    }
    samples.truncate(SAMPLES_MAX);
    verdict.samples = samples;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::payload::Payloads;

    const SIZE: usize = 64;

    /// Ten records on two shards, acknowledged, with their reads in order.
    fn scenario() -> (Acks, Vec<(u32, String, Vec<u8>)>) {
        let payloads = Payloads::new(SIZE).unwrap();
        let mut acks = Acks::default();
        let mut reads = Vec::new();
        for i in 0..10u64 {
            let shard = (i % 2) as u32;
            let sequence = format!("{}", 49_000_000_000u64 + i);
            acks.ack(i, shard, &sequence);
            reads.push((shard, sequence, payloads.build(i, i * 10)));
        }
        (acks, reads)
    }

    fn check(acks: &Acks, reads: &[(u32, String, Vec<u8>)]) -> Verdict {
        let mut checks = vec![ShardCheck::new(0), ShardCheck::new(1)];
        for (shard, sequence, data) in reads {
            checks[*shard as usize].observe(sequence, data, SIZE);
        }
        verdict(acks, &checks)
    }

    #[test]
    fn a_faithful_read_back_passes() {
        let (acks, reads) = scenario();
        let verdict = check(&acks, &reads);
        assert!(verdict.ok(), "{verdict:?}");
        assert_eq!((verdict.acked, verdict.read), (10, 10));
    }

    #[test]
    fn a_lost_record_fails() {
        let (acks, mut reads) = scenario();
        reads.remove(3);
        let verdict = check(&acks, &reads);
        assert!(!verdict.ok());
        assert_eq!(verdict.missing, 1);
    }

    #[test]
    fn a_duplicated_record_fails() {
        let (acks, mut reads) = scenario();
        let mut copy = reads[4].clone();
        copy.1 = "49000000099".into(); // stored twice, at a later position
        reads.push(copy);
        let verdict = check(&acks, &reads);
        assert_eq!(verdict.duplicates, 1, "{verdict:?}");
        assert!(!verdict.ok());
    }

    #[test]
    fn a_changed_byte_fails() {
        let (acks, mut reads) = scenario();
        let last = reads[5].2.len() - 1;
        reads[5].2[last] ^= 0x20;
        let verdict = check(&acks, &reads);
        assert_eq!(verdict.corrupt, 1);
        assert_eq!(
            verdict.missing, 1,
            "the damaged record does not count as read"
        );
        assert!(!verdict.ok());
    }

    #[test]
    fn records_out_of_sequence_order_fail() {
        let (acks, mut reads) = scenario();
        reads.swap(0, 2); // both on shard 0
        let verdict = check(&acks, &reads);
        assert!(verdict.out_of_order >= 1, "{verdict:?}");
        assert!(!verdict.ok());
    }

    #[test]
    fn a_record_in_the_wrong_shard_or_position_fails() {
        let (acks, mut reads) = scenario();
        reads[1].0 = 0;
        reads[1].1 = "49000000000".into();
        reads.sort_by(|a, b| compare_sequences(&a.1, &b.1));
        let verdict = check(&acks, &reads);
        assert!(verdict.misplaced >= 1, "{verdict:?}");
        assert!(!verdict.ok());
    }

    #[test]
    fn an_unacknowledged_record_fails_unless_its_request_failed() {
        let (mut acks, mut reads) = scenario();
        let payloads = Payloads::new(SIZE).unwrap();
        reads.push((0, "49000000100".into(), payloads.build(77, 0)));
        let verdict = check(&acks, &reads);
        assert_eq!(verdict.unexpected, 1);
        assert!(!verdict.ok());
        acks.uncertain(77);
        let verdict = check(&acks, &reads);
        assert!(verdict.ok(), "{verdict:?}");
        assert_eq!(verdict.uncertain_stored, 1);
    }

    #[test]
    fn sequence_numbers_compare_as_integers() {
        assert_eq!(compare_sequences("9", "10"), Ordering::Less);
        assert_eq!(compare_sequences("11", "10"), Ordering::Greater);
        assert_eq!(compare_sequences("10", "10"), Ordering::Equal);
    }
}
