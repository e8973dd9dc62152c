//! `millstream bench` as a subprocess against a real server, every scenario for about a
//! second with tiny volumes: the JSON report parses, the numbers add up and read-back
//! verification passes. (The verifier's failure cases are unit tests in
//! `src/bench/verify.rs`, on doctored record sets.)

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::cli_commands::wait_output;
use crate::support::TestServer;

/// Runs `millstream bench <args> --json FILE --server-pid PID` and returns the report.
fn bench(server: &TestServer, args: &[&str]) -> Value {
    bench_with_env(server, args, &[])
}

fn bench_with_env(server: &TestServer, args: &[&str], envs: &[(&str, &str)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let pid = server_pid(server);
    let child = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&report)
        .arg("--server-pid")
        .arg(&pid)
        .env("MILLSTREAM_ENDPOINT", &server.endpoint)
        .env_remove("MILLSTREAM_OUTPUT")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run millstream bench");
    let output = wait_output(child);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("millstream bench"),
        "human report: {stdout}"
    );
    let text = std::fs::read_to_string(&report).expect("the JSON report is written");
    let report: Value = serde_json::from_str(&text).expect("the JSON report parses");
    assert_eq!(report["tool"], "millstream bench");
    assert!(report["hardware"]["nproc"].as_u64().unwrap() >= 1);
    assert_eq!(report["ok"], true, "{report:#}");
    assert!(
        report["server"]["vm_hwm_mb"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    report
}

/// The server's pid, found by its port in /proc (TestServer does not expose its child).
fn server_pid(server: &TestServer) -> String {
    let output = Command::new("pgrep")
        .arg("-f")
        .arg(format!(
            "millstream serve --port 0 --data-dir {}",
            server.data_dir.display()
        ))
        .output()
        .expect("pgrep");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .next()
        .expect("the server's pid")
        .trim()
        .to_owned()
}

fn acknowledged(report: &Value) -> u64 {
    report["put"]["records"].as_u64().unwrap()
}

#[test]
fn bench_put_reports_throughput_and_latency() {
    let server = TestServer::start();
    let report = bench(
        &server,
        &[
            "put", "-c", "2", "-b", "50", "-s", "200", "-d", "1", "-n", "2000",
        ],
    );
    assert_eq!(report["scenario"], "put");
    assert!(acknowledged(&report) > 0);
    assert!(acknowledged(&report) <= 2000);
    assert_eq!(report["put"]["failed_records"], 0);
    assert!(report["put"]["records_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["put"]["latency_ms"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(report["put"]["resources"]["server_cpu_s"].is_number());
}

#[test]
fn bench_single_puts_one_record_per_request() {
    let server = TestServer::start();
    let report = bench(
        &server,
        &["single", "-c", "2", "-s", "100", "-d", "1", "-n", "300"],
    );
    assert_eq!(
        acknowledged(&report),
        report["put"]["requests"].as_u64().unwrap()
    );
    assert!(acknowledged(&report) > 0);
}

#[test]
fn bench_get_reads_back_and_verifies_every_record() {
    let server = TestServer::start();
    let report = bench(
        &server,
        &[
            "get", "-c", "3", "-b", "100", "-s", "300", "-k", "7", "-d", "1", "-n", "3000",
            "--shards", "3",
        ],
    );
    let acked = acknowledged(&report);
    assert!(acked > 0);
    assert_eq!(report["verify"]["ok"], true, "{report:#}");
    assert_eq!(report["verify"]["acked"].as_u64().unwrap(), acked);
    assert_eq!(report["read"]["records"].as_u64().unwrap(), acked);
    assert_eq!(report["read"]["bytes"].as_u64().unwrap(), acked * 300);
    assert_eq!(report["shards"], 3);
}

#[test]
fn bench_e2e_measures_put_to_consume_latency_polling_and_pushed() {
    let server = TestServer::start();
    for consumer in ["poll", "efo"] {
        let report = bench(
            &server,
            &[
                "e2e",
                "--rate",
                "200",
                "-b",
                "5",
                "-d",
                "1",
                "--drain",
                "5",
                "--consumer",
                consumer,
                "--shards",
                "2",
            ],
        );
        let acked = acknowledged(&report);
        assert!(acked > 50, "{consumer}: {report:#}");
        assert_eq!(report["e2e"]["consumer"], consumer);
        assert_eq!(report["e2e"]["lost"], 0, "{consumer}: {report:#}");
        assert_eq!(report["e2e"]["latency_ms"]["n"].as_u64().unwrap(), acked);
        assert!(report["e2e"]["latency_ms"]["max_ms"].as_f64().unwrap() > 0.0);
    }
}

/// `--producer-client http` sends hand-built requests: against a server that verifies
/// signatures (so a request signed wrongly would fail), PutRecords read back and verified,
/// PutRecord, and put-to-consume latency with a subscribed consumer.
#[test]
fn bench_http_producers_sign_and_are_verified_like_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("millstream.toml");
    std::fs::write(
        &config,
        "[[credentials]]\naccess_key_id = \"AKIDBENCH\"\nsecret_access_key = \"bench-secret\"\n",
    )
    .unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]);
    let envs = [
        ("AWS_ACCESS_KEY_ID", "AKIDBENCH"),
        ("AWS_SECRET_ACCESS_KEY", "bench-secret"),
    ];
    let http = ["--producer-client", "http"];
    let get = [
        "get", "-c", "2", "-b", "100", "-s", "300", "-d", "1", "-n", "2000", "--shards", "3",
    ];
    let report = bench_with_env(&server, &[&http[..], &get].concat(), &envs);
    assert_eq!(report["producer_client"], "http");
    let acked = acknowledged(&report);
    assert!(acked > 0, "{report:#}");
    assert!(
        report["put"]["errors"].as_object().unwrap().is_empty(),
        "{report:#}"
    );
    assert_eq!(report["verify"]["acked"].as_u64().unwrap(), acked);
    assert_eq!(report["read"]["records"].as_u64().unwrap(), acked);

    let single = ["single", "-c", "2", "-s", "100", "-d", "1", "-n", "200"];
    let report = bench_with_env(&server, &[&http[..], &single].concat(), &envs);
    assert!(acknowledged(&report) > 0, "{report:#}");
    assert_eq!(
        acknowledged(&report),
        report["put"]["requests"].as_u64().unwrap()
    );

    let e2e = [
        "e2e",
        "--rate",
        "200",
        "-b",
        "5",
        "-d",
        "1",
        "--drain",
        "5",
        "--consumer",
        "efo",
        "--shards",
        "2",
    ];
    let report = bench_with_env(&server, &[&http[..], &e2e].concat(), &envs);
    let acked = acknowledged(&report);
    assert!(acked > 50, "{report:#}");
    assert_eq!(report["e2e"]["lost"], 0, "{report:#}");
    assert_eq!(report["e2e"]["latency_ms"]["n"].as_u64().unwrap(), acked);
}

