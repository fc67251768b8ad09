//! Abuse resistance, as a hostile client and as a busy fleet, against a real TLS listener
//! with small settings, clients on extra loopback addresses (127.0.0.2, …):
//! - connections: closed when no request comes in time, when idle (HTTP/1.1 keep-alive and
//!   HTTP/2), on the TLS and the plain listeners; a per-address cap;
//! - the throttle: a guesser is slowed, the victim's right password from another address
//!   works meanwhile, the guesser's rate is bounded;
//! - password checks bounded: a burst of wrong passwords gets 503 + Retry-After beyond the
//!   bound, and the server keeps answering;
//! - sessions end with `passwd`, `disable`, `delete`; cookie writes to the API need the CSRF
//!   token; HSTS and nosniff;
//! - the audit log: identifiers with control characters refused, unauthenticated failures
//!   recorded up to a rate and summed up beyond it, old rows purged.
//!
//! (Bounds on waits only keep a broken server from hanging the test.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SETTINGS: &str = "[limits]\nshutdown_grace_secs = 2\nfirst_request_timeout_secs = 1\nidle_timeout_secs = 2\nmax_connections_per_address = 3\n\
[auth]\nmax_concurrent_checks = 1\nmax_waiting = 2\nfailures_per_user_and_address = 3\nfailures_per_address = 5\nslowed_check_interval_ms = 1000\nslowed_user_check_interval_secs = 60\n\
[audit]\nunauthenticated_per_minute = 5\n";

fn port(s: &TestServer) -> u16 {
    s.running.as_ref().unwrap().addr.port()
}

async fn tcp_from(from: &str, port: u16) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    sock.connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap()
}

async fn tls_from(
    s: &TestServer,
    from: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut config = client_config(&s.root_pem(), None, false);
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::try_from("localhost").unwrap(),
            tcp_from(from, port(s)).await,
        )
        .await
        .unwrap()
}

/// How long until the server closes the connection (reading whatever it sends).
async fn closed_after<R: tokio::io::AsyncRead + Unpin>(r: &mut R, bound: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(bound, async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    started.elapsed()
}

/// A client on its own loopback address, HTTP/1.1 or HTTP/2 as it likes.
fn client_from(s: &TestServer, from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&s.root_pem(), None, false))
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_on_every_listener() {
    let mut s = start_with(SETTINGS).await;
    // TLS done, no request: closed after first_request_timeout (1 s)
    let mut idle = tls_from(&s, "127.0.0.2", b"http/1.1").await;
    let t = closed_after(&mut idle, Duration::from_secs(10)).await;
    assert!(t >= Duration::from_millis(500), "closed after {t:?}");
    // a raw TCP connection to the plain CRL/OCSP listener that sends nothing
    let crl = s.running.as_ref().unwrap().revocation_addr.unwrap();
    let mut raw = TcpStream::connect(crl).await.unwrap();
    closed_after(&mut raw, Duration::from_secs(10)).await;
    // one request over HTTP/1.1 keep-alive, then nothing: closed after idle_timeout (2 s)
    let mut kept = tls_from(&s, "127.0.0.2", b"http/1.1").await;
    kept.write_all(b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let t = closed_after(&mut kept, Duration::from_secs(15)).await;
    assert!(t >= Duration::from_millis(1500), "closed after {t:?}");
    // HTTP/2: a request, then an idle connection the client would keep for ever
    let h2 = client_from(&s, "127.0.0.3");
    let r = h2
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let before = estd::metrics::metrics().render(&[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = estd::metrics::metrics().render(&[]);
    let closed = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("estd_connections_idle_closed_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        closed(&after) > closed(&before),
        "the idle HTTP/2 connection was closed"
    );
    // and the client just opens a new one
    let r = h2
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let mut s = start_with(SETTINGS).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tls_from(&s, "127.0.0.4", b"http/1.1").await);
    }
    // the fourth from that address is closed at once (no TLS handshake)
    let mut config = client_config(&s.root_pem(), None, false);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let fourth = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::try_from("localhost").unwrap(),
            tcp_from("127.0.0.4", port(&s)).await,
        )
        .await;
    assert!(fourth.is_err(), "a fourth connection from one address");
    // another address is served
    let r = client_from(&s, "127.0.0.5")
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(held);
    s.stop().await;
}

