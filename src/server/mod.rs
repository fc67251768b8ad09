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
pub mod verifier;

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
    /// From accept to the first request (the TLS handshake included).
    pub first_request_timeout: Duration,
    /// With no request in flight, a connection (HTTP/1.1 keep-alive or HTTP/2) is closed
    /// after this long.
    pub idle_timeout: Duration,
    /// Open connections from one client address, at most.
    pub max_per_address: usize,
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
/// devices often send only their leaf) or else `vendor_roots` (templates' manufacturer CAs:
/// see `verifier`).
pub fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: &[Vec<u8>],
    vendor_roots: &[Vec<u8>],
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
    let verifier = Arc::new(
        verifier::ClientVerifier::new(verifier, vendor_roots)
            .map_err(|e| ServerError::Tls(format!("vendor CA: {e}")))?,
    );
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
        "EST, API and portal",
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
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    serve_with(name, listener, None, router, limits, shutdown).await
}

async fn serve_with(
    name: &'static str,
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    header_case::learn().await;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
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
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // a peer that stops answering pings is gone; the idle timeout below ends the rest
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
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
        let accepted_at = tokio::time::Instant::now();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused(peer, "too many open connections", limits.max_connections);
            continue;
        };
        let Some(address_slot) = per_address.enter(peer.ip(), limits.max_per_address) else {
            refused(
                peer,
                "too many open connections from this address",
                limits.max_per_address,
            );
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let http = http.clone();
        let stop = stop_rx.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _address_slot = address_slot;
            let Some(acceptor) = acceptor else {
                let info = ConnInfo {
                    peer,
                    client_chain: None,
                    exporter: None,
                };
                serve_connection(&http, tcp, info, router, stop, &limits, accepted_at).await;
                return;
            };
            let stream =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
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
            serve_connection(&http, stream, info, router, stop, &limits, accepted_at).await;
        });
    }
    drop(listener);
    tracing::info!(
        listener = name,
        "shutting down: no longer accepting, finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    // every connection task holds one slot: all of them back means all connections closed
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => tracing::info!(listener = name, "all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(listener = name, grace = ?limits.shutdown_grace, "connections still open after the grace period; closing");
        }
    }
    Ok(())
}

/// A refused connection: counted, and logged at most once a second (a flood of them must
/// not become a flood of log lines).
fn refused(peer: std::net::SocketAddr, why: &'static str, max: usize) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_LOG: AtomicU64 = AtomicU64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    crate::metrics::metrics().connection_refused();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let suppressed = SINCE.fetch_add(1, Ordering::Relaxed);
    if LAST_LOG.swap(now, Ordering::Relaxed) != now {
        SINCE.store(0, Ordering::Relaxed);
        tracing::warn!(%peer, max, refused_in_the_last_second = suppressed + 1, "connection refused: {why}");
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerAddress {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One open connection of an address; released when dropped.
struct AddressSlot {
    map: Arc<PerAddress>,
    ip: std::net::IpAddr,
}

impl PerAddress {
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            map: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.map.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a connection is doing: requests in flight, requests seen, the last moment one
/// started or ended.
#[derive(Debug)]
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    seen: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<tokio::time::Instant>,
}

impl Activity {
    fn touch(&self) {
        if let Ok(mut l) = self.last.lock() {
            *l = tokio::time::Instant::now();
        }
    }
}

/// Ends the in-flight count of a request when its response is ready (or it is dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0.touch();
    }
}

/// One connection (TLS or plain), each request carrying the connection's facts. Closed when
/// no request arrives within `first_request_timeout` of accept, or none is in flight for
/// `idle_timeout`; on shutdown, closed gracefully.
async fn serve_connection<S>(
    http: &auto::Builder<TokioExecutor>,
    stream: S,
    info: ConnInfo,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    limits: &ServerLimits,
    accepted_at: tokio::time::Instant,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use std::sync::atomic::Ordering;
    let peer = info.peer;
    let activity = Arc::new(Activity {
        in_flight: std::sync::atomic::AtomicUsize::new(0),
        seen: std::sync::atomic::AtomicUsize::new(0),
        last: std::sync::Mutex::new(accepted_at),
    });
    let tracker = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let version = req.version();
        tracker.in_flight.fetch_add(1, Ordering::AcqRel);
        tracker.seen.fetch_add(1, Ordering::AcqRel);
        tracker.touch();
        let guard = InFlight(tracker.clone());
        let answer = router.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let mut resp = answer.await?;
            drop(guard);
            header_case::apply(version, &mut resp);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // closing: shut down gracefully (server stopping: the outer grace period bounds it);
    // idle_closed: closed for idling, dropped if it has not finished 5 s later
    let mut closing = false;
    let mut idle_closed = false;
    loop {
        let deadline = if idle_closed {
            tokio::time::Instant::now() + Duration::from_secs(5)
        } else if closing {
            tokio::time::Instant::now() + Duration::from_secs(3600)
        } else if activity.in_flight.load(Ordering::Acquire) > 0 {
            // a request is being answered: look again later
            tokio::time::Instant::now() + limits.idle_timeout
        } else if activity.seen.load(Ordering::Acquire) == 0 {
            accepted_at + limits.first_request_timeout
        } else {
            *activity.last.lock().unwrap_or_else(|p| p.into_inner()) + limits.idle_timeout
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !closing => {
                // stopping (or the listener is gone, its sender with it): close gracefully
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if idle_closed {
                    tracing::debug!(%peer, "connection dropped: it did not close after idling");
                    return;
                }
                if closing {
                    continue;
                }
                let idle = activity.in_flight.load(Ordering::Acquire) == 0;
                let last = *activity.last.lock().unwrap_or_else(|p| p.into_inner());
                let first = activity.seen.load(Ordering::Acquire) == 0;
                let limit = if first { limits.first_request_timeout } else { limits.idle_timeout };
                if idle && last.elapsed() >= limit {
                    crate::metrics::metrics().connection_idle_closed();
                    tracing::debug!(
                        %peer,
                        secs = limit.as_secs(),
                        "connection closed: {}",
                        if first { "no request in time" } else { "idle" }
                    );
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    idle_closed = true;
                }
            }
        }
    }
}
