//! Enrollment codes over EST, on real TLS: issued in bulk by the JSON API, presented as the
//! Basic password (user name = the code's id or its CN) or as the CSR's challengePassword,
//! single use, bound to a CN, expiring, withdrawn, for one template only; a refused request
//! leaves its code unused; a guesser is slowed; the certificate renews itself. SCEP's side
//! of the same codes is tests/scep_service.rs.

mod common;

use std::time::Duration;

use common::*;

const KIOSK: &str = r#"name = "kiosk"
key_types = ["ec-p256"]
validity_days = 30
auth = ["code"]
cn_must_match_user = false
scep = false
"#;

/// Codes and user passwords; codes must be bound to a CN here.
const STRICT: &str = r#"name = "strict"
key_types = ["ec-p256"]
validity_days = 30
auth = ["basic", "code"]
"#;

/// Neither SCEP nor codes.
const NOCODES: &str = r#"name = "nocodes"
key_types = ["ec-p256"]
validity_days = 30
scep = false
"#;

async fn server() -> TestServer {
    start_with_templates("", &[KIOSK, STRICT, NOCODES]).await
}

fn anon(s: &TestServer) -> reqwest::Client {
    client(&s.root_pem(), None, false)
}

/// `count` codes for `template` (bound to `cn` when given): (id, code) pairs.
async fn codes(
    s: &TestServer,
    template: &str,
    count: u32,
    cn: Option<&str>,
    expires: &str,
) -> Vec<(i64, String)> {
    let r = anon(s)
        .post(s.url("/api/v1/codes"))
        .basic_auth("admin", Some(&s.admin_password))
        .json(&serde_json::json!({ "template": template, "count": count, "cn": cn, "expires": expires }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    v["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_i64().unwrap(),
                c["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A CSR for `cn` whose challengePassword is `secret`.
fn csr_with_code(kp: &rcgen::KeyPair, cn: &str, secret: &str) -> String {
    let mut utf8 = vec![0x0c, secret.len() as u8];
    utf8.extend_from_slice(secret.as_bytes());
    let mut set = vec![0x31, utf8.len() as u8];
    set.extend(utf8);
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let attrs = vec![rcgen::Attribute {
        oid: &[1, 2, 840, 113549, 1, 9, 7],
        values: set,
    }];
    b64(params
        .serialize_request_with_attributes(kp, attrs)
        .unwrap()
        .der())
}

async fn enroll(
    s: &TestServer,
    label: &str,
    basic: Option<(&str, &str)>,
    body: String,
) -> (u16, String, Vec<u8>) {
    let r = post_pkcs10(
        &anon(s),
        s.url(&format!("/.well-known/est/{label}/simpleenroll")),
        basic,
        body,
    )
    .await;
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap().to_vec();
    (status, String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

async fn requester_of(s: &TestServer, body: &[u8]) -> String {
    let der = der_of(&certs_of(body)[0]);
    let serial = estd::enroll::serial_of(&der).unwrap();
    s.state()
        .store
        .find_certificate(&serial)
        .await
        .unwrap()
        .unwrap()
        .requester
}

#[tokio::test]
async fn a_code_enrolls_once_as_basic_password_or_challenge_password() {
    let mut s = server().await;
    let list = codes(&s, "kiosk", 3, None, "1h").await;
    assert_eq!(list.len(), 3);
    let (id, code) = &list[0];

    // the Basic password, the user name the code's id
    let kp = key(Key::P256);
    let (status, text, body) = enroll(
        &s,
        "kiosk",
        Some((&id.to_string(), code)),
        b64(&csr(&kp, "kiosk-1", &[])),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(requester_of(&s, &body).await, format!("code:{id}"));
    // used: 401 naming the code (never its value)
    let (status, text, _) = enroll(
        &s,
        "kiosk",
        Some((&format!("code-{id}"), code)),
        b64(&csr(&key(Key::P256), "kiosk-1", &[])),
    )
    .await;
    assert_eq!(status, 401);
    assert!(text.contains(&format!("code {id}: already used")), "{text}");
    let audited = s
        .state()
        .store
        .find_audit("2000-01-01T00:00:00Z", None, true, 100)
        .await
        .unwrap();
    assert!(audited.iter().any(|a| {
        a.reason
            .as_deref()
            .unwrap_or("")
            .contains(&format!("code {id}: already used"))
    }));
    assert!(
        !audited
            .iter()
            .any(|a| a.reason.as_deref().unwrap_or("").contains(code.as_str()))
    );

    // the CSR's challengePassword, no Authorization header at all
    let (id2, code2) = &list[1];
    let (status, text, body) = enroll(
        &s,
        "kiosk",
        None,
        csr_with_code(&key(Key::P256), "kiosk-2", code2),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(requester_of(&s, &body).await, format!("code:{id2}"));

    // the user name must be the code's: another name with a good code is refused
    let (id3, code3) = &list[2];
    let (status, text, _) = enroll(
        &s,
        "kiosk",
        Some(("admin", code3)),
        b64(&csr(&key(Key::P256), "kiosk-3", &[])),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        text.contains(&format!("code {id3}: the user name must be the code's id")),
        "{text}"
    );

    // a template that takes codes only refuses a user's password; no credentials: 401
    // saying what it takes
    let (status, text, _) = enroll(
        &s,
        "kiosk",
        Some(("admin", &s.admin_password)),
        b64(&csr(&key(Key::P256), "admin", &[])),
    )
    .await;
    assert_eq!(status, 401);
    assert!(text.contains("not one this server issued"), "{text}");
    let (status, text, _) = enroll(&s, "kiosk", None, b64(&csr(&key(Key::P256), "x", &[]))).await;
    assert_eq!(status, 401);
    assert!(text.contains("an enrollment code"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn bound_expired_withdrawn_and_foreign_codes_are_refused() {
    let mut s = server().await;
    // bound to a CN: the user name may be the CN; another CN is 403 and leaves it unused
    let bound = codes(&s, "strict", 1, Some("kiosk-7"), "1h").await;
    let (id, code) = &bound[0];
    let (status, text, _) = enroll(
        &s,
        "strict",
        Some(("kiosk-7", code)),
        b64(&csr(&key(Key::P256), "kiosk-8", &[])),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains(&format!(
            "code {id}: bound to CN=kiosk-7; the request has CN=kiosk-8"
        )),
        "{text}"
    );
    let (status, text, _) = enroll(
        &s,
        "strict",
        Some(("kiosk-7", code)),
        b64(&csr(&key(Key::P256), "kiosk-7", &[])),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // the user passwords still work on a template that takes both
    let (status, _, _) = enroll(
        &s,
        "strict",
        Some(("admin", &s.admin_password)),
        b64(&csr(&key(Key::P256), "admin", &[])),
    )
    .await;
    assert_eq!(status, 200);

    // a code of another template
    let kiosk = codes(&s, "kiosk", 2, None, "1h").await;
    let (status, text, _) = enroll(
        &s,
        "strict",
        Some((&kiosk[0].0.to_string(), &kiosk[0].1)),
        b64(&csr(&key(Key::P256), "kiosk-7", &[])),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        text.contains("issued for the template kiosk, not strict"),
        "{text}"
    );

    // a policy refusal (a key type the template does not take) leaves the code unused
    let (status, _, _) = enroll(
        &s,
        "kiosk",
        Some((&kiosk[0].0.to_string(), &kiosk[0].1)),
        b64(&csr(&key(Key::Rsa2048), "kiosk-9", &[])),
    )
    .await;
    assert_eq!(status, 403);
    let (status, text, _) = enroll(
        &s,
        "kiosk",
        Some((&kiosk[0].0.to_string(), &kiosk[0].1)),
        b64(&csr(&key(Key::P256), "kiosk-9", &[])),
    )
    .await;
    assert_eq!(status, 200, "{text}");

    // withdrawn: no longer a code
    let admin = anon(&s);
    let r = admin
        .post(s.url(&format!("/api/v1/codes/{}/revoke", kiosk[1].0)))
        .basic_auth("admin", Some(&s.admin_password))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, text, _) = enroll(
        &s,
        "kiosk",
        None,
        csr_with_code(&key(Key::P256), "kiosk-10", &kiosk[1].1),
    )
    .await;
    assert_eq!(status, 401);
    assert!(text.contains("not one this server issued"), "{text}");

    // expired
    let short = codes(&s, "kiosk", 1, None, "1s").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, text, _) = enroll(
        &s,
        "kiosk",
        None,
        csr_with_code(&key(Key::P256), "kiosk-11", &short[0].1),
    )
    .await;
    assert_eq!(status, 401);
    assert!(text.contains("expired at"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn issuing_codes_is_for_administrators_and_checked() {
    let mut s = server().await;
    let hash = estd::auth::hash_password("joe-password-1").unwrap();
    s.state()
        .store
        .add_user("joe", &hash, &["est".to_string()])
        .await
        .unwrap();
    let post = |user: &'static str, password: String, body: serde_json::Value| {
        let c = anon(&s);
        let url = s.url("/api/v1/codes");
        async move {
            let r = c
                .post(url)
                .basic_auth(user, Some(password))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, _) = post(
        "joe",
        "joe-password-1".into(),
        serde_json::json!({ "template": "kiosk", "count": 5 }),
    )
    .await;
    assert_eq!(status, 403);
    let pw = s.admin_password.clone();
    for (body, want) in [
        (
            serde_json::json!({ "template": "kiosk", "count": 2, "cn": "a" }),
            "bound to no CN or SAN",
        ),
        (
            serde_json::json!({ "template": "kiosk", "count": 10001 }),
            "1 to 10000 codes",
        ),
        (
            serde_json::json!({ "template": "strict", "count": 1 }),
            "bind the code to a CN",
        ),
        (
            serde_json::json!({ "template": "default", "count": 1, "expires": "91d" }),
            "1 second to 90 days",
        ),
    ] {
        let (status, text) = post("admin", pw.clone(), body).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(want), "{want}: {text}");
    }
    // a template with neither SCEP nor codes
    let (status, text) = post(
        "admin",
        pw.clone(),
        serde_json::json!({ "template": "nocodes", "count": 1 }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("takes no enrollment codes"), "{text}");
    // the list names them "codes" here
    let list: serde_json::Value = anon(&s)
        .get(s.url("/api/v1/codes"))
        .basic_auth("admin", Some(&pw))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["codes"].is_array(), "{list}");
    s.stop().await;
}

#[tokio::test]
async fn a_guesser_is_slowed_and_the_certificate_renews_itself() {
    let mut s = server().await;
    let mut throttled = false;
    for i in 0..20 {
        let (status, _, _) = enroll(
            &s,
            "kiosk",
            None,
            csr_with_code(&key(Key::P256), "g", &format!("{i:032x}")),
        )
        .await;
        if status == 429 {
            throttled = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(throttled, "20 wrong codes from one address and no 429");
    // wrong codes as the Basic password count too, on a template that takes no passwords
    let third = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&s.root_pem(), None, false))
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .build()
        .unwrap();
    let mut throttled = false;
    for i in 0..20 {
        let r = post_pkcs10(
            &third,
            s.url("/.well-known/est/kiosk/simpleenroll"),
            Some(("7", &format!("{i:032x}"))),
            b64(&csr(&key(Key::P256), "g", &[])),
        )
        .await;
        if r.status() == 429 {
            throttled = true;
            break;
        }
        assert_eq!(r.status(), 401);
    }
    assert!(
        throttled,
        "20 wrong Basic codes from one address and no 429"
    );

    // from another address, a good code still works; its certificate renews itself
    let list = codes(&s, "kiosk", 1, None, "1h").await;
    let kp = key(Key::P256);
    let other = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&s.root_pem(), None, false))
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = post_pkcs10(
        &other,
        s.url("/.well-known/est/kiosk/simpleenroll"),
        None,
        csr_with_code(&kp, "kiosk-20", &list[0].1),
    )
    .await;
    assert_eq!(r.status(), 200);
    let cert = der_of(&certs_of(&r.bytes().await.unwrap())[0]);
    let device = client(&s.root_pem(), Some((cert, &kp)), false);
    let r = post_pkcs10(
        &device,
        s.url("/.well-known/est/kiosk/simplereenroll"),
        None,
        b64(&csr(&kp, "kiosk-20", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn the_portal_downloads_a_batch_of_codes_for_administrators() {
    let mut s = server().await;
    let http = no_redirect_client(&s.root_pem());
    let base = s.url("");
    let cookie = portal_login(&http, &base, "admin", &s.admin_password).await;
    let page = http
        .get(format!("{base}/portal/scep"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("action=\"/portal/codes\""), "the batch form");
    let csrf = csrf_in(&page);
    let post = |form: Vec<(&'static str, String)>| {
        http.post(format!("{base}/portal/codes"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };
    let r = post(vec![
        ("csrf", csrf.clone()),
        ("template", "kiosk".into()),
        ("count", "4".into()),
        ("expires", "2h".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"codes-kiosk-")
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert_eq!(lines[0], "id,code,template,cn,san,expires_at");
    // a downloaded code enrolls
    let cols: Vec<&str> = lines[1].split(',').collect();
    let (status, text, _) = enroll(
        &s,
        "kiosk",
        Some((cols[0], cols[1])),
        b64(&csr(&key(Key::P256), "kiosk-p", &[])),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // a bad count, and no CSRF token: the page again, nothing issued
    let r = post(vec![
        ("csrf", csrf.clone()),
        ("template", "kiosk".into()),
        ("count", "many".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("How many: a number from 1 to 10000")
    );
    let r = post(vec![("template", "kiosk".into()), ("count", "3".into())])
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let now = estd::store::timestamp(std::time::SystemTime::now());
    let open = s
        .state()
        .store
        .list_challenges(&now, true, 100)
        .await
        .unwrap();
    assert_eq!(open.len(), 3, "only the 4 downloaded, one of them used");
    s.stop().await;
}

/// A code used over EST cannot be claimed again over SCEP by a transactionID that names the
/// EST request (the two protocols' use markers never meet), nor released by it.
#[tokio::test]
async fn a_scep_transaction_cannot_claim_or_release_an_est_use() {
    let mut s = server().await;
    let list = codes(&s, "kiosk", 1, None, "1h").await;
    let (id, code) = &list[0];
    let r = post_pkcs10(
        &anon(&s),
        s.url("/.well-known/est/kiosk/simpleenroll"),
        Some((&id.to_string(), code)),
        b64(&csr(&key(Key::P256), "kiosk-1", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let state = s.state();
    let template = state.templates.get(Some("kiosk")).unwrap();
    let other = estd::est::Csr::parse(&csr(&key(Key::P256), "kiosk-2", &[])).unwrap();
    let spoof = estd::enroll::codes::scep_use(&format!("est:{rid}"));
    let got =
        estd::enroll::codes::redeem(state.store.as_ref(), &template, code, &other, &spoof, None)
            .await
            .unwrap();
    assert!(
        matches!(&got, Err(estd::enroll::codes::Refused::Invalid { why, .. }) if why == "already used"),
        "{got:?}"
    );
    assert!(!state.store.release_challenge(*id, &spoof).await.unwrap());
    // the EST marker itself is the request's own (a lost answer's retry), and only that
    let own = format!("est:{rid}");
    assert!(
        estd::enroll::codes::redeem(state.store.as_ref(), &template, code, &other, &own, None)
            .await
            .unwrap()
            .is_ok()
    );
    s.stop().await;
}
