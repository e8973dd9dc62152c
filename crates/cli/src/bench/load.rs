//! Producers: PutRecords / PutRecord workers, one request in flight each, until a deadline
//! or a record budget runs out; and the fixed-rate producer of the latency scenario.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use hdrhistogram::Histogram;

use super::payload::{Payloads, SplitMix};
use super::raw;
use super::stats;
use super::verify::Acks;

/// Pause after a failed request, so a dead server is not hammered in a tight loop.
pub const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// What every producer shares.
pub struct Target {
    pub client: Client,
    pub stream: String,
    /// Shard id -> index in the sorted shard list.
    pub shard_index: HashMap<String, u32>,
    pub payloads: Payloads,
    /// Time base of the send timestamps inside payloads.
    pub epoch: Instant,
    /// Distinct partition keys; 0 = a random key per record.
    pub key_spread: u64,
    /// Producers send hand-built signed requests here instead of through `client`.
    pub http: Option<Arc<raw::Endpoint>>,
}

impl Target {
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn key(&self, rng: &mut SplitMix) -> String {
        let value = rng.next_u64();
        if self.key_spread == 0 {
            format!("{value:016x}")
        } else {
            format!("key-{}", value % self.key_spread)
        }
    }

    fn shard(&self, shard_id: &str) -> u32 {
        self.shard_index.get(shard_id).copied().unwrap_or(u32::MAX)
    }
}

/// The totals of one or more producers.
pub struct Produced {
    pub acks: Acks,
    pub records: u64,
    pub bytes: u64,
    pub failed: u64,
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency: Histogram<u64>,
}

impl Produced {
    pub fn new() -> Produced {
        Produced {
            acks: Acks::default(),
            records: 0,
            bytes: 0,
            failed: 0,
            requests: 0,
            errors: BTreeMap::new(),
            latency: stats::histogram(),
        }
    }

    pub fn merge(&mut self, other: Produced) {
        self.acks.merge(other.acks);
        self.records += other.records;
        self.bytes += other.bytes;
        self.failed += other.failed;
        self.requests += other.requests;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    pub fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

pub fn error_kind<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    use aws_sdk_kinesis::error::SdkError;
    match error {
        SdkError::ServiceError(context) => context
            .err()
            .code()
            .unwrap_or("UnknownServiceError")
            .to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "connection".to_owned(),
        SdkError::ResponseError(_) => "bad response".to_owned(),
        _ => "request".to_owned(),
    }
}

/// How many records are left to send across all workers.
pub struct Budget {
    remaining: AtomicU64,
    pub deadline: Instant,
}

impl Budget {
    pub fn new(records: u64, deadline: Instant) -> Budget {
        Budget {
            remaining: AtomicU64::new(records),
            deadline,
        }
    }

