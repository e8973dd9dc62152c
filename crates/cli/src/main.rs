//! `millstream`: the server (`millstream serve`) and client commands for people
//! (`millstream stream|put|tail|get`, in `client/`), plus shell completions.

// Why jemalloc rather than the system allocator: see the dependency's comment in Cargo.toml.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod bench;
mod client;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use millstream_server::{Server, ServerConfig, Settings};

#[derive(Parser)]
#[command(
    name = "millstream",
    version,
    about = "A durable, AWS Kinesis-compatible streaming server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (Kinesis Data Streams API on one port, data in a local directory).
    Serve(ServeArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
    /// Print a shell completion script, e.g. `millstream completions bash > /etc/bash_completion.d/millstream`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Flags override environment variables, which override the configuration file.
#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (see millstream.example.toml).
    #[arg(long, env = "MILLSTREAM_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "MILLSTREAM_HOST")]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 4567].
    #[arg(long, env = "MILLSTREAM_PORT")]
    port: Option<u16>,
    /// Directory holding all data [default: ./millstream-data].
    #[arg(long, env = "MILLSTREAM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Region in ARNs [default: us-east-1].
    #[arg(long, env = "MILLSTREAM_REGION")]
    region: Option<String>,
    /// 12-digit account id in ARNs and messages [default: 000000000000].
    #[arg(long, env = "MILLSTREAM_ACCOUNT_ID")]
    account_id: Option<String>,
    /// Milliseconds a new stream stays CREATING [default: 0].
    #[arg(long, env = "MILLSTREAM_CREATE_STREAM_MS")]
    create_stream_ms: Option<u64>,
    /// Milliseconds a deleted stream stays DELETING [default: 0].
    #[arg(long, env = "MILLSTREAM_DELETE_STREAM_MS")]
    delete_stream_ms: Option<u64>,
    /// Milliseconds a stream stays UPDATING after a change [default: 0].
    #[arg(long, env = "MILLSTREAM_UPDATE_STREAM_MS")]
    update_stream_ms: Option<u64>,
    /// Durability: `always` (fsync before acknowledging), `interval:<ms>` or `never`.
    #[arg(long, env = "MILLSTREAM_SYNC")]
    sync: Option<String>,
    /// MiB of memory for recently written records served without touching disk [default: 64].
    #[arg(long, env = "MILLSTREAM_CACHE_MIB")]
    cache_mib: Option<u64>,
    /// Account-wide shard quota [default: 20000].
    #[arg(long, env = "MILLSTREAM_SHARD_LIMIT")]
    shard_limit: Option<u32>,
    /// Also accept TLS (ALPN h2 and http/1.1) on the same port; without --tls-cert/--tls-key
    /// a self-signed certificate for localhost is generated under <data-dir>/tls/.
    #[arg(long, env = "MILLSTREAM_TLS")]
    tls: bool,
    /// PEM certificate chain for TLS (implies --tls).
    #[arg(long, env = "MILLSTREAM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "MILLSTREAM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Milliseconds one SubscribeToShard stream lasts [default: 300000].
    #[arg(long, env = "MILLSTREAM_SUBSCRIPTION_LIFETIME_MS")]
    subscription_lifetime_ms: Option<u64>,
    /// Emulate AWS's per-shard throughput quotas (1 MiB/s and 1,000 records/s written,
    /// 5 reads/s and 2 MiB/s read): ProvisionedThroughputExceededException as on AWS.
    #[arg(long, env = "MILLSTREAM_THROTTLE")]
    throttle: bool,
    /// Milliseconds a GetRecords repeated at a shard's tip waits for the next record before
    /// answering empty; 0 answers every poll at once [default: 50].
    #[arg(long, env = "MILLSTREAM_GET_RECORDS_TIP_WAIT_MS")]
    get_records_tip_wait_ms: Option<u64>,
    /// Where Firehose S3 destinations write: an S3-compatible endpoint URL, `aws`, or
    /// `embedded` (buckets as directories under <data-dir>/buckets/) [default: the
    /// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL variables if set, else embedded].
    #[arg(long, env = "MILLSTREAM_FIREHOSE_S3_ENDPOINT")]
    firehose_s3_endpoint: Option<String>,
    /// Lambda Invoke API endpoint for Firehose transformations (e.g. `sam local
    /// start-lambda` on http://127.0.0.1:3001) [default: AWS Lambda in --region].
    #[arg(long, env = "MILLSTREAM_LAMBDA_ENDPOINT")]
    lambda_endpoint: Option<String>,
}

