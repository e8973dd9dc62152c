//! Firehose data format conversion: JSON records to Parquet with a configured schema
//! (reference §13, "record format conversion").
//!
//! AWS reads the table schema from Glue; Millstream takes the same columns from its
//! configuration ([`Column`]: a name and a Hive type string). One [`Converter`] is built per
//! delivery stream configuration and turns one buffered batch into one Parquet object:
//!
//! ```text
//! records ──► JSON objects ──► cells (per record, all or nothing) ──► Arrow columns ──► Parquet bytes
//!   │  concatenated objects        │ keys matched by the SerDe's rules
//!   │  `{"a":1}{"a":2}` = 2 rows    │ values checked against the column types
//!   └► ParseError                  └► MalformedData
//! ```
//!
//! Failures are per record, as in Firehose: a record that is not JSON, or whose values do not fit
//! the schema, is reported by index with Firehose's error code, and the rest of the batch still
//! converts. The delivery engine writes the failures to the `format-conversion-failed` error
//! output.
//!
//! We build Arrow arrays from `serde_json::Value` ourselves instead of using `arrow-json`: its
//! decoder fails a whole batch on the first bad value (so isolating records would mean decoding
//! each one separately), it does not implement the SerDes' key rules (case folding, dots, column
//! mappings) or Firehose's timestamp forms, and it brings `arrow-cast` and friends with it.
//!
//! Memory: a batch is held three times over at its peak (JSON values of one record, cells of all
//! records, Arrow arrays) and the output once. The caller bounds the batch, which Firehose
//! buffering already limits to 128 MiB.

mod arrays;
mod cell;
mod hive_type;
mod timestamp;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};
use serde_json::Value;

use crate::cell::{Cell, Rules};
use crate::hive_type::HiveType;
pub use crate::hive_type::{TYPE_NESTING_DEPTH_MAX, parse_hive_type};
use crate::timestamp::TimestampFormat;

/// The record is not valid JSON.
pub const PARSE_ERROR_CODE: &str = "DataFormatConversion.ParseError";
/// The record is JSON but does not fit the schema: a value of the wrong type, an empty record, a
/// top-level value that is not an object.
pub const MALFORMED_DATA_CODE: &str = "DataFormatConversion.MalformedData";
/// Millstream's own code, not one AWS emits: Arrow or Parquet refused data that had already been
/// checked. It indicates a bug; every record of the batch is reported with it.
pub const INTERNAL_ERROR_CODE: &str = "DataFormatConversion.InternalError";

/// Message prefixes as Firehose writes them in `lastErrorMessage`; our detail follows.
const PARSE_ERROR_MESSAGE: &str = "Encountered malformed JSON.";
const MALFORMED_DATA_MESSAGE: &str = "Data does not match the schema.";
const EMPTY_RECORD_MESSAGE: &str = "The record was empty or contained only whitespace.";
const PRIMITIVE_RECORD_MESSAGE: &str = "The input JSON contained a primitive at the top level. \
     The top level must be an object or array.";
/// Firehose documents a top-level array as invalid input; the detail is ours.
const ARRAY_RECORD_DETAIL: &str = "A JSON array is not a record; send the objects concatenated.";

/// Our bound on a configured schema; Glue tables in practice have at most a few hundred.
pub const COLUMNS_MAX: usize = 10_000;
/// ParquetSerDe minimums (AWS API reference: `BlockSizeBytes` ≥ 64 MiB, `PageSizeBytes` ≥ 64 KiB).
pub const BLOCK_SIZE_BYTES_MIN: u64 = 64 * 1024 * 1024;
pub const PAGE_SIZE_BYTES_MIN: u64 = 64 * 1024;
/// ParquetSerDe defaults.
pub const BLOCK_SIZE_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;
pub const PAGE_SIZE_BYTES_DEFAULT: u64 = 1024 * 1024;

/// One column of the (Glue/Hive) table schema, e.g. `("ts", "timestamp")`,
/// `("tags", "array<string>")`, `("price", "decimal(10,2)")`, `("attrs", "map<string,int>")`,
/// `("geo", "struct<lat:double,lon:double>")`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub hive_type: String,
}

