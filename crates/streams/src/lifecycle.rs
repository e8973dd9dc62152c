//! Stream lifecycle and settings: create, delete, describe, list, retention, encryption,
//! monitoring, tags, resource policies, modes, limits and account settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use millstream_types::hash_key::even_ranges;
use millstream_types::limits::{
    DEFAULT_SHARD_COUNT, ON_DEMAND_INITIAL_SHARDS, ON_DEMAND_STREAM_LIMIT, RECORD_SIZE_KIB_DEFAULT,
    RETENTION_HOURS_DEFAULT, RETENTION_HOURS_MAX, RETENTION_HOURS_MIN, TAGS_PER_RESOURCE_MAX,
};

use crate::meta::{AccountSettings, META_FORMAT_VERSION, ShardMeta, StreamMeta, StreamMode};
use crate::{Result, StreamEntry, StreamRef, StreamView, Streams, StreamsError, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    Creating,
    Deleting,
    Active,
    Updating,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Deleting => "DELETING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
        }
    }
}

pub(crate) fn status_of(meta: &StreamMeta, now: u64) -> StreamStatus {
    if meta.deleting_until_ms.is_some() {
        StreamStatus::Deleting
    } else if now < meta.active_at_ms {
        StreamStatus::Creating
    } else if now < meta.updating_until_ms {
        StreamStatus::Updating
    } else {
        StreamStatus::Active
    }
}

pub(crate) fn is_gone(meta: &StreamMeta, now: u64) -> bool {
    meta.deleting_until_ms.is_some_and(|until| now >= until)
}

/// CreateStream's parameters, already checked against the model.
#[derive(Debug, Clone, Default)]
pub struct CreateStream {
    pub name: String,
    pub shard_count: Option<u32>,
    pub mode: Option<StreamMode>,
    pub tags: BTreeMap<String, String>,
    pub max_record_size_kib: Option<u32>,
    pub warm_throughput_mibps: Option<u32>,
}

/// One row of ListStreams.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    pub name: String,
    pub arn: String,
    pub status: StreamStatus,
    pub mode: StreamMode,
    pub created_ms: u64,
}

/// Which way a tag change goes: AWS words its refusal of `%` by it.
#[derive(Clone, Copy)]
pub(crate) enum TagChange {
    Add,
    Remove,
}

/// AWS's character rules for tag keys and values, checked once the resource is known (an
/// unknown stream answers ResourceNotFound first). Allowed: Unicode letters and digits, space
/// separators (not tabs or line breaks), and `_ . / = + - @ :`. `%` passes the first rule and
/// is then refused on its own, naming the resource.
pub(crate) fn check_tag_characters<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    change: TagChange,
    resource: &str,
    account: &str,
) -> Result<()> {
    let mut percent = false;
    for text in texts {
        for c in text.chars() {
            let space_separator = c.is_whitespace() && !c.is_control();
            if !(c.is_alphanumeric() || space_separator || "_./=+-@:%".contains(c)) {
                return Err(StreamsError::InvalidArgument(
                    "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @."
                        .to_string(),
                ));
            }
            percent |= c == '%';
        }
    }
    if percent {
        let change = match change {
            TagChange::Add => "add tags to",
            TagChange::Remove => "remove tags from",
        };
        return Err(StreamsError::InvalidArgument(format!(
            "Failed to {change} {resource} under account {account} because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@'."
        )));
    }
    Ok(())
}

/// Tags being set: the reserved `aws:` prefix, then the character rules.
pub(crate) fn check_new_tags(
    tags: &BTreeMap<String, String>,
    resource: &str,
    account: &str,
) -> Result<()> {
    if tags.keys().any(|key| key.starts_with("aws:")) {
        return Err(StreamsError::InvalidArgument(
            "Tag keys starting with 'aws:' are reserved for system use.".to_string(),
        ));
    }
    let texts = tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]);
    check_tag_characters(texts, TagChange::Add, resource, account)
}

impl Streams {
    fn require_active(&self, meta: &StreamMeta, now: u64) -> Result<()> {
        let status = status_of(meta, now);
        if status != StreamStatus::Active {
            return Err(StreamsError::InUse(format!(
                "Stream {} under account {} not ACTIVE, instead in state {}",
                meta.name,
                self.account(),
                status.as_str()
            )));
        }
        Ok(())
    }

