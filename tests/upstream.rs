//! Registration-authority mode, end to end with real TLS: an estd (the RA) whose templates
//! forward to another estd (the CA) as `[upstream.ca]`. Enroll, re-enroll and server-side
//! keys through the RA; the CA holding a request for approval (202, polled in the
//! background, then issued) or rejecting it; the CA stopped (503 with Retry-After,
//! `/readyz` naming it) and back; an upstream that never answers; one that returns a
//! certificate for another key or from another CA (refused, audited, not recorded); an
//! ordinary user of the RA asking for another name (refused by the RA, never forwarded).
//!
//! Tests only: each unwrap asserts that a fixture made here works; its panic is the test
//! failing.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use der::Decode;
use estd::store::PendingState;

const FWD: &str = "name = \"fwd\"\nissuer = \"ca\"\nextended_key_usage = [\"client_auth\", \"server_auth\"]\nkey_types = [\"ec-p256\", \"rsa-2048\"]\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ndns_names = [\"*.devices.example\"]\n";
const FWD_HELD: &str = "name = \"fwd-held\"\nissuer = \"held\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ndns_names = [\"*.devices.example\"]\n";
const MINE: &str = "name = \"mine\"\nissuer = \"ca\"\nextended_key_usage = [\"client_auth\", \"server_auth\"]\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ncn_must_match_user = true\ndns_names = [\"*.devices.example\"]\n";
const HELD: &str = "name = \"held\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\napproval = \"manual\"\nretry_after_secs = 60\ndns_names = [\"*.devices.example\"]\n";
const RDNS: &str = "name = \"rdns\"\nissuer = \"ca\"\nextended_key_usage = [\"client_auth\", \"server_auth\"]\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ndns_names = [\"*.devices.example\"]\ndrop_unlisted_rdns = true\n";

/// The CA's address and files, for the RA's `[upstream.*]` tables.
fn upstream_table(name: &str, ca: &TestServer, label: &str, env: &str, extra: &str) -> String {
    let addr = ca.running.as_ref().unwrap().addr;
    format!(
        "[upstream.{name}]\nurl = \"https://localhost:{}/.well-known/est\"\nlabel = \"{label}\"\nca_file = {:?}\nuser = \"admin\"\npassword_env = \"{env}\"\nbreaker_failures = 2\nbreaker_open_secs = 2\npoll_max_secs = 1\nrequest_timeout_secs = 5\n{extra}",
        addr.port(),
        ca.data().join("certs/root-ca.pem").display().to_string(),
    )
}

async fn ca() -> TestServer {
    start_with_templates("", &[HELD]).await
}

/// An RA forwarding `fwd`, `mine` and `rdns` to the CA's `devices` label and `fwd-held` to
/// its manual `held` label.
async fn ra(ca: &TestServer) -> TestServer {
    // one variable per process (nextest runs each test in its own)
    unsafe { std::env::set_var("ESTD_TEST_UPSTREAM_PW", &ca.admin_password) };
    let extra = format!(
        "{}{}",
        upstream_table("ca", ca, "devices", "ESTD_TEST_UPSTREAM_PW", ""),
        upstream_table("held", ca, "held", "ESTD_TEST_UPSTREAM_PW", "")
    );
    start_with_templates(&extra, &[FWD, FWD_HELD, MINE, RDNS]).await
}

fn admin(s: &TestServer) -> (&str, &str) {
    ("admin", s.admin_password.as_str())
}

async fn enroll(
    s: &TestServer,
    label: &str,
    op: &str,
    user: Option<(&str, &str)>,
    csr_der: &[u8],
) -> reqwest::Response {
    enroll_as(s, label, op, user, None, csr_der).await
}

async fn enroll_as(
    s: &TestServer,
    label: &str,
    op: &str,
    user: Option<(&str, &str)>,
    identity: Option<(Vec<u8>, &rcgen::KeyPair)>,
    csr_der: &[u8],
) -> reqwest::Response {
    let c = client(&s.root_pem(), identity, false);
    post_pkcs10(
        &c,
        s.url(&format!("/.well-known/est/{label}/{op}")),
        user,
        b64(csr_der),
    )
    .await
}

