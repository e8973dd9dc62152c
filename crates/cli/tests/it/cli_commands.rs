//! The `millstream` client commands, run as subprocesses against a real server.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::support::TestServer;

const DEADLINE: Duration = Duration::from_secs(30);

pub fn millstream(server: &TestServer, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args(args)
        .env("MILLSTREAM_ENDPOINT", &server.endpoint)
        .env_remove("MILLSTREAM_OUTPUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run millstream");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("write stdin");
    }
    drop(input);
    wait_output(child)
}

/// Waits for a child with a deadline, without sleeping.
pub fn wait_output(child: std::process::Child) -> Output {
    let (done, result) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match result.recv_timeout(DEADLINE) {
        Ok(output) => output.expect("wait for millstream"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("millstream (pid {pid}) did not finish within {DEADLINE:?}");
        }
    }
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).expect("--output json prints JSON")
}

fn json_lines(output: &Output) -> Vec<Value> {
    ok(output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn create_put_from_stdin_tail_and_describe() {
    let server = TestServer::start();
    let created = json(&millstream(
        &server,
        &[
            "stream", "create", "clicks", "--shards", "2", "--output", "json",
        ],
        None,
    ));
    assert_eq!(created["stream_name"], "clicks");
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["open_shard_count"], 2);

    let put = json(&millstream(
        &server,
        &[
            "put",
            "clicks",
            "--partition-key",
            "user-1",
            "--output",
            "json",
        ],
        Some(b"hello\n{\"page\":\"/home\"}\n\nthird line\n"),
    ));
    assert_eq!(put["records"], 3, "the empty line is skipped");
    assert_eq!(
        put["shards"].as_array().unwrap().len(),
        1,
        "one key, one shard"
    );

    let lines = json_lines(&millstream(
        &server,
        &[
            "tail",
            "clicks",
            "--from",
            "trim-horizon",
            "--format",
            "json",
            "-n",
            "3",
        ],
        None,
    ));
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["data"], "hello");
    assert_eq!(lines[0]["encoding"], "text");
    assert_eq!(lines[1]["encoding"], "json");
    assert_eq!(lines[1]["data"]["page"], "/home");
    assert_eq!(lines[2]["data"], "third line");
    assert!(lines.iter().all(|l| l["partition_key"] == "user-1"));

    let text = ok(&millstream(
        &server,
        &["tail", "clicks", "--from", "trim-horizon", "--no-follow"],
        None,
    ));
    let text_lines: Vec<&str> = text.lines().collect();
    assert_eq!(text_lines.len(), 3, "{text}");
    assert!(text_lines[0].ends_with("  user-1  hello"), "{text}");
    assert!(text_lines[1].ends_with(r#"{"page":"/home"}"#), "{text}");

    let described = json(&millstream(
        &server,
        &["stream", "describe", "clicks", "--output", "json"],
        None,
    ));
    let shards = described["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    assert_eq!(shards[0]["shard_id"], "shardId-000000000000");
    assert_eq!(shards[0]["state"], "OPEN");
    assert_eq!(shards[1]["ending_hash_key"], u128::MAX.to_string());

    let table = ok(&millstream(
        &server,
        &["stream", "describe", "clicks"],
        None,
    ));
    assert!(table.contains("shardId-000000000001"), "{table}");
    assert!(table.contains("Retention      24 hours"), "{table}");

    let listed = json(&millstream(
        &server,
        &["stream", "list", "--output", "json"],
        None,
    ));
    assert_eq!(listed[0]["stream_name"], "clicks");
}

#[test]
fn errors_name_the_aws_error_and_hint_at_the_fix() {
    let server = TestServer::start();
    let output = millstream(&server, &["stream", "describe", "missing"], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ResourceNotFoundException: Stream missing under account"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: `millstream stream list`"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    let output = millstream(
        &server,
        &["stream", "list", "--endpoint", "http://127.0.0.1:1"],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not reach http://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: start a server with `millstream serve`"),
        "{stderr}"
    );
}

#[test]
fn tail_follows_the_children_of_a_split_shard() {
    let server = TestServer::start();
    ok(&millstream(&server, &["stream", "create", "orders"], None));
    ok(&millstream(
        &server,
        &["put", "orders", "-k", "a", "before"],
        None,
    ));
    let tail = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args([
            "tail",
            "orders",
            "--from",
            "trim-horizon",
            "--format",
            "json",
            "-n",
            "3",
        ])
        .env("MILLSTREAM_ENDPOINT", &server.endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ok(&millstream(
        &server,
        &["stream", "split", "orders", "shardId-000000000000"],
        None,
    ));
    // Keys on both sides of the split point, so both children get one.
    ok(&millstream(
        &server,
        &[
            "put",
            "orders",
            "--key-field",
            "k",
            r#"{"k":"a"}"#,
            r#"{"k":"b"}"#,
        ],
        None,
    ));
    let lines = json_lines(&wait_output(tail));
    assert_eq!(lines[0]["data"], "before");
    assert_eq!(lines[0]["shard_id"], "shardId-000000000000");
    let mut children: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["shard_id"].as_str().unwrap())
        .collect();
    children.sort_unstable();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
}

#[test]
fn get_prints_a_range_and_merge_scale_retention_change_the_stream() {
    let server = TestServer::start();
    ok(&millstream(
        &server,
        &["stream", "create", "ledger", "--shards", "2"],
        None,
    ));
    let args: Vec<String> = (0..5).map(|i| format!("entry-{i}")).collect();
    let mut put_args = vec!["put", "ledger", "-k", "same", "--base64"];
    let encoded: Vec<String> = args.iter().map(|a| STANDARD.encode(a)).collect();
    put_args.extend(encoded.iter().map(String::as_str));
    let put = json(&millstream(
        &server,
        &[put_args.as_slice(), &["--output", "json"]].concat(),
        None,
    ));
    assert_eq!(put["records"], 5);
    let shard = put["shards"][0]["shard_id"].as_str().unwrap().to_string();

    let all = json(&millstream(
        &server,
        &["get", "ledger", "--shard", &shard, "--output", "json"],
        None,
    ));
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0]["data"], "entry-0");
    let from = all[1]["sequence_number"].as_str().unwrap();
    let to = all[3]["sequence_number"].as_str().unwrap();
    let range = json(&millstream(
        &server,
        &[
            "get", "ledger", "--shard", &shard, "--from", from, "--to", to, "--output", "json",
        ],
        None,
    ));
    let data: Vec<&str> = range
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["entry-1", "entry-2", "entry-3"]);

    let merged = json(&millstream(
        &server,
        &[
            "stream",
            "merge",
            "ledger",
            "shardId-000000000000",
            "--output",
            "json",
        ],
        None,
    ));
    assert_eq!(merged["open_shard_count"], 1);
    let scaled = json(&millstream(
        &server,
        &["stream", "scale", "ledger", "2", "--output", "json"],
        None,
    ));
    assert_eq!(scaled["open_shard_count"], 2);
    let retained = json(&millstream(
        &server,
        &["stream", "retention", "ledger", "48", "--output", "json"],
        None,
    ));
    assert_eq!(retained["retention_period_hours"], 48);
    let deleted = millstream(&server, &["stream", "delete", "ledger"], None);
    assert_eq!(ok(&deleted).trim(), "Deleted stream ledger");
    let listed = json(&millstream(
        &server,
        &["stream", "list", "--output", "json"],
        None,
    ));
    assert_eq!(listed, Value::Array(Vec::new()));
}

#[test]
fn completions_are_generated_for_bash() {
    let output = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success());
    assert!(script.contains("complete -F _millstream"), "{script}");
    assert!(script.contains("retention"), "subcommands are included");
}

/// One file per busy shard stays open (its active segment), so `serve` lifts its soft
/// open-files limit to the hard one instead of failing at ~1,000 written shards under the
/// usual soft default of 1,024.
#[test]
fn serve_raises_the_soft_open_files_limit_to_the_hard_one() {
    use std::io::{BufRead, BufReader};

    fn open_files_limits(pid: &str) -> Vec<String> {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("a Max open files line")
            .to_owned();
        line.split_whitespace()
            .skip(3)
            .take(2)
            .map(str::to_owned)
            .collect()
    }

    let hard = open_files_limits("self")[1].clone();
    assert_ne!(hard, "256", "needs a hard limit above 256");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -Sn 256 && exec "$0" serve --port 0 --data-dir "$1""#)
        .arg(env!("CARGO_BIN_EXE_millstream"))
        .arg(dir.path())
        .env("MILLSTREAM_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start millstream");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    let limits = open_files_limits(&child.id().to_string());
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("millstream listening on "), "{line:?}");
    assert_eq!(limits, [hard.clone(), hard]);
}
