//! One method per operation: convert the input, call the domain, build the output.

use millstream_streams::{
    ConnectionPolls, CreateStream, IteratorType, ListShardsRequest, PutEntry, PutResult,
    ShardFilter, StreamMode, Streams, now_ms,
};
use millstream_types::limits::{
    DESCRIBE_STREAM_SHARDS_PAGE_MAX, LIST_STREAMS_PAGE_MAX, LIST_TAGS_PAGE_MAX,
};

use std::time::Instant;

use crate::convert::{self, stream_ref, timestamp};
use crate::model::*;
use crate::records_json::GetRecordsPage;
use crate::{KinesisError, Outcome};

type Result<T> = std::result::Result<T, KinesisError>;

macro_rules! outputs_with_body {
    ($($shape:ty),* $(,)?) => { $(impl Outcome for $shape { const HAS_BODY: bool = true; })* };
}
outputs_with_body!(
    DescribeAccountSettingsOutput,
    DescribeLimitsOutput,
    DescribeStreamOutput,
    DescribeStreamConsumerOutput,
    DescribeStreamSummaryOutput,
    EnhancedMonitoringOutput,
    GetRecordsOutput,
    GetResourcePolicyOutput,
    GetShardIteratorOutput,
    ListShardsOutput,
    ListStreamConsumersOutput,
    ListStreamsOutput,
    ListTagsForResourceOutput,
    ListTagsForStreamOutput,
    PutRecordOutput,
    PutRecordsOutput,
    RegisterStreamConsumerOutput,
    UpdateAccountSettingsOutput,
    UpdateShardCountOutput,
    UpdateStreamWarmThroughputOutput,
);

/// Model-validated integers are in range for these conversions; saturate rather than trust.
fn to_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

fn to_usize(value: i64) -> usize {
    usize::try_from(value.max(0)).unwrap_or(usize::MAX)
}

fn parse_mode(details: Option<StreamModeDetails>) -> Option<StreamMode> {
    details
        .and_then(|d| d.stream_mode)
        .map(|m| match m.as_str() {
            "ON_DEMAND" => StreamMode::OnDemand,
            _ => StreamMode::Provisioned,
        })
}

pub(crate) struct Handlers<'a> {
    pub streams: &'a Streams,
    pub series: &'a telemetry::SeriesCache,
}

