//! The connection to an upstream CA server: `ca::upstream::Transport` over HTTP/1.1, on
//! rustls (TLS 1.3 or 1.2, ALPN `http/1.1`, the upstream verified against its own trust
//! anchors, optionally a client certificate) or on plain TCP (`http://`, for SCEP
//! upstreams). An adapter: the layers below name no HTTP crate, `app` hands this in.

mod setup;
mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::ca::upstream::{Method, OutboundAnswer, OutboundRequest, Transport, TransportError};

use setup::{Origin, tls_config};

/// Where and how to reach one upstream.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// The origin: `https://host:port` or `http://host:port` (port 443 or 80 when left
    /// out; a path other than "/" is refused: the caller strips it).
    pub origin: String,
    /// PEM trust anchors for the upstream's TLS server certificate (required for https).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented as TLS client certificate (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Or the key of `client_cert` in the CA's PKCS#11 token (`token::TokenTlsKey`).
    pub client_token_key: Option<Arc<crate::ca::pkcs11::TokenKey>>,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Writing the request plus reading the whole answer.
    pub request_timeout: Duration,
    /// Answer bodies larger than this are refused (`TransportError::Protocol`).
    pub max_answer: usize,
}

/// HTTP/1.1 to one upstream, over TLS for `https://`, plain for `http://`.
///
/// Connections are kept alive for the next requests (up to `MAX_IDLE`, idle at most
/// `IDLE_FOR`): a TLS handshake per connection, not per request. A kept connection the
/// upstream closed meanwhile is noticed before anything is written on it.
pub struct HttpsTransport {
    origin: Origin,
    /// `None` for `http://`.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_answer: usize,
    /// Connections kept for the next requests (`MAX_IDLE` at most).
    idle: std::sync::Mutex<Vec<Conn>>,
    /// The client key is in a PKCS#11 token (`client_token_key`).
    signs_in_token: bool,
}

impl std::fmt::Debug for HttpsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsTransport")
            .field("origin", &self.origin.to_string())
            .finish_non_exhaustive()
    }
}

impl HttpsTransport {
    /// Reads the trust anchors and the client identity; the error names the setting (and
    /// file) at fault.
    pub fn new(s: &TransportSettings) -> Result<Self, String> {
        let origin = Origin::parse(&s.origin)?;
        let tls = if origin.tls {
            let name = ServerName::try_from(origin.host.clone())
                .map_err(|e| format!("origin {:?}: {e}", s.origin))?;
            Some((tls_config(s)?, name))
        } else if s.ca_file.is_some()
            || s.client_cert.is_some()
            || s.client_key.is_some()
            || s.client_token_key.is_some()
        {
            return Err(format!(
                "ca_file, client_cert and client_key are for https://: the origin {:?} is plain \
                 http:// (no TLS)",
                s.origin
            ));
        } else {
            None
        };
        if s.max_answer == 0 {
            return Err("max_answer must be above 0".into());
        }
        Ok(Self {
            origin,
            tls,
            connect_timeout: s.connect_timeout,
            request_timeout: s.request_timeout,
            max_answer: s.max_answer,
            idle: std::sync::Mutex::new(Vec::new()),
            signs_in_token: s.client_token_key.is_some(),
        })
    }