/// `InputFormatConfiguration.Deserializer`: how JSON keys meet column names and how strictly
/// values convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deserializer {
    /// `OpenXJsonSerDe`. Lenient: numbers, booleans and decimals written as JSON strings convert,
    /// and an object or array in a `string` column is stored as its JSON text.
    OpenX {
        /// Lowercase JSON keys before matching them to (lowercased) column names. AWS default: true.
        case_insensitive: bool,
        /// Match the JSON key `a.b` to the column `a_b`. AWS default: false.
        convert_dots_in_json_keys_to_underscores: bool,
        /// Column name → JSON key, for keys that cannot be column names (top-level columns only).
        column_to_json_key_mappings: BTreeMap<String, String>,
    },
    /// `HiveJsonSerDe`. Keys match column names exactly; a JSON string in a numeric, boolean or
    /// decimal column, or an object or array in a `string` column, fails the record.
    Hive {
        /// Joda-Time patterns, or `millis` for epoch milliseconds, tried before the defaults.
        timestamp_formats: Vec<String>,
    },
}

impl Default for Deserializer {
    /// OpenX with AWS's defaults.
    fn default() -> Self {
        Deserializer::OpenX {
            case_insensitive: true,
            convert_dots_in_json_keys_to_underscores: false,
            column_to_json_key_mappings: BTreeMap::new(),
        }
    }
}

/// `ParquetSerDe.Compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetCompression {
    Uncompressed,
    Gzip,
    #[default]
    Snappy,
}

/// `OutputFormatConfiguration.Serializer.ParquetSerDe`. `MaxPaddingBytes` has no counterpart: it
/// aligns row groups to HDFS blocks, which an object store does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOptions {
    pub compression: ParquetCompression,
    /// Row group size target (Parquet "block size"); at least [`BLOCK_SIZE_BYTES_MIN`].
    pub block_size_bytes: u64,
    /// Data page size target; at least [`PAGE_SIZE_BYTES_MIN`].
    pub page_size_bytes: u64,
    pub enable_dictionary_compression: bool,
    /// `WriterVersion` V2 instead of V1.
    pub writer_version_v2: bool,
}

impl Default for ParquetOptions {
    /// AWS's defaults: SNAPPY, 256 MiB blocks, 1 MiB pages, no dictionary, V1.
    fn default() -> Self {
        ParquetOptions {
            compression: ParquetCompression::Snappy,
            block_size_bytes: BLOCK_SIZE_BYTES_DEFAULT,
            page_size_bytes: PAGE_SIZE_BYTES_DEFAULT,
            enable_dictionary_compression: false,
            writer_version_v2: false,
        }
    }
}

/// The outcome of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// One complete Parquet file, or empty when no record converted.
    pub parquet: Vec<u8>,
    /// Rows in `parquet`; a record holding several JSON objects contributes several.
    pub rows: usize,
    /// The records that did not convert, in index order.
    pub failures: Vec<ConversionFailure>,
}

/// A record that did not convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionFailure {
    /// Position of the record in the batch given to [`Converter::convert`].
    pub index: usize,
    /// Firehose's `lastErrorCode`: [`PARSE_ERROR_CODE`], [`MALFORMED_DATA_CODE`] or
    /// [`INTERNAL_ERROR_CODE`].
    pub code: &'static str,
    /// `lastErrorMessage`.
    pub message: String,
}

/// Converts batches of JSON records for one schema and configuration. Immutable and `Sync`:
/// share one across tasks.
#[derive(Debug)]
pub struct Converter {
    columns: Vec<ConverterColumn>,
    schema: SchemaRef,
    rules: Rules,
    properties: WriterProperties,
}

#[derive(Debug)]
struct ConverterColumn {
    /// The JSON key this column reads, in the SerDe's normalized form.
    json_key: String,
    ty: HiveType,
}

