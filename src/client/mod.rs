//! `estd client`: an EST client for estd and for any other EST server (RFC 7030 / 8951),
//! and the MDM connector's *test certificate* from the device side. HTTP/1.1 over rustls
//! (TLS 1.3 or 1.2), trust from a CA file or from RFC 7030 §4.1.1 bootstrap (the `/cacerts`
//! answer is trusted only when its fingerprint matches one given out of band).

pub mod bench;
pub mod cli;
pub mod scep;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use zeroize::Zeroizing;

use crate::est::SanEntry;

/// Answers larger than this are refused (a certificate chain is a few kilobytes).
const MAX_ANSWER: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    /// The server said no: its status, the first line of its answer, its request id.
    #[error("the server answered {status}: {reason}{}", request_id.as_ref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Refused {
        status: u16,
        reason: String,
        request_id: Option<String>,
    },
    #[error("the server's answer cannot be used: {0}")]
    Answer(String),
    #[error("{0}")]
    Local(String),
}

/// Where the EST server is: host, port, and the CA label (path segment) if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub label: Option<String>,
}

impl Endpoint {
    /// `server` may be a host name, an IP address (`[::1]` for IPv6), `host:port`, or a URL
    /// `https://host[:port][/…]`; `port` wins over a port in `server`; 443 otherwise.
    pub fn parse(server: &str, port: Option<u16>, label: Option<&str>) -> Result<Self, String> {
        let s = server.trim();
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("HTTPS://"))
            .unwrap_or(s);
        if s.starts_with("http://") {
            return Err("EST runs over TLS: use https:// (or just the host name)".into());
        }
        let authority = s.split('/').next().unwrap_or("");
        let (host, in_port) = if let Some(rest) = authority.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{server:?}: unclosed [ in the address"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                _ => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{server:?}: no host"));
        }
        let in_port = match in_port {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("{server:?}: {p:?} is not a port"))?,
            ),
            None => None,
        };
        if let Some(l) = label
            && !crate::est::valid_label(l)
        {
            return Err(format!(
                "{l:?} is not a CA label (letters, digits, - and _)"
            ));
        }
        Ok(Self {
            host,
            port: port.or(in_port).unwrap_or(443),
            label: label.map(str::to_string),
        })
    }

    /// The path of an operation, under the label when there is one.
    pub fn path(&self, op: &str) -> String {
        match &self.label {
            Some(l) => format!("/.well-known/est/{l}/{op}"),
            None => format!("/.well-known/est/{op}"),
        }
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// SHA-256 of a certificate, as `AB:CD:…` (what `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether a fingerprint given out of band (hex, any case, with or without colons or
/// spaces, optionally `sha256:`/`SHA256 Fingerprint=` in front) is this certificate's.
pub fn fingerprint_matches(given: &str, der: &[u8]) -> bool {
    let given = given.rsplit(['=']).next().unwrap_or(given);
    let given = given
        .strip_prefix("sha256:")
        .or_else(|| given.strip_prefix("SHA256:"))
        .unwrap_or(given);
    let normal: String = given
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_uppercase();
    normal.len() == 64 && normal == fingerprint(der).replace(':', "")
}

/// Accepts any server certificate but still checks the handshake signature: only for the
/// bootstrap `/cacerts` call, whose answer is trusted only after a fingerprint check.
#[derive(Debug)]
struct Provisional(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Provisional {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How the client decides to trust the server.
pub enum Trust {
    /// These CA certificates (the explicit trust anchors).
    Roots(Vec<CertificateDer<'static>>),
    /// Anyone, provisionally (bootstrap: the answer must be checked out of band).
    Provisional,
}

/// A TLS client configuration: TLS 1.3 and 1.2, ALPN http/1.1, and a client certificate
/// when re-enrolling.
pub fn tls_config(
    trust: Trust,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let builder = match trust {
        Trust::Roots(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| ClientError::Tls(format!("a CA certificate is unusable: {e}")))?;
            }
            builder.with_root_certificates(roots)
        }
        Trust::Provisional => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Provisional(provider))),
    };
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ClientError::Local(format!("the client certificate or key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One HTTP answer, body bounded.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// The server's reason, for people: a JSON `message`, else the first line of a text
    /// body (without a trailing NUL), at most 300 characters.
    pub fn reason(&self) -> String {
        let text = String::from_utf8_lossy(wire::clean(&self.body));
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(serde_json::Value::String(msg)) = m.get("message")
        {
            return msg.chars().take(300).collect();
        }
        let line = text.lines().next().unwrap_or("").trim();
        if line.is_empty() {
            "(no reason given)".into()
        } else {
            line.chars().take(300).collect()
        }
    }

    fn refused(&self) -> ClientError {
        ClientError::Refused {
            status: self.status,
            reason: self.reason(),
            request_id: self.header("x-request-id").map(str::to_string),
        }
    }
}

/// An open HTTP/1.1 connection over TLS.
pub struct Connection(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

/// What an enrollment came to.
pub enum Enrolled {
    /// The certificate first, then whatever else the server put in the PKCS#7.
    Issued(Vec<Vec<u8>>),
    /// 202: try again later.
    Pending { retry_after: Option<String> },
}

/// An EST client for one endpoint.
pub struct EstClient {
    pub endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    basic: Option<(String, Zeroizing<String>)>,
    timeout: Duration,
}

impl EstClient {
    pub fn new(
        endpoint: Endpoint,
        tls: Arc<rustls::ClientConfig>,
        basic: Option<(String, Zeroizing<String>)>,
        timeout: Duration,
    ) -> Self {
        Self {
            endpoint,
            tls,
            basic,
            timeout,
        }
    }

    /// A new TLS connection speaking HTTP/1.1, kept open for as many requests as the
    /// server allows.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let t = self.timeout;
        let addr = (self.endpoint.host.as_str(), self.endpoint.port);
        let tcp = tokio::time::timeout(t, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Connect(format!("{}: timed out", self.endpoint.authority())))?
            .map_err(|e| ClientError::Connect(format!("{}: {e}", self.endpoint.authority())))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.endpoint.host.clone())
            .map_err(|e| ClientError::Tls(format!("{:?}: {e}", self.endpoint.host)))?;
        let tls = tokio::time::timeout(
            t,
            tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| ClientError::Tls("the handshake timed out".into()))?
        .map_err(|e| ClientError::Tls(e.to_string()))?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection(sender))
    }

    /// One request on a new connection.
    pub async fn send(
        &self,
        method: hyper::Method,
        op: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        let mut conn = self.connect().await?;
        self.send_on(&mut conn, method, op, content_type, body)
            .await
    }

    /// One request on an open connection.
    pub async fn send_on(
        &self,
        conn: &mut Connection,
        method: hyper::Method,
        op: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        let t = self.timeout;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(self.endpoint.path(op))
            .header(hyper::header::HOST, self.endpoint.authority())
            .header(
                hyper::header::USER_AGENT,
                concat!("estd-client/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            req = req
                .header(hyper::header::CONTENT_TYPE, ct)
                .header("content-transfer-encoding", "base64");
        }
        if let Some((user, password)) = &self.basic {
            use base64::Engine;
            let token = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.as_str())),
            );
            req = req.header(hyper::header::AUTHORIZATION, format!("Basic {}", *token));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        conn.0
            .ready()
            .await
            .map_err(|e| ClientError::Http(format!("the connection closed: {e}")))?;
        exchange(&mut conn.0, req, t).await
    }

    /// `/cacerts`: the CA certificates, DER.
    pub async fn cacerts(&self) -> Result<Vec<Vec<u8>>, ClientError> {
        let a = self
            .send(hyper::Method::GET, "cacerts", None, Vec::new())
            .await?;
        if a.status != 200 {
            return Err(a.refused());
        }
        let der = wire::decode(&a.body).map_err(ClientError::Answer)?;
        wire::certs_from_pkcs7(&der).map_err(ClientError::Answer)
    }

    /// `/csrattrs`: one line per item; empty when the server asks nothing (204 or empty).
    pub async fn csrattrs(&self) -> Result<Vec<String>, ClientError> {
        let a = self
            .send(hyper::Method::GET, "csrattrs", None, Vec::new())
            .await?;
        match a.status {
            204 => Ok(Vec::new()),
            200 if wire::clean(&a.body).is_empty() => Ok(Vec::new()),
            200 => {
                let der = wire::decode(&a.body).map_err(ClientError::Answer)?;
                wire::describe_csrattrs(&der).map_err(ClientError::Answer)
            }
            _ => Err(a.refused()),
        }
    }

    /// `/simpleenroll` or `/simplereenroll` with a DER CSR.
    pub async fn enroll(&self, op: &str, csr_der: &[u8]) -> Result<Enrolled, ClientError> {
        let a = self
            .send(
                hyper::Method::POST,
                op,
                Some(crate::est::CT_PKCS10),
                crate::est::encode_body(csr_der),
            )
            .await?;
        match a.status {
            200 => {
                let der = wire::decode(&a.body).map_err(ClientError::Answer)?;
                let certs = wire::certs_from_pkcs7(&der).map_err(ClientError::Answer)?;
                Ok(Enrolled::Issued(certs))
            }
            202 => Ok(Enrolled::Pending {
                retry_after: a.header("retry-after").map(str::to_string),
            }),
            _ => Err(a.refused()),
        }
    }

    /// `/serverkeygen`: the certificate and the key the server generated.
    pub async fn serverkeygen(&self, csr_der: &[u8]) -> Result<wire::ServerKey, ClientError> {
        let a = self
            .send(
                hyper::Method::POST,
                "serverkeygen",
                Some(crate::est::CT_PKCS10),
                crate::est::encode_body(csr_der),
            )
            .await?;
        if a.status != 200 {
            return Err(a.refused());
        }
        wire::parse_serverkeygen(a.content_type(), &a.body).map_err(ClientError::Answer)
    }
}

