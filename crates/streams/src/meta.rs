//! Durable metadata: streams, shards and their lineage, consumers, tags, settings.
//!
//! Kept in redb (an embedded, transactional B-tree with crash-safe commits), one row per
//! stream, so every control-plane change of a stream is one atomic transaction. Rows are
//! JSON with an explicit `format_version`: metadata is small, off the data path, and being
//! able to read it with standard tools when a user's data directory misbehaves is worth more
//! than the bytes a binary encoding would save.
//!
//! Tables (names are persisted: never rename):
//! * `streams`: stream name -> `StreamMeta` JSON
//! * `settings`: key -> bytes (`iterator_secret` 32 bytes, `next_log_id` u64 BE,
//!   `account_settings` JSON)

use std::collections::BTreeMap;
use std::path::Path;

use millstream_types::HashKey;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StreamsError};

const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
pub(crate) const META_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// A shard's place in the hash-key space and its lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub index: u32,
    /// The storage log holding the shard's records.
    pub log_id: u64,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    pub start_hash: HashKey,
    pub end_hash: HashKey,
    pub created_ms: u64,
    pub closed: Option<ShardClosed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardClosed {
    pub closed_ms: u64,
    /// The log's next sequence when it was sealed: every record of the shard is below it.
    pub end_position: u64,
}

impl ShardMeta {
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }
    pub fn contains(&self, hash: HashKey) -> bool {
        self.start_hash <= hash && hash <= self.end_hash
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub name: String,
    pub created_ms: u64,
    pub tags: BTreeMap<String, String>,
    pub policy: Option<String>,
    /// Set while the consumer is being deregistered: it disappears at this time.
    pub deleting_until_ms: Option<u64>,
}

/// Everything durable about one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub format_version: u32,
    pub name: String,
    /// Distinguishes incarnations of a re-created stream of the same name; iterators and
    /// tokens carry it so one from a deleted stream is never honoured by its successor.
    pub incarnation: u64,
    pub created_ms: u64,
    /// CREATING until this time.
    pub active_at_ms: u64,
    /// UPDATING until this time (0 when not updating).
    pub updating_until_ms: u64,
    /// DELETING until this time, then gone.
    pub deleting_until_ms: Option<u64>,
    pub mode: StreamMode,
    pub retention_hours: u32,
    /// KMS key id when server-side encryption is on.
    pub encryption_key: Option<String>,
    pub shard_level_metrics: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub max_record_size_kib: u32,
    pub warm_throughput_mibps: Option<u32>,
    pub policy: Option<String>,
    /// Indexed by shard index.
    pub shards: Vec<ShardMeta>,
    pub consumers: Vec<ConsumerMeta>,
    /// Times of recent UpdateShardCount calls (for the 10-per-24h rule).
    pub scaling_history_ms: Vec<u64>,
}

/// Account-wide settings (DescribeAccountSettings / UpdateAccountSettings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    pub commitment_enabled: bool,
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub earliest_allowed_end_ms: Option<u64>,
}

/// The redb database behind the catalog.
pub(crate) struct Catalog {
    db: Database,
}

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog> {
        let db = Database::create(path).map_err(StreamsError::metadata)?;
        let txn = db.begin_write().map_err(StreamsError::metadata)?;
        txn.open_table(STREAMS).map_err(StreamsError::metadata)?;
        txn.open_table(SETTINGS).map_err(StreamsError::metadata)?;
        txn.commit().map_err(StreamsError::metadata)?;
        Ok(Catalog { db })
    }

    pub fn load_streams(&self) -> Result<Vec<StreamMeta>> {
        let txn = self.db.begin_read().map_err(StreamsError::metadata)?;
        let table = txn.open_table(STREAMS).map_err(StreamsError::metadata)?;
        let mut streams = Vec::new();
        for row in table.iter().map_err(StreamsError::metadata)? {
            let (_, value) = row.map_err(StreamsError::metadata)?;
            let meta: StreamMeta =
                serde_json::from_slice(value.value()).map_err(StreamsError::metadata)?;
            if meta.format_version != META_FORMAT_VERSION {
                return Err(StreamsError::Metadata(format!(
                    "stream {} has metadata format {}, this build reads {}",
                    meta.name, meta.format_version, META_FORMAT_VERSION
                )));
            }
            streams.push(meta);
        }
        Ok(streams)
    }

    pub fn put_stream(&self, meta: &StreamMeta) -> Result<()> {
        let bytes = serde_json::to_vec(meta).map_err(StreamsError::metadata)?;
        let txn = self.db.begin_write().map_err(StreamsError::metadata)?;
        {
            let mut table = txn.open_table(STREAMS).map_err(StreamsError::metadata)?;
            table
                .insert(meta.name.as_str(), bytes.as_slice())
                .map_err(StreamsError::metadata)?;
        }
        txn.commit().map_err(StreamsError::metadata)
    }

    pub fn remove_stream(&self, name: &str) -> Result<()> {
        let txn = self.db.begin_write().map_err(StreamsError::metadata)?;
        {
            let mut table = txn.open_table(STREAMS).map_err(StreamsError::metadata)?;
            table.remove(name).map_err(StreamsError::metadata)?;
        }
        txn.commit().map_err(StreamsError::metadata)
    }

    pub fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(StreamsError::metadata)?;
        let table = txn.open_table(SETTINGS).map_err(StreamsError::metadata)?;
        let value = table.get(key).map_err(StreamsError::metadata)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    pub fn put_setting(&self, key: &str, value: &[u8]) -> Result<()> {
        let txn = self.db.begin_write().map_err(StreamsError::metadata)?;
        {
            let mut table = txn.open_table(SETTINGS).map_err(StreamsError::metadata)?;
            table.insert(key, value).map_err(StreamsError::metadata)?;
        }
        txn.commit().map_err(StreamsError::metadata)
    }
}
