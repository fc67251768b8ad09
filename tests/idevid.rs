//! Zero-touch enrollment with manufacturer certificates (IEEE 802.1AR IDevIDs), over real
//! TLS on 127.0.0.1: a test vendor's root and issuing CA, IDevIDs with a serialNumber
//! attribute (no EKU, as devices often have), the vendor's CRL, and a template that trusts
//! the vendor. Every refusal the issue lists: wrong vendor, expired, revoked, not allowed,
//! denied, a CSR that does not match, and an IDevID on a template that does not trust it.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use rcgen::{CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const DAY: Duration = Duration::from_secs(86_400);

/// A device's IDevID (DER) and its key.
type Device = (Vec<u8>, KeyPair);

struct Vendor {
    root_pem: String,
    issuing_params: CertificateParams,
    issuing_key: KeyPair,
    issuing_der: Vec<u8>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn vendor(name: &str) -> Vendor {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params(&format!("{name} IDevID Root CA"));
    let root = root_params.self_signed(&root_key).unwrap();
    let issuing_key = KeyPair::generate().unwrap();
    let issuing_params = ca_params(&format!("{name} IDevID Issuing CA"));
    let issuing = issuing_params
        .signed_by(
            &issuing_key,
            &rcgen::Issuer::from_params(&root_params, &root_key),
        )
        .unwrap();
    Vendor {
        root_pem: root.pem(),
        issuing_der: issuing.der().to_vec(),
        issuing_params,
        issuing_key,
    }
}

/// An IDevID of `v`: subject CN=acme-router and serialNumber (when given), no EKU, serial
/// number `n`, valid from `from` to `to`.
fn idevid(v: &Vendor, serial: Option<&str>, n: u64, from: SystemTime, to: SystemTime) -> Device {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "acme-router");
    if let Some(s) = serial {
        p.distinguished_name
            .push(DnType::from_oid(&[2, 5, 4, 5]), s);
    }
    p.serial_number = Some(rcgen::SerialNumber::from(n));
    p.not_before = from.into();
    p.not_after = to.into();
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p
        .signed_by(
            &key,
            &rcgen::Issuer::from_params(&v.issuing_params, &v.issuing_key),
        )
        .unwrap();
    (cert.der().to_vec(), key)
}

fn current(v: &Vendor, serial: &str, n: u64) -> Device {
    let now = SystemTime::now();
    idevid(v, Some(serial), n, now - DAY, now + 3650 * DAY)
}

/// The vendor's CRL, revoking its certificates numbered `revoked`.
fn crl_pem(v: &Vendor, revoked: &[u64]) -> String {
    let now = time::OffsetDateTime::now_utc();
    rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(7),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|n| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(*n),
                revocation_time: now - time::Duration::minutes(5),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&rcgen::Issuer::from_params(
        &v.issuing_params,
        &v.issuing_key,
    ))
    .unwrap()
    .pem()
    .unwrap()
}

const ZT: &str = r#"name = "zt"
key_types = ["ec-p256"]
validity_days = 30
trust_vendor_cas = ["acme-root.pem"]
vendor_crls = ["acme.crl"]
idevid_cn = "%idevid_serial%"
idevid_allow_list = true
"#;

/// Trusts the other vendor only.
const ZT_BETA: &str = r#"name = "zt-beta"
key_types = ["ec-p256"]
validity_days = 30
trust_vendor_cas = ["beta-root.pem"]
idevid_cn = "dev-%idevid_serial%"
"#;

struct Setup {
    s: TestServer,
    acme: Vendor,
    beta: Vendor,
}