#[test]
fn bench_refuses_non_loopback_endpoints() {
    let output = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args([
            "bench",
            "--endpoint",
            "http://192.0.2.1:4567",
            "put",
            "-d",
            "1",
        ])
        .output()
        .expect("run millstream bench");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[test]
fn bench_firehose_puts_and_waits_for_delivery_into_gzip_objects() {
    let server = TestServer::start();
    let report = bench(
        &server,
        &[
            "firehose",
            "-d",
            "2",
            "-c",
            "2",
            "-b",
            "100",
            "-s",
            "200",
            "--interval",
            "1",
            "--output",
            "json",
        ],
    );
    assert_eq!(report["scenario"], "firehose");
    assert_eq!(report["config"]["compression"], "GZIP");
    let acked = acknowledged(&report);
    assert!(acked > 0, "{report:#}");
    assert_eq!(report["put"]["failed_records"], 0, "{report:#}");
    assert_eq!(report["put"]["bytes"].as_u64().unwrap(), acked * 200);
    assert!(report["put"]["latency_ms"]["p99_ms"].as_f64().unwrap() > 0.0);
    let delivery = &report["delivery"];
    assert_eq!(delivery["caught_up"], true, "{report:#}");
    assert_eq!(delivery["delivered_records"].as_u64().unwrap(), acked);
    assert!(delivery["drain_seconds"].as_f64().unwrap() >= 0.0);
    assert!(delivery["records_per_s"].as_f64().unwrap() > 0.0);
    assert!(delivery["object_bytes"].as_u64().unwrap() > 0, "{report:#}");
    assert!(report["server"]["cpu_s"].is_number(), "{report:#}");
    // The objects are on disk, gzip (magic 1f 8b), under the default bucket.
    let objects = crate::firehose::embedded_objects(&server.data_dir, "millstream-bench");
    assert!(
        !objects.is_empty(),
        "no objects under {:?}",
        server.data_dir
    );
    assert!(
        objects.values().all(|body| body.starts_with(&[0x1f, 0x8b])),
        "not all gzip: {:?}",
        objects.keys().collect::<Vec<_>>()
    );
}

#[test]
fn bench_scale_holds_streams_writes_every_wide_shard_and_deletes_all_it_created() {
    let server = TestServer::start();
    let report = bench(
        &server,
        &[
            "scale",
            "--streams",
            "40",
            "--stream-shards",
            "2",
            "--wide-shards",
            "64",
            "-c",
            "2",
            "-b",
            "100",
            "-s",
            "200",
            "-d",
            "1",
            "--idle-seconds",
            "1",
        ],
    );
    assert_eq!(report["scenario"], "scale");
    let hold = &report["hold"];
    assert_eq!(hold["streams_requested"], 40, "{report:#}");
    assert_eq!(hold["streams_created"], 40, "{report:#}");
    assert_eq!(hold["streams_active"], 40, "{report:#}");
    assert_eq!(hold["shards"], 80);
    for moment in ["before", "after"] {
        let state = &hold["server"][moment];
        assert!(state["rss_mb"].as_f64().unwrap() > 0.0, "{report:#}");
        assert!(state["threads"].as_u64().unwrap() >= 1, "{report:#}");
        assert!(state["open_fds"].as_u64().unwrap() >= 1, "{report:#}");
    }
    // Idle shards hold no file: 80 of them add far fewer than 80 descriptors (the redb
    // catalog and connections may add a few).
    let fds = |moment: &str| hold["server"][moment]["open_fds"].as_u64().unwrap();
    assert!(fds("after") < fds("before") + 20, "{report:#}");
    assert!(hold["server"]["rss_kib_per_shard"].is_number());
    assert!(hold["idle"]["server_cpu_pct"].is_number(), "{report:#}");
    for phase in ["baseline", "loaded"] {
        assert!(report[phase]["records"].as_u64().unwrap() > 0, "{report:#}");
        assert_eq!(report[phase]["failed_records"], 0, "{report:#}");
        assert_eq!(report[phase]["shards"], 4);
    }
    // The loaded phase reruns the baseline on the same stream.
    assert_eq!(report["loaded"]["stream"], report["baseline"]["stream"]);
    assert!(
        report["loaded"]["vs_baseline"]["records_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let wide = &report["wide"];
    assert_eq!(wide["shards"], 64, "{report:#}");
    assert_eq!(wide["shards_acknowledged"], 64, "{report:#}");
    assert_eq!(wide["all_shards_written"], true);
    // 40 held streams, the baseline's and the wide one.
    let cleanup = &report["cleanup"];
    assert_eq!(cleanup["streams"], 42, "{report:#}");
    assert_eq!(cleanup["deleted"], 42, "{report:#}");
    assert_eq!(cleanup["remaining"], 0, "{report:#}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = runtime
        .block_on(server.client().list_streams().send())
        .unwrap();
    assert!(
        listed.stream_names().is_empty(),
        "left behind: {:?}",
        listed.stream_names()
    );
}
