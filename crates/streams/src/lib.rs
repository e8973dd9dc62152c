//! The Kinesis Data Streams domain over Millstream's log engine.
//!
//! ```text
//!  api-kinesis ──► Streams ──► registry (name → StreamEntry) ──► StreamView snapshot (Arc)
//!                     │                                   ▲ replaced whole on every change
//!                     ├──► Catalog (redb): durable StreamMeta, one transaction per change
//!                     └──► Store: one log per shard (writer task per log, shared journal)
//! ```
//!
//! * Every shard is one storage log. A record's storage sequence `s` is sequence counter
//!   `s + 1` in the AWS 186-bit layout (counter 0 is the shard's StartingSequenceNumber).
//! * The data path never takes a lock across `.await`: it clones the stream's current
//!   `Arc<StreamView>` and routes with it. Control-plane changes of one stream are serialised
//!   by that stream's async `control` mutex, committed to redb, and then published by swapping
//!   the snapshot, so readers see either the old or the new shard map, never a mix.
//! * Resharding seals the parent logs (storage stops accepting appends after those queued)
//!   before the new map is published; a put that raced with it gets `Sealed` from storage and
//!   is routed again on the new map. The open shards always partition the hash-key space.
//! * Stream states (CREATING/UPDATING/DELETING) are deadlines in the metadata, so the
//!   configured delays need no timers and survive restarts.

mod consumers;
mod data;
mod error;
mod lifecycle;
mod meta;
mod reshard;
mod subscription;
mod throttle;
mod time;
mod tip;
mod token;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use millstream_storage::{LogId, Store};
use millstream_types::ShardId;
use parking_lot::RwLock;

pub use consumers::ConsumerView;
pub use data::{
    ChildShardOut, FLAG_ENCRYPTED, GetRecordsOutcome, IteratorType, PageRecord, PageRecords,
    PutEntry, PutOutcome, PutResult, RecordOut, ending_sequence_number, partition_key_text,
    sequence_number, starting_sequence_number,
};
pub use error::{Result, StreamsError};
pub use lifecycle::{CreateStream, StreamStatus, StreamSummary};
pub use meta::{AccountSettings, ConsumerMeta, ShardClosed, ShardMeta, StreamMeta, StreamMode};
pub use millstream_storage::StoredRecord;
pub use reshard::{ListShardsRequest, ShardFilter, ShardPage};
pub use subscription::{PushedEvent, StartingPosition, Subscription, SubscriptionItem};
pub use time::{format_java_date, now_ms};
pub use tip::ConnectionPolls;

use crate::meta::Catalog;
use crate::token::TokenSealer;

/// Chosen: ten times the gap between records of a shard in the latency benchmark (~5 ms,
/// BENCHMARKS.md round 11), so a waiting poll there ends on a record rather than empty, and
/// short enough that a client re-polling an empty shard on purpose loses little per poll.
pub const TIP_WAIT_DEFAULT: Duration = Duration::from_millis(50);

/// How the Data Streams service behaves; fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    pub account_id: String,
    pub region: String,
    /// How long a new stream stays CREATING.
    pub create_delay: Duration,
    /// How long a deleted stream stays DELETING.
    pub delete_delay: Duration,
    /// How long a stream stays UPDATING after a reshard, mode or encryption change.
    pub update_delay: Duration,
    /// Account-wide shard quota (DescribeLimits' ShardLimit).
    pub shard_limit: u32,
    /// Hand out `StreamId` in DescribeStreamSummary. Off by default: SDK endpoint rules
    /// send any request carrying a well-formed StreamId to AWS itself, ignoring an endpoint
    /// override.
    pub expose_stream_id: bool,
    /// How long one SubscribeToShard stream lasts before the client must resubscribe.
    pub subscription_lifetime: Duration,
    /// How often an idle subscription sends an empty event.
    pub subscription_heartbeat: Duration,
    /// Emulate AWS's per-shard throughput quotas (ProvisionedThroughputExceededException).
    pub throughput_limits: bool,
    /// How long a GetRecords repeated at an open shard's tip waits for the next record
    /// (module `tip`); zero answers every poll at once.
    pub tip_wait: Duration,
}