/// A server whose `zt` template trusts Acme (with its CRL revoking certificate 5 and an
/// allow-list) and `zt-beta` trusts Beta.
async fn setup() -> Setup {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let acme = vendor("Acme");
    let beta = vendor("Beta");
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("acme-root.pem"), &acme.root_pem).unwrap();
    std::fs::write(templates.join("beta-root.pem"), &beta.root_pem).unwrap();
    std::fs::write(templates.join("acme.crl"), crl_pem(&acme, &[5])).unwrap();
    let config = test_config_with(dir.path(), "", &[ZT, ZT_BETA]);
    let running = estd::app::start(&config).await.expect("start");
    let admin_password = running.admin_password.clone().expect("admin created");
    Setup {
        s: TestServer {
            dir,
            config,
            running: Some(running),
            admin_password,
        },
        acme,
        beta,
    }
}

/// A client presenting `chain` (leaf first) with `key`.
fn device(s: &TestServer, chain: &[&[u8]], key: &KeyPair) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&s.root_pem()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            chain
                .iter()
                .map(|c| CertificateDer::from(c.to_vec()))
                .collect(),
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

async fn enroll(
    s: &TestServer,
    c: &reqwest::Client,
    label: &str,
    op: &str,
    cn: &str,
) -> (u16, String, Vec<u8>) {
    let r = post_pkcs10(
        c,
        s.url(&format!("/.well-known/est/{label}/{op}")),
        None,
        b64_lines(&csr(&key(Key::P256), cn, &[]), "\n"),
    )
    .await;
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap().to_vec();
    (status, String::from_utf8_lossy(&body).into_owned(), body)
}

async fn allow(s: &TestServer, template: &str, csv: &str) -> reqwest::Response {
    client(&s.root_pem(), None, false)
        .post(s.url("/api/v1/devices"))
        .basic_auth("admin", Some(&s.admin_password))
        .json(&serde_json::json!({ "template": template, "csv": csv }))
        .send()
        .await
        .unwrap()
}

