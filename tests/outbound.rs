//! `outbound::HttpsTransport` against small servers on 127.0.0.1: TLS with and without a
//! client certificate, an untrusted server, nothing listening, a server that never answers
//! or never handshakes, an answer over the bound, plain http://.
//!
//! Tests only: each unwrap asserts that a fixture made here (a key, a certificate, a
//! socket on 127.0.0.1) works; its panic is the test failing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use estd::ca::upstream::{Method, OutboundRequest, Transport, TransportError};
use estd::outbound::{HttpsTransport, TransportSettings};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A CA that signs the fixtures' certificates.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    /// A certificate for these names (DNS names or IP addresses) and its key.
    fn issue(&self, names: &[&str], client: bool) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, "fixture");
        if client {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = p
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .unwrap();
        (cert, key)
    }

    fn der(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap()
    }
}

/// What a server saw of one request.
#[derive(Debug)]
struct Seen {
    head: String,
    body: Vec<u8>,
    client_cert: bool,
}

/// Reads one request (head, then a Content-Length body), answers 200 (GET) or 201 (POST)
/// with `answer` as body, and reports what it read.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    client_cert: bool,
    answer: &[u8],
    seen: &mpsc::UnboundedSender<Seen>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let status = if head.starts_with("POST ") {
        "201 Created"
    } else {
        "200 OK"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nX-Echo-Length: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        answer.len()
    )
    .into_bytes();
    out.extend_from_slice(answer);
    let _ = io.write_all(&out).await;
    let _ = io.shutdown().await;
    let _ = seen.send(Seen {
        head,
        body,
        client_cert,
    });
}

/// A server on 127.0.0.1:0: TLS with `tls`, plain otherwise. Returns its port and what it
/// sees.
async fn server(
    tls: Option<rustls::ServerConfig>,
    answer: &'static [u8],
) -> (u16, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        let Ok(tls) = a.accept(tcp).await else {
                            return;
                        };
                        let cert = tls.get_ref().1.peer_certificates().is_some();
                        serve_one(tls, cert, answer, &tx).await;
                    }
                    None => serve_one(tcp, false, answer, &tx).await,
                }
            });
        }
    });
    (port, rx)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS server configuration with a certificate from `ca` for localhost and 127.0.0.1;
/// client certificates from `clients` required when given.
fn server_tls(ca: &Ca, clients: Option<&Ca>) -> rustls::ServerConfig {
    server_tls_versions(ca, clients, rustls::DEFAULT_VERSIONS)
}

