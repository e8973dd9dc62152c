//! `millstream put`: records from arguments, files or stdin, in PutRecords batches.
//!
//! Batches go out one at a time, in input order, so records with the same partition key
//! keep their order unless an entry fails and is retried (as with any Kinesis producer).
//! Failed entries (throttled or internal) are retried with backoff a bounded number of
//! times; the command fails if any record is left unstored.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use indicatif::ProgressBar;
use serde_json::{Value, json};

use super::errors::ApiResult;
use super::output::{self, print_json, print_table};
use super::{Connection, Output};

/// AWS's PutRecords limits: 500 entries and 5 MiB of keys and data per call.
const BATCH_RECORDS_MAX: usize = 500;
const BATCH_BYTES_MAX: usize = 5 << 20;
/// A failed entry is retried this many times before the command gives up on it.
const RETRIES_MAX: u32 = 8;
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Longest input line accepted (a Kinesis record holds at most 10 MiB; base64 adds a third).
const LINE_BYTES_MAX: u64 = 14 << 20;

#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    connection: Connection,
    /// Stream to put into.
    stream: String,
    /// Records given on the command line (each argument is one record). Without any, and
    /// without --file, records are read from stdin.
    records: Vec<String>,
    /// Read records from a file, one per line (repeatable; `-` is stdin). Empty lines are
    /// skipped.
    #[arg(long, short, value_name = "PATH")]
    file: Vec<PathBuf>,
    /// Use this partition key for every record.
    #[arg(long, short = 'k', conflicts_with = "key_field")]
    partition_key: Option<String>,
    /// Take the partition key from this field of each record, which must be a JSON object
    /// (`a.b` for nested fields). Without this or --partition-key, keys are random.
    #[arg(long, value_name = "FIELD")]
    key_field: Option<String>,
    /// Inputs are base64: decode each one to get the record's bytes.
    #[arg(long)]
    base64: bool,
}

/// Where records come from, read lazily so bulk input never sits in memory.
struct Source {
    readers: Vec<(String, Box<dyn BufRead>)>,
    arguments: std::vec::IntoIter<String>,
    line: Vec<u8>,
    number: u64,
    /// Bytes consumed from files, for the progress bar.
    consumed: u64,
}

impl Source {
    fn new(args: &PutArgs) -> anyhow::Result<(Source, Option<u64>)> {
        let mut readers: Vec<(String, Box<dyn BufRead>)> = Vec::new();
        let mut total = Some(0u64);
        let stdin_only = args.records.is_empty() && args.file.is_empty();
        for path in &args.file {
            if path.as_os_str() == "-" {
                readers.push(("stdin".into(), Box::new(std::io::stdin().lock())));
                total = None;
            } else {
                let file =
                    File::open(path).with_context(|| format!("opening {}", path.display()))?;
                let len = file.metadata().map(|m| m.len()).ok();
                total = total.zip(len).map(|(t, l)| t + l);
                readers.push((
                    path.display().to_string(),
                    Box::new(BufReader::with_capacity(1 << 20, file)),
                ));
            }
        }
        if stdin_only {
            readers.push(("stdin".into(), Box::new(std::io::stdin().lock())));
            total = None;
        }
        if args.file.is_empty() {
            total = None;
        }
        let source = Source {
            readers,
            arguments: args.records.clone().into_iter(),
            line: Vec::new(),
            number: 0,
            consumed: 0,
        };
        Ok((source, total))
    }

    /// The next record's raw input, or `None` when every input is exhausted.
    fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(argument) = self.arguments.next() {
            self.number += 1;
            return Ok(Some(argument.into_bytes()));
        }
        while let Some((name, reader)) = self.readers.first_mut() {
            self.line.clear();
            let read = reader
                .by_ref()
                .take(LINE_BYTES_MAX)
                .read_until(b'\n', &mut self.line)
                .with_context(|| format!("reading {name}"))?;
            if read == 0 {
                self.readers.remove(0);
                continue;
            }
            self.consumed += read as u64;
            if self.line.last() != Some(&b'\n') && read as u64 == LINE_BYTES_MAX {
                bail!("{name}: a line is longer than {LINE_BYTES_MAX} bytes");
            }
            while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                self.line.pop();
            }
            if self.line.is_empty() {
                continue;
            }
            self.number += 1;
            return Ok(Some(self.line.clone()));
        }
        Ok(None)
    }
}

fn partition_key(args: &PutArgs, data: &[u8], number: u64) -> anyhow::Result<String> {
    if let Some(key) = &args.partition_key {
        return Ok(key.clone());
    }
    let Some(field) = &args.key_field else {
        return Ok(uuid::Uuid::new_v4().simple().to_string());
    };
    let value: Value = serde_json::from_slice(data)
        .with_context(|| format!("record {number} is not JSON, so it has no `{field}` field"))?;
    let found = field
        .split('.')
        .try_fold(&value, |v, part| v.get(part))
        .with_context(|| format!("record {number} has no field `{field}`"))?;
    Ok(match found {
        Value::String(text) => text.clone(),
        Value::Null | Value::Object(_) | Value::Array(_) => {
            bail!("record {number}: field `{field}` must be a string, number or boolean")
        }
        other => other.to_string(),
    })
}

#[derive(Default)]
struct ShardTotals {
    records: u64,
    last_sequence_number: String,
}