/// Sends `req` and reads the whole answer (at most `MAX_ANSWER` bytes), each within `t`.
pub(crate) async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
    t: Duration,
) -> Result<Answer, ClientError> {
    let resp = tokio::time::timeout(t, sender.send_request(req))
        .await
        .map_err(|_| ClientError::Http("no answer in time".into()))?
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(t, Limited::new(body, MAX_ANSWER).collect())
        .await
        .map_err(|_| ClientError::Http("the answer did not arrive in time".into()))?
        .map_err(|e| ClientError::Http(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// A SAN given on the command line: `dns:…`, `email:…`, `upn:…`, `uri:…` or `ip:…`.
pub fn parse_san(s: &str) -> Result<SanEntry, String> {
    SanEntry::parse_arg(s)
}

/// A PKCS#10 request signed by `key`, with this subject and SAN.
pub fn build_csr(
    key: &rcgen::KeyPair,
    subject: rcgen::DistinguishedName,
    san: &[SanEntry],
) -> Result<Vec<u8>, String> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = subject;
    if !san.is_empty() {
        let der = crate::est::encode_san(san).map_err(|e| e.to_string())?;
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[2, 5, 29, 17],
                der,
            ));
    }
    let req = params.serialize_request(key).map_err(|e| e.to_string())?;
    Ok(req.der().to_vec())
}

