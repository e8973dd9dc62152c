//! The Millstream server: opens the store and services, and answers every API on one port.
//!
//! ```text
//! TCP ──► hyper (HTTP/1.1 and h2c, detected per connection) ──► axum router
//!            POST /*  with X-Amz-Target: Kinesis_20131202.*  ──► api-kinesis
//!            POST /*  with X-Amz-Target: Firehose_20150804.* ──► api-firehose
//!            GET  /health, /ready                             ──► liveness / readiness
//!            GET  /metrics                                    ──► Prometheus text (metrics.rs)
//!            OPTIONS                                          ──► CORS preflight
//! ```

pub mod config;
mod http_api;
pub mod listener;
mod metrics;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use millstream_api_kinesis::KinesisApi;
use millstream_storage::{Store, StoreConfig};
use millstream_streams::{Streams, StreamsConfig};

pub use config::{ServerConfig, Settings};

/// A bound, ready-to-run server.
pub struct Server {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The certificate clients should trust, when TLS is on.
    pub tls_certificate: Option<std::path::PathBuf>,
    state: Arc<http_api::AppState>,
    store: Store,
}

impl Server {
    /// Opens (and recovers) the store under `config.data_dir` and binds the listener.
    ///
    /// # Errors
    /// Storage that cannot be opened, or an address that cannot be bound.
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let mut store_config = StoreConfig::new(config.data_dir.join("store"));
        store_config.sync_policy = config.sync_policy;
        store_config.cache_bytes_max = config.cache_bytes;
        let store = Store::open(store_config)
            .await
            .context("opening the stream store")?;
        let mut streams_config =
            StreamsConfig::new(config.account_id.clone(), config.region.clone());
        streams_config.create_delay = config.create_delay;
        streams_config.delete_delay = config.delete_delay;
        streams_config.update_delay = config.update_delay;
        streams_config.shard_limit = config.shard_limit;
        streams_config.expose_stream_id = config.expose_stream_id;
        streams_config.subscription_lifetime = config.subscription_lifetime;
        streams_config.throughput_limits = config.throughput_limits;
        streams_config.tip_wait = config.get_records_tip_wait;
        let streams = Streams::open(
            streams_config,
            store.clone(),
            &config.data_dir.join("metadata.redb"),
        )
        .await
        .context("opening stream metadata")?;
        let mut firehose_config = millstream_firehose::FirehoseConfig::new(
            config.account_id.clone(),
            config.region.clone(),
            &config.data_dir,
        );
        firehose_config.create_delay = config.create_delay;
        firehose_config.delete_delay = config.delete_delay;
        if let Some(endpoint) = &config.firehose.s3_endpoint {
            firehose_config.objects = millstream_firehose::ObjectStorage::S3 {
                endpoint: endpoint.clone(),
            };
        }
        firehose_config.lambda_endpoint = config.firehose.lambda_endpoint.clone();
        firehose_config.backoff_scale = config.firehose.backoff_scale;
        firehose_config.redshift_endpoints = config.firehose.redshift_endpoints.clone();
        firehose_config.http_endpoint_rewrites = config.firehose.http_endpoint_rewrites.clone();
        firehose_config.tables = config
            .firehose
            .tables
            .iter()
            .map(|table| millstream_firehose::TableSchema {
                database: table.database.clone(),
                table: table.table.clone(),
                columns: table
                    .columns
                    .iter()
                    .map(|column| millstream_firehose::spec::TableColumn {
                        name: column.name.clone(),
                        hive_type: column.hive_type.clone(),
                    })
                    .collect(),
            })
            .collect();
        let firehose = millstream_firehose::Firehose::open(
            firehose_config,
            store.clone(),
            streams.clone(),
            &config.data_dir.join("firehose.redb"),
        )
        .await
        .context("opening Firehose metadata")?;
        let credentials: HashMap<String, String> = config
            .credentials
            .iter()
            .map(|c| (c.access_key_id.clone(), c.secret_access_key.clone()))
            .collect();
        let telemetry =
            metrics::Telemetry::new(store.clone(), streams.clone(), config.data_dir.clone());
        let state = Arc::new(http_api::AppState {
            kinesis: KinesisApi::new(streams),
            firehose: millstream_api_firehose::FirehoseApi::new(firehose),
            credentials,
            max_body_bytes: config.max_body_bytes,
            data_dir: config.data_dir.clone(),
            telemetry,
        });
        let address = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let (tls, tls_certificate) = match &config.tls {
            Some(source) => {
                let (acceptor, certificate) = listener::tls_acceptor(source)?;
                (Some(acceptor), Some(certificate))
            }
            None => (None, None),
        };
        Ok(Server {
            listener,
            tls,
            tls_certificate,
            state,
            store,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains connections and syncs the store.
    ///
    /// # Errors
    /// Listener failures, or a store that cannot be synced at shutdown.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let streams = self.state.kinesis.streams().clone();
        let firehose = self.state.firehose.firehose().clone();
        let prometheus = self.state.telemetry.handle().clone();
        let upkeep = tokio::spawn(async move {
            let mut timer = tokio::time::interval(metrics::UPKEEP_INTERVAL);
            loop {
                timer.tick().await;
                prometheus.run_upkeep();
            }
        });
        let router = http_api::router(self.state);
        // Subscriptions would hold their connections open for minutes: end them first so
        // the graceful drain finishes promptly.
        let shutdown = async move {
            shutdown.await;
            streams.begin_shutdown();
        };
        listener::serve(self.listener, router, self.tls, shutdown).await;
        upkeep.abort();
        // Uploads in flight finish (bounded); what is still buffered stays in the log and
        // is delivered after the next start.
        firehose.shutdown().await;
        self.store
            .shutdown()
            .await
            .context("syncing the store at shutdown")?;
        Ok(())
    }
}
