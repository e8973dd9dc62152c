//! Enhanced fan-out push (SubscribeToShard): one subscription per (consumer, shard).
//!
//! A subscription is a cursor over the shard's log that wakes on the store's durable-tail
//! watch, so records are pushed as soon as they are acknowledged, with no polling interval.
//! It reads through the same store API as GetRecords: a slow subscriber only falls behind,
//! it never holds back producers or other subscribers, and catches up from storage.
//!
//! Rules kept here (AWS's): a second subscription of the same consumer to the same shard
//! within 5 seconds is refused with ResourceInUseException; a later one takes over, and the
//! older stream ends with a ResourceInUseException event. A subscription lasts at most
//! `subscription_lifetime` (5 minutes), then ends normally and the client resubscribes from
//! the last ContinuationSequenceNumber with AFTER_SEQUENCE_NUMBER.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use millstream_storage::StorageError;
use millstream_types::{SequenceParts, ShardId};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::data::{ChildShardOut, PageRecords, child_shards};
use crate::meta::ShardMeta;
use crate::{IteratorType, Result, StreamRef, StreamView, Streams, StreamsError, now_ms};

/// A second subscription inside this window is refused rather than taking over.
const TAKEOVER_AFTER: Duration = Duration::from_secs(5);
/// Bytes of record data per pushed event: EFO's per-consumer, per-shard budget per second.
const EVENT_BYTES_MAX: usize = 2 * 1024 * 1024;
const EVENT_RECORDS_MAX: usize = 10_000;

/// Where a subscription starts (the model's StartingPosition).
#[derive(Debug, Clone)]
pub struct StartingPosition {
    pub kind: IteratorType,
    pub sequence_number: Option<String>,
    pub timestamp_ms: Option<i64>,
}

/// One SubscribeToShardEvent.
#[derive(Debug, Clone)]
pub struct PushedEvent {
    /// As stored: the encoder writes each sequence number and key straight into the event.
    pub records: PageRecords,
    /// Absent only on the final event of a closed shard.
    pub continuation_sequence_number: Option<String>,
    pub millis_behind_latest: u64,
    pub child_shards: Vec<ChildShardOut>,
}

/// What a subscription yields next.
#[derive(Debug)]
pub enum SubscriptionItem {
    Event(PushedEvent),
    /// A modeled error to send as an exception event; the stream ends after it.
    Exception {
        code: &'static str,
        message: String,
    },
}

struct Slot {
    started: Instant,
    generation: u64,
    taken_over: watch::Sender<bool>,
}

/// Active subscriptions by (consumer ARN, shard index).
#[derive(Default)]
pub(crate) struct SubscriptionRegistry {
    slots: parking_lot::Mutex<HashMap<(String, u32), Slot>>,
    generations: AtomicU64,
}

pub struct Subscription {
    streams: Streams,
    view: Arc<StreamView>,
    shard: ShardMeta,
    key: (String, u32),
    generation: u64,
    position: u64,
    last_arrival_ms: u64,
    ends_at: Instant,
    heartbeat: Duration,
    taken_over: watch::Receiver<bool>,
    tail: watch::Receiver<u64>,
    /// The stream's change counter: a reshard may have closed our shard.
    changes: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    finished: bool,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut slots = self.streams.inner.subscriptions.slots.lock();
        if slots
            .get(&self.key)
            .is_some_and(|s| s.generation == self.generation)
        {
            slots.remove(&self.key);
        }
    }
}

