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
