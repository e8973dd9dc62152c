//! Observability and operations: `/metrics` after known traffic, SIGTERM under load, and
//! progress bars that go to a terminal and never into piped output.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{MetricsName, PutRecordsRequestEntry, ShardIteratorType};

use crate::cli_commands::{millstream, wait_output};
use crate::support::TestServer;

pub fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("content-type: text/plain; version=0.0.4"),
        "{response}"
    );
    response
}

/// The value of the sample `name{labels}`, where `labels` must all be present.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse().ok()).flatten()
        })
}

#[tokio::test]
async fn metrics_count_known_traffic_exactly() {
    let server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("metered")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    for data in ["abc", "defgh"] {
        client
            .put_record()
            .stream_name("metered")
            .partition_key("k")
            .data(Blob::new(data))
            .send()
            .await
            .unwrap();
    }
    let entries: Vec<PutRecordsRequestEntry> = (0..3)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{i}"))
                .data(Blob::new(vec![b'x'; 10]))
                .build()
                .unwrap()
        })
        .collect();
    client
        .put_records()
        .stream_name("metered")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let iterator = client
        .get_shard_iterator()
        .stream_name("metered")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let records = client
        .get_records()
        .shard_iterator(iterator.shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(records.records().len(), 5);

    let text = scrape(server.port);
    let stream = [("stream", "metered")];
    let value = |name: &str| sample(&text, name, &stream);
    assert_eq!(value("kinesis_incoming_records_total"), Some(5.0), "{text}");
    assert_eq!(value("kinesis_incoming_bytes_total"), Some(38.0));
    assert_eq!(value("kinesis_put_record_success_total"), Some(2.0));
    assert_eq!(value("kinesis_put_record_bytes_total"), Some(8.0));
    assert_eq!(value("kinesis_put_records_success_total"), Some(1.0));
    assert_eq!(value("kinesis_put_records_total_records_total"), Some(3.0));
    assert_eq!(
        value("kinesis_put_records_successful_records_total"),
        Some(3.0)
    );
    assert_eq!(value("kinesis_put_records_bytes_total"), Some(30.0));
    assert_eq!(value("kinesis_put_record_latency_seconds_count"), Some(2.0));
    assert_eq!(
        value("kinesis_put_records_latency_seconds_count"),
        Some(1.0)
    );
    // The stream label of GetRecords traffic comes from the shard iterator.
    assert_eq!(value("kinesis_outgoing_records_total"), Some(5.0));
    assert_eq!(value("kinesis_outgoing_bytes_total"), Some(38.0));
    assert_eq!(value("kinesis_get_records_success_total"), Some(1.0));
    assert_eq!(
        value("kinesis_get_records_latency_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        value("kinesis_get_records_iterator_age_milliseconds"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "kinesis_shard_incoming_records_total", &[]),
        None,
        "no shard-level series without enhanced monitoring"
    );
    assert!(sample(&text, "millstream_storage_segments", &[]).unwrap() >= 1.0);
    assert!(sample(&text, "millstream_storage_segment_bytes", &[]).unwrap() > 38.0);
    assert!(sample(&text, "millstream_storage_journal_syncs_total", &[]).unwrap() >= 3.0);
    assert!(sample(&text, "millstream_storage_disk_bytes", &[]).unwrap() > 0.0);
    // Five small records: their segment copies are still waiting, read from the cache.
    assert!(sample(&text, "millstream_storage_pending_copy_bytes", &[]).unwrap() > 38.0);
    // One append per PutRecord, one for the PutRecords (one shard): three per stage.
    for stage in [
        "mailbox",
        "journal_queue",
        "group_commit",
        "completion",
        "total",
    ] {
        let labels = [("stage", stage)];
        assert_eq!(
            sample(
                &text,
                "millstream_storage_append_stage_appends_total",
                &labels
            ),
            Some(3.0),
            "{stage}"
        );
        let micros = sample(
            &text,
            "millstream_storage_append_stage_microseconds_total",
            &labels,
        );
        assert!(micros.is_some(), "{stage}");
    }
    let micros = |stage| {
        sample(
            &text,
            "millstream_storage_append_stage_microseconds_total",
            &[("stage", stage)],
        )
        .unwrap()
    };
    // A group commit holds an fdatasync; the total holds the group commit.
    assert!(micros("group_commit") > 0.0);
    assert!(micros("total") >= micros("group_commit"));

    client
        .enable_enhanced_monitoring()
        .stream_name("metered")
        .shard_level_metrics(MetricsName::IncomingRecords)
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .stream_name("metered")
        .partition_key("k")
        .data(Blob::new("z"))
        .send()
        .await
        .unwrap();
    let text = scrape(server.port);
    let shard = [("stream", "metered"), ("shard", "shardId-000000000000")];
    assert_eq!(
        sample(&text, "kinesis_shard_incoming_records_total", &shard),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "kinesis_shard_incoming_bytes_total", &shard),
        None,
        "only the enabled shard-level metrics"
    );
    assert_eq!(
        sample(
            &text,
            "kinesis_incoming_records_total",
            &[("stream", "metered")]
        ),
        Some(6.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_stops_promptly_and_keeps_every_acknowledged_record() {
    let mut server = TestServer::start();
    let client = server.client();
    client
        .create_stream()
        .stream_name("busy")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, acks) = (client.clone(), acks.clone());
            tokio::spawn(async move {
                for i in 0u64.. {
                    let data = format!("{w}-{i}");
                    let Ok(out) = client
                        .put_record()
                        .stream_name("busy")
                        .partition_key(&data)
                        .data(Blob::new(data.clone()))
                        .send()
                        .await
                    else {
                        break;
                    };
                    let _ = acks.send((out.sequence_number().to_string(), data));
                }
            })
        })
        .collect();
    drop(acks);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 200 {
        acknowledged.push(acked.recv().await.expect("writers are running"));
    }
    let took = tokio::task::block_in_place(|| server.terminate());
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    for writer in writers {
        writer.await.unwrap();
    }
    while let Some(ack) = acked.recv().await {
        acknowledged.push(ack);
    }
    tokio::task::block_in_place(|| server.restart_after_terminate());
    let client = server.client();
    let mut stored = std::collections::HashMap::new();
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name("busy")
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        while let Some(current) = iterator {
            let page = client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .unwrap();
            for record in page.records() {
                stored.insert(
                    record.sequence_number().to_string(),
                    record.data().as_ref().to_vec(),
                );
            }
            iterator = if page.millis_behind_latest() == Some(0) && page.records().is_empty() {
                None
            } else {
                page.next_shard_iterator().map(str::to_string)
            };
        }
    }
    let acknowledged = Arc::new(acknowledged);
    for (sequence, data) in acknowledged.iter() {
        assert_eq!(
            stored.get(sequence).map(Vec::as_slice),
            Some(data.as_bytes()),
            "acknowledged record {sequence} ({data}) is readable after the restart"
        );
    }
}

