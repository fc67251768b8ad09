//! Every HTTP/1.1 response header name, on every listener, spelled exactly as its RFC spells
//! it — read as raw bytes off the socket, since every HTTP client library normalises names.
//! libest's client finds `WWW-Authenticate` and `Content-Type` with a case-sensitive
//! `strncmp`: `www-authenticate` (hyper's default) and `Www-Authenticate` (hyper's title
//! case) both lock it out.

mod common;

use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The spellings of the RFCs that define them (RFC 9110, 9111, 6265, 7030 §3.2.4, 6797,
/// W3C CSP and Referrer Policy; `X-Request-Id`, `X-Content-Type-Options`, `X-Frame-Options`
/// as commonly written). Written out here, not taken from estd, so that a wrong entry there
/// is caught.
const EXACT: &[&str] = &[
    "Allow",
    "Cache-Control",
    "Connection",
    "Content-Disposition",
    "Content-Length",
    "Content-Security-Policy",
    "Content-Transfer-Encoding",
    "Content-Type",
    "Date",
    "Location",
    "Referrer-Policy",
    "Retry-After",
    "Set-Cookie",
    "Strict-Transport-Security",
    "Transfer-Encoding",
    "Vary",
    "WWW-Authenticate",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-Request-Id",
];

/// A raw response: its status line and header lines, as sent.
struct Raw {
    status: String,
    lines: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn parse(what: &str, bytes: &[u8]) -> Self {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no header block in {:?}",
                    String::from_utf8_lossy(bytes)
                )
            });
        let head = std::str::from_utf8(&bytes[..end]).expect("ASCII head");
        let mut it = head.split("\r\n");
        let status = it.next().unwrap().to_string();
        let lines = it
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{what}: bad line {l:?}"));
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        Raw {
            status,
            lines,
            body: bytes[end + 4..].to_vec(),
        }
    }

    /// The value of a header found by its exact spelling, as a strict client finds it.
    fn exact(&self, name: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn assert_spelled(&self, what: &str) {
        for (name, _) in &self.lines {
            assert!(
                EXACT.contains(&name.as_str()),
                "{what}: header name {name:?} is not spelled as its RFC spells it ({})",
                self.status
            );
        }
    }
}

