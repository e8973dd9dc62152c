//! Enhanced fan-out consumers (registration and lookup) and ARN-addressed resources: tags and
//! resource policies on streams and consumers.

use std::collections::BTreeMap;

use millstream_types::limits::{
    CONSUMERS_PER_STREAM_MAX, LIST_CONSUMERS_PAGE_MAX, TAGS_PER_RESOURCE_MAX,
};

use crate::lifecycle::{StreamStatus, status_of};
use crate::meta::{ConsumerMeta, StreamMeta};
use crate::token::KIND_LIST_CONSUMERS;
use crate::{Result, StreamRef, Streams, StreamsError, now_ms};

/// A consumer as DescribeStreamConsumer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerView {
    pub name: String,
    pub arn: String,
    pub status: &'static str,
    pub created_ms: u64,
    pub stream_arn: String,
}

/// What an ARN in TagResource and the policy operations names.
enum Resource {
    Stream(String),
    Consumer {
        stream: String,
        consumer_arn: String,
    },
}

impl Streams {
    pub fn consumer_arn(&self, stream: &str, consumer: &ConsumerMeta) -> String {
        format!(
            "{}/consumer/{}:{}",
            self.stream_arn(stream),
            consumer.name,
            consumer.created_ms / 1000
        )
    }

    fn consumer_view(&self, stream: &str, consumer: &ConsumerMeta, now: u64) -> ConsumerView {
        let ready_at = consumer.created_ms + self.inner.config.create_delay.as_millis() as u64;
        let status = if consumer.deleting_until_ms.is_some() {
            "DELETING"
        } else if now < ready_at {
            "CREATING"
        } else {
            "ACTIVE"
        };
        ConsumerView {
            name: consumer.name.clone(),
            arn: self.consumer_arn(stream, consumer),
            status,
            created_ms: consumer.created_ms,
            stream_arn: self.stream_arn(stream),
        }
    }

    fn consumer_not_found(&self, what: &str) -> StreamsError {
        StreamsError::NotFound(format!(
            "Consumer {what} under account {} not found.",
            self.account()
        ))
    }

