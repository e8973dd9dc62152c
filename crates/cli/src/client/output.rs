//! Printing: tables for people, JSON for scripts, record payloads decoded for reading,
//! and progress on stderr only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use aws_sdk_kinesis::primitives::{DateTime, DateTimeFormat};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use comfy_table::{Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

/// A plain, column-aligned table (no borders): easy to read and to `grep`/`awk`.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(header.iter().map(|h| h.to_uppercase()));
    table
}

/// Writes `text` and a newline to stdout. A closed pipe (`| head`) ends the command
/// quietly, like other Unix tools.
pub fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

pub fn print_json(value: &Value) -> anyhow::Result<()> {
    print_line(&serde_json::to_string_pretty(value)?)
}

pub fn print_table(table: &Table) -> anyhow::Result<()> {
    // comfy-table pads the last column too; trailing blanks only get in the way.
    let text: Vec<String> = table
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_string())
        .collect();
    print_line(&text.join("\n"))
}

pub fn time(value: Option<&DateTime>) -> String {
    value
        .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_else(|| "-".to_string())
}

/// How a record's payload reads.
pub enum Payload<'a> {
    /// A JSON object or array.
    Json(Value),
    /// UTF-8 text.
    Text(&'a str),
    /// Anything else, shown base64-encoded.
    Binary,
}

impl<'a> Payload<'a> {
    pub fn decode(data: &'a [u8]) -> Payload<'a> {
        let Ok(text) = std::str::from_utf8(data) else {
            return Payload::Binary;
        };
        // Text with control characters (other than line breaks and tabs) is most likely
        // binary that happens to be valid UTF-8.
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Payload::Binary;
        }
        let trimmed = text.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(value) = serde_json::from_str::<Value>(text)
        {
            return Payload::Json(value);
        }
        Payload::Text(text)
    }

    /// One line for people: JSON compacted, text with line breaks escaped, binary as
    /// `base64:…`.
    pub fn to_line(&self, data: &[u8]) -> String {
        match self {
            Payload::Json(value) => value.to_string(),
            Payload::Text(text) => text
                .replace('\\', "\\\\")
                .replace('\n', "\\n")
                .replace('\r', "\\r"),
            Payload::Binary => format!("base64:{}", STANDARD.encode(data)),
        }
    }

    /// `(encoding, data)` for JSON output: the parsed JSON value, the text, or base64.
    pub fn to_json(&self, data: &[u8]) -> (&'static str, Value) {
        match self {
            Payload::Json(value) => ("json", value.clone()),
            Payload::Text(text) => ("text", json!(text)),
            Payload::Binary => ("base64", json!(STANDARD.encode(data))),
        }
    }
}

/// One record as a JSON object (the shape of `tail --format json` lines and `get --output
/// json` elements).
pub fn record_json(shard_id: &str, record: &aws_sdk_kinesis::types::Record) -> Value {
    let data = record.data().as_ref();
    let (encoding, value) = Payload::decode(data).to_json(data);
    json!({
        "shard_id": shard_id,
        "sequence_number": record.sequence_number(),
        "partition_key": record.partition_key(),
        "arrival_timestamp": time(record.approximate_arrival_timestamp()),
        "encoding": encoding,
        "data": value,
    })
}

/// A progress bar on stderr when it is a terminal; hidden (but still counting) otherwise.
pub fn progress(total: Option<u64>, template: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), target),
        None => ProgressBar::with_draw_target(None, target),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
