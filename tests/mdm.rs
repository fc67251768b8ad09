//! MDM connectors (seed 002): the test certificate through `POST /api/v1/test-certificate`
//! for each SAN style and each substitution rule, its field checks, and a diagnostics
//! entry (audit row with the request id the client was told) for each kind of failure.

mod common;

use axum::http::StatusCode;
use common::inproc::*;
use common::*;
use estd::est::SanEntry;

const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";

const NONE_T: &str = "name = \"t-none\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"none\"\ncn_must_match_user = false\n";
const UPN_T: &str = "name = \"t-upn\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"upn\"\nupn_names = [\"*\"]\ncn_must_match_user = false\ndomain = \"corp.example\"\nfill_missing = \"Test\"\n";
const UPN_EMAIL_T: &str = "name = \"t-upn-email\"\nkey_types = [\"rsa-2048\", \"ec-p256\"]\nserver_keygen_key = \"ec-p256\"\nvalidity_days = 30\nsan_style = \"upn+email\"\nupn_names = [\"*\"]\nemail_names = [\"*\"]\ncn_must_match_user = false\n";
const OTHER_T: &str = r#"
name = "t-other"
key_types = ["ec-p256"]
validity_days = 30
cn_must_match_user = false
san_style = "other"
san_pattern = ["upn:%uname%@%domain%", "email:%email%", "dns:%cn%.devices.example"]
upn_names = ["*"]
email_names = ["*"]
fill_missing = "Test"
"#;
const OTHER_BLANK_T: &str = r#"
name = "t-other-blank"
key_types = ["ec-p256"]
validity_days = 30
cn_must_match_user = false
san_style = "other"
san_pattern = ["upn:%uname%@%domain%", "email:%email%", "uri:urn:example:%cn%"]
upn_names = ["*"]
email_names = ["*"]
fill_missing = ""
"#;
const OWNED_T: &str =
    "name = \"t-owned\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"none\"\n";
const MAC_T: &str = "name = \"t-mac\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"mac\"\ncn_must_match_user = false\n";

async fn setup() -> Env {
    let env = env_with(&[
        NONE_T,
        UPN_T,
        UPN_EMAIL_T,
        OTHER_T,
        OTHER_BLANK_T,
        OWNED_T,
        MAC_T,
    ])
    .await;
    env.add_user("connector", "Connector-pw-1", &["est-users"])
        .await;
    env
}

async fn test_cert(env: &Env, body: serde_json::Value) -> (Resp, serde_json::Value) {
    let r = send(
        env,
        post(
            "/api/v1/test-certificate",
            Some(&basic("connector", "Connector-pw-1")),
            "application/json",
            body.to_string(),
        ),
        None,
    )
    .await;
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r, v)
}

fn req(template: &str, name: &str, user: &str, domain: &str, email: &str) -> serde_json::Value {
    serde_json::json!({
        "template": template, "cert_name": name, "user_name": user,
        "domain": domain, "email": email,
    })
}