    pub(crate) fn open_shard_total(&self) -> u64 {
        let now = now_ms();
        self.inner
            .streams
            .read()
            .values()
            .map(|e| e.snapshot())
            .filter(|v| !is_gone(&v.meta, now))
            .map(|v| v.open_shard_count() as u64)
            .sum()
    }

    pub(crate) fn check_shard_quota(&self, additional: u64) -> Result<()> {
        let current = self.open_shard_total();
        let limit = u64::from(self.inner.config.shard_limit);
        if current + additional > limit {
            return Err(StreamsError::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {}. Limit: {}. Number of additional shards that would have resulted from this request: {}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
                self.account(),
                self.inner.config.region,
                current,
                limit,
                additional
            )));
        }
        Ok(())
    }

    /// # Errors
    /// `InUse` when the name exists, `LimitExceeded` over the shard or on-demand quota,
    /// `InvalidArgument`/`Validation` for inconsistent parameters.
    pub async fn create_stream(&self, request: CreateStream) -> Result<()> {
        let _registry = self.inner.registry_lock.lock().await;
        let now = now_ms();
        if let Some(existing) = self.inner.streams.read().get(&request.name)
            && !is_gone(&existing.snapshot().meta, now)
        {
            return Err(StreamsError::InUse(format!(
                "Stream {} under account {} already exists.",
                request.name,
                self.account()
            )));
        }
        let mode = request.mode.unwrap_or(StreamMode::Provisioned);
        if mode == StreamMode::OnDemand && request.shard_count.is_some() {
            return Err(StreamsError::Validation(
                "ShardCount is not expected when StreamMode=ON_DEMAND".to_string(),
            ));
        }
        if mode == StreamMode::Provisioned && request.warm_throughput_mibps.is_some() {
            return Err(StreamsError::InvalidArgument(
                "WarmThroughputMiBps can only be set for streams in ON_DEMAND mode.".to_string(),
            ));
        }
        if request.tags.len() > TAGS_PER_RESOURCE_MAX {
            return Err(StreamsError::InvalidArgument(format!(
                "Failed to create stream {} under account {} because a given tag exceeded the limit of {} tags.",
                request.name,
                self.account(),
                TAGS_PER_RESOURCE_MAX
            )));
        }
        check_new_tags(
            &request.tags,
            &format!("stream {}", request.name),
            self.account(),
        )?;
        let shard_count = match mode {
            StreamMode::OnDemand => {
                let on_demand = self
                    .inner
                    .streams
                    .read()
                    .values()
                    .filter(|e| {
                        let meta = &e.snapshot().meta;
                        meta.mode == StreamMode::OnDemand && !is_gone(meta, now)
                    })
                    .count() as u32;
                if on_demand >= ON_DEMAND_STREAM_LIMIT {
                    return Err(StreamsError::LimitExceeded(format!(
                        "This request would exceed the on-demand stream limit of {ON_DEMAND_STREAM_LIMIT} for account {}.",
                        self.account()
                    )));
                }
                ON_DEMAND_INITIAL_SHARDS
            }
            StreamMode::Provisioned => request.shard_count.unwrap_or(DEFAULT_SHARD_COUNT),
        };
        self.check_shard_quota(u64::from(shard_count))?;
        let config = &self.inner.config;
        // Backdated by a second so records written in the creation second still carry
        // numbers above every shard's StartingSequenceNumber and arrival >= creation.
        let created_ms = now.saturating_sub(1000);
        let mut shards = Vec::with_capacity(shard_count as usize);
        for (index, (start, end)) in even_ranges(shard_count).into_iter().enumerate() {
            let log_id = self.allocate_log_id();
            self.inner.store.create_log(log_id).await?;
            shards.push(ShardMeta {
                index: index as u32,
                log_id,
                parent: None,
                adjacent_parent: None,
                start_hash: start,
                end_hash: end,
                created_ms,
                closed: None,
            });
        }
        let meta = StreamMeta {
            format_version: META_FORMAT_VERSION,
            name: request.name.clone(),
            incarnation: rand::random(),
            created_ms,
            active_at_ms: now + config.create_delay.as_millis() as u64,
            updating_until_ms: 0,
            deleting_until_ms: None,
            mode,
            retention_hours: RETENTION_HOURS_DEFAULT,
            encryption_key: None,
            shard_level_metrics: Vec::new(),
            tags: request.tags,
            max_record_size_kib: request
                .max_record_size_kib
                .unwrap_or(RECORD_SIZE_KIB_DEFAULT),
            warm_throughput_mibps: request.warm_throughput_mibps,
            policy: None,
            shards,
            consumers: Vec::new(),
            scaling_history_ms: Vec::new(),
        };
        self.inner.catalog.put_stream(&meta)?;
        // A stream of the same name still DELETING (past its deadline) is replaced here; its
        // logs are no longer referenced by metadata and go with the replaced entry.
        let replaced = self
            .inner
            .streams
            .write()
            .insert(meta.name.clone(), StreamEntry::new(meta));
        if let Some(old) = replaced {
            self.drop_logs(&old.snapshot()).await;
        }
        Ok(())
    }

    async fn drop_logs(&self, view: &StreamView) {
        for shard in &view.meta.shards {
            if let Err(err) = self.inner.store.delete_log(shard.log_id).await {
                tracing::warn!(error = %err, log = shard.log_id, "could not delete a shard log");
            }
        }
    }

    /// # Errors
    /// `NotFound`, or `InUse` when consumers are registered and deletion is not enforced.
    pub async fn delete_stream(
        &self,
        target: &StreamRef,
        enforce_consumer_deletion: bool,
    ) -> Result<()> {
        let delay = self.inner.config.delete_delay.as_millis() as u64;
        let account = self.account().to_string();
        self.mutate(target, |meta, now| {
            if status_of(meta, now) == StreamStatus::Creating {
                // AWS deletes a stream that is still being created: it goes straight to
                // DELETING and never becomes ACTIVE, so it shows no shards and takes no data.
                meta.active_at_ms = u64::MAX;
            }
            let live_consumers = meta.consumers.iter().filter(|c| c.deleting_until_ms.is_none()).count();
            if live_consumers > 0 && !enforce_consumer_deletion {
                return Err(StreamsError::InUse(format!(
                    "Stream {} under account {account} has registered consumers. Deregister them or set EnforceConsumerDeletion to true.",
                    meta.name
                )));
            }
            if meta.deleting_until_ms.is_none() {
                meta.deleting_until_ms = Some(now + delay);
            }
            Ok(())
        })
        .await?;
        if delay == 0 {
            self.sweep(false).await?;
        }
        Ok(())
    }

    /// The stream's current snapshot.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn describe(&self, target: &StreamRef) -> Result<Arc<StreamView>> {
        self.view(target)
    }

    /// Like `describe`, but only once the stream can take reads and writes (ACTIVE or
    /// UPDATING, or DELETING until it is gone); CREATING streams, and streams deleted before
    /// they were ever ACTIVE, are not found, as on AWS.
    pub(crate) fn data_view(&self, target: &StreamRef) -> Result<Arc<StreamView>> {
        let view = self.view(target)?;
        if now_ms() < view.meta.active_at_ms {
            return Err(self.stream_not_found(&view.meta.name));
        }
        Ok(view)
    }

    pub fn stream_arn(&self, name: &str) -> String {
        self.inner.config.stream_arn(name)
    }

    /// Every live stream, sorted by name.
    pub fn list_streams(&self) -> Vec<StreamSummary> {
        let now = now_ms();
        self.inner
            .streams
            .read()
            .values()
            .map(|e| e.snapshot())
            .filter(|v| !is_gone(&v.meta, now))
            .map(|v| StreamSummary {
                name: v.meta.name.clone(),
                arn: self.stream_arn(&v.meta.name),
                status: v.status(now),
                mode: v.meta.mode,
                created_ms: v.meta.created_ms,
            })
            .collect()
    }

    /// Seals a NextToken for ListStreams (resumes after `last_name`).
    pub fn list_streams_token(&self, last_name: &str) -> String {
        let mut payload = now_ms().to_be_bytes().to_vec();
        payload.extend_from_slice(last_name.as_bytes());
        self.inner
            .sealer
            .seal(crate::token::KIND_LIST_STREAMS, &payload)
    }

    /// The stream name a ListStreams NextToken resumes after.
    ///
    /// # Errors
    /// `InvalidArgument` for a token that is not ours, `ExpiredNextToken` after 5 minutes.
    pub fn open_list_streams_token(&self, token: &str) -> Result<String> {
        let payload = self.open_token(crate::token::KIND_LIST_STREAMS, token)?;
        String::from_utf8(payload).map_err(|_| invalid_next_token())
    }

    /// Opens a NextToken and checks its age; returns the payload after the issue time.
    pub(crate) fn open_token(&self, kind: u8, token: &str) -> Result<Vec<u8>> {
        let payload = self
            .inner
            .sealer
            .open(kind, token)
            .ok_or_else(invalid_next_token)?;
        if payload.len() < 8 {
            return Err(invalid_next_token());
        }
        let issued = u64::from_be_bytes(payload[..8].try_into().expect("checked length"));
        let ttl = millstream_types::limits::NEXT_TOKEN_TTL.as_millis() as u64;
        if now_ms() > issued + ttl {
            return Err(StreamsError::ExpiredNextToken(format!(
                "The timestamp of the NextToken {token} has expired."
            )));
        }
        Ok(payload[8..].to_vec())
    }

    pub(crate) fn seal_token(&self, kind: u8, body: &[u8]) -> String {
        let mut payload = now_ms().to_be_bytes().to_vec();
        payload.extend_from_slice(body);
        self.inner.sealer.seal(kind, &payload)
    }

    pub async fn increase_retention(&self, target: &StreamRef, hours: i64) -> Result<()> {
        self.mutate(target, |meta, _| {
            check_retention_bounds(hours)?;
            let hours = hours as u32;
            if hours < meta.retention_hours {
                return Err(StreamsError::InvalidArgument(format!(
                    "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({} hours). Use DecreaseRetentionPeriod API.",
                    meta.name, meta.retention_hours
                )));
            }
            meta.retention_hours = hours;
            Ok(())
        })
        .await
    }

    pub async fn decrease_retention(&self, target: &StreamRef, hours: i64) -> Result<()> {
        self.mutate(target, |meta, _| {
            check_retention_bounds(hours)?;
            let hours = hours as u32;
            if hours > meta.retention_hours {
                return Err(StreamsError::InvalidArgument(format!(
                    "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({} hours). Use IncreaseRetentionPeriod API.",
                    meta.name, meta.retention_hours
                )));
            }
            meta.retention_hours = hours;
            Ok(())
        })
        .await
    }

    pub async fn start_encryption(&self, target: &StreamRef, key_id: String) -> Result<()> {
        let delay = self.inner.config.update_delay.as_millis() as u64;
        self.mutate(target, |meta, now| {
            self.require_active(meta, now)?;
            meta.encryption_key = Some(key_id);
            meta.updating_until_ms = now + delay;
            Ok(())
        })
        .await
    }

    pub async fn stop_encryption(&self, target: &StreamRef) -> Result<()> {
        let delay = self.inner.config.update_delay.as_millis() as u64;
        self.mutate(target, |meta, now| {
            self.require_active(meta, now)?;
            meta.encryption_key = None;
            meta.updating_until_ms = now + delay;
            Ok(())
        })
        .await
    }

    /// Sets shard-level metrics; returns (before, after).
    pub async fn set_enhanced_monitoring(
        &self,
        target: &StreamRef,
        metrics: &[String],
        enable: bool,
    ) -> Result<(Vec<String>, Vec<String>)> {
        const ALL: [&str; 7] = [
            "IncomingBytes",
            "IncomingRecords",
            "OutgoingBytes",
            "OutgoingRecords",
            "WriteProvisionedThroughputExceeded",
            "ReadProvisionedThroughputExceeded",
            "IteratorAgeMilliseconds",
        ];
        let expanded: Vec<String> = if metrics.iter().any(|m| m == "ALL") {
            ALL.iter().map(|m| m.to_string()).collect()
        } else {
            metrics.to_vec()
        };
        self.mutate(target, |meta, _| {
            let before = meta.shard_level_metrics.clone();
            let mut after: Vec<String> = if enable {
                let mut all = before.clone();
                all.extend(expanded.iter().cloned());
                all
            } else {
                before
                    .iter()
                    .filter(|m| !expanded.contains(m))
                    .cloned()
                    .collect()
            };
            after.sort_by_key(|m| ALL.iter().position(|a| a == m).unwrap_or(ALL.len()));
            after.dedup();
            meta.shard_level_metrics = after.clone();
            Ok((before, after))
        })
        .await
    }

    pub async fn add_tags(&self, target: &StreamRef, tags: BTreeMap<String, String>) -> Result<()> {
        let account = self.account().to_string();
        self.mutate(target, |meta, now| {
            check_new_tags(&tags, &format!("stream {}", meta.name), &account)?;
            if status_of(meta, now) == StreamStatus::Creating {
                return Err(StreamsError::InUse(format!(
                    "Stream {} under account {account} not ACTIVE, instead in state CREATING",
                    meta.name
                )));
            }
            let mut merged = meta.tags.clone();
            merged.extend(tags);
            if merged.len() > TAGS_PER_RESOURCE_MAX {
                return Err(StreamsError::InvalidArgument(format!(
                    "Failed to add tags to stream {} under account {account} because a given stream cannot have more than {TAGS_PER_RESOURCE_MAX} tags.",
                    meta.name
                )));
            }
            meta.tags = merged;
            Ok(())
        })
        .await
    }

    pub async fn remove_tags(&self, target: &StreamRef, keys: &[String]) -> Result<()> {
        let account = self.account().to_string();
        self.mutate(target, |meta, now| {
            check_tag_characters(
                keys.iter().map(String::as_str),
                TagChange::Remove,
                &format!("stream {}", meta.name),
                &account,
            )?;
            if status_of(meta, now) == StreamStatus::Creating {
                return Err(StreamsError::InUse(format!(
                    "Stream {} under account {account} not ACTIVE, instead in state CREATING",
                    meta.name
                )));
            }
            for key in keys {
                meta.tags.remove(key);
            }
            Ok(())
        })
        .await
    }

    pub async fn update_stream_mode(
        &self,
        target: &StreamRef,
        mode: StreamMode,
        warm_throughput_mibps: Option<u32>,
    ) -> Result<()> {
        let delay = self.inner.config.update_delay.as_millis() as u64;
        let account = self.account().to_string();
        self.mutate(target, |meta, now| {
            self.require_active(meta, now)?;
            if meta.mode == mode {
                return Err(StreamsError::InvalidArgument(format!(
                    "Stream {} under account {account} is already in {} mode.",
                    meta.name,
                    mode.as_str()
                )));
            }
            if mode == StreamMode::Provisioned && warm_throughput_mibps.is_some() {
                return Err(StreamsError::InvalidArgument(
                    "WarmThroughputMiBps can only be set for streams in ON_DEMAND mode."
                        .to_string(),
                ));
            }
            meta.mode = mode;
            meta.warm_throughput_mibps = if mode == StreamMode::OnDemand {
                warm_throughput_mibps
            } else {
                None
            };
            meta.updating_until_ms = now + delay;
            Ok(())
        })
        .await
    }

    pub async fn update_warm_throughput(&self, target: &StreamRef, mibps: u32) -> Result<()> {
        let delay = self.inner.config.update_delay.as_millis() as u64;
        let commitment = self.inner.account.lock().commitment_enabled;
        let account = self.account().to_string();
        self.mutate(target, |meta, now| {
            self.require_active(meta, now)?;
            if meta.mode != StreamMode::OnDemand {
                return Err(StreamsError::InvalidArgument(format!(
                    "Warm throughput can only be configured for streams in ON_DEMAND mode. Stream {} under account {account} is in PROVISIONED mode.",
                    meta.name
                )));
            }
            if !commitment && mibps > 0 {
                return Err(StreamsError::InvalidArgument(format!(
                    "Warm throughput requires the account {account} to have MinimumThroughputBillingCommitment enabled."
                )));
            }
            meta.warm_throughput_mibps = Some(mibps);
            meta.updating_until_ms = now + delay;
            Ok(())
        })
        .await
    }

    pub async fn update_max_record_size(&self, target: &StreamRef, kib: u32) -> Result<()> {
        self.mutate(target, |meta, now| {
            self.require_active(meta, now)?;
            meta.max_record_size_kib = kib;
            Ok(())
        })
        .await
    }

    pub async fn put_stream_policy(
        &self,
        target: &StreamRef,
        policy: Option<String>,
    ) -> Result<()> {
        self.mutate(target, |meta, _| {
            meta.policy = policy;
            Ok(())
        })
        .await
    }

    /// (shard limit, open shards, on-demand streams, on-demand limit)
    pub fn describe_limits(&self) -> (u32, u64, u32, u32) {
        let now = now_ms();
        let on_demand = self
            .inner
            .streams
            .read()
            .values()
            .filter(|e| {
                let meta = &e.snapshot().meta;
                meta.mode == StreamMode::OnDemand && !is_gone(meta, now)
            })
            .count() as u32;
        (
            self.inner.config.shard_limit,
            self.open_shard_total(),
            on_demand,
            ON_DEMAND_STREAM_LIMIT,
        )
    }

    pub fn account_settings(&self) -> AccountSettings {
        let mut settings = self.inner.account.lock().clone();
        // A scheduled end takes effect by itself.
        if let Some(end) = settings.ended_at_ms
            && now_ms() >= end
        {
            settings.commitment_enabled = false;
        }
        settings
    }

    /// Enables or disables the minimum throughput billing commitment (which lasts at least
    /// 24 hours once enabled: disabling earlier schedules the end).
    pub fn update_account_settings(&self, enable: bool) -> Result<AccountSettings> {
        const COMMITMENT_MIN_MS: u64 = 24 * 3_600_000;
        let now = now_ms();
        let mut settings = self.account_settings();
        if enable {
            if !settings.commitment_enabled || settings.ended_at_ms.is_some() {
                settings = AccountSettings {
                    commitment_enabled: true,
                    started_at_ms: Some(now),
                    ended_at_ms: None,
                    earliest_allowed_end_ms: Some(now + COMMITMENT_MIN_MS),
                };
            }
        } else if settings.commitment_enabled && settings.ended_at_ms.is_none() {
            let earliest = settings.earliest_allowed_end_ms.unwrap_or(now);
            settings.ended_at_ms = Some(earliest.max(now));
        }
        let bytes = serde_json::to_vec(&settings).map_err(StreamsError::metadata)?;
        self.inner
            .catalog
            .put_setting(crate::SETTING_ACCOUNT, &bytes)?;
        *self.inner.account.lock() = settings.clone();
        Ok(settings)
    }

    /// Purges streams past their DELETING deadline and consumers past theirs; when `trim`,
    /// applies retention to every shard log and drops logs of expired closed shards.
    pub(crate) async fn sweep(&self, trim: bool) -> Result<()> {
        let now = now_ms();
        let entries: Vec<(String, Arc<StreamEntry>)> = self
            .inner
            .streams
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, entry) in entries {
            let view = entry.snapshot();
            if is_gone(&view.meta, now) {
                let _registry = self.inner.registry_lock.lock().await;
                let still_same = self
                    .inner
                    .streams
                    .read()
                    .get(&name)
                    .is_some_and(|current| Arc::ptr_eq(current, &entry));
                if still_same {
                    self.inner.catalog.remove_stream(&name)?;
                    self.inner.streams.write().remove(&name);
                    self.drop_logs(&view).await;
                }
                continue;
            }
            if view
                .meta
                .consumers
                .iter()
                .any(|c| c.deleting_until_ms.is_some_and(|t| now >= t))
            {
                self.mutate(&StreamRef::name(name.clone()), |meta, now| {
                    meta.consumers
                        .retain(|c| c.deleting_until_ms.is_none_or(|t| now < t));
                    Ok(())
                })
                .await?;
            }
            if trim {
                let cutoff = now.saturating_sub(view.retention_ms());
                for shard in &view.meta.shards {
                    if view.is_expired(shard, now) {
                        // Deleting an already deleted log is a no-op.
                        self.inner.store.delete_log(shard.log_id).await.ok();
                    } else {
                        self.inner.store.trim_before(shard.log_id, cutoff).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_retention_bounds(hours: i64) -> Result<()> {
    if hours < i64::from(RETENTION_HOURS_MIN) {
        return Err(StreamsError::InvalidArgument(format!(
            "Minimum allowed retention period is {RETENTION_HOURS_MIN} hours. Requested retention period ({hours} hours) is too short."
        )));
    }
    if hours > i64::from(RETENTION_HOURS_MAX) {
        return Err(StreamsError::InvalidArgument(format!(
            "Maximum allowed retention period is {RETENTION_HOURS_MAX} hours. Requested retention period ({hours} hours) is too long."
        )));
    }
    Ok(())
}

pub(crate) fn invalid_next_token() -> StreamsError {
    StreamsError::InvalidArgument("Invalid NextToken.".to_string())
}