/// The connector's SAN styles (the MDM's *Subject Alternative Name* choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SanStyleArg {
    None,
    Upn,
    #[value(name = "upn-email", alias = "upn+email")]
    UpnEmail,
    Other,
}

/// What the connector's test sends: the SAN its style makes of the test window's fields.
/// Missing values become `fill` (`Test`), or, when `fill` is empty, leave their entry out.
pub fn connector_san(
    style: SanStyleArg,
    pattern: &[String],
    vars: &crate::fields::SanVars,
    fill: &str,
) -> Result<Vec<SanEntry>, String> {
    let specs: Vec<String> = match style {
        SanStyleArg::None => Vec::new(),
        SanStyleArg::Upn => vec!["upn:%uname%@%domain%".into()],
        SanStyleArg::UpnEmail => vec!["upn:%uname%@%domain%".into(), "email:%email%".into()],
        SanStyleArg::Other => {
            if pattern.is_empty() {
                return Err(
                    "--san-style other needs --san-pattern KIND:TEXT (e.g. upn:%uname%@%domain%)"
                        .into(),
                );
            }
            pattern.to_vec()
        }
    };
    let entries = specs
        .iter()
        .map(|s| crate::fields::PatternEntry::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::fields::build_pattern(&entries, vars, fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = |s: &str, p: Option<u16>| Endpoint::parse(s, p, None).unwrap();
        assert_eq!(
            (
                e("est.example.com", None).host,
                e("est.example.com", None).port
            ),
            ("est.example.com".to_string(), 443)
        );
        assert_eq!(e("127.0.0.1:8443", None).port, 8443);
        assert_eq!(e("127.0.0.1:8443", Some(9443)).port, 9443);
        let url = e("https://testrfc7030.com:8443/.well-known/est", None);
        assert_eq!((url.host.as_str(), url.port), ("testrfc7030.com", 8443));
        let v6 = e("[::1]:8443", None);
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
        assert_eq!(v6.authority(), "[::1]:8443");
        assert!(Endpoint::parse("http://x", None, None).is_err());
        assert!(Endpoint::parse("x:port", None, None).is_err());
        assert!(Endpoint::parse("x", None, Some("a/b")).is_err());
        let l = Endpoint::parse("x", None, Some("mdm")).unwrap();
        assert_eq!(l.path("simpleenroll"), "/.well-known/est/mdm/simpleenroll");
        assert_eq!(e("x", None).path("cacerts"), "/.well-known/est/cacerts");
    }

    #[test]
    fn fingerprints_in_every_spelling() {
        let der = b"certificate";
        let fp = fingerprint(der);
        assert_eq!(fp.len(), 64 + 31);
        let plain = fp.replace(':', "");
        for given in [
            fp.clone(),
            plain.clone(),
            plain.to_ascii_lowercase(),
            format!("sha256:{plain}"),
            format!("SHA256 Fingerprint={fp}"),
        ] {
            assert!(fingerprint_matches(&given, der), "{given}");
        }
        assert!(!fingerprint_matches(&plain[..62], der));
        assert!(!fingerprint_matches(&fingerprint(b"other"), der));
        assert!(!fingerprint_matches("", der));
    }

    #[test]
    fn sans_from_the_command_line() {
        assert_eq!(
            parse_san("dns:a.example").unwrap(),
            SanEntry::Dns("a.example".into())
        );
        assert_eq!(
            parse_san("upn:joe@example.com").unwrap(),
            SanEntry::OtherName(crate::est::oids::UPN_OID.into(), "joe@example.com".into())
        );
        assert_eq!(
            parse_san("ip:127.0.0.1").unwrap(),
            SanEntry::Ip("127.0.0.1".parse().unwrap())
        );
        assert!(parse_san("dns").is_err());
        assert!(parse_san("ip:nope").is_err());
        assert!(parse_san("x400:foo").is_err());
    }

    #[test]
    fn the_connectors_san_styles() {
        let vars = crate::fields::SanVars {
            uname: Some("joe".into()),
            email: None,
            domain: Some("example.com".into()),
            cn: Some("TestCert".into()),
        };
        let upn = |s: &str| SanEntry::OtherName(crate::est::oids::UPN_OID.into(), s.into());
        assert_eq!(
            connector_san(SanStyleArg::None, &[], &vars, "Test").unwrap(),
            vec![]
        );
        assert_eq!(
            connector_san(SanStyleArg::Upn, &[], &vars, "Test").unwrap(),
            vec![upn("joe@example.com")]
        );
        assert_eq!(
            connector_san(SanStyleArg::UpnEmail, &[], &vars, "Test").unwrap(),
            vec![upn("joe@example.com"), SanEntry::Email("Test".into())]
        );
        assert_eq!(
            connector_san(SanStyleArg::UpnEmail, &[], &vars, "").unwrap(),
            vec![upn("joe@example.com")],
            "blank: the entry is left out"
        );
        assert_eq!(
            connector_san(
                SanStyleArg::Other,
                &["dns:%cn%.%domain%".into(), "uri:urn:x:%uname%".into()],
                &vars,
                "Test"
            )
            .unwrap(),
            vec![
                SanEntry::Dns("TestCert.example.com".into()),
                SanEntry::Uri("urn:x:joe".into())
            ]
        );
        assert!(connector_san(SanStyleArg::Other, &[], &vars, "Test").is_err());
        assert!(connector_san(SanStyleArg::Other, &["dns:%nope%".into()], &vars, "Test").is_err());
    }
}
