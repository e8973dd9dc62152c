//! Stage two: a flushed lane becomes objects, an HTTP request or a COPY, under keys chosen
//! before anything is written (see the engine's durability protocol).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics::{counter, gauge};
use millstream_firehose_format::naming::{
    self, PrefixContext, PrefixTemplate, deterministic_id, object_suffix,
};
use millstream_firehose_format::{Compression, DataCatalogTable, ErrorRecord, FailedRecord};
use millstream_firehose_parquet::{
    Column, Converter, Deserializer, ParquetCompression, ParquetOptions,
};
use millstream_firehose_sinks::http_endpoint::{HttpEndpoint, HttpEndpointConfig};
use millstream_firehose_sinks::objects::{ObjectBackend, ObjectTarget};
use millstream_firehose_sinks::postgres::{PostgresConfig, PostgresTarget};

use super::pipeline::{Lane, Output, PARTITIONING_FAILED};
use super::{EngineContext, Halt, concatenate};
use crate::meta::Batch;
use crate::spec::{Buffering, Destination, JsonReader, ParquetConversion, S3Delivery};
use crate::{ObjectStorage, now_ms};

const FORMAT_CONVERSION_FAILED: &str = "format-conversion-failed";
const HTTP_ENDPOINT_FAILED: &str = "http-endpoint-failed";

/// DeliveryStreamFailureType is an enum of KMS, VPC and ENI failures plus UNKNOWN_ERROR; a
/// destination that refuses writes is the last, with the details saying what happened.
const FAILURE_TYPE: &str = "UNKNOWN_ERROR";

pub(crate) struct WriteFailure {
    /// FailureDescription.Type as AWS reports it.
    pub kind: String,
    pub details: String,
}

/// One S3 output: a bucket with its prefixes and object format.
struct S3Out {
    spec: S3Delivery,
    objects: ObjectTarget,
    data_prefix: PrefixTemplate,
    error_prefix: PrefixTemplate,
    time_zone: chrono_tz::Tz,
}

impl S3Out {
    fn new(spec: &S3Delivery, storage: &ObjectStorage, region: &str) -> Result<Self, Halt> {
        let backend = match storage {
            ObjectStorage::Embedded { root } => ObjectBackend::Embedded { root: root.clone() },
            ObjectStorage::S3 { endpoint } => ObjectBackend::S3 {
                endpoint: endpoint.clone(),
                region: region.to_string(),
            },
        };
        let objects = ObjectTarget::new(backend, &spec.bucket)?;
        let data_prefix = naming::effective_data_prefix(spec.prefix.as_deref())?;
        let error_prefix = naming::effective_error_prefix(
            spec.prefix.as_deref(),
            spec.error_output_prefix.as_deref(),
        )?;
        let time_zone = spec
            .time_zone
            .as_deref()
            .and_then(naming::parse_time_zone)
            .unwrap_or(chrono_tz::UTC);
        Ok(S3Out {
            spec: spec.clone(),
            objects,
            data_prefix,
            error_prefix,
            time_zone,
        })
    }

    fn extension(&self) -> String {
        match (&self.spec.file_extension, &self.spec.conversion) {
            (Some(extension), _) if !extension.is_empty() => extension.clone(),
            (_, Some(_)) => ".parquet".to_string(),
            _ => self.spec.compression.extension().to_string(),
        }
    }

    fn suffix(&self, name: &str, version: u64, id: &str) -> String {
        object_suffix(
            name,
            version,
            now_ms() as i64,
            self.time_zone,
            id,
            &self.extension(),
        )
    }

    fn data_key(
        &self,
        lane: &Lane,
        oldest_ms: u64,
        name: &str,
        version: u64,
        id: &str,
        seed: u64,
    ) -> String {
        let empty = BTreeMap::new();
        let (query_keys, lambda_keys) = match lane {
            Lane::Data {
                query_keys,
                lambda_keys,
            } => (query_keys, lambda_keys),
            _ => (&empty, &empty),
        };
        let context = PrefixContext {
            oldest_arrival_ms: oldest_ms as i64,
            time_zone: self.time_zone,
            query_keys,
            lambda_keys,
            error_output_type: None,
            random_seed: seed,
        };
        match self.data_prefix.evaluate(&context) {
            Ok(prefix) => format!("{prefix}{}", self.suffix(name, version, id)),
            // A partition key the records lack: AWS routes them to the error prefix.
            Err(_) => self.error_key(PARTITIONING_FAILED, oldest_ms, name, version, id, seed),
        }
    }

