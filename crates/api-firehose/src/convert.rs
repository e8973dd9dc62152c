//! AWS destination configurations (as JSON documents in AWS's member names) to the domain's
//! `DeliverySpec`, with the checks the model cannot express.
//!
//! Documents rather than the generated structs are the unit of work because UpdateDestination
//! merges member-wise into what was stored; the merged document is then read back through the
//! generated struct, so both paths convert the same way.

use std::collections::BTreeMap;

use millstream_firehose::TableSchema;
use millstream_firehose::spec::{
    Buffering, DeliverySpec, Destination, HttpDelivery, JsonReader, ParquetConversion, Processor,
    RedshiftDelivery, S3Delivery, SubRecordType, TableColumn,
};
use millstream_firehose_format::Compression;
use millstream_firehose_format::naming;
use serde_json::Value;

use crate::error::FirehoseApiError;
use crate::model::*;

type Result<T> = std::result::Result<T, FirehoseApiError>;

/// Every destination type: (configuration member, description member, update member).
pub(crate) const DESTINATIONS: [(&str, &str, &str); 10] = [
    (
        "S3DestinationConfiguration",
        "S3DestinationDescription",
        "S3DestinationUpdate",
    ),
    (
        "ExtendedS3DestinationConfiguration",
        "ExtendedS3DestinationDescription",
        "ExtendedS3DestinationUpdate",
    ),
    (
        "RedshiftDestinationConfiguration",
        "RedshiftDestinationDescription",
        "RedshiftDestinationUpdate",
    ),
    (
        "ElasticsearchDestinationConfiguration",
        "ElasticsearchDestinationDescription",
        "ElasticsearchDestinationUpdate",
    ),
    (
        "AmazonopensearchserviceDestinationConfiguration",
        "AmazonopensearchserviceDestinationDescription",
        "AmazonopensearchserviceDestinationUpdate",
    ),
    (
        "SplunkDestinationConfiguration",
        "SplunkDestinationDescription",
        "SplunkDestinationUpdate",
    ),
    (
        "HttpEndpointDestinationConfiguration",
        "HttpEndpointDestinationDescription",
        "HttpEndpointDestinationUpdate",
    ),
    (
        "AmazonOpenSearchServerlessDestinationConfiguration",
        "AmazonOpenSearchServerlessDestinationDescription",
        "AmazonOpenSearchServerlessDestinationUpdate",
    ),
    (
        "SnowflakeDestinationConfiguration",
        "SnowflakeDestinationDescription",
        "SnowflakeDestinationUpdate",
    ),
    (
        "IcebergDestinationConfiguration",
        "IcebergDestinationDescription",
        "IcebergDestinationUpdate",
    ),
];

/// The one destination configuration of a request object (Create: `*Configuration`,
/// Update: `*Update` members), as (configuration member name, document).
pub(crate) fn single_destination(request: &Value, update: bool) -> Result<(String, Value)> {
    let found: Vec<(String, Value)> = DESTINATIONS
        .iter()
        .filter_map(|(config, _, update_member)| {
            let member = if update { update_member } else { config };
            request
                .get(*member)
                .map(|document| (config.to_string(), document.clone()))
        })
        .collect();
    match <[(String, Value); 1]>::try_from(found) {
        Ok([one]) => Ok(one),
        Err(_) => Err(FirehoseApiError::invalid_argument(
            "Exactly one destination configuration is supported for a Firehose",
        )),
    }
}

/// Update members whose names differ from the configuration's.
fn update_to_configuration(mut document: Value) -> Value {
    if let Some(object) = document.as_object_mut() {
        for (from, to) in [
            ("S3BackupUpdate", "S3BackupConfiguration"),
            ("S3Update", "S3Configuration"),
        ] {
            if let Some(value) = object.remove(from) {
                object.insert(to.to_string(), update_to_configuration(value));
            }
        }
    }
    document
}