fn server_tls_versions(
    ca: &Ca,
    clients: Option<&Ca>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ServerConfig {
    let (cert, key) = ca.issue(&["localhost", "127.0.0.1"], false);
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match clients {
        Some(c) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(c.der()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap()
}

/// Writes `text` to a file in `dir`.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn settings(origin: String, ca_file: Option<PathBuf>) -> TransportSettings {
    TransportSettings {
        origin,
        ca_file,
        client_cert: None,
        client_key: None,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        max_answer: 64 * 1024,
        client_token_key: None,
    }
}

fn get(path: &str) -> OutboundRequest {
    OutboundRequest {
        method: Method::Get,
        path: path.into(),
        headers: vec![],
        body: vec![],
    }
}

fn post(path: &str, body: &[u8]) -> OutboundRequest {
    OutboundRequest {
        method: Method::Post,
        path: path.into(),
        headers: vec![
            ("Content-Type".into(), "application/pkcs10".into()),
            ("Authorization".into(), "Basic cmE6c2VjcmV0".into()),
        ],
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn get_and_post_over_tls() {
    let ca = Ca::new("Upstream Root");
    let (port, mut seen) = server(Some(server_tls(&ca, None)), b"hello from upstream").await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = file(&dir, "ca.pem", &ca.pem);
    for host in ["localhost", "127.0.0.1"] {
        let t = HttpsTransport::new(&settings(
            format!("https://{host}:{port}/"),
            Some(ca_file.clone()),
        ))
        .unwrap();
        assert_eq!(t.endpoint(), format!("https://{host}:{port}"));

        let a = t.send(get("/.well-known/est/cacerts")).await.unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), Some("text/plain"));
        assert_eq!(a.header("X-Echo-Length"), Some("0"));
        assert_eq!(a.body, b"hello from upstream");
        let s = seen.recv().await.unwrap();
        assert!(
            s.head
                .starts_with("GET /.well-known/est/cacerts HTTP/1.1\r\n"),
            "{}",
            s.head
        );
        let lower = s.head.to_ascii_lowercase();
        assert!(
            lower.contains(&format!("\r\nhost: {host}:{port}\r\n")),
            "{}",
            s.head
        );
        assert!(!s.client_cert);

        let a = t
            .send(post("/.well-known/est/simpleenroll", b"MIIB...csr"))
            .await
            .unwrap();
        assert_eq!(a.status, 201);
        assert_eq!(a.header("x-echo-length"), Some("10"));
        let s = seen.recv().await.unwrap();
        assert!(
            s.head
                .starts_with("POST /.well-known/est/simpleenroll HTTP/1.1\r\n")
        );
        let lower = s.head.to_ascii_lowercase();
        for h in [
            format!("host: {host}:{port}"),
            "content-length: 10".into(),
            "content-type: application/pkcs10".into(),
            "authorization: basic cme6c2vjcmv0".into(),
        ] {
            assert!(
                lower.contains(&format!("\r\n{h}\r\n")),
                "{h} not in {}",
                s.head
            );
        }
        assert_eq!(s.body, b"MIIB...csr");
    }
}

#[tokio::test]
async fn client_certificate_when_the_server_asks() {
    let ca = Ca::new("Upstream Root");
    let clients = Ca::new("RA Clients");
    let (port, mut seen) = server(Some(server_tls(&ca, Some(&clients))), b"ok").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = clients.issue(&["ra.example"], true);
    let mut s = settings(
        format!("https://localhost:{port}"),
        Some(file(&dir, "ca.pem", &ca.pem)),
    );

    // without a certificate: the server refuses (a TLS alert after the TLS 1.3 handshake)
    let t = HttpsTransport::new(&s).unwrap();
    let e = t.send(get("/x")).await.unwrap_err();
    assert!(
        matches!(e, TransportError::Tls(_) | TransportError::Protocol(_)),
        "{e:?}"
    );

    s.client_cert = Some(file(&dir, "ra.pem", &cert.pem()));
    s.client_key = Some(file(&dir, "ra.key", &key.serialize_pem()));
    let t = HttpsTransport::new(&s).unwrap();
    let a = t.send(get("/x")).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ok"[..]));
    assert!(seen.recv().await.unwrap().client_cert);
}

#[tokio::test]
async fn an_untrusted_server_is_a_tls_error() {
    let ca = Ca::new("Upstream Root");
    let other = Ca::new("Someone Else");
    let (port, _seen) = server(Some(server_tls(&other, None)), b"ok").await;
    let dir = tempfile::tempdir().unwrap();
    let t = HttpsTransport::new(&settings(
        format!("https://localhost:{port}"),
        Some(file(&dir, "ca.pem", &ca.pem)),
    ))
    .unwrap();
    let e = t.send(get("/x")).await.unwrap_err();
    assert!(matches!(e, TransportError::Tls(_)), "{e:?}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let t = HttpsTransport::new(&settings(format!("http://127.0.0.1:{port}"), None)).unwrap();
    let e = t.send(get("/x")).await.unwrap_err();
    assert!(matches!(e, TransportError::Connect(_)), "{e:?}");
}

/// Accepts connections and holds them, silent.
async fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    port
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let port = silent_listener().await;
    let mut s = settings(format!("http://127.0.0.1:{port}"), None);
    s.request_timeout = Duration::from_secs(1);
    let t = HttpsTransport::new(&s).unwrap();
    let started = Instant::now();
    let e = t.send(post("/scep", b"pkiMessage")).await.unwrap_err();
    assert!(matches!(e, TransportError::Timeout(1)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // over https: the handshake never completes, within the connect timeout
    let ca = Ca::new("Upstream Root");
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(
        format!("https://localhost:{port}"),
        Some(file(&dir, "ca.pem", &ca.pem)),
    );
    s.connect_timeout = Duration::from_secs(1);
    s.request_timeout = Duration::from_secs(60);
    let t = HttpsTransport::new(&s).unwrap();
    let started = Instant::now();
    let e = t.send(get("/x")).await.unwrap_err();
    assert!(
        matches!(e, TransportError::Connect(_) | TransportError::Tls(_)),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn an_answer_over_the_bound_is_refused() {
    static BIG: [u8; 5000] = [b'x'; 5000];
    let ca = Ca::new("Upstream Root");
    let (port, _seen) = server(Some(server_tls(&ca, None)), &BIG).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(
        format!("https://localhost:{port}"),
        Some(file(&dir, "ca.pem", &ca.pem)),
    );
    s.max_answer = 4999;
    let e = HttpsTransport::new(&s)
        .unwrap()
        .send(get("/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, TransportError::Protocol(m) if m.contains("announced over 4999")),
        "{e:?}"
    );
    s.max_answer = 5000;
    let a = HttpsTransport::new(&s)
        .unwrap()
        .send(get("/x"))
        .await
        .unwrap();
    assert_eq!(a.body.len(), 5000);

    // no Content-Length: chunks, counted as they come
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut head = [0u8; 1024];
            let _ = tcp.read(&mut head).await;
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..10 {
                out.extend_from_slice(b"3e8\r\n");
                out.extend_from_slice(&[b'y'; 1000]);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            let _ = tcp.write_all(&out).await;
        }
    });
    let mut s = settings(format!("http://127.0.0.1:{port}"), None);
    s.max_answer = 4999;
    let t = HttpsTransport::new(&s).unwrap();
    let e = t.send(get("/x")).await.unwrap_err();
    assert!(
        matches!(&e, TransportError::Protocol(m) if m.contains("over 4999 bytes")),
        "{e:?}"
    );
    s.max_answer = 10_000;
    let a = HttpsTransport::new(&s)
        .unwrap()
        .send(get("/x"))
        .await
        .unwrap();
    assert_eq!(a.body.len(), 10_000);
}

#[tokio::test]
async fn plain_http() {
    let (port, mut seen) = server(None, b"scep answer").await;
    let t = HttpsTransport::new(&settings(format!("http://127.0.0.1:{port}"), None)).unwrap();
    let a = t
        .send(post("/scep/pkiclient.exe?operation=PKIOperation", b"msg"))
        .await
        .unwrap();
    assert_eq!((a.status, a.body.as_slice()), (201, &b"scep answer"[..]));
    let s = seen.recv().await.unwrap();
    assert!(
        s.head
            .starts_with("POST /scep/pkiclient.exe?operation=PKIOperation HTTP/1.1\r\n")
    );
    assert!(
        s.head
            .to_ascii_lowercase()
            .contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n"))
    );
    assert_eq!(s.body, b"msg");
}

/// The RA's TLS key in a PKCS#11 token (SoftHSM2 in a temporary directory): a P-256 key
/// and an RSA-2048 key made in the token sign the handshake (ECDSA; RSASSA-PSS under TLS
/// 1.3 and PKCS#1 v1.5 under a TLS 1.2 server that offers it), for a client certificate
/// the server requires.
#[tokio::test(flavor = "multi_thread")]
async fn the_client_key_may_be_in_a_pkcs11_token() {
    const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    assert!(
        std::path::Path::new(MODULE).exists(),
        "SoftHSM2 is not installed ({MODULE}); tests/run.sh installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = file(
        &dir,
        "softhsm2.conf",
        &format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    );
    // the module reads its configuration once per process (nextest: one per test)
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let init = std::process::Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "ra",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let uri = |object: &str| {
        estd::ca::pkcs11::Pkcs11Uri::parse(&format!("pkcs11:token=ra;object={object}")).unwrap()
    };
    let token = estd::ca::pkcs11::Token::open(MODULE, &uri("ra-ec"), "1234", 2).unwrap();

    let ca = Ca::new("Upstream Root");
    let clients = Ca::new("RA Clients");
    for (object, key_type) in [
        ("ra-ec", estd::est::KeyType::EcP256),
        ("ra-rsa", estd::est::KeyType::Rsa(2048)),
    ] {
        let (key, made) = token.key_or_generate(&uri(object), key_type).unwrap();
        assert!(made);
        // a client certificate for the token's key, from the clients' CA
        let mut p = CertificateParams::new(vec!["ra.example".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, object);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p
            .signed_by(&key, &Issuer::from_params(&clients.params, &clients.key))
            .unwrap();
        let key = Arc::new(key);
        for tls12 in [false, true] {
            let versions: &[&'static rustls::SupportedProtocolVersion] = if tls12 {
                &[&rustls::version::TLS12]
            } else {
                &[&rustls::version::TLS13]
            };
            let (port, mut seen) = server(
                Some(server_tls_versions(&ca, Some(&clients), versions)),
                b"ok",
            )
            .await;
            let mut s = settings(
                format!("https://localhost:{port}"),
                Some(file(&dir, "ca.pem", &ca.pem)),
            );
            s.client_cert = Some(file(&dir, "ra.pem", &cert.pem()));
            s.client_token_key = Some(key.clone());
            let t = HttpsTransport::new(&s).unwrap();
            let a = t.send(get("/x")).await.unwrap();
            assert_eq!((a.status, object, tls12), (200, object, tls12));
            assert!(seen.recv().await.unwrap().client_cert);
        }
    }
    // the last certificate (the RSA key's) with the EC key: refused when the transport is
    // made, as a key file that is not the certificate's is
    let mut s = settings(
        "https://localhost:1".into(),
        Some(file(&dir, "ca.pem", &ca.pem)),
    );
    s.client_cert = Some(dir.path().join("ra.pem"));
    s.client_token_key = Some(Arc::new(token.key(&uri("ra-ec")).unwrap()));
    let e = HttpsTransport::new(&s).unwrap_err();
    assert!(e.contains("not the certificate of the token key"), "{e}");
}

/// A plain HTTP/1.1 server that answers every request on a connection (`Content-Length:
/// 2`, "ok") and counts the connections it accepts; with `close_after`, it closes each
/// connection after that many answers without saying so (no `Connection: close`), as a
/// server whose idle timeout races the next request does.
async fn counting_server(close_after: Option<usize>) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut answered = 0;
                loop {
                    // one request: the head (these requests are GETs without a body)
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if tcp.write_all(ok).await.is_err() {
                        return;
                    }
                    answered += 1;
                    if close_after == Some(answered) {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn connections_are_kept_for_the_next_requests() {
    let (port, accepted) = counting_server(None).await;
    let t = HttpsTransport::new(&settings(format!("http://127.0.0.1:{port}"), None)).unwrap();
    for _ in 0..5 {
        let a = t.send(get("/x")).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"ok"[..]));
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

    // a server that closes each connection after its answer without saying so: every
    // request still gets its answer (on a new connection)
    let (port, accepted) = counting_server(Some(1)).await;
    let t = HttpsTransport::new(&settings(format!("http://127.0.0.1:{port}"), None)).unwrap();
    for _ in 0..5 {
        let a = t.send(get("/x")).await.unwrap();
        assert_eq!(a.status, 200);
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5);
}

/// The bearer tokens' key set fetched from an identity provider's JWKS URL over TLS (what
/// `[tokens] jwks_url` does at start and on its schedule); an answer that is no key set is
/// an error, and the keys there are stay.
#[tokio::test]
async fn a_jwks_is_fetched_over_tls() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca = Ca::new("IdP Root");
    let jwks = br#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    let (port, mut seen) = server(Some(server_tls(&ca, None)), jwks).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = file(&dir, "ca.pem", &ca.pem);
    let t = HttpsTransport::new(&settings(
        format!("https://localhost:{port}"),
        Some(ca_file.clone()),
    ))
    .unwrap();
    let keys = estd::service::tokens::fetch(&t, "/.well-known/jwks.json")
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        seen.recv()
            .await
            .unwrap()
            .head
            .starts_with("GET /.well-known/jwks.json HTTP/1.1\r\n")
    );
    let (port, _) = server(Some(server_tls(&ca, None)), b"<html>not a key set</html>").await;
    let t = HttpsTransport::new(&settings(
        format!("https://localhost:{port}"),
        Some(ca_file),
    ))
    .unwrap();
    let e = estd::service::tokens::fetch(&t, "/jwks")
        .await
        .err()
        .unwrap_or_default();
    assert!(e.contains("not JSON"), "{e}");
}