fn connector(s: &TestServer) -> tokio_rustls::TlsConnector {
    let mut config = client_config(&s.root_pem(), None, false);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One request over TLS (ALPN http/1.1) from `from` (127.0.0.1, 127.0.0.2, …); reads until
/// the server closes.
async fn https(s: &TestServer, from: &str, request: &str) -> Raw {
    let port = s.running.as_ref().unwrap().addr.port();
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let tcp = sock
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let mut stream = connector(s)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    Raw::parse(request.lines().next().unwrap_or_default(), &out)
}

async fn plain(url: &str, request: &str) -> Raw {
    let addr = url.trim_start_matches("http://");
    let addr = addr.split('/').next().unwrap();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    Raw::parse(request.lines().next().unwrap_or_default(), &out)
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n")
}

fn post(path: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

const MANUAL: &str = "name = \"manual\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\napproval = \"manual\"\nretry_after_secs = 7\n";

#[tokio::test]
async fn every_listener_spells_header_names_exactly() {
    let mut s = start_with_templates("", &[MANUAL]).await;
    let admin = basic("admin", &s.admin_password);
    let csr_b64 = b64(&csr(&key(Key::P256), "admin", &[]));
    let pkcs10 = "Content-Type: application/pkcs10\r\n";
    let mut seen: Vec<String> = Vec::new();
    let mut check = |what: &str, r: &Raw, status: &str, must: &[(&str, Option<&str>)]| {
        assert!(
            r.status.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {}",
            r.status
        );
        r.assert_spelled(what);
        for (name, value) in must {
            let got = r.exact(name);
            assert!(got.is_some(), "{what}: no {name:?} among {:?}", r.lines);
            if let Some(v) = value {
                assert_eq!(got, Some(*v), "{what}: {name}");
            }
        }
        seen.extend(r.lines.iter().map(|(n, _)| n.clone()));
    };

    // --- EST ---------------------------------------------------------------------------
    let r = https(&s, "127.0.0.1", &get("/.well-known/est/cacerts", "")).await;
    check(
        "cacerts",
        &r,
        "200",
        &[
            ("Content-Type", Some("application/pkcs7-mime")),
            ("Content-Transfer-Encoding", Some("base64")),
            ("Content-Length", None),
            ("X-Request-Id", None),
            ("Date", None),
        ],
    );
    let r = https(
        &s,
        "127.0.0.1",
        &get("/.well-known/est/devices/csrattrs", ""),
    )
    .await;
    check(
        "csrattrs",
        &r,
        "200",
        &[("Content-Type", Some("application/csrattrs"))],
    );
    let r = https(
        &s,
        "127.0.0.1",
        &post("/.well-known/est/simpleenroll", pkcs10, &csr_b64),
    )
    .await;
    check(
        "simpleenroll without credentials",
        &r,
        "401",
        &[
            ("WWW-Authenticate", Some("Basic realm=\"estd\"")),
            ("Content-Type", None),
        ],
    );
    let r = https(
        &s,
        "127.0.0.1",
        &post(
            "/.well-known/est/simpleenroll",
            &format!("{pkcs10}{admin}"),
            &csr_b64,
        ),
    )
    .await;
    check(
        "simpleenroll",
        &r,
        "200",
        &[(
            "Content-Type",
            Some("application/pkcs7-mime; smime-type=certs-only"),
        )],
    );
    let r = https(
        &s,
        "127.0.0.1",
        &post(
            "/.well-known/est/serverkeygen",
            &format!("{pkcs10}{admin}"),
            &csr_b64,
        ),
    )
    .await;
    check("serverkeygen", &r, "200", &[("Content-Type", None)]);
    assert!(
        r.exact("Content-Type")
            .unwrap()
            .starts_with("multipart/mixed; boundary=")
    );
    let r = https(
        &s,
        "127.0.0.1",
        &post(
            "/.well-known/est/manual/simpleenroll",
            &format!("{pkcs10}{admin}"),
            &csr_b64,
        ),
    )
    .await;
    check("pending", &r, "202", &[("Retry-After", Some("7"))]);
    let r = https(&s, "127.0.0.1", &get("/.well-known/est/simpleenroll", "")).await;
    check("wrong method", &r, "405", &[("Allow", Some("POST"))]);
    // throttled: a user name that does not exist, from another address
    let nobody = basic("nobody", "wrong");
    let mut throttled = None;
    for _ in 0..10 {
        let r = https(
            &s,
            "127.0.0.2",
            &post(
                "/.well-known/est/simpleenroll",
                &format!("{pkcs10}{nobody}"),
                &csr_b64,
            ),
        )
        .await;
        if r.status.starts_with("HTTP/1.1 429") {
            throttled = Some(r);
            break;
        }
    }
    check(
        "throttled",
        &throttled.expect("429 after repeated failures"),
        "429",
        &[("Retry-After", None)],
    );

    // --- JSON API and portal ---------------------------------------------------------
    let r = https(&s, "127.0.0.1", &get("/api/v1/certificates", "")).await;
    check(
        "API without credentials",
        &r,
        "401",
        &[("WWW-Authenticate", None)],
    );
    let r = https(&s, "127.0.0.1", &get("/api/v1/certificates", &admin)).await;
    check(
        "API",
        &r,
        "200",
        &[("Content-Type", Some("application/json"))],
    );
    let r = https(&s, "127.0.0.1", &get("/api/v1/bulk/template.csv", &admin)).await;
    check("CSV template", &r, "200", &[("Content-Disposition", None)]);
    let json =
        r#"{"template":"default","common_name":"admin","format":"pem","password":"Passw0rd_1"}"#;
    let r = https(
        &s,
        "127.0.0.1",
        &post(
            "/api/v1/certificates",
            &format!("Content-Type: application/json\r\n{admin}"),
            json,
        ),
    )
    .await;
    check(
        "API zip",
        &r,
        "200",
        &[
            ("Content-Type", Some("application/zip")),
            ("Content-Disposition", None),
        ],
    );
    let r = https(&s, "127.0.0.1", &get("/portal/login", "")).await;
    check(
        "portal log-in page",
        &r,
        "200",
        &[("Set-Cookie", None), ("Content-Security-Policy", None)],
    );
    let r = https(&s, "127.0.0.1", &get("/portal/", "")).await;
    check("portal redirect", &r, "303", &[("Location", None)]);
    let r = https(&s, "127.0.0.1", &get("/no/such/path", "")).await;
    check("404", &r, "404", &[("Content-Type", None)]);
    // hyper's own answer to a request it cannot parse
    let r = https(&s, "127.0.0.1", "GARBAGE\r\n\r\n").await;
    r.assert_spelled("hyper's 400");
    assert!(r.status.starts_with("HTTP/1.1 400"), "{}", r.status);

    // --- CRL and OCSP, metrics --------------------------------------------------------
    let crl = s.revocation_url("/crl/issuing-ca.crl");
    let r = plain(&crl, &get("/crl/issuing-ca.crl", "")).await;
    check(
        "CRL",
        &r,
        "200",
        &[("Content-Type", Some("application/pkix-crl"))],
    );
    let r = plain(
        &crl,
        &post("/ocsp", "Content-Type: application/ocsp-request\r\n", "x"),
    )
    .await;
    check(
        "OCSP",
        &r,
        "200",
        &[("Content-Type", Some("application/ocsp-response"))],
    );
    let metrics = s.metrics_url("/metrics");
    let r = plain(&metrics, &get("/metrics", "")).await;
    check("metrics", &r, "200", &[("Content-Type", None)]);
    let r = plain(&metrics, &get("/healthz", "")).await;
    check("healthz", &r, "200", &[]);
    let r = plain(&metrics, &post("/healthz", "", "")).await;
    check("healthz, wrong method", &r, "405", &[("Allow", None)]);

    // the body is untouched by all this: the base64 of a certificate chain
    let r = https(&s, "127.0.0.1", &get("/.well-known/est/cacerts", "")).await;
    assert_eq!(certs_of(&r.body).len(), 2);
    seen.sort();
    seen.dedup();
    eprintln!("header names seen: {}", seen.join(", "));
    assert!(
        seen.len() >= 15,
        "the requests above cover most names: {seen:?}"
    );
    s.stop().await;
}

/// HTTP/2 stays lower case (RFC 9113 §8.2.2: upper case is a malformed request): the same
/// server answers an h2 client, whose library would reject upper-case names.
#[tokio::test]
async fn http2_still_works() {
    let mut s = start().await;
    let c = client(&s.root_pem(), None, false);
    let r = c
        .post(s.url("/.well-known/est/simpleenroll"))
        .header("content-type", "application/pkcs10")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"estd\"");
    s.stop().await;
}
