//! The enrollment policy through EST (in-process router): every FAQ message, admins acting
//! for others, each SAN style, csrattrs enforcement, channel binding, CA failure, and the
//! manual approval cycle.

mod common;

use axum::http::header;
use common::inproc::*;
use common::*;
use estd::est::SanEntry;
use rcgen::{CertificateParams, DnType, KeyPair, OtherNameValue, SanType};

const UPN: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 20, 2, 3];

const EAP: &str = r#"
name = "eap"
key_types = ["ec-p256", "rsa-2048"]
validity_days = 30
san_style = "mac"
[required_rdns]
OU = "POS"
O = "Example"
"#;
const EAP_DNS: &str = "name = \"eapdns\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"mac\"\nmac_encoding = \"dns\"\n";
const EAP_OTHER: &str = "name = \"eapother\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"mac\"\nmac_encoding = \"othername\"\nmac_othername_oid = \"1.3.6.1.4.1.9.1.1\"\n";
const MDM: &str = "name = \"mdm\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"upn+email\"\nupn_names = [\"*\"]\nemail_names = [\"*\"]\ncn_must_match_user = false\n";
const UPN_T: &str = "name = \"upn\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"upn\"\nupn_names = [\"*\"]\ncn_must_match_user = false\n";
const EMAIL_T: &str = "name = \"email\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"email\"\nemail_names = [\"*\"]\n";
const DNS_T: &str = "name = \"dnsreq\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"dns\"\ndns_names = [\"alice.example\", \"joe.example\"]\n";
const NONE_T: &str =
    "name = \"nosan\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"none\"\n";
const OTHER_T: &str = r#"
name = "other"
key_types = ["ec-p256"]
validity_days = 30
cn_must_match_user = false
san_style = "other"
san_pattern = ["upn:%uname%@%domain%", "email:%email%", "dns:%cn%.devices.example"]
upn_names = ["*"]
email_names = ["*"]
domain = "corp.example"
fill_missing = "Test"
"#;
const BOUND: &str =
    "name = \"bound\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nchannel_binding = true\n";
const ATTRS: &str = "name = \"attrs\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\ncsr_attrs = [\"1.2.840.113549.1.9.7\"]\n";
const MANUAL: &str = "name = \"manual\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\napproval = \"manual\"\nretry_after_secs = 30\n";

const ALL: &[&str] = &[
    EAP, EAP_DNS, EAP_OTHER, MDM, UPN_T, EMAIL_T, DNS_T, NONE_T, OTHER_T, BOUND, ATTRS, MANUAL,
];

async fn setup() -> Env {
    let env = env_with(ALL).await;
    env.add_user("alice", "alice-pw", &["est-users"]).await;
    env.add_user("ers", "ers-pw", &["est-users", "ERS Admin"])
        .await;
    env
}

/// A CSR with subject attributes, SANs and an optional challengePassword.
fn csr_with(
    kp: &KeyPair,
    subject: &[(DnType, &str)],
    sans: Vec<SanType>,
    challenge: Option<&str>,
) -> Vec<u8> {
    let mut params = CertificateParams::default();
    for (t, v) in subject {
        params.distinguished_name.push(t.clone(), *v);
    }
    params.subject_alt_names = sans;
    let attrs = match challenge {
        Some(c) => {
            let mut value = vec![0x0c, c.len() as u8];
            value.extend_from_slice(c.as_bytes());
            let mut set = vec![0x31, value.len() as u8];
            set.extend(value);
            vec![rcgen::Attribute {
                oid: &[1, 2, 840, 113549, 1, 9, 7],
                values: set,
            }]
        }
        None => vec![],
    };
    params
        .serialize_request_with_attributes(kp, attrs)
        .unwrap()
        .der()
        .to_vec()
}

fn cn(name: &str) -> Vec<(DnType, &str)> {
    vec![(DnType::CommonName, name)]
}

fn pos(name: &str) -> Vec<(DnType, &str)> {
    vec![
        (DnType::CommonName, name),
        (DnType::OrganizationalUnitName, "POS"),
        (DnType::OrganizationName, "Example"),
    ]
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}
fn upn(s: &str) -> SanType {
    SanType::OtherName((UPN.to_vec(), OtherNameValue::Utf8String(s.into())))
}
fn email(s: &str) -> SanType {
    SanType::Rfc822Name(s.try_into().unwrap())
}

async fn enroll_as(env: &Env, user: &str, password: &str, label: &str, der: &[u8]) -> Resp {
    let path = format!("/.well-known/est/{label}/simpleenroll");
    send(
        env,
        post(
            &path,
            Some(&basic(user, password)),
            "application/pkcs10",
            b64(der),
        ),
        None,
    )
    .await
}

