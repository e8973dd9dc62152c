//! `millstream tail` (follow a stream) and `millstream get` (a range of records).
//!
//! `tail` runs one task per shard, each polling GetRecords and handing batches to the
//! printer through a bounded channel (a slow terminal slows the polling, never buffers
//! without bound). When a shard ends in a split or merge, its children are followed from
//! their start once all of their parents that we follow have ended, so a partition key's
//! records print in order across the reshard, as the KCL does it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use anyhow::bail;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::{DateTime, DateTimeFormat};
use aws_sdk_kinesis::types::{Record, ShardFilter, ShardFilterType, ShardIteratorType};
use clap::{Args, ValueEnum};
use serde_json::Value;
use tokio::sync::mpsc;

use super::errors::{ApiResult, api_error, error_code};
use super::output::{self, Payload, print_json, print_table, record_json, time};
use super::stream::list_shards;
use super::{Connection, Output};

/// Pause between GetRecords calls on a shard that has nothing new. AWS allows 5 calls per
/// second per shard; this stays under it and still feels live.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Pause after a throttled call.
const THROTTLE_BACKOFF: Duration = Duration::from_secs(1);
/// Records asked for per GetRecords call.
const GET_RECORDS_LIMIT: i32 = 1000;
/// Batches in flight between the shard tasks and the printer.
const CHANNEL_CAPACITY: usize = 64;

/// Where reading starts: `latest`, `trim-horizon`, a sequence number (get only), an
/// RFC 3339 time such as `2025-01-31T12:00:00Z`, or a duration ago such as `90s`, `5m`,
/// `2h`, `1d`.
#[derive(Clone, Debug, PartialEq)]
pub enum Position {
    Latest,
    TrimHorizon,
    Sequence(String),
    Time(DateTime),
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(text: &str) -> Result<Position, String> {
        match text.to_ascii_lowercase().as_str() {
            "latest" => return Ok(Position::Latest),
            "trim-horizon" | "trim_horizon" | "oldest" => return Ok(Position::TrimHorizon),
            _ => {}
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Position::Sequence(text.to_string()));
        }
        if let Some(ago) = parse_ago(text) {
            let at = SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| format!("{text} ago is before the epoch"))?;
            return Ok(Position::Time(DateTime::from(at)));
        }
        DateTime::from_str(text, DateTimeFormat::DateTime)
            .map(Position::Time)
            .map_err(|_| {
                format!(
                    "`{text}` is not `latest`, `trim-horizon`, a sequence number, an RFC 3339 time (2025-01-31T12:00:00Z) or a duration ago (90s, 5m, 2h, 1d)"
                )
            })
    }
}

fn parse_ago(text: &str) -> Option<Duration> {
    let text = text.strip_suffix(" ago").unwrap_or(text);
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(seconds)?))
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `shard  partition-key  data`, data decoded as text or JSON when it is, else base64.
    Text,
    /// One JSON object per line, with sequence number and arrival time.
    Json,
}

#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    connection: Connection,
    stream: String,
    /// Where to start: `latest` (new records only), `trim-horizon` (the oldest kept), an
    /// RFC 3339 time, or a duration ago (`5m`).
    #[arg(long, default_value = "latest")]
    from: Position,
    /// Line format [default: text, or json with --output json].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Exit after printing this many records.
    #[arg(long, short = 'n', value_name = "COUNT")]
    max_records: Option<u64>,
    /// Exit once every shard is caught up instead of waiting for new records.
    #[arg(long)]
    no_follow: bool,
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    connection: Connection,
    stream: String,
    /// Read only this shard (repeatable) [default: every shard].
    #[arg(long, value_name = "SHARD_ID")]
    shard: Vec<String>,
    /// First record: `trim-horizon`, a sequence number, an RFC 3339 time or a duration ago.
    #[arg(long, default_value = "trim-horizon")]
    from: Position,
    /// Last sequence number to include.
    #[arg(long, value_name = "SEQUENCE_NUMBER")]
    to: Option<String>,
    /// Most records to print, over all shards.
    #[arg(long, default_value_t = 100)]
    limit: u64,
}

async fn iterator(
    client: &Client,
    endpoint: &str,
    stream: &str,
    shard: &str,
    from: &Position,
) -> anyhow::Result<Option<String>> {
    let request = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard);
    let request = match from {
        Position::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
        Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Position::Sequence(sequence) => request
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(sequence),
        Position::Time(at) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(*at),
    };
    Ok(request
        .send()
        .await
        .api(endpoint)?
        .shard_iterator()
        .map(str::to_string))
}

enum Event {
    Records(String, Vec<Record>),
    /// The shard was closed by a reshard and fully read; its children, with their parents.
    Ended(String, Vec<(String, Vec<String>)>),
    CaughtUp,
    Failed(anyhow::Error),
}

