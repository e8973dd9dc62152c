//! One port for every transport: HTTP/1.1 and HTTP/2 with prior knowledge (h2c) in the clear,
//! and, when TLS is on, TLS with ALPN `h2`/`http/1.1` on the same port.
//!
//! Each accepted connection is classified by its first byte: a TLS record starts with 0x16
//! (handshake), which no HTTP request line or h2c preface can. hyper's `auto` builder then
//! tells HTTP/1.1 from HTTP/2 by the connection preface, so the Java SDK's h2c, boto3's
//! HTTP/1.1 and ALPN-negotiated h2 all land on the same router.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use millstream_streams::ConnectionPolls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// How long connections get to finish in-flight requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the TLS certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// A self-signed certificate for localhost, generated on first start and kept here.
    SelfSigned { dir: PathBuf },
    /// The user's own PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// Loads (or first generates) the certificate and builds the TLS acceptor.
///
/// # Errors
/// Unreadable or invalid PEM files, or a directory that cannot hold the generated ones.
pub fn tls_acceptor(source: &TlsSource) -> anyhow::Result<(TlsAcceptor, PathBuf)> {
    let (cert_path, key_path) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned { dir } => {
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            if !cert.exists() || !key.exists() {
                generate_self_signed(dir, &cert, &key)?;
            }
            (cert, key)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading TLS certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading TLS private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), cert_path))
}

fn generate_self_signed(dir: &Path, cert: &Path, key: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let generated =
        rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    std::fs::write(cert, generated.cert.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    std::fs::write(key, generated.signing_key.serialize_pem())
        .with_context(|| format!("writing {}", key.display()))?;
    Ok(())
}

/// Accepts connections until `shutdown` resolves, then lets open connections finish their
/// requests (bounded by `DRAIN_TIMEOUT`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            if let Err(err) = serve_connection(stream, router, builder, tls, watcher).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    builder: Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // What this connection's requests found, for a GetRecords repeated at a shard's tip
    // (`ConnectionPolls`): one per connection, handed to each of its requests.
    let polls = Arc::new(ConnectionPolls::default());
    let service = TowerToHyperService::new(router.map_request(
        move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(polls.clone());
            request
        },
    ));
    let mut first = [0u8; 1];
    let is_tls = tls.is_some() && stream.peek(&mut first).await? == 1 && first[0] == TLS_HANDSHAKE;
    match tls {
        Some(acceptor) if is_tls => {
            let stream = acceptor.accept(stream).await?;
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            watcher.watch(connection.into_owned()).await
        }
        _ => {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            watcher.watch(connection.into_owned()).await
        }
    }
}