impl StreamsConfig {
    pub fn new(account_id: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            region: region.into(),
            create_delay: Duration::ZERO,
            delete_delay: Duration::ZERO,
            update_delay: Duration::ZERO,
            shard_limit: millstream_types::limits::SHARD_LIMIT_DEFAULT,
            expose_stream_id: false,
            subscription_lifetime: Duration::from_secs(300),
            subscription_heartbeat: Duration::from_secs(3),
            throughput_limits: false,
            tip_wait: TIP_WAIT_DEFAULT,
        }
    }

    pub fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            self.region, self.account_id, name
        )
    }
}

/// Names a stream the way most operations accept it: by name, by ARN, or both.
#[derive(Debug, Clone, Default)]
pub struct StreamRef {
    pub name: Option<String>,
    pub arn: Option<String>,
}

impl StreamRef {
    pub fn name(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            arn: None,
        }
    }
}

/// An immutable snapshot of one stream with its derived routing table.
#[derive(Debug)]
pub struct StreamView {
    pub meta: StreamMeta,
    /// Open shards' indexes, sorted by starting hash key.
    open_by_hash: Vec<u32>,
}

impl StreamView {
    fn new(meta: StreamMeta) -> Self {
        let mut open_by_hash: Vec<u32> = meta
            .shards
            .iter()
            .filter(|s| s.is_open())
            .map(|s| s.index)
            .collect();
        open_by_hash.sort_by_key(|i| meta.shards[*i as usize].start_hash);
        debug_assert!(
            covers_hash_space(&meta, &open_by_hash),
            "open shards must tile the key space"
        );
        Self { meta, open_by_hash }
    }

    fn route(&self, hash: u128) -> &ShardMeta {
        let position = self
            .open_by_hash
            .partition_point(|i| self.meta.shards[*i as usize].start_hash <= hash);
        let index = self.open_by_hash[position.checked_sub(1).expect("shard 0 starts at hash 0")];
        let shard = &self.meta.shards[index as usize];
        assert!(shard.contains(hash), "open shards tile the key space");
        shard
    }

    pub fn shard(&self, id: ShardId) -> Option<&ShardMeta> {
        self.meta.shards.get(id.0 as usize)
    }

    pub fn open_shard_count(&self) -> usize {
        self.open_by_hash.len()
    }

    /// A closed shard vanishes once everything in it is older than the retention period.
    pub fn is_expired(&self, shard: &ShardMeta, now_ms: u64) -> bool {
        shard
            .closed
            .is_some_and(|c| c.closed_ms + self.retention_ms() < now_ms)
    }

    pub fn retention_ms(&self) -> u64 {
        u64::from(self.meta.retention_hours) * 3_600_000
    }

    pub fn status(&self, now_ms: u64) -> StreamStatus {
        lifecycle::status_of(&self.meta, now_ms)
    }
}

fn covers_hash_space(meta: &StreamMeta, open_by_hash: &[u32]) -> bool {
    let mut expected_start = 0u128;
    for (position, index) in open_by_hash.iter().enumerate() {
        let shard = &meta.shards[*index as usize];
        if shard.start_hash != expected_start {
            return false;
        }
        if position + 1 == open_by_hash.len() {
            return shard.end_hash == u128::MAX;
        }
        expected_start = shard.end_hash + 1;
    }
    open_by_hash.is_empty() && meta.shards.is_empty()
}

pub(crate) struct StreamEntry {
    view: RwLock<Arc<StreamView>>,
    /// Serialises control-plane changes of this stream (held across storage and redb calls,
    /// hence an async mutex); the data path never touches it.
    control: tokio::sync::Mutex<()>,
    /// Bumped on every published change, so subscriptions learn of a reshard at once.
    changes: tokio::sync::watch::Sender<u64>,
}