async fn as_alice(env: &Env, label: &str, der: &[u8]) -> Resp {
    enroll_as(env, "alice", "alice-pw", label, der).await
}

fn sans_of(r: &Resp) -> Vec<SanEntry> {
    let cert = &certs_of(&r.body)[0];
    estd::est::cert_identity(&der_of(cert)).unwrap().1
}

#[tokio::test]
async fn a_cn_that_is_not_the_user_is_403_unless_admin() {
    let env = setup().await;
    let kp = key(Key::P256);
    let mac = || vec![dns("00:11:22:33:44:55")];
    let r = as_alice(&env, "eap", &csr_with(&kp, &pos("bob"), mac(), None)).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        "Invalid request - The given CSR has a CN that does not match the provided user name, and that user does not have ERS Admin\n"
    );
    // her own name: fine
    let r = as_alice(&env, "eap", &csr_with(&kp, &pos("alice"), mac(), None)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Super Admin and ERS Admin may name another user
    let r = enroll_as(
        &env,
        "admin",
        &env.password,
        "eap",
        &csr_with(&kp, &pos("bob"), mac(), None),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = enroll_as(
        &env,
        "ers",
        "ers-pw",
        "eap",
        &csr_with(&kp, &pos("bob"), mac(), None),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        certs_of(&r.body)[0].tbs_certificate().subject().to_string(),
        "O=Example,OU=POS,CN=bob"
    );
    // and the certificate is recorded as requested by the admin
    let serial = estd::est::hex(
        certs_of(&r.body)[0]
            .tbs_certificate()
            .serial_number()
            .as_bytes(),
    );
    assert_eq!(
        env.state
            .store
            .find_certificate(&serial)
            .await
            .unwrap()
            .unwrap()
            .requester,
        "ers"
    );
}

#[tokio::test]
async fn a_cn_with_forbidden_characters_is_400() {
    let env = setup().await;
    let kp = key(Key::P256);
    for c in ['[', ']', '"', ';', '|', '=', ',', '+', '*', '?', '<', '>'] {
        let name = format!("alice{c}x");
        let r = enroll_as(
            &env,
            "admin",
            &env.password,
            "default",
            &csr_with(&kp, &cn(&name), vec![], None),
        )
        .await;
        assert_eq!(r.status, 400, "{c}");
        assert_eq!(
            r.text(),
            "The given CN is invalid. Cannot contain [ ] \" ; | = , + * ? < > characters\n",
            "{c}"
        );
    }
}

#[tokio::test]
async fn mac_addresses_in_each_form_and_encoding() {
    let env = setup().await;
    let kp = key(Key::P256);
    for form in [
        "00-11-22-AA-BB-CC",
        "00:11:22:aa:bb:cc",
        "0011.22AA.BBCC",
        "001122-aabbcc",
        "001122AABBCC",
        "urn:dev:mac:001122aabbcc",
    ] {
        let san = if form.starts_with("urn:") {
            SanType::URI(form.try_into().unwrap())
        } else {
            dns(form)
        };
        let r = as_alice(&env, "eap", &csr_with(&kp, &pos("alice"), vec![san], None)).await;
        assert_eq!(r.status, 200, "{form}: {}", r.text());
        assert_eq!(
            sans_of(&r),
            vec![SanEntry::Uri("urn:dev:mac:001122aabbcc".into())],
            "{form}"
        );
    }
    let r = as_alice(
        &env,
        "eapdns",
        &csr_with(&kp, &cn("alice"), vec![dns("0011.22aa.bbcc")], None),
    )
    .await;
    assert_eq!(sans_of(&r), vec![SanEntry::Dns("00-11-22-AA-BB-CC".into())]);
    let r = as_alice(
        &env,
        "eapother",
        &csr_with(&kp, &cn("alice"), vec![dns("001122aabbcc")], None),
    )
    .await;
    assert_eq!(
        sans_of(&r),
        vec![SanEntry::OtherName(
            "1.3.6.1.4.1.9.1.1".into(),
            "00-11-22-AA-BB-CC".into()
        )]
    );

    for bad in [
        "00-11-22-AA-BB",
        "00:11:22:aa:bb:cg",
        "0011.22AA.BBC",
        "00112-2aabbcc",
        "0011:22aa:bbcc",
        "printer.example",
    ] {
        let r = as_alice(
            &env,
            "eap",
            &csr_with(&kp, &pos("alice"), vec![dns(bad)], None),
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (400, "Invalid MAC address\n".to_string()),
            "{bad}"
        );
    }
    // a MAC template without a MAC: what csrattrs asked for is missing
    let r = as_alice(&env, "eap", &csr_with(&kp, &pos("alice"), vec![], None)).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "The certificate template eap requires a MAC address in the Subject alternative name\n"
    );
}

