//! Small types shared by the server, the API and the enrollment service.

use std::net::SocketAddr;
use std::sync::Arc;

/// What the TLS layer learned about a connection, attached to each of its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client's certificate chain (leaf first, DER), verified against this CA at the
    /// handshake, when it sent one.
    pub client_chain: Option<Arc<Vec<Vec<u8>>>>,
}

/// Facts about one request that the audit log records.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub peer: String,
    pub label: Option<String>,
}
