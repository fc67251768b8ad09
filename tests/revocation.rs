//! Revocation end to end against a real server: the CRL and OCSP checked with real
//! `openssl crl` and `openssl ocsp`, the CDP/AIA extensions in issued certificates, the
//! refusals that follow a revocation, who may revoke what, and the JSON API.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs openssl; returns stdout + stderr (openssl ocsp prints its verdicts on both).
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn put(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }
}

async fn enroll(s: &TestServer, kp: &rcgen::KeyPair, user: (&str, &str), cn: &str) -> Vec<u8> {
    let c = client(&s.root_pem(), None, false);
    let r = post_pkcs10(
        &c,
        s.url("/.well-known/est/simpleenroll"),
        Some(user),
        b64(&csr(kp, cn, &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    der_of(&certs_of(&r.bytes().await.unwrap())[0])
}

fn serial_hex(cert: &[u8]) -> String {
    estd::enroll::serial_of(cert).unwrap()
}

async fn revoke_api(
    s: &TestServer,
    user: (&str, &str),
    serial: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let r = client(&s.root_pem(), None, false)
        .post(s.url(&format!("/api/v1/certificates/{serial}/revoke")))
        .basic_auth(user.0, Some(user.1))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// `openssl ocsp` against the server; returns its output.
fn ocsp(s: &TestServer, f: &Files, what: &[&str]) -> String {
    let issuing = s.data().join("certs/issuing-ca.pem").display().to_string();
    let root = s.data().join("certs/root-ca.pem").display().to_string();
    let url = s.revocation_url("/ocsp");
    let mut args = vec![
        "ocsp",
        "-issuer",
        &issuing,
        "-url",
        &url,
        "-CAfile",
        &root,
        "-resp_text",
    ];
    args.extend_from_slice(what);
    let _ = f;
    openssl(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificates_are_in_the_crl_and_ocsp_says_so() {
    let mut s = start().await;
    let admin = ("admin", s.admin_password.clone());
    let admin = (admin.0, admin.1.as_str());
    let f = Files::new();
    let kp = key(Key::P256);
    let cert = enroll(&s, &kp, admin, "admin").await;
    let serial = serial_hex(&cert);
    let cert_pem = f.put("cert.pem", estd::est::pem("CERTIFICATE", &cert).as_bytes());

    // the certificate names the CRL and the responder
    let text = openssl(&["x509", "-in", &cert_pem, "-noout", "-text"]);
    let crl_url = s.revocation_url("/crl/issuing-ca.crl");
    let ocsp_url = s.revocation_url("/ocsp");
    assert!(text.contains("X509v3 CRL Distribution Points"), "{text}");
    assert!(text.contains(&format!("URI:{crl_url}")), "{text}");
    assert!(text.contains(&format!("OCSP - URI:{ocsp_url}")), "{text}");

    // good, before
    let out = ocsp(&s, &f, &["-cert", &cert_pem]);
    assert!(out.contains(&format!("{cert_pem}: good")), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("estd OCSP responder"), "{out}");

    // the CRL before: signed by the issuing CA, nobody listed
    let http = reqwest::Client::new();
    let before = http.get(&crl_url).send().await.unwrap();
    assert_eq!(before.status(), 200);
    assert_eq!(before.headers()["content-type"], "application/pkix-crl");
    let crl_file = f.put("before.crl", &before.bytes().await.unwrap());
    let text = openssl(&["crl", "-inform", "DER", "-in", &crl_file, "-noout", "-text"]);
    assert!(text.contains("No Revoked Certificates"), "{text}");

    // revoke through the JSON API
    let (status, json) = revoke_api(&s, admin, &serial, r#"{"reason":"keyCompromise"}"#).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["status"], "revoked");
    assert_eq!(json["revocation"]["reason"], "keyCompromise");
    assert_eq!(json["revocation"]["revoked_by"], "admin");

    // the CRL lists it, with the reason, and verifies against the CA chain
    let after = http
        .get(&crl_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let crl_file = f.put("after.crl", &after);
    let text = openssl(&["crl", "-inform", "DER", "-in", &crl_file, "-noout", "-text"]);
    assert!(
        text.contains(&format!("Serial Number: {}", serial.to_uppercase())),
        "{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    let chain = f.put(
        "chain.pem",
        &[
            std::fs::read(s.data().join("certs/issuing-ca.pem")).unwrap(),
            s.root_pem(),
        ]
        .concat(),
    );
    let verified = openssl(&[
        "crl", "-inform", "DER", "-in", &crl_file, "-CAfile", &chain, "-noout",
    ]);
    assert!(verified.contains("verify OK"), "{verified}");
    // and openssl verify refuses the certificate with it
    let crl_pem = f.put(
        "after.crl.pem",
        openssl(&["crl", "-inform", "DER", "-in", &crl_file]).as_bytes(),
    );
    let out = Command::new("openssl")
        .args([
            "verify",
            "-crl_check",
            "-CAfile",
            &chain,
            "-CRLfile",
            &crl_pem,
            &cert_pem,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("certificate revoked"), "{text}");

    // OCSP: revoked, with the reason (POST, as openssl sends it)
    let out = ocsp(&s, &f, &["-cert", &cert_pem]);
    assert!(out.contains(&format!("{cert_pem}: revoked")), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");

    // an unknown serial: unknown
    let out = ocsp(&s, &f, &["-serial", "0x1234abcd"]);
    assert!(out.contains("0x1234abcd: unknown"), "{out}");

    // GET (RFC 6960 A.1): the request base64 in the path
    let req_file = f.dir.path().join("req.der").display().to_string();
    let issuing = s.data().join("certs/issuing-ca.pem").display().to_string();
    openssl(&[
        "ocsp",
        "-issuer",
        &issuing,
        "-cert",
        &cert_pem,
        "-no_nonce",
        "-reqout",
        &req_file,
    ]);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&req_file).unwrap());
    let encoded: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_string(),
            '/' => "%2F".to_string(),
            '=' => "%3D".to_string(),
            c => c.to_string(),
        })
        .collect();
    let r = http
        .get(format!("{ocsp_url}/{encoded}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/ocsp-response");
    let resp_file = f.put("resp.der", &r.bytes().await.unwrap());
    let text = openssl(&["ocsp", "-respin", &resp_file, "-resp_text", "-noverify"]);
    assert!(text.contains("Cert Status: revoked"), "{text}");

    // garbage: malformedRequest, not a server error
    let r = http
        .post(&ocsp_url)
        .header("content-type", "application/ocsp-request")
        .body(vec![0x30, 0x03, 0x02, 0x01, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        [0x30, 0x03, 0x0a, 0x01, 0x01]
    );
    let r = http.post(&ocsp_url).body("x").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let r = http
        .get(s.revocation_url("/crl/other.crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // the revocation is in the audit log, under the API request
    let events = s.state().store.recent_audit(20).await.unwrap();
    let e = events
        .iter()
        .find(|e| e.operation == "revoke")
        .expect("revoke audited");
    assert_eq!(e.serial.as_deref(), Some(serial.as_str()));
    assert_eq!(e.reason.as_deref(), Some("revoked: keyCompromise"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_cannot_be_renewed_nor_its_key_certified_again() {
    let mut s = start().await;
    let password = s.admin_password.clone();
    let admin = ("admin", password.as_str());
    let kp = key(Key::P256);
    let cert = enroll(&s, &kp, admin, "admin").await;
    let serial = serial_hex(&cert);

    // renewing works before
    let with_cert = client(&s.root_pem(), Some((cert.clone(), &kp)), false);
    let renew = |kp: &rcgen::KeyPair| b64(&csr(kp, "admin", &[]));
    let r = post_pkcs10(
        &with_cert,
        s.url("/.well-known/est/simplereenroll"),
        None,
        renew(&key(Key::P256)),
    )
    .await;
    assert_eq!(r.status(), 200);

    let (status, _) = revoke_api(&s, admin, &serial, r#"{"reason":"superseded"}"#).await;
    assert_eq!(status, 200);

    // renewing with the revoked certificate: 403, the reason in the audit log
    let with_cert = client(&s.root_pem(), Some((cert.clone(), &kp)), false);
    let r = post_pkcs10(
        &with_cert,
        s.url("/.well-known/est/simplereenroll"),
        None,
        renew(&key(Key::P256)),
    )
    .await;
    assert_eq!(r.status(), 403);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let text = r.text().await.unwrap();
    assert!(
        text.contains(&format!("(serial {serial}) was revoked")),
        "{text}"
    );
    let events = s.state().store.recent_audit(20).await.unwrap();
    let e = events.iter().find(|e| e.request_id == id).expect("audited");
    assert_eq!(e.status, 403);
    // audited under the certificate's owner (as its renewals are), not "-", and the
    // reason names the certificate's subject
    assert_eq!(e.principal.as_deref(), Some("admin"), "{e:?}");
    assert!(
        e.reason
            .as_deref()
            .unwrap_or("")
            .contains("certificate CN=admin (serial"),
        "{e:?}"
    );
    assert!(
        e.reason.as_deref().unwrap_or("").contains("was revoked")
            && e.reason.as_deref().unwrap_or("").contains("superseded"),
        "{e:?}"
    );

    // the revoked key, in a new request by any route: 403 (EST, JSON API with a CSR)
    let r = post_pkcs10(
        &client(&s.root_pem(), None, false),
        s.url("/.well-known/est/simpleenroll"),
        Some(admin),
        b64(&csr(&kp, "admin", &[])),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains(&format!("belongs to the revoked certificate {serial}"))
    );
    let csr_pem = estd::est::pem("CERTIFICATE REQUEST", &csr(&kp, "admin", &[]));
    let r = client(&s.root_pem(), None, false)
        .post(s.url("/api/v1/certificates/csr"))
        .basic_auth("admin", Some(&password))
        .json(&serde_json::json!({"template": "default", "csr_pem": csr_pem, "format": "pem", "password": "Passw0rdX"}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("belongs to the revoked certificate"),
        "{text}"
    );
    // a new key is fine
    enroll(&s, &key(Key::P256), admin, "admin").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_revoke_their_own_certificates_admins_anyones() {
    let mut s = start().await;
    let password = s.admin_password.clone();
    let admin = ("admin", password.as_str());
    let env_hash = estd::auth::hash_password("alice-pw-123").unwrap();
    let state = s.state();
    for u in ["alice", "bob"] {
        state
            .store
            .add_user(u, &env_hash, &["est-users".to_string()])
            .await
            .unwrap();
    }
    let alice = ("alice", "alice-pw-123");
    let bob = ("bob", "alice-pw-123");
    let a1 = serial_hex(&enroll(&s, &key(Key::P256), alice, "alice").await);
    let a2 = serial_hex(&enroll(&s, &key(Key::P256), alice, "alice").await);
    let b1 = serial_hex(&enroll(&s, &key(Key::P256), bob, "bob").await);

    // bob cannot see or revoke alice's: 404, as for a serial that does not exist
    let (status, json) = revoke_api(&s, bob, &a1, "{}").await;
    assert_eq!(status, 404, "{json}");
    let (status, _) = revoke_api(&s, bob, "00ff", "{}").await;
    assert_eq!(status, 404);
    // alice revokes her own (no body: unspecified), then again: 409
    let (status, json) = revoke_api(&s, alice, &a1, "").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["revocation"]["reason"], "unspecified");
    let (status, json) = revoke_api(&s, alice, &a1, "{}").await;
    assert_eq!(status, 409, "{json}");
    // an unknown reason, and one not offered (certificateHold): 400
    for reason in ["nope", "certificateHold", "removeFromCRL"] {
        let (status, json) =
            revoke_api(&s, alice, &a2, &format!(r#"{{"reason":"{reason}"}}"#)).await;
        assert_eq!(status, 400, "{reason}: {json}");
        assert_eq!(json["error"], "reason");
    }
    // the admin revokes bob's, written with colons and upper case
    let spelled: String = b1
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let (status, json) = revoke_api(
        &s,
        admin,
        &spelled,
        r#"{"reason":"cessation-of-operation"}"#,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["serial"], b1.as_str());
    assert_eq!(json["revocation"]["reason"], "cessationOfOperation");

    // listings: alice sees only hers; the admin filters by user and status
    let list = |who: (&'static str, String), query: &'static str| {
        let c = client(&s.root_pem(), None, false);
        let url = s.url(&format!("/api/v1/certificates{query}"));
        async move {
            let r = c
                .get(url)
                .basic_auth(who.0, Some(who.1))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: serde_json::Value = r.json().await.unwrap();
            v["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["serial"].as_str().unwrap().to_string(),
                        c["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let mine = list(("alice", "alice-pw-123".into()), "?user=bob").await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(mine.contains(&(a1.clone(), "revoked".into())));
    assert!(mine.contains(&(a2.clone(), "valid".into())));
    let revoked = list(("admin", password.clone()), "?status=revoked").await;
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    let bobs = list(("admin", password.clone()), "?user=bob&status=valid").await;
    assert!(bobs.is_empty(), "{bobs:?}");
    let found = list(("admin", password.clone()), "?q=CN%3Dalice").await;
    assert_eq!(found.len(), 2, "{found:?}");
    let r = client(&s.root_pem(), None, false)
        .get(s.url("/api/v1/certificates?status=lost"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // show: the PEM; another user's is 404
    let r = client(&s.root_pem(), None, false)
        .get(s.url(&format!("/api/v1/certificates/{a2}")))
        .basic_auth("alice", Some("alice-pw-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let r = client(&s.root_pem(), None, false)
        .get(s.url(&format!("/api/v1/certificates/{a2}")))
        .basic_auth("bob", Some("alice-pw-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_can_leave_the_revocation_urls_out() {
    const BARE: &str = "name = \"bare\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\ncrl_distribution_point = false\nocsp = false\ncn_must_match_user = false\n";
    let mut s = start_with_templates("", &[BARE]).await;
    let r = post_pkcs10(
        &client(&s.root_pem(), None, false),
        s.url("/.well-known/est/bare/simpleenroll"),
        Some(("admin", &s.admin_password)),
        b64(&csr(&key(Key::P256), "x", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let der = der_of(&certs_of(&r.bytes().await.unwrap())[0]);
    let f = Files::new();
    let p = f.put("c.pem", estd::est::pem("CERTIFICATE", &der).as_bytes());
    let text = openssl(&["x509", "-in", &p, "-noout", "-text"]);
    assert!(!text.contains("CRL Distribution Points"), "{text}");
    assert!(!text.contains("Authority Information Access"), "{text}");
    s.stop().await;

    // revocation off: neither URL, and revoking says why
    let mut s = start_with("[revocation]\nlisten = \"\"\n").await;
    let password = s.admin_password.clone();
    let cert = enroll(&s, &key(Key::P256), ("admin", &password), "admin").await;
    let p = f.put("d.pem", estd::est::pem("CERTIFICATE", &cert).as_bytes());
    let text = openssl(&["x509", "-in", &p, "-noout", "-text"]);
    assert!(!text.contains("CRL Distribution Points"), "{text}");
    let (status, json) = revoke_api(&s, ("admin", &password), &serial_hex(&cert), "{}").await;
    assert_eq!(status, 503, "{json}");
    assert!(s.running.as_ref().unwrap().revocation_addr.is_none());
    let _ = Path::new(".");
    s.stop().await;
}