impl StreamEntry {
    fn new(meta: StreamMeta) -> Arc<Self> {
        Arc::new(Self {
            view: RwLock::new(Arc::new(StreamView::new(meta))),
            control: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::channel(0).0,
        })
    }
    fn snapshot(&self) -> Arc<StreamView> {
        self.view.read().clone()
    }
    fn publish(&self, meta: StreamMeta) {
        *self.view.write() = Arc::new(StreamView::new(meta));
        self.changes.send_modify(|version| *version += 1);
    }
}

pub(crate) struct Inner {
    config: StreamsConfig,
    store: Store,
    catalog: Catalog,
    sealer: TokenSealer,
    streams: RwLock<BTreeMap<String, Arc<StreamEntry>>>,
    next_log_id: parking_lot::Mutex<LogId>,
    /// Serialises stream creation and deletion so name uniqueness and quotas hold.
    registry_lock: tokio::sync::Mutex<()>,
    account: parking_lot::Mutex<AccountSettings>,
    subscriptions: subscription::SubscriptionRegistry,
    throttle: throttle::Throttle,
    /// Flipped once at shutdown so long-lived subscriptions end and connections can drain.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// GetRecords calls waiting at a shard's tip now (module `tip`).
    tip_waiting: std::sync::atomic::AtomicU64,
}

/// The Data Streams service: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

const SETTING_SECRET: &str = "iterator_secret";
const SETTING_ACCOUNT: &str = "account_settings";

