//! Error output records: one JSON document per failed record, newline separated, written under
//! the evaluated `ErrorOutputPrefix` (reference §9).
//!
//! The common fields are the same for every kind, except that format conversion names the error
//! fields `lastErrorCode`/`lastErrorMessage`; each kind then adds its own fields:
//!
//! | kind (`error-output-type`) | extra fields |
//! |---|---|
//! | `processing-failed` | `lambdaArn` |
//! | `format-conversion-failed` | `sequenceNumber`, `subSequenceNumber`, `dataCatalogTable{..}` |
//! | `http-endpoint-failed` | `subsequenceNumber`, `dataId` |
//! | dynamic partitioning failures | none (unverified) |
//!
//! Fields are written in the order the AWS documentation shows them: `attemptsMade`,
//! `arrivalTimestamp`, error code, error message, `attemptEndingTimestamp`, `rawData` (base64),
//! then the kind's fields. Timestamps are epoch milliseconds.

use base64::Engine as _;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// Why a record ended up in the error output; decides field names and the
/// `!{firehose:error-output-type}` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOutputKind {
    ProcessingFailed,
    FormatConversionFailed,
    HttpEndpointFailed,
    DynamicPartitioningFailed,
}

impl ErrorOutputKind {
    /// The `!{firehose:error-output-type}` value for this kind.
    pub const fn error_output_type(self) -> &'static str {
        match self {
            Self::ProcessingFailed => "processing-failed",
            Self::FormatConversionFailed => "format-conversion-failed",
            Self::HttpEndpointFailed => "http-endpoint-failed",
            // Unverified: metadata extraction is a processor, and the documented list of
            // error-output-type values has no dynamic-partitioning entry.
            Self::DynamicPartitioningFailed => "processing-failed",
        }
    }

    fn error_code_key(self) -> &'static str {
        match self {
            Self::FormatConversionFailed => "lastErrorCode",
            Self::ProcessingFailed | Self::HttpEndpointFailed | Self::DynamicPartitioningFailed => {
                "errorCode"
            }
        }
    }

    fn error_message_key(self) -> &'static str {
        match self {
            Self::FormatConversionFailed => "lastErrorMessage",
            Self::ProcessingFailed | Self::HttpEndpointFailed | Self::DynamicPartitioningFailed => {
                "errorMessage"
            }
        }
    }

    /// The kind's own fields in documentation order; other `extra` keys follow, sorted.
    fn extra_key_order(self) -> &'static [&'static str] {
        match self {
            Self::ProcessingFailed => &["lambdaArn"],
            Self::FormatConversionFailed => {
                &["sequenceNumber", "subSequenceNumber", "dataCatalogTable"]
            }
            Self::HttpEndpointFailed => &["subsequenceNumber", "dataId"],
            Self::DynamicPartitioningFailed => &[],
        }
    }
}

const COMMON_KEYS: [&str; 4] = [
    "attemptsMade",
    "arrivalTimestamp",
    "attemptEndingTimestamp",
    "rawData",
];

/// The facts every error record carries, whatever the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedRecord<'a> {
    pub attempts_made: u32,
    pub arrival_timestamp_ms: i64,
    /// e.g. `Lambda.FunctionError`, `DataFormatConversion.ParseError`,
    /// `HttpEndpoint.DestinationException`.
    pub error_code: &'a str,
    pub error_message: &'a str,
    pub attempt_ending_timestamp_ms: i64,
    pub raw_data: &'a [u8],
}

/// The Glue table a format conversion used, echoed in `dataCatalogTable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataCatalogTable<'a> {
    pub catalog_id: &'a str,
    pub database_name: &'a str,
    pub table_name: &'a str,
    pub region: &'a str,
    pub version_id: &'a str,
    /// Older documentation shows `roleArn`, newer `catalogArn`; each is written when given.
    pub role_arn: Option<&'a str>,
    pub catalog_arn: Option<&'a str>,
}

/// One failed record as written to the error output. Build it with the constructor for its
/// kind, which fills `kind` and `extra` consistently.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRecord<'a> {
    pub kind: ErrorOutputKind,
    pub attempts_made: u32,
    pub arrival_timestamp_ms: i64,
    pub error_code: &'a str,
    pub error_message: &'a str,
    pub attempt_ending_timestamp_ms: i64,
    pub raw_data: &'a [u8],
    /// Kind-specific fields. A key that repeats a common field is ignored.
    pub extra: Map<String, Value>,
}

impl<'a> ErrorRecord<'a> {
    fn new(kind: ErrorOutputKind, failure: FailedRecord<'a>, extra: Map<String, Value>) -> Self {
        Self {
            kind,
            attempts_made: failure.attempts_made,
            arrival_timestamp_ms: failure.arrival_timestamp_ms,
            error_code: failure.error_code,
            error_message: failure.error_message,
            attempt_ending_timestamp_ms: failure.attempt_ending_timestamp_ms,
            raw_data: failure.raw_data,
            extra,
        }
    }