/// A new key and its certificate from the RA's `fwd` (CN, and the DNS name CN.devices.example).
async fn enrolled(ra: &TestServer, cn: &str) -> (rcgen::KeyPair, x509_cert::Certificate) {
    let key = key(Key::P256);
    let dns = format!("{cn}.devices.example");
    let der = csr(&key, cn, &[dns.as_str()]);
    let r = enroll(ra, "fwd", "simpleenroll", Some(admin(ra)), &der).await;
    assert_eq!(r.status(), 200);
    let cert = certs_of(&r.bytes().await.unwrap())[0].clone();
    (key, cert)
}

async fn recorded_issuer(s: &TestServer, serial: &str) -> Option<String> {
    s.state()
        .store
        .find_certificate(serial)
        .await
        .unwrap()
        .map(|c| c.issuer)
}

#[tokio::test]
async fn enroll_reenroll_and_serverkeygen_go_through_the_ra_to_the_ca() {
    let ca = ca().await;
    let ra = ra(&ca).await;
    let (key, cert) = enrolled(&ra, "dev-1").await;
    let cert = &cert;
    // the CA signed it (its issuing CA, not the RA's), for the device's key
    let ca_chain = certs_of(
        &reqwest_get(&ca, "/.well-known/est/devices/cacerts")
            .await
            .bytes()
            .await
            .unwrap(),
    );
    let signed_by_ca = |c: &x509_cert::Certificate| {
        ca_chain
            .iter()
            .any(|ca| estd::scep_wire::request::signed_by(c, ca))
    };
    assert!(signed_by_ca(cert));
    assert_eq!(spki_bits(cert), key.public_key_raw());
    let serial = estd::enroll::serial_of(&der_of(cert)).unwrap();
    // recorded on both sides: the RA names the upstream, the CA itself
    assert_eq!(recorded_issuer(&ra, &serial).await.as_deref(), Some("ca"));
    assert_eq!(
        recorded_issuer(&ca, &serial).await.as_deref(),
        Some("local")
    );
    let audit = ra.state().store.recent_audit(20).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.serial.as_deref() == Some(serial.as_str())
                && a.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("upstream CA ca"))),
        "{audit:?}"
    );
    // the RA's /cacerts for the label is the CA's chain; its default label its own
    let ra_fwd = certs_of(
        &reqwest_get(&ra, "/.well-known/est/fwd/cacerts")
            .await
            .bytes()
            .await
            .unwrap(),
    );
    assert_eq!(
        ra_fwd.iter().map(der_of).collect::<Vec<_>>(),
        ca_chain.iter().map(der_of).collect::<Vec<_>>()
    );
    let ra_own = certs_of(
        &reqwest_get(&ra, "/.well-known/est/cacerts")
            .await
            .bytes()
            .await
            .unwrap(),
    );
    assert_ne!(der_of(&ra_own[0]), der_of(&ca_chain[0]));

    // re-enrollment with the certificate the CA signed, as the TLS client certificate
    let new_key = key_again();
    let r = enroll_as(
        &ra,
        "fwd",
        "simplereenroll",
        None,
        Some((der_of(cert), &key)),
        &csr(&new_key, "dev-1", &["dev-1.devices.example"]),
    )
    .await;
    let status = r.status();
    let body = r.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let renewed = &certs_of(&body)[0];
    assert_eq!(spki_bits(renewed), new_key.public_key_raw());
    assert_eq!(
        renewed.tbs_certificate().subject(),
        cert.tbs_certificate().subject()
    );
    let renewed_serial = estd::enroll::serial_of(&der_of(renewed)).unwrap();
    assert_ne!(renewed_serial, serial);
    assert_eq!(
        recorded_issuer(&ra, &renewed_serial).await.as_deref(),
        Some("ca")
    );
    // a renewal asking for another name is refused by the RA (RFC 7030 §4.2.2)
    let r = enroll_as(
        &ra,
        "fwd",
        "simplereenroll",
        None,
        Some((der_of(renewed), &new_key)),
        &csr(&key_again(), "dev-2", &["dev-1.devices.example"]),
    )
    .await;
    assert_eq!(r.status(), 403);

    // a server-generated key: estd makes it and the CSR, the CA signs it
    let c = client(&ra.root_pem(), None, false);
    let r = post_pkcs10(
        &c,
        ra.url("/.well-known/est/fwd/serverkeygen"),
        Some(admin(&ra)),
        b64(&csr(&key_again(), "dev-3", &["dev-3.devices.example"])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body = r.bytes().await.unwrap();
    let boundary = estd::est::multipart::boundary_of(&ct).unwrap();
    let parts = estd::est::multipart::parse_multipart(&body, &boundary).unwrap();
    let pkcs8 = unb64(&parts[0].body);
    let kp = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let cert = &certs_of(&parts[1].body)[0];
    assert_eq!(spki_bits(cert), kp.public_key_raw());
    assert!(signed_by_ca(cert));
}

fn key_again() -> rcgen::KeyPair {
    key(Key::P256)
}

async fn reqwest_get(s: &TestServer, path: &str) -> reqwest::Response {
    client(&s.root_pem(), None, false)
        .get(s.url(path))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_ra_applies_its_own_rules_before_anything_is_forwarded() {
    let ca = ca().await;
    let ra = ra(&ca).await;
    let hash = estd::auth::hash_password("alice-pw").unwrap();
    ra.state()
        .store
        .add_user("alice", &hash, &["est-users".into()])
        .await
        .unwrap();
    let before = ca.state().store.certificate_count().await.unwrap();
    // an ordinary user asking for another name than hers
    let r = enroll(
        &ra,
        "mine",
        "simpleenroll",
        Some(("alice", "alice-pw")),
        &csr(&key(Key::P256), "bob", &[]),
    )
    .await;
    assert_eq!(r.status(), 403);
    // her own name goes through
    let r = enroll(
        &ra,
        "mine",
        "simpleenroll",
        Some(("alice", "alice-pw")),
        &csr(&key(Key::P256), "alice", &[]),
    )
    .await;
    assert_eq!(r.status(), 200);
    // a template that would rewrite the device's subject (drop its O) cannot forward the
    // CSR as signed
    let kp = key(Key::P256);
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "dev-9");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "Elsewhere");
    let with_o = p.serialize_request(&kp).unwrap().der().to_vec();
    let r = enroll(&ra, "rdns", "simpleenroll", Some(admin(&ra)), &with_o).await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("signs the CSR as sent"), "{text}");
    // a name the template does not allow
    let r = enroll(
        &ra,
        "fwd",
        "simpleenroll",
        Some(admin(&ra)),
        &csr(&key(Key::P256), "x", &["www.bank.example"]),
    )
    .await;
    assert_eq!(r.status(), 403);
    // only alice's own request reached the CA
    assert_eq!(
        ca.state().store.certificate_count().await.unwrap(),
        before + 1
    );
}

