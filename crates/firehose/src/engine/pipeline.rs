//! Stage one of delivery: a source record becomes outputs, each bound for a lane.
//!
//! Order (AWS's): decompression and CloudWatch Logs unpacking, de-aggregation, the Lambda
//! transform, jq metadata extraction, then the delimiter. A record that fails a step becomes
//! an error-lane output carrying the error record AWS writes for it.

use std::collections::BTreeMap;

use bytes::Bytes;
use millstream_firehose_format::{Compression, ErrorOutputKind, ErrorRecord, FailedRecord};
use millstream_firehose_process::deaggregate;
use millstream_firehose_process::jq::MetadataQuery;
use millstream_firehose_process::lambda::{
    LambdaClient, RecordOutcome, RetryPolicy, TransformInput,
};

use crate::spec::{DeliverySpec, Processor, SubRecordType};

/// Sub-record index of the untransformed copy that goes to the backup lane.
pub(crate) const BACKUP_SUB: u32 = u32::MAX;

/// error-output-type of records whose partition keys could not be extracted or evaluated.
pub(crate) const PARTITIONING_FAILED: &str =
    ErrorOutputKind::DynamicPartitioningFailed.error_output_type();
pub(crate) const PROCESSING_FAILED: &str = ErrorOutputKind::ProcessingFailed.error_output_type();

