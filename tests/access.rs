//! Who may get which certificate, with the shipped templates, as an attacker with an
//! ordinary account (alice: est-users, nothing more) tries what issue 18 found: a TLS server
//! certificate for any name, a certificate in anyone's name through the MDM template, any
//! subject at all, a renewal that switches template or borrows the original requester's
//! rights, and a user name that differs only in case. Each is tried through EST, the JSON
//! API and the portal where it applies, refused with 403 or 400 and found in the audit log.

mod common;

use common::*;
use rcgen::{DnType, KeyPair, SanType};

const ALICE: (&str, &str) = ("alice", "Alice-password-1");
const CONNECTOR: (&str, &str) = ("connector", "Connector-pw-1");

/// A template for admins that would allow `localhost` (one of this server's names) and
/// wildcards below lab.example.com.
const LAB: &str = r#"
name = "lab"
key_types = ["ec-p256"]
validity_days = 30
extended_key_usage = ["server_auth"]
cn_must_match_user = false
san_style = "dns"
san_optional = true
dns_names = ["localhost", "*.lab.example.com"]
allow_wildcards = true
ip_addresses = ["192.0.2.0/24", "127.0.0.1"]
allowed_groups = ["Super Admin"]
"#;

/// A connector's template that lets the requester choose O (to try the CA's own subject).
const ORGS: &str = r#"
name = "orgs"
key_types = ["ec-p256"]
validity_days = 30
cn_must_match_user = false
allowed_rdns = ["O"]
allowed_groups = ["mdm-connectors"]
"#;

/// People's UPNs: their own name at the company's domain.
const PEOPLE: &str = r#"
name = "people"
key_types = ["ec-p256"]
validity_days = 30
san_style = "upn"
upn_names = ["%cn%@corp.example.com"]
"#;

/// Unlisted attributes are left out instead of refused.
const LENIENT: &str = r#"
name = "lenient"
key_types = ["ec-p256"]
validity_days = 30
drop_unlisted_rdns = true
"#;

async fn setup() -> TestServer {
    let s = start_shipped(&[LAB, ORGS, LENIENT, PEOPLE]).await;
    for ((name, pw), groups) in [
        (ALICE, vec!["est-users"]),
        (CONNECTOR, vec!["mdm-connectors", "est-users"]),
    ] {
        let hash = estd::auth::hash_password(pw).unwrap();
        s.state()
            .store
            .add_user(
                name,
                &hash,
                &groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            )
            .await
            .unwrap();
    }
    s
}

fn subject_csr(kp: &KeyPair, subject: &[(DnType, &str)], sans: Vec<SanType>) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::default();
    for (t, v) in subject {
        params.distinguished_name.push(t.clone(), *v);
    }
    params.subject_alt_names = sans;
    params.serialize_request(kp).unwrap().der().to_vec()
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}

/// POSTs a CSR; the status and the first line of the body.
async fn est(
    s: &TestServer,
    path: &str,
    who: Option<(&str, &str)>,
    der: &[u8],
) -> (u16, String, Vec<u8>) {
    let http = client(&s.root_pem(), None, false);
    let r = post_pkcs10(&http, s.url(path), who, b64(der)).await;
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap().to_vec();
    let first = String::from_utf8_lossy(&body)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    (status, first, body)
}

async fn audited(s: &TestServer, user: &str, status: u16, reason: &str) {
    let events = s
        .state()
        .store
        .find_audit("2000-01-01T00:00:00Z", Some(user), true, 500)
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.status == status && e.reason.as_deref().unwrap_or("").contains(reason)),
        "no audit row {status} {reason:?} for {user} among {:?}",
        events
            .iter()
            .map(|e| (e.status, e.reason.clone()))
            .collect::<Vec<_>>()
    );
}

fn eku_of(body: &[u8]) -> Vec<String> {
    let cert = &certs_of(body)[0];
    cert.tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id.to_string() == "2.5.29.37")
        .flat_map(|e| {
            <x509_cert::ext::pkix::ExtendedKeyUsage as der::Decode>::from_der(
                e.extn_value.as_bytes(),
            )
            .unwrap()
            .0
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
        })
        .collect()
}