    fn error_key(
        &self,
        kind: &str,
        oldest_ms: u64,
        name: &str,
        version: u64,
        id: &str,
        seed: u64,
    ) -> String {
        let empty = BTreeMap::new();
        let context = PrefixContext {
            oldest_arrival_ms: oldest_ms as i64,
            time_zone: self.time_zone,
            query_keys: &empty,
            lambda_keys: &empty,
            error_output_type: Some(kind),
            random_seed: seed,
        };
        let prefix = self
            .error_prefix
            .evaluate(&context)
            .unwrap_or_else(|_| format!("{kind}/"));
        format!("{prefix}{}", self.suffix(name, version, id))
    }

    /// Compresses (unless converted) and writes one object.
    async fn put(&self, key: &str, body: Bytes, id: &str) -> Result<usize, WriteFailure> {
        let (body, encoding) = if self.spec.conversion.is_some() {
            (body, None)
        } else {
            let compression = self.spec.compression;
            let compressed = match compression {
                Compression::Uncompressed => body,
                // About 31 us of CPU per incompressible KiB at GZIP level 6 (BENCHMARKS.md,
                // "Firehose"), ~0.15 s for a 5 MiB batch (spread over the CPUs in 1 MiB
                // pieces): off the async workers, which serve requests meanwhile.
                _ => Bytes::from(
                    tokio::task::block_in_place(|| compression.compress(&body, id)).map_err(
                        |err| WriteFailure {
                            kind: FAILURE_TYPE.to_string(),
                            details: format!("compression failed: {err}"),
                        },
                    )?,
                ),
            };
            (compressed, compression.content_encoding())
        };
        let size = body.len();
        self.objects
            .put(key, body, encoding)
            .await
            .map_err(|err| WriteFailure {
                kind: FAILURE_TYPE.to_string(),
                details: format!("Failed to write s3://{}/{key}: {err}", self.spec.bucket),
            })?;
        Ok(size)
    }
}

enum Target {
    S3 {
        main: S3Out,
        backup: Option<S3Out>,
        /// Boxed: the converter holds a schema and writer settings, far larger than the
        /// other targets.
        converter: Option<Box<Converter>>,
    },
    Http {
        endpoint: HttpEndpoint,
        s3: S3Out,
        buffering: Buffering,
    },
    Redshift {
        target: PostgresTarget,
        staging: S3Out,
        retry: Duration,
    },
    Undeliverable,
}

pub(crate) struct Writer {
    name: String,
    account: String,
    region: String,
    arn: String,
    version: u64,
    backup_all: bool,
    target: Target,
    backoff_scale: f64,
}

impl Writer {
    pub fn new(context: &EngineContext) -> Result<Self, Halt> {
        let config = &context.config;
        let storage = &config.objects;
        let region = config.region.as_str();
        let mut backup_all = false;
        let target = match &context.meta.spec.destination {
            Destination::S3(spec) => Target::S3 {
                main: S3Out::new(spec, storage, region)?,
                backup: spec
                    .backup
                    .as_deref()
                    .map(|backup| S3Out::new(backup, storage, region))
                    .transpose()?,
                converter: spec
                    .conversion
                    .as_ref()
                    .map(converter)
                    .transpose()?
                    .map(Box::new),
            },
            Destination::Http(http) => {
                backup_all = http.backup_all;
                Target::Http {
                    endpoint: HttpEndpoint::new(
                        HttpEndpointConfig {
                            url: rewrite_url(&http.url, &config.http_endpoint_rewrites),
                            name: http.name.clone(),
                            access_key: http.access_key.clone(),
                            gzip: http.gzip,
                            common_attributes: http.common_attributes.clone(),
                            retry_duration: Duration::from_secs(http.retry_seconds),
                        },
                        &context.arn,
                    )?
                    .with_backoff_scale(config.backoff_scale),
                    s3: S3Out::new(&http.s3, storage, region)?,
                    buffering: http.buffering,
                }
            }
            Destination::Redshift(redshift) => Target::Redshift {
                target: PostgresTarget::new(PostgresConfig {
                    jdbc_url: redirect_jdbc(&redshift.jdbc_url, &config.redshift_endpoints),
                    username: redshift.username.clone(),
                    password: redshift.password.clone(),
                    table: redshift.table.clone(),
                    columns: redshift.columns.clone(),
                    copy_options: redshift.copy_options.clone(),
                })?,
                staging: S3Out::new(&redshift.staging, storage, region)?,
                retry: Duration::from_secs(redshift.retry_seconds),
            },
            Destination::Undeliverable { .. } => Target::Undeliverable,
        };
        Ok(Writer {
            name: context.name.clone(),
            account: config.account_id.clone(),
            region: config.region.clone(),
            arn: context.arn.clone(),
            version: context.meta.version_id,
            backup_all,
            target,
            backoff_scale: config.backoff_scale,
        })
    }

