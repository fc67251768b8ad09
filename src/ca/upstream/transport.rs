//! What an upstream needs of HTTP, in estd's own types: the layers below the adapters name
//! no HTTP crate, so the connection itself is `outbound::HttpsTransport` (an adapter), handed
//! in by `app`.

use async_trait::async_trait;

/// One request to the upstream. `path` includes any query (`/.well-known/est/simpleenroll`).
#[derive(Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub path: String,
    /// Extra headers (`Content-Type`, `Authorization`); `Host` and `Content-Length` are the
    /// transport's.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for OutboundRequest {
    // credentials and the body (a CSR with its challenge) are never printed
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let v = if n.eq_ignore_ascii_case("authorization") {
                    "(redacted)"
                } else {
                    v.as_str()
                };
                (n.as_str(), v)
            })
            .collect();
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// The upstream's answer: status, headers (names lower-case), body (bounded by the
/// transport).
#[derive(Debug, Clone)]
pub struct OutboundAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundAnswer {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no answer came: all of these count against the upstream (its breaker).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// TCP connect refused or unreachable, or it took longer than the connect timeout.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake failed (the upstream's certificate is not trusted, say).
    #[error("TLS: {0}")]
    Tls(String),
    /// No complete answer within the request timeout.
    #[error("no answer within {0} s")]
    Timeout(u64),
    /// The answer was not HTTP, or its body is over the bound.
    #[error("{0}")]
    Protocol(String),
}

/// Sends one request to the upstream's server and reads the whole answer, within the
/// configured connect and request timeouts.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, req: OutboundRequest) -> Result<OutboundAnswer, TransportError>;
    /// Where it connects (`https://ca.example:8443`), for log lines and `/readyz`.
    fn endpoint(&self) -> String;
}