    /// # Errors
    /// `InUse` for a duplicate name or a stream not ACTIVE, `LimitExceeded` past 20 consumers.
    pub async fn register_consumer(
        &self,
        stream_arn: &str,
        name: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<ConsumerView> {
        let target = StreamRef {
            name: None,
            arn: Some(stream_arn.to_string()),
        };
        let account = self.account().to_string();
        let (stream, consumer) = self
            .mutate(&target, |meta, now| {
                crate::lifecycle::check_new_tags(&tags, &format!("consumer {name}"), &account)?;
                let status = status_of(meta, now);
                if !matches!(status, StreamStatus::Active | StreamStatus::Updating) {
                    return Err(StreamsError::InUse(format!(
                        "Stream {} under account {account} not ACTIVE, instead in state {}",
                        meta.name,
                        status.as_str()
                    )));
                }
                if meta.consumers.iter().any(|c| c.name == name) {
                    return Err(StreamsError::InUse(format!(
                        "Consumer {name} under stream {} under account {account} already exists.",
                        meta.name
                    )));
                }
                if meta.consumers.len() >= CONSUMERS_PER_STREAM_MAX {
                    return Err(StreamsError::LimitExceeded(format!(
                        "Stream {} under account {account} already has the maximum of {CONSUMERS_PER_STREAM_MAX} registered consumers.",
                        meta.name
                    )));
                }
                if tags.len() > TAGS_PER_RESOURCE_MAX {
                    return Err(StreamsError::InvalidArgument(format!(
                        "A consumer cannot have more than {TAGS_PER_RESOURCE_MAX} tags."
                    )));
                }
                let consumer = ConsumerMeta {
                    name: name.to_string(),
                    created_ms: now,
                    tags: tags.clone(),
                    policy: None,
                    deleting_until_ms: None,
                };
                meta.consumers.push(consumer.clone());
                Ok((meta.name.clone(), consumer))
            })
            .await?;
        Ok(self.consumer_view(&stream, &consumer, now_ms()))
    }

    /// Finds a consumer by ARN, or by stream ARN and name; returns (stream name, consumer).
    fn locate_consumer(
        &self,
        stream_arn: Option<&str>,
        name: Option<&str>,
        consumer_arn: Option<&str>,
    ) -> Result<(String, ConsumerMeta)> {
        let now = now_ms();
        if let Some(arn) = consumer_arn {
            let (stream_part, _) = arn
                .split_once("/consumer/")
                .ok_or_else(|| self.consumer_not_found(arn))?;
            let view = self
                .view(&StreamRef {
                    name: None,
                    arn: Some(stream_part.to_string()),
                })
                .map_err(|_| self.consumer_not_found(arn))?;
            return view
                .meta
                .consumers
                .iter()
                .find(|c| {
                    self.consumer_arn(&view.meta.name, c) == arn
                        && c.deleting_until_ms.is_none_or(|t| now < t)
                })
                .map(|c| (view.meta.name.clone(), c.clone()))
                .ok_or_else(|| self.consumer_not_found(arn));
        }
        let (Some(stream_arn), Some(name)) = (stream_arn, name) else {
            return Err(StreamsError::InvalidArgument(
                "Either ConsumerARN or both ConsumerName and StreamARN must be provided."
                    .to_string(),
            ));
        };
        let view = self.view(&StreamRef {
            name: None,
            arn: Some(stream_arn.to_string()),
        })?;
        view.meta
            .consumers
            .iter()
            .find(|c| c.name == name && c.deleting_until_ms.is_none_or(|t| now < t))
            .map(|c| (view.meta.name.clone(), c.clone()))
            .ok_or_else(|| self.consumer_not_found(name))
    }

    pub fn describe_consumer(
        &self,
        stream_arn: Option<&str>,
        name: Option<&str>,
        consumer_arn: Option<&str>,
    ) -> Result<ConsumerView> {
        let (stream, consumer) = self.locate_consumer(stream_arn, name, consumer_arn)?;
        Ok(self.consumer_view(&stream, &consumer, now_ms()))
    }

    pub async fn deregister_consumer(
        &self,
        stream_arn: Option<&str>,
        name: Option<&str>,
        consumer_arn: Option<&str>,
    ) -> Result<()> {
        let (stream, consumer) = self.locate_consumer(stream_arn, name, consumer_arn)?;
        let delay = self.inner.config.delete_delay.as_millis() as u64;
        self.mutate(&StreamRef::name(stream), |meta, now| {
            if delay == 0 {
                meta.consumers.retain(|c| c.name != consumer.name);
            } else if let Some(c) = meta.consumers.iter_mut().find(|c| c.name == consumer.name) {
                c.deleting_until_ms.get_or_insert(now + delay);
            }
            Ok(())
        })
        .await
    }

    /// A page of a stream's consumers and the token for the next.
    pub fn list_consumers(
        &self,
        stream_arn: &str,
        next_token: Option<&str>,
        max_results: Option<usize>,
        stream_creation_ms: Option<i64>,
    ) -> Result<(Vec<ConsumerView>, Option<String>)> {
        let view = self.view(&StreamRef {
            name: None,
            arn: Some(stream_arn.to_string()),
        })?;
        if let Some(created) = stream_creation_ms
            && created / 1000 != (view.meta.created_ms / 1000) as i64
        {
            return Err(self.stream_not_found(&view.meta.name));
        }
        let after = match next_token {
            Some(token) => Some(
                String::from_utf8(self.open_token(KIND_LIST_CONSUMERS, token)?)
                    .map_err(|_| crate::lifecycle::invalid_next_token())?,
            ),
            None => None,
        };
        let limit = max_results
            .unwrap_or(LIST_CONSUMERS_PAGE_MAX)
            .min(LIST_CONSUMERS_PAGE_MAX);
        let now = now_ms();
        let mut consumers: Vec<&ConsumerMeta> = view.meta.consumers.iter().collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut remaining = consumers
            .into_iter()
            .filter(|c| after.as_ref().is_none_or(|a| c.name > *a))
            .filter(|c| c.deleting_until_ms.is_none_or(|t| now < t));
        let page: Vec<ConsumerView> = remaining
            .by_ref()
            .take(limit)
            .map(|c| self.consumer_view(&view.meta.name, c, now))
            .collect();
        let token = match (remaining.next(), page.last()) {
            (Some(_), Some(last)) => {
                Some(self.seal_token(KIND_LIST_CONSUMERS, last.name.as_bytes()))
            }
            _ => None,
        };
        Ok((page, token))
    }

    fn resource(&self, arn: &str) -> Result<Resource> {
        match arn.split_once("/consumer/") {
            Some((stream_arn, _)) => {
                let (stream, _) = self.locate_consumer(None, None, Some(arn))?;
                debug_assert!(self.stream_arn(&stream) == stream_arn);
                Ok(Resource::Consumer {
                    stream,
                    consumer_arn: arn.to_string(),
                })
            }
            None => Ok(Resource::Stream(self.resolve_name(&StreamRef {
                name: None,
                arn: Some(arn.to_string()),
            })?)),
        }
    }

    /// Applies `change` to the tags and policy of the stream or consumer an ARN names.
    async fn update_resource<T>(
        &self,
        arn: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>, &mut Option<String>) -> Result<T>,
    ) -> Result<T> {
        match self.resource(arn)? {
            Resource::Stream(name) => {
                self.mutate(&StreamRef::name(name), |meta, _| {
                    change(&mut meta.tags, &mut meta.policy)
                })
                .await
            }
            Resource::Consumer {
                stream,
                consumer_arn,
            } => {
                let this = self.clone();
                self.mutate(&StreamRef::name(stream), move |meta: &mut StreamMeta, _| {
                    let name = meta.name.clone();
                    let consumer = meta
                        .consumers
                        .iter_mut()
                        .find(|c| this.consumer_arn(&name, c) == consumer_arn)
                        .ok_or_else(|| this.consumer_not_found(&consumer_arn))?;
                    change(&mut consumer.tags, &mut consumer.policy)
                })
                .await
            }
        }
    }