    /// Whether the source records also go to a backup lane.
    pub fn wants_backup(&self) -> bool {
        match &self.target {
            Target::S3 { backup, .. } => backup.is_some(),
            Target::Http { .. } => self.backup_all,
            _ => false,
        }
    }

    /// The hints a lane flushes by.
    pub fn buffering(&self, lane: &Lane) -> Buffering {
        match (&self.target, lane) {
            (
                Target::S3 {
                    backup: Some(backup),
                    ..
                },
                Lane::Backup,
            ) => backup.spec.buffering,
            (Target::S3 { main, .. }, _) => main.spec.buffering,
            (Target::Http { s3, .. }, Lane::Backup) => s3.spec.buffering,
            (Target::Http { buffering, .. }, _) => *buffering,
            (Target::Redshift { staging, .. }, _) => staging.spec.buffering,
            // Never flushed: an undeliverable destination keeps its records in the log.
            (Target::Undeliverable, _) => Buffering {
                size_bytes: u64::MAX,
                interval_ms: u64::MAX / 2,
            },
        }
    }

    /// The object keys a batch will be written under, fixed before writing.
    pub fn plan_keys(&self, lane: &Lane, batch: &Batch, outputs: &[Output]) -> Vec<String> {
        let spans = serde_json::to_vec(&batch.spans).unwrap_or_default();
        let id = deterministic_id(&[self.arn.as_bytes(), batch.lane.as_bytes(), &spans]);
        let seed = u64::from_str_radix(&id.replace('-', "")[..16], 16).unwrap_or(0);
        let oldest = outputs
            .iter()
            .map(|o| o.arrival_ms)
            .min()
            .unwrap_or_else(now_ms);
        let (name, version) = (self.name.as_str(), self.version);
        match (&self.target, lane) {
            (Target::S3 { main, .. }, Lane::Data { .. }) => vec![
                main.data_key(lane, oldest, name, version, &id, seed),
                main.error_key(FORMAT_CONVERSION_FAILED, oldest, name, version, &id, seed),
            ],
            (Target::S3 { main, .. }, Lane::Error(kind)) => {
                vec![main.error_key(kind, oldest, name, version, &id, seed)]
            }
            (Target::S3 { backup, main, .. }, Lane::Backup) => {
                let out = backup.as_ref().unwrap_or(main);
                vec![out.data_key(lane, oldest, name, version, &id, seed)]
            }
            (Target::Http { s3, .. }, Lane::Data { .. }) => {
                vec![
                    s3.error_key(HTTP_ENDPOINT_FAILED, oldest, name, version, &id, seed),
                    id,
                ]
            }
            (Target::Http { s3, .. }, Lane::Error(kind))
            | (Target::Redshift { staging: s3, .. }, Lane::Error(kind)) => {
                vec![s3.error_key(kind, oldest, name, version, &id, seed)]
            }
            (Target::Http { s3, .. }, Lane::Backup) | (Target::Redshift { staging: s3, .. }, _) => {
                let key = s3.data_key(lane, oldest, name, version, &id, seed);
                let manifest = format!("errors/manifests/{}", s3.suffix(name, version, &id));
                vec![key, manifest]
            }
            (Target::Undeliverable, _) => Vec::new(),
        }
    }