/// UpdateDestination's merge: the same destination type merges member by member (nested
/// objects too; `ProcessingConfiguration` is replaced whole, as AWS does); another type
/// replaces the configuration.
pub(crate) fn merge_update(
    stored_kind: &str,
    stored: &Value,
    update_kind: &str,
    update: Value,
) -> (String, Value) {
    let update = update_to_configuration(update);
    let s3_family = |kind: &str| {
        kind == "S3DestinationConfiguration" || kind == "ExtendedS3DestinationConfiguration"
    };
    if stored_kind == update_kind || (s3_family(stored_kind) && s3_family(update_kind)) {
        let mut merged = stored.clone();
        merge_into(&mut merged, update);
        (stored_kind.to_string(), merged)
    } else {
        (update_kind.to_string(), update)
    }
}

fn merge_into(target: &mut Value, update: Value) {
    match (target, update) {
        (Value::Object(target), Value::Object(update)) => {
            for (key, value) in update {
                match target.get_mut(&key) {
                    Some(existing) if key != "ProcessingConfiguration" && value.is_object() => {
                        merge_into(existing, value);
                    }
                    _ => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, update) => *target = update,
    }
}

fn parse<T: serde::de::DeserializeOwned>(document: &Value) -> Result<T> {
    serde_json::from_value(document.clone())
        .map_err(|err| FirehoseApiError::invalid_argument(format!("Invalid destination: {err}")))
}

/// The domain spec of a destination document, checked.
pub(crate) fn spec_from_document(
    kind: &str,
    document: &Value,
    tables: &[TableSchema],
) -> Result<DeliverySpec> {
    match kind {
        "S3DestinationConfiguration" | "ExtendedS3DestinationConfiguration" => {
            let config: ExtendedS3DestinationConfiguration = parse(document)?;
            let processors = processors(config.processing_configuration.as_ref())?;
            let delivery = extended_s3(&config, &processors, tables)?;
            Ok(DeliverySpec {
                destination: Destination::S3(delivery),
                processors,
            })
        }
        "HttpEndpointDestinationConfiguration" => {
            let config: HttpEndpointDestinationConfiguration = parse(document)?;
            let processors = processors(config.processing_configuration.as_ref())?;
            let endpoint = config.endpoint_configuration.unwrap_or_default();
            let request = config.request_configuration.unwrap_or_default();
            let hints = config.buffering_hints.unwrap_or_default();
            let s3 = config.s_3_configuration.unwrap_or_default();
            Ok(DeliverySpec {
                destination: Destination::Http(HttpDelivery {
                    url: endpoint.url.unwrap_or_default(),
                    name: endpoint.name,
                    access_key: endpoint.access_key,
                    gzip: request.content_encoding.as_deref() == Some("GZIP"),
                    common_attributes: request
                        .common_attributes
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| {
                            (
                                a.attribute_name.unwrap_or_default(),
                                a.attribute_value.unwrap_or_default(),
                            )
                        })
                        .collect(),
                    retry_seconds: config
                        .retry_options
                        .and_then(|r| r.duration_in_seconds)
                        .unwrap_or(300) as u64,
                    buffering: buffering(hints.size_in_m_bs, hints.interval_in_seconds, 5, 300),
                    s3: plain_s3(&s3)?,
                    backup_all: config.s_3_backup_mode.as_deref() == Some("AllData"),
                }),
                processors,
            })
        }
        "RedshiftDestinationConfiguration" => {
            let config: RedshiftDestinationConfiguration = parse(document)?;
            let processors = processors(config.processing_configuration.as_ref())?;
            let staging = config.s_3_configuration.unwrap_or_default();
            let staging = plain_s3(&staging)?;
            if matches!(staging.compression, Compression::Zip | Compression::Snappy) {
                return Err(FirehoseApiError::invalid_argument(
                    "Compression format ZIP and Snappy are not supported for Redshift destination.",
                ));
            }
            if staging
                .prefix
                .as_deref()
                .is_some_and(|prefix| prefix.contains("!{"))
            {
                return Err(FirehoseApiError::invalid_argument(
                    "Expressions are not supported in the prefix of a Redshift destination's S3 configuration.",
                ));
            }
            let copy = config.copy_command.unwrap_or_default();
            Ok(DeliverySpec {
                destination: Destination::Redshift(RedshiftDelivery {
                    jdbc_url: config.cluster_jdbcurl.unwrap_or_default(),
                    username: config.username.unwrap_or_default(),
                    password: config.password.unwrap_or_default(),
                    table: copy.data_table_name.unwrap_or_default(),
                    columns: copy.data_table_columns.map(|columns| {
                        columns
                            .split(',')
                            .map(|c| c.trim().to_string())
                            .filter(|c| !c.is_empty())
                            .collect()
                    }),
                    copy_options: copy.copy_options,
                    retry_seconds: config
                        .retry_options
                        .and_then(|r| r.duration_in_seconds)
                        .unwrap_or(3600) as u64,
                    staging,
                }),
                processors,
            })
        }
        other => Ok(DeliverySpec {
            destination: Destination::Undeliverable {
                kind: other.to_string(),
            },
            processors: Vec::new(),
        }),
    }
}

fn buffering(
    size: Option<i64>,
    interval: Option<i64>,
    size_default: u64,
    interval_default: u64,
) -> Buffering {
    Buffering::new(
        size.map_or(size_default, |s| s.max(1) as u64),
        interval.map_or(interval_default, |i| i.max(0) as u64),
    )
}

fn bucket(arn: Option<&str>) -> Result<String> {
    let arn = arn.unwrap_or_default();
    match arn.strip_prefix("arn:aws:s3:::") {
        Some(bucket) if !bucket.is_empty() && !bucket.contains('/') => Ok(bucket.to_string()),
        _ => Err(FirehoseApiError::invalid_argument(format!(
            "BucketARN {arn} is not a valid S3 bucket ARN."
        ))),
    }
}

fn compression(name: Option<&str>) -> Result<Compression> {
    let name = name.unwrap_or("UNCOMPRESSED");
    Compression::from_aws(name).ok_or_else(|| {
        FirehoseApiError::invalid_argument(format!("Unsupported compression format {name}."))
    })
}

/// A plain `S3DestinationConfiguration` (staging, backup, error output of HTTP): no
/// expressions beyond what the prefixes allow without dynamic partitioning.
fn plain_s3(config: &S3DestinationConfiguration) -> Result<S3Delivery> {
    naming::validate_prefixes(
        config.prefix.as_deref(),
        config.error_output_prefix.as_deref(),
        false,
    )
    .map_err(|err| FirehoseApiError::invalid_argument(err.to_string()))?;
    let hints = config.buffering_hints.clone().unwrap_or_default();
    Ok(S3Delivery {
        bucket: bucket(config.bucket_arn.as_deref())?,
        prefix: config.prefix.clone(),
        error_output_prefix: config.error_output_prefix.clone(),
        buffering: buffering(hints.size_in_m_bs, hints.interval_in_seconds, 5, 300),
        compression: compression(config.compression_format.as_deref())?,
        file_extension: None,
        time_zone: None,
        dynamic_partitioning: false,
        conversion: None,
        backup: None,
    })
}

fn extended_s3(
    config: &ExtendedS3DestinationConfiguration,
    processors: &[Processor],
    tables: &[TableSchema],
) -> Result<S3Delivery> {
    let dynamic_partitioning = config
        .dynamic_partitioning_configuration
        .as_ref()
        .and_then(|d| d.enabled)
        .unwrap_or(false);
    naming::validate_prefixes(
        config.prefix.as_deref(),
        config.error_output_prefix.as_deref(),
        dynamic_partitioning,
    )
    .map_err(|err| FirehoseApiError::invalid_argument(err.to_string()))?;
    if let Some(zone) = config.custom_time_zone.as_deref().filter(|z| !z.is_empty())
        && naming::parse_time_zone(zone).is_none()
    {
        return Err(FirehoseApiError::invalid_argument(format!(
            "CustomTimeZone {zone} is not a valid time zone."
        )));
    }
    let compression = compression(config.compression_format.as_deref())?;
    let conversion = config
        .data_format_conversion_configuration
        .as_ref()
        .filter(|c| c.enabled.unwrap_or(true))
        .map(|c| parquet_conversion(c, tables))
        .transpose()?;
    let hints = config.buffering_hints.clone().unwrap_or_default();
    let mut size_default = 5;
    if conversion.is_some() {
        if compression != Compression::Uncompressed {
            return Err(FirehoseApiError::invalid_argument(
                "CompressionFormat must be UNCOMPRESSED when data format conversion is enabled.",
            ));
        }
        if hints.size_in_m_bs.is_some_and(|size| size < 64) {
            return Err(FirehoseApiError::invalid_argument(
                "BufferingHints.SizeInMBs must be at least 64 when data format conversion is enabled.",
            ));
        }
        size_default = 128;
    }
    if !dynamic_partitioning
        && processors
            .iter()
            .any(|p| matches!(p, Processor::MetadataExtraction { .. }))
    {
        return Err(FirehoseApiError::invalid_argument(
            "MetadataExtraction processor is only supported when dynamic partitioning is enabled.",
        ));
    }
    let backup = match config.s_3_backup_mode.as_deref() {
        Some("Enabled") => {
            let backup = config.s_3_backup_configuration.as_ref().ok_or_else(|| {
                FirehoseApiError::invalid_argument(
                    "S3BackupConfiguration is required when S3BackupMode is Enabled.",
                )
            })?;
            Some(Box::new(plain_s3(backup)?))
        }
        _ => None,
    };
    Ok(S3Delivery {
        bucket: bucket(config.bucket_arn.as_deref())?,
        prefix: config.prefix.clone(),
        error_output_prefix: config.error_output_prefix.clone(),
        buffering: buffering(
            hints.size_in_m_bs,
            hints.interval_in_seconds,
            size_default,
            300,
        ),
        compression,
        file_extension: config.file_extension.clone().filter(|e| !e.is_empty()),
        time_zone: config.custom_time_zone.clone().filter(|z| !z.is_empty()),
        dynamic_partitioning,
        conversion,
        backup,
    })
}

fn parquet_conversion(
    config: &DataFormatConversionConfiguration,
    tables: &[TableSchema],
) -> Result<ParquetConversion> {
    let schema = config.schema_configuration.clone().unwrap_or_default();
    let database = schema.database_name.unwrap_or_default();
    let table = schema.table_name.unwrap_or_default();
    let columns: Vec<TableColumn> = tables
        .iter()
        .find(|t| t.database == database && t.table == table)
        .map(|t| t.columns.clone())
        .ok_or_else(|| {
            FirehoseApiError::invalid_argument(format!(
                "Table {table} in database {database} is not configured: add it to the \
                 [[firehose.tables]] section of the Millstream configuration (Millstream \
                 reads table schemas from there instead of AWS Glue)."
            ))
        })?;
    let deserializer = config
        .input_format_configuration
        .clone()
        .and_then(|i| i.deserializer)
        .unwrap_or_default();
    let reader = match (
        deserializer.open_x_json_ser_de,
        deserializer.hive_json_ser_de,
    ) {
        (_, Some(hive)) => JsonReader::Hive {
            timestamp_formats: hive.timestamp_formats.unwrap_or_default(),
        },
        (openx, None) => {
            let openx = openx.unwrap_or_default();
            JsonReader::OpenX {
                case_insensitive: openx.case_insensitive.unwrap_or(true),
                convert_dots_to_underscores: openx
                    .convert_dots_in_json_keys_to_underscores
                    .unwrap_or(false),
                column_to_json_key: openx
                    .column_to_json_key_mappings
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            }
        }
    };
    let serializer = config
        .output_format_configuration
        .clone()
        .and_then(|o| o.serializer)
        .unwrap_or_default();
    if serializer.orc_ser_de.is_some() {
        return Err(FirehoseApiError::invalid_argument(
            "Millstream converts records to Parquet only; ORC output is not supported.",
        ));
    }
    let parquet = serializer.parquet_ser_de.unwrap_or_default();
    Ok(ParquetConversion {
        database,
        table,
        columns,
        reader,
        compression: parquet.compression.unwrap_or_else(|| "SNAPPY".to_string()),
        block_size_bytes: parquet.block_size_bytes.unwrap_or(256 << 20) as u64,
        page_size_bytes: parquet.page_size_bytes.unwrap_or(1 << 20) as u64,
        enable_dictionary: parquet.enable_dictionary_compression.unwrap_or(false),
        writer_version_v2: parquet.writer_version.as_deref() == Some("V2"),
    })
}

fn processors(config: Option<&ProcessingConfiguration>) -> Result<Vec<Processor>> {
    let Some(config) = config.filter(|c| c.enabled.unwrap_or(false)) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for processor in config.processors.clone().unwrap_or_default() {
        let kind = processor.r#type.unwrap_or_default();
        let parameters: BTreeMap<String, String> = processor
            .parameters
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.parameter_name?, p.parameter_value?)))
            .collect();
        let number = |name: &str, default: f64| -> Result<f64> {
            parameters.get(name).map_or(Ok(default), |value| {
                value.parse::<f64>().map_err(|_| {
                    FirehoseApiError::invalid_argument(format!(
                        "Invalid value {value} for processor parameter {name}."
                    ))
                })
            })
        };
        out.push(match kind.as_str() {
            "Lambda" => {
                let function = parameters.get("LambdaArn").cloned().ok_or_else(|| {
                    FirehoseApiError::invalid_argument(
                        "LambdaArn is a required parameter for the Lambda processor.",
                    )
                })?;
                Processor::Lambda {
                    function,
                    retries: number("NumberOfRetries", 3.0)? as u32,
                    buffer_bytes: (number("BufferSizeInMBs", 1.0)? * 1048576.0) as u64,
                }
            }
            "MetadataExtraction" => {
                let query = parameters
                    .get("MetadataExtractionQuery")
                    .cloned()
                    .ok_or_else(|| {
                        FirehoseApiError::invalid_argument(
                            "MetadataExtractionQuery is a required parameter for the MetadataExtraction processor.",
                        )
                    })?;
                if let Some(engine) = parameters.get("JsonParsingEngine")
                    && engine != "JQ-1.6"
                {
                    return Err(FirehoseApiError::invalid_argument(format!(
                        "Unsupported JsonParsingEngine {engine}."
                    )));
                }
                millstream_firehose_process::jq::MetadataQuery::compile(&query).map_err(
                    |err| {
                        FirehoseApiError::invalid_argument(format!(
                            "Invalid MetadataExtractionQuery: {err}"
                        ))
                    },
                )?;
                Processor::MetadataExtraction { query }
            }
            "RecordDeAggregation" => {
                let sub = match parameters.get("SubRecordType").map(String::as_str) {
                    Some("DELIMITED") => {
                        let delimiter = parameters
                            .get("Delimiter")
                            .map(|d| {
                                use base64::Engine;
                                base64::engine::general_purpose::STANDARD
                                    .decode(d)
                                    .map_err(|_| {
                                        FirehoseApiError::invalid_argument(
                                            "Delimiter must be base64-encoded.",
                                        )
                                    })
                            })
                            .transpose()?
                            .unwrap_or_else(|| b"\n".to_vec());
                        SubRecordType::Delimited(delimiter)
                    }
                    _ => SubRecordType::Json,
                };
                Processor::Deaggregation(sub)
            }
            "AppendDelimiterToRecord" => {
                let delimiter = match parameters.get("Delimiter") {
                    Some(d) => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(d)
                            .unwrap_or_else(|_| d.as_bytes().to_vec())
                    }
                    None => b"\n".to_vec(),
                };
                Processor::AppendDelimiter { delimiter }
            }
            "Decompression" => Processor::Decompression,
            "CloudWatchLogProcessing" => Processor::CloudWatchLogs {
                extract_messages: parameters
                    .get("DataMessageExtraction")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            },
            other => {
                return Err(FirehoseApiError::invalid_argument(format!(
                    "Unsupported processor type {other}."
                )));
            }
        });
    }
    // AWS applies processors in a fixed order whatever order they are listed in.
    out.sort_by_key(|p| match p {
        Processor::Decompression => 0,
        Processor::CloudWatchLogs { .. } => 1,
        Processor::Deaggregation(_) => 2,
        Processor::Lambda { .. } => 3,
        Processor::MetadataExtraction { .. } => 4,
        Processor::AppendDelimiter { .. } => 5,
    });
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use millstream_aws_protocol::Validate;
    use serde_json::json;

    #[test]
    fn exactly_one_destination_is_accepted() {
        let none = json!({ "DeliveryStreamName": "x" });
        assert!(single_destination(&none, false).is_err());
        let two = json!({
            "ExtendedS3DestinationConfiguration": {},
            "HttpEndpointDestinationConfiguration": {},
        });
        assert!(single_destination(&two, false).is_err());
        let one = json!({ "ExtendedS3DestinationUpdate": { "Prefix": "p/" } });
        let (kind, document) = single_destination(&one, true).unwrap();
        assert_eq!(kind, "ExtendedS3DestinationConfiguration");
        assert_eq!(document["Prefix"], "p/");
    }

    #[test]
    fn updates_merge_member_wise_but_replace_processing_and_other_types() {
        let stored = json!({
            "BucketARN": "arn:aws:s3:::b",
            "BufferingHints": { "SizeInMBs": 5, "IntervalInSeconds": 60 },
            "ProcessingConfiguration": { "Enabled": true, "Processors": [{ "Type": "Lambda" }] },
            "S3BackupConfiguration": { "BucketARN": "arn:aws:s3:::old" },
        });
        let update = json!({
            "BufferingHints": { "IntervalInSeconds": 10 },
            "ProcessingConfiguration": { "Enabled": false },
            "S3BackupUpdate": { "Prefix": "bk/" },
        });
        let (kind, merged) = merge_update(
            "ExtendedS3DestinationConfiguration",
            &stored,
            "ExtendedS3DestinationConfiguration",
            update,
        );
        assert_eq!(kind, "ExtendedS3DestinationConfiguration");
        assert_eq!(merged["BucketARN"], "arn:aws:s3:::b");
        assert_eq!(merged["BufferingHints"]["SizeInMBs"], 5);
        assert_eq!(merged["BufferingHints"]["IntervalInSeconds"], 10);
        assert_eq!(
            merged["ProcessingConfiguration"],
            json!({ "Enabled": false })
        );
        assert_eq!(
            merged["S3BackupConfiguration"]["BucketARN"],
            "arn:aws:s3:::old"
        );
        assert_eq!(merged["S3BackupConfiguration"]["Prefix"], "bk/");

        let (kind, replaced) = merge_update(
            "ExtendedS3DestinationConfiguration",
            &stored,
            "HttpEndpointDestinationConfiguration",
            json!({ "EndpointConfiguration": { "Url": "https://e" } }),
        );
        assert_eq!(kind, "HttpEndpointDestinationConfiguration");
        assert!(replaced.get("BucketARN").is_none());
    }

    #[test]
    fn processors_run_in_aws_order_with_defaults() {
        let config: ProcessingConfiguration = serde_json::from_value(json!({
            "Enabled": true,
            "Processors": [
                { "Type": "AppendDelimiterToRecord" },
                { "Type": "Lambda", "Parameters": [
                    { "ParameterName": "LambdaArn", "ParameterValue": "arn:aws:lambda:us-east-1:1:function:f" }
                ]},
                { "Type": "RecordDeAggregation", "Parameters": [
                    { "ParameterName": "SubRecordType", "ParameterValue": "DELIMITED" },
                    { "ParameterName": "Delimiter", "ParameterValue": "fA==" }
                ]},
            ],
        }))
        .unwrap();
        let list = processors(Some(&config)).unwrap();
        assert_eq!(
            list,
            vec![
                Processor::Deaggregation(SubRecordType::Delimited(b"|".to_vec())),
                Processor::Lambda {
                    function: "arn:aws:lambda:us-east-1:1:function:f".to_string(),
                    retries: 3,
                    buffer_bytes: 1 << 20,
                },
                Processor::AppendDelimiter {
                    delimiter: b"\n".to_vec()
                },
            ]
        );
        let disabled: ProcessingConfiguration =
            serde_json::from_value(json!({ "Processors": [{ "Type": "Lambda" }] })).unwrap();
        assert!(
            processors(Some(&disabled)).unwrap().is_empty(),
            "Enabled omitted = off"
        );
        let no_arn: ProcessingConfiguration = serde_json::from_value(
            json!({ "Enabled": true, "Processors": [{ "Type": "Lambda" }] }),
        )
        .unwrap();
        assert!(processors(Some(&no_arn)).is_err());
    }

    #[test]
    fn conversion_needs_a_configured_table_and_uncompressed_output() {
        let document = json!({
            "BucketARN": "arn:aws:s3:::b",
            "RoleARN": "arn:aws:iam::1:role/r",
            "BufferingHints": { "SizeInMBs": 64, "IntervalInSeconds": 60 },
            "DataFormatConversionConfiguration": {
                "SchemaConfiguration": { "DatabaseName": "d", "TableName": "t" },
                "OutputFormatConfiguration": { "Serializer": { "ParquetSerDe": {} } },
            },
        });
        let kind = "ExtendedS3DestinationConfiguration";
        let missing = spec_from_document(kind, &document, &[]).unwrap_err();
        assert!(missing.message.unwrap().contains("[[firehose.tables]]"));
        let tables = [TableSchema {
            database: "d".to_string(),
            table: "t".to_string(),
            columns: vec![TableColumn {
                name: "a".to_string(),
                hive_type: "int".to_string(),
            }],
        }];
        let spec = spec_from_document(kind, &document, &tables).unwrap();
        let Destination::S3(s3) = spec.destination else {
            panic!("an S3 destination")
        };
        assert_eq!(s3.conversion.unwrap().compression, "SNAPPY");
        let mut gzip = document.clone();
        gzip["CompressionFormat"] = json!("GZIP");
        assert!(spec_from_document(kind, &gzip, &tables).is_err());
        let mut small = document;
        small["BufferingHints"]["SizeInMBs"] = json!(5);
        assert!(spec_from_document(kind, &small, &tables).is_err());
    }

    #[test]
    fn tag_keys_follow_the_model_pattern_without_look_ahead() {
        let check = |key: &str| {
            let input = TagDeliveryStreamInput {
                delivery_stream_name: Some("s".to_string()),
                tags: Some(vec![Tag {
                    key: Some(key.to_string()),
                    value: Some("v".to_string()),
                }]),
            };
            input.validate_input().is_ok()
        };
        assert!(!check("aws:owner"), "the reserved prefix");
        for fine in ["a", "aw", "aws", "awsx", "aw:s", "team", "a/b=c"] {
            assert!(check(fine), "{fine}");
        }
        assert!(!check("bad\u{7}char"));
    }
}