/// The error record of a record a processor could not handle (`lambda` names the function
/// when it was the Lambda transform).
fn processing_failed_line(
    record: &SourceRecord,
    data: &[u8],
    attempts: u32,
    code: &str,
    message: &str,
    lambda: Option<&str>,
) -> Vec<u8> {
    let failure = FailedRecord {
        attempts_made: attempts,
        arrival_timestamp_ms: record.arrival_ms as i64,
        error_code: code,
        error_message: message,
        attempt_ending_timestamp_ms: crate::now_ms() as i64,
        raw_data: data,
    };
    let mut line = ErrorRecord::processing_failed(failure, lambda.unwrap_or_default());
    if lambda.is_none() {
        line.extra.remove("lambdaArn");
    }
    line.to_json_line()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lane {
    Data {
        query_keys: BTreeMap<String, String>,
        lambda_keys: BTreeMap<String, String>,
    },
    Error(&'static str),
    Backup,
}

impl Lane {
    /// Stable name, persisted in progress rows.
    pub fn name(&self) -> String {
        match self {
            Lane::Data {
                query_keys,
                lambda_keys,
            } if query_keys.is_empty() && lambda_keys.is_empty() => "data".to_string(),
            Lane::Data {
                query_keys,
                lambda_keys,
            } => format!(
                "data{}",
                serde_json::json!({ "query": query_keys, "lambda": lambda_keys })
            ),
            Lane::Error(kind) => format!("error/{kind}"),
            Lane::Backup => "backup".to_string(),
        }
    }
}

/// A source record as read. `source` is shared by every record of a lane (cheap clones).
#[derive(Debug, Clone)]
pub(crate) struct SourceRecord {
    pub source: std::sync::Arc<str>,
    pub sequence: u64,
    pub arrival_ms: u64,
    pub data: Bytes,
    pub kinesis: Option<KinesisOrigin>,
}

#[derive(Debug, Clone)]
pub(crate) struct KinesisOrigin {
    pub shard_id: String,
    pub partition_key: String,
    pub sequence_number: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub lane: Lane,
    pub source: std::sync::Arc<str>,
    pub position: (u64, u32),
    pub arrival_ms: u64,
    pub data: Bytes,
}

pub(crate) struct Pipeline {
    decompress: bool,
    cloudwatch_logs: Option<bool>,
    deaggregation: Option<SubRecordType>,
    /// Kinesis sources carry KPL aggregates; Firehose always unpacks them.
    unpack_kpl: bool,
    lambda: Option<(LambdaClient, String, u32)>,
    lambda_buffer_bytes: Option<usize>,
    query: Option<MetadataQuery>,
    delimiter: Option<Vec<u8>>,
    backup: bool,
    arn: String,
    region: String,
    source_stream_arn: Option<String>,
}

/// A sub-record between steps.
struct Pending {
    source_index: usize,
    sub: u32,
    data: Bytes,
    lambda_keys: BTreeMap<String, String>,
}

impl Pipeline {
    /// # Errors
    /// A processor that cannot be built (bad jq query, Lambda without an endpoint).
    pub fn new(
        spec: &DeliverySpec,
        arn: &str,
        region: &str,
        lambda_endpoint: Option<&str>,
        source_stream_arn: Option<String>,
        backup: bool,
        backoff_scale: f64,
    ) -> Result<Self, String> {
        let mut pipeline = Pipeline {
            decompress: false,
            cloudwatch_logs: None,
            deaggregation: None,
            unpack_kpl: source_stream_arn.is_some(),
            lambda: None,
            lambda_buffer_bytes: None,
            query: None,
            delimiter: None,
            backup,
            arn: arn.to_string(),
            region: region.to_string(),
            source_stream_arn,
        };
        for processor in &spec.processors {
            match processor {
                Processor::Decompression => pipeline.decompress = true,
                Processor::CloudWatchLogs { extract_messages } => {
                    pipeline.cloudwatch_logs = Some(*extract_messages);
                }
                Processor::Deaggregation(kind) => pipeline.deaggregation = Some(kind.clone()),
                Processor::Lambda {
                    function,
                    retries,
                    buffer_bytes,
                } => {
                    pipeline.lambda_buffer_bytes = Some(*buffer_bytes as usize);
                    let endpoint = lambda_endpoint
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("https://lambda.{region}.amazonaws.com"));
                    let credentials = std::env::var("AWS_ACCESS_KEY_ID")
                        .ok()
                        .zip(std::env::var("AWS_SECRET_ACCESS_KEY").ok())
                        .map(|(id, secret)| (id, secret, std::env::var("AWS_SESSION_TOKEN").ok()));
                    let defaults = RetryPolicy::default();
                    let client = LambdaClient::new(&endpoint, region, credentials)?
                        .with_retry_policy(RetryPolicy {
                            initial_backoff: defaults.initial_backoff.mul_f64(backoff_scale),
                            max_backoff: defaults.max_backoff.mul_f64(backoff_scale),
                            total_backoff_max: defaults.total_backoff_max.mul_f64(backoff_scale),
                        });
                    pipeline.lambda = Some((client, function.clone(), *retries));
                }
                Processor::MetadataExtraction { query } => {
                    pipeline.query = Some(MetadataQuery::compile(query)?);
                }
                Processor::AppendDelimiter { delimiter } => {
                    pipeline.delimiter = Some(delimiter.clone());
                }
            }
        }
        Ok(pipeline)
    }

    /// Source bytes per chunk: a Lambda processor's BufferSizeInMBs bounds one invocation.
    pub fn chunk_bytes(&self, default: usize) -> usize {
        self.lambda_buffer_bytes
            .map_or(default, |bytes| bytes.clamp(1, default))
    }

    /// Runs a chunk of source records through every step.
    pub async fn process(&self, records: &[SourceRecord]) -> Vec<Output> {
        let now = crate::now_ms() as i64;
        let mut outputs = Vec::with_capacity(records.len() * (1 + usize::from(self.backup)));
        let mut pending = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            if self.backup {
                outputs.push(Output {
                    lane: Lane::Backup,
                    source: record.source.clone(),
                    position: (record.sequence, BACKUP_SUB),
                    arrival_ms: record.arrival_ms,
                    data: record.data.clone(),
                });
            }
            match self.split(&record.data) {
                Ok(parts) => {
                    pending.extend(parts.into_iter().enumerate().map(|(sub, data)| Pending {
                        source_index: index,
                        sub: sub as u32,
                        data,
                        lambda_keys: BTreeMap::new(),
                    }));
                }
                Err(message) => outputs.push(error_output(
                    record,
                    0,
                    PROCESSING_FAILED,
                    processing_failed_line(
                        record,
                        &record.data,
                        1,
                        "Processing.InvalidRecord",
                        &message,
                        None,
                    ),
                )),
            }
        }
        if let Some((client, function, retries)) = &self.lambda {
            pending = self
                .transform(client, function, *retries, records, pending, &mut outputs)
                .await;
        }
        for item in pending {
            let record = &records[item.source_index];
            let query_keys = match &self.query {
                Some(query) => match query.extract(&item.data) {
                    Ok(keys) => keys,
                    Err(message) => {
                        let failure = FailedRecord {
                            attempts_made: 1,
                            arrival_timestamp_ms: record.arrival_ms as i64,
                            error_code: "DynamicPartitioning.MetadataExtractionFailed",
                            error_message: &message,
                            attempt_ending_timestamp_ms: now,
                            raw_data: &item.data,
                        };
                        outputs.push(error_output(
                            record,
                            item.sub,
                            PARTITIONING_FAILED,
                            ErrorRecord::dynamic_partitioning_failed(failure).to_json_line(),
                        ));
                        continue;
                    }
                },
                None => BTreeMap::new(),
            };
            let data = match &self.delimiter {
                Some(delimiter) => {
                    let mut joined = Vec::with_capacity(item.data.len() + delimiter.len());
                    joined.extend_from_slice(&item.data);
                    joined.extend_from_slice(delimiter);
                    Bytes::from(joined)
                }
                None => item.data,
            };
            outputs.push(Output {
                lane: Lane::Data {
                    query_keys,
                    lambda_keys: item.lambda_keys,
                },
                source: record.source.clone(),
                position: (record.sequence, item.sub),
                arrival_ms: record.arrival_ms,
                data,
            });
        }
        outputs.sort_by(|a, b| (&a.source, a.position).cmp(&(&b.source, b.position)));
        outputs
    }

    /// Decompression, CloudWatch Logs unpacking and de-aggregation: one record, its parts.
    fn split(&self, data: &Bytes) -> Result<Vec<Bytes>, String> {
        let mut data = data.clone();
        if self.decompress {
            data = Compression::Gzip
                .decompress(&data)
                .map(Bytes::from)
                .map_err(|err| format!("Failed to decompress the record: {err}"))?;
        }
        if self.unpack_kpl
            && deaggregate::is_kpl_aggregated(&data)
            && let Ok(parts) = deaggregate::deaggregate_kpl(&data)
        {
            return Ok(parts.into_iter().map(|part| part.data).collect());
        }
        if let Some(extract) = self.cloudwatch_logs {
            return cloudwatch_messages(&data, extract);
        }
        match &self.deaggregation {
            None => Ok(vec![data]),
            Some(SubRecordType::Json) => {
                deaggregate::split_json(&data).map_err(|err| err.to_string())
            }
            Some(SubRecordType::Delimited(delimiter)) => {
                deaggregate::split_delimited(&data, delimiter).map_err(|err| err.to_string())
            }
        }
    }

    async fn transform(
        &self,
        client: &LambdaClient,
        function: &str,
        retries: u32,
        records: &[SourceRecord],
        pending: Vec<Pending>,
        outputs: &mut Vec<Output>,
    ) -> Vec<Pending> {
        if pending.is_empty() {
            return pending;
        }
        let ids: Vec<String> = pending
            .iter()
            .map(|item| {
                let record = &records[item.source_index];
                format!("{}:{:020}:{}", record.source, record.sequence, item.sub)
            })
            .collect();
        let inputs: Vec<TransformInput<'_>> = pending
            .iter()
            .zip(&ids)
            .map(|(item, id)| {
                let record = &records[item.source_index];
                TransformInput {
                    record_id: id.clone(),
                    approximate_arrival_ms: record.arrival_ms as i64,
                    data: &item.data,
                    kinesis: record.kinesis.as_ref().map(|origin| {
                        millstream_firehose_process::lambda::KinesisRecordMetadata {
                            shard_id: origin.shard_id.clone(),
                            partition_key: origin.partition_key.clone(),
                            approximate_arrival_ms: record.arrival_ms as i64,
                            sequence_number: origin.sequence_number.clone(),
                            subsequence_number: u64::from(item.sub),
                        }
                    }),
                }
            })
            .collect();
        let payload = millstream_firehose_process::lambda::invocation_payload(
            &uuid::Uuid::new_v4().to_string(),
            &self.arn,
            self.source_stream_arn.as_deref(),
            &self.region,
            &inputs,
        );
        drop(inputs);
        let report = client
            .transform_report(function, retries, Bytes::from(payload), &ids)
            .await;
        let attempts = report.attempts_made;
        let outcomes = report.records;
        let mut kept = Vec::with_capacity(pending.len());
        for (item, outcome) in pending.into_iter().zip(outcomes) {
            let record = &records[item.source_index];
            match outcome {
                RecordOutcome::Ok {
                    data,
                    partition_keys,
                } => kept.push(Pending {
                    data,
                    lambda_keys: partition_keys,
                    ..item
                }),
                RecordOutcome::Dropped => {}
                RecordOutcome::Failed { code, message } => outputs.push(error_output(
                    record,
                    item.sub,
                    PROCESSING_FAILED,
                    processing_failed_line(
                        record,
                        &item.data,
                        attempts,
                        &code,
                        &message,
                        Some(function),
                    ),
                )),
            }
        }
        kept
    }
}