#[derive(Default)]
struct Batch {
    entries: Vec<PutRecordsRequestEntry>,
    bytes: usize,
}

impl Batch {
    fn take(&mut self) -> Batch {
        std::mem::take(self)
    }
}

pub async fn run(args: PutArgs) -> anyhow::Result<()> {
    let client = args.connection.client();
    let (mut source, total_bytes) = Source::new(&args)?;
    let bar = match total_bytes {
        Some(total) => output::progress(
            Some(total),
            "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        ),
        None => output::progress(None, "{spinner} {pos} records {per_sec} {elapsed} {msg}"),
    };
    let started = Instant::now();
    let mut shards: BTreeMap<String, ShardTotals> = BTreeMap::new();
    let (mut stored, mut stored_bytes) = (0u64, 0u64);
    let mut batch = Batch::default();
    while let Some(raw) = source.next()? {
        let record = if args.base64 {
            STANDARD
                .decode(&raw)
                .with_context(|| format!("record {} is not valid base64", source.number))?
        } else {
            raw
        };
        let key = partition_key(&args, &record, source.number)?;
        let size = key.len() + record.len();
        if batch.entries.len() == BATCH_RECORDS_MAX || batch.bytes + size > BATCH_BYTES_MAX {
            let (n, b) = send(&client, &args, batch.take(), &mut shards).await?;
            stored += n;
            stored_bytes += b;
            update(&bar, total_bytes, &source, stored);
        }
        batch.entries.push(
            PutRecordsRequestEntry::builder()
                .data(Blob::new(record))
                .partition_key(key)
                .build()?,
        );
        batch.bytes += size;
    }
    if !batch.entries.is_empty() {
        let (n, b) = send(&client, &args, batch.take(), &mut shards).await?;
        stored += n;
        stored_bytes += b;
        update(&bar, total_bytes, &source, stored);
    }
    bar.finish_and_clear();
    report(&args, &shards, stored, stored_bytes, started.elapsed())
}

fn update(bar: &ProgressBar, total_bytes: Option<u64>, source: &Source, stored: u64) {
    match total_bytes {
        Some(_) => {
            bar.set_position(source.consumed);
            bar.set_message(format!("{stored} records"));
        }
        None => bar.set_position(stored),
    }
}

/// Sends one batch, retrying failed entries; returns (records, data bytes) stored.
async fn send(
    client: &Client,
    args: &PutArgs,
    batch: Batch,
    shards: &mut BTreeMap<String, ShardTotals>,
) -> anyhow::Result<(u64, u64)> {
    let endpoint = &args.connection.endpoint;
    let mut pending = batch.entries;
    let mut backoff = RETRY_BACKOFF_FIRST;
    let (mut stored, mut bytes) = (0, 0);
    for attempt in 0..=RETRIES_MAX {
        let response = client
            .put_records()
            .stream_name(&args.stream)
            .set_records(Some(pending.clone()))
            .send()
            .await
            .api(endpoint)?;
        let mut failed = Vec::new();
        let mut last_error = None;
        for (entry, result) in pending.into_iter().zip(response.records()) {
            match (result.shard_id(), result.sequence_number()) {
                (Some(shard), Some(sequence)) => {
                    stored += 1;
                    bytes += entry.data().as_ref().len() as u64;
                    let totals = shards.entry(shard.to_string()).or_default();
                    totals.records += 1;
                    totals.last_sequence_number = sequence.to_string();
                }
                _ => {
                    last_error = Some(format!(
                        "{}: {}",
                        result.error_code().unwrap_or("UnknownError"),
                        result.error_message().unwrap_or("")
                    ));
                    failed.push(entry);
                }
            }
        }
        if failed.is_empty() {
            return Ok((stored, bytes));
        }
        if attempt == RETRIES_MAX {
            bail!(
                "{} records were not stored after {RETRIES_MAX} retries (last error {}); {stored} of this batch were",
                failed.len(),
                last_error.unwrap_or_default()
            );
        }
        pending = failed;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
    }
    unreachable!("the last attempt returns or fails")
}

fn report(
    args: &PutArgs,
    shards: &BTreeMap<String, ShardTotals>,
    stored: u64,
    bytes: u64,
    took: Duration,
) -> anyhow::Result<()> {
    if args.connection.output == Output::Json {
        let shards: Vec<Value> = shards
            .iter()
            .map(|(id, t)| {
                json!({
                    "shard_id": id,
                    "records": t.records,
                    "last_sequence_number": t.last_sequence_number,
                })
            })
            .collect();
        return print_json(&json!({
            "stream_name": args.stream,
            "records": stored,
            "bytes": bytes,
            "seconds": took.as_secs_f64(),
            "shards": shards,
        }));
    }
    let rate = stored as f64 / took.as_secs_f64().max(1e-9);
    output::print_line(&format!(
        "Put {stored} records ({bytes} bytes) to {} in {:.2}s ({rate:.0} records/s)",
        args.stream,
        took.as_secs_f64()
    ))?;
    if !shards.is_empty() {
        let mut table = output::table(&["shard", "records", "last sequence number"]);
        for (id, totals) in shards {
            table.add_row(vec![
                id.clone(),
                totals.records.to_string(),
                totals.last_sequence_number.clone(),
            ]);
        }
        print_table(&table)?;
    }
    Ok(())
}
