//! The TLS listener: rustls (TLS 1.2 and 1.3, aws-lc-rs), optional client certificates
//! verified against this CA, HTTP/1.1 and HTTP/2, per-connection facts in each request's
//! extensions, bounded handshakes and header reads, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::model::ConnInfo;

pub mod header_case;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Limits on connections.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    /// The request line and headers together, at most (HTTP/1.1; the header list, HTTP/2).
    pub max_header_bytes: usize,
}

/// The server certificate, replaceable while running (`reload` on SIGHUP): new handshakes
/// use the new one, established connections keep theirs.
#[derive(Debug)]
pub struct ReloadableCert {
    current: std::sync::RwLock<Arc<CertifiedKey>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ReloadableCert {
    fn certified(
        provider: &rustls::crypto::CryptoProvider,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<CertifiedKey>, ServerError> {
        let ck = CertifiedKey::from_der(chain, key, provider)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        Ok(Arc::new(ck))
    }

    /// Replaces the certificate and key (checked to belong together first).
    pub fn reload(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), ServerError> {
        let ck = Self::certified(&self.provider, chain, key)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| ServerError::Tls("certificate lock poisoned".into()))?;
        *current = ck;
        Ok(())
    }

    /// The leaf certificate served now.
    pub fn leaf(&self) -> Option<Vec<u8>> {
        let current = self.current.read().ok()?;
        current.cert.first().map(|c| c.to_vec())
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// The rustls configuration: our chain and key (reloadable); client certificates optional,
/// and when sent, verified against `client_roots` (the issuing CA and the root, since
/// devices often send only their leaf).
pub fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: &[Vec<u8>],
) -> Result<(Arc<ServerConfig>, Arc<ReloadableCert>), ServerError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for der in client_roots {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| ServerError::Tls(format!("client CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let cert = Arc::new(ReloadableCert {
        current: std::sync::RwLock::new(ReloadableCert::certified(&provider, chain, key)?),
        provider: provider.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // TLS 1.2 only with the extended master secret (RFC 7627): without it the exporter used
    // for channel binding is not unique to the connection.
    config.require_ems = true;
    Ok((Arc::new(config), cert))
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits
/// up to `limits.shutdown_grace` for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    serve_with(
        listener,
        Some(TlsAcceptor::from(tls)),
        router,
        limits,
        shutdown,
    )
    .await
}

/// The same over plain HTTP/1.1 (the CRL and OCSP, metrics and health checks), with the same
/// limits.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    serve_with(listener, None, router, limits, shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    header_case::learn().await;
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        // names hyper writes itself (its own 400/431 answers) and any name not in
        // header_case::SPELLINGS: title case rather than lower case
        .title_case_headers(true)
        .keep_alive(true);
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let http = Arc::new(http);
    tokio::pin!(shutdown);

    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: too many open connections");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = limits.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let Some(acceptor) = acceptor else {
                let info = ConnInfo {
                    peer,
                    client_chain: None,
                    exporter: None,
                };
                serve_connection(&http, tcp, info, router, watcher).await;
                return;
            };
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    crate::metrics::metrics().tls_handshake_failed();
                    tracing::info!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    crate::metrics::metrics().tls_handshake_failed();
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let client_chain = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|certs| Arc::new(certs.iter().map(|c| c.to_vec()).collect::<Vec<_>>()));
            let mut exporter = [0u8; 32];
            let exporter = stream
                .get_ref()
                .1
                .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
                .ok()
                .copied();
            let info = ConnInfo {
                peer,
                client_chain,
                exporter,
            };
            serve_connection(&http, stream, info, router, watcher).await;
        });
    }
    drop(listener);
    tracing::info!("shutting down: no longer accepting, finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "connections still open after the grace period; closing");
        }
    }
    Ok(())
}

/// One connection (TLS or plain), each request carrying the connection's facts.
async fn serve_connection<S>(
    http: &auto::Builder<TokioExecutor>,
    stream: S,
    info: ConnInfo,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let version = req.version();
        let answer = router.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let mut resp = answer.await?;
            header_case::apply(version, &mut resp);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
