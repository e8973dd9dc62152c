//! Durable metadata of delivery streams and their delivery progress, in redb.
//!
//! Tables (names are persisted: never rename):
//! * `delivery_streams`: name -> `DeliveryStreamMeta` JSON (with `format_version`)
//! * `delivery_progress`: progress key -> `Progress` JSON, written by the engine after every
//!   confirmed delivery and before every upload (the intent), so a restart neither loses nor
//!   duplicates objects.
//!
//! JSON rather than a binary encoding for the same reason as the streams catalog: the rows
//! are small, off the data path, and readable with standard tools.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{FirehoseError, Result};
use crate::spec::DeliverySpec;

const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("delivery_streams");
const PROGRESS: TableDefinition<&str, &[u8]> = TableDefinition::new("delivery_progress");
pub(crate) const META_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    DirectPut,
    KinesisStreamAsSource,
    /// Accepted and described, never read from (no Kafka / database peer here).
    MskAsSource,
    DatabaseAsSource,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::DirectPut => "DirectPut",
            SourceKind::KinesisStreamAsSource => "KinesisStreamAsSource",
            SourceKind::MskAsSource => "MSKAsSource",
            SourceKind::DatabaseAsSource => "DatabaseAsSource",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "DirectPut" => SourceKind::DirectPut,
            "KinesisStreamAsSource" => SourceKind::KinesisStreamAsSource,
            "MSKAsSource" => SourceKind::MskAsSource,
            "DatabaseAsSource" => SourceKind::DatabaseAsSource,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// "AWS_OWNED_CMK" | "CUSTOMER_MANAGED_CMK"
    pub key_type: String,
    pub key_arn: Option<String>,
    /// ENABLED | ENABLING | DISABLED | DISABLING
    pub status: String,
    pub changed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryStreamMeta {
    pub format_version: u32,
    pub name: String,
    pub source: SourceKind,
    /// The AWS source configuration as sent (echoed by Describe).
    pub source_document: serde_json::Value,
    /// For KinesisStreamAsSource: the Millstream data stream read from.
    pub source_stream_arn: Option<String>,
    pub created_ms: u64,
    pub updated_ms: Option<u64>,
    pub deleting_since_ms: Option<u64>,
    pub version_id: u64,
    /// The member name of the destination configuration (`ExtendedS3DestinationConfiguration`,
    /// ...) and its document as sent, merged by UpdateDestination.
    pub destination_kind: String,
    pub destination_document: serde_json::Value,
    pub spec: DeliverySpec,
    pub tags: BTreeMap<String, String>,
    pub encryption: Option<Encryption>,
    /// DirectPut: the store log holding accepted records.
    pub log_id: Option<u64>,
}

impl DeliveryStreamMeta {
    /// Progress rows are per incarnation of a name: a stream deleted and created again starts
    /// afresh even if the old engine's last write lands after the deletion.
    pub fn progress_key(&self) -> String {
        format!("{}@{}", self.name, self.created_ms)
    }
}

/// Where an output sits in its source: (source sequence, sub-record index).
pub type Position = (u64, u32);

/// The outputs of one flush: every output of `lane` whose position lies within the span of
/// its source (positions are (source sequence, sub-record index); sources are the DirectPut
/// log or the shards of a Kinesis stream). A lane's buffer takes outputs in position order and
/// a flush takes all of them, so a span describes the batch exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub lane: String,
    pub spans: BTreeMap<String, (Position, Position)>,
}

impl Batch {
    pub fn contains(&self, lane: &str, source: &str, position: Position) -> bool {
        self.lane == lane
            && self
                .spans
                .get(source)
                .is_some_and(|(first, last)| *first <= position && position <= *last)
    }
}

/// An upload about to happen: written before the objects, so a crash redoes exactly this
/// batch under exactly these keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub batch: Batch,
    pub keys: Vec<String>,
}