impl Converter {
    /// Validates the schema, the deserializer and the Parquet options.
    ///
    /// # Errors
    /// A message naming the offending column, pattern or option: an unsupported or malformed
    /// type, no columns or more than [`COLUMNS_MAX`], two columns reading the same JSON key, an
    /// unsupported timestamp pattern letter, a block or page size under AWS's minimum.
    pub fn new(
        columns: &[Column],
        deserializer: Deserializer,
        options: ParquetOptions,
    ) -> Result<Self, String> {
        if columns.is_empty() {
            return Err("the schema has no columns".to_owned());
        }
        if columns.len() > COLUMNS_MAX {
            return Err(format!("the schema has more than {COLUMNS_MAX} columns"));
        }
        let (rules, mappings) = match deserializer {
            Deserializer::OpenX {
                case_insensitive,
                convert_dots_in_json_keys_to_underscores,
                column_to_json_key_mappings,
            } => (
                Rules {
                    lenient: true,
                    lowercase_keys: case_insensitive,
                    dots_to_underscores: convert_dots_in_json_keys_to_underscores,
                    timestamp_formats: Vec::new(),
                },
                column_to_json_key_mappings,
            ),
            Deserializer::Hive { timestamp_formats } => {
                let formats = timestamp_formats
                    .iter()
                    .map(|pattern| TimestampFormat::compile(pattern))
                    .collect::<Result<Vec<_>, _>>()?;
                let rules = Rules {
                    lenient: false,
                    lowercase_keys: false,
                    dots_to_underscores: false,
                    timestamp_formats: formats,
                };
                (rules, BTreeMap::new())
            }
        };

        let mut converter_columns: Vec<ConverterColumn> = Vec::with_capacity(columns.len());
        let mut fields = Vec::with_capacity(columns.len());
        for column in columns {
            if column.name.is_empty() {
                return Err("a column has an empty name".to_owned());
            }
            let ty = hive_type::parse(&column.hive_type)
                .map_err(|reason| format!("column '{}': {reason}", column.name))?;
            // Glue stores column names lowercased; a mapping may spell the column either way.
            let mapped_key = mappings
                .iter()
                .find(|(mapped_column, _)| mapped_column.eq_ignore_ascii_case(&column.name))
                .map(|(_, json_key)| json_key.as_str());
            let json_key = rules
                .normalize_key(mapped_key.unwrap_or(&column.name))
                .into_owned();
            if let Some(clash) = converter_columns
                .iter()
                .position(|c| c.json_key == json_key)
            {
                return Err(format!(
                    "columns '{}' and '{}' both read the JSON key '{json_key}'",
                    columns[clash].name, column.name
                ));
            }
            fields.push(Field::new(&column.name, ty.data_type(), true));
            converter_columns.push(ConverterColumn { json_key, ty });
        }

        Ok(Converter {
            columns: converter_columns,
            schema: Arc::new(Schema::new(fields)),
            rules,
            properties: writer_properties(&options)?,
        })
    }

    /// The Arrow schema of the files this converter writes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Converts the records that parse and match the schema into ONE Parquet file; the others
    /// are reported by index with a Firehose error code ([`PARSE_ERROR_CODE`] for invalid JSON,
    /// [`MALFORMED_DATA_CODE`] for a type mismatch) and message. Returns an empty `parquet` when
    /// no record converted.
    pub fn convert(&self, records: &[&[u8]]) -> Conversion {
        let mut rows: Vec<Vec<Cell>> = Vec::new();
        let mut converted_records = Vec::new();
        let mut failures = Vec::new();
        for (index, record) in records.iter().enumerate() {
            match self.record_rows(record) {
                Ok(record_rows) => {
                    rows.extend(record_rows);
                    converted_records.push(index);
                }
                Err((code, message)) => failures.push(ConversionFailure {
                    index,
                    code,
                    message,
                }),
            }
        }
        if rows.is_empty() {
            return Conversion {
                parquet: Vec::new(),
                rows: 0,
                failures,
            };
        }
        match self.write_parquet(&rows) {
            Ok(parquet) => Conversion {
                parquet,
                rows: rows.len(),
                failures,
            },
            Err(error) => {
                // Every cell was type-checked, so this is a bug; fail the batch visibly rather
                // than deliver a partial file.
                failures.extend(
                    converted_records
                        .into_iter()
                        .map(|index| ConversionFailure {
                            index,
                            code: INTERNAL_ERROR_CODE,
                            message: format!("Writing Parquet failed: {error}"),
                        }),
                );
                failures.sort_by_key(|failure| failure.index);
                Conversion {
                    parquet: Vec::new(),
                    rows: 0,
                    failures,
                }
            }
        }
    }

