//! The server's limits, each against a real TLS listener on 127.0.0.1 with small settings:
//! body size per route, header size, a slow client's headers, an idle keep-alive
//! connection, a client that never finishes its handshake, and the connection cap.
//! (Each checks that the server closes or refuses; the bounds only keep a broken server from
//! hanging the test.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: &str = "[limits]\nshutdown_grace_secs = 2\nhandshake_timeout_secs = 1\nheader_read_timeout_secs = 1\nmax_connections = 4\nmax_header_bytes = 8192\n";

fn port(s: &TestServer) -> u16 {
    s.url("")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

async fn tls(s: &TestServer) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut config = client_config(&s.root_pem(), None, false);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port(s))).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the server closes; the bytes read. Panics if it stays open for `bound`.
async fn until_closed<R: tokio::io::AsyncRead + Unpin>(r: &mut R, bound: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(bound, async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    out
}

#[tokio::test]
async fn body_size_per_route() {
    let mut s = start().await;
    let c = client(&s.root_pem(), None, false);
    let auth = ("admin", s.admin_password.clone());
    // EST: limits.max_body_bytes (64 KiB)
    let r = post_pkcs10(
        &c,
        s.url("/.well-known/est/simpleenroll"),
        Some((auth.0, &auth.1)),
        vec![b'A'; 70_000],
    )
    .await;
    assert_eq!(r.status(), 413);
    // JSON API: the same limit
    let r = c
        .post(s.url("/api/v1/certificates"))
        .basic_auth(auth.0, Some(&auth.1))
        .header("content-type", "application/json")
        .body(vec![b' '; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // portal forms: 64 KiB
    let r = c
        .post(s.url("/portal/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username={}", "a".repeat(70_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // the bulk upload: 1 MiB
    let form = reqwest::multipart::Form::new()
        .part(
            "csv",
            reqwest::multipart::Part::bytes(vec![b'a'; 1_100_000]).file_name("big.csv"),
        )
        .text("template", "eap-tls");
    let r = c
        .post(s.url("/api/v1/bulk"))
        .basic_auth(auth.0, Some(&auth.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    s.stop().await;
}

#[tokio::test]
async fn headers_too_large_get_431() {
    let mut s = start_with(LIMITS).await;
    let c = client(&s.root_pem(), None, false);
    let r = c
        .get(s.url("/.well-known/est/cacerts"))
        .header("x-padding", "a".repeat(9000))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 431),
        // HTTP/2 refuses the header list by resetting the stream
        Err(e) => assert!(format!("{e:?}").contains("h2") || e.is_request(), "{e:?}"),
    }
    // HTTP/1.1 says so
    let mut t = tls(&s).await;
    let req = format!(
        "GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let _ = t.write_all(req.as_bytes()).await;
    let answer = until_closed(&mut t, Duration::from_secs(5)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // a normal request still works
    let r = c
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_slow_client_cannot_hold_a_connection() {
    let mut s = start_with(LIMITS).await;
    // headers that never end
    let mut t = tls(&s).await;
    t.write_all(b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    until_closed(&mut t, Duration::from_secs(5)).await;
    // a handshake that never starts: TCP only
    let mut tcp = TcpStream::connect(("127.0.0.1", port(&s))).await.unwrap();
    until_closed(&mut tcp, Duration::from_secs(5)).await;
    s.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let mut s = start_with(LIMITS).await;
    let mut t = tls(&s).await;
    t.write_all(b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = t.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // then nothing: the server closes it (header_read_timeout covers the next request)
    until_closed(&mut t, Duration::from_secs(5)).await;
    s.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused() {
    let mut s = start_with(LIMITS).await;
    // four handshakes done and held (under the 1 s header timeout)
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tls(&s).await);
    }
    let mut config = client_config(&s.root_pem(), None, false);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port(&s))).await.unwrap();
    let fifth = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("answered at once");
    assert!(fifth.is_err(), "the fifth connection is closed");
    drop(held);
    // a slot frees up when a connection ends
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = client(&s.root_pem(), None, false);
    let r = c
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