fn error_output(record: &SourceRecord, sub: u32, kind: &'static str, line: Vec<u8>) -> Output {
    Output {
        lane: Lane::Error(kind),
        source: record.source.clone(),
        position: (record.sequence, sub),
        arrival_ms: record.arrival_ms,
        data: Bytes::from(line),
    }
}

/// CloudWatch Logs subscription payloads: DATA_MESSAGE envelopes become their log events
/// (just the messages when `extract`), CONTROL_MESSAGE envelopes nothing.
fn cloudwatch_messages(data: &[u8], extract: bool) -> Result<Vec<Bytes>, String> {
    let envelope: serde_json::Value = serde_json::from_slice(data)
        .map_err(|err| format!("The record is not a CloudWatch Logs envelope: {err}"))?;
    if envelope.get("messageType").and_then(|v| v.as_str()) == Some("CONTROL_MESSAGE") {
        return Ok(Vec::new());
    }
    if !extract {
        return Ok(vec![Bytes::copy_from_slice(data)]);
    }
    let events = envelope
        .get("logEvents")
        .and_then(|v| v.as_array())
        .ok_or("The CloudWatch Logs envelope has no logEvents")?;
    Ok(events
        .iter()
        .filter_map(|event| event.get("message").and_then(|m| m.as_str()))
        .map(|message| Bytes::from(format!("{message}\n")))
        .collect())
}
