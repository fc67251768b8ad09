//! Every EST operation and error status, through the router in-process (no sockets).

mod common;

use axum::body::Body;
use axum::http::{Request, header};
use common::inproc::*;
use common::*;
use der::Decode;

async fn enroll(env: &Env, path: &str, body: String) -> Resp {
    let auth = basic("admin", &env.password);
    send(
        env,
        post(path, Some(&auth), "application/pkcs10", body),
        None,
    )
    .await
}

#[tokio::test]
async fn cacerts_is_the_chain_with_the_exact_media_type() {
    let env = env().await;
    for path in [
        "/.well-known/est/cacerts",
        "/.well-known/est/devices/cacerts",
    ] {
        let r = send(&env, get(path), None).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.ct(), "application/pkcs7-mime");
        assert_eq!(r.headers["content-transfer-encoding"], "base64");
        assert!(r.headers.contains_key("x-request-id"));
        let mut got: Vec<Vec<u8>> = certs_of(&r.body).iter().map(der_of).collect();
        let mut want = env.state.enroll.issuer().chain().to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(!r.body.contains(&b'\r'));
        assert!(r.text().lines().all(|l| l.len() <= 64));
    }
}

#[tokio::test]
async fn unknown_label_and_operation_are_404() {
    let env = env().await;
    for path in [
        "/.well-known/est/nosuchlabel/cacerts",
        "/.well-known/est/nosuchop",
        "/.well-known/est/devices/nosuchop",
        "/.well-known/est/a/b/c",
        "/elsewhere",
    ] {
        let r = send(&env, get(path), None).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.ct().starts_with("text/plain"));
    }
}

