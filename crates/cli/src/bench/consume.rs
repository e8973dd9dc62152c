//! Consumers: the read-back reader (GetRecords from TRIM_HORIZON until caught up) and the
//! latency scenario's consumers, polling (GetRecords) or pushed to (SubscribeToShard).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use hdrhistogram::Histogram;

use super::load::{Target, error_kind};
use super::stats;
use super::verify::ShardCheck;

/// GetRecords page size (AWS's maximum).
pub const GET_RECORDS_LIMIT: i32 = 10_000;
const ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How long one wait for a pushed event lasts before the stop flag is looked at again.
const EVENT_WAIT: Duration = Duration::from_millis(100);

/// What one shard's consumer saw.
pub struct Consumed {
    pub check: ShardCheck,
    pub requests: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// GetRecords request latency (read-back) or put-to-consume latency (e2e).
    pub latency: Histogram<u64>,
}

impl Consumed {
    fn new(shard: u32) -> Consumed {
        Consumed {
            check: ShardCheck::new(shard),
            requests: 0,
            errors: 0,
            last_error: None,
            latency: stats::histogram(),
        }
    }

    fn error(&mut self, kind: String) {
        self.errors += 1;
        self.last_error = Some(kind);
    }
}

async fn trim_horizon_iterator(
    client: &Client,
    stream: &str,
    shard_id: &str,
    deadline: Instant,
    out: &mut Consumed,
) -> Option<String> {
    while Instant::now() < deadline {
        let response = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await;
        match response {
            Ok(response) => return response.shard_iterator().map(str::to_owned),
            Err(error) => {
                out.error(error_kind(&error));
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    None
}

/// Reads one shard from TRIM_HORIZON until an empty page with MillisBehindLatest 0 (or the
/// shard's end, or the deadline), checking every record.
pub async fn read_back(
    target: Arc<Target>,
    shard_id: String,
    shard: u32,
    deadline: Instant,
    progress: Arc<AtomicU64>,
) -> Consumed {
    let mut out = Consumed::new(shard);
    let size = target.payloads.size();
    let mut iterator = trim_horizon_iterator(
        &target.client,
        &target.stream,
        &shard_id,
        deadline,
        &mut out,
    )
    .await;
    while let Some(current) = iterator.take() {
        if Instant::now() >= deadline {
            out.error("read deadline".to_owned());
            break;
        }
        let started = Instant::now();
        let response = target
            .client
            .get_records()
            .shard_iterator(&current)
            .limit(GET_RECORDS_LIMIT)
            .send()
            .await;
        out.requests += 1;
        stats::record(&mut out.latency, started.elapsed());
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                out.error(error_kind(&error));
                tokio::time::sleep(ERROR_BACKOFF).await;
                iterator = Some(current);
                continue;
            }
        };
        let records = response.records();
        for record in records {
            out.check
                .observe(record.sequence_number(), record.data().as_ref(), size);
        }
        progress.fetch_add(records.len() as u64, Ordering::Relaxed);
        if records.is_empty() && response.millis_behind_latest() == Some(0) {
            break;
        }
        iterator = response.next_shard_iterator().map(str::to_owned);
    }
    out
}

fn observe_latency(target: &Target, out: &mut Consumed, sequence: &str, data: &[u8]) {
    let now = target.now_us();
    if let Some(decoded) = out.check.observe(sequence, data, target.payloads.size()) {
        let micros = now.saturating_sub(decoded.sent_us).max(1);
        out.latency.saturating_record(micros);
    }
}

/// Polls one shard with GetRecords until `stop` is set and the shard is drained (or the
/// deadline), sleeping `idle` after an empty page.
pub async fn poll(
    target: Arc<Target>,
    shard_id: String,
    shard: u32,
    idle: Duration,
    stop: Arc<AtomicBool>,
    deadline: Instant,
    received: Arc<AtomicU64>,
) -> Consumed {
    let mut out = Consumed::new(shard);
    let mut iterator = trim_horizon_iterator(
        &target.client,
        &target.stream,
        &shard_id,
        deadline,
        &mut out,
    )
    .await;
    while let Some(current) = iterator.take() {
        if Instant::now() >= deadline {
            break;
        }
        let response = target
            .client
            .get_records()
            .shard_iterator(&current)
            .limit(GET_RECORDS_LIMIT)
            .send()
            .await;
        out.requests += 1;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                out.error(error_kind(&error));
                tokio::time::sleep(ERROR_BACKOFF).await;
                iterator = Some(current);
                continue;
            }
        };
        for record in response.records() {
            observe_latency(
                &target,
                &mut out,
                record.sequence_number(),
                record.data().as_ref(),
            );
        }
        received.fetch_add(response.records().len() as u64, Ordering::Relaxed);
        iterator = response.next_shard_iterator().map(str::to_owned);
        if response.records().is_empty() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if !idle.is_zero() {
                tokio::time::sleep(idle).await;
            }
        }
    }
    out
}

/// Subscribes to one shard through `consumer_arn` from TRIM_HORIZON and takes every pushed
/// record until `stop` is set (or the deadline); resubscribes after the last sequence
/// number seen when a subscription ends.
pub async fn subscribe(
    target: Arc<Target>,
    consumer_arn: String,
    shard_id: String,
    shard: u32,
    stop: Arc<AtomicBool>,
    deadline: Instant,
    received: Arc<AtomicU64>,
) -> Consumed {
    let mut out = Consumed::new(shard);
    let mut continuation: Option<String> = None;
    'subscriptions: while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let position = match &continuation {
            Some(sequence) => StartingPosition::builder()
                .r#type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon),
        }
        .build()
        .expect("type is set");
        out.requests += 1;
        let response = target
            .client
            .subscribe_to_shard()
            .consumer_arn(&consumer_arn)
            .shard_id(&shard_id)
            .starting_position(position)
            .send()
            .await;
        let mut events = match response {
            Ok(response) => response.event_stream,
            Err(error) => {
                out.error(error_kind(&error));
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        loop {
            if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                break 'subscriptions;
            }
            let event = match tokio::time::timeout(EVENT_WAIT, events.recv()).await {
                Err(_) => continue,
                Ok(Ok(Some(event))) => event,
                Ok(Ok(None)) => continue 'subscriptions,
                Ok(Err(error)) => {
                    out.error(format!("event stream: {error}"));
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue 'subscriptions;
                }
            };
            let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event else {
                continue;
            };
            for record in event.records() {
                observe_latency(
                    &target,
                    &mut out,
                    record.sequence_number(),
                    record.data().as_ref(),
                );
            }
            received.fetch_add(event.records().len() as u64, Ordering::Relaxed);
            let next = event.continuation_sequence_number();
            if !next.is_empty() {
                continuation = Some(next.to_owned());
            }
        }
    }
    out
}
