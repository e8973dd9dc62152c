//! One method per operation: convert the input, call the domain, build the output.

use std::collections::BTreeMap;

use bytes::Bytes;
use millstream_aws_protocol::Timestamp;
use millstream_firehose::{
    CreateDeliveryStream, DESTINATION_ID, DeliveryStreamView, Firehose, SourceKind,
};
use serde_json::{Value, json};

use crate::convert::{merge_update, single_destination, spec_from_document};
use crate::describe::destination_description;
use crate::error::FirehoseApiError;
use crate::model::*;

type Result<T> = std::result::Result<T, FirehoseApiError>;

/// Total size of one PutRecordBatch call.
const BATCH_BYTES_MAX: usize = 4 << 20;
const LIST_STREAMS_DEFAULT: usize = 10;
const LIST_TAGS_DEFAULT: usize = 50;

pub(crate) struct Handlers<'a> {
    pub firehose: &'a Firehose,
}

fn timestamp(ms: u64) -> Option<Timestamp> {
    Some(Timestamp::from_millis(ms as i64))
}

fn tags(list: Option<Vec<Tag>>) -> BTreeMap<String, String> {
    list.unwrap_or_default()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect()
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Handlers<'_> {
    pub async fn create(&self, i: CreateDeliveryStreamInput) -> Result<CreateDeliveryStreamOutput> {
        let request = to_value(&i);
        let source = match i.delivery_stream_type.as_deref() {
            None => SourceKind::DirectPut,
            Some(kind) => SourceKind::parse(kind).ok_or_else(|| {
                FirehoseApiError::invalid_argument(format!("Unknown delivery stream type {kind}"))
            })?,
        };
        let (source_document, source_stream_arn) = match source {
            SourceKind::DirectPut => {
                if i.kinesis_stream_source_configuration.is_some() {
                    return Err(FirehoseApiError::invalid_argument(
                        "KinesisSourceStreamConfig is only allowed for KinesisStreamAsSource delivery stream type.",
                    ));
                }
                (to_value(&i.direct_put_source_configuration), None)
            }
            SourceKind::KinesisStreamAsSource => {
                let config = i.kinesis_stream_source_configuration.clone().ok_or_else(|| {
                    FirehoseApiError::invalid_argument(
                        "KinesisSourceStreamConfig is required for KinesisStreamAsSource delivery stream type.",
                    )
                })?;
                let arn = config.kinesis_stream_arn.clone();
                (to_value(&config), arn)
            }
            SourceKind::MskAsSource => (to_value(&i.msk_source_configuration), None),
            SourceKind::DatabaseAsSource => (to_value(&i.database_source_configuration), None),
        };
        let (kind, document) = single_destination(&request, false)?;
        let spec = spec_from_document(&kind, &document, &self.firehose.config().tables)?;
        let encryption = i.delivery_stream_encryption_configuration_input.map(|e| {
            (
                e.key_type.unwrap_or_else(|| "AWS_OWNED_CMK".to_string()),
                e.key_arn,
            )
        });
        let arn = self
            .firehose
            .create(CreateDeliveryStream {
                name: i.delivery_stream_name.unwrap_or_default(),
                source,
                source_document,
                source_stream_arn,
                destination_kind: kind,
                destination_document: document,
                spec,
                tags: tags(i.tags),
                encryption,
            })
            .await?;
        Ok(CreateDeliveryStreamOutput {
            delivery_stream_arn: Some(arn),
        })
    }

    pub async fn delete(&self, i: DeleteDeliveryStreamInput) -> Result<DeleteDeliveryStreamOutput> {
        self.firehose
            .delete(
                &i.delivery_stream_name.unwrap_or_default(),
                i.allow_force_delete.unwrap_or(false),
            )
            .await?;
        Ok(DeleteDeliveryStreamOutput {})
    }

    pub fn describe(&self, i: DescribeDeliveryStreamInput) -> Result<DescribeDeliveryStreamOutput> {
        let view = self
            .firehose
            .describe(&i.delivery_stream_name.unwrap_or_default())?;
        // One destination: a start id at or past it leaves an empty page.
        let skip = i
            .exclusive_start_destination_id
            .is_some_and(|start| start.as_str() >= DESTINATION_ID);
        Ok(DescribeDeliveryStreamOutput {
            delivery_stream_description: Some(self.description(&view, skip)?),
        })
    }

    fn description(
        &self,
        view: &DeliveryStreamView,
        skip: bool,
    ) -> Result<DeliveryStreamDescription> {
        let meta = &view.meta;
        let mut destination =
            destination_description(&meta.destination_kind, &meta.destination_document);
        destination.insert("DestinationId".to_string(), json!(DESTINATION_ID));
        let destination: DestinationDescription =
            serde_json::from_value(Value::Object(destination)).map_err(|err| {
                tracing::error!(error = %err, "stored destination does not describe");
                FirehoseApiError::internal()
            })?;
        let source = match meta.source {
            SourceKind::DirectPut => Some(SourceDescription {
                direct_put_source_description: Some(DirectPutSourceDescription {
                    throughput_hint_in_m_bs: meta
                        .source_document
                        .get("ThroughputHintInMBs")
                        .and_then(Value::as_i64),
                }),
                ..Default::default()
            }),
            SourceKind::KinesisStreamAsSource => Some(SourceDescription {
                kinesis_stream_source_description: Some(KinesisStreamSourceDescription {
                    kinesis_stream_arn: meta.source_stream_arn.clone(),
                    role_arn: meta
                        .source_document
                        .get("RoleARN")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    delivery_start_timestamp: timestamp(meta.created_ms),
                }),
                ..Default::default()
            }),
            _ => None,
        };
        let delay = self.firehose.config().create_delay;
        let encryption = meta
            .encryption
            .as_ref()
            .map(|e| DeliveryStreamEncryptionConfiguration {
                key_arn: e.key_arn.clone(),
                key_type: Some(e.key_type.clone()),
                status: view.encryption_status(delay),
                failure_description: None,
            });
        let failure = view
            .delivery
            .failure
            .as_ref()
            .map(|(kind, details)| FailureDescription {
                r#type: Some(kind.clone()),
                details: Some(details.clone()),
            });
        Ok(DeliveryStreamDescription {
            delivery_stream_name: Some(meta.name.clone()),
            delivery_stream_arn: Some(view.arn.clone()),
            delivery_stream_status: Some(view.status.as_str().to_string()),
            failure_description: failure,
            delivery_stream_encryption_configuration: encryption.or_else(|| {
                Some(DeliveryStreamEncryptionConfiguration {
                    status: Some("DISABLED".to_string()),
                    ..Default::default()
                })
            }),
            delivery_stream_type: Some(meta.source.as_str().to_string()),
            version_id: Some(meta.version_id.to_string()),
            create_timestamp: timestamp(meta.created_ms),
            last_update_timestamp: meta.updated_ms.and_then(timestamp),
            source,
            destinations: Some(if skip { Vec::new() } else { vec![destination] }),
            has_more_destinations: Some(false),
        })
    }

    pub fn list(&self, i: ListDeliveryStreamsInput) -> Result<ListDeliveryStreamsOutput> {
        let kind = match i.delivery_stream_type.as_deref() {
            None => None,
            Some(kind) => Some(SourceKind::parse(kind).ok_or_else(|| {
                FirehoseApiError::invalid_argument(format!("Unknown delivery stream type {kind}"))
            })?),
        };
        let limit = i.limit.map_or(LIST_STREAMS_DEFAULT, |l| l.max(1) as usize);
        let (names, has_more) = self.firehose.list(
            limit,
            kind,
            i.exclusive_start_delivery_stream_name.as_deref(),
        );
        Ok(ListDeliveryStreamsOutput {
            delivery_stream_names: Some(names),
            has_more_delivery_streams: Some(has_more),
        })
    }

    pub fn list_tags(
        &self,
        i: ListTagsForDeliveryStreamInput,
    ) -> Result<ListTagsForDeliveryStreamOutput> {
        let limit = i.limit.map_or(LIST_TAGS_DEFAULT, |l| l.max(1) as usize);
        let (page, has_more) = self.firehose.list_tags(
            &i.delivery_stream_name.unwrap_or_default(),
            i.exclusive_start_tag_key.as_deref(),
            limit,
        )?;
        Ok(ListTagsForDeliveryStreamOutput {
            tags: Some(
                page.into_iter()
                    .map(|(key, value)| Tag {
                        key: Some(key),
                        value: Some(value),
                    })
                    .collect(),
            ),
            has_more_tags: Some(has_more),
        })
    }

    pub async fn put_record(&self, i: PutRecordInput) -> Result<PutRecordOutput> {
        let data = i
            .record
            .and_then(|r| r.data)
            .map(|blob| blob.0)
            .unwrap_or_default();
        let outcome = self
            .firehose
            .put_records(&i.delivery_stream_name.unwrap_or_default(), vec![data])
            .await?;
        Ok(PutRecordOutput {
            record_id: outcome.record_ids.into_iter().next(),
            encrypted: Some(outcome.encrypted),
        })
    }

    pub async fn put_record_batch(&self, i: PutRecordBatchInput) -> Result<PutRecordBatchOutput> {
        let records: Vec<Bytes> = i
            .records
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.data.map(|blob| blob.0).unwrap_or_default())
            .collect();
        let total: usize = records.iter().map(Bytes::len).sum();
        if total > BATCH_BYTES_MAX {
            // wording unverified
            return Err(FirehoseApiError::invalid_argument(format!(
                "Records size exceeds 4 MB limit: {total} bytes."
            )));
        }
        let count = records.len();
        let name = i.delivery_stream_name.unwrap_or_default();
        match self.firehose.put_records(&name, records).await {
            Ok(outcome) => Ok(PutRecordBatchOutput {
                failed_put_count: Some(0),
                encrypted: Some(outcome.encrypted),
                request_responses: Some(
                    outcome
                        .record_ids
                        .into_iter()
                        .map(|id| PutRecordBatchResponseEntry {
                            record_id: Some(id),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            // The store refused the append: every entry failed, reported per entry as AWS
            // does, so clients retry just the failed ones.
            Err(millstream_firehose::FirehoseError::Storage(err)) => {
                tracing::error!(error = %err, "storage failure during PutRecordBatch");
                Ok(PutRecordBatchOutput {
                    failed_put_count: Some(count as i64),
                    encrypted: Some(false),
                    request_responses: Some(
                        (0..count)
                            .map(|_| PutRecordBatchResponseEntry {
                                error_code: Some("ServiceUnavailableException".to_string()),
                                error_message: Some("Slow down.".to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    pub async fn start_encryption(
        &self,
        i: StartDeliveryStreamEncryptionInput,
    ) -> Result<StartDeliveryStreamEncryptionOutput> {
        let config = i
            .delivery_stream_encryption_configuration_input
            .unwrap_or_default();
        let key_type = config
            .key_type
            .unwrap_or_else(|| "AWS_OWNED_CMK".to_string());
        if key_type == "CUSTOMER_MANAGED_CMK" && config.key_arn.is_none() {
            return Err(FirehoseApiError::invalid_argument(
                "KeyARN is required when KeyType is CUSTOMER_MANAGED_CMK.",
            ));
        }
        if key_type == "AWS_OWNED_CMK" && config.key_arn.is_some() {
            return Err(FirehoseApiError::invalid_argument(
                "KeyARN must not be specified when KeyType is AWS_OWNED_CMK.",
            ));
        }
        self.firehose
            .start_encryption(
                &i.delivery_stream_name.unwrap_or_default(),
                (key_type, config.key_arn),
            )
            .await?;
        Ok(StartDeliveryStreamEncryptionOutput {})
    }

    pub async fn stop_encryption(
        &self,
        i: StopDeliveryStreamEncryptionInput,
    ) -> Result<StopDeliveryStreamEncryptionOutput> {
        self.firehose
            .stop_encryption(&i.delivery_stream_name.unwrap_or_default())
            .await?;
        Ok(StopDeliveryStreamEncryptionOutput {})
    }

    pub async fn tag(&self, i: TagDeliveryStreamInput) -> Result<TagDeliveryStreamOutput> {
        let tags = tags(i.tags);
        if let Some(key) = tags.keys().find(|key| key.starts_with("aws:")) {
            return Err(FirehoseApiError::invalid_argument(format!(
                "Tag key {key} uses the reserved prefix aws:."
            )));
        }
        self.firehose
            .tag(&i.delivery_stream_name.unwrap_or_default(), tags)
            .await?;
        Ok(TagDeliveryStreamOutput {})
    }

    pub async fn untag(&self, i: UntagDeliveryStreamInput) -> Result<UntagDeliveryStreamOutput> {
        self.firehose
            .untag(
                &i.delivery_stream_name.unwrap_or_default(),
                &i.tag_keys.unwrap_or_default(),
            )
            .await?;
        Ok(UntagDeliveryStreamOutput {})
    }

    pub async fn update_destination(
        &self,
        i: UpdateDestinationInput,
    ) -> Result<UpdateDestinationOutput> {
        let request = to_value(&i);
        let (update_kind, update) = single_destination(&request, true)?;
        let expected: u64 = i
            .current_delivery_stream_version_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|_| {
                FirehoseApiError::invalid_argument("Invalid CurrentDeliveryStreamVersionId.")
            })?;
        let tables = self.firehose.config().tables.clone();
        let mut conversion_error = None;
        let result = self
            .firehose
            .update_destination(
                &i.delivery_stream_name.unwrap_or_default(),
                expected,
                i.destination_id.as_deref().unwrap_or_default(),
                |meta| {
                    let (kind, document) = merge_update(
                        &meta.destination_kind,
                        &meta.destination_document,
                        &update_kind,
                        update,
                    );
                    if meta.spec.dynamic_partitioning() {
                        let still_on = document
                            .pointer("/DynamicPartitioningConfiguration/Enabled")
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        if !still_on {
                            conversion_error = Some(FirehoseApiError::invalid_argument(
                                "Dynamic partitioning cannot be disabled once it is enabled.",
                            ));
                            return Err(millstream_firehose::FirehoseError::InvalidArgument(
                                String::new(),
                            ));
                        }
                    }
                    match spec_from_document(&kind, &document, &tables) {
                        Ok(spec) => Ok((kind, document, spec)),
                        Err(err) => {
                            conversion_error = Some(err);
                            Err(millstream_firehose::FirehoseError::InvalidArgument(
                                String::new(),
                            ))
                        }
                    }
                },
            )
            .await;
        match (result, conversion_error) {
            (Ok(()), _) => Ok(UpdateDestinationOutput {}),
            (Err(_), Some(err)) => Err(err),
            (Err(err), None) => Err(err.into()),
        }
    }
}
