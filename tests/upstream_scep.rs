//! Registration-authority mode with a SCEP upstream: estd (the RA) forwards to another
//! estd's SCEP server (the CA), which takes PKCSReqs signed by the RA's certificate
//! (`scep_ra_signers`) with a one-time challenge per request. A server-generated key gets
//! a challenge the RA fetches from the CA's JSON API; a device's CSR carries its own; a
//! request the CA holds for approval is polled (CertPoll) until approved. And the NDES
//! path's configuration is refused when it cannot work.
//!
//! Tests only: each unwrap asserts that a fixture made here works; its panic is the test
//! failing.

mod common;

use common::*;
use estd::store::PendingState;

/// The RA's RSA certificate and key (self-signed: the CA trusts it by its DER).
fn ra_files(dir: &std::path::Path) -> (String, String) {
    let key = key(Key::Rsa2048);
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "estd SCEP RA");
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = p.self_signed(&key).unwrap();
    let c = dir.join("ra.pem");
    let k = dir.join("ra.key");
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c.display().to_string(), k.display().to_string())
}

fn ca_template(name: &str, ra: &str, manual: bool) -> String {
    format!(
        "name = \"{name}\"\nkey_types = [\"ec-p256\", \"rsa-2048\"]\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ncn_must_match_user = false\ndns_names = [\"*.devices.example\"]\nscep_ra_signers = [{ra:?}]\napproval = \"{}\"\n",
        if manual { "manual" } else { "auto" }
    )
}

const VIA: &str = "name = \"via\"\nissuer = \"sc\"\nkey_types = [\"ec-p256\"]\nserver_keygen_key = \"ec-p256\"\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ndns_names = [\"*.devices.example\"]\n";
const VIA_HELD: &str = "name = \"via-held\"\nissuer = \"scheld\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ndns_names = [\"*.devices.example\"]\n";

fn upstream(name: &str, ca: &TestServer, label: &str, ra: &(String, String)) -> String {
    let port = ca.running.as_ref().unwrap().addr.port();
    format!(
        "[upstream.{name}]\nkind = \"scep\"\nurl = \"https://localhost:{port}/scep/{label}\"\nca_file = {:?}\nra_cert = {:?}\nra_key = {:?}\nchallenge = \"estd\"\nchallenge_url = \"https://localhost:{port}/api/v1/scep/challenges\"\nchallenge_template = \"{label}\"\nchallenge_user = \"admin\"\nchallenge_password_env = \"ESTD_TEST_CA_PW\"\npoll_max_secs = 1\n",
        ca.data().join("certs/root-ca.pem").display().to_string(),
        ra.0,
        ra.1,
    )
}