/// The reasons of the failed requests audited under `principal`.
async fn refusals_of(s: &TestServer, principal: &str) -> Vec<String> {
    for _ in 0..50 {
        let rows = s
            .state()
            .store
            .find_audit("2000-01-01T00:00:00Z", Some(principal), true, 100)
            .await
            .unwrap();
        if !rows.is_empty() {
            return rows.into_iter().filter_map(|r| r.reason).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn an_allowed_idevid_enrolls_renews_and_is_stopped_by_the_deny_list() {
    let mut t = setup().await;
    let s = &t.s;
    assert_eq!(
        allow(s, "zt", "serial,state\nSN-0001\n").await.status(),
        200
    );
    let (cert, key) = current(&t.acme, "SN-0001", 1);
    let dev = device(s, &[&cert, &t.acme.issuing_der], &key);

    // the CN must be the one the template derives from the IDevID
    let (status, text, _) = enroll(s, &dev, "zt", "simpleenroll", "admin").await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("must be \"SN-0001\""), "{text}");

    let kp = common::key(Key::P256);
    let r = post_pkcs10(
        &dev,
        s.url("/.well-known/est/zt/simpleenroll"),
        None,
        b64_lines(&csr(&kp, "SN-0001", &[]), "\n"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let issued = der_of(&certs_of(&r.bytes().await.unwrap())[0]);
    let serial = estd::enroll::serial_of(&issued).unwrap();
    let record = s
        .state()
        .store
        .find_certificate(&serial)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.requester, "idevid:SN-0001");
    assert_eq!(record.template, "zt");
    assert!(record.subject.contains("CN=SN-0001"), "{}", record.subject);

    // the new certificate (LDevID) renews itself
    let ldev = client(&s.root_pem(), Some((issued.clone(), &kp)), false);
    let r = post_pkcs10(
        &ldev,
        s.url("/.well-known/est/zt/simplereenroll"),
        None,
        b64_lines(&csr(&kp, "SN-0001", &[]), "\n"),
    )
    .await;
    assert_eq!(r.status(), 200);

    // the IDevID is no renewal credential: it was not issued by this server
    let (status, _, _) = enroll(s, &dev, "zt", "simplereenroll", "SN-0001").await;
    assert_eq!(status, 401);

    // denied: neither enrolls nor renews
    assert_eq!(allow(s, "zt", "SN-0001,deny,lost\n").await.status(), 200);
    let (status, text, _) = enroll(s, &dev, "zt", "simpleenroll", "SN-0001").await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("deny-list"), "{text}");
    let audited = refusals_of(s, "idevid:SN-0001").await;
    assert!(
        audited.iter().any(|r| r.contains("deny-list")),
        "{audited:?}"
    );
    let r = post_pkcs10(
        &ldev,
        s.url("/.well-known/est/zt/simplereenroll"),
        None,
        b64_lines(&csr(&kp, "SN-0001", &[]), "\n"),
    )
    .await;
    assert_eq!(r.status(), 403);
    t.s.stop().await;
}

#[tokio::test]
async fn every_refusal_is_a_403_naming_the_device() {
    let mut t = setup().await;
    let s = &t.s;
    let now = SystemTime::now();
    assert_eq!(
        allow(s, "zt", "SN-0004\nSN-0005\nSN-0006\n").await.status(),
        200
    );
    let cases: Vec<(&str, Device, &str)> = vec![
        // not on the allow-list
        ("SN-0002", current(&t.acme, "SN-0002", 2), "allow-list"),
        // expired (the handshake lets it through for this answer)
        (
            "SN-0004",
            idevid(&t.acme, Some("SN-0004"), 4, now - 20 * DAY, now - DAY),
            "expired at",
        ),
        // revoked by the vendor's CRL
        ("SN-0005", current(&t.acme, "SN-0005", 5), "revoked"),
        // not valid yet
        (
            "SN-0006",
            idevid(&t.acme, Some("SN-0006"), 6, now + DAY, now + 20 * DAY),
            "not valid before",
        ),
    ];
    for (serial, (cert, key), why) in &cases {
        let dev = device(s, &[cert, &t.acme.issuing_der], key);
        let (status, text, _) = enroll(s, &dev, "zt", "simpleenroll", serial).await;
        assert_eq!(status, 403, "{serial}: {text}");
        assert!(
            text.contains(why) && text.contains(serial),
            "{serial}: {text}"
        );
        let audited = refusals_of(s, &format!("idevid:{serial}")).await;
        assert!(audited.iter().any(|r| r.contains(why)), "{audited:?}");
    }

    // an IDevID without a serialNumber attribute
    let (cert, key) = idevid(&t.acme, None, 7, now - DAY, now + DAY);
    let dev = device(s, &[&cert, &t.acme.issuing_der], &key);
    let (status, text, _) = enroll(s, &dev, "zt", "simpleenroll", "acme-router").await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("serialNumber"), "{text}");

    // Acme's device on the template that trusts Beta only; and on one that trusts no vendor
    let (cert, key) = current(&t.acme, "SN-0001", 1);
    let dev = device(s, &[&cert, &t.acme.issuing_der], &key);
    let (status, text, _) = enroll(s, &dev, "zt-beta", "simpleenroll", "dev-SN-0001").await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("not an IDevID of a manufacturer"), "{text}");
    let (status, _, _) = enroll(s, &dev, "devices", "simpleenroll", "SN-0001").await;
    assert_eq!(status, 401);
    // nor does it open the JSON API
    let r = dev.get(s.url("/api/v1/certificates")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Beta's device, without an allow-list, on its own template: CN from the pattern
    let (cert, key) = current(&t.beta, "B-77", 77);
    let dev = device(s, &[&cert, &t.beta.issuing_der], &key);
    let (status, text, _) = enroll(s, &dev, "zt-beta", "simpleenroll", "dev-B-77").await;
    assert_eq!(status, 200, "{text}");

    // Beta's expired device on Acme's template: not trusted, never "expired" (the date is
    // named only for a chain to the template's own vendors)
    let now = SystemTime::now();
    let (cert, key) = idevid(&t.beta, Some("B-78"), 78, now - 20 * DAY, now - DAY);
    let dev = device(s, &[&cert, &t.beta.issuing_der], &key);
    let (status, text, _) = enroll(s, &dev, "zt", "simpleenroll", "B-78").await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("not an IDevID of a manufacturer"), "{text}");

    // a stranger's certificate fails the handshake, as before
    let stranger = vendor("Stranger");
    let (cert, key) = current(&stranger, "S-1", 1);
    let dev = device(s, &[&cert, &stranger.issuing_der], &key);
    let sent = dev
        .post(s.url("/.well-known/est/zt/simpleenroll"))
        .header("content-type", "application/pkcs10")
        .body(b64(&csr(&common::key(Key::P256), "S-1", &[])))
        .send()
        .await;
    assert!(sent.is_err(), "the handshake must fail: {sent:?}");
    t.s.stop().await;
}

