//! What `HttpsTransport::new` reads: the origin, and the TLS client configuration (trust
//! anchors and client identity from PEM files).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TransportSettings;

/// The TLS client configuration: the upstream's trust anchors, TLS 1.3 and 1.2, ALPN
/// http/1.1, the client certificate when both its files are set.
pub(super) fn tls_config(s: &TransportSettings) -> Result<Arc<rustls::ClientConfig>, String> {
    let ca_file = s
        .ca_file
        .as_ref()
        .ok_or("an https:// origin needs ca_file (the upstream's trust anchors)")?;
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs("ca_file", ca_file)? {
        roots.add(c).map_err(|e| {
            format!(
                "ca_file {}: a certificate is unusable: {e}",
                ca_file.display()
            )
        })?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots);
    let mut config = match (&s.client_cert, &s.client_key) {
        (Some(cert), None) if s.client_token_key.is_some() => {
            let chain = read_certs("client_cert", cert)?;
            let key = s
                .client_token_key
                .clone()
                .ok_or("client_key: the token key is missing")?;
            // what with_client_auth_cert checks for a key file: the certificate is the key's
            let leaf = chain.first().ok_or("client_cert: no certificate")?;
            let spki = <x509_cert::Certificate as der::Decode>::from_der(leaf.as_ref())
                .map_err(|e| format!("client_cert {}: {e}", cert.display()))?;
            if spki
                .tbs_certificate()
                .subject_public_key_info()
                .subject_public_key
                .raw_bytes()
                != rcgen::PublicKeyData::der_bytes(key.as_ref())
            {
                return Err(format!(
                    "client_cert {} is not the certificate of the token key {}",
                    cert.display(),
                    key.uri()
                ));
            }
            let certified =
                rustls::sign::CertifiedKey::new(chain, Arc::new(super::token::TokenTlsKey(key)));
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                certified,
            )))
        }
        (Some(cert), Some(key)) => {
            let chain = read_certs("client_cert", cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client_key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client_cert {} with client_key: {e}", cert.display()))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err("client_cert is set without client_key".into()),
        (None, Some(_)) => return Err("client_key is set without client_cert".into()),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every PEM certificate in a file (at least one).
fn read_certs(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let at = |e: &dyn std::fmt::Display| format!("{setting} {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| at(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(&e))?;
    if certs.is_empty() {
        return Err(at(&"no PEM certificate in it"));
    }
    Ok(certs)
}

/// `https://host:port` or `http://host:port`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    pub(super) tls: bool,
    /// Without brackets for IPv6.
    pub(super) host: String,
    pub(super) port: u16,
}

impl Origin {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("origin {s:?}: {why}");
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &s[8..])
        } else if lower.starts_with("http://") {
            (false, &s[7..])
        } else {
            return Err(bad("not https://host:port or http://host:port"));
        };
        let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        if !path.is_empty() && path != "/" {
            return Err(bad("a path is not allowed here: give the origin only"));
        }
        if authority.contains('@') {
            return Err(bad("user information is not allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
        })
    }

    /// `host:port` (`[v6]:port`), for the Host header.
    pub(super) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

#[cfg(test)]
mod tests {
    // Tests only: each unwrap asserts that a literal origin is handled; its panic is the
    // test failing, nothing the network sends.
    use super::*;

    #[test]
    fn origins() {
        let o = Origin::parse("HTTPS://ca.example:8443/").unwrap();
        assert_eq!((o.tls, o.host.as_str(), o.port), (true, "ca.example", 8443));
        assert_eq!(o.to_string(), "https://ca.example:8443");
        let o = Origin::parse("http://[::1]").unwrap();
        assert_eq!((o.tls, o.host.as_str(), o.port), (false, "::1", 80));
        assert_eq!(o.authority(), "[::1]:80");
        assert_eq!(Origin::parse("https://10.0.0.1").unwrap().port, 443);
        for bad in [
            "ca.example:443",
            "ftp://ca.example",
            "https://ca.example/.well-known/est",
            "https://ca.example:0",
            "https://ca.example:x",
            "https://:443",
            "https://u:p@ca.example",
            "https://[::1",
            "https://::1:443",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