    /// The rows of one record, or the code and message that fail it.
    fn record_rows(&self, record: &[u8]) -> Result<Vec<Vec<Cell>>, (&'static str, String)> {
        let mut rows = Vec::new();
        for value in serde_json::Deserializer::from_slice(record).into_iter::<Value>() {
            let value = value
                .map_err(|error| (PARSE_ERROR_CODE, format!("{PARSE_ERROR_MESSAGE} {error}")))?;
            let object = match value {
                Value::Object(object) => object,
                Value::Array(_) => {
                    let message = format!("{MALFORMED_DATA_MESSAGE} {ARRAY_RECORD_DETAIL}");
                    return Err((MALFORMED_DATA_CODE, message));
                }
                _ => return Err((MALFORMED_DATA_CODE, PRIMITIVE_RECORD_MESSAGE.to_owned())),
            };
            let by_key = self.rules.index_object(&object);
            let row = self
                .columns
                .iter()
                .zip(self.schema.fields())
                .map(
                    |(column, field)| match by_key.get(column.json_key.as_str()) {
                        Some(value) => cell::convert(value, &column.ty, &self.rules)
                            .map_err(|mismatch| mismatch.within(field.name())),
                        None => Ok(Cell::Null),
                    },
                )
                .collect::<Result<Vec<_>, _>>()
                .map_err(|mismatch| {
                    let message = format!(
                        "{MALFORMED_DATA_MESSAGE} {}: {}",
                        mismatch.path, mismatch.reason
                    );
                    (MALFORMED_DATA_CODE, message)
                })?;
            rows.push(row);
        }
        if rows.is_empty() {
            return Err((MALFORMED_DATA_CODE, EMPTY_RECORD_MESSAGE.to_owned()));
        }
        Ok(rows)
    }

    fn write_parquet(&self, rows: &[Vec<Cell>]) -> Result<Vec<u8>, String> {
        let arrays = self
            .columns
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let cells: Vec<&Cell> = rows.iter().map(|row| &row[index]).collect();
                arrays::build_array(&column.ty, &cells)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.to_string())?;
        let batch =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|error| error.to_string())?;
        let mut writer = ArrowWriter::try_new(
            Vec::new(),
            self.schema.clone(),
            Some(self.properties.clone()),
        )
        .map_err(|error| error.to_string())?;
        writer.write(&batch).map_err(|error| error.to_string())?;
        writer.into_inner().map_err(|error| error.to_string())
    }
}

fn writer_properties(options: &ParquetOptions) -> Result<WriterProperties, String> {
    if options.block_size_bytes < BLOCK_SIZE_BYTES_MIN {
        return Err(format!(
            "BlockSizeBytes {} is below the minimum of {BLOCK_SIZE_BYTES_MIN}",
            options.block_size_bytes
        ));
    }
    if options.page_size_bytes < PAGE_SIZE_BYTES_MIN {
        return Err(format!(
            "PageSizeBytes {} is below the minimum of {PAGE_SIZE_BYTES_MIN}",
            options.page_size_bytes
        ));
    }
    let block_size_bytes = usize::try_from(options.block_size_bytes)
        .map_err(|_| format!("BlockSizeBytes {} is too large", options.block_size_bytes))?;
    let page_size_bytes = usize::try_from(options.page_size_bytes)
        .map_err(|_| format!("PageSizeBytes {} is too large", options.page_size_bytes))?;
    let compression = match options.compression {
        ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
        ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
        ParquetCompression::Snappy => Compression::SNAPPY,
    };
    let writer_version = if options.writer_version_v2 {
        WriterVersion::PARQUET_2_0
    } else {
        WriterVersion::PARQUET_1_0
    };
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_writer_version(writer_version)
        .set_dictionary_enabled(options.enable_dictionary_compression)
        .set_data_page_size_limit(page_size_bytes)
        .set_dictionary_page_size_limit(page_size_bytes)
        // Row groups are cut by size alone, as parquet-mr's `parquet.block.size` does in AWS.
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(Some(block_size_bytes))
        .build())
}