    /// The request as hyper wants it: our `Host` and `Content-Length`, then the caller's
    /// headers (theirs for those two, and for framing, are dropped).
    fn request(&self, req: OutboundRequest) -> Result<hyper::Request<Full<Bytes>>, TransportError> {
        if !req.path.starts_with('/') {
            return Err(TransportError::Protocol(format!(
                "request path {:?}: not absolute",
                req.path
            )));
        }
        let method = match req.method {
            Method::Get => hyper::Method::GET,
            Method::Post => hyper::Method::POST,
        };
        let mut b = hyper::Request::builder()
            .method(method.clone())
            .uri(req.path.as_str())
            .header(header::HOST, self.origin.authority());
        if method == hyper::Method::POST || !req.body.is_empty() {
            b = b.header(header::CONTENT_LENGTH, req.body.len());
        }
        let ours = [
            header::HOST,
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ];
        let mut agent = false;
        for (name, value) in &req.headers {
            let bad = |e: &dyn std::fmt::Display| {
                TransportError::Protocol(format!("request header {name:?}: {e}"))
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
            if ours.contains(&name) {
                continue;
            }
            agent |= name == header::USER_AGENT;
            b = b.header(name, HeaderValue::from_str(value).map_err(|e| bad(&e))?);
        }
        if !agent {
            b = b.header(
                header::USER_AGENT,
                concat!("estd/", env!("CARGO_PKG_VERSION")),
            );
        }
        b.body(Full::new(Bytes::from(req.body)))
            .map_err(|e| TransportError::Protocol(format!("the request: {e}")))
    }

    /// A new connection: TCP, then TLS for `https://`, within the connect timeout; then
    /// HTTP/1.1 on it.
    async fn connect(&self) -> Result<Conn, TransportError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let secs = whole_seconds(self.connect_timeout);
        let addr = (self.origin.host.as_str(), self.origin.port);
        let tcp = tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| TransportError::Connect(format!("{}: not within {secs} s", self.origin)))?
            .map_err(|e| TransportError::Connect(format!("{}: {e}", self.origin)))?;
        let _ = tcp.set_nodelay(true);
        let origin = self.origin.to_string();
        let Some((config, name)) = &self.tls else {
            return tokio::time::timeout_at(deadline, http1(tcp, &origin))
                .await
                .map_err(|_| TransportError::Connect(format!("{origin}: not within {secs} s")))?;
        };
        let handshake = tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), tcp);
        let handshake = tokio::time::timeout_at(deadline, handshake);
        // a key in a token signs inside the handshake, synchronously (a session may have to
        // be waited for, a network HSM takes milliseconds): off the async workers' backs
        let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
        let done = if self.signs_in_token && multi_thread {
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(handshake))
        } else {
            handshake.await
        };
        let tls = done
            .map_err(|_| {
                TransportError::Connect(format!("{origin}: no TLS handshake within {secs} s"))
            })?
            .map_err(|e| TransportError::Tls(format!("{origin}: {e}")))?;
        tokio::time::timeout_at(deadline, http1(tls, &origin))
            .await
            .map_err(|_| TransportError::Connect(format!("{origin}: not within {secs} s")))?
    }

    /// A kept connection still open and not idle too long, if any.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            if !c.sender.is_closed() && c.idle_since.elapsed() < IDLE_FOR {
                return Some(c);
            }
        }
        None
    }

    /// Keeps a connection whose exchange ended well for the next request (at most
    /// `MAX_IDLE`; the upstream may close it meanwhile).
    fn keep(&self, mut c: Conn) {
        if c.sender.is_closed() {
            return;
        }
        c.idle_since = std::time::Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// Reads the whole answer, bounded.
    async fn read(
        &self,
        resp: hyper::Response<Incoming>,
    ) -> Result<OutboundAnswer, TransportError> {
        let max = self.max_answer;
        let origin = self.origin.to_string();
        let (parts, body) = resp.into_parts();
        let too_big = |what: &str| {
            TransportError::Protocol(format!("{origin}: the answer's body is {what} {max} bytes"))
        };
        if body.size_hint().lower() > max as u64 {
            return Err(too_big("announced over"));
        }
        let body = Limited::new(body, max).collect().await.map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                too_big("over")
            } else {
                failure(&origin, "reading the answer", e.as_ref())
            }
        })?;
        Ok(OutboundAnswer {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (n.as_str().to_string(), v)
                })
                .collect(),
            body: body.to_bytes().to_vec(),
        })
    }
}

