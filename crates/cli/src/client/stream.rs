//! `millstream stream create|list|describe|delete|split|merge|scale|retention`.
//!
//! Commands that change a stream wait (unless `--no-wait`) until it is ACTIVE again, or
//! gone after a delete, so that scripts can run the next command straight away.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::{
    ScalingType, Shard, StreamDescriptionSummary, StreamMode, StreamModeDetails, StreamStatus,
};
use clap::{Args, Subcommand};
use comfy_table::Table;
use serde_json::{Value, json};

use super::errors::{ApiResult, error_code};
use super::output::{self, print_json, print_table, time};
use super::{Connection, Output};

/// How often a waiting command polls the stream's status.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Args)]
pub struct StreamArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: StreamCommand,
}

#[derive(Args)]
struct WaitArgs {
    /// Return as soon as the server accepted the change, without waiting for ACTIVE.
    #[arg(long)]
    no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    wait_timeout: u64,
}

#[derive(Subcommand)]
enum StreamCommand {
    /// Create a stream (provisioned with --shards, or --on-demand).
    Create {
        name: String,
        /// Number of shards of a provisioned stream.
        #[arg(long, default_value_t = 1, conflicts_with = "on_demand")]
        shards: u32,
        /// Create an on-demand stream (the server picks the shard count).
        #[arg(long)]
        on_demand: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List streams.
    List,
    /// Show a stream's settings and shards.
    Describe { name: String },
    /// Delete a stream and all its records.
    Delete {
        name: String,
        /// Delete even if consumers are registered.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Split a shard in two (at the middle of its hash-key range unless --hash-key).
    Split {
        name: String,
        /// The shard to split, e.g. shardId-000000000000.
        shard: String,
        /// First hash key of the new upper shard.
        #[arg(long)]
        hash_key: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Merge a shard with an adjacent open shard (found automatically when omitted).
    Merge {
        name: String,
        shard: String,
        adjacent: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Change the number of open shards (uniform scaling).
    Scale {
        name: String,
        shards: u32,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Show the retention period, or set it (hours, 24..=8760).
    Retention {
        name: String,
        hours: Option<u32>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

pub async fn run(args: StreamArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    let client = connection.client();
    let endpoint = connection.endpoint.as_str();
    let output = connection.output;
    match args.command {
        StreamCommand::Create {
            name,
            shards,
            on_demand,
            wait,
        } => {
            let mut request = client.create_stream().stream_name(&name);
            request = if on_demand {
                request.stream_mode_details(
                    StreamModeDetails::builder()
                        .stream_mode(StreamMode::OnDemand)
                        .build()?,
                )
            } else {
                request.shard_count(i32::try_from(shards).context("--shards is too large")?)
            };
            request.send().await.api(endpoint)?;
            finish(&client, endpoint, &name, &wait, output, "Created").await
        }
        StreamCommand::List => list(&client, endpoint, output).await,
        StreamCommand::Describe { name } => {
            let summary = summary(&client, endpoint, &name).await?;
            let shards = list_shards(&client, endpoint, &name).await?;
            print_stream(&summary, Some(&shards), output)
        }
        StreamCommand::Delete { name, force, wait } => {
            client
                .delete_stream()
                .stream_name(&name)
                .enforce_consumer_deletion(force)
                .send()
                .await
                .api(endpoint)?;
            if !wait.no_wait {
                wait_until(&client, endpoint, &name, &wait, None).await?;
            }
            match output {
                Output::Json => print_json(&json!({ "stream_name": name, "deleted": true })),
                Output::Table => output::print_line(&format!("Deleted stream {name}")),
            }
        }
        StreamCommand::Split {
            name,
            shard,
            hash_key,
            wait,
        } => {
            let hash_key = match hash_key {
                Some(key) => key,
                None => {
                    let shards = list_shards(&client, endpoint, &name).await?;
                    let found = shards
                        .iter()
                        .find(|s| s.shard_id() == shard)
                        .with_context(|| format!("stream {name} has no shard {shard}"))?;
                    let (start, end) = hash_range(found)?;
                    if start == end {
                        bail!("{shard} covers a single hash key and cannot be split");
                    }
                    (start + (end - start) / 2 + 1).to_string()
                }
            };
            client
                .split_shard()
                .stream_name(&name)
                .shard_to_split(&shard)
                .new_starting_hash_key(&hash_key)
                .send()
                .await
                .api(endpoint)?;
            finish(&client, endpoint, &name, &wait, output, "Split a shard of").await
        }
        StreamCommand::Merge {
            name,
            shard,
            adjacent,
            wait,
        } => {
            let adjacent = match adjacent {
                Some(adjacent) => adjacent,
                None => find_adjacent(&list_shards(&client, endpoint, &name).await?, &shard)?,
            };
            client
                .merge_shards()
                .stream_name(&name)
                .shard_to_merge(&shard)
                .adjacent_shard_to_merge(&adjacent)
                .send()
                .await
                .api(endpoint)?;
            finish(&client, endpoint, &name, &wait, output, "Merged shards of").await
        }
        StreamCommand::Scale { name, shards, wait } => {
            client
                .update_shard_count()
                .stream_name(&name)
                .target_shard_count(i32::try_from(shards).context("shard count is too large")?)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await
                .api(endpoint)?;
            finish(&client, endpoint, &name, &wait, output, "Scaled").await
        }
        StreamCommand::Retention { name, hours, wait } => {
            let current = summary(&client, endpoint, &name).await?;
            let Some(hours) = hours else {
                return print_stream(&current, None, output);
            };
            let hours = i32::try_from(hours).context("hours is too large")?;
            let now = current.retention_period_hours();
            if hours > now {
                client
                    .increase_stream_retention_period()
                    .stream_name(&name)
                    .retention_period_hours(hours)
                    .send()
                    .await
                    .api(endpoint)?;
            } else if hours < now {
                client
                    .decrease_stream_retention_period()
                    .stream_name(&name)
                    .retention_period_hours(hours)
                    .send()
                    .await
                    .api(endpoint)?;
            }
            finish(
                &client,
                endpoint,
                &name,
                &wait,
                output,
                "Updated retention of",
            )
            .await
        }
    }
}

/// Waits (unless told not to) and prints the stream as it is now.
async fn finish(
    client: &Client,
    endpoint: &str,
    name: &str,
    wait: &WaitArgs,
    output: Output,
    verb: &str,
) -> anyhow::Result<()> {
    let summary = if wait.no_wait {
        summary(client, endpoint, name).await?
    } else {
        wait_until(client, endpoint, name, wait, Some(StreamStatus::Active))
            .await?
            .context("the stream disappeared while we waited for it")?
    };
    if output == Output::Table {
        output::print_line(&format!("{verb} stream {name}"))?;
    }
    print_stream(&summary, None, output)
}

/// Polls until the stream has `status` (or, for `None`, is gone).
async fn wait_until(
    client: &Client,
    endpoint: &str,
    name: &str,
    wait: &WaitArgs,
    status: Option<StreamStatus>,
) -> anyhow::Result<Option<StreamDescriptionSummary>> {
    let deadline = Instant::now() + Duration::from_secs(wait.wait_timeout);
    let target = status
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "deleted".to_string());
    let spinner = output::progress(None, "{spinner} {msg} {elapsed}");
    spinner.set_message(format!("waiting for {name} to be {target}"));
    let result = loop {
        let response = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await;
        match response {
            Ok(response) => {
                let summary = response
                    .stream_description_summary()
                    .cloned()
                    .context("DescribeStreamSummary returned no summary")?;
                if status.as_ref() == Some(summary.stream_status()) {
                    break Some(summary);
                }
            }
            Err(e) if status.is_none() && error_code(&e) == Some("ResourceNotFoundException") => {
                break None;
            }
            Err(e) => return Err(super::errors::api_error(e, endpoint).into()),
        }
        if Instant::now() >= deadline {
            bail!(
                "{name} is not {target} after {}s (see --wait-timeout)",
                wait.wait_timeout
            );
        }
        tokio::time::sleep(WAIT_POLL_INTERVAL).await;
    };
    spinner.finish_and_clear();
    Ok(result)
}

async fn summary(
    client: &Client,
    endpoint: &str,
    name: &str,
) -> anyhow::Result<StreamDescriptionSummary> {
    client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .api(endpoint)?
        .stream_description_summary()
        .cloned()
        .context("DescribeStreamSummary returned no summary")
}

/// Every shard of the stream, closed ones included, in the server's order.
pub async fn list_shards(
    client: &Client,
    endpoint: &str,
    name: &str,
) -> anyhow::Result<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // ListShards takes either the stream name or a NextToken, never both.
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(name),
        };
        let page = request.send().await.api(endpoint)?;
        shards.extend(page.shards().iter().cloned());
        match page.next_token() {
            Some(token) if !page.shards().is_empty() => next_token = Some(token.to_string()),
            _ => break,
        }
    }
    Ok(shards)
}

pub fn hash_range(shard: &Shard) -> anyhow::Result<(u128, u128)> {
    let range = shard
        .hash_key_range()
        .with_context(|| format!("{} has no hash key range", shard.shard_id()))?;
    Ok((
        range.starting_hash_key().parse()?,
        range.ending_hash_key().parse()?,
    ))
}

pub fn is_open(shard: &Shard) -> bool {
    shard
        .sequence_number_range()
        .is_none_or(|r| r.ending_sequence_number().is_none())
}

/// The open shard right above `shard` in hash-key order, else the one right below.
fn find_adjacent(shards: &[Shard], shard: &str) -> anyhow::Result<String> {
    let this = shards
        .iter()
        .find(|s| s.shard_id() == shard)
        .with_context(|| format!("no shard {shard}"))?;
    let (start, end) = hash_range(this)?;
    let open: Vec<(&Shard, (u128, u128))> = shards
        .iter()
        .filter(|s| is_open(s) && s.shard_id() != shard)
        .filter_map(|s| Some((s, hash_range(s).ok()?)))
        .collect();
    let above = open
        .iter()
        .find(|(_, (s, _))| end.checked_add(1) == Some(*s));
    let below = open
        .iter()
        .find(|(_, (_, e))| e.checked_add(1) == Some(start));
    above
        .or(below)
        .map(|(s, _)| s.shard_id().to_string())
        .with_context(|| format!("{shard} has no adjacent open shard"))
}

fn mode(summary: &StreamDescriptionSummary) -> &str {
    summary
        .stream_mode_details()
        .map(|m| m.stream_mode().as_str())
        .unwrap_or("PROVISIONED")
}

fn monitoring(summary: &StreamDescriptionSummary) -> Vec<String> {
    summary
        .enhanced_monitoring()
        .iter()
        .flat_map(|m| m.shard_level_metrics())
        .map(|m| m.as_str().to_string())
        .collect()
}

fn shard_json(shard: &Shard) -> Value {
    let range = shard.hash_key_range();
    let sequences = shard.sequence_number_range();
    json!({
        "shard_id": shard.shard_id(),
        "parent_shard_id": shard.parent_shard_id(),
        "adjacent_parent_shard_id": shard.adjacent_parent_shard_id(),
        "starting_hash_key": range.map(|r| r.starting_hash_key()),
        "ending_hash_key": range.map(|r| r.ending_hash_key()),
        "starting_sequence_number": sequences.map(|r| r.starting_sequence_number()),
        "ending_sequence_number": sequences.and_then(|r| r.ending_sequence_number()),
        "state": if is_open(shard) { "OPEN" } else { "CLOSED" },
    })
}

fn print_stream(
    summary: &StreamDescriptionSummary,
    shards: Option<&[Shard]>,
    output: Output,
) -> anyhow::Result<()> {
    let encryption = summary
        .encryption_type()
        .map(|e| e.as_str())
        .unwrap_or("NONE");
    if output == Output::Json {
        let mut value = json!({
            "stream_name": summary.stream_name(),
            "stream_arn": summary.stream_arn(),
            "status": summary.stream_status().as_str(),
            "mode": mode(summary),
            "open_shard_count": summary.open_shard_count(),
            "retention_period_hours": summary.retention_period_hours(),
            "created": time(Some(summary.stream_creation_timestamp())),
            "encryption": encryption,
            "enhanced_monitoring": monitoring(summary),
            "consumer_count": summary.consumer_count(),
        });
        if let Some(shards) = shards {
            value["shards"] = shards.iter().map(shard_json).collect();
        }
        return print_json(&value);
    }
    let metrics = monitoring(summary);
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    for (key, value) in [
        ("Stream", summary.stream_name().to_string()),
        ("ARN", summary.stream_arn().to_string()),
        ("Status", summary.stream_status().as_str().to_string()),
        ("Mode", mode(summary).to_string()),
        ("Open shards", summary.open_shard_count().to_string()),
        (
            "Retention",
            format!("{} hours", summary.retention_period_hours()),
        ),
        ("Created", time(Some(summary.stream_creation_timestamp()))),
        ("Encryption", encryption.to_string()),
        (
            "Shard metrics",
            if metrics.is_empty() {
                "-".to_string()
            } else {
                metrics.join(", ")
            },
        ),
    ] {
        table.add_row(vec![key.to_string(), value]);
    }
    print_table(&table)?;
    if let Some(shards) = shards {
        output::print_line("")?;
        let mut table = output::table(&["shard", "state", "parents", "hash key range"]);
        for shard in shards {
            let parents: Vec<&str> = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .collect();
            let range = shard
                .hash_key_range()
                .map(|r| format!("{}..{}", r.starting_hash_key(), r.ending_hash_key()))
                .unwrap_or_default();
            table.add_row(vec![
                shard.shard_id().to_string(),
                if is_open(shard) { "OPEN" } else { "CLOSED" }.to_string(),
                if parents.is_empty() {
                    "-".to_string()
                } else {
                    parents.join(",")
                },
                range,
            ]);
        }
        print_table(&table)?;
    }
    Ok(())
}

async fn list(client: &Client, endpoint: &str, output: Output) -> anyhow::Result<()> {
    let mut summaries = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let request = match &next_token {
            Some(token) => client.list_streams().next_token(token),
            None => client.list_streams(),
        };
        let page = request.send().await.api(endpoint)?;
        summaries.extend(page.stream_summaries().iter().cloned());
        match page.next_token() {
            Some(token) if page.has_more_streams() => next_token = Some(token.to_string()),
            _ => break,
        }
    }
    if output == Output::Json {
        let streams: Vec<Value> = summaries
            .iter()
            .map(|s| {
                json!({
                    "stream_name": s.stream_name(),
                    "stream_arn": s.stream_arn(),
                    "status": s.stream_status().as_str(),
                    "mode": s.stream_mode_details().map(|m| m.stream_mode().as_str()),
                    "created": time(s.stream_creation_timestamp()),
                })
            })
            .collect();
        return print_json(&Value::Array(streams));
    }
    if summaries.is_empty() {
        return output::print_line("No streams. Create one with `millstream stream create NAME`.");
    }
    let mut table = output::table(&["name", "status", "mode", "created"]);
    for s in &summaries {
        table.add_row(vec![
            s.stream_name().to_string(),
            s.stream_status().as_str().to_string(),
            s.stream_mode_details()
                .map(|m| m.stream_mode().as_str())
                .unwrap_or("PROVISIONED")
                .to_string(),
            time(s.stream_creation_timestamp()),
        ]);
    }
    print_table(&table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange};

    fn shard(id: &str, start: u128, end: u128, open: bool) -> Shard {
        let mut sequences = SequenceNumberRange::builder().starting_sequence_number("0");
        if !open {
            sequences = sequences.ending_sequence_number("9");
        }
        Shard::builder()
            .shard_id(id)
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key(start.to_string())
                    .ending_hash_key(end.to_string())
                    .build()
                    .unwrap(),
            )
            .sequence_number_range(sequences.build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn merge_finds_the_open_neighbour_above_then_below() {
        let shards = [
            shard("a", 0, 9, true),
            shard("b", 10, 19, true),
            shard("old", 20, 29, false),
            shard("c", 20, 29, true),
        ];
        assert_eq!(find_adjacent(&shards, "a").unwrap(), "b");
        assert_eq!(find_adjacent(&shards, "b").unwrap(), "c");
        assert_eq!(find_adjacent(&shards, "c").unwrap(), "b");
        assert!(find_adjacent(&[shard("a", 0, 9, true)], "a").is_err());
    }
}