impl Streams {
    /// Opens the metadata in `metadata_path` over an already opened store, re-seals closed
    /// shards, removes logs no shard refers to, and starts the background sweeper.
    ///
    /// # Errors
    /// Metadata or storage failures while loading.
    pub async fn open(
        config: StreamsConfig,
        store: Store,
        metadata_path: &std::path::Path,
    ) -> Result<Streams> {
        let catalog = Catalog::open(metadata_path)?;
        let secret = match catalog.get_setting(SETTING_SECRET)? {
            Some(bytes) if bytes.len() == 32 => {
                let mut secret = [0u8; 32];
                secret.copy_from_slice(&bytes);
                secret
            }
            _ => {
                let secret: [u8; 32] = rand::random();
                catalog.put_setting(SETTING_SECRET, &secret)?;
                secret
            }
        };
        let account = match catalog.get_setting(SETTING_ACCOUNT)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(StreamsError::metadata)?,
            None => AccountSettings::default(),
        };
        let metas = catalog.load_streams()?;
        let mut referenced = std::collections::HashSet::new();
        let mut streams = BTreeMap::new();
        for meta in metas {
            for shard in &meta.shards {
                referenced.insert(shard.log_id);
                store.create_log(shard.log_id).await?;
                if shard.closed.is_some() {
                    store.seal(shard.log_id).await?;
                }
            }
            streams.insert(meta.name.clone(), StreamEntry::new(meta));
        }
        let mut max_log = referenced.iter().copied().max().unwrap_or(0);
        // Other services' logs share the store; only ids in our range are ours to collect.
        for log in store
            .logs()
            .into_iter()
            .filter(|log| millstream_types::log_space::STREAMS.contains(log))
        {
            max_log = max_log.max(log);
            if !referenced.contains(&log) {
                // Left behind by a reshard or deletion interrupted before its metadata
                // commit: no shard can ever read it.
                store.delete_log(log).await?;
            }
        }
        let throttle = throttle::Throttle::new(config.throughput_limits);
        let streams = Streams {
            inner: Arc::new(Inner {
                config,
                store,
                catalog,
                sealer: TokenSealer::new(secret),
                streams: RwLock::new(streams),
                next_log_id: parking_lot::Mutex::new(max_log + 1),
                registry_lock: tokio::sync::Mutex::new(()),
                account: parking_lot::Mutex::new(account),
                subscriptions: subscription::SubscriptionRegistry::default(),
                throttle,
                shutdown: tokio::sync::watch::channel(false).0,
                tip_waiting: Default::default(),
            }),
        };
        let weak = Arc::downgrade(&streams.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut rounds: u64 = 0;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let service = Streams { inner };
                // Retention trimming is cheap but not urgent; deletions should be prompt.
                let trim = rounds.is_multiple_of(300);
                if let Err(err) = service.sweep(trim).await {
                    tracing::warn!(error = %err, "background sweep failed");
                }
                rounds += 1;
            }
        });
        Ok(streams)
    }

    /// Ends every subscription (cleanly, as at the end of its lifetime) so the server can
    /// drain its connections; the service keeps answering other requests.
    /// GetRecords calls waiting at a shard's tip for the next record right now.
    pub fn tip_waiting(&self) -> u64 {
        self.inner
            .tip_waiting
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub fn config(&self) -> &StreamsConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn allocate_log_id(&self) -> LogId {
        let mut next = self.inner.next_log_id.lock();
        let id = *next;
        *next += 1;
        id
    }

    fn account(&self) -> &str {
        &self.inner.config.account_id
    }

    fn stream_not_found(&self, name: &str) -> StreamsError {
        StreamsError::NotFound(format!(
            "Stream {name} under account {} not found.",
            self.account()
        ))
    }

    /// Resolves a name and/or ARN to a stream name.
    fn resolve_name(&self, target: &StreamRef) -> Result<String> {
        let from_arn = match &target.arn {
            Some(arn) => Some(self.name_from_arn(arn)?),
            None => None,
        };
        match (&target.name, from_arn) {
            (Some(name), Some(arn_name)) if *name != arn_name => {
                Err(StreamsError::InvalidArgument(format!(
                    "StreamARN {} does not match StreamName {name}.",
                    target.arn.as_deref().unwrap_or_default()
                )))
            }
            (Some(name), _) => Ok(name.clone()),
            (None, Some(arn_name)) => Ok(arn_name),
            (None, None) => Err(StreamsError::InvalidArgument(
                "Either StreamName or StreamARN must be provided.".to_string(),
            )),
        }
    }

    /// The stream name in a stream ARN of this account and region.
    fn name_from_arn(&self, arn: &str) -> Result<String> {
        let prefix = self.inner.config.stream_arn("");
        match arn.strip_prefix(&prefix) {
            Some(name) if !name.is_empty() && !name.contains('/') => Ok(name.to_string()),
            _ => {
                let name = arn.rsplit("stream/").next().unwrap_or(arn);
                Err(self.stream_not_found(name))
            }
        }
    }

    /// The live entry for `name`; streams past their DELETING deadline count as gone.
    fn entry(&self, name: &str) -> Result<Arc<StreamEntry>> {
        let entry = self.inner.streams.read().get(name).cloned();
        match entry {
            Some(entry) if !lifecycle::is_gone(&entry.snapshot().meta, now_ms()) => Ok(entry),
            _ => Err(self.stream_not_found(name)),
        }
    }

    fn view(&self, target: &StreamRef) -> Result<Arc<StreamView>> {
        let name = self.resolve_name(target)?;
        Ok(self.entry(&name)?.snapshot())
    }

    /// Applies `change` to a copy of the stream's metadata under its control lock, commits
    /// it, and publishes the new snapshot.
    async fn mutate<T>(
        &self,
        target: &StreamRef,
        change: impl FnOnce(&mut StreamMeta, u64) -> Result<T>,
    ) -> Result<T> {
        let name = self.resolve_name(target)?;
        let entry = self.entry(&name)?;
        let _control = entry.control.lock().await;
        let mut meta = entry.snapshot().meta.clone();
        let outcome = change(&mut meta, now_ms())?;
        self.inner.catalog.put_stream(&meta)?;
        entry.publish(meta);
        Ok(outcome)
    }
}
