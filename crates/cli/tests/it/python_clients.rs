//! The unchanged Python clients: boto3 and the AWS CLI, run as users run them.

use std::path::PathBuf;
use std::process::Command;

use crate::support::TestServer;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

fn run(program: &str, args: &[&str], server: &TestServer) {
    let output = Command::new(program)
        .args(args)
        .env("MILLSTREAM_ENDPOINT", &server.endpoint)
        .env("MILLSTREAM_DATA_DIR", &server.data_dir)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_PAGER", "")
        .output()
        .unwrap_or_else(|e| {
            panic!("running {program}: {e} (CI installs python3, boto3 and awscli)")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn boto3_suite_passes() {
    let server = TestServer::start();
    run(
        "python3",
        &[script("boto3_suite.py").to_str().unwrap()],
        &server,
    );
}

#[test]
fn boto3_firehose_suite_passes() {
    let server = TestServer::start();
    run(
        "python3",
        &[script("boto3_firehose.py").to_str().unwrap()],
        &server,
    );
}

/// boto3's pooled connection carries a poll repeated at a shard's tip, which waits for the
/// next record (`tip_wait.rs` has the SDK's side and the cases that must not wait).
#[test]
fn boto3_tip_poll_waits_for_the_next_record() {
    let server = TestServer::start_with(&["--get-records-tip-wait-ms", "10000"]);
    run(
        "python3",
        &[script("boto3_tip_poll.py").to_str().unwrap()],
        &server,
    );
}

/// The README's quick start, extracted from the README itself and run against a server on a
/// free port (the only change: the documented port becomes that port).
#[test]
fn readme_quick_start_works_word_for_word() {
    let server = TestServer::start();
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let start = readme
        .find("<!-- quickstart:begin -->")
        .expect("quick start begin marker");
    let end = readme
        .find("<!-- quickstart:end -->")
        .expect("quick start end marker");
    let section = &readme[start..end];
    let commands: String = section
        .split("```sh")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        commands.contains("aws --endpoint-url"),
        "the quick start uses the AWS CLI"
    );
    let script = commands.replace("http://127.0.0.1:4567", &server.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quickstart.sh");
    std::fs::write(&path, format!("set -euo pipefail\n{script}")).unwrap();
    run("bash", &[path.to_str().unwrap()], &server);
}
