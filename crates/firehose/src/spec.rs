//! What a delivery stream does, in domain terms.
//!
//! The API layer turns AWS's destination configuration (validated against the model) into a
//! `DeliverySpec`; the engine only ever reads these types. The configuration document itself
//! is kept alongside (see `meta`), so DescribeDeliveryStream echoes what the user sent.

use millstream_firehose_format::Compression;
use serde::{Deserialize, Serialize};

/// Buffering hints: flush when either is reached, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buffering {
    pub size_bytes: u64,
    /// 0 = zero buffering: deliver as soon as records are read.
    pub interval_ms: u64,
}

impl Buffering {
    pub const fn new(size_mib: u64, interval_seconds: u64) -> Self {
        Self {
            size_bytes: size_mib << 20,
            interval_ms: interval_seconds * 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubRecordType {
    Json,
    Delimited(Vec<u8>),
}

/// One step of `ProcessingConfiguration`, in the order AWS applies them (the engine sorts
/// them; users list them in any order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Processor {
    Decompression,
    CloudWatchLogs {
        extract_messages: bool,
    },
    Deaggregation(SubRecordType),
    Lambda {
        function: String,
        retries: u32,
        buffer_bytes: u64,
    },
    MetadataExtraction {
        query: String,
    },
    AppendDelimiter {
        delimiter: Vec<u8>,
    },
}

/// A Hive-typed column of a table schema configured in Millstream (in place of Glue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableColumn {
    pub name: String,
    pub hive_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JsonReader {
    OpenX {
        case_insensitive: bool,
        convert_dots_to_underscores: bool,
        column_to_json_key: Vec<(String, String)>,
    },
    Hive {
        timestamp_formats: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParquetConversion {
    pub database: String,
    pub table: String,
    pub columns: Vec<TableColumn>,
    pub reader: JsonReader,
    /// "UNCOMPRESSED" | "GZIP" | "SNAPPY"
    pub compression: String,
    pub block_size_bytes: u64,
    pub page_size_bytes: u64,
    pub enable_dictionary: bool,
    pub writer_version_v2: bool,
}

/// Where and how objects are written to an S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Delivery {
    pub bucket: String,
    pub prefix: Option<String>,
    pub error_output_prefix: Option<String>,
    pub buffering: Buffering,
    pub compression: Compression,
    pub file_extension: Option<String>,
    pub time_zone: Option<String>,
    pub dynamic_partitioning: bool,
    pub conversion: Option<ParquetConversion>,
    /// S3BackupMode Enabled: the source records, untransformed, also go here.
    pub backup: Option<Box<S3Delivery>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpDelivery {
    pub url: String,
    pub name: Option<String>,
    pub access_key: Option<String>,
    pub gzip: bool,
    pub common_attributes: Vec<(String, String)>,
    pub retry_seconds: u64,
    pub buffering: Buffering,
    /// Failed batches (and, with `backup_all`, every batch) go here.
    pub s3: S3Delivery,
    pub backup_all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedshiftDelivery {
    pub jdbc_url: String,
    pub username: String,
    pub password: String,
    pub table: String,
    pub columns: Option<Vec<String>>,
    pub copy_options: Option<String>,
    pub retry_seconds: u64,
    /// The intermediate bucket every batch is staged in before COPY.
    pub staging: S3Delivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destination {
    S3(S3Delivery),
    Http(HttpDelivery),
    Redshift(RedshiftDelivery),
    /// Stored and described, but Millstream has no engine for it (OpenSearch, Splunk,
    /// Snowflake, Iceberg): records are kept, never delivered.
    Undeliverable {
        kind: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySpec {
    pub destination: Destination,
    pub processors: Vec<Processor>,
}

impl DeliverySpec {
    /// The buffer hints the engine flushes by.
    pub fn buffering(&self) -> Buffering {
        match &self.destination {
            Destination::S3(s3) => s3.buffering,
            Destination::Http(http) => http.buffering,
            Destination::Redshift(redshift) => redshift.staging.buffering,
            Destination::Undeliverable { .. } => Buffering::new(5, 300),
        }
    }

    pub fn dynamic_partitioning(&self) -> bool {
        matches!(&self.destination, Destination::S3(s3) if s3.dynamic_partitioning)
    }
}