#[tokio::test]
async fn a_request_the_ca_holds_waits_at_the_ra_and_is_issued_once_approved() {
    let ca = ca().await;
    let ra = ra(&ca).await;
    let key = key(Key::P256);
    let der = csr(&key, "dev-held", &["dev-held.devices.example"]);
    let r = enroll(&ra, "fwd-held", "simpleenroll", Some(admin(&ra)), &der).await;
    assert_eq!(r.status(), 202);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // another administrator replaying the same CSR: neither forwarded again nor answered
    // with the first one's certificate
    let hash = estd::auth::hash_password("bob-pw").unwrap();
    let groups = ["est-users".to_string(), "Super Admin".to_string()];
    ra.state()
        .store
        .add_user("bob", &hash, &groups)
        .await
        .unwrap();
    let r = enroll(
        &ra,
        "fwd-held",
        "simpleenroll",
        Some(("bob", "bob-pw")),
        &der,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("another requester"));
    let ca_pending = ca
        .state()
        .store
        .list_pending(Some(PendingState::Pending))
        .await
        .unwrap();
    assert_eq!(ca_pending.len(), 1);
    let ra_held = ra
        .state()
        .store
        .list_pending(Some(PendingState::Upstream))
        .await
        .unwrap();
    assert_eq!(ra_held.len(), 1);
    // the device asks again: still held
    let r = enroll(&ra, "fwd-held", "simpleenroll", Some(admin(&ra)), &der).await;
    assert_eq!(r.status(), 202);
    // an administrator of the CA approves; the RA's poller finds out by itself
    assert!(
        ca.state()
            .store
            .decide_pending(ca_pending[0].id, true, "admin", None)
            .await
            .unwrap()
    );
    assert_eq!(
        pending_state_after(&ra, ra_held[0].id, PendingState::Upstream).await,
        PendingState::Issued
    );
    let r = enroll(&ra, "fwd-held", "simpleenroll", Some(admin(&ra)), &der).await;
    assert_eq!(r.status(), 200);
    let cert = &certs_of(&r.bytes().await.unwrap())[0];
    assert_eq!(spki_bits(cert), key.public_key_raw());
    let serial = estd::enroll::serial_of(&der_of(cert)).unwrap();
    assert_eq!(recorded_issuer(&ra, &serial).await.as_deref(), Some("held"));

    // rejected at the CA: the device is told, with the CA's reason
    let key2 = key_again();
    let der2 = csr(&key2, "dev-no", &["dev-no.devices.example"]);
    let r = enroll(&ra, "fwd-held", "simpleenroll", Some(admin(&ra)), &der2).await;
    assert_eq!(r.status(), 202);
    let p = ca
        .state()
        .store
        .list_pending(Some(PendingState::Pending))
        .await
        .unwrap();
    assert!(
        ca.state()
            .store
            .decide_pending(p[0].id, false, "admin", Some("not one of ours"))
            .await
            .unwrap()
    );
    let mut last = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = enroll(&ra, "fwd-held", "simpleenroll", Some(admin(&ra)), &der2).await;
        last = r.status().as_u16();
        if last != 202 {
            let text = r.text().await.unwrap();
            assert!(text.contains("not one of ours"), "{text}");
            break;
        }
    }
    assert_eq!(last, 403);
}