#[async_trait]
impl Transport for HttpsTransport {
    async fn send(&self, req: OutboundRequest) -> Result<OutboundAnswer, TransportError> {
        let req = self.request(req)?;
        let origin = self.origin.to_string();
        let t = self.request_timeout;
        let late = || TransportError::Timeout(whole_seconds(t));
        // a kept connection first: one the upstream closed meanwhile hands the request back
        // unsent, and it goes on a new connection; so does one the upstream closed as the
        // request was written, without a byte of answer (its idle timeout racing our
        // request: nothing was processed). A request that got any answer is never sent
        // twice.
        let mut unsent = Some(req);
        let mut answered = None;
        // one deadline for the request, however many connections it tries
        let mut first = None;
        if let Some(mut c) = self.take_idle()
            && let Some(req) = unsent.take()
        {
            let again = clone_request(&req);
            let deadline = tokio::time::Instant::now() + t;
            first = Some(deadline);
            match tokio::time::timeout_at(deadline, c.sender.try_send_request(req)).await {
                Err(_) => return Err(late()),
                Ok(Ok(resp)) => answered = Some((c, resp, deadline)),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(req) => unsent = Some(req),
                    None if e.error().is_incomplete_message() => unsent = Some(again),
                    None => return Err(failure(&origin, "no answer", &e.into_error())),
                },
            }
        }
        let (c, resp, deadline) = match (answered, unsent) {
            (Some(a), _) => a,
            (None, Some(req)) => {
                let mut c = self.connect().await?;
                let deadline = first.unwrap_or_else(|| tokio::time::Instant::now() + t);
                let resp = tokio::time::timeout_at(deadline, c.sender.send_request(req))
                    .await
                    .map_err(|_| late())?
                    .map_err(|e| failure(&origin, "no answer", &e))?;
                (c, resp, deadline)
            }
            (None, None) => return Err(TransportError::Protocol("no request to send".into())),
        };
        let answer = tokio::time::timeout_at(deadline, self.read(resp))
            .await
            .map_err(|_| late())??;
        self.keep(c);
        Ok(answer)
    }

    fn endpoint(&self) -> String {
        self.origin.to_string()
    }
}

/// A copy of a request (its body is shared bytes), for the one resend on a new connection.
fn clone_request(req: &hyper::Request<Full<Bytes>>) -> hyper::Request<Full<Bytes>> {
    let mut copy = hyper::Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// A kept-alive connection: what sends on it, and its driver (aborted when dropped).
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    _driver: AbortOnDrop,
    idle_since: std::time::Instant,
}

/// Idle connections kept per upstream, and for how long at most (servers close idle
/// connections too: a closed one is noticed and dropped).
const MAX_IDLE: usize = 16;
const IDLE_FOR: Duration = Duration::from_secs(30);

/// HTTP/1.1 on a connected stream, its driver on a task of its own.
async fn http1<S>(io: S, origin: &str) -> Result<Conn, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failure(origin, "HTTP", &e))?;
    Ok(Conn {
        sender,
        _driver: AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        })),
        idle_since: std::time::Instant::now(),
    })
}

/// Aborts the task when dropped: a connection's driver ends with the connection (its
/// exchange failed or timed out, or it was not kept).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A timeout in whole seconds, rounded up (for `TransportError::Timeout`).
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// An error during the exchange: `Tls` when rustls is behind it (an alert from the server,
/// say a client certificate it wants), `Protocol` otherwise. The message carries the chain
/// of causes (hyper's own is terse).
fn failure(origin: &str, what: &str, e: &(dyn std::error::Error + 'static)) -> TransportError {
    let mut text = format!("{origin}: {what}: {e}");
    let mut tls = false;
    let mut cur = Some(e);
    while let Some(err) = cur {
        // an io::Error's source() skips the error it wraps: look at that one directly
        let wrapped = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        tls |= err.is::<rustls::Error>() || wrapped.is_some_and(|w| w.is::<rustls::Error>());
        cur = err.source();
        if let Some(next) = cur {
            text.push_str(&format!(": {next}"));
        }
    }
    if tls {
        TransportError::Tls(text)
    } else {
        TransportError::Protocol(text)
    }
}

#[cfg(test)]
mod tests {
    // Tests only: each unwrap asserts that a literal, valid setting is handled; its panic
    // is the test failing, nothing the network sends.
    use super::*;

    #[test]
    fn settings_name_what_is_wrong() {
        let s = |origin: &str| TransportSettings {
            origin: origin.into(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            max_answer: 1024,
            client_token_key: None,
        };
        let e = HttpsTransport::new(&s("https://ca.example")).unwrap_err();
        assert!(e.contains("ca_file"), "{e}");
        let mut plain = s("http://ca.example:8080");
        plain.client_cert = Some("c.pem".into());
        let e = HttpsTransport::new(&plain).unwrap_err();
        assert!(e.contains("client_cert"), "{e}");
        let mut missing = s("https://ca.example");
        missing.ca_file = Some("/nonexistent/ca.pem".into());
        let e = HttpsTransport::new(&missing).unwrap_err();
        assert!(e.contains("ca_file /nonexistent/ca.pem"), "{e}");
        let t = HttpsTransport::new(&s("http://127.0.0.1:8080/")).unwrap();
        assert_eq!(t.endpoint(), "http://127.0.0.1:8080");
    }
}