const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// Attack 1: a TLS server certificate for any host name, estd's own included.
#[tokio::test]
async fn no_server_certificate_for_names_the_template_does_not_allow() {
    let mut s = setup().await;
    let kp = key(Key::P256);
    let alice = Some(ALICE);
    let devices = "/.well-known/est/devices/simpleenroll";
    for (sans, want) in [
        (
            vec![dns("localhost"), dns("*.example.com")],
            "The certificate template devices does not issue wildcard names (DNS:*.example.com)",
        ),
        (
            vec![dns("localhost")],
            "The certificate template devices does not issue the name DNS:localhost (allowed: %cn%.devices.example.com)",
        ),
        (
            vec![dns("*")],
            "The certificate template devices does not issue wildcard names (DNS:*)",
        ),
        (
            vec![dns("*.com")],
            "The certificate template devices does not issue wildcard names (DNS:*.com)",
        ),
        (
            vec![dns("a*b.x")],
            "The certificate template devices does not issue wildcard names (DNS:a*b.x)",
        ),
        (
            vec![dns("bob.devices.example.com")],
            "The certificate template devices does not issue the name DNS:bob.devices.example.com (allowed: %cn%.devices.example.com)",
        ),
    ] {
        let (status, first, _) = est(
            &s,
            devices,
            alice,
            &subject_csr(&kp, &[(DnType::CommonName, "alice")], sans),
        )
        .await;
        assert_eq!((status, first.as_str()), (403, want));
        audited(&s, "alice", 403, want).await;
    }
    // her own device name: a server certificate, as the template says
    let (status, first, body) = est(
        &s,
        devices,
        alice,
        &subject_csr(
            &kp,
            &[(DnType::CommonName, "alice")],
            vec![dns("alice.devices.example.com")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert!(eku_of(&body).contains(&SERVER_AUTH.to_string()));

    // an admin under a template that would allow localhost: it is this server's name
    let admin = Some(("admin", s.admin_password.as_str()));
    let lab = "/.well-known/est/lab/simpleenroll";
    for (sans, status, want) in [
        (
            vec![dns("localhost")],
            403,
            "The name DNS:localhost belongs to this server and is never issued",
        ),
        (
            vec![SanType::IpAddress("127.0.0.1".parse().unwrap())],
            403,
            "The name IP:127.0.0.1 belongs to this server and is never issued",
        ),
        (
            vec![dns("*.co.uk")],
            403,
            "The wildcard name DNS:*.co.uk covers the public suffix co.uk and is never issued",
        ),
        (
            vec![SanType::IpAddress("198.51.100.7".parse().unwrap())],
            403,
            "The certificate template lab does not issue the name IP:198.51.100.7 (allowed: 192.0.2.0/24, 127.0.0.1/32)",
        ),
    ] {
        let (got, first, _) = est(
            &s,
            lab,
            admin,
            &subject_csr(&kp, &[(DnType::CommonName, "web")], sans),
        )
        .await;
        assert_eq!((got, first.as_str()), (status, want));
    }
    // a host name in a TLS server certificate's CN falls under the rules too (old clients
    // still match it when there is no SAN)
    let (status, first, _) = est(
        &s,
        lab,
        admin,
        &subject_csr(&kp, &[(DnType::CommonName, "www.bank.example")], vec![]),
    )
    .await;
    assert_eq!(
        (status, first.as_str()),
        (
            403,
            "The certificate template lab does not issue the name CN=www.bank.example (allowed: localhost, *.lab.example.com)"
        )
    );
    // a CN in a BMPString is read as the letters it holds
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        rcgen::DnValue::BmpString("localhost".try_into().unwrap()),
    );
    let bmp = params.serialize_request(&kp).unwrap().der().to_vec();
    let (status, first, _) = est(&s, lab, admin, &bmp).await;
    assert_eq!(
        (status, first.as_str()),
        (
            403,
            "The name CN=localhost belongs to this server and is never issued"
        )
    );
    let (status, first, _) = est(
        &s,
        lab,
        admin,
        &subject_csr(&kp, &[(DnType::CommonName, "localhost")], vec![]),
    )
    .await;
    assert_eq!(
        (status, first.as_str()),
        (
            403,
            "The name CN=localhost belongs to this server and is never issued"
        )
    );
    let (status, first, _) = est(
        &s,
        lab,
        admin,
        &subject_csr(
            &kp,
            &[(DnType::CommonName, "web")],
            vec![
                dns("*.lab.example.com"),
                SanType::IpAddress("192.0.2.10".parse().unwrap()),
            ],
        ),
    )
    .await;
    assert_eq!(status, 200, "a wildcard within the rules: {first}");
    // and alice may not use the admins' template at all
    let (status, first, _) = est(
        &s,
        lab,
        alice,
        &subject_csr(&kp, &[(DnType::CommonName, "alice")], vec![]),
    )
    .await;
    assert_eq!(
        (status, first.as_str()),
        (403, "User alice may not use the certificate template lab")
    );

    // the same through the JSON API and the portal
    let http = client(&s.root_pem(), None, false);
    let r = http
        .post(s.url("/api/v1/certificates"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .json(
            &serde_json::json!({"template": "devices", "common_name": "alice",
            "san": "localhost", "format": "pem", "password": "Secret_#42"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "san", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("does not issue the name DNS:localhost"),
        "{v}"
    );
    let web = no_redirect_client(&s.root_pem());
    let base = s.url("");
    let cookie = portal_login(&web, &base, ALICE.0, ALICE.1).await;
    let html = web
        .get(format!("{base}/portal/single"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = web
        .post(format!("{base}/portal/single"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf_in(&html).as_str()),
            ("common_name", "alice"),
            ("san", "*.example.com"),
            ("template", "devices"),
            ("format", "pem"),
            ("password", "Secret_#42"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("does not issue wildcard names (DNS:*.example.com)")
    );
    s.stop().await;
}

/// Attack 2: a client certificate in anyone's name through the MDM template.
#[tokio::test]
async fn the_mdm_template_is_only_for_its_connectors() {
    let mut s = setup().await;
    let kp = key(Key::Rsa2048);
    let upn = |v: &str| {
        SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            rcgen::OtherNameValue::Utf8String(v.into()),
        ))
    };
    let admin_csr = subject_csr(
        &kp,
        &[(DnType::CommonName, "admin")],
        vec![
            upn("administrator@corp.example.com"),
            SanType::Rfc822Name("ceo@example.com".try_into().unwrap()),
        ],
    );
    let want = "User alice may not use the certificate template mdm";
    let (status, first, _) = est(
        &s,
        "/.well-known/est/mdm/simpleenroll",
        Some(ALICE),
        &admin_csr,
    )
    .await;
    assert_eq!((status, first.as_str()), (403, want));
    audited(&s, "alice", 403, want).await;

    let http = client(&s.root_pem(), None, false);
    let api = |path: &'static str, who: (&'static str, &'static str), body: serde_json::Value| {
        let http = http.clone();
        let url = s.url(path);
        async move {
            let r = http
                .post(url)
                .basic_auth(who.0, Some(who.1))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
            )
        }
    };
    let test_cert = serde_json::json!({"template": "mdm", "cert_name": "admin",
        "user_name": "administrator", "domain": "corp.example.com", "email": "ceo@example.com"});
    let (status, v) = api("/api/v1/test-certificate", ALICE, test_cert.clone()).await;
    assert_eq!((status, v["message"].as_str()), (403, Some(want)), "{v}");
    assert_eq!(v["error"], "template");
    let (status, v) = api(
        "/api/v1/certificates",
        ALICE,
        serde_json::json!({"template": "mdm", "common_name": "admin",
            "san": "administrator@corp.example.com", "format": "pem", "password": "Secret_#42"}),
    )
    .await;
    assert_eq!((status, v["message"].as_str()), (403, Some(want)), "{v}");
    // bulk: refused before any row is looked at
    let form = reqwest::multipart::Form::new()
        .part(
            "csv",
            reqwest::multipart::Part::bytes(b"CN,SAN\r\nadmin,admin@corp.example.com\r\n".to_vec())
                .file_name("devices.csv"),
        )
        .text("template", "mdm")
        .text("format", "pem")
        .text("password", "Secret_#42");
    let r = http
        .post(s.url("/api/v1/bulk"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["message"], want, "{v}");

    // the portal lists only the templates she may use, and refuses a forged choice
    let web = no_redirect_client(&s.root_pem());
    let base = s.url("");
    let cookie = portal_login(&web, &base, ALICE.0, ALICE.1).await;
    let page = |path: &'static str, cookie: String| {
        let web = web.clone();
        let url = format!("{base}{path}");
        async move {
            web.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let html = page("/portal/test", cookie.clone()).await;
    assert!(!html.contains("value=\"mdm\""), "alice is offered mdm");
    assert!(html.contains("value=\"default\""));
    let r = web
        .post(format!("{base}/portal/test"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf_in(&html).as_str()),
            ("template", "mdm"),
            ("cert_name", "admin"),
            ("user_name", "administrator"),
            ("domain", "corp.example.com"),
            ("email", "ceo@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains(want));

    // the connector: offered mdm, and served
    let cookie = portal_login(&web, &base, CONNECTOR.0, CONNECTOR.1).await;
    assert!(page("/portal/test", cookie).await.contains("value=\"mdm\""));
    let (status, v) = api("/api/v1/test-certificate", CONNECTOR, test_cert).await;
    assert_eq!((status, v["result"].as_str()), (200, Some("PASS")), "{v}");
    s.stop().await;
}

/// A UPN is a log-in name (Active Directory maps certificates to accounts by it): under a
/// template open to everyone, only the requester's own.
#[tokio::test]
async fn a_upn_only_where_the_template_allows_it() {
    let mut s = setup().await;
    let kp = key(Key::P256);
    let upn = |v: &str| {
        SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            rcgen::OtherNameValue::Utf8String(v.into()),
        ))
    };
    let path = "/.well-known/est/people/simpleenroll";
    let (status, first, _) = est(
        &s,
        path,
        Some(ALICE),
        &subject_csr(
            &kp,
            &[(DnType::CommonName, "alice")],
            vec![upn("administrator@corp.example.com")],
        ),
    )
    .await;
    assert_eq!(
        (status, first.as_str()),
        (
            403,
            "The certificate template people does not issue the name otherName:1.3.6.1.4.1.311.20.2.3;administrator@corp.example.com (allowed: %cn%@corp.example.com)"
        )
    );
    let (status, first, _) = est(
        &s,
        path,
        Some(ALICE),
        &subject_csr(
            &kp,
            &[(DnType::CommonName, "alice")],
            vec![upn("alice@corp.example.com")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    s.stop().await;
}

/// Attack 3: any subject at all, of any length.
#[tokio::test]
async fn the_subject_is_built_from_what_the_template_allows() {
    let mut s = setup().await;
    let kp = key(Key::P256);
    let default = "/.well-known/est/simpleenroll";
    for (extra, rdn) in [
        ((DnType::OrganizationName, "estd development"), "O"),
        ((DnType::OrganizationalUnitName, "Domain Admins"), "OU"),
        (
            (
                DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                "admin@example.com",
            ),
            "emailAddress",
        ),
        (
            (
                DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
                "admin",
            ),
            "UID",
        ),
    ] {
        let want = format!(
            "Invalid request - The given CSR has an {rdn} RDN that the provided Certificate Template does not allow"
        );
        let (status, first, _) = est(
            &s,
            default,
            Some(ALICE),
            &subject_csr(&kp, &[(DnType::CommonName, "alice"), extra], vec![]),
        )
        .await;
        assert_eq!((status, first.as_str()), (400, want.as_str()));
        audited(&s, "alice", 400, &want).await;
    }
    let (status, _, body) = est(
        &s,
        default,
        Some(ALICE),
        &subject_csr(&kp, &[(DnType::CommonName, "alice")], vec![]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        certs_of(&body)[0].tbs_certificate().subject().to_string(),
        "CN=alice"
    );
    // a template that drops what it does not list
    let (status, first, body) = est(
        &s,
        "/.well-known/est/lenient/simpleenroll",
        Some(ALICE),
        &subject_csr(
            &kp,
            &[
                (DnType::CommonName, "alice"),
                (DnType::OrganizationName, "estd development"),
            ],
            vec![],
        ),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        certs_of(&body)[0].tbs_certificate().subject().to_string(),
        "CN=alice"
    );

    // the CA's own subject, even where O may be chosen
    use der::DecodePem;
    let ca = x509_cert::Certificate::from_pem(
        std::fs::read(s.data().join("certs/issuing-ca.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        ca.tbs_certificate().subject().to_string(),
        "O=estd development,CN=estd Development Issuing CA"
    );
    let ca_like = subject_csr(
        &kp,
        &[
            (DnType::OrganizationName, "estd development"),
            (DnType::CommonName, "estd Development Issuing CA"),
        ],
        vec![],
    );
    let (status, first, _) = est(
        &s,
        "/.well-known/est/orgs/simpleenroll",
        Some(CONNECTOR),
        &ca_like,
    )
    .await;
    assert_eq!(
        (status, first.as_str()),
        (
            403,
            "The name O=estd development,CN=estd Development Issuing CA belongs to this server and is never issued"
        )
    );
    // under mdm, O is not the requester's to choose
    let (status, first, _) = est(
        &s,
        "/.well-known/est/mdm/simpleenroll",
        Some(CONNECTOR),
        &ca_like,
    )
    .await;
    assert_eq!(status, 400, "{first}");

    // lengths: a CN over 64 characters, by EST and in an admin's bulk request (300 KB)
    let long = "a".repeat(65);
    let admin = ("admin", s.admin_password.clone());
    let (status, first, _) = est(
        &s,
        default,
        Some((admin.0, &admin.1)),
        &subject_csr(&kp, &[(DnType::CommonName, &long)], vec![]),
    )
    .await;
    assert_eq!(
        (status, first.as_str()),
        (
            400,
            "The given CN is invalid. Cannot be longer than 64 characters"
        )
    );
    let huge = "b".repeat(300 * 1024);
    let csv = format!("CN,SAN\r\n{huge},11:22:33:44:55:66\r\n");
    let form = reqwest::multipart::Form::new()
        .part(
            "csv",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("devices.csv"),
        )
        .text("template", "eap-tls")
        .text("format", "pem")
        .text("password", "Secret_#42");
    let r = client(&s.root_pem(), None, false)
        .post(s.url("/api/v1/bulk"))
        .basic_auth(admin.0, Some(&admin.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["errors"][0]["message"], "The given CN is invalid. Cannot be longer than 64 characters",
        "{v}"
    );
    assert_eq!(
        s.state().store.certificate_count().await.unwrap(),
        2,
        "only the two accepted requests were issued"
    );
    s.stop().await;
}

/// Attack 4: a renewal that switches template, or borrows its first requester's rights.
#[tokio::test]
async fn a_renewal_renews_what_was_issued() {
    let mut s = setup().await;
    let kp = key(Key::P256);
    let (status, _, body) = est(
        &s,
        "/.well-known/est/simpleenroll",
        Some(ALICE),
        &subject_csr(&kp, &[(DnType::CommonName, "alice")], vec![]),
    )
    .await;
    assert_eq!(status, 200);
    let cert = der_of(&certs_of(&body)[0]);
    let with_cert = client(&s.root_pem(), Some((cert.clone(), &kp)), false);
    let renew = |path: &'static str, der: Vec<u8>| {
        let c = with_cert.clone();
        let url = s.url(path);
        async move {
            let r = post_pkcs10(&c, url, None, b64(&der)).await;
            let status = r.status().as_u16();
            (status, r.bytes().await.unwrap().to_vec())
        }
    };
    let same = subject_csr(&kp, &[(DnType::CommonName, "alice")], vec![]);
    // under devices it would come back with serverAuth and 730 days
    let (status, body) = renew("/.well-known/est/devices/simplereenroll", same.clone()).await;
    assert_eq!(status, 403);
    assert_eq!(
        String::from_utf8_lossy(&body).lines().next(),
        Some(
            "The certificate being renewed was issued from the certificate template default; it is renewed only under that template, not devices"
        )
    );
    audited(&s, "alice", 403, "renewed only under that template").await;
    let (status, body) = renew("/.well-known/est/simplereenroll", same.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(eku_of(&body), [CLIENT_AUTH]);
    let renewed = &certs_of(&body)[0];
    let validity = renewed.tbs_certificate().validity();
    let days = (validity.not_after.to_unix_duration() - validity.not_before.to_unix_duration())
        .as_secs()
        / 86_400;
    assert_eq!(days, 365, "the default template's validity");
    let serial = estd::enroll::serial_of(&cert).unwrap();
    let events = s
        .state()
        .store
        .find_audit("2000-01-01T00:00:00Z", Some("alice"), false, 100)
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some(&format!("renews {serial}"))),
        "the renewal's audit row names the certificate renewed"
    );

    // an admin's certificate for a device renews as the device, not as the admin
    let admin = ("admin", s.admin_password.clone());
    let dev_key = key(Key::P256);
    let (status, _, body) = est(
        &s,
        "/.well-known/est/simpleenroll",
        Some((admin.0, &admin.1)),
        &subject_csr(&dev_key, &[(DnType::CommonName, "printer-7")], vec![]),
    )
    .await;
    assert_eq!(status, 200);
    let dev_cert = der_of(&certs_of(&body)[0]);
    let dev = client(&s.root_pem(), Some((dev_cert, &dev_key)), false);
    for (cn, status) in [("admin", 403), ("carol", 403), ("printer-7", 200)] {
        let r = post_pkcs10(
            &dev,
            s.url("/.well-known/est/simplereenroll"),
            None,
            b64(&subject_csr(&dev_key, &[(DnType::CommonName, cn)], vec![])),
        )
        .await;
        assert_eq!(r.status().as_u16(), status, "renewal as CN={cn}");
    }
    s.stop().await;
}

/// Attack 5: user names that differ only in case, or hold control characters or
/// look-alike letters.
#[tokio::test]
async fn user_names_are_one_regardless_of_case_and_plain_ascii() {
    let mut s = setup().await;
    // (off the runtime's thread: the server in this process keeps serving meanwhile)
    let data = s.data();
    let add = |name: &str| {
        let name = name.to_string();
        let data = data.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_estd"))
                    .args(["user", "add", &name, "--group", "est-users"])
                    .env("ESTD_DATA_DIR", &data)
                    .env_remove("ESTD_CONFIG")
                    .output()
                    .unwrap();
                (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stderr).to_string(),
                )
            })
            .await
            .unwrap()
        }
    };
    let (ok, err) = add("Alice").await;
    assert!(!ok);
    assert!(
        err.contains(
            "a user named \"Alice\" exists already (user names are compared regardless of case)"
        ),
        "{err}"
    );
    for bad in [
        "ev\u{1b}[2Jil",
        "bad\nname",
        "\u{430}dmin",
        "with space",
        ".dot",
        "",
    ] {
        let (ok, err) = add(bad).await;
        assert!(!ok, "{bad:?} was added");
        assert!(err.contains("is invalid"), "{bad:?}: {err}");
    }
    let (ok, err) = add("bob.smith@corp").await;
    assert!(ok, "{err}");
    // the CN rule compares by the same rule: Alice is alice's own name
    let kp = key(Key::P256);
    let (status, first, _) = est(
        &s,
        "/.well-known/est/simpleenroll",
        Some(ALICE),
        &subject_csr(&kp, &[(DnType::CommonName, "ALICE")], vec![]),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    s.stop().await;
}
