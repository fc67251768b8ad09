//! EST over real TLS on 127.0.0.1: rustls on both sides, TLS 1.3 and 1.2, HTTP/1.1 and
//! HTTP/2, Basic authentication and client certificates verified at the handshake.

mod common;

use common::*;

async fn enroll_over_tls(
    s: &TestServer,
    client: &reqwest::Client,
    kp: &rcgen::KeyPair,
    cn: &str,
) -> Vec<u8> {
    let r = post_pkcs10(
        client,
        s.url("/.well-known/est/simpleenroll"),
        Some(("admin", &s.admin_password)),
        b64_lines(&csr(kp, cn, &["dev.example"]), "\n"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/pkcs7-mime; smime-type=certs-only"
    );
    der_of(&certs_of(&r.bytes().await.unwrap())[0])
}

#[tokio::test]
async fn cacerts_and_enroll_over_tls13_and_tls12() {
    let mut s = start().await;
    for tls12 in [false, true] {
        let c = client(&s.root_pem(), None, tls12);
        let r = c
            .get(s.url("/.well-known/est/cacerts"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/pkcs7-mime");
        assert!(r.headers().contains_key("x-request-id"));
        assert_eq!(certs_of(&r.bytes().await.unwrap()).len(), 2);
        enroll_over_tls(&s, &c, &key(Key::P256), "admin").await;
    }
    s.stop().await;
}

#[tokio::test]
async fn http1_and_http2_both_work() {
    let mut s = start().await;
    let c = client(&s.root_pem(), None, false);
    let r = c
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let mut h1_tls = client_config(&s.root_pem(), None, false);
    h1_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let h1 = reqwest::Client::builder()
        .use_preconfigured_tls(h1_tls)
        .http1_only()
        .build()
        .unwrap();
    let r = h1
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn reenroll_with_the_client_certificate_over_tls() {
    let mut s = start().await;
    let anon = client(&s.root_pem(), None, false);
    let kp = key(Key::P256);
    let cert = enroll_over_tls(&s, &anon, &kp, "admin").await;

    for tls12 in [false, true] {
        let with_cert = client(&s.root_pem(), Some((cert.clone(), &kp)), tls12);
        let new_kp = key(Key::P256);
        let r = post_pkcs10(
            &with_cert,
            s.url("/.well-known/est/simplereenroll"),
            None,
            b64(&csr(&new_kp, "admin", &["dev.example"])),
        )
        .await;
        assert_eq!(r.status(), 200, "tls12={tls12}");
        let renewed = &certs_of(&r.bytes().await.unwrap())[0];
        assert_eq!(renewed.tbs_certificate().subject().to_string(), "CN=admin");

        let r = post_pkcs10(
            &with_cert,
            s.url("/.well-known/est/simplereenroll"),
            None,
            b64(&csr(&new_kp, "changed", &["dev.example"])),
        )
        .await;
        assert_eq!(r.status(), 403);
    }
    // without the certificate: 401
    let r = post_pkcs10(
        &anon,
        s.url("/.well-known/est/simplereenroll"),
        None,
        b64(&csr(&kp, "admin", &["dev.example"])),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"estd\"");
    s.stop().await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_fails_the_handshake() {
    let mut s = start().await;
    let kp = key(Key::P256);
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "admin");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let foreign = params.self_signed(&kp).unwrap().der().to_vec();
    let c = client(&s.root_pem(), Some((foreign, &kp)), false);
    let r = c
        .post(s.url("/.well-known/est/simplereenroll"))
        .header("content-type", "application/pkcs10")
        .body(b64(&csr(&kp, "admin", &[])))
        .send()
        .await;
    assert!(r.is_err(), "the handshake must fail: {r:?}");
    // the server is still serving others
    let ok = client(&s.root_pem(), None, false)
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn error_statuses_over_tls() {
    let mut s = start().await;
    let c = client(&s.root_pem(), None, false);
    let r = c
        .get(s.url("/.well-known/est/simpleenroll"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = c
        .get(s.url("/.well-known/est/nolabel/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = post_pkcs10(
        &c,
        s.url("/.well-known/est/simpleenroll"),
        Some(("admin", &s.admin_password)),
        vec![b'A'; 100_000],
    )
    .await;
    assert_eq!(r.status(), 413);
    let r = c
        .post(s.url("/.well-known/est/simpleenroll"))
        .basic_auth("admin", Some(&s.admin_password))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = c
        .post(s.url("/.well-known/est/fullcmc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    s.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let mut s = start().await;
    let c = client(&s.root_pem(), None, false);
    let kp = key(Key::P256);
    let cert = enroll_over_tls(&s, &c, &kp, "admin").await;
    let root_before = s.root_pem();
    s.stop().await;

    // same data directory: same CA, same users (no new admin), same records
    let running = estd::app::start(&s.config).await.unwrap();
    assert!(running.admin_password.is_none());
    s.running = Some(running);
    assert_eq!(s.root_pem(), root_before);
    let serial = estd::enroll::serial_of(&cert).unwrap();
    assert!(
        s.state()
            .store
            .find_certificate(&serial)
            .await
            .unwrap()
            .is_some()
    );
    let with_cert = client(&s.root_pem(), Some((cert, &kp)), false);
    let r = post_pkcs10(
        &with_cert,
        s.url("/.well-known/est/simplereenroll"),
        None,
        b64(&csr(&kp, "admin", &["dev.example"])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.data().join("admin-password"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    s.stop().await;
}

/// A CSR for CN=admin whose challengePassword is the base64 of `exporter`.
fn csr_bound_to(kp: &rcgen::KeyPair, exporter: &[u8; 32]) -> String {
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD.encode(exporter);
    let mut utf8 = vec![0x0c, value.len() as u8];
    utf8.extend_from_slice(value.as_bytes());
    let mut set = vec![0x31, utf8.len() as u8];
    set.extend(utf8);
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "admin");
    let attrs = vec![rcgen::Attribute {
        oid: &[1, 2, 840, 113549, 1, 9, 7],
        values: set,
    }];
    b64(params
        .serialize_request_with_attributes(kp, attrs)
        .unwrap()
        .der())
}

/// Opens a new TLS connection, derives its tls-exporter value, and POSTs to the `bound`
/// label the body `body_for(exporter)`. Returns status, body text and the exporter.
async fn enroll_on_new_connection(
    s: &TestServer,
    tls12: bool,
    body_for: impl FnOnce(&[u8; 32]) -> String,
) -> (u16, String, [u8; 32]) {
    use base64::Engine;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    let port = s.running.as_ref().unwrap().addr.port();
    let mut cfg = client_config(&s.root_pem(), None, tls12);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut exporter = [0u8; 32];
    tls.get_ref()
        .1
        .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", s.admin_password));
    let req = hyper::Request::post("/.well-known/est/bound/simpleenroll")
        .header("host", format!("localhost:{port}"))
        .header("content-type", "application/pkcs10")
        .header("authorization", format!("Basic {auth}"))
        .body(Full::new(axum::body::Bytes::from(body_for(&exporter))))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        exporter,
    )
}

/// RFC 9266 over a real connection: the client derives the tls-exporter value from its own
/// TLS session, puts it in the CSR's challengePassword, and sends the CSR on that connection.
/// The same CSR replayed on another connection is refused.
#[tokio::test]
async fn channel_binding_with_the_real_tls_exporter() {
    let bound =
        "name = \"bound\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nchannel_binding = true\n";
    let mut s = start_with_templates("", &[bound]).await;
    let kp = key(Key::P256);
    for tls12 in [false, true] {
        let (status, body, first) =
            enroll_on_new_connection(&s, tls12, |e| csr_bound_to(&kp, e)).await;
        assert_eq!(status, 200, "tls12={tls12}: {body}");
        let (status, body, second) =
            enroll_on_new_connection(&s, tls12, |_| csr_bound_to(&kp, &first)).await;
        assert_ne!(first, second);
        assert_eq!(status, 403, "tls12={tls12}: {body}");
        assert!(body.contains("channel binding failed"), "{body}");
    }
    s.stop().await;
}

/// A renewal with the same key on a template whose requests wait for approval is a new
/// request (it waits again), not the certificate it renews handed back as if its answer
/// had been lost.
#[tokio::test]
async fn a_same_key_renewal_of_an_approved_request_waits_again() {
    let held = "name = \"held\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ndns_names = [\"dev.example\"]\napproval = \"manual\"\n";
    let mut s = start_with_templates("", &[held]).await;
    let anon = client(&s.root_pem(), None, false);
    let kp = key(Key::P256);
    let der = csr(&kp, "admin", &["dev.example"]);
    let url = s.url("/.well-known/est/held/simpleenroll");
    let admin = Some(("admin", s.admin_password.as_str()));
    let r = post_pkcs10(&anon, url.clone(), admin, b64(&der)).await;
    assert_eq!(r.status(), 202);
    let waiting = s
        .state()
        .store
        .list_pending(Some(estd::store::PendingState::Pending))
        .await
        .unwrap();
    assert!(
        s.state()
            .store
            .decide_pending(waiting[0].id, true, "admin", None)
            .await
            .unwrap()
    );
    let r = post_pkcs10(&anon, url.clone(), admin, b64(&der)).await;
    assert_eq!(r.status(), 200);
    let cert = der_of(&certs_of(&r.bytes().await.unwrap())[0]);
    // the same request again: its answer was lost, the same certificate
    let r = post_pkcs10(&anon, url, admin, b64(&der)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(der_of(&certs_of(&r.bytes().await.unwrap())[0]), cert);
    // the renewal of that certificate with the same key: a new request, waiting
    let with_cert = client(&s.root_pem(), Some((cert.clone(), &kp)), false);
    let r = post_pkcs10(
        &with_cert,
        s.url("/.well-known/est/held/simplereenroll"),
        None,
        b64(&der),
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    s.stop().await;
}