impl Streams {
    /// Starts a subscription of an ACTIVE consumer to one shard.
    ///
    /// # Errors
    /// `NotFound` for an unknown consumer or shard, `InUse` for a consumer that is not ACTIVE
    /// or a subscription made in the last 5 seconds, the iterator errors for a bad position.
    pub async fn subscribe(
        &self,
        consumer_arn: &str,
        shard_text: &str,
        start: StartingPosition,
    ) -> Result<Subscription> {
        let consumer = self.describe_consumer(None, None, Some(consumer_arn))?;
        if consumer.status != "ACTIVE" {
            return Err(StreamsError::InUse(format!(
                "Consumer {consumer_arn} under account {} is not in ACTIVE state.",
                self.account()
            )));
        }
        let view = self.data_view(&StreamRef {
            name: None,
            arn: Some(consumer.stream_arn.clone()),
        })?;
        let now = now_ms();
        let parsed = ShardId::parse(shard_text);
        let shard = parsed
            .and_then(|id| view.shard(id))
            .filter(|s| !view.is_expired(s, now))
            .cloned()
            .ok_or_else(|| {
                let shard = parsed.map_or_else(|| shard_text.to_string(), |id| id.to_string());
                StreamsError::NotFound(format!(
                    "Shard {shard} in stream {} under account {} does not exist",
                    view.meta.name,
                    self.account()
                ))
            })?;
        let position = self
            .start_position(
                &view,
                &shard,
                start.kind,
                start.sequence_number.as_deref(),
                start.timestamp_ms,
                "SubscribeToShard",
            )
            .await?;
        let key = (consumer.arn.clone(), shard.index);
        let registry = &self.inner.subscriptions;
        let generation = registry.generations.fetch_add(1, Ordering::Relaxed);
        let (taken_over_tx, taken_over) = watch::channel(false);
        {
            let mut slots = registry.slots.lock();
            if let Some(existing) = slots.get(&key) {
                if existing.started.elapsed() < TAKEOVER_AFTER {
                    return Err(StreamsError::InUse(format!(
                        "Another active subscription exists for consumer {} on shard {}. Wait {} seconds between subscriptions.",
                        consumer.arn,
                        ShardId(shard.index),
                        TAKEOVER_AFTER.as_secs()
                    )));
                }
                existing.taken_over.send_replace(true);
            }
            slots.insert(
                key.clone(),
                Slot {
                    started: Instant::now(),
                    generation,
                    taken_over: taken_over_tx,
                },
            );
        }
        let tail = self.inner.store.watch_tail(shard.log_id)?;
        let changes = self.entry(&view.meta.name)?.changes.subscribe();
        let config = &self.inner.config;
        Ok(Subscription {
            streams: self.clone(),
            last_arrival_ms: shard.created_ms,
            view,
            shard,
            key,
            generation,
            position,
            ends_at: Instant::now() + config.subscription_lifetime,
            heartbeat: config.subscription_heartbeat,
            taken_over,
            tail,
            changes,
            shutdown: self.inner.shutdown.subscribe(),
            finished: false,
        })
    }
}

impl Subscription {
    /// The sequence number a client resubscribes AFTER to continue exactly here: that of the
    /// last delivered record, or, before any, the shard's starting number.
    fn continuation(&self) -> String {
        SequenceParts {
            creation_secs: self.shard.created_ms / 1000,
            shard_index: self.shard.index,
            counter: self.position,
            arrival_secs: self.last_arrival_ms / 1000,
        }
        .encode()
    }

    /// Picks up the shard's latest metadata (it may have been closed by a reshard).
    fn refresh_shard(&mut self) {
        let Ok(view) = self
            .streams
            .describe(&StreamRef::name(self.view.meta.name.clone()))
        else {
            return;
        };
        if view.meta.incarnation != self.view.meta.incarnation {
            return;
        }
        if let Some(shard) = view.shard(ShardId(self.shard.index)) {
            self.shard = shard.clone();
        }
        self.view = view;
    }

    fn end_position(&self) -> Option<u64> {
        self.shard.closed.map(|c| c.end_position)
    }

