//! SIGTERM on a real `estd serve`: it stops accepting at once, the request in flight (half
//! its body sent before the signal) still gets its certificate, and the process exits 0
//! within the grace period. Each listener says once, by name, that it stopped accepting.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("estd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (mut child, port) = spawn_estd(
        dir.path(),
        &[
            ("ESTD_LIMITS_SHUTDOWN_GRACE_SECS", "10"),
            ("ESTD_LIMITS_HEADER_READ_TIMEOUT_SECS", "30"),
            ("ESTD_LOG_FILTER", "info"),
        ],
        Stdio::from(log),
    );
    let password = std::fs::read_to_string(dir.path().join("admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let root = std::fs::read(dir.path().join("certs/root-ca.pem")).unwrap();
    let mut config = client_config(&root, None, false);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut t = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();

    // a request whose body is half sent when the signal arrives
    let body = b64(&csr(&key(Key::P256), "admin", &[]));
    let (first, second) = body.as_bytes().split_at(body.len() / 2);
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("admin:{password}"),
    );
    let head = format!(
        "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nContent-Type: application/pkcs10\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    t.write_all(head.as_bytes()).await.unwrap();
    t.write_all(first).await.unwrap();
    t.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // no longer accepting
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "the listener is closed"
    );

    // the request in flight completes
    t.write_all(second).await.unwrap();
    t.flush().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), t.read_to_end(&mut answer))
        .await
        .expect("answered")
        .ok();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &answer[text.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(certs_of(body).len(), 1, "a certificate");

    // and the process ends by itself, successfully
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("estd did not exit after SIGTERM")
    });
    assert!(status.success(), "{status}");

    // one line per listener, naming it
    let log = std::fs::read_to_string(&log_path).unwrap();
    let stopping: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no longer accepting"))
        .collect();
    for name in ["EST, API and portal", "revocation", "metrics"] {
        let named = stopping
            .iter()
            .filter(|l| l.contains(&format!("listener=\"{name}\"")))
            .count();
        assert_eq!(named, 1, "{name}: {stopping:#?}");
    }
    assert_eq!(stopping.len(), 3, "{stopping:#?}");
}