/// Polls one shard until it ends (or, with `no_follow`, is caught up).
async fn follow_shard(
    client: Client,
    endpoint: String,
    stream: String,
    shard: String,
    from: Position,
    no_follow: bool,
    events: mpsc::Sender<Event>,
) {
    let result = async {
        let mut next = iterator(&client, &endpoint, &stream, &shard, &from).await?;
        let mut last_sequence: Option<String> = None;
        while let Some(current) = next.take() {
            let response = client
                .get_records()
                .shard_iterator(&current)
                .limit(GET_RECORDS_LIMIT)
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(e) if error_code(&e) == Some("ProvisionedThroughputExceededException") => {
                    tokio::time::sleep(THROTTLE_BACKOFF).await;
                    next = Some(current);
                    continue;
                }
                Err(e) if error_code(&e) == Some("ExpiredIteratorException") => {
                    // Resume right after the last record seen (or where we started).
                    let resume = match &last_sequence {
                        Some(sequence) => client
                            .get_shard_iterator()
                            .stream_name(&stream)
                            .shard_id(&shard)
                            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                            .starting_sequence_number(sequence)
                            .send()
                            .await
                            .api(&endpoint)?
                            .shard_iterator()
                            .map(str::to_string),
                        None => iterator(&client, &endpoint, &stream, &shard, &from).await?,
                    };
                    next = resume;
                    continue;
                }
                Err(e) => return Err(api_error(e, &endpoint).into()),
            };
            let records = response.records().to_vec();
            let caught_up = records.is_empty() && response.millis_behind_latest() == Some(0);
            if let Some(last) = records.last() {
                last_sequence = Some(last.sequence_number().to_string());
            }
            if !records.is_empty()
                && events
                    .send(Event::Records(shard.clone(), records))
                    .await
                    .is_err()
            {
                return Ok(());
            }
            next = response.next_shard_iterator().map(str::to_string);
            if next.is_none() {
                let children = response
                    .child_shards()
                    .iter()
                    .map(|c| (c.shard_id().to_string(), c.parent_shards().to_vec()))
                    .collect();
                let _ = events.send(Event::Ended(shard.clone(), children)).await;
                return Ok(());
            }
            if caught_up {
                if no_follow {
                    let _ = events.send(Event::CaughtUp).await;
                    return Ok(());
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if let Err(e) = result {
        let _ = events
            .send(Event::Failed(e.context(format!("reading {shard}"))))
            .await;
    }
}

/// Which shards to start, and when: a shard starts once every parent we know of ended.
struct Schedule {
    parents: BTreeMap<String, Vec<String>>,
    started: BTreeSet<String>,
    ended: BTreeSet<String>,
}

impl Schedule {
    fn ready(&mut self) -> Vec<String> {
        let ready: Vec<String> = self
            .parents
            .iter()
            .filter(|(shard, parents)| {
                !self.started.contains(*shard)
                    && parents
                        .iter()
                        .all(|p| !self.parents.contains_key(p) || self.ended.contains(p))
            })
            .map(|(shard, _)| shard.clone())
            .collect();
        self.started.extend(ready.iter().cloned());
        ready
    }
}

pub async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    let client = connection.client();
    let endpoint = connection.endpoint.clone();
    if matches!(args.from, Position::Sequence(_)) {
        bail!(
            "tail starts at `latest`, `trim-horizon` or a time; use `millstream get --from SEQUENCE` for a sequence number"
        );
    }
    let format = args.format.unwrap_or(match connection.output {
        Output::Json => Format::Json,
        Output::Table => Format::Text,
    });
    // From LATEST only open shards can get new records; otherwise closed shards still
    // hold records to print before their children's.
    let shards = if args.from == Position::Latest {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = match &next_token {
                Some(token) => client.list_shards().next_token(token),
                None => client.list_shards().stream_name(&args.stream).shard_filter(
                    ShardFilter::builder()
                        .r#type(ShardFilterType::AtLatest)
                        .build()?,
                ),
            };
            let page = request.send().await.api(&endpoint)?;
            shards.extend(page.shards().iter().cloned());
            match page.next_token() {
                Some(token) if !page.shards().is_empty() => next_token = Some(token.to_string()),
                _ => break,
            }
        }
        shards
    } else {
        list_shards(&client, &endpoint, &args.stream).await?
    };
    let mut schedule = Schedule {
        parents: shards
            .iter()
            .map(|s| {
                let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_string)
                    .collect();
                (s.shard_id().to_string(), parents)
            })
            .collect(),
        started: BTreeSet::new(),
        ended: BTreeSet::new(),
    };
    let (sender, mut events) = mpsc::channel(CHANNEL_CAPACITY);
    let mut running = 0usize;
    let spawn = |shard: String, from: Position, running: &mut usize| {
        *running += 1;
        tokio::spawn(follow_shard(
            client.clone(),
            endpoint.clone(),
            args.stream.clone(),
            shard,
            from,
            args.no_follow,
            sender.clone(),
        ));
    };
    for shard in schedule.ready() {
        spawn(shard, args.from.clone(), &mut running);
    }
    let mut printed = 0u64;
    while running > 0 {
        let Some(event) = events.recv().await else {
            break;
        };
        match event {
            Event::Records(shard, records) => {
                for record in &records {
                    let line = match format {
                        Format::Json => record_json(&shard, record).to_string(),
                        Format::Text => {
                            let data = record.data().as_ref();
                            format!(
                                "{shard}  {}  {}",
                                record.partition_key().unwrap_or_default(),
                                Payload::decode(data).to_line(data)
                            )
                        }
                    };
                    output::print_line(&line)?;
                    printed += 1;
                    if args.max_records.is_some_and(|max| printed >= max) {
                        return Ok(());
                    }
                }
            }
            Event::Ended(shard, children) => {
                running -= 1;
                schedule.ended.insert(shard);
                for (child, parents) in children {
                    schedule.parents.entry(child).or_insert(parents);
                }
                // Children hold only records written after the reshard: all of them are new.
                for child in schedule.ready() {
                    spawn(child, Position::TrimHorizon, &mut running);
                }
            }
            Event::CaughtUp => running -= 1,
            Event::Failed(e) => return Err(e),
        }
    }
    Ok(())
}

pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    let client = connection.client();
    let endpoint = connection.endpoint.as_str();
    let shards: Vec<String> = if args.shard.is_empty() {
        list_shards(&client, endpoint, &args.stream)
            .await?
            .iter()
            .map(|s| s.shard_id().to_string())
            .collect()
    } else {
        args.shard.clone()
    };
    if let Some(to) = &args.to
        && !to.bytes().all(|b| b.is_ascii_digit())
    {
        bail!("--to must be a sequence number, got `{to}`");
    }
    if matches!(args.from, Position::Sequence(_)) && args.shard.len() != 1 {
        bail!("a sequence number belongs to one shard: name it with --shard");
    }
    let mut rows: Vec<(String, Record)> = Vec::new();
    'shards: for shard in &shards {
        let mut next = iterator(&client, endpoint, &args.stream, shard, &args.from).await?;
        while let Some(current) = next.take() {
            let response = client
                .get_records()
                .shard_iterator(&current)
                .limit(GET_RECORDS_LIMIT)
                .send()
                .await
                .api(endpoint)?;
            for record in response.records() {
                if let Some(to) = &args.to
                    && sequence_after(record.sequence_number(), to)
                {
                    continue 'shards;
                }
                rows.push((shard.clone(), record.clone()));
                if rows.len() as u64 >= args.limit {
                    break 'shards;
                }
            }
            let caught_up =
                response.records().is_empty() && response.millis_behind_latest() == Some(0);
            if caught_up {
                break;
            }
            next = response.next_shard_iterator().map(str::to_string);
        }
    }
    if connection.output == Output::Json {
        let records: Vec<Value> = rows
            .iter()
            .map(|(shard, record)| record_json(shard, record))
            .collect();
        return print_json(&Value::Array(records));
    }
    let mut table = output::table(&[
        "shard",
        "sequence number",
        "arrival",
        "partition key",
        "data",
    ]);
    for (shard, record) in &rows {
        let data = record.data().as_ref();
        table.add_row(vec![
            shard.clone(),
            record.sequence_number().to_string(),
            time(record.approximate_arrival_timestamp()),
            record.partition_key().unwrap_or_default().to_string(),
            Payload::decode(data).to_line(data),
        ]);
    }
    print_table(&table)
}

/// Whether decimal sequence number `a` is greater than `b` (both may exceed 128 bits).
fn sequence_after(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len() > b.len() || (a.len() == b.len() && a > b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!("latest".parse::<Position>().unwrap(), Position::Latest);
        assert_eq!(
            "TRIM_HORIZON".parse::<Position>().unwrap(),
            Position::TrimHorizon
        );
        assert_eq!(
            "4965".parse::<Position>().unwrap(),
            Position::Sequence("4965".into())
        );
        assert_eq!(
            "2025-01-31T12:00:00Z".parse::<Position>().unwrap(),
            Position::Time(DateTime::from_secs(1_738_324_800))
        );
        let Position::Time(t) = "5m".parse::<Position>().unwrap() else {
            panic!("a duration ago is a time");
        };
        let now = DateTime::from(SystemTime::now()).secs();
        assert!((now - 300 - t.secs()).abs() <= 1);
        assert!("yesterday".parse::<Position>().is_err());
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert!(sequence_after("100", "99"));
        assert!(!sequence_after("99", "100"));
        assert!(sequence_after("0100", "099"));
        assert!(!sequence_after("5", "5"));
    }
}