impl Handlers<'_> {
    pub async fn create_stream(&self, i: CreateStreamInput) -> Result<()> {
        let request = CreateStream {
            name: i.stream_name.unwrap_or_default(),
            shard_count: i.shard_count.map(to_u32),
            mode: parse_mode(i.stream_mode_details),
            tags: convert::tags(i.tags),
            max_record_size_kib: i.max_record_size_in_kib.map(to_u32),
            warm_throughput_mibps: i.warm_throughput_mi_bps.map(to_u32),
        };
        Ok(self.streams.create_stream(request).await?)
    }

    pub async fn delete_stream(&self, i: DeleteStreamInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self
            .streams
            .delete_stream(&target, i.enforce_consumer_deletion.unwrap_or(false))
            .await?)
    }

    pub fn describe_stream(&self, i: DescribeStreamInput) -> Result<DescribeStreamOutput> {
        let view = self
            .streams
            .describe(&stream_ref(i.stream_name, i.stream_arn))?;
        let limit = i
            .limit
            .map(to_usize)
            .unwrap_or(DESCRIBE_STREAM_SHARDS_PAGE_MAX)
            .min(DESCRIBE_STREAM_SHARDS_PAGE_MAX);
        let (shards, has_more) =
            self.streams
                .describe_shards(&view, i.exclusive_start_shard_id.as_deref(), limit);
        let (encryption_type, key_id) = convert::encryption(&view);
        Ok(DescribeStreamOutput {
            stream_description: Some(StreamDescription {
                stream_name: Some(view.meta.name.clone()),
                stream_arn: convert::stream_arn(self.streams, &view),
                stream_status: Some(view.status(now_ms()).as_str().to_string()),
                stream_mode_details: convert::mode_details(&view),
                shards: Some(shards.iter().map(convert::shard).collect()),
                has_more_shards: Some(has_more),
                retention_period_hours: Some(i64::from(view.meta.retention_hours)),
                stream_creation_timestamp: timestamp(view.meta.created_ms),
                enhanced_monitoring: convert::enhanced_monitoring(&view),
                encryption_type,
                key_id,
            }),
        })
    }

    pub fn describe_stream_summary(
        &self,
        i: DescribeStreamSummaryInput,
    ) -> Result<DescribeStreamSummaryOutput> {
        let view = self
            .streams
            .describe(&stream_ref(i.stream_name, i.stream_arn))?;
        let (encryption_type, key_id) = convert::encryption(&view);
        let now = now_ms();
        let consumers = view
            .meta
            .consumers
            .iter()
            .filter(|c| c.deleting_until_ms.is_none())
            .count();
        Ok(DescribeStreamSummaryOutput {
            stream_description_summary: Some(StreamDescriptionSummary {
                stream_name: Some(view.meta.name.clone()),
                stream_arn: convert::stream_arn(self.streams, &view),
                stream_id: self.streams.config().expose_stream_id.then(|| {
                    format!(
                        "{:020x}-{:03x}",
                        view.meta.incarnation >> 16 & 0xffff_ffff_ffff,
                        view.meta.incarnation & 0xfff
                    )
                }),
                stream_status: Some(view.status(now).as_str().to_string()),
                stream_mode_details: convert::mode_details(&view),
                retention_period_hours: Some(i64::from(view.meta.retention_hours)),
                stream_creation_timestamp: timestamp(view.meta.created_ms),
                enhanced_monitoring: convert::enhanced_monitoring(&view),
                encryption_type,
                key_id,
                open_shard_count: Some(view.open_shard_count() as i64),
                consumer_count: Some(consumers as i64),
                warm_throughput: view
                    .meta
                    .warm_throughput_mibps
                    .map(|w| WarmThroughputObject {
                        target_mi_bps: Some(i64::from(w)),
                        current_mi_bps: Some(i64::from(w)),
                    }),
                max_record_size_in_kib: Some(i64::from(view.meta.max_record_size_kib)),
            }),
        })
    }

    pub fn list_streams(&self, i: ListStreamsInput) -> Result<ListStreamsOutput> {
        let limit = i
            .limit
            .map(to_usize)
            .unwrap_or(LIST_STREAMS_PAGE_MAX)
            .min(LIST_STREAMS_PAGE_MAX);
        let after = match (&i.next_token, &i.exclusive_start_stream_name) {
            (Some(token), _) => Some(self.streams.open_list_streams_token(token)?),
            (None, Some(name)) => Some(name.clone()),
            (None, None) => None,
        };
        let all = self.streams.list_streams();
        let mut remaining = all
            .into_iter()
            .filter(|s| after.as_ref().is_none_or(|a| s.name > *a));
        let page: Vec<_> = remaining.by_ref().take(limit).collect();
        let has_more = remaining.next().is_some();
        let next_token = match (has_more, page.last()) {
            (true, Some(last)) => Some(self.streams.list_streams_token(&last.name)),
            _ => None,
        };
        Ok(ListStreamsOutput {
            stream_names: Some(page.iter().map(|s| s.name.clone()).collect()),
            has_more_streams: Some(has_more),
            next_token,
            stream_summaries: Some(
                page.iter()
                    .map(|s| StreamSummary {
                        stream_name: Some(s.name.clone()),
                        stream_arn: Some(s.arn.clone()),
                        stream_status: Some(s.status.as_str().to_string()),
                        stream_mode_details: Some(StreamModeDetails {
                            stream_mode: Some(s.mode.as_str().to_string()),
                        }),
                        stream_creation_timestamp: timestamp(s.created_ms),
                    })
                    .collect(),
            ),
        })
    }

    pub async fn put_record(&self, i: PutRecordInput) -> Result<PutRecordOutput> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        let entry = PutEntry {
            partition_key: i.partition_key.unwrap_or_default(),
            explicit_hash_key: i.explicit_hash_key,
            data: i.data.map(|b| b.0).unwrap_or_default(),
        };
        let started = Instant::now();
        let data_bytes = entry.data.len() as u64;
        let (shard, sequence, encrypted) = self
            .streams
            .put_record(&target, entry, i.sequence_number_for_ordering.as_deref())
            .await?;
        if let Ok(view) = self.streams.describe(&target) {
            telemetry::put_record(self.series, &view, shard, data_bytes, started.elapsed());
        }
        Ok(PutRecordOutput {
            shard_id: Some(shard.to_string()),
            sequence_number: Some(sequence),
            encryption_type: encrypted.then(|| "KMS".to_string()),
        })
    }

    pub async fn put_records(&self, i: PutRecordsInput) -> Result<PutRecordsOutput> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        let entries: Vec<PutEntry> = i
            .records
            .unwrap_or_default()
            .into_iter()
            .map(|r| PutEntry {
                partition_key: r.partition_key.unwrap_or_default(),
                explicit_hash_key: r.explicit_hash_key,
                data: r.data.map(|b| b.0).unwrap_or_default(),
            })
            .collect();
        let total: usize = entries
            .iter()
            .map(|e| e.partition_key.len() + e.data.len())
            .sum();
        if total > millstream_types::limits::PUT_RECORDS_REQUEST_BYTES_MAX {
            return Err(KinesisError::new(
                "InvalidArgumentException",
                format!(
                    "Records size exceeds {} MB limit",
                    millstream_types::limits::PUT_RECORDS_REQUEST_BYTES_MAX >> 20
                ),
            ));
        }
        let started = Instant::now();
        let data_bytes: Vec<u64> = entries.iter().map(|e| e.data.len() as u64).collect();
        let outcome = self.streams.put_records(&target, entries).await?;
        if let Ok(view) = self.streams.describe(&target) {
            telemetry::put_records(
                self.series,
                &view,
                &outcome.results,
                &data_bytes,
                started.elapsed(),
            );
        }
        let failed = outcome
            .results
            .iter()
            .filter(|r| matches!(r, PutResult::Failed { .. }))
            .count();
        Ok(PutRecordsOutput {
            failed_record_count: Some(failed as i64),
            records: Some(
                outcome
                    .results
                    .into_iter()
                    .map(|r| match r {
                        PutResult::Stored {
                            shard_id,
                            sequence_number,
                        } => PutRecordsResultEntry {
                            sequence_number: Some(sequence_number),
                            shard_id: Some(shard_id.to_string()),
                            ..Default::default()
                        },
                        PutResult::Failed {
                            error_code,
                            error_message,
                        } => PutRecordsResultEntry {
                            error_code: Some(error_code.to_string()),
                            error_message: Some(error_message),
                            ..Default::default()
                        },
                    })
                    .collect(),
            ),
            encryption_type: outcome.encrypted.then(|| "KMS".to_string()),
        })
    }

    pub async fn get_shard_iterator(
        &self,
        i: GetShardIteratorInput,
    ) -> Result<GetShardIteratorOutput> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        let kind = i
            .shard_iterator_type
            .as_deref()
            .and_then(IteratorType::parse)
            .expect("the model's enum check admits only the five iterator types");
        let iterator = self
            .streams
            .get_shard_iterator(
                &target,
                i.shard_id.as_deref().unwrap_or_default(),
                kind,
                i.starting_sequence_number.as_deref(),
                i.timestamp.map(|t| t.as_millis()),
            )
            .await?;
        Ok(GetShardIteratorOutput {
            shard_iterator: Some(iterator),
        })
    }

    pub async fn get_records(
        &self,
        i: GetRecordsInput,
        connection: Option<&ConnectionPolls>,
    ) -> Result<GetRecordsPage> {
        let started = Instant::now();
        let iterator = i.shard_iterator.as_deref().unwrap_or_default();
        let outcome = self
            .streams
            .get_records(
                iterator,
                i.limit.map(to_usize),
                i.stream_arn.as_deref(),
                connection,
            )
            .await?;
        telemetry::get_records(
            self.series,
            &outcome.view,
            outcome.shard_id,
            &outcome,
            started.elapsed(),
        );
        Ok(GetRecordsPage {
            records: outcome.records,
            next_shard_iterator: outcome.next_shard_iterator,
            millis_behind_latest: outcome.millis_behind_latest as i64,
            child_shards: (!outcome.child_shards.is_empty()).then(|| {
                outcome
                    .child_shards
                    .into_iter()
                    .map(convert::child_shard)
                    .collect()
            }),
        })
    }

    pub fn list_shards(&self, i: ListShardsInput) -> Result<ListShardsOutput> {
        let filter = i.shard_filter.map(|f| {
            let timestamp = f.timestamp.map(|t| t.as_millis());
            match f.r#type.as_deref() {
                Some("AFTER_SHARD_ID") => ShardFilter::AfterShardId(f.shard_id),
                Some("AT_TRIM_HORIZON") => ShardFilter::AtTrimHorizon,
                Some("AT_LATEST") => ShardFilter::AtLatest,
                Some("AT_TIMESTAMP") => ShardFilter::AtTimestamp(timestamp),
                Some("FROM_TIMESTAMP") => ShardFilter::FromTimestamp(timestamp),
                _ => ShardFilter::FromTrimHorizon,
            }
        });
        let has_target = i.stream_name.is_some() || i.stream_arn.is_some();
        let page = self.streams.list_shards(ListShardsRequest {
            target: has_target.then(|| stream_ref(i.stream_name, i.stream_arn)),
            next_token: i.next_token,
            exclusive_start_shard_id: i.exclusive_start_shard_id,
            max_results: i.max_results.map(to_usize),
            stream_creation_ms: i.stream_creation_timestamp.map(|t| t.as_millis()),
            filter,
        })?;
        Ok(ListShardsOutput {
            shards: Some(page.shards.iter().map(convert::shard).collect()),
            next_token: page.next_token,
        })
    }

    pub async fn split_shard(&self, i: SplitShardInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self
            .streams
            .split_shard(
                &target,
                i.shard_to_split.as_deref().unwrap_or_default(),
                i.new_starting_hash_key.as_deref().unwrap_or_default(),
            )
            .await?)
    }

    pub async fn merge_shards(&self, i: MergeShardsInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self
            .streams
            .merge_shards(
                &target,
                i.shard_to_merge.as_deref().unwrap_or_default(),
                i.adjacent_shard_to_merge.as_deref().unwrap_or_default(),
            )
            .await?)
    }

    pub async fn update_shard_count(
        &self,
        i: UpdateShardCountInput,
    ) -> Result<UpdateShardCountOutput> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        let requested = to_u32(i.target_shard_count.unwrap_or_default());
        let current = self.streams.update_shard_count(&target, requested).await?;
        let view = self.streams.describe(&target)?;
        Ok(UpdateShardCountOutput {
            stream_name: Some(view.meta.name.clone()),
            current_shard_count: Some(i64::from(current)),
            target_shard_count: Some(i64::from(requested)),
            stream_arn: convert::stream_arn(self.streams, &view),
        })
    }

    pub async fn increase_retention(&self, i: IncreaseStreamRetentionPeriodInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self
            .streams
            .increase_retention(&target, i.retention_period_hours.unwrap_or_default())
            .await?)
    }

    pub async fn decrease_retention(&self, i: DecreaseStreamRetentionPeriodInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self
            .streams
            .decrease_retention(&target, i.retention_period_hours.unwrap_or_default())
            .await?)
    }

    pub async fn start_encryption(&self, i: StartStreamEncryptionInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self
            .streams
            .start_encryption(&target, i.key_id.unwrap_or_default())
            .await?)
    }

    pub async fn stop_encryption(&self, i: StopStreamEncryptionInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self.streams.stop_encryption(&target).await?)
    }

    async fn monitoring(
        &self,
        name: Option<String>,
        arn: Option<String>,
        metrics: Option<Vec<String>>,
        enable: bool,
    ) -> Result<EnhancedMonitoringOutput> {
        let target = stream_ref(name, arn);
        let (before, after) = self
            .streams
            .set_enhanced_monitoring(&target, &metrics.unwrap_or_default(), enable)
            .await?;
        let view = self.streams.describe(&target)?;
        Ok(EnhancedMonitoringOutput {
            stream_name: Some(view.meta.name.clone()),
            current_shard_level_metrics: Some(before),
            desired_shard_level_metrics: Some(after),
            stream_arn: convert::stream_arn(self.streams, &view),
        })
    }

    pub async fn enable_monitoring(
        &self,
        i: EnableEnhancedMonitoringInput,
    ) -> Result<EnhancedMonitoringOutput> {
        self.monitoring(i.stream_name, i.stream_arn, i.shard_level_metrics, true)
            .await
    }

    pub async fn disable_monitoring(
        &self,
        i: DisableEnhancedMonitoringInput,
    ) -> Result<EnhancedMonitoringOutput> {
        self.monitoring(i.stream_name, i.stream_arn, i.shard_level_metrics, false)
            .await
    }

    pub async fn add_tags_to_stream(&self, i: AddTagsToStreamInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self
            .streams
            .add_tags(&target, convert::tags(i.tags))
            .await?)
    }

    pub async fn remove_tags_from_stream(&self, i: RemoveTagsFromStreamInput) -> Result<()> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        Ok(self
            .streams
            .remove_tags(&target, &i.tag_keys.unwrap_or_default())
            .await?)
    }

    pub fn list_tags_for_stream(
        &self,
        i: ListTagsForStreamInput,
    ) -> Result<ListTagsForStreamOutput> {
        let view = self
            .streams
            .describe(&stream_ref(i.stream_name, i.stream_arn))?;
        let limit = i
            .limit
            .map(to_usize)
            .unwrap_or(LIST_TAGS_PAGE_MAX)
            .min(LIST_TAGS_PAGE_MAX);
        let mut remaining = view.meta.tags.iter().filter(|(k, _)| {
            i.exclusive_start_tag_key
                .as_ref()
                .is_none_or(|start| *k > start)
        });
        let tags: Vec<Tag> = remaining
            .by_ref()
            .take(limit)
            .map(|(k, v)| Tag {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect();
        Ok(ListTagsForStreamOutput {
            tags: Some(tags),
            has_more_tags: Some(remaining.next().is_some()),
        })
    }

    pub async fn tag_resource(&self, i: TagResourceInput) -> Result<()> {
        Ok(self
            .streams
            .tag_resource(
                i.resource_arn.as_deref().unwrap_or_default(),
                convert::tags(i.tags),
            )
            .await?)
    }

    pub async fn untag_resource(&self, i: UntagResourceInput) -> Result<()> {
        Ok(self
            .streams
            .untag_resource(
                i.resource_arn.as_deref().unwrap_or_default(),
                &i.tag_keys.unwrap_or_default(),
            )
            .await?)
    }

    pub fn list_tags_for_resource(
        &self,
        i: ListTagsForResourceInput,
    ) -> Result<ListTagsForResourceOutput> {
        let tags = self
            .streams
            .resource_tags(i.resource_arn.as_deref().unwrap_or_default())?;
        Ok(ListTagsForResourceOutput {
            tags: Some(
                tags.into_iter()
                    .map(|(k, v)| Tag {
                        key: Some(k),
                        value: Some(v),
                    })
                    .collect(),
            ),
        })
    }

    pub async fn put_resource_policy(&self, i: PutResourcePolicyInput) -> Result<()> {
        let policy = i.policy.unwrap_or_default();
        if serde_json::from_str::<serde_json::Value>(&policy)
            .map(|v| !v.is_object())
            .unwrap_or(true)
        {
            return Err(KinesisError::new(
                "InvalidArgumentException",
                "Policy is not a valid JSON document.",
            ));
        }
        Ok(self
            .streams
            .put_resource_policy(i.resource_arn.as_deref().unwrap_or_default(), policy)
            .await?)
    }

    pub fn get_resource_policy(
        &self,
        i: GetResourcePolicyInput,
    ) -> Result<GetResourcePolicyOutput> {
        // With no policy attached the answer is an empty policy document, not an error.
        let policy = self
            .streams
            .resource_policy(i.resource_arn.as_deref().unwrap_or_default())?;
        Ok(GetResourcePolicyOutput {
            policy: Some(policy.unwrap_or_else(|| "{}".to_string())),
        })
    }

    pub async fn delete_resource_policy(&self, i: DeleteResourcePolicyInput) -> Result<()> {
        Ok(self
            .streams
            .delete_resource_policy(i.resource_arn.as_deref().unwrap_or_default())
            .await?)
    }

    pub fn describe_limits(&self, _i: DescribeLimitsInput) -> Result<DescribeLimitsOutput> {
        let (shard_limit, open, on_demand, on_demand_limit) = self.streams.describe_limits();
        Ok(DescribeLimitsOutput {
            shard_limit: Some(i64::from(shard_limit)),
            open_shard_count: Some(open as i64),
            on_demand_stream_count: Some(i64::from(on_demand)),
            on_demand_stream_count_limit: Some(i64::from(on_demand_limit)),
        })
    }

    fn commitment(
        &self,
        settings: millstream_streams::AccountSettings,
    ) -> MinimumThroughputBillingCommitmentOutput {
        let status = match (settings.commitment_enabled, settings.ended_at_ms) {
            (true, Some(_)) => "ENABLED_UNTIL_EARLIEST_ALLOWED_END",
            (true, None) => "ENABLED",
            (false, _) => "DISABLED",
        };
        MinimumThroughputBillingCommitmentOutput {
            status: Some(status.to_string()),
            started_at: settings.started_at_ms.and_then(timestamp),
            ended_at: settings.ended_at_ms.and_then(timestamp),
            earliest_allowed_end_at: settings.earliest_allowed_end_ms.and_then(timestamp),
        }
    }

    pub fn describe_account_settings(
        &self,
        _i: DescribeAccountSettingsInput,
    ) -> Result<DescribeAccountSettingsOutput> {
        Ok(DescribeAccountSettingsOutput {
            minimum_throughput_billing_commitment: Some(
                self.commitment(self.streams.account_settings()),
            ),
        })
    }

    pub fn update_account_settings(
        &self,
        i: UpdateAccountSettingsInput,
    ) -> Result<UpdateAccountSettingsOutput> {
        let enable = i
            .minimum_throughput_billing_commitment
            .and_then(|c| c.status)
            .is_some_and(|s| s == "ENABLED");
        let settings = self.streams.update_account_settings(enable)?;
        Ok(UpdateAccountSettingsOutput {
            minimum_throughput_billing_commitment: Some(self.commitment(settings)),
        })
    }

    pub async fn update_stream_mode(&self, i: UpdateStreamModeInput) -> Result<()> {
        let target = stream_ref(None, i.stream_arn);
        let mode = parse_mode(i.stream_mode_details).unwrap_or(StreamMode::Provisioned);
        Ok(self
            .streams
            .update_stream_mode(&target, mode, i.warm_throughput_mi_bps.map(to_u32))
            .await?)
    }

    pub async fn update_warm_throughput(
        &self,
        i: UpdateStreamWarmThroughputInput,
    ) -> Result<UpdateStreamWarmThroughputOutput> {
        let target = stream_ref(i.stream_name, i.stream_arn);
        let mibps = to_u32(i.warm_throughput_mi_bps.unwrap_or_default());
        self.streams.update_warm_throughput(&target, mibps).await?;
        let view = self.streams.describe(&target)?;
        Ok(UpdateStreamWarmThroughputOutput {
            stream_arn: convert::stream_arn(self.streams, &view),
            stream_name: Some(view.meta.name.clone()),
            warm_throughput: Some(WarmThroughputObject {
                target_mi_bps: Some(i64::from(mibps)),
                current_mi_bps: Some(i64::from(mibps)),
            }),
        })
    }

    pub async fn update_max_record_size(&self, i: UpdateMaxRecordSizeInput) -> Result<()> {
        let target = stream_ref(None, i.stream_arn);
        Ok(self
            .streams
            .update_max_record_size(
                &target,
                to_u32(i.max_record_size_in_kib.unwrap_or_default()),
            )
            .await?)
    }

    fn consumer_shape(c: &millstream_streams::ConsumerView) -> Consumer {
        Consumer {
            consumer_name: Some(c.name.clone()),
            consumer_arn: Some(c.arn.clone()),
            consumer_status: Some(c.status.to_string()),
            consumer_creation_timestamp: timestamp(c.created_ms),
        }
    }

    pub async fn register_consumer(
        &self,
        i: RegisterStreamConsumerInput,
    ) -> Result<RegisterStreamConsumerOutput> {
        let consumer = self
            .streams
            .register_consumer(
                i.stream_arn.as_deref().unwrap_or_default(),
                i.consumer_name.as_deref().unwrap_or_default(),
                convert::tags(i.tags),
            )
            .await?;
        Ok(RegisterStreamConsumerOutput {
            consumer: Some(Self::consumer_shape(&consumer)),
        })
    }

    pub async fn deregister_consumer(&self, i: DeregisterStreamConsumerInput) -> Result<()> {
        Ok(self
            .streams
            .deregister_consumer(
                i.stream_arn.as_deref(),
                i.consumer_name.as_deref(),
                i.consumer_arn.as_deref(),
            )
            .await?)
    }

    pub fn describe_consumer(
        &self,
        i: DescribeStreamConsumerInput,
    ) -> Result<DescribeStreamConsumerOutput> {
        let c = self.streams.describe_consumer(
            i.stream_arn.as_deref(),
            i.consumer_name.as_deref(),
            i.consumer_arn.as_deref(),
        )?;
        Ok(DescribeStreamConsumerOutput {
            consumer_description: Some(ConsumerDescription {
                consumer_name: Some(c.name.clone()),
                consumer_arn: Some(c.arn.clone()),
                consumer_status: Some(c.status.to_string()),
                consumer_creation_timestamp: timestamp(c.created_ms),
                stream_arn: Some(c.stream_arn.clone()),
            }),
        })
    }

    pub fn list_consumers(&self, i: ListStreamConsumersInput) -> Result<ListStreamConsumersOutput> {
        let (consumers, next_token) = self.streams.list_consumers(
            i.stream_arn.as_deref().unwrap_or_default(),
            i.next_token.as_deref(),
            i.max_results.map(to_usize),
            i.stream_creation_timestamp.map(|t| t.as_millis()),
        )?;
        Ok(ListStreamConsumersOutput {
            consumers: Some(consumers.iter().map(Self::consumer_shape).collect()),
            next_token,
        })
    }
}

/// Per-stream request metrics, named after the CloudWatch metrics of Kinesis Data Streams
/// (`IncomingBytes` → `kinesis_incoming_bytes_total`; the full mapping is in
/// `docs/metrics.md`). Every series carries a `stream` label; the `kinesis_shard_*` series
/// add `shard` and exist only for the metrics enabled with EnableEnhancedMonitoring, as on
/// AWS. Recorded only after the domain accepted the request, so a client cannot mint label
/// values for streams that do not exist.
pub(crate) mod telemetry {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, OnceLock, RwLock};
    use std::time::Duration;

    use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
    use millstream_streams::{GetRecordsOutcome, PutResult, StreamView};
    use millstream_types::ShardId;

    const THROTTLED: &str = "ProvisionedThroughputExceededException";

    /// Every stream's series handles, looked up by stream name once per request instead of
    /// once per series: each `counter!` hashes its key and searches the recorder's registry
    /// (and clones the stream name into a label), and a PutRecord records five series; not
    /// recording them at all saved ~4 us of server CPU per PutRecord (BENCHMARKS.md, round
    /// 8, the upper bound measured before this cache). The recorder never drops a series,
    /// so a handle stays valid after its stream is deleted (a stream created again under
    /// the name reports into the same series, as before).
    #[derive(Default)]
    pub(crate) struct SeriesCache(RwLock<HashMap<String, Arc<StreamSeries>>>);

    impl SeriesCache {
        fn stream(&self, name: &str) -> Arc<StreamSeries> {
            let known = self
                .0
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(name)
                .cloned();
            known.unwrap_or_else(|| {
                self.0
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .entry(name.to_string())
                    .or_insert_with(|| Arc::new(StreamSeries::new(name)))
                    .clone()
            })
        }
    }

    /// One stream's series, registered per operation on its first call, so a series
    /// appears once the operation that reports it has run on the stream (as when each
    /// call registered its series itself).
    pub(crate) struct StreamSeries {
        name: String,
        put_record: OnceLock<PutRecordSeries>,
        put_records: OnceLock<PutRecordsSeries>,
        get_records: OnceLock<GetRecordsSeries>,
    }

    struct PutRecordSeries {
        incoming_bytes: Counter,
        incoming_records: Counter,
        bytes: Counter,
        success: Counter,
        latency: Histogram,
    }

    struct PutRecordsSeries {
        incoming_bytes: Counter,
        incoming_records: Counter,
        bytes: Counter,
        total_records: Counter,
        successful_records: Counter,
        throttled_records: Counter,
        failed_records: Counter,
        write_throughput_exceeded: Counter,
        success: Counter,
        latency: Histogram,
    }

    struct GetRecordsSeries {
        outgoing_bytes: Counter,
        outgoing_records: Counter,
        bytes: Counter,
        records: Counter,
        success: Counter,
        latency: Histogram,
        iterator_age: Gauge,
        tip_waits: Counter,
    }

    impl StreamSeries {
        fn new(name: &str) -> Self {
            Self {
                name: name.to_string(),
                put_record: OnceLock::new(),
                put_records: OnceLock::new(),
                get_records: OnceLock::new(),
            }
        }

        fn counter(&self, name: &'static str) -> Counter {
            counter!(name, "stream" => self.name.clone())
        }

        fn put_record(&self) -> &PutRecordSeries {
            self.put_record.get_or_init(|| PutRecordSeries {
                incoming_bytes: self.counter("kinesis_incoming_bytes_total"),
                incoming_records: self.counter("kinesis_incoming_records_total"),
                bytes: self.counter("kinesis_put_record_bytes_total"),
                success: self.counter("kinesis_put_record_success_total"),
                latency: histogram!("kinesis_put_record_latency_seconds", "stream" => self.name.clone()),
            })
        }

        fn put_records(&self) -> &PutRecordsSeries {
            self.put_records.get_or_init(|| PutRecordsSeries {
                incoming_bytes: self.counter("kinesis_incoming_bytes_total"),
                incoming_records: self.counter("kinesis_incoming_records_total"),
                bytes: self.counter("kinesis_put_records_bytes_total"),
                total_records: self.counter("kinesis_put_records_total_records_total"),
                successful_records: self.counter("kinesis_put_records_successful_records_total"),
                throttled_records: self.counter("kinesis_put_records_throttled_records_total"),
                failed_records: self.counter("kinesis_put_records_failed_records_total"),
                write_throughput_exceeded: self
                    .counter("kinesis_write_provisioned_throughput_exceeded_total"),
                success: self.counter("kinesis_put_records_success_total"),
                latency: histogram!("kinesis_put_records_latency_seconds", "stream" => self.name.clone()),
            })
        }

        fn get_records(&self) -> &GetRecordsSeries {
            self.get_records.get_or_init(|| GetRecordsSeries {
                outgoing_bytes: self.counter("kinesis_outgoing_bytes_total"),
                outgoing_records: self.counter("kinesis_outgoing_records_total"),
                bytes: self.counter("kinesis_get_records_bytes_total"),
                records: self.counter("kinesis_get_records_records_total"),
                success: self.counter("kinesis_get_records_success_total"),
                latency: histogram!("kinesis_get_records_latency_seconds", "stream" => self.name.clone()),
                iterator_age: gauge!("kinesis_get_records_iterator_age_milliseconds", "stream" => self.name.clone()),
                tip_waits: self.counter("millstream_get_records_tip_waits_total"),
            })
        }
    }

    fn shard_level(view: &StreamView, metric: &str) -> bool {
        view.meta.shard_level_metrics.iter().any(|m| m == metric)
    }

    /// Shard-level traffic: IncomingBytes/IncomingRecords or OutgoingBytes/OutgoingRecords.
    /// Only for streams with enhanced monitoring, so these are looked up per call.
    fn shard_traffic(
        view: &StreamView,
        direction: (&str, &str),
        names: (&'static str, &'static str),
        per_shard: impl FnOnce() -> BTreeMap<ShardId, (u64, u64)>,
    ) {
        let (bytes_on, records_on) = (
            shard_level(view, direction.0),
            shard_level(view, direction.1),
        );
        if !bytes_on && !records_on {
            return;
        }
        for (shard, (records, bytes)) in per_shard() {
            let labels = [
                ("stream", view.meta.name.clone()),
                ("shard", shard.to_string()),
            ];
            if bytes_on {
                counter!(names.0, &labels).increment(bytes);
            }
            if records_on {
                counter!(names.1, &labels).increment(records);
            }
        }
    }

    pub(crate) fn put_record(
        cache: &SeriesCache,
        view: &StreamView,
        shard: ShardId,
        bytes: u64,
        took: Duration,
    ) {
        let stream = cache.stream(&view.meta.name);
        let series = stream.put_record();
        series.incoming_bytes.increment(bytes);
        series.incoming_records.increment(1);
        series.bytes.increment(bytes);
        series.success.increment(1);
        series.latency.record(took.as_secs_f64());
        shard_traffic(
            view,
            ("IncomingBytes", "IncomingRecords"),
            (
                "kinesis_shard_incoming_bytes_total",
                "kinesis_shard_incoming_records_total",
            ),
            || BTreeMap::from([(shard, (1, bytes))]),
        );
    }

    /// `data_bytes[i]` is the data size of entry `i`; `results` are in entry order.
    pub(crate) fn put_records(
        cache: &SeriesCache,
        view: &StreamView,
        results: &[PutResult],
        data_bytes: &[u64],
        took: Duration,
    ) {
        let (mut stored, mut stored_bytes, mut throttled, mut failed) = (0, 0, 0, 0);
        for (result, bytes) in results.iter().zip(data_bytes) {
            match result {
                PutResult::Stored { .. } => {
                    stored += 1;
                    stored_bytes += bytes;
                }
                PutResult::Failed { error_code, .. } if *error_code == THROTTLED => throttled += 1,
                PutResult::Failed { .. } => failed += 1,
            }
        }
        let stream = cache.stream(&view.meta.name);
        let series = stream.put_records();
        series.incoming_bytes.increment(stored_bytes);
        series.incoming_records.increment(stored);
        series.bytes.increment(stored_bytes);
        series.total_records.increment(results.len() as u64);
        series.successful_records.increment(stored);
        series.throttled_records.increment(throttled);
        series.failed_records.increment(failed);
        series.write_throughput_exceeded.increment(throttled);
        // PutRecords.Success counts calls in which at least one record was stored.
        series.success.increment(u64::from(stored > 0));
        series.latency.record(took.as_secs_f64());
        shard_traffic(
            view,
            ("IncomingBytes", "IncomingRecords"),
            (
                "kinesis_shard_incoming_bytes_total",
                "kinesis_shard_incoming_records_total",
            ),
            || {
                let mut per_shard: BTreeMap<ShardId, (u64, u64)> = BTreeMap::new();
                for (result, bytes) in results.iter().zip(data_bytes) {
                    if let PutResult::Stored { shard_id, .. } = result {
                        let entry = per_shard.entry(*shard_id).or_default();
                        entry.0 += 1;
                        entry.1 += bytes;
                    }
                }
                per_shard
            },
        );
    }

    pub(crate) fn get_records(
        cache: &SeriesCache,
        view: &StreamView,
        shard: ShardId,
        outcome: &GetRecordsOutcome,
        took: Duration,
    ) {
        let records = outcome.records.len() as u64;
        let bytes = outcome.records.data_bytes();
        let stream = cache.stream(&view.meta.name);
        let series = stream.get_records();
        series.outgoing_bytes.increment(bytes);
        series.outgoing_records.increment(records);
        series.bytes.increment(bytes);
        series.records.increment(records);
        series.success.increment(1);
        // Service time, as before waits existed: a wait at the tip is the consumer's idle time
        // and is counted apart, so dashboards built on this latency keep their meaning.
        let waited = outcome.waited_at_tip.unwrap_or_default();
        series
            .latency
            .record(took.saturating_sub(waited).as_secs_f64());
        if outcome.waited_at_tip.is_some() {
            series.tip_waits.increment(1);
        }
        let age = outcome.millis_behind_latest as f64;
        series.iterator_age.set(age);
        shard_traffic(
            view,
            ("OutgoingBytes", "OutgoingRecords"),
            (
                "kinesis_shard_outgoing_bytes_total",
                "kinesis_shard_outgoing_records_total",
            ),
            || BTreeMap::from([(shard, (records, bytes))]),
        );
        if shard_level(view, "IteratorAgeMilliseconds") {
            gauge!(
                "kinesis_shard_iterator_age_milliseconds",
                "stream" => view.meta.name.clone(),
                "shard" => shard.to_string()
            )
            .set(age);
        }
    }
}