#[tokio::test]
async fn fixed_rdns_must_match_and_the_message_names_the_rdn() {
    let env = setup().await;
    let kp = key(Key::P256);
    let mac = || vec![dns("001122334455")];
    let wrong_ou = [
        (DnType::CommonName, "alice"),
        (DnType::OrganizationalUnitName, "Printers"),
        (DnType::OrganizationName, "Example"),
    ];
    let r = as_alice(&env, "eap", &csr_with(&kp, &wrong_ou, mac(), None)).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Invalid request - The given CSR has an OU RDN that does not match what is defined in the provided Certificate Template\n"
    );
    let no_o = [
        (DnType::CommonName, "alice"),
        (DnType::OrganizationalUnitName, "POS"),
    ];
    let r = as_alice(&env, "eap", &csr_with(&kp, &no_o, mac(), None)).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Invalid request - The given CSR has an O RDN that does not match what is defined in the provided Certificate Template\n"
    );
}

#[tokio::test]
async fn a_malformed_csr_gets_the_faq_text() {
    let env = setup().await;
    let not_pkcs10 =
        der_of(&certs_of(&send(&env, get("/.well-known/est/cacerts"), None).await.body)[0]);
    for body in [
        "this is not base64!".to_string(),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA".to_string(),
        b64(b"\x30\x03\x02\x01\x00"),
        b64(&not_pkcs10),
        String::new(),
    ] {
        let r = send(
            &env,
            post(
                "/.well-known/est/simpleenroll",
                Some(&basic("admin", &env.password)),
                "application/pkcs10",
                body.clone(),
            ),
            None,
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (
                400,
                "ISE server error - The given CSR text is malformed\n".to_string()
            ),
            "{body:?}"
        );
    }
    // the audit log keeps the detail the client does not see
    let audit = env.state.store.recent_audit(1).await.unwrap();
    assert!(
        audit[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("ISE server error - The given CSR text is malformed ("),
        "{:?}",
        audit[0].reason
    );
}

#[tokio::test]
async fn a_ca_that_cannot_sign_is_500_with_the_cn() {
    let dir = expired_issuing_ca();
    let env = env_in(dir, &[]).await;
    let r = enroll_as(
        &env,
        "admin",
        &env.password,
        "default",
        &csr_with(&key(Key::P256), &cn("admin"), vec![], None),
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "CA server error - Certificate request to internal CA failed CN=admin\n"
    );
    let audit = env.state.store.recent_audit(1).await.unwrap();
    assert!(
        audit[0].reason.as_deref().unwrap().contains("expired"),
        "{:?}",
        audit[0].reason
    );
}

#[tokio::test]
async fn san_styles_for_mdm_connectors() {
    let env = setup().await;
    let kp = key(Key::P256);
    // UPN and Email; the connector's account (alice) may name its users
    let r = as_alice(
        &env,
        "mdm",
        &csr_with(
            &kp,
            &cn("joe"),
            vec![upn("joe@corp.example"), email("joe@corp.example")],
            None,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        sans_of(&r),
        vec![
            SanEntry::Email("joe@corp.example".into()),
            SanEntry::OtherName("1.3.6.1.4.1.311.20.2.3".into(), "joe@corp.example".into()),
        ]
    );
    let r = as_alice(
        &env,
        "mdm",
        &csr_with(&kp, &cn("joe"), vec![upn("joe@corp.example")], None),
    )
    .await;
    assert_eq!(
        r.text(),
        "The certificate template mdm requires an email address (rfc822Name) in the Subject alternative name\n"
    );
    let r = as_alice(
        &env,
        "mdm",
        &csr_with(
            &kp,
            &cn("joe"),
            vec![
                upn("joe@corp.example"),
                email("joe@corp.example"),
                dns("joe.example"),
            ],
            None,
        ),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text()), (400, "The certificate template mdm does not allow the Subject alternative name DNS:joe.example\n".to_string()));
    // UPN only
    let r = as_alice(
        &env,
        "upn",
        &csr_with(&kp, &cn("joe"), vec![upn("joe@corp.example")], None),
    )
    .await;
    assert_eq!(
        sans_of(&r),
        vec![SanEntry::OtherName(
            "1.3.6.1.4.1.311.20.2.3".into(),
            "joe@corp.example".into()
        )]
    );
    let r = as_alice(
        &env,
        "upn",
        &csr_with(&kp, &cn("joe"), vec![email("joe@corp.example")], None),
    )
    .await;
    assert_eq!(r.status, 400);
    // email, dns, none
    let r = as_alice(
        &env,
        "email",
        &csr_with(&kp, &cn("alice"), vec![email("alice@corp.example")], None),
    )
    .await;
    assert_eq!(
        sans_of(&r),
        vec![SanEntry::Email("alice@corp.example".into())]
    );
    let r = as_alice(&env, "dnsreq", &csr_with(&kp, &cn("alice"), vec![], None)).await;
    assert_eq!(
        r.text(),
        "The certificate template dnsreq requires a DNS name in the Subject alternative name\n"
    );
    let r = as_alice(
        &env,
        "nosan",
        &csr_with(&kp, &cn("alice"), vec![dns("a.example")], None),
    )
    .await;
    assert_eq!(
        r.text(),
        "The certificate template nosan does not allow the Subject alternative name DNS:a.example\n"
    );
    let r = as_alice(&env, "nosan", &csr_with(&kp, &cn("alice"), vec![], None)).await;
    assert_eq!(r.status, 200);
    assert!(sans_of(&r).is_empty());
}

#[tokio::test]
async fn the_other_style_builds_the_san_from_its_pattern() {
    let env = setup().await;
    let kp = key(Key::P256);
    // variables from the CSR: %uname% and %domain% from its UPN, %email%, %cn%
    let r = as_alice(
        &env,
        "other",
        &csr_with(
            &kp,
            &cn("pos-17"),
            vec![upn("joe@corp.example"), email("joe@mail.example")],
            None,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut want = vec![
        SanEntry::OtherName("1.3.6.1.4.1.311.20.2.3".into(), "joe@corp.example".into()),
        SanEntry::Email("joe@mail.example".into()),
        SanEntry::Dns("pos-17.devices.example".into()),
    ];
    want.sort();
    assert_eq!(sans_of(&r), want);
    // nothing given but the CN: %uname% is the CN, %domain% the template's, %email% "Test"
    let r = as_alice(&env, "other", &csr_with(&kp, &cn("pos-18"), vec![], None)).await;
    let mut want = vec![
        SanEntry::OtherName(
            "1.3.6.1.4.1.311.20.2.3".into(),
            "pos-18@corp.example".into(),
        ),
        SanEntry::Email("Test".into()),
        SanEntry::Dns("pos-18.devices.example".into()),
    ];
    want.sort();
    assert_eq!(sans_of(&r), want);
    // a SAN the pattern does not produce
    let r = as_alice(
        &env,
        "other",
        &csr_with(&kp, &cn("pos-18"), vec![dns("evil.example")], None),
    )
    .await;
    assert_eq!(
        r.text(),
        "The certificate template other does not allow the Subject alternative name DNS:evil.example\n"
    );
}

#[tokio::test]
async fn csrattrs_asks_and_enrollment_enforces() {
    let env = setup().await;
    let r = send(&env, get("/.well-known/est/eap/csrattrs"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        csrattrs_of(&r.body),
        vec![
            "1.2.840.113549.1.9.16.2.61=SEQUENCE",
            "1.2.840.10045.2.1=1.2.840.10045.3.1.7",
            "1.2.840.10045.4.3.2",
            "1.2.840.113549.1.9.14=2.5.29.17,1.3.6.1.1.1.1.22",
        ]
    );
    let r = send(&env, get("/.well-known/est/attrs/csrattrs"), None).await;
    assert!(csrattrs_of(&r.body).contains(&"1.2.840.113549.1.9.7".to_string()));
    let r = send(&env, get("/.well-known/est/bound/csrattrs"), None).await;
    assert_eq!(csrattrs_of(&r.body)[1], "1.2.840.113549.1.9.7");

    let kp = key(Key::P256);
    let r = as_alice(&env, "attrs", &csr_with(&kp, &cn("alice"), vec![], None)).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "The CSR lacks the challengePassword attribute (1.2.840.113549.1.9.7) that /csrattrs of template attrs asks for\n"
    );
    let r = as_alice(
        &env,
        "attrs",
        &csr_with(&kp, &cn("alice"), vec![], Some("anything")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // the key type csrattrs asks for: another one the template does not allow is refused
    let r = as_alice(
        &env,
        "attrs",
        &csr_with(&key(Key::P384), &cn("alice"), vec![], Some("x")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.text()
            .starts_with("key type ec-p384 is not allowed by template attrs"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn channel_binding_compares_the_challenge_password_with_the_exporter() {
    use base64::Engine;
    let env = setup().await;
    let kp = key(Key::P256);
    let good = base64::engine::general_purpose::STANDARD.encode(EXPORTER);
    let r = as_alice(
        &env,
        "bound",
        &csr_with(&kp, &cn("alice"), vec![], Some(&good)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let other = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let r = as_alice(
        &env,
        "bound",
        &csr_with(&kp, &cn("alice"), vec![], Some(&other)),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("channel binding failed"), "{}", r.text());
    let r = as_alice(&env, "bound", &csr_with(&kp, &cn("alice"), vec![], None)).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("requires channel binding"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn reenroll_compares_the_normalised_mac() {
    let env = setup().await;
    let kp = key(Key::P256);
    let r = as_alice(
        &env,
        "eap",
        &csr_with(&kp, &pos("alice"), vec![dns("00:11:22:33:44:55")], None),
    )
    .await;
    let old = der_of(&certs_of(&r.body)[0]);
    // the device writes its MAC another way this time: the same MAC, so the same SAN
    let again = csr_with(
        &key(Key::P256),
        &pos("alice"),
        vec![dns("0011.2233.4455")],
        None,
    );
    let r = send(
        &env,
        post(
            "/.well-known/est/eap/simplereenroll",
            None,
            "application/pkcs10",
            b64(&again),
        ),
        Some(old.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let other = csr_with(
        &key(Key::P256),
        &pos("alice"),
        vec![dns("0011.2233.4466")],
        None,
    );
    let r = send(
        &env,
        post(
            "/.well-known/est/eap/simplereenroll",
            None,
            "application/pkcs10",
            b64(&other),
        ),
        Some(old),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("SubjectAltName differs"));
}

#[tokio::test]
async fn manual_approval_202_then_approve_then_200() {
    let env = setup().await;
    let store = &env.state.store;
    let kp = key(Key::P256);
    let request = csr_with(&kp, &cn("alice"), vec![], None);
    let r = as_alice(&env, "manual", &request).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.headers[header::RETRY_AFTER], "30");
    let waiting = store
        .list_pending(Some(estd::store::PendingState::Pending))
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    let id = waiting[0].id;
    assert!(
        r.text()
            .contains(&format!("request {id} is waiting for approval"))
    );
    // asking again before a decision: still 202, no second request
    assert_eq!(as_alice(&env, "manual", &request).await.status, 202);
    assert_eq!(store.list_pending(None).await.unwrap().len(), 1);

    assert!(store.decide_pending(id, true, "test", None).await.unwrap());
    assert!(
        !store.decide_pending(id, false, "test", None).await.unwrap(),
        "decided once"
    );
    // the retry (same key, even with another subject) gets what was approved
    let sneaky = csr_with(&kp, &cn("alice-admin"), vec![], None);
    let r = as_alice(&env, "manual", &sneaky).await;
    assert_eq!(
        r.status, 403,
        "alice may not name alice-admin: the retry is checked too"
    );
    let r = as_alice(&env, "manual", &request).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cert = &certs_of(&r.body)[0];
    assert_eq!(cert.tbs_certificate().subject().to_string(), "CN=alice");
    let serial = estd::est::hex(cert.tbs_certificate().serial_number().as_bytes());
    let p = store.get_pending(id).await.unwrap().unwrap();
    assert_eq!(
        (p.state, p.serial.as_deref()),
        (estd::store::PendingState::Issued, Some(serial.as_str()))
    );
    // a lost response: the same certificate again
    let r = as_alice(&env, "manual", &request).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        estd::est::hex(
            certs_of(&r.body)[0]
                .tbs_certificate()
                .serial_number()
                .as_bytes()
        ),
        serial
    );
    assert_eq!(store.certificate_count().await.unwrap(), 1);
}

#[tokio::test]
async fn manual_approval_rejected_is_403_with_the_reason() {
    let env = setup().await;
    let request = csr_with(&key(Key::P256), &cn("alice"), vec![], None);
    assert_eq!(as_alice(&env, "manual", &request).await.status, 202);
    let id = env.state.store.list_pending(None).await.unwrap()[0].id;
    assert!(
        env.state
            .store
            .decide_pending(id, false, "test", Some("unknown device"))
            .await
            .unwrap()
    );
    let r = as_alice(&env, "manual", &request).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        format!("The certificate request {id} was rejected: unknown device\n")
    );
}