    /// A record the Lambda transform failed, returned as `ProcessingFailed`, or dropped.
    pub fn processing_failed(failure: FailedRecord<'a>, lambda_arn: &str) -> Self {
        let mut extra = Map::new();
        extra.insert("lambdaArn".into(), lambda_arn.into());
        Self::new(ErrorOutputKind::ProcessingFailed, failure, extra)
    }

    /// A record the Parquet/ORC conversion could not parse. `sequence_number` and
    /// `sub_sequence_number` identify the source record (Kinesis source); `None` omits them.
    pub fn format_conversion_failed(
        failure: FailedRecord<'a>,
        sequence_number: Option<&str>,
        sub_sequence_number: Option<u64>,
        table: &DataCatalogTable<'_>,
    ) -> Self {
        let mut extra = Map::new();
        if let Some(sequence_number) = sequence_number {
            extra.insert("sequenceNumber".into(), sequence_number.into());
        }
        if let Some(sub_sequence_number) = sub_sequence_number {
            extra.insert("subSequenceNumber".into(), sub_sequence_number.into());
        }
        let mut catalog = Map::new();
        catalog.insert("catalogId".into(), table.catalog_id.into());
        catalog.insert("databaseName".into(), table.database_name.into());
        catalog.insert("tableName".into(), table.table_name.into());
        catalog.insert("region".into(), table.region.into());
        catalog.insert("versionId".into(), table.version_id.into());
        if let Some(role_arn) = table.role_arn {
            catalog.insert("roleArn".into(), role_arn.into());
        }
        if let Some(catalog_arn) = table.catalog_arn {
            catalog.insert("catalogArn".into(), catalog_arn.into());
        }
        extra.insert("dataCatalogTable".into(), Value::Object(catalog));
        Self::new(ErrorOutputKind::FormatConversionFailed, failure, extra)
    }

    /// A record the HTTP endpoint did not accept within the retry duration. `error_message`
    /// should include the endpoint's response body, as Firehose's does.
    pub fn http_endpoint_failed(
        failure: FailedRecord<'a>,
        subsequence_number: u64,
        data_id: &str,
    ) -> Self {
        let mut extra = Map::new();
        extra.insert("subsequenceNumber".into(), subsequence_number.into());
        extra.insert("dataId".into(), data_id.into());
        Self::new(ErrorOutputKind::HttpEndpointFailed, failure, extra)
    }

    /// A record whose partition keys could not be extracted, or whose prefix did not evaluate.
    /// Unverified: AWS documents no field list for these; we write the common fields only.
    pub fn dynamic_partitioning_failed(failure: FailedRecord<'a>) -> Self {
        Self::new(
            ErrorOutputKind::DynamicPartitioningFailed,
            failure,
            Map::new(),
        )
    }

    /// One JSON document followed by `\n`.
    pub fn to_json_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self)
            .expect("error records serialize: string keys, no fallible values");
        line.push(b'\n');
        line
    }
}