    /// Claims up to `want` records; 0 when the budget or the time is up.
    pub fn claim(&self, want: u64) -> u64 {
        if Instant::now() >= self.deadline {
            return 0;
        }
        let mut current = self.remaining.load(Ordering::Relaxed);
        loop {
            let take = current.min(want);
            if take == 0 {
                return 0;
            }
            match self.remaining.compare_exchange_weak(
                current,
                current - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(actual) => current = actual,
            }
        }
    }
}

/// One worker: `batch` 0 sends PutRecord, otherwise PutRecords of up to `batch` records.
/// `verify` keeps every acknowledgement for read-back; `progress` counts acknowledged records.
pub async fn put_worker(
    target: Arc<Target>,
    worker: u64,
    batch: usize,
    budget: Arc<Budget>,
    verify: bool,
    progress: Arc<AtomicU64>,
) -> Produced {
    let mut out = Produced::new();
    let mut http = raw::Producer::new();
    let mut rng = SplitMix(0xB0B0_0000 ^ worker.wrapping_mul(0x1234_5678_9ABC_DEF1));
    let mut counter = 0u64;
    let want = batch.max(1) as u64;
    loop {
        let count = budget.claim(want);
        if count == 0 {
            break;
        }
        let ids: Vec<u64> = (0..count)
            .map(|_| {
                counter += 1;
                (worker << 40) | counter
            })
            .collect();
        let sent = put_ids(
            &target,
            &mut http,
            &ids,
            batch == 0,
            &mut rng,
            verify,
            &mut out,
        )
        .await;
        progress.fetch_add(sent, Ordering::Relaxed);
        if sent == 0 && Instant::now() < budget.deadline {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    out
}

/// Sends `ids` as one PutRecords (or one PutRecord when `single`), through the SDK or, when
/// the target says so, on `http`; returns how many were acknowledged.
pub async fn put_ids(
    target: &Target,
    http: &mut raw::Producer,
    ids: &[u64],
    single: bool,
    rng: &mut SplitMix,
    verify: bool,
    out: &mut Produced,
) -> u64 {
    let size = target.payloads.size() as u64;
    let sent_us = target.now_us();
    out.requests += 1;
    let records: Vec<(String, Vec<u8>)> = ids
        .iter()
        .map(|&id| (target.key(rng), target.payloads.build(id, sent_us)))
        .collect();
    let started = Instant::now();
    let outcome = match &target.http {
        Some(endpoint) => send_http(target, endpoint, http, records, single).await,
        None => send_sdk(target, records, single).await,
    };
    stats::record(&mut out.latency, started.elapsed());
    match outcome {
        Ok(results) => {
            let mut acked = 0;
            for (&id, result) in ids.iter().zip(results) {
                match result {
                    Ok((shard, sequence)) => {
                        if verify {
                            out.acks.ack(id, target.shard(&shard), &sequence);
                        }
                        acked += 1;
                    }
                    Err(code) => {
                        out.failed += 1;
                        out.error(code);
                    }
                }
            }
            out.records += acked;
            out.bytes += acked * size;
            acked
        }
        Err(kind) => {
            out.error(kind);
            if verify {
                for &id in ids {
                    out.acks.uncertain(id);
                }
            }
            0
        }
    }
}

async fn send_http(
    target: &Target,
    endpoint: &raw::Endpoint,
    http: &mut raw::Producer,
    mut records: Vec<(String, Vec<u8>)>,
    single: bool,
) -> Result<Vec<raw::RecordOutcome>, String> {
    if single && let Some((key, data)) = records.pop() {
        let placed = http
            .put_record(endpoint, &target.stream, &key, &data)
            .await?;
        return Ok(vec![Ok(placed)]);
    }
    http.put_records(endpoint, &target.stream, &records).await
}

async fn send_sdk(
    target: &Target,
    mut records: Vec<(String, Vec<u8>)>,
    single: bool,
) -> Result<Vec<raw::RecordOutcome>, String> {
    if single && let Some((key, data)) = records.pop() {
        let response = target
            .client
            .put_record()
            .stream_name(&target.stream)
            .partition_key(key)
            .data(Blob::new(data))
            .send()
            .await
            .map_err(|error| error_kind(&error))?;
        return Ok(vec![Ok((
            response.shard_id().to_owned(),
            response.sequence_number().to_owned(),
        ))]);
    }
    let entries: Vec<PutRecordsRequestEntry> = records
        .into_iter()
        .map(|(key, data)| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(key)
                .build()
                .expect("data and partition key are set")
        })
        .collect();
    let response = target
        .client
        .put_records()
        .stream_name(&target.stream)
        .set_records(Some(entries))
        .send()
        .await
        .map_err(|error| error_kind(&error))?;
    Ok(response
        .records()
        .iter()
        .map(|entry| match (entry.shard_id(), entry.sequence_number()) {
            (Some(shard), Some(sequence)) => Ok((shard.to_owned(), sequence.to_owned())),
            _ => Err(entry.error_code().unwrap_or("FailedRecord").to_owned()),
        })
        .collect())
}

/// The latency scenario's producer: `batch` records every `period` until `until`, skipping
/// ticks that a slow request overran.
pub async fn paced_producer(
    target: Arc<Target>,
    worker: u64,
    batch: usize,
    period: Duration,
    until: Instant,
    progress: Arc<AtomicU64>,
) -> Produced {
    let mut out = Produced::new();
    let mut http = raw::Producer::new();
    let mut rng = SplitMix(0xE2E0_0000 ^ worker.wrapping_mul(0x1234_5678_9ABC_DEF1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut counter = 0u64;
    loop {
        ticker.tick().await;
        if Instant::now() >= until {
            break;
        }
        let ids: Vec<u64> = (0..batch.max(1))
            .map(|_| {
                counter += 1;
                (worker << 40) | counter
            })
            .collect();
        let sent = put_ids(
            &target,
            &mut http,
            &ids,
            batch <= 1,
            &mut rng,
            true,
            &mut out,
        )
        .await;
        progress.fetch_add(sent, Ordering::Relaxed);
    }
    out
}
