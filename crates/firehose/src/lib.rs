//! Firehose delivery streams: durable ingest, buffering, processing and delivery.
//!
//! ```text
//! PutRecord(Batch) ──► store log (fsync'd, then acknowledged)
//!                          │
//!   Kinesis shards ────────┤  engine task per delivery stream (engine/)
//!                          ▼
//!        read ──► process (de-aggregate, Lambda, jq keys, delimiter) ──► lane buffers
//!                                        (one per partition / error type / backup)
//!        flush by size or interval ──► intent (redb) ──► upload ──► progress (redb)
//! ```
//!
//! Nothing acknowledged is lost: a DirectPut record is in the store log before PutRecord
//! returns, and the log is only read, never trimmed, until delivery moved past it. Progress is
//! written after the destination confirmed a batch; before each upload an intent records the
//! batch and its object keys, so after a crash the same batch is written under the same keys
//! (an overwrite, not a duplicate object).

pub mod engine;
mod error;
pub mod meta;
pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use millstream_storage::{AppendRecord, LogId, Store};
use millstream_streams::Streams;
use parking_lot::{Mutex, RwLock};

pub use error::{FirehoseError, Result};
pub use meta::{DeliveryStreamMeta, Encryption, SourceKind};
pub use spec::DeliverySpec;

use crate::meta::Catalog;

/// One JSON schema per Glue table name, standing in for the Glue Data Catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub database: String,
    pub table: String,
    pub columns: Vec<spec::TableColumn>,
}

/// Where S3 destinations write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStorage {
    /// A bucket is a directory under this root.
    Embedded { root: PathBuf },
    /// An S3-compatible service; `endpoint` None = AWS's regional endpoint.
    S3 { endpoint: Option<String> },
}

#[derive(Debug, Clone)]
pub struct FirehoseConfig {
    pub account_id: String,
    pub region: String,
    /// How long CREATING (and encryption ENABLING/DISABLING) lasts.
    pub create_delay: Duration,
    /// How long DELETING lasts before the stream disappears.
    pub delete_delay: Duration,
    pub delivery_stream_limit: usize,
    pub objects: ObjectStorage,
    /// Lambda Invoke API endpoint for transformation processors.
    pub lambda_endpoint: Option<String>,
    pub tables: Vec<TableSchema>,
    /// Multiplies every retry back-off (tests shrink it).
    pub backoff_scale: f64,
    /// Redshift cluster host (or `host:port`) -> the `host:port` really connected to.
    pub redshift_endpoints: BTreeMap<String, String>,
    /// HTTP endpoint URL prefix -> the prefix really used (plain-HTTP receivers in development).
    pub http_endpoint_rewrites: BTreeMap<String, String>,
}

impl FirehoseConfig {
    pub fn new(account_id: impl Into<String>, region: impl Into<String>, data_dir: &Path) -> Self {
        Self {
            account_id: account_id.into(),
            region: region.into(),
            create_delay: Duration::from_millis(500),
            delete_delay: Duration::from_millis(500),
            delivery_stream_limit: 5000,
            objects: ObjectStorage::Embedded {
                root: data_dir.join("buckets"),
            },
            lambda_endpoint: None,
            tables: Vec::new(),
            backoff_scale: 1.0,
            redshift_endpoints: BTreeMap::new(),
            http_endpoint_rewrites: BTreeMap::new(),
        }
    }
}

/// A delivery stream's status at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Active,
    Deleting,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "CREATING",
            Status::Active => "ACTIVE",
            Status::Deleting => "DELETING",
        }
    }
}

/// What DescribeDeliveryStream needs.
#[derive(Debug, Clone)]
pub struct DeliveryStreamView {
    pub meta: DeliveryStreamMeta,
    pub arn: String,
    pub status: Status,
    /// (status, failure) of the destination as the engine last saw it.
    pub delivery: engine::DeliveryHealth,
}

impl DeliveryStreamView {
    /// The encryption status shown now: ENABLING/DISABLING settle after the create delay.
    pub fn encryption_status(&self, delay: Duration) -> Option<String> {
        current_encryption_status(&self.meta, delay)
    }
}

pub struct CreateDeliveryStream {
    pub name: String,
    pub source: SourceKind,
    pub source_document: serde_json::Value,
    pub source_stream_arn: Option<String>,
    pub destination_kind: String,
    pub destination_document: serde_json::Value,
    pub spec: DeliverySpec,
    pub tags: BTreeMap<String, String>,
    pub encryption: Option<(String, Option<String>)>,
}

pub struct PutOutcome {
    pub record_ids: Vec<String>,
    pub encrypted: bool,
}