impl ServeArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let flags = Settings {
            host: self.host.clone(),
            port: self.port,
            data_dir: self.data_dir.clone(),
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            create_stream_ms: self.create_stream_ms,
            delete_stream_ms: self.delete_stream_ms,
            update_stream_ms: self.update_stream_ms,
            sync: self.sync.clone(),
            cache_mib: self.cache_mib,
            shard_limit: self.shard_limit,
            tls: self.tls.then_some(true),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            subscription_lifetime_ms: self.subscription_lifetime_ms,
            throughput_limits: self.throttle.then_some(true),
            get_records_tip_wait_ms: self.get_records_tip_wait_ms,
            firehose: (self.firehose_s3_endpoint.is_some() || self.lambda_endpoint.is_some()).then(
                || millstream_server::config::FirehoseSettings {
                    s3_endpoint: self.firehose_s3_endpoint.clone(),
                    lambda_endpoint: self.lambda_endpoint.clone(),
                    ..Default::default()
                },
            ),
            ..Settings::default()
        };
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Settings::from_toml(&text)?
            }
            None => Settings::default(),
        };
        Ok(flags.or(file))
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// The `log` key of the configuration file, read ahead of the rest because logging starts
/// before the server's configuration is resolved.
fn configured_log_filter(args: &ServeArgs) -> anyhow::Result<Option<String>> {
    let Some(path) = &args.config else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Settings::from_toml(&text)?.log)
}

/// Raises the soft limit on open files to the hard limit. The store keeps one file open
/// per shard written since its last checkpoint (the active segment), so 1,000 busy streams
/// of 4 shards need ~4,000 descriptors: past the common soft default of 1,024 although the
/// hard limit (often 524,288) allows them. Returns the (old, new) soft limit when it
/// changed.
fn raise_open_files_limit() -> Option<(u64, u64)> {
    let (soft, hard) = rlimit::Resource::NOFILE.get().ok()?;
    if soft >= hard {
        return None;
    }
    rlimit::Resource::NOFILE.set(hard, hard).ok()?;
    Some((soft, hard))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if let Some((old, new)) = raise_open_files_limit() {
        tracing::info!(
            old,
            new,
            "raised the open files limit (one file per busy shard)"
        );
    }
    let config = ServerConfig::resolve(args.settings()?)?;
    let data_dir = config.data_dir.clone();
    let server = Server::bind(config).await?;
    let address = server.local_addr()?;
    // Tests and scripts read this line to learn the port when started with --port 0.
    println!("millstream listening on http://{address}");
    println!("millstream data in {}", data_dir.display());
    if let Some(certificate) = &server.tls_certificate {
        println!(
            "millstream TLS on the same port (https://{address}), certificate {}",
            certificate.display()
        );
    }
    server.run(shutdown_signal()).await
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // MILLSTREAM_LOG, else the configuration file's `log`, else `info` for the server;
    // client commands print results, not logs, so they default to warnings only.
    let filter = match std::env::var("MILLSTREAM_LOG") {
        Ok(filter) => Some(("MILLSTREAM_LOG", filter)),
        Err(_) => match &cli.command {
            Command::Serve(args) => configured_log_filter(args)?.map(|f| ("log", f)),
            _ => None,
        },
    };
    let filter = match filter {
        Some((key, filter)) => tracing_subscriber::EnvFilter::try_new(&filter)
            .with_context(|| format!("{key}: `{filter}` is not a valid log filter"))?,
        None => tracing_subscriber::EnvFilter::new(match cli.command {
            Command::Serve(_) => "info",
            _ => "warn",
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Client(command) => {
            if let Err(err) = runtime.block_on(client::run(command)) {
                eprintln!("{}", client::render_error(&err));
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "millstream",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}