/// A one-time challenge of the CA for `template`, bound to `cn`.
async fn challenge(ca: &TestServer, template: &str, cn: &str) -> String {
    let r = client(&ca.root_pem(), None, false)
        .post(ca.url("/api/v1/scep/challenges"))
        .basic_auth("admin", Some(&ca.admin_password))
        .header("content-type", "application/json")
        .body(format!(r#"{{"template":"{template}","cn":"{cn}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    v["challenge"].as_str().unwrap().to_string()
}

/// A CSR for `cn` carrying `challenge` as its challengePassword.
fn csr_with_challenge(kp: &rcgen::KeyPair, cn: &str, challenge: &str) -> Vec<u8> {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    estd::scep_wire::request::csr(kp, dn, &[], Some(challenge)).unwrap()
}

#[tokio::test]
async fn a_scep_upstream_issues_server_keys_and_device_requests_and_polls_what_it_holds() {
    let files = tempfile::tempdir().unwrap();
    let ra = ra_files(files.path());
    let ca = start_with_templates(
        "",
        &[
            &ca_template("scepca", &ra.0, false),
            &ca_template("scepheld", &ra.0, true),
        ],
    )
    .await;
    unsafe { std::env::set_var("ESTD_TEST_CA_PW", &ca.admin_password) };
    let extra = format!(
        "{}{}",
        upstream("sc", &ca, "scepca", &ra),
        upstream("scheld", &ca, "scepheld", &ra)
    );
    let rs = start_with_templates(&extra, &[VIA, VIA_HELD]).await;
    let admin = ("admin", rs.admin_password.as_str());

    // the label's /cacerts: the CA's certificate (not the RA's, not this server's own)
    let c = client(&rs.root_pem(), None, false);
    let r = c
        .get(rs.url("/.well-known/est/via/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let chain = certs_of(&r.bytes().await.unwrap());
    let ca_issuing = std::fs::read(ca.data().join("certs/issuing-ca.pem")).unwrap();
    let ca_issuing = certs_of_pem(&ca_issuing);
    assert!(chain.iter().any(|c| der_of(c) == ca_issuing));

    // a server-generated key: the RA fetches a one-time challenge from the CA's API
    let before = ca.state().store.certificate_count().await.unwrap();
    let r = post_pkcs10(
        &c,
        rs.url("/.well-known/est/via/serverkeygen"),
        Some(admin),
        b64(&csr(&key(Key::P256), "dev-s1", &["dev-s1.devices.example"])),
    )
    .await;
    let status = r.status();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let body = r.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let boundary = estd::est::multipart::boundary_of(&ct).unwrap();
    let parts = estd::est::multipart::parse_multipart(&body, &boundary).unwrap();
    let kp = rcgen::KeyPair::try_from(unb64(&parts[0].body).as_slice()).unwrap();
    let cert = certs_of(&parts[1].body)[0].clone();
    assert_eq!(spki_bits(&cert), kp.public_key_raw());
    assert_eq!(
        ca.state().store.certificate_count().await.unwrap(),
        before + 1
    );
    let serial = estd::enroll::serial_of(&der_of(&cert)).unwrap();
    let rec = rs
        .state()
        .store
        .find_certificate(&serial)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.issuer, "sc");
    // the CA's record says it came through the RA, by a challenge (used up)
    let at_ca = ca
        .state()
        .store
        .find_certificate(&serial)
        .await
        .unwrap()
        .unwrap();
    assert!(
        at_ca.requester.starts_with("scep:challenge-"),
        "{}",
        at_ca.requester
    );

    // a device's CSR with a challenge it got from the CA is passed on as signed; the CA
    // holds it for approval: 202 at the RA, CertPoll in the background, then issued
    let device = key(Key::P256);
    let secret = challenge(&ca, "scepheld", "dev-h1").await;
    let der = csr_with_challenge(&device, "dev-h1", &secret);
    let r = post_pkcs10(
        &c,
        rs.url("/.well-known/est/via-held/simpleenroll"),
        Some(admin),
        b64(&der),
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let held = rs
        .state()
        .store
        .list_pending(Some(PendingState::Upstream))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    let at_ca = ca
        .state()
        .store
        .list_pending(Some(PendingState::Pending))
        .await
        .unwrap();
    assert_eq!(at_ca.len(), 1);
    assert!(
        ca.state()
            .store
            .decide_pending(at_ca[0].id, true, "admin", None)
            .await
            .unwrap()
    );
    assert_eq!(
        pending_state_after(&rs, held[0].id, PendingState::Upstream).await,
        PendingState::Issued
    );
    let r = post_pkcs10(
        &c,
        rs.url("/.well-known/est/via-held/simpleenroll"),
        Some(admin),
        b64(&der),
    )
    .await;
    assert_eq!(r.status(), 200);
    let cert = certs_of(&r.bytes().await.unwrap())[0].clone();
    assert_eq!(spki_bits(&cert), device.public_key_raw());

    // a device CSR without a challenge: the CA refuses it, and the device is told so
    let r = post_pkcs10(
        &c,
        rs.url("/.well-known/est/via/simpleenroll"),
        Some(admin),
        b64(&csr(&key(Key::P256), "dev-n", &[])),
    )
    .await;
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("SCEP FAILURE"), "{text}");
}

/// The certificates of a PEM file, DER (the first).
fn certs_of_pem(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[test]
fn a_scep_upstream_is_refused_at_start_without_a_cas_fingerprint_over_http_or_a_challenge_url() {
    let files = tempfile::tempdir().unwrap();
    let ra = ra_files(files.path());
    let base = format!(
        "[upstream.ndes]\nkind = \"scep\"\nurl = \"http://ndes.example/certsrv/mscep/mscep.dll\"\nra_cert = {:?}\nra_key = {:?}\n",
        ra.0, ra.1
    );
    let load = |extra: &str| {
        let text = format!("[tls]\nnames = [\"localhost\"]\n{base}{extra}");
        estd::config::Config::from_figment(
            figment::Figment::new()
                .merge(<figment::providers::Toml as figment::providers::Format>::string(&text)),
        )
    };
    let e = load("").unwrap_err().to_string();
    assert!(e.contains("ca_fingerprint"), "{e}");
    let fp = "ab".repeat(32);
    assert!(load(&format!("ca_fingerprint = \"{fp}\"\n")).is_ok());
    let e = load(&format!(
        "ca_fingerprint = \"{fp}\"\nchallenge = \"ndes\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("challenge_url"), "{e}");
    let e = load("ca_fingerprint = \"12\"\n").unwrap_err().to_string();
    assert!(e.contains("64 hex digits"), "{e}");
    let e = load(&format!("ca_fingerprint = \"{fp}\"\nuser = \"ra\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("upstream.ndes.user"), "{e}");
}