pub const TAGS_MAX: usize = 50;

#[derive(Clone)]
pub struct Firehose {
    inner: Arc<Inner>,
}

struct Inner {
    config: FirehoseConfig,
    store: Store,
    streams: Streams,
    catalog: Arc<Catalog>,
    registry: RwLock<BTreeMap<String, DeliveryStreamMeta>>,
    /// Serialises control-plane changes (create/delete/update/tag) so read-modify-write of a
    /// row never races; data-plane puts only take the registry read lock.
    control: tokio::sync::Mutex<()>,
    next_log_id: Mutex<LogId>,
    engines: Mutex<HashMap<String, engine::EngineHandle>>,
    health: Arc<engine::HealthBoard>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Firehose {
    /// Opens the catalog, re-creates the DirectPut logs and restarts every engine.
    ///
    /// # Errors
    /// Metadata or storage that cannot be opened.
    pub async fn open(
        config: FirehoseConfig,
        store: Store,
        streams: Streams,
        catalog_path: &Path,
    ) -> Result<Firehose> {
        let catalog = Arc::new(Catalog::open(catalog_path)?);
        let metas = catalog.load_streams()?;
        let mut referenced = std::collections::HashSet::new();
        let mut registry = BTreeMap::new();
        for meta in metas {
            if let Some(log) = meta.log_id {
                referenced.insert(log);
                store.create_log(log).await?;
            }
            registry.insert(meta.name.clone(), meta);
        }
        let space = millstream_types::log_space::FIREHOSE;
        let mut next_log = space.start;
        for log in store.logs().into_iter().filter(|log| space.contains(log)) {
            next_log = next_log.max(log + 1);
            if !referenced.contains(&log) {
                // Left by a deletion interrupted before its metadata commit.
                store.delete_log(log).await?;
            }
        }
        let firehose = Firehose {
            inner: Arc::new(Inner {
                config,
                store,
                streams,
                catalog,
                registry: RwLock::new(registry),
                control: tokio::sync::Mutex::new(()),
                next_log_id: Mutex::new(next_log),
                engines: Mutex::new(HashMap::new()),
                health: Arc::default(),
            }),
        };
        let names: Vec<String> = firehose.inner.registry.read().keys().cloned().collect();
        for name in names {
            firehose.start_engine(&name);
        }
        let weak = Arc::downgrade(&firehose.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                if let Err(err) = (Firehose { inner }).sweep_deleted().await {
                    tracing::warn!(error = %err, "firehose sweep failed");
                }
            }
        });
        Ok(firehose)
    }

    pub fn config(&self) -> &FirehoseConfig {
        &self.inner.config
    }

    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:firehose:{}:{}:deliverystream/{name}",
            self.inner.config.region, self.inner.config.account_id
        )
    }

    fn not_found(&self, name: &str) -> FirehoseError {
        FirehoseError::NotFound(format!(
            "Firehose {name} under account {} not found.",
            self.inner.config.account_id
        ))
    }

    fn status_of(&self, meta: &DeliveryStreamMeta, now: u64) -> Status {
        if meta.deleting_since_ms.is_some() {
            Status::Deleting
        } else if now < meta.created_ms + self.inner.config.create_delay.as_millis() as u64 {
            Status::Creating
        } else {
            Status::Active
        }
    }

    fn meta(&self, name: &str) -> Result<DeliveryStreamMeta> {
        self.inner
            .registry
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| self.not_found(name))
    }

    /// # Errors
    /// `InUse` if the name exists, `LimitExceeded` past the stream limit, `InvalidArgument`
    /// for a Kinesis source that does not exist.
    pub async fn create(&self, request: CreateDeliveryStream) -> Result<String> {
        let _control = self.inner.control.lock().await;
        let arn = self.arn(&request.name);
        {
            let registry = self.inner.registry.read();
            if registry.contains_key(&request.name) {
                return Err(FirehoseError::InUse(format!(
                    "Firehose {} under accountId {} already exists",
                    request.name, self.inner.config.account_id
                )));
            }
            if registry.len() >= self.inner.config.delivery_stream_limit {
                return Err(FirehoseError::LimitExceeded(format!(
                    "You have already consumed your firehose quota of {} hoses. Firehose names: {}",
                    self.inner.config.delivery_stream_limit,
                    registry.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if request.tags.len() > TAGS_MAX {
            return Err(FirehoseError::InvalidArgument(format!(
                "Tags exceeded the limit of {TAGS_MAX}."
            )));
        }
        if let Some(source_arn) = &request.source_stream_arn {
            self.check_source_stream(source_arn)?;
        }
        let log_id = if request.source == SourceKind::DirectPut {
            let id = {
                let mut next = self.inner.next_log_id.lock();
                let id = *next;
                *next += 1;
                id
            };
            self.inner.store.create_log(id).await?;
            Some(id)
        } else {
            None
        };
        let now = now_ms();
        let meta = DeliveryStreamMeta {
            format_version: meta::META_FORMAT_VERSION,
            name: request.name.clone(),
            source: request.source,
            source_document: request.source_document,
            source_stream_arn: request.source_stream_arn,
            created_ms: now,
            updated_ms: None,
            deleting_since_ms: None,
            version_id: 1,
            destination_kind: request.destination_kind,
            destination_document: request.destination_document,
            spec: request.spec,
            tags: request.tags,
            encryption: request.encryption.map(|(key_type, key_arn)| Encryption {
                key_type,
                key_arn,
                status: "ENABLING".to_string(),
                changed_ms: now,
            }),
            log_id,
        };
        self.inner.catalog.put_stream(&meta)?;
        self.inner
            .registry
            .write()
            .insert(meta.name.clone(), meta.clone());
        self.start_engine(&meta.name);
        Ok(arn)
    }

    fn check_source_stream(&self, arn: &str) -> Result<()> {
        let target = millstream_streams::StreamRef {
            name: None,
            arn: Some(arn.to_string()),
        };
        let exists = self.inner.streams.describe(&target).is_ok();
        if exists {
            Ok(())
        } else {
            // wording unverified: AWS reports an unusable source stream as InvalidArgument.
            Err(FirehoseError::InvalidArgument(format!(
                "Kinesis stream {arn} does not exist or is not accessible."
            )))
        }
    }

    /// # Errors
    /// `NotFound`; `InUse` while CREATING unless `allow_force`.
    pub async fn delete(&self, name: &str, allow_force: bool) -> Result<()> {
        let _control = self.inner.control.lock().await;
        let mut meta = self.meta(name)?;
        if self.status_of(&meta, now_ms()) == Status::Creating && !allow_force {
            return Err(FirehoseError::InUse(format!(
                "Firehose {name} under account {} is in CREATING state and cannot be deleted.",
                self.inner.config.account_id
            )));
        }
        if meta.deleting_since_ms.is_some() {
            return Ok(());
        }
        meta.deleting_since_ms = Some(now_ms());
        self.inner.catalog.put_stream(&meta)?;
        self.stop_engine(name);
        self.inner.registry.write().insert(name.to_string(), meta);
        Ok(())
    }

    /// Removes streams whose DELETING period is over: metadata first, then the log (a crash
    /// in between leaves an unreferenced log, collected at the next open).
    async fn sweep_deleted(&self) -> Result<()> {
        let delay = self.inner.config.delete_delay.as_millis() as u64;
        let now = now_ms();
        let due: Vec<DeliveryStreamMeta> = self
            .inner
            .registry
            .read()
            .values()
            .filter(|meta| {
                meta.deleting_since_ms
                    .is_some_and(|since| now >= since + delay)
            })
            .cloned()
            .collect();
        for meta in due {
            let _control = self.inner.control.lock().await;
            self.inner.catalog.remove_stream(&meta)?;
            self.inner.registry.write().remove(&meta.name);
            self.inner.health.remove(&meta.name);
            if let Some(log) = meta.log_id {
                self.inner.store.delete_log(log).await.ok();
            }
        }
        Ok(())
    }

    /// # Errors
    /// `NotFound`.
    pub fn describe(&self, name: &str) -> Result<DeliveryStreamView> {
        let meta = self.meta(name)?;
        Ok(self.view(meta))
    }

    fn view(&self, meta: DeliveryStreamMeta) -> DeliveryStreamView {
        let status = self.status_of(&meta, now_ms());
        DeliveryStreamView {
            arn: self.arn(&meta.name),
            delivery: self.inner.health.get(&meta.name),
            status,
            meta,
        }
    }

    /// Names in order, after `exclusive_start`, of the given source kind (None = all).
    pub fn list(
        &self,
        limit: usize,
        kind: Option<SourceKind>,
        exclusive_start: Option<&str>,
    ) -> (Vec<String>, bool) {
        let registry = self.inner.registry.read();
        let mut names = registry
            .values()
            .filter(|meta| kind.is_none_or(|kind| meta.source == kind))
            .filter(|meta| exclusive_start.is_none_or(|start| meta.name.as_str() > start))
            .map(|meta| meta.name.clone());
        let page: Vec<String> = names.by_ref().take(limit).collect();
        let has_more = names.next().is_some();
        (page, has_more)
    }

    /// Tags after `exclusive_start_key`, at most `limit`.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn list_tags(
        &self,
        name: &str,
        exclusive_start_key: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, String)>, bool)> {
        let meta = self.meta(name)?;
        let mut tags = meta
            .tags
            .into_iter()
            .filter(|(key, _)| exclusive_start_key.is_none_or(|start| key.as_str() > start));
        let page: Vec<(String, String)> = tags.by_ref().take(limit).collect();
        let has_more = tags.next().is_some();
        Ok((page, has_more))
    }

    /// # Errors
    /// `NotFound`; `LimitExceeded` past 50 tags.
    pub async fn tag(&self, name: &str, tags: BTreeMap<String, String>) -> Result<()> {
        self.modify(name, |meta| {
            let mut merged = meta.tags.clone();
            merged.extend(tags);
            if merged.len() > TAGS_MAX {
                return Err(FirehoseError::LimitExceeded(format!(
                    "Exceeded the maximum number of tags ({TAGS_MAX}) for a Firehose delivery stream."
                )));
            }
            meta.tags = merged;
            Ok(())
        })
        .await
    }

    /// # Errors
    /// `NotFound`.
    pub async fn untag(&self, name: &str, keys: &[String]) -> Result<()> {
        self.modify(name, |meta| {
            for key in keys {
                meta.tags.remove(key);
            }
            Ok(())
        })
        .await
    }

    /// # Errors
    /// `NotFound`, `InvalidArgument` for Kinesis-source streams, `InUse` while a change of
    /// encryption state is settling.
    pub async fn start_encryption(&self, name: &str, key: (String, Option<String>)) -> Result<()> {
        let delay = self.inner.config.create_delay;
        self.modify(name, |meta| {
            if meta.source != SourceKind::DirectPut {
                return Err(FirehoseError::InvalidArgument(format!(
                    "Firehose {name} is a {} delivery stream: encryption is inherited from the source.",
                    meta.source.as_str()
                )));
            }
            let view_status = current_encryption_status(meta, delay);
            if matches!(view_status.as_deref(), Some("ENABLING" | "DISABLING")) {
                return Err(FirehoseError::InUse(format!(
                    "Firehose {name} is changing its encryption state; try again later."
                )));
            }
            meta.encryption = Some(Encryption {
                key_type: key.0,
                key_arn: key.1,
                status: "ENABLING".to_string(),
                changed_ms: now_ms(),
            });
            Ok(())
        })
        .await
    }

    /// # Errors
    /// `NotFound`, `InUse` while a change of encryption state is settling.
    pub async fn stop_encryption(&self, name: &str) -> Result<()> {
        let delay = self.inner.config.create_delay;
        self.modify(name, |meta| {
            let view_status = current_encryption_status(meta, delay);
            if matches!(view_status.as_deref(), Some("ENABLING" | "DISABLING")) {
                return Err(FirehoseError::InUse(format!(
                    "Firehose {name} is changing its encryption state; try again later."
                )));
            }
            if let Some(encryption) = &mut meta.encryption {
                encryption.status = "DISABLING".to_string();
                encryption.changed_ms = now_ms();
            }
            Ok(())
        })
        .await
    }

    /// Replaces the destination after checking the version id; the engine restarts with the
    /// new spec (buffered records are re-read from the log, nothing is lost).
    ///
    /// # Errors
    /// `NotFound`, `ConcurrentModification` for a stale version, `InvalidArgument` for an
    /// unknown destination id.
    pub async fn update_destination(
        &self,
        name: &str,
        expected_version: u64,
        destination_id: &str,
        update: impl FnOnce(&DeliveryStreamMeta) -> Result<(String, serde_json::Value, DeliverySpec)>,
    ) -> Result<()> {
        self.modify(name, |meta| {
            if meta.version_id != expected_version {
                return Err(FirehoseError::ConcurrentModification(format!(
                    "Cannot update firehose: {name} since the current version id: {} and specified version id: {expected_version} do not match",
                    meta.version_id
                )));
            }
            if destination_id != DESTINATION_ID {
                return Err(FirehoseError::InvalidArgument(format!(
                    "Destination Id {destination_id} not found."
                )));
            }
            let (kind, document, spec) = update(meta)?;
            meta.destination_kind = kind;
            meta.destination_document = document;
            meta.spec = spec;
            meta.version_id += 1;
            meta.updated_ms = Some(now_ms());
            Ok(())
        })
        .await?;
        // The new engine waits for the old one to finish its batch in flight.
        self.start_engine(name);
        Ok(())
    }

    async fn modify(
        &self,
        name: &str,
        change: impl FnOnce(&mut DeliveryStreamMeta) -> Result<()>,
    ) -> Result<()> {
        let _control = self.inner.control.lock().await;
        let mut meta = self.meta(name)?;
        if meta.deleting_since_ms.is_some() {
            return Err(self.not_found(name));
        }
        change(&mut meta)?;
        self.inner.catalog.put_stream(&meta)?;
        self.inner.registry.write().insert(name.to_string(), meta);
        Ok(())
    }

    /// Stores the records durably (one append, fsync'd under the store's policy) and returns
    /// their ids. All or nothing: the store appends a batch atomically.
    ///
    /// # Errors
    /// `NotFound` (also while CREATING or DELETING), `InvalidArgument` for a stream whose
    /// source is not DirectPut, `Storage`.
    pub async fn put_records(&self, name: &str, records: Vec<Bytes>) -> Result<PutOutcome> {
        let meta = self.meta(name)?;
        let status = self.status_of(&meta, now_ms());
        if status != Status::Active {
            return Err(self.not_found(name));
        }
        let Some(log) = meta.log_id else {
            return Err(FirehoseError::InvalidArgument(format!(
                "This operation is not permitted on {} delivery stream type.",
                meta.source.as_str()
            )));
        };
        let encrypted = current_encryption_status(&meta, self.inner.config.create_delay)
            .is_some_and(|status| status == "ENABLED");
        let count = records.len();
        let append: Vec<AppendRecord> = records
            .into_iter()
            .map(|data| AppendRecord {
                key: Bytes::new(),
                data,
                flags: u8::from(encrypted),
            })
            .collect();
        let bytes: usize = append.iter().map(|r: &AppendRecord| r.data.len()).sum();
        let ack = self.inner.store.append(log, append).await?;
        let labels = [("delivery_stream", name.to_string())];
        metrics::counter!("firehose_incoming_records_total", &labels).increment(count as u64);
        metrics::counter!("firehose_incoming_bytes_total", &labels).increment(bytes as u64);
        metrics::counter!("firehose_incoming_put_requests_total", &labels).increment(1);
        let nonce: u64 = rand::random();
        let record_ids = (0..count as u64)
            .map(|i| record_id(log, ack.first_sequence + i, nonce))
            .collect();
        Ok(PutOutcome {
            record_ids,
            encrypted,
        })
    }

    fn start_engine(&self, name: &str) {
        let Ok(meta) = self.meta(name) else { return };
        if meta.deleting_since_ms.is_some() {
            return;
        }
        let context = engine::EngineContext {
            name: name.to_string(),
            arn: self.arn(name),
            config: self.inner.config.clone(),
            store: self.inner.store.clone(),
            streams: self.inner.streams.clone(),
            catalog: self.inner.catalog.clone(),
            health: self.inner.health.clone(),
            meta,
        };
        let mut engines = self.inner.engines.lock();
        let previous = engines.remove(name);
        engines.insert(name.to_string(), engine::spawn(context, previous));
    }

    fn stop_engine(&self, name: &str) {
        if let Some(handle) = self.inner.engines.lock().remove(name) {
            handle.stop();
        }
    }

    /// Stops every engine, letting in-flight uploads finish (bounded), for a clean shutdown.
    /// Records still buffered are in the log and are delivered after the next start.
    pub async fn shutdown(&self) {
        let handles: Vec<engine::EngineHandle> =
            self.inner.engines.lock().drain().map(|(_, h)| h).collect();
        for handle in handles {
            handle.stop_and_wait(Duration::from_secs(5)).await;
        }
    }
}

/// DestinationId of the one destination a delivery stream has.
pub const DESTINATION_ID: &str = "destinationId-000000000001";

fn current_encryption_status(meta: &DeliveryStreamMeta, delay: Duration) -> Option<String> {
    let encryption = meta.encryption.as_ref()?;
    let settled = now_ms() >= encryption.changed_ms + delay.as_millis() as u64;
    Some(match (encryption.status.as_str(), settled) {
        ("ENABLING", true) => "ENABLED".to_string(),
        ("DISABLING", true) => "DISABLED".to_string(),
        (status, _) => status.to_string(),
    })
}

/// AWS's record ids are long opaque tokens; ours name the log position (unique) plus a nonce
/// per call, hex-encoded to the same kind of length.
fn record_id(log: LogId, sequence: u64, nonce: u64) -> String {
    format!("{log:016x}{sequence:032x}{nonce:016x}0000000000000000000000000000000000000000")
}