#[tokio::test]
async fn csrattrs_is_an_empty_sequence_or_what_the_template_asks() {
    let env = env().await;
    // devices allows every key type and needs no SAN: it asks nothing, as a 200 with an
    // empty SEQUENCE (libest's client counts a 204 as a failure)
    let r = send(&env, get("/.well-known/est/devices/csrattrs"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.ct(), "application/csrattrs");
    assert_eq!(r.body, b"MAA=\n");
    assert!(csrattrs_of(&r.body).is_empty());
    // default restricts key types: its preferred key and signature algorithm
    let r = send(&env, get("/.well-known/est/csrattrs"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.ct(), "application/csrattrs");
    // first the RFC 9908 CSR template, then the legacy entries for old clients
    assert_eq!(
        csrattrs_of(&r.body),
        vec![
            "1.2.840.113549.1.9.16.2.61=SEQUENCE",
            "1.2.840.10045.2.1=1.2.840.10045.3.1.7",
            "1.2.840.10045.4.3.2"
        ]
    );
    // libest refuses an answer over 1024 bytes
    assert!(r.body.len() < 1024, "{}", r.body.len());
    assert!(!r.body.contains(&0));
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let env = env().await;
    let r = send(&env, get("/.well-known/est/simpleenroll"), None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers[header::ALLOW], "POST");
    let r = send(&env, get("/.well-known/est/devices/simplereenroll"), None).await;
    assert_eq!(r.status, 405);
    let r = send(
        &env,
        post("/.well-known/est/cacerts", None, "text/plain", ""),
        None,
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers[header::ALLOW], "GET");
}

#[tokio::test]
async fn fullcmc_is_501_and_serverkeygen_needs_credentials() {
    let env = env().await;
    let r = send(
        &env,
        post("/.well-known/est/fullcmc", None, "application/pkcs10", "x"),
        None,
    )
    .await;
    assert_eq!(r.status, 501);
    let r = send(
        &env,
        post(
            "/.well-known/est/serverkeygen",
            None,
            "application/pkcs10",
            "x",
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn enroll_needs_valid_basic_credentials() {
    let env = env().await;
    let kp = key(Key::P256);
    let body = b64(&csr(&kp, "admin", &[]));
    for auth in [
        None,
        Some(basic("admin", "wrong")),
        Some(basic("nobody", "x")),
        Some("Basic !!!notbase64".to_string()),
    ] {
        let r = send(
            &env,
            post(
                "/.well-known/est/simpleenroll",
                auth.as_deref(),
                "application/pkcs10",
                body.clone(),
            ),
            None,
        )
        .await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Basic realm=\"estd\"");
    }
    // a client certificate alone does not authenticate simpleenroll
    let issued = enroll(&env, "/.well-known/est/simpleenroll", body.clone()).await;
    assert_eq!(issued.status, 200);
    let cert = der_of(&certs_of(&issued.body)[0]);
    let r = send(
        &env,
        post(
            "/.well-known/est/simpleenroll",
            None,
            "application/pkcs10",
            body,
        ),
        Some(cert),
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_user_outside_the_est_group_is_403() {
    let env = env().await;
    let hash = estd::auth::hash_password("pw-of-bob").unwrap();
    env.state
        .store
        .add_user("bob", &hash, &["other".into()])
        .await
        .unwrap();
    let body = b64(&csr(&key(Key::P256), "bob", &[]));
    let r = send(
        &env,
        post(
            "/.well-known/est/simpleenroll",
            Some(&basic("bob", "pw-of-bob")),
            "application/pkcs10",
            body,
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text().lines().next(),
        Some("User bob may not use the certificate template default"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let env = env().await;
    let auth = basic("admin", &env.password);
    let body = b64(&csr(&key(Key::P256), "admin", &[]));
    for ct in ["application/x-www-form-urlencoded", "text/plain", ""] {
        let r = send(
            &env,
            post(
                "/.well-known/est/simpleenroll",
                Some(&auth),
                ct,
                body.clone(),
            ),
            None,
        )
        .await;
        assert_eq!(r.status, 415, "{ct:?}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let env = env().await;
    let r = enroll(&env, "/.well-known/est/simpleenroll", "A".repeat(70_000)).await;
    assert_eq!(r.status, 413);
    // without a Content-Length (streamed), the limit still holds
    let auth = basic("admin", &env.password);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b'A'; 4096])).collect();
    let body = Body::from_stream(futures_stream(chunks));
    let r = send(
        &env,
        post(
            "/.well-known/est/simpleenroll",
            Some(&auth),
            "application/pkcs10",
            body,
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 413);
}

fn futures_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::iter(items)
}

#[tokio::test]
async fn malformed_and_badly_signed_csrs_are_400() {
    let env = env().await;
    let mut der = csr(&key(Key::P256), "admin", &[]);
    let pos = der.windows(5).position(|w| w == b"admin").unwrap();
    der[pos] = b'A';
    let r = enroll(&env, "/.well-known/est/simpleenroll", b64(&der)).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("signature does not verify"),
        "{}",
        r.text()
    );
    for garbage in ["", "!!!!", &b64(b"not a csr")] {
        let r = enroll(&env, "/.well-known/est/simpleenroll", garbage.to_string()).await;
        assert_eq!(r.status, 400, "{garbage:?}");
    }
}

#[tokio::test]
async fn base64_with_and_without_line_breaks_and_pem_all_enroll() {
    let env = env().await;
    let kp = key(Key::P256);
    let der = csr(&kp, "admin", &["dev.example"]);
    let pem = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}-----END CERTIFICATE REQUEST-----\n",
        b64_lines(&der, "\n")
    );
    for body in [
        b64(&der),
        b64_lines(&der, "\n"),
        b64_lines(&der, "\r\n"),
        pem,
    ] {
        let r = enroll(&env, "/.well-known/est/simpleenroll", body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.ct(), "application/pkcs7-mime; smime-type=certs-only");
    }
    // with Content-Transfer-Encoding: base64 too
    let auth = basic("admin", &env.password);
    let req = Request::post("/.well-known/est/simpleenroll")
        .header(header::CONTENT_TYPE, "application/pkcs10")
        .header("content-transfer-encoding", "base64")
        .header(header::AUTHORIZATION, auth)
        .body(Body::from(b64(&der)))
        .unwrap();
    assert_eq!(send(&env, req, None).await.status, 200);
}

#[tokio::test]
async fn the_issued_certificate_follows_the_csr_and_template() {
    let env = env().await;
    let kp = key(Key::P256);
    let r = enroll(
        &env,
        "/.well-known/est/simpleenroll",
        b64(&csr(&kp, "admin", &["b.example", "a.example"])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.lines().all(|l| l.len() <= 64) && !text.contains('\r') && text.ends_with('\n'));
    let certs = certs_of(&r.body);
    assert_eq!(certs.len(), 1);
    let tbs = certs[0].tbs_certificate();
    assert_eq!(tbs.subject().to_string(), "CN=admin");
    assert_eq!(tbs.serial_number().as_bytes().len(), 16);
    assert_eq!(
        tbs.subject_public_key_info().subject_public_key.raw_bytes(),
        kp.public_key_raw()
    );
    let validity = tbs.validity();
    let days = (validity.not_after.to_unix_duration() - validity.not_before.to_unix_duration())
        .as_secs()
        / 86_400;
    assert_eq!(days, 365);
    let (_, sans) = estd::est::cert_identity(&der_of(&certs[0])).unwrap();
    assert_eq!(
        sans,
        vec![
            estd::est::SanEntry::Dns("a.example".into()),
            estd::est::SanEntry::Dns("b.example".into())
        ]
    );
    let eku_oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.37");
    let eku = tbs
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == eku_oid)
        .unwrap();
    let ekus = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).unwrap();
    assert_eq!(
        ekus.0,
        vec![der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2")]
    );
    // recorded, with its audit row
    let serial = estd::est::hex(tbs.serial_number().as_bytes());
    let rec = env
        .state
        .store
        .find_certificate(&serial)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.requester, "admin");
    assert_eq!(rec.der, der_of(&certs[0]));
    let audit = env.state.store.recent_audit(1).await.unwrap();
    assert_eq!(audit[0].serial.as_deref(), Some(serial.as_str()));
    assert_eq!(audit[0].status, 200);
}

#[tokio::test]
async fn every_key_type_enrolls_where_the_template_allows_it() {
    let env = env().await;
    for k in [Key::P256, Key::P384, Key::Ed25519, Key::Rsa2048] {
        let r = enroll(
            &env,
            "/.well-known/est/devices/simpleenroll",
            b64(&csr(&key(k), "admin", &[])),
        )
        .await;
        assert_eq!(r.status, 200, "{k:?}: {}", r.text());
    }
    let r = enroll(
        &env,
        "/.well-known/est/simpleenroll",
        b64(&csr(&key(Key::P384), "admin", &[])),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text().trim(),
        "key type ec-p384 is not allowed by template default (allowed: ec-p256, rsa-2048)"
    );
}

#[tokio::test]
async fn serial_numbers_are_unique() {
    let env = env().await;
    let kp = key(Key::P256);
    let body = b64(&csr(&kp, "admin", &[]));
    let mut serials = std::collections::HashSet::new();
    for _ in 0..20 {
        let r = enroll(&env, "/.well-known/est/simpleenroll", body.clone()).await;
        let c = &certs_of(&r.body)[0];
        assert!(serials.insert(c.tbs_certificate().serial_number().as_bytes().to_vec()));
    }
    assert_eq!(env.state.store.certificate_count().await.unwrap(), 20);
}

#[tokio::test]
async fn reenroll_keeps_subject_and_san_or_is_403() {
    let env = env().await;
    let kp = key(Key::P256);
    let r = enroll(
        &env,
        "/.well-known/est/simpleenroll",
        b64(&csr(&kp, "admin", &["a.example", "b.example"])),
    )
    .await;
    let old = der_of(&certs_of(&r.body)[0]);
    let reenroll = |body: String, cert: Option<Vec<u8>>| {
        let env = &env;
        async move {
            send(
                env,
                post(
                    "/.well-known/est/simplereenroll",
                    None,
                    "application/pkcs10",
                    body,
                ),
                cert,
            )
            .await
        }
    };
    // same subject, SANs in another order, a new key: fine
    let new_kp = key(Key::P256);
    let r = reenroll(
        b64(&csr(&new_kp, "admin", &["b.example", "a.example"])),
        Some(old.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // a changed subject
    let r = reenroll(
        b64(&csr(&new_kp, "someone-else", &["a.example", "b.example"])),
        Some(old.clone()),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Subject differs"), "{}", r.text());
    // a changed SAN
    let r = reenroll(
        b64(&csr(&new_kp, "admin", &["a.example"])),
        Some(old.clone()),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("SubjectAltName differs"), "{}", r.text());
    // no client certificate
    let r = reenroll(b64(&csr(&new_kp, "admin", &[])), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Basic realm=\"estd\"");
    // wrong Basic credentials alongside the certificate
    let req = post(
        "/.well-known/est/simplereenroll",
        Some(&basic("admin", "wrong")),
        "application/pkcs10",
        b64(&csr(&new_kp, "admin", &["a.example", "b.example"])),
    );
    assert_eq!(send(&env, req, Some(old.clone())).await.status, 401);
    // a look-alike: the recorded certificate's serial and subject, another key and issuer
    // (a chain the TLS layer would refuse; SCEP's signers come without one)
    let parsed = x509_cert::Certificate::from_der(&old).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(
        parsed.tbs_certificate().serial_number().as_bytes(),
    ));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "admin");
    let forged = params.self_signed(&new_kp).unwrap().der().to_vec();
    let r = reenroll(
        b64(&csr(&new_kp, "admin", &["a.example", "b.example"])),
        Some(forged),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.text().contains("was not issued by this server"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn every_request_is_audited() {
    let env = env().await;
    send(&env, get("/.well-known/est/cacerts"), None).await;
    send(&env, get("/.well-known/est/nosuch/cacerts"), None).await;
    send(
        &env,
        post(
            "/.well-known/est/simpleenroll",
            None,
            "application/pkcs10",
            "x",
        ),
        None,
    )
    .await;
    enroll(
        &env,
        "/.well-known/est/simpleenroll",
        b64(&csr(&key(Key::P256), "admin", &[])),
    )
    .await;
    let audit = env.state.store.recent_audit(10).await.unwrap();
    let summary: Vec<(String, u16)> = audit
        .iter()
        .rev()
        .map(|a| (a.operation.clone(), a.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("cacerts".to_string(), 200),
            ("cacerts".to_string(), 404),
            ("simpleenroll".to_string(), 401),
            ("simpleenroll".to_string(), 200),
        ]
    );
    let failed = &audit[1];
    assert_eq!(failed.outcome, "error");
    assert_eq!(failed.peer, "127.0.0.1:40000");
    assert!(failed.reason.as_deref().unwrap().contains("Basic"));
    assert_eq!(audit[0].principal.as_deref(), Some("admin"));
    assert_eq!(audit[2].label.as_deref(), Some("nosuch"));
}

/// Diagnostics: whatever went wrong, the body's last line names the request id the
/// `X-Request-Id` header carries (and the audit log records), and the first line is still
/// the message, word for word.
#[tokio::test]
async fn every_error_body_names_its_request_id() {
    let env = env().await;
    let auth = basic("admin", &env.password);
    let cases = [
        (
            post(
                "/.well-known/est/simpleenroll",
                None,
                "application/pkcs10",
                b64(&csr(&key(Key::P256), "admin", &[])),
            ),
            401,
        ),
        (
            post(
                "/.well-known/est/simpleenroll",
                Some(&auth),
                "application/pkcs10",
                "not base64 at all!",
            ),
            400,
        ),
        (
            post(
                "/.well-known/est/simpleenroll",
                Some(&auth),
                "text/plain",
                "x",
            ),
            415,
        ),
        (get("/.well-known/est/no-such-template/cacerts"), 404),
        (get("/nowhere"), 404),
    ];
    let mut ids = Vec::new();
    for (req, want) in cases {
        let r = send(&env, req, None).await;
        assert_eq!(r.status, want, "{}", r.raw_text());
        let id = r.headers["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 16);
        let raw = r.raw_text();
        let lines: Vec<&str> = raw.lines().collect();
        assert_eq!(lines.len(), 2, "{raw:?}");
        assert_eq!(lines[1], format!("Request ID: {id}"));
        assert_eq!(format!("{}\n", lines[0]), r.text());
        assert!(!ids.contains(&id), "ids are unique");
        ids.push(id);
    }
    let r = send(
        &env,
        post(
            "/.well-known/est/simpleenroll",
            Some(&auth),
            "application/pkcs10",
            "not base64 at all!",
        ),
        None,
    )
    .await;
    assert_eq!(
        r.text(),
        format!("{}\n", estd::est::MALFORMED_CSR),
        "the FAQ's text is untouched"
    );
    // A success carries the id in the header only.
    let r = send(&env, get("/.well-known/est/cacerts"), None).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.contains_key("x-request-id"));
    assert!(!r.raw_text().contains("Request ID"));
}

/// Verified Basic credentials are remembered (no argon2 on the next request), but a changed
/// password ends that at once and a wrong one is never remembered.
#[tokio::test]
async fn remembered_credentials_end_when_the_password_changes() {
    let env = env().await;
    let enroll = |user: &str, pw: &str| {
        post(
            "/.well-known/est/simpleenroll",
            Some(&basic(user, pw)),
            "application/pkcs10",
            b64(&csr(&key(Key::P256), "admin", &[])),
        )
    };
    let r = send(&env, enroll("admin", &env.password), None).await;
    assert_eq!(r.status, 200);
    let r = send(&env, enroll("admin", &env.password), None).await;
    assert_eq!(r.status, 200, "remembered");
    let r = send(&env, enroll("admin", "wrong"), None).await;
    assert_eq!(r.status, 401);
    // `estd user passwd` (another process) or another instance changes the password: the
    // user record read for Basic authentication is at most a second old
    let hash = estd::auth::hash_password("New-password-1").unwrap();
    assert!(env.state.store.set_password("admin", &hash).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = send(&env, enroll("admin", &env.password), None).await;
    assert_eq!(r.status, 401, "the old password no longer works");
    let r = send(&env, enroll("admin", "New-password-1"), None).await;
    assert_eq!(r.status, 200);
}

/// Repeated failed Basic authentications: 429 with Retry-After for that user (even with
/// the right password), logged and audited, while another user goes on enrolling.
#[tokio::test]
async fn failed_basic_authentications_are_slowed_per_user_and_address() {
    let env = env().await;
    env.add_user("bob", "Bob-password-1", &["est-users"]).await;
    let enroll = |user: &str, pw: &str| {
        post(
            "/.well-known/est/simpleenroll",
            Some(&basic(user, pw)),
            "application/pkcs10",
            b64(&csr(&key(Key::P256), user, &[])),
        )
    };
    for _ in 0..5 {
        let r = send(&env, enroll("admin", "wrong"), None).await;
        assert_eq!(r.status, 401);
    }
    // slowed, not locked: one check for admin from this address now (the right password
    // passes) …
    let r = send(&env, enroll("admin", &env.password), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // … then remembered credentials pass as often as they come (no password check) …
    let r = send(&env, enroll("admin", &env.password), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // … while a new guess must wait for the next check
    let r = send(&env, enroll("admin", "wrong-again"), None).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(
        r.text()
            .starts_with("Too many failed log-ins; try again in")
    );
    let r = send(&env, enroll("bob", "Bob-password-1"), None).await;
    assert_eq!(r.status, 200, "another user is not slowed");
    let audit = env
        .state
        .store
        .find_audit("1970", Some("admin"), true, 10)
        .await
        .unwrap();
    assert_eq!(
        audit.iter().map(|a| a.status).collect::<Vec<_>>(),
        [401, 401, 401, 401, 401, 429],
        "five refusals and the slowed guess"
    );
}