/// Where delivery stands. Every source record below its source's checkpoint is fully
/// delivered; above it, `delivered` lists the batches already written (other lanes of those
/// records were not), and `intents` the batches being written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub checkpoints: BTreeMap<String, u64>,
    pub delivered: Vec<Batch>,
    pub intents: Vec<Intent>,
}

pub(crate) struct Catalog {
    db: Database,
}

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog> {
        let db = Database::create(path).map_err(FirehoseError::metadata)?;
        let txn = db.begin_write().map_err(FirehoseError::metadata)?;
        txn.open_table(STREAMS).map_err(FirehoseError::metadata)?;
        txn.open_table(PROGRESS).map_err(FirehoseError::metadata)?;
        txn.commit().map_err(FirehoseError::metadata)?;
        Ok(Catalog { db })
    }

    pub fn load_streams(&self) -> Result<Vec<DeliveryStreamMeta>> {
        let txn = self.db.begin_read().map_err(FirehoseError::metadata)?;
        let table = txn.open_table(STREAMS).map_err(FirehoseError::metadata)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(FirehoseError::metadata)? {
            let (_, value) = row.map_err(FirehoseError::metadata)?;
            let meta: DeliveryStreamMeta =
                serde_json::from_slice(value.value()).map_err(FirehoseError::metadata)?;
            if meta.format_version > META_FORMAT_VERSION {
                return Err(FirehoseError::Metadata(format!(
                    "delivery stream {} was written by a newer Millstream (format {})",
                    meta.name, meta.format_version
                )));
            }
            out.push(meta);
        }
        Ok(out)
    }

    pub fn put_stream(&self, meta: &DeliveryStreamMeta) -> Result<()> {
        let bytes = serde_json::to_vec(meta).map_err(FirehoseError::metadata)?;
        let txn = self.db.begin_write().map_err(FirehoseError::metadata)?;
        {
            let mut table = txn.open_table(STREAMS).map_err(FirehoseError::metadata)?;
            table
                .insert(meta.name.as_str(), bytes.as_slice())
                .map_err(FirehoseError::metadata)?;
        }
        txn.commit().map_err(FirehoseError::metadata)
    }

    /// Removes the stream and its progress in one transaction.
    pub fn remove_stream(&self, meta: &DeliveryStreamMeta) -> Result<()> {
        let name = meta.name.as_str();
        let progress_key = meta.progress_key();
        let txn = self.db.begin_write().map_err(FirehoseError::metadata)?;
        {
            let mut table = txn.open_table(STREAMS).map_err(FirehoseError::metadata)?;
            table.remove(name).map_err(FirehoseError::metadata)?;
            let mut progress = txn.open_table(PROGRESS).map_err(FirehoseError::metadata)?;
            progress
                .remove(progress_key.as_str())
                .map_err(FirehoseError::metadata)?;
        }
        txn.commit().map_err(FirehoseError::metadata)
    }

    pub fn load_progress(&self, name: &str) -> Result<Progress> {
        let txn = self.db.begin_read().map_err(FirehoseError::metadata)?;
        let table = txn.open_table(PROGRESS).map_err(FirehoseError::metadata)?;
        match table.get(name).map_err(FirehoseError::metadata)? {
            Some(value) => serde_json::from_slice(value.value()).map_err(FirehoseError::metadata),
            None => Ok(Progress::default()),
        }
    }

    /// Durable when it returns (redb commits are fsync'd).
    pub fn put_progress(&self, name: &str, progress: &Progress) -> Result<()> {
        let bytes = serde_json::to_vec(progress).map_err(FirehoseError::metadata)?;
        let txn = self.db.begin_write().map_err(FirehoseError::metadata)?;
        {
            let mut table = txn.open_table(PROGRESS).map_err(FirehoseError::metadata)?;
            table
                .insert(name, bytes.as_slice())
                .map_err(FirehoseError::metadata)?;
        }
        txn.commit().map_err(FirehoseError::metadata)
    }
}