    pub fn record_failure(&self, lane: &Lane) {
        counter!(format!("firehose_{}_attempts_total", self.metric(lane)), "delivery_stream" => self.name.clone())
            .increment(1);
    }

    fn metric(&self, lane: &Lane) -> &'static str {
        match (&self.target, lane) {
            (_, Lane::Backup) => "backup_to_s3",
            (Target::Http { .. }, Lane::Data { .. }) => "delivery_to_http_endpoint",
            (Target::Redshift { .. }, Lane::Data { .. }) => "delivery_to_redshift",
            _ => "delivery_to_s3",
        }
    }

    fn record_success(&self, lane: &Lane, outputs: &[Output], bytes: usize, objects: u64) {
        let metric = self.metric(lane);
        let labels = [("delivery_stream", self.name.clone())];
        counter!(format!("firehose_{metric}_attempts_total"), &labels).increment(1);
        counter!(format!("firehose_{metric}_success_total"), &labels).increment(1);
        counter!(format!("firehose_{metric}_records_total"), &labels)
            .increment(outputs.len() as u64);
        counter!(format!("firehose_{metric}_bytes_total"), &labels).increment(bytes as u64);
        if objects > 0 && metric == "delivery_to_s3" {
            counter!("firehose_delivery_to_s3_object_count_total", &labels).increment(objects);
        }
        if let Some(oldest) = outputs.iter().map(|o| o.arrival_ms).min() {
            let freshness = now_ms().saturating_sub(oldest) as f64 / 1000.0;
            gauge!(format!("firehose_{metric}_data_freshness_seconds"), &labels).set(freshness);
        }
    }

    /// Writes a flushed lane under its planned keys.
    pub async fn write(
        &self,
        lane: &Lane,
        outputs: &[Output],
        keys: &[String],
    ) -> Result<(), WriteFailure> {
        let id = keys
            .first()
            .map(|key| deterministic_id(&[key.as_bytes()]))
            .unwrap_or_default();
        match (&self.target, lane) {
            (
                Target::S3 {
                    main, converter, ..
                },
                Lane::Data { .. },
            ) => {
                let (bytes, objects) = match converter {
                    Some(converter) => {
                        self.write_converted(main, converter, outputs, keys, &id)
                            .await?
                    }
                    None => (main.put(&keys[0], concatenate(outputs), &id).await?, 1),
                };
                self.record_success(lane, outputs, bytes, objects);
            }
            (Target::S3 { main, backup, .. }, _) => {
                let out = match lane {
                    Lane::Backup => backup.as_ref().unwrap_or(main),
                    _ => main,
                };
                let bytes = out.put(&keys[0], concatenate(outputs), &id).await?;
                self.record_success(lane, outputs, bytes, 1);
            }
            (Target::Http { endpoint, s3, .. }, Lane::Data { .. }) => {
                let records: Vec<Bytes> = outputs.iter().map(|o| o.data.clone()).collect();
                let request_id = keys.get(1).cloned().unwrap_or(id.clone());
                let delivery = endpoint
                    .deliver(&request_id, &records, now_ms() as i64)
                    .await;
                match delivery.outcome {
                    Ok(()) => {
                        let bytes = records.iter().map(Bytes::len).sum();
                        self.record_success(lane, outputs, bytes, 0);
                    }
                    Err(failure) => {
                        tracing::warn!(delivery_stream = %self.name, code = %failure.code, "HTTP endpoint delivery failed; writing the batch to the error output");
                        self.record_failure(lane);
                        let ending = now_ms() as i64;
                        let mut lines = Vec::new();
                        for output in outputs {
                            let failed = FailedRecord {
                                attempts_made: delivery.attempts,
                                arrival_timestamp_ms: output.arrival_ms as i64,
                                error_code: &failure.code,
                                error_message: &failure.message,
                                attempt_ending_timestamp_ms: ending,
                                raw_data: &output.data,
                            };
                            let data_id = format!("{}:{}", output.source, output.position.0);
                            lines.extend(
                                ErrorRecord::http_endpoint_failed(
                                    failed,
                                    u64::from(output.position.1),
                                    &data_id,
                                )
                                .to_json_line(),
                            );
                        }
                        s3.put(&keys[0], Bytes::from(lines), &id).await?;
                    }
                }
            }
            (Target::Http { s3, .. }, _) => {
                let bytes = s3.put(&keys[0], concatenate(outputs), &id).await?;
                self.record_success(lane, outputs, bytes, 1);
            }
            (
                Target::Redshift {
                    target,
                    staging,
                    retry,
                },
                Lane::Data { .. },
            ) => {
                let body = concatenate(outputs);
                staging.put(&keys[0], body.clone(), &id).await?;
                self.copy_with_retries(target, staging, &body, keys, *retry)
                    .await?;
                self.record_success(lane, outputs, body.len(), 0);
            }
            (Target::Redshift { staging, .. }, _) => {
                let bytes = staging.put(&keys[0], concatenate(outputs), &id).await?;
                self.record_success(lane, outputs, bytes, 1);
            }
            (Target::Undeliverable, _) => {}
        }
        Ok(())
    }

    async fn write_converted(
        &self,
        main: &S3Out,
        converter: &Converter,
        outputs: &[Output],
        keys: &[String],
        id: &str,
    ) -> Result<(usize, u64), WriteFailure> {
        let records: Vec<&[u8]> = outputs.iter().map(|o| o.data.as_ref()).collect();
        let conversion = tokio::task::block_in_place(|| converter.convert(&records));
        let mut written = 0;
        let mut objects = 0;
        if conversion.rows > 0 {
            written += main
                .put(&keys[0], Bytes::from(conversion.parquet), id)
                .await?;
            objects += 1;
        }
        if !conversion.failures.is_empty() {
            let ending = now_ms() as i64;
            let table = main.spec.conversion.as_ref();
            let catalog = DataCatalogTable {
                catalog_id: &self.account,
                database_name: table.map_or("", |t| t.database.as_str()),
                table_name: table.map_or("", |t| t.table.as_str()),
                region: &self.region,
                version_id: "LATEST",
                role_arn: None,
                catalog_arn: None,
            };
            let mut lines = Vec::new();
            for failure in &conversion.failures {
                let output = &outputs[failure.index];
                let failed = FailedRecord {
                    attempts_made: 1,
                    arrival_timestamp_ms: output.arrival_ms as i64,
                    error_code: failure.code,
                    error_message: &failure.message,
                    attempt_ending_timestamp_ms: ending,
                    raw_data: &output.data,
                };
                lines.extend(
                    ErrorRecord::format_conversion_failed(
                        failed,
                        None,
                        Some(u64::from(output.position.1)),
                        &catalog,
                    )
                    .to_json_line(),
                );
            }
            written += main.put(&keys[1], Bytes::from(lines), id).await?;
            objects += 1;
        }
        Ok((written, objects))
    }

    /// COPY, retried within the destination's retry duration; past it, AWS skips the batch
    /// and leaves a manifest of the staged object under `errors/` for a manual backfill.
    async fn copy_with_retries(
        &self,
        target: &PostgresTarget,
        staging: &S3Out,
        body: &[u8],
        keys: &[String],
        retry: Duration,
    ) -> Result<(), WriteFailure> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match target.copy(body).await {
                Ok(_) => return Ok(()),
                Err(err) if started.elapsed() < retry => {
                    tracing::warn!(delivery_stream = %self.name, attempt, error = %err, "COPY failed; retrying");
                    tokio::time::sleep(super::backoff(attempt, self.backoff_scale)).await;
                }
                Err(err) => {
                    tracing::error!(delivery_stream = %self.name, error = %err, "COPY failed past the retry duration; the batch is skipped and its manifest written under errors/");
                    let manifest = serde_json::json!({
                        "entries": [{ "url": format!("s3://{}/{}", staging.spec.bucket, keys[0]), "mandatory": true }]
                    });
                    let body = Bytes::from(manifest.to_string());
                    staging
                        .objects
                        .put(&keys[1], body, None)
                        .await
                        .map_err(|err| WriteFailure {
                            kind: FAILURE_TYPE.to_string(),
                            details: err.to_string(),
                        })?;
                    return Ok(());
                }
            }
        }
    }
}

