//! Client commands for people: `millstream stream …`, `put`, `tail`, `get`.
//!
//! They talk to a running server (or to anything that speaks the Kinesis API) through the
//! AWS SDK, so they exercise exactly the wire path other clients use. Results go to stdout:
//! a table or plain lines by default, JSON with `--output json` for scripts. Progress bars
//! and spinners go to stderr, and only when stderr is a terminal, so piped output is never
//! mixed with them. Errors name the AWS error type and message, plus a hint where the fix
//! is obvious.

mod errors;
mod output;
mod put;
mod records;
mod stream;

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use clap::{Args, Subcommand, ValueEnum};

pub use errors::render_error;

/// The server Millstream listens on by default (`millstream serve`).
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4567";
/// A client command gives up connecting after this long, instead of hanging on a dead host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Client subcommands, flattened into the top-level `millstream` command. The load
/// generator (`millstream bench`) belongs here as another variant; it would reuse
/// `Connection` for the endpoint, credentials and output format.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Create, inspect, reshard and delete streams.
    Stream(stream::StreamArgs),
    /// Put records: from arguments, from files or from stdin, one record per line.
    Put(put::PutArgs),
    /// Follow every shard of a stream and print its records as they arrive.
    Tail(records::TailArgs),
    /// Print a range of records of a stream.
    Get(records::GetArgs),
    /// Load-test a server: throughput, latency, read-back verification (see BENCHMARKS.md).
    Bench(crate::bench::BenchArgs),
}

/// How to reach the server and how to print; shared by every client command.
#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// Server URL.
    #[arg(long, global = true, env = "MILLSTREAM_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Region to sign requests for.
    #[arg(long, global = true, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// `table` for people, `json` for scripts.
    #[arg(long, global = true, value_enum, env = "MILLSTREAM_OUTPUT", default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

impl Connection {
    /// The credentials every client command signs with (see `client`).
    pub fn credentials() -> Credentials {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                Credentials::new(id, secret, var("AWS_SESSION_TOKEN"), None, "environment")
            }
            _ => Credentials::new("millstream", "millstream", None, None, "millstream-cli"),
        }
    }

    /// An SDK client for the endpoint. Credentials come from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` when both are set (needed when the server verifies
    /// signatures); otherwise placeholders, which a server without `[[credentials]]`
    /// accepts as long as the request is signed.
    pub fn client(&self) -> Client {
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::credentials())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        Client::from_conf(config)
    }
}

/// Runs one client command to completion.
///
/// # Errors
/// Whatever the command reports; `render_error` turns it into the message for people.
pub async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Stream(args) => stream::run(args).await,
        ClientCommand::Put(args) => put::run(args).await,
        ClientCommand::Tail(args) => records::tail(args).await,
        ClientCommand::Get(args) => records::get(args).await,
        ClientCommand::Bench(args) => crate::bench::run(args).await,
    }
}