/// `script` (util-linux, on every Debian system) gives the command a pseudo-terminal.
#[test]
fn progress_is_drawn_on_a_terminal_and_never_mixed_into_piped_output() {
    let server = TestServer::start();
    let created = millstream(&server, &["stream", "create", "bulk"], None);
    assert!(created.status.success());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.txt");
    let lines: String = (0..5000).map(|i| format!("record number {i}\n")).collect();
    std::fs::write(&input, lines).unwrap();
    let stdout_file = dir.path().join("stdout.txt");
    let command = format!(
        "'{}' put bulk --file '{}' > '{}'",
        env!("CARGO_BIN_EXE_millstream"),
        input.display(),
        stdout_file.display()
    );
    let terminal = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("MILLSTREAM_ENDPOINT", &server.endpoint)
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("`script` from util-linux runs the command on a pseudo-terminal");
    let terminal = wait_output(terminal);
    assert!(terminal.status.success(), "{terminal:?}");
    let drawn = String::from_utf8_lossy(&terminal.stdout);
    assert!(drawn.contains("ETA"), "a bar with an ETA: {drawn:?}");
    assert!(drawn.contains("records"), "{drawn:?}");
    let piped = std::fs::read_to_string(&stdout_file).unwrap();
    assert!(
        piped.starts_with("Put 5000 records (")
            && !piped.contains('\u{1b}')
            && !piped.contains("ETA"),
        "stdout holds only the result: {piped:?}"
    );

    // With stderr a pipe, nothing is drawn at all.
    let output = millstream(
        &server,
        &["put", "bulk", "--file", input.to_str().unwrap()],
        None,
    );
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn log_lines_carry_the_request_id_of_the_response_and_bad_log_filters_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("millstream.toml");
    std::fs::write(&config, "log = \"millstream_server=debug,warn\"\n").unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args(["serve", "--port", "0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("MILLSTREAM_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    let response = crate::support::json_request(
        port,
        "DescribeStreamSummary",
        serde_json::json!({"StreamName": "absent"}),
    );
    assert_eq!(response.status, 400);
    let request_id = response.header("x-amzn-requestid").unwrap().to_string();
    server.kill().unwrap();
    let output = wait_output(server);
    let logs = String::from_utf8_lossy(&output.stderr);
    let failed = logs
        .lines()
        .find(|l| l.contains("request failed"))
        .unwrap_or_else(|| panic!("a debug line for the failed request: {logs}"));
    assert!(
        failed.contains(&request_id),
        "{failed} carries {request_id}"
    );

    std::fs::write(&config, "log = \"millstream=notalevel\"\n").unwrap();
    let rejected = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args(["serve", "--port", "0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("MILLSTREAM_LOG")
        .output()
        .unwrap();
    assert!(!rejected.status.success());
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert!(
        stderr.contains("log: `millstream=notalevel` is not a valid log filter"),
        "{stderr}"
    );
}