/// Points a Redshift JDBC URL at the server configured for its cluster host, if any:
/// `jdbc:redshift://cluster.x.redshift.amazonaws.com:5439/dev` with the host mapped to
/// `127.0.0.1:5432` becomes `jdbc:redshift://127.0.0.1:5432/dev`.
fn redirect_jdbc(url: &str, endpoints: &BTreeMap<String, String>) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.split(':').next().unwrap_or(authority);
    match endpoints.get(authority).or_else(|| endpoints.get(host)) {
        Some(target) => format!("{scheme}://{target}/{path}"),
        None => url.to_string(),
    }
}

/// The URL really used for an HTTP endpoint: the longest configured prefix rewritten.
fn rewrite_url(url: &str, rewrites: &BTreeMap<String, String>) -> String {
    rewrites
        .iter()
        .filter(|(from, _)| url.starts_with(from.as_str()))
        .max_by_key(|(from, _)| from.len())
        .map_or_else(
            || url.to_string(),
            |(from, to)| format!("{to}{}", &url[from.len()..]),
        )
}

fn converter(conversion: &ParquetConversion) -> Result<Converter, Halt> {
    let columns: Vec<Column> = conversion
        .columns
        .iter()
        .map(|column| Column {
            name: column.name.clone(),
            hive_type: column.hive_type.clone(),
        })
        .collect();
    let deserializer = match &conversion.reader {
        JsonReader::OpenX {
            case_insensitive,
            convert_dots_to_underscores,
            column_to_json_key,
        } => Deserializer::OpenX {
            case_insensitive: *case_insensitive,
            convert_dots_in_json_keys_to_underscores: *convert_dots_to_underscores,
            column_to_json_key_mappings: column_to_json_key.iter().cloned().collect(),
        },
        JsonReader::Hive { timestamp_formats } => Deserializer::Hive {
            timestamp_formats: timestamp_formats.clone(),
        },
    };
    let compression = match conversion.compression.as_str() {
        "UNCOMPRESSED" => ParquetCompression::Uncompressed,
        "GZIP" => ParquetCompression::Gzip,
        _ => ParquetCompression::Snappy,
    };
    Converter::new(
        &columns,
        deserializer,
        ParquetOptions {
            compression,
            block_size_bytes: conversion.block_size_bytes,
            page_size_bytes: conversion.page_size_bytes,
            enable_dictionary_compression: conversion.enable_dictionary,
            writer_version_v2: conversion.writer_version_v2,
        },
    )
    .map_err(Halt::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_take_the_longest_rewrite() {
        let rewrites: BTreeMap<String, String> = [
            (
                "https://r.test".to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
            (
                "https://r.test/special".to_string(),
                "http://127.0.0.1:2/x".to_string(),
            ),
        ]
        .into();
        assert_eq!(
            rewrite_url("https://r.test/in", &rewrites),
            "http://127.0.0.1:1/in"
        );
        assert_eq!(
            rewrite_url("https://r.test/special/a", &rewrites),
            "http://127.0.0.1:2/x/a"
        );
        assert_eq!(
            rewrite_url("https://other.test/", &rewrites),
            "https://other.test/"
        );
    }

    #[test]
    fn jdbc_urls_follow_the_configured_endpoints() {
        let endpoints: BTreeMap<String, String> = [
            (
                "a.b.us-east-1.redshift.amazonaws.com".to_string(),
                "127.0.0.1:5432".to_string(),
            ),
            (
                "c.d.redshift.amazonaws.com:5439".to_string(),
                "db:6000".to_string(),
            ),
        ]
        .into();
        assert_eq!(
            redirect_jdbc(
                "jdbc:redshift://a.b.us-east-1.redshift.amazonaws.com:5439/dev",
                &endpoints
            ),
            "jdbc:redshift://127.0.0.1:5432/dev"
        );
        assert_eq!(
            redirect_jdbc(
                "jdbc:redshift://c.d.redshift.amazonaws.com:5439/x",
                &endpoints
            ),
            "jdbc:redshift://db:6000/x"
        );
        let unmapped = "jdbc:redshift://e.f.redshift.amazonaws.com:5439/dev";
        assert_eq!(redirect_jdbc(unmapped, &endpoints), unmapped);
    }
}