    pub async fn tag_resource(&self, arn: &str, tags: BTreeMap<String, String>) -> Result<()> {
        let account = self.account().to_string();
        self.update_resource(arn, |current, _| {
            crate::lifecycle::check_new_tags(&tags, &format!("resource {arn}"), &account)?;
            let mut merged = current.clone();
            merged.extend(tags);
            if merged.len() > TAGS_PER_RESOURCE_MAX {
                return Err(StreamsError::InvalidArgument(format!(
                    "A resource cannot have more than {TAGS_PER_RESOURCE_MAX} tags."
                )));
            }
            *current = merged;
            Ok(())
        })
        .await
    }

    pub async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<()> {
        let account = self.account().to_string();
        self.update_resource(arn, |current, _| {
            crate::lifecycle::check_tag_characters(
                keys.iter().map(String::as_str),
                crate::lifecycle::TagChange::Remove,
                &format!("resource {arn}"),
                &account,
            )?;
            for key in keys {
                current.remove(key);
            }
            Ok(())
        })
        .await
    }

    pub fn resource_tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        Ok(match self.resource(arn)? {
            Resource::Stream(name) => self.view(&StreamRef::name(name))?.meta.tags.clone(),
            Resource::Consumer { .. } => self.locate_consumer(None, None, Some(arn))?.1.tags,
        })
    }

    pub async fn put_resource_policy(&self, arn: &str, policy: String) -> Result<()> {
        self.update_resource(arn, |_, current| {
            *current = Some(policy);
            Ok(())
        })
        .await
    }

    pub async fn delete_resource_policy(&self, arn: &str) -> Result<()> {
        self.update_resource(arn, |_, current| {
            *current = None;
            Ok(())
        })
        .await
    }

    pub fn resource_policy(&self, arn: &str) -> Result<Option<String>> {
        Ok(match self.resource(arn)? {
            Resource::Stream(name) => self.view(&StreamRef::name(name))?.meta.policy.clone(),
            Resource::Consumer { .. } => self.locate_consumer(None, None, Some(arn))?.1.policy,
        })
    }
}