async fn enroll(c: &reqwest::Client, s: &TestServer, user: &str, pw: &str) -> (u16, Option<u64>) {
    let r = post_pkcs10(
        c,
        s.url("/.well-known/est/simpleenroll"),
        Some((user, pw)),
        b64(&csr(&key(Key::P256), user, &[])),
    )
    .await;
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (r.status().as_u16(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_is_slowed_and_the_victim_is_not_locked_out() {
    let mut s = start_with(SETTINGS).await;
    let hash = estd::auth::hash_password("Fleet-password-1").unwrap();
    s.state()
        .store
        .add_user("fleet", &hash, &["est-users".into()])
        .await
        .unwrap();
    let attacker = client_from(&s, "127.0.0.10");
    let victim = client_from(&s, "127.0.0.11");
    // the attacker hammers the fleet account for 5 s; the victim enrolls meanwhile from
    // another address with the right password
    let started = Instant::now();
    let hammer = {
        let (attacker, url) = (attacker.clone(), s.url("/.well-known/est/simpleenroll"));
        tokio::spawn(async move {
            let (mut checked, mut slowed, mut n) = (0u32, 0u32, 0u32);
            while started.elapsed() < Duration::from_secs(5) {
                let r = post_pkcs10(
                    &attacker,
                    url.clone(),
                    Some(("fleet", &format!("guess-{n}"))),
                    b64(&csr(&key(Key::P256), "fleet", &[])),
                )
                .await;
                match r.status().as_u16() {
                    401 => checked += 1,
                    429 | 503 => slowed += 1,
                    other => panic!("the attacker got {other}"),
                }
                n += 1;
            }
            (checked, slowed)
        })
    };
    let mut victim_ok = 0;
    for _ in 0..5 {
        let (status, _) = enroll(&victim, &s, "fleet", "Fleet-password-1").await;
        assert_eq!(status, 200, "the victim, from another address");
        victim_ok += 1;
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let (checked, slowed) = hammer.await.unwrap();
    // 3 failures for the user there, then one check a minute for it: at most 3 + 1 guesses
    // were verified in 5 s; the rest waited
    assert!(checked <= 4, "{checked} guesses checked, {slowed} slowed");
    assert!(slowed > 0, "the attacker was slowed");
    assert_eq!(victim_ok, 5);
    // the victim's right password at the attacker's address: slowed (one check a minute),
    // never refused for good — and remembered credentials pass at once
    let (status, retry) = enroll(&attacker, &s, "fleet", "Fleet-password-1").await;
    assert!(
        status == 200 || (status == 429 && retry.is_some_and(|r| r <= 60)),
        "{status} {retry:?}"
    );
    // devices behind the attacker's address with other accounts: the address is slowed
    // to one check a second, not refused
    let hash = estd::auth::hash_password("Other-password-1").unwrap();
    s.state()
        .store
        .add_user("other", &hash, &["est-users".into()])
        .await
        .unwrap();
    let mut got = None;
    for _ in 0..5 {
        let (status, retry) = enroll(&attacker, &s, "other", "Other-password-1").await;
        if status == 200 {
            got = Some(status);
            break;
        }
        assert_eq!(status, 429);
        tokio::time::sleep(Duration::from_secs(retry.unwrap_or(1))).await;
    }
    assert_eq!(
        got,
        Some(200),
        "a device behind the slowed address gets through"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_is_bounded() {
    let mut s = start_with(SETTINGS).await;
    // 40 different users at once from 40 addresses (the throttle is not what stops them):
    // one check runs, two wait, the rest are told to come back
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let c = client_from(&s, &format!("127.0.1.{}", i + 1));
        let url = s.url("/.well-known/est/simpleenroll");
        set.spawn(async move {
            let r = post_pkcs10(
                &c,
                url,
                Some((&format!("user{i}"), "wrong")),
                b64(&csr(&key(Key::P256), "x", &[])),
            )
            .await;
            (
                r.status().as_u16(),
                r.headers().get("retry-after").is_some(),
            )
        });
    }
    let (mut unauthorized, mut busy) = (0, 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            (401, _) => unauthorized += 1,
            (503, true) => busy += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(busy > 0, "{unauthorized} checked, {busy} refused with 503");
    assert!(unauthorized >= 1);
    // and the server answers at once again
    let r = client_from(&s, "127.0.0.6")
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// `estd user …` on a running server's store, off the runtime's thread.
async fn cli(s: &TestServer, args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let data = s.data();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_estd"))
            .args(&args)
            .env("ESTD_DATA_DIR", &data)
            .env_remove("ESTD_CONFIG")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_with_passwd_disable_and_delete() {
    let mut s = start_with(SETTINGS).await;
    let hash = estd::auth::hash_password("Joe-password-1").unwrap();
    s.state()
        .store
        .add_user("joe", &hash, &["est-users".into()])
        .await
        .unwrap();
    let web = no_redirect_client(&s.root_pem());
    let base = s.url("");
    let page = |cookie: String| {
        let web = web.clone();
        let url = format!("{base}/portal/single");
        async move {
            web.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // the cookie: __Host-, Secure, Path=/; HSTS and nosniff on the answer
    let r = web
        .get(format!("{base}/portal/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let cookie = portal_login(&web, &base, "joe", "Joe-password-1").await;
    assert!(cookie.starts_with("__Host-estd_session="), "{cookie}");
    assert_eq!(page(cookie.clone()).await, 200);
    let (ok, out) = cli(&s, &["user", "passwd", "joe"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("1 session(s) ended"), "{out}");
    assert_eq!(
        page(cookie).await,
        303,
        "the session ended with the password change"
    );

    // disable: no log-in, no Basic, sessions ended; enable: back
    let hash = estd::auth::hash_password("Joe-password-2").unwrap();
    assert!(s.state().store.set_password("joe", &hash).await.unwrap());
    s.state().enroll.forget_user("joe");
    let cookie = portal_login(&web, &base, "joe", "Joe-password-2").await;
    let (ok, out) = cli(&s, &["user", "disable", "joe"]).await;
    assert!(ok && out.contains("disabled; 1 session(s) ended"), "{out}");
    assert_eq!(page(cookie).await, 303);
    let c = client_from(&s, "127.0.0.7");
    tokio::time::sleep(Duration::from_millis(1100)).await; // (the user cache's second)
    let (status, _) = enroll(&c, &s, "joe", "Joe-password-2").await;
    assert_eq!(status, 401, "a disabled user cannot enroll");
    let (ok, out) = cli(&s, &["user", "enable", "joe"]).await;
    assert!(ok, "{out}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = enroll(&c, &s, "joe", "Joe-password-2").await;
    assert_eq!(status, 200);
    // delete: gone, its sessions too
    let cookie = portal_login(&web, &base, "joe", "Joe-password-2").await;
    let (ok, out) = cli(&s, &["user", "delete", "joe"]).await;
    assert!(ok, "{out}");
    assert_eq!(page(cookie).await, 303);
    let (ok, out) = cli(&s, &["user", "delete", "joe"]).await;
    assert!(!ok && out.contains("no user named"), "{out}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_clean_and_bounded() {
    let mut s = start_with(SETTINGS).await;
    let c = client_from(&s, "127.0.0.8");
    // a label with ESC, CR and LF (percent-encoded in the path): refused at the door
    let r = c
        .get(s.url("/.well-known/est/a%1B%5B2J%0D%0Aforged/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap().lines().next(),
        Some("The CA label is invalid. Cannot contain control characters")
    );
    // a user name with them in Basic: 400
    let r = post_pkcs10(
        &c,
        s.url("/.well-known/est/simpleenroll"),
        Some(("ev\u{1b}[31mil\r\nforged", "x")),
        b64(&csr(&key(Key::P256), "x", &[])),
    )
    .await;
    assert_eq!(r.status(), 400);
    // unauthenticated failures from one address: 5 a minute recorded, the rest counted
    let d = client_from(&s, "127.0.0.9");
    for i in 0..30 {
        let r = d
            .get(s.url(&format!("/.well-known/est/nolabel{i}/cacerts")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let rows = s
        .state()
        .store
        .recent_audit(200)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.peer.starts_with("127.0.0.9:"))
        .count();
    assert!(rows <= 6, "{rows} rows for 30 unknown labels");
    let metrics = estd::metrics::metrics().render(&[]);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("estd_audit_suppressed_total ") && !l.ends_with(" 0")),
        "counted"
    );
    // every stored value is bounded and printable as `estd requests` shows it
    for e in s.state().store.recent_audit(200).await.unwrap() {
        for v in [&e.operation, e.label.as_ref().unwrap_or(&String::new())] {
            assert!(v.chars().count() <= 64);
            assert!(!v.chars().any(char::is_control), "{v:?}");
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn old_audit_rows_are_purged_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), "[audit]\nretention_days = 1\n");
    let store = estd::app::open_store(&config).await.unwrap();
    let old = estd::store::AuditEvent {
        at: "2001-01-01T00:00:00.000000Z".into(),
        request_id: "old".into(),
        operation: "cacerts".into(),
        label: None,
        principal: None,
        peer: "127.0.0.1:1".into(),
        outcome: "ok".into(),
        status: 200,
        reason: None,
        serial: None,
    };
    store.record_audit(&old).await.unwrap();
    drop(store);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let running = estd::app::start(&config).await.unwrap();
    let mut gone = false;
    for _ in 0..50 {
        let rows = running.state.store.recent_audit(100).await.unwrap();
        if !rows.iter().any(|e| e.request_id == "old") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the 2001 row outlived a one-day retention");
    running.stop().await.unwrap();
}
