//! Firehose object building: compression framings, object key prefixes and names, error output
//! records.
//!
//! Pure and synchronous: no I/O, no clock, no randomness. Everything time- or randomness-dependent
//! takes its input explicitly, so redelivering a batch after a crash reproduces the same object
//! key and bytes.
//!
//! ```text
//! records ──concat──▶ body ──compression::Compression::compress──▶ object bytes
//! naming::effective_data_prefix(..).evaluate(ctx) + naming::object_suffix(..) ──▶ object key
//! failed records ──error_output::ErrorRecord::to_json_line──▶ error object body
//! ```

pub mod compression;
pub mod error_output;
pub mod naming;

pub use compression::Compression;
pub use error_output::{DataCatalogTable, ErrorOutputKind, ErrorRecord, FailedRecord};
pub use naming::{
    PrefixContext, PrefixError, PrefixRole, PrefixTemplate, deterministic_id,
    effective_data_prefix, effective_error_prefix, object_suffix, parse_time_zone,
    validate_prefixes,
};