#[tokio::test]
async fn serverkeygen_by_idevid() {
    let mut t = setup().await;
    let s = &t.s;
    assert_eq!(allow(s, "zt", "SN-0009\n").await.status(), 200);
    let (cert, key) = current(&t.acme, "SN-0009", 9);
    let dev = device(s, &[&cert, &t.acme.issuing_der], &key);
    let (status, text, _) = enroll(s, &dev, "zt", "serverkeygen", "SN-0009").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("application/pkcs8"), "{text}");
    t.s.stop().await;
}

#[tokio::test]
async fn device_lists_are_for_administrators_and_checked() {
    let mut t = setup().await;
    let s = &t.s;
    // a user of the est group is no administrator
    estd_user(s, "joe", "joe-password-1").await;
    let r = client(&s.root_pem(), None, false)
        .post(s.url("/api/v1/devices"))
        .basic_auth("joe", Some("joe-password-1"))
        .json(&serde_json::json!({ "template": "zt", "devices": [{ "serial": "SN-0002" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // a template without a vendor, a bad serial, a bad state: 400 naming it
    for (body, want) in [
        (
            serde_json::json!({ "template": "devices", "devices": [{ "serial": "X" }] }),
            "trusts no manufacturer CA",
        ),
        (
            serde_json::json!({ "template": "zt", "devices": [{ "serial": "tab\there" }] }),
            "printable ASCII",
        ),
        (
            serde_json::json!({ "template": "zt", "csv": "SN-1,maybe\n" }),
            "line 1: state",
        ),
        (
            serde_json::json!({ "template": "zt", "devices": [] }),
            "1 to 10000 devices",
        ),
    ] {
        let r = client(&s.root_pem(), None, false)
            .post(s.url("/api/v1/devices"))
            .basic_auth("admin", Some(&s.admin_password))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let text = r.text().await.unwrap();
        assert!(text.contains(want), "{text}");
    }
    assert_eq!(allow(s, "zt", "SN-1\nSN-2,deny\n").await.status(), 200);
    let admin = client(&s.root_pem(), None, false);
    let list: serde_json::Value = admin
        .get(s.url("/api/v1/devices?template=zt"))
        .basic_auth("admin", Some(&s.admin_password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<(String, String)> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["serial"].as_str().unwrap().to_string(),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("SN-1".to_string(), "allow".to_string()),
            ("SN-2".to_string(), "deny".to_string())
        ]
    );
    let remove = |serial: &str| {
        admin
            .post(s.url(&format!("/api/v1/devices/zt/{serial}/remove")))
            .basic_auth("admin", Some(&s.admin_password))
            .json(&serde_json::json!({}))
            .send()
    };
    assert_eq!(remove("SN-1").await.unwrap().status(), 200);
    assert_eq!(remove("SN-1").await.unwrap().status(), 404);
    t.s.stop().await;
}

async fn estd_user(s: &TestServer, name: &str, password: &str) {
    let hash = estd::auth::hash_password(password).unwrap();
    s.state()
        .store
        .add_user(name, &hash, &["est".to_string()])
        .await
        .unwrap();
}
