//! The HTTP of SCEP: GetCACaps, GetCACert and PKIOperation (POST with the DER body, or
//! GET with it in the URL) over plain HTTP or HTTPS, one connection per request
//! (`Connection: close`, as SCEP clients do), answers bounded.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use rustls::pki_types::ServerName;

use crate::client::{Answer, ClientError};
use crate::scep_wire::request::{self, CaCerts};

pub use crate::scep_wire::operations::{CT_PKI_MESSAGE, Caps};

/// Where the SCEP service is: `http(s)://HOST[:PORT][/PATH][?QUERY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// `/cgi-bin/pkiclient.exe` when the URL has no path (RFC 8894's usual one).
    pub path: String,
    pub query: Option<String>,
}

impl ScepUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let u = url.trim();
        let lower = u.to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") {
            (true, &u[8..])
        } else if lower.starts_with("http://") {
            (false, &u[7..])
        } else {
            return Err(format!("{url:?}: give an http:// or https:// URL"));
        };
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(cut);
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the address"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                _ => (authority.to_string(), None),
            }
        };
        if host.is_empty() || host.contains('@') {
            return Err(format!("{url:?}: no host (or a user name in it)"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: {p:?} is not a port"))?,
            None if https => 443,
            None => 80,
        };
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string()).filter(|q| !q.is_empty())),
            None => (tail, None),
        };
        let path = if path.is_empty() || path == "/" {
            "/cgi-bin/pkiclient.exe".to_string()
        } else {
            path.to_string()
        };
        if path.chars().any(|c| c.is_control() || c == ' ' || c == '#') {
            return Err(format!(
                "{url:?}: the path holds spaces or control characters"
            ));
        }
        Ok(Self {
            https,
            host,
            port,
            path,
            query,
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The request target of an operation, with the message (base64) for a GET
    /// PKIOperation.
    pub fn target(&self, operation: &str, message: Option<&[u8]>) -> String {
        crate::scep_wire::operations::target(&self.path, self.query.as_deref(), operation, message)
    }
}

/// A SCEP client for one URL.
pub struct ScepClient {
    pub url: ScepUrl,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl ScepClient {
    /// `tls` is needed for an https:// URL (and ignored for http://).
    pub fn new(
        url: ScepUrl,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        if url.https && tls.is_none() {
            return Err(ClientError::Local(
                "an https:// URL needs a TLS configuration".into(),
            ));
        }
        Ok(Self { url, tls, timeout })
    }

    /// One request on a new connection (`Connection: close`, as SCEP clients do).
    async fn send(&self, target: String, post: Option<&[u8]>) -> Result<Answer, ClientError> {
        let t = self.timeout;
        let authority = self.url.authority();
        let tcp = tokio::time::timeout(
            t,
            tokio::net::TcpStream::connect((self.url.host.as_str(), self.url.port)),
        )
        .await
        .map_err(|_| ClientError::Connect(format!("{authority}: timed out")))?
        .map_err(|e| ClientError::Connect(format!("{authority}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut req = hyper::Request::builder()
            .uri(target)
            .header(hyper::header::HOST, &authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("estd-client/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONNECTION, "close");
        let body = match post {
            Some(b) => {
                req = req
                    .method(hyper::Method::POST)
                    .header(hyper::header::CONTENT_TYPE, CT_PKI_MESSAGE);
                b.to_vec()
            }
            None => Vec::new(),
        };
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        match &self.tls {
            Some(config) if self.url.https => {
                let name = ServerName::try_from(self.url.host.clone())
                    .map_err(|e| ClientError::Tls(format!("{:?}: {e}", self.url.host)))?;
                let tls = tokio::time::timeout(
                    t,
                    tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
                )
                .await
                .map_err(|_| ClientError::Tls("the handshake timed out".into()))?
                .map_err(|e| ClientError::Tls(e.to_string()))?;
                exchange(tls, req, t).await
            }
            _ => exchange(tcp, req, t).await,
        }
    }

    /// GetCACaps: one capability a line.
    pub async fn caps(&self) -> Result<Caps, ClientError> {
        let a = self.send(self.url.target("GetCACaps", None), None).await?;
        if a.status != 200 {
            return Err(a.refused());
        }
        Ok(Caps::parse(&a.body))
    }

    /// GetCACert: the certificates, and which is the CA and which the RA.
    pub async fn ca_certs(&self) -> Result<CaCerts, ClientError> {
        let a = self.send(self.url.target("GetCACert", None), None).await?;
        if a.status != 200 {
            return Err(a.refused());
        }
        request::ca_certs(a.content_type(), &a.body).map_err(|e| ClientError::Answer(e.to_string()))
    }

    /// PKIOperation: the pkiMessage out (POST, or GET with it in the URL), the CertRep in.
    pub async fn pki_operation(&self, msg: &[u8], post: bool) -> Result<Vec<u8>, ClientError> {
        let a = if post {
            self.send(self.url.target("PKIOperation", None), Some(msg))
                .await?
        } else {
            self.send(self.url.target("PKIOperation", Some(msg)), None)
                .await?
        };
        if a.status != 200 {
            return Err(a.refused());
        }
        Ok(a.body.to_vec())
    }
}

/// Sends a request over an open stream and reads the whole answer (bounded).
async fn exchange<IO>(
    io: IO,
    req: hyper::Request<Full<Bytes>>,
    t: Duration,
) -> Result<Answer, ClientError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    crate::client::exchange(&mut sender, req, t).await
}

#[cfg(test)]
mod tests {
    // Tests only: each unwrap asserts that a fixed, valid input is handled (a key made
    // here, a literal URL or code); its panic is the test failing, nothing the network sends.
    use super::*;

    #[test]
    fn urls() {
        let u = ScepUrl::parse("http://127.0.0.1:8080/scep/mdm").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 8080, "/scep/mdm")
        );
        assert_eq!(u.target("GetCACaps", None), "/scep/mdm?operation=GetCACaps");
        let u = ScepUrl::parse("HTTPS://[::1]/").unwrap();
        assert_eq!((u.https, u.port), (true, 443));
        assert_eq!(u.path, "/cgi-bin/pkiclient.exe");
        assert_eq!(u.authority(), "[::1]:443");
        let u = ScepUrl::parse("http://ca.example/cgi-bin/pkiclient.exe?x=1").unwrap();
        assert_eq!(u.port, 80);
        assert_eq!(
            u.target("PKIOperation", Some(&[0xfb, 0xff, 0xfe, 0x00])),
            "/cgi-bin/pkiclient.exe?x=1&operation=PKIOperation&message=%2B%2F%2F%2BAA%3D%3D"
        );
        for bad in [
            "ca.example/scep",
            "ftp://x/",
            "http://:80/",
            "http://x:port/",
            "http://[::1/",
        ] {
            assert!(ScepUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