impl Serialize for ErrorRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw_data = base64::engine::general_purpose::STANDARD.encode(self.raw_data);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("attemptsMade", &self.attempts_made)?;
        map.serialize_entry("arrivalTimestamp", &self.arrival_timestamp_ms)?;
        map.serialize_entry(self.kind.error_code_key(), self.error_code)?;
        map.serialize_entry(self.kind.error_message_key(), self.error_message)?;
        map.serialize_entry("attemptEndingTimestamp", &self.attempt_ending_timestamp_ms)?;
        map.serialize_entry("rawData", &raw_data)?;
        let ordered = self.kind.extra_key_order();
        for key in ordered {
            if let Some(value) = self.extra.get(*key) {
                map.serialize_entry(key, value)?;
            }
        }
        let reserved = |key: &str| {
            COMMON_KEYS.contains(&key)
                || key == self.kind.error_code_key()
                || key == self.kind.error_message_key()
                || ordered.contains(&key)
        };
        for (key, value) in &self.extra {
            if !reserved(key) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn failure<'a>(code: &'a str, message: &'a str) -> FailedRecord<'a> {
        FailedRecord {
            attempts_made: 4,
            arrival_timestamp_ms: 1_527_624_166_155,
            error_code: code,
            error_message: message,
            attempt_ending_timestamp_ms: 1_527_624_180_000,
            raw_data: b"hello\n",
        }
    }

    fn line(record: &ErrorRecord<'_>) -> String {
        String::from_utf8(record.to_json_line()).unwrap()
    }

    #[test]
    fn processing_failed_has_error_fields_and_lambda_arn() {
        let record = ErrorRecord::processing_failed(
            failure("Lambda.FunctionError", "boom"),
            "arn:aws:lambda:us-east-1:123456789012:function:f",
        );
        assert_eq!(
            line(&record),
            concat!(
                r#"{"attemptsMade":4,"arrivalTimestamp":1527624166155,"errorCode":"Lambda.FunctionError","#,
                r#""errorMessage":"boom","attemptEndingTimestamp":1527624180000,"rawData":"aGVsbG8K","#,
                r#""lambdaArn":"arn:aws:lambda:us-east-1:123456789012:function:f"}"#,
                "\n"
            )
        );
        assert_eq!(record.kind.error_output_type(), "processing-failed");
    }

    #[test]
    fn format_conversion_failed_uses_last_error_fields_and_catalog_table() {
        let table = DataCatalogTable {
            catalog_id: "123456789012",
            database_name: "db",
            table_name: "t",
            region: "us-east-1",
            version_id: "LATEST",
            role_arn: Some("arn:aws:iam::123456789012:role/r"),
            catalog_arn: None,
        };
        let record = ErrorRecord::format_conversion_failed(
            failure("DataFormatConversion.ParseError", "bad json"),
            Some("49590338271490256608559692538361571095921575989136588898"),
            Some(0),
            &table,
        );
        let text = line(&record);
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["lastErrorCode"], "DataFormatConversion.ParseError");
        assert_eq!(parsed["lastErrorMessage"], "bad json");
        assert!(parsed.get("errorCode").is_none() && parsed.get("errorMessage").is_none());
        assert_eq!(parsed["subSequenceNumber"], 0);
        assert_eq!(parsed["dataCatalogTable"]["databaseName"], "db");
        assert_eq!(
            parsed["dataCatalogTable"]["roleArn"],
            "arn:aws:iam::123456789012:role/r"
        );
        assert!(parsed["dataCatalogTable"].get("catalogArn").is_none());
        let keys: Vec<&str> = parsed
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 9);
        // Documentation order, checked on the raw text (the parsed map may sort keys).
        let order = [
            "attemptsMade",
            "arrivalTimestamp",
            "lastErrorCode",
            "lastErrorMessage",
            "attemptEndingTimestamp",
            "rawData",
            "sequenceNumber",
            "subSequenceNumber",
            "dataCatalogTable",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|key| text.find(&format!("\"{key}\"")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
        assert_eq!(record.kind.error_output_type(), "format-conversion-failed");
    }

    #[test]
    fn http_endpoint_failed_has_subsequence_number_and_data_id() {
        let record = ErrorRecord::http_endpoint_failed(
            failure(
                "HttpEndpoint.DestinationException",
                "503 Service Unavailable: {\"e\":1}",
            ),
            2,
            "record-id-1",
        );
        assert_eq!(
            line(&record),
            concat!(
                r#"{"attemptsMade":4,"arrivalTimestamp":1527624166155,"#,
                r#""errorCode":"HttpEndpoint.DestinationException","#,
                r#""errorMessage":"503 Service Unavailable: {\"e\":1}","#,
                r#""attemptEndingTimestamp":1527624180000,"rawData":"aGVsbG8K","#,
                r#""subsequenceNumber":2,"dataId":"record-id-1"}"#,
                "\n"
            )
        );
        assert_eq!(record.kind.error_output_type(), "http-endpoint-failed");
    }

    #[test]
    fn dynamic_partitioning_failed_has_only_common_fields() {
        let record = ErrorRecord::dynamic_partitioning_failed(failure(
            "DynamicPartitioning.MetadataExtractionFailed",
            "Non JSON record provided",
        ));
        assert_eq!(
            line(&record),
            concat!(
                r#"{"attemptsMade":4,"arrivalTimestamp":1527624166155,"#,
                r#""errorCode":"DynamicPartitioning.MetadataExtractionFailed","#,
                r#""errorMessage":"Non JSON record provided","#,
                r#""attemptEndingTimestamp":1527624180000,"rawData":"aGVsbG8K"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn extra_keys_never_duplicate_common_fields() {
        let mut record = ErrorRecord::processing_failed(failure("c", "m"), "arn");
        record.extra.insert("rawData".into(), "shadow".into());
        record.extra.insert("errorCode".into(), "shadow".into());
        record.extra.insert("zzz".into(), 1.into());
        let text = line(&record);
        assert_eq!(text.matches("\"rawData\"").count(), 1);
        assert_eq!(text.matches("\"errorCode\"").count(), 1);
        assert!(
            text.ends_with("\"lambdaArn\":\"arn\",\"zzz\":1}\n"),
            "{text}"
        );
    }
}