    /// The next event, or `None` once the subscription is over (lifetime reached, shard
    /// finished, taken over, or the server shutting down).
    pub async fn next(&mut self) -> Option<SubscriptionItem> {
        loop {
            if self.finished {
                return None;
            }
            if *self.taken_over.borrow() {
                self.finished = true;
                return Some(SubscriptionItem::Exception {
                    code: "ResourceInUseException",
                    message: format!(
                        "Another subscription to shard {} by consumer {} has replaced this one.",
                        ShardId(self.shard.index),
                        self.key.0
                    ),
                });
            }
            if *self.shutdown.borrow() || Instant::now() >= self.ends_at {
                self.finished = true;
                return None;
            }
            match self.read_batch().await {
                Ok(Some(event)) => return Some(SubscriptionItem::Event(event)),
                Ok(None) => {}
                Err(err) => {
                    self.finished = true;
                    tracing::error!(error = %err, "subscription read failed");
                    return Some(SubscriptionItem::Exception {
                        code: "InternalFailureException",
                        message: "Internal Service Failure".to_string(),
                    });
                }
            }
            // Caught up: wait for new records, a takeover, shutdown, or the heartbeat.
            let deadline = (Instant::now() + self.heartbeat).min(self.ends_at);
            tokio::select! {
                changed = self.tail.changed() => {
                    if changed.is_err() {
                        // The log is gone (stream deleted).
                        self.finished = true;
                        return Some(SubscriptionItem::Exception {
                            code: "ResourceNotFoundException",
                            message: format!("Shard {} in stream {} under account {} does not exist", ShardId(self.shard.index), self.view.meta.name, self.streams.config().account_id),
                        });
                    }
                }
                _ = self.taken_over.changed() => {}
                _ = self.shutdown.changed() => {}
                changed = self.changes.changed() => {
                    if changed.is_ok() {
                        self.refresh_shard();
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    if Instant::now() < self.ends_at {
                        // Idle for a heartbeat: an empty event lets the client checkpoint and
                        // shows the connection is alive (the KCL times out silent ones).
                        return Some(SubscriptionItem::Event(PushedEvent {
                            records: self.no_records(),
                            continuation_sequence_number: Some(self.continuation()),
                            millis_behind_latest: 0,
                            child_shards: Vec::new(),
                        }));
                    }
                }
            }
        }
    }

    fn no_records(&self) -> PageRecords {
        PageRecords::new(self.shard.created_ms, self.shard.index, Vec::new())
    }

    /// Records from the current position, or the end-of-shard event, or `None` when caught up.
    async fn read_batch(&mut self) -> Result<Option<PushedEvent>, StorageError> {
        let store = &self.streams.inner.store;
        let stored = store
            .read(
                self.shard.log_id,
                self.position,
                EVENT_RECORDS_MAX,
                EVENT_BYTES_MAX,
            )
            .await?;
        if let Some(last) = stored.last() {
            self.position = last.sequence + 1;
            self.last_arrival_ms = last.arrival_ms;
            let cutoff = now_ms().saturating_sub(self.view.retention_ms());
            let records = PageRecords::new(
                self.shard.created_ms,
                self.shard.index,
                stored
                    .into_iter()
                    .filter(|r| r.arrival_ms >= cutoff)
                    .collect(),
            );
            let tail = store.tail(self.shard.log_id)?;
            let millis_behind_latest = if self.position >= tail.next_sequence {
                0
            } else {
                now_ms().saturating_sub(self.last_arrival_ms)
            };
            return Ok(Some(PushedEvent {
                records,
                continuation_sequence_number: Some(self.continuation()),
                millis_behind_latest,
                child_shards: Vec::new(),
            }));
        }
        if let Some(end) = self.end_position()
            && self.position >= end
        {
            // The shard is finished: the last event names the children and carries no
            // continuation, so the client moves on to them.
            self.finished = true;
            let view = self
                .streams
                .describe(&StreamRef::name(self.view.meta.name.clone()))
                .unwrap_or_else(|_| self.view.clone());
            return Ok(Some(PushedEvent {
                records: self.no_records(),
                continuation_sequence_number: None,
                millis_behind_latest: 0,
                child_shards: child_shards(&view, self.shard.index),
            }));
        }
        Ok(None)
    }
}