#[tokio::test]
async fn a_stopped_ca_gets_503_and_readyz_names_it_until_it_is_back() {
    let mut ca = ca().await;
    let ra = ra(&ca).await;
    let addr: SocketAddr = ca.running.as_ref().unwrap().addr;
    ca.stop().await;
    let metrics = ra.metrics_url("/readyz");
    for _ in 0..3 {
        let r = enroll(
            &ra,
            "fwd",
            "simpleenroll",
            Some(admin(&ra)),
            &csr(&key(Key::P256), "dev-1", &[]),
        )
        .await;
        assert_eq!(r.status(), 503);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
    }
    let r = reqwest::get(&metrics).await.unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(text.contains("upstream ca: unreachable"), "{text}");
    let audit = ra.state().store.recent_audit(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.status == 503 && a.outcome == "error"),
        "{audit:?}"
    );
    // the CA back on the same address: after the breaker's pause, issued again
    ca.config.listen = addr;
    ca.running = Some(estd::app::start(&ca.config).await.unwrap());
    let mut last = 0;
    for _ in 0..50 {
        let r = enroll(
            &ra,
            "fwd",
            "simpleenroll",
            Some(admin(&ra)),
            &csr(&key(Key::P256), "dev-1", &[]),
        )
        .await;
        last = r.status().as_u16();
        if last == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, 200);
    let r = reqwest::get(&metrics).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// An upstream that accepts connections and never answers (not even the TLS handshake).
#[tokio::test]
async fn an_upstream_that_never_answers_is_a_503_not_a_hung_request() {
    let files = tempfile::tempdir().unwrap();
    let (_, ca_file) = fake_tls(files.path());
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let ra = ra_of(
        port,
        &ca_file,
        "request_timeout_secs = 1\nconnect_timeout_secs = 1\n",
    )
    .await;
    let r = enroll(
        &ra,
        "fwd",
        "simpleenroll",
        Some(admin(&ra)),
        &csr(&key(Key::P256), "dev-1", &[]),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    // the label's /cacerts cannot be answered without the upstream's
    let r = reqwest_get(&ra, "/.well-known/est/fwd/cacerts").await;
    assert_eq!(r.status(), 503);
}

/// An RA forwarding `fwd` to a made-up upstream on 127.0.0.1:`port` (its TLS CA in
/// `ca_file`), as a Basic user, with further `[upstream.ca]` lines.
async fn ra_of(port: u16, ca_file: &str, more: &str) -> TestServer {
    // one variable per process (nextest runs each test in its own)
    unsafe { std::env::set_var("ESTD_TEST_FAKE_PW", "x") };
    let extra = format!(
        "[upstream.ca]\nurl = \"https://127.0.0.1:{port}/.well-known/est\"\nca_file = {ca_file:?}\nuser = \"ra\"\npassword_env = \"ESTD_TEST_FAKE_PW\"\n{more}"
    );
    start_with_templates(&extra, &[FWD]).await
}

/// A TLS server identity for 127.0.0.1 from a CA of its own: the acceptor, and the CA's
/// certificate in a PEM file (the RA's `ca_file`).
fn fake_tls(dir: &std::path::Path) -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "fake upstream CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &rcgen::Issuer::from_params(&ca, &ca_key))
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let path = dir.join("fake-ca.pem");
    std::fs::write(&path, ca_cert.pem()).unwrap();
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        path.display().to_string(),
    )
}

