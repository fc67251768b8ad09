//! Small types shared by the server, the API and the enrollment service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// What the TLS layer learned about a connection, attached to each of its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client's certificate chain (leaf first, DER), verified against this CA at the
    /// handshake, when it sent one.
    pub client_chain: Option<Arc<Vec<Vec<u8>>>>,
    /// RFC 9266 tls-exporter value of the connection (32 bytes), for channel binding.
    pub exporter: Option<[u8; 32]>,
}

/// Facts about one request that the audit log records.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub peer: String,
    pub label: Option<String>,
}

/// A UTC time as fixed-width text, sortable as a string.
pub fn timestamp(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_fixed_width_and_sort() {
        let a = timestamp(SystemTime::UNIX_EPOCH + Duration::from_micros(1));
        let b = timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 365 * 60));
        assert_eq!(a, "1970-01-01T00:00:00.000001Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }
}