/// The SAN of the certificate in a PASS answer, sorted; also checks the rest of the answer:
/// the key is the certificate's, the chain verifies it, and the store calls it a test.
async fn sans_of_pass(env: &Env, r: &Resp, v: &serde_json::Value) -> Vec<SanEntry> {
    assert_eq!(r.status, 200, "{}", r.raw_text());
    assert_eq!(r.ct(), "application/json");
    assert_eq!(v["result"], "PASS");
    assert_eq!(
        v["request_id"].as_str(),
        r.headers["x-request-id"].to_str().ok()
    );
    let cert_pem = v["certificate_pem"].as_str().unwrap();
    let cert_der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()
    };
    let key = rcgen::KeyPair::from_pem(v["private_key_pem"].as_str().unwrap()).unwrap();
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&cert_der).unwrap();
    assert_eq!(
        cert.tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
        key.public_key_raw(),
        "the key in the answer is the certificate's"
    );
    assert_eq!(
        v["ca_chain_pem"]
            .as_str()
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    let serial = v["serial"].as_str().unwrap();
    let rec = env
        .state
        .store
        .find_certificate(serial)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(rec.operation, "test-certificate");
    assert_eq!(rec.requester, "connector");
    assert_eq!(rec.der, cert_der.to_vec());
    let mut san = estd::est::cert_identity(&cert_der).unwrap().1;
    san.sort();
    let mut listed: Vec<String> = v["san"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut shown: Vec<String> = san.iter().map(ToString::to_string).collect();
    shown.sort();
    assert_eq!(listed, shown, "the answer lists the certificate's SAN");
    san
}

fn upn(s: &str) -> SanEntry {
    SanEntry::OtherName(UPN_OID.into(), s.into())
}
fn email(s: &str) -> SanEntry {
    SanEntry::Email(s.into())
}

fn sorted(mut v: Vec<SanEntry>) -> Vec<SanEntry> {
    v.sort();
    v
}

#[tokio::test]
async fn each_san_style_and_substitution_rule() {
    let env = setup().await;
    // None: no SAN, CN = the certificate name
    let (r, v) = test_cert(
        &env,
        req(
            "t-none",
            "TestCert",
            "joe",
            "example.com",
            "joe@example.com",
        ),
    )
    .await;
    assert_eq!(sans_of_pass(&env, &r, &v).await, vec![]);
    assert_eq!(v["subject"], "CN=TestCert");

    // UPN = user@domain
    let (r, v) = test_cert(&env, req("t-upn", "TestCert", "joe", "example.com", "")).await;
    assert_eq!(
        sans_of_pass(&env, &r, &v).await,
        vec![upn("joe@example.com")]
    );
    // no domain given: the template's `domain`
    let (r, v) = test_cert(&env, req("t-upn", "TestCert", "joe", "", "")).await;
    assert_eq!(
        sans_of_pass(&env, &r, &v).await,
        vec![upn("joe@corp.example")]
    );
    // no user given: `fill_missing` = Test
    let (r, v) = test_cert(&env, req("t-upn", "TestCert", "", "", "")).await;
    assert_eq!(
        sans_of_pass(&env, &r, &v).await,
        vec![upn("Test@corp.example")]
    );

    // UPN and Email
    let (r, v) = test_cert(
        &env,
        req(
            "t-upn-email",
            "TestCert",
            "joe",
            "example.com",
            "joe.doe@mail.example.com",
        ),
    )
    .await;
    assert_eq!(
        sans_of_pass(&env, &r, &v).await,
        sorted(vec![
            upn("joe@example.com"),
            email("joe.doe@mail.example.com")
        ])
    );
    // fill_missing is blank here: a missing email leaves that entry out, and the template
    // (which requires one) says so — the connector's test fails with the reason
    let (r, v) = test_cert(
        &env,
        req("t-upn-email", "TestCert", "joe", "example.com", ""),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        v["message"],
        "The certificate template t-upn-email requires an email address (rfc822Name) in the Subject alternative name"
    );

    // Other, with every variable given
    let (r, v) = test_cert(
        &env,
        req("t-other", "Pos17", "joe", "example.com", "joe@example.com"),
    )
    .await;
    assert_eq!(
        sans_of_pass(&env, &r, &v).await,
        sorted(vec![
            upn("joe@example.com"),
            email("joe@example.com"),
            SanEntry::Dns("Pos17.devices.example".into()),
        ])
    );
    // Other, fill_missing = Test: every missing variable becomes Test
    let (r, v) = test_cert(&env, req("t-other", "Pos18", "", "", "")).await;
    assert_eq!(
        sans_of_pass(&env, &r, &v).await,
        sorted(vec![
            upn("Test@Test"),
            email("Test"),
            SanEntry::Dns("Pos18.devices.example".into()),
        ])
    );
    // Other, fill_missing blank: an entry that needs a missing variable is left out
    let (r, v) = test_cert(&env, req("t-other-blank", "Pos19", "joe", "", "")).await;
    assert_eq!(
        sans_of_pass(&env, &r, &v).await,
        vec![SanEntry::Uri("urn:example:Pos19".into())]
    );
    let (r, v) = test_cert(
        &env,
        req("t-other-blank", "Pos20", "joe", "example.com", ""),
    )
    .await;
    assert_eq!(
        sans_of_pass(&env, &r, &v).await,
        sorted(vec![
            upn("joe@example.com"),
            SanEntry::Uri("urn:example:Pos20".into())
        ])
    );

    // every one is in the audit log as a test certificate
    let audit = env.state.store.recent_audit(50).await.unwrap();
    let tests = audit
        .iter()
        .filter(|a| a.operation == "test-certificate" && a.status == 200)
        .count();
    assert_eq!(tests, 9);
}

#[tokio::test]
async fn the_same_rules_as_a_device() {
    let env = setup().await;
    // the CN owner rule: the connector may not name a certificate after someone else here
    let (r, v) = test_cert(&env, req("t-owned", "TestCert", "", "", "")).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        v["message"],
        "Invalid request - The given CSR has a CN that does not match the provided user name, and that user does not have ERS Admin"
    );
    // the CN characters rule
    let (r, v) = test_cert(&env, req("t-none", "Test;Cert", "", "", "")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        v["message"],
        "The given CN is invalid. Cannot contain [ ] \" ; | = , + * ? < > characters"
    );
    // a MAC template: the test sends no MAC address
    let (r, v) = test_cert(&env, req("t-mac", "TestCert", "joe", "", "")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        v["message"],
        "The certificate template t-mac requires a MAC address in the Subject alternative name"
    );
    // not in the EST group
    env.add_user("outsider", "Outsider-pw-1", &["other"]).await;
    let r = send(
        &env,
        post(
            "/api/v1/test-certificate",
            Some(&basic("outsider", "Outsider-pw-1")),
            "application/json",
            req("t-none", "TestCert", "", "", "").to_string(),
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(env.state.store.certificate_count().await.unwrap(), 0);
}

#[tokio::test]
async fn fields_are_checked_and_nothing_is_issued() {
    let env = setup().await;
    let cases = [
        (
            req("t-upn", "Test Cert", "joe", "example.com", ""),
            "cert_name",
            estd::fields::NAME_HAS_SPACES,
        ),
        (
            req("t-upn", "", "joe", "example.com", ""),
            "cert_name",
            estd::fields::NAME_MISSING,
        ),
        (
            req("t-upn", "TestCert", "joe", "example", ""),
            "domain",
            estd::fields::DOMAIN_INVALID,
        ),
        (
            req("t-upn", "TestCert", "joe", "exa mple.com", ""),
            "domain",
            estd::fields::DOMAIN_INVALID,
        ),
        (
            req("t-upn", "TestCert", "joe", "example.com", "joe"),
            "email",
            estd::fields::EMAIL_INVALID,
        ),
        (
            req("t-upn", "TestCert", "joe@example.com", "", ""),
            "user_name",
            estd::fields::USER_INVALID,
        ),
        (
            req("nope", "TestCert", "joe", "example.com", ""),
            "template",
            "There is no certificate template \"nope\"",
        ),
    ];
    for (body, field, message) in cases {
        let (r, v) = test_cert(&env, body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            (v["error"].as_str(), v["message"].as_str()),
            (Some(field), Some(message)),
            "{body}"
        );
    }
    // unknown JSON fields and a wrong content type
    let (r, _) = test_cert(&env, serde_json::json!({"template": "t-upn", "cn": "x"})).await;
    assert_eq!(r.status, 400);
    let r = send(
        &env,
        post(
            "/api/v1/test-certificate",
            Some(&basic("connector", "Connector-pw-1")),
            "text/plain",
            "x",
        ),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(env.state.store.certificate_count().await.unwrap(), 0);
}

/// "Check whether the certificate request was received by the EST server and why the
/// request failed": one audit row per failure, under the id the client was told, with the
/// reason — authentication, unknown template, a policy rule with its message, a CA error.
#[tokio::test]
async fn diagnostics_for_each_kind_of_failure() {
    let env = setup().await;
    let est = |label: &str, auth: &str, body: String| {
        post(
            &format!("/.well-known/est/{label}/simpleenroll"),
            Some(auth),
            "application/pkcs10",
            body,
        )
    };
    let csr_for = |cn: &str| b64(&csr(&key(Key::P256), cn, &[]));
    let wrong = basic("connector", "wrong");
    let right = basic("connector", "Connector-pw-1");
    let mut expected: Vec<(String, u16, &str, &str)> = Vec::new();
    let mut check = |r: &Resp, status: u16, op: &'static str, reason: &'static str| {
        assert_eq!(r.status.as_u16(), status, "{}", r.raw_text());
        let id = r.headers["x-request-id"].to_str().unwrap().to_string();
        assert!(
            r.raw_text().contains(&id),
            "the body names the request id: {}",
            r.raw_text()
        );
        expected.push((id, status, op, reason));
    };
    // authentication
    let r = send(&env, est("t-none", &wrong, csr_for("connector")), None).await;
    check(
        &r,
        401,
        "simpleenroll",
        "the user name or password is wrong",
    );
    // unknown template (EST label and API)
    let r = send(&env, est("nope", &right, csr_for("connector")), None).await;
    check(&r, 404, "simpleenroll", "nope");
    let (r, _) = test_cert(&env, req("nope", "TestCert", "", "", "")).await;
    check(
        &r,
        400,
        "test-certificate",
        "There is no certificate template",
    );
    // a policy rule, with the rule's message
    let r = send(&env, est("t-owned", &right, csr_for("someone")), None).await;
    check(
        &r,
        403,
        "simpleenroll",
        "The given CSR has a CN that does not match the provided user name",
    );
    let (r, _) = test_cert(&env, req("t-mac", "TestCert", "", "", "")).await;
    check(&r, 400, "test-certificate", "requires a MAC address");
    let audit = env
        .state
        .store
        .find_audit("1970", None, true, 100)
        .await
        .unwrap();
    for (id, status, op, reason) in &expected {
        let row = audit
            .iter()
            .find(|a| &a.request_id == id)
            .unwrap_or_else(|| panic!("no audit row for {id}: {audit:#?}"));
        assert_eq!(
            (row.status, row.operation.as_str(), row.outcome.as_str()),
            (*status, *op, "error"),
            "{row:?}"
        );
        assert!(
            row.reason.as_deref().unwrap_or("").contains(reason),
            "{row:?} should say {reason:?}"
        );
        assert_ne!(row.peer, "", "{row:?}");
        assert_eq!(
            row.principal.as_deref(),
            Some("connector"),
            "found under the name it was made with, even when the password was wrong"
        );
    }

    // a CA error: its own server, whose issuing CA has expired
    let ca_env = env_in(expired_issuing_ca(), &[NONE_T]).await;
    ca_env
        .add_user("connector", "Connector-pw-1", &["est-users"])
        .await;
    let (r, v) = test_cert(&ca_env, req("t-none", "TestCert", "", "", "")).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        v["message"],
        "CA server error - Certificate request to internal CA failed CN=TestCert"
    );
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(v["request_id"], id);
    let audit = ca_env
        .state
        .store
        .find_audit("1970", Some("connector"), true, 10)
        .await
        .unwrap();
    let row = audit.iter().find(|a| a.request_id == id).expect("audited");
    assert_eq!(row.operation, "test-certificate");
    assert!(
        row.reason.as_deref().unwrap().contains("CA server error")
            && row.reason.as_deref().unwrap().contains("expired"),
        "the CA's own reason is kept for the operator: {row:?}"
    );
}