/// A fake upstream over TLS (its CA in `ca_file`): its /cacerts is the real CA's chain, its
/// /simpleenroll answers with `answer` whatever it is asked.
async fn fake_upstream(cacerts: Vec<u8>, answer: Vec<u8>, tls: tokio_rustls::TlsAcceptor) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let cacerts = cacerts.clone();
            let answer = answer.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(mut s) = tls.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // read the head and the body (Content-Length)
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let body = if String::from_utf8_lossy(&got).contains("/cacerts") {
                    cacerts
                } else {
                    answer
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_certificate_for_another_key_or_from_another_ca_is_refused_audited_and_not_recorded() {
    let ca = ca().await;
    // a real certificate of the CA, for some other key
    let c = client(&ca.root_pem(), None, false);
    let r = post_pkcs10(
        &c,
        ca.url("/.well-known/est/devices/simpleenroll"),
        Some(admin(&ca)),
        b64(&csr(&key(Key::P256), "other", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let other_body = r.bytes().await.unwrap().to_vec();
    let cacerts = reqwest_get(&ca, "/.well-known/est/devices/cacerts")
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    // and a certificate from no CA of the upstream's: self-signed for the device's own key
    let device = key(Key::P256);
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "dev-1");
    let selfsigned = p.self_signed(&device).unwrap();
    let selfsigned_body = b64(&estd::est::certs_only(&[selfsigned.der()]).unwrap());

    for (answer, expect) in [
        (other_body, "not for the key of the request"),
        (selfsigned_body.into_bytes(), "not signed by a CA"),
    ] {
        let files = tempfile::tempdir().unwrap();
        let (tls, ca_file) = fake_tls(files.path());
        let port = fake_upstream(cacerts.clone(), answer, tls).await;
        let ra = ra_of(port, &ca_file, "").await;
        let r = enroll(
            &ra,
            "fwd",
            "simpleenroll",
            Some(admin(&ra)),
            &csr(&device, "dev-1", &[]),
        )
        .await;
        assert_eq!(r.status(), 503);
        assert_eq!(ra.state().store.certificate_count().await.unwrap(), 0);
        let audit = ra.state().store.recent_audit(10).await.unwrap();
        assert!(
            audit.iter().any(|a| a.status == 503
                && a.reason.as_deref().is_some_and(|r| r.contains(expect))),
            "{expect}: {audit:?}"
        );
    }
}

#[tokio::test]
async fn an_upstream_certificate_revoked_at_the_ra_is_not_on_its_crl_and_does_not_renew() {
    let ca = ca().await;
    let ra = ra(&ca).await;
    let (key, cert) = enrolled(&ra, "dev-r").await;
    let serial = estd::enroll::serial_of(&der_of(&cert)).unwrap();
    let r = client(&ra.root_pem(), None, false)
        .post(ra.url(&format!("/api/v1/certificates/{serial}/revoke")))
        .basic_auth("admin", Some(&ra.admin_password))
        .header("content-type", "application/json")
        .body(r#"{"reason":"keyCompromise"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // the RA's CRL lists only what its own CA signed
    let crl = reqwest::get(ra.revocation_url("/crl/issuing-ca.crl"))
        .await
        .unwrap();
    assert_eq!(crl.status(), 200);
    let crl = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(
        &crl.bytes().await.unwrap(),
    )
    .unwrap();
    assert!(crl.tbs_cert_list.revoked_certificates.is_none());
    // and the revoked certificate renews no more
    let r = enroll_as(
        &ra,
        "fwd",
        "simplereenroll",
        None,
        Some((der_of(&cert), &key)),
        &csr(&key_again(), "dev-r", &["dev-r.devices.example"]),
    )
    .await;
    assert!(r.status() == 401 || r.status() == 403, "{}", r.status());
}
