//! The SCEP service through the real HTTP router (in-process, `oneshot`), as an attacker and
//! as a careful operator would use it: one-time challenges (used once, expired, for another
//! template, bound to a CN or a SAN, withdrawn), the CN-must-match-user rule, transactionIDs
//! replayed with other keys, a lost answer, pending requests and CertPoll (`flow.rs`),
//! renewal and look-alike certificates (`flow.rs`), keys the reply cannot be encrypted to,
//! GetCert and GetCRL, the HTTP layer and the audit flood (`wire.rs`).
//!
//! Requests are built by the client's own `scep::request`; every answer is read (the RA's
//! signature, our nonce and transactionID) and its exact status and failInfo asserted, with
//! the audit row and the number of certificates in the store before and after.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::inproc::{Env, Resp};
use der::Decode;
use estd::model::ConnInfo;
use estd::policy::Template;
use estd::scep_wire::FailInfo;
use estd::scep_wire::envelope::Cipher;
use estd::scep_wire::request::{self, Reply, Requester, Sent};
use estd::service::scep::challenge::{self, ChallengeError, IssuedChallenge, NewChallenge};
use estd::store::{AuditEvent, ChallengeRecord, Store, timestamp};
use rcgen::{DnType, KeyPair};
use tower::ServiceExt;
use x509_cert::Certificate;
use x509_cert::name::Name;

/// One-time challenges and the static one, no CN rule, DNS names below devices.example.
const SCEP: &str = r#"
name = "scep"
key_types = ["rsa-2048", "ec-p256"]
validity_days = 30
cn_must_match_user = false
scep_challenge = "Static-Profile-Secret-1"
san_style = "dns"
san_optional = true
dns_names = ["*.devices.example"]
"#;

/// Another SCEP template: its challenges are not `scep`'s.
const SCEP_OTHER: &str = r#"
name = "scep-other"
key_types = ["rsa-2048"]
validity_days = 30
cn_must_match_user = false
"#;

/// Every request waits for a person.
const MANUAL: &str = r#"
name = "scepman"
key_types = ["rsa-2048"]
validity_days = 30
cn_must_match_user = false
approval = "manual"
retry_after_secs = 5
"#;

const NO_SCEP: &str = r#"
name = "noscep"
key_types = ["rsa-2048"]
validity_days = 30
cn_must_match_user = false
scep = false
"#;

/// `cn_must_match_user` left at its default (true).
const STRICT: &str = r#"
name = "strict"
key_types = ["rsa-2048"]
validity_days = 30
"#;

/// A server with the SCEP templates, and what GetCACert told the client.
pub struct T {
    pub env: Env,
    /// The RA's certificate (GetCACert's first): requests are enveloped to it, replies
    /// signed by it.
    pub ra: Vec<u8>,
    /// The issuing CA's subject (CertPoll's and GetCert's issuer).
    pub ca: Name,
}

pub async fn setup() -> T {
    setup_with("").await
}

/// With further configuration (`[audit]`, …).
pub async fn setup_with(extra: &str) -> T {
    setup_in(tempfile::tempdir().unwrap(), extra, &[]).await
}

/// In a data directory the caller prepared (files a template names go in its
/// `templates/`), with further templates.
pub async fn setup_in(dir: tempfile::TempDir, extra: &str, more: &[&str]) -> T {
    let mut templates = vec![SCEP, SCEP_OTHER, MANUAL, NO_SCEP, STRICT];
    templates.extend_from_slice(more);
    let config = common::test_config_with(dir.path(), extra, &templates);
    let built = estd::app::build(&config).await.expect("build");
    let env = Env {
        router: estd::api::router(built.state.clone()),
        state: built.state,
        password: built.admin_password.expect("admin"),
        dir,
    };
    let r = send(&env, get("/scep/scep?operation=GetCACert")).await;
    assert_eq!(r.status, StatusCode::OK);
    let cas = request::ca_certs(r.ct(), &r.body).expect("GetCACert");
    let ra = cas.all[0].clone();
    assert_eq!(
        ra.as_slice(),
        env.state.scep.as_ref().expect("SCEP").ra_certificate()
    );
    assert_eq!(cas.encryption, ra, "requests go to the RA");
    cas.verify_chain().expect("the RA chains to the CA");
    let ca = cas.ca_subject().unwrap();
    T { env, ra, ca }
}

pub const LOCAL: &str = "127.0.0.1:40000";

/// `req` through the router from `peer`.
pub async fn send_from(env: &Env, mut req: Request<Body>, peer: &str) -> Resp {
    req.extensions_mut().insert(ConnInfo {
        peer: peer.parse().unwrap(),
        client_chain: None,
        exporter: None,
    });
    let resp = env.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn send(env: &Env, req: Request<Body>) -> Resp {
    send_from(env, req, LOCAL).await
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// A PKIOperation POST of `der` to `/scep/<template>`.
pub fn post_op(template: &str, der: &[u8]) -> Request<Body> {
    Request::post(format!("/scep/{template}?operation=PKIOperation"))
        .header(header::CONTENT_TYPE, "application/x-pki-message")
        .body(Body::from(der.to_vec()))
        .unwrap()
}

pub fn rsa() -> KeyPair {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
}

pub fn dn(cn: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// A PKCS#10 request (DER) for `key`, CN `cn`, DNS SANs, and the challenge password.
pub fn csr(key: &KeyPair, cn: &str, dns: &[&str], challenge: Option<&str>) -> Vec<u8> {
    let san: Vec<estd::est::SanEntry> = dns
        .iter()
        .map(|d| estd::est::SanEntry::Dns((*d).into()))
        .collect();
    request::csr(key, dn(cn), &san, challenge).unwrap()
}

/// The self-signed requester of `key` with the CSR's subject (a first PKCSReq's signer).
pub fn self_signed(key: &KeyPair, csr: &[u8]) -> Requester {
    let subject = estd::est::Csr::parse(csr).unwrap().subject;
    Requester::self_signed(&key.serialize_der(), &subject).unwrap()
}

/// A certificate's serial as the store writes it.
pub fn serial_of(der: &[u8]) -> String {
    let c = Certificate::from_der(der).unwrap();
    estd::est::hex(c.tbs_certificate().serial_number().as_bytes())
}

pub fn cn_of(der: &[u8]) -> Option<String> {
    let c = Certificate::from_der(der).unwrap();
    estd::est::common_name(c.tbs_certificate().subject())
}

pub fn key_of(der: &[u8]) -> Vec<u8> {
    let c = Certificate::from_der(der).unwrap();
    c.tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

pub fn fail(f: FailInfo) -> Reply {
    Reply::Failure(Some(f))
}

/// The one certificate of a SUCCESS.
#[track_caller]
pub fn issued(r: Reply) -> Vec<u8> {
    match r {
        Reply::Success { mut certs, crls } if certs.len() == 1 && crls.is_empty() => {
            certs.remove(0)
        }
        other => panic!("not a SUCCESS with one certificate: {other:?}"),
    }
}

/// A device enrolled: its key, certificate and the requester to renew or ask with.
pub struct Enrolled {
    pub key: KeyPair,
    pub cert: Vec<u8>,
    pub serial: String,
    pub holder: Requester,
}

impl T {
    pub fn store(&self) -> &dyn Store {
        self.env.state.store.as_ref()
    }

    pub fn template(&self, name: &str) -> Arc<Template> {
        self.env.state.templates.get(Some(name)).expect(name)
    }

    /// A one-time challenge for `template`, bound to a CN and SANs when given.
    pub async fn challenge(
        &self,
        template: &str,
        cn: Option<&str>,
        san: &[&str],
    ) -> IssuedChallenge {
        challenge::issue(
            self.store(),
            &self.template(template),
            NewChallenge {
                template: template.into(),
                cn: cn.map(Into::into),
                san: san.iter().map(|s| s.to_string()).collect(),
                lifetime: None,
                created_by: "admin".into(),
            },
        )
        .await
        .expect("challenge issued")
    }

    pub async fn certs(&self) -> u64 {
        self.store().certificate_count().await.unwrap()
    }

    /// The challenge's record, found by its secret.
    pub async fn challenge_record(&self, c: &IssuedChallenge) -> ChallengeRecord {
        self.store()
            .find_challenge(&challenge::hash(&c.secret))
            .await
            .unwrap()
            .expect("the challenge exists")
    }

    /// `sent` POSTed to `/scep/<template>` from `peer`: a 200 CertRep, read back.
    pub async fn op_from(&self, template: &str, sent: &Sent, who: &Requester, peer: &str) -> Reply {
        let r = send_from(&self.env, post_op(template, &sent.der), peer).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.ct(), "application/x-pki-message");
        request::read_reply(&r.body, sent, std::slice::from_ref(&self.ra), who)
            .expect("a CertRep answering this request")
    }

    pub async fn op(&self, template: &str, sent: &Sent, who: &Requester) -> Reply {
        self.op_from(template, sent, who, LOCAL).await
    }

    /// The newest audit row.
    pub async fn last_row(&self) -> AuditEvent {
        self.store().recent_audit(1).await.unwrap().remove(0)
    }

    pub async fn rows(&self) -> Vec<AuditEvent> {
        self.store().recent_audit(10_000).await.unwrap()
    }

    /// Asserts the newest audit row is an unauthenticated SCEP refusal of `op` whose reason
    /// contains `why`.
    pub async fn assert_refused_row(&self, op: &str, why: &str) {
        let row = self.last_row().await;
        assert_eq!(row.operation, op, "{row:?}");
        assert_eq!(row.outcome, "error", "{row:?}");
        assert_eq!(row.status, 200, "a FAILURE is an HTTP 200: {row:?}");
        assert_eq!(row.serial, None, "{row:?}");
        let reason = row.reason.clone().unwrap_or_default();
        assert!(reason.contains(why), "reason {reason:?}, expected {why:?}");
    }

    /// Asserts no audit row holds `secret` anywhere.
    pub async fn assert_secret_absent(&self, secret: &str) {
        for row in self.rows().await {
            assert!(!format!("{row:?}").contains(secret), "{row:?}");
        }
    }

    /// A PKCSReq for `cn` with DNS SANs and the challenge `secret`, AES-128, the default
    /// transactionID unless given.
    pub fn pkcs_req(
        &self,
        key: &KeyPair,
        cn: &str,
        dns: &[&str],
        secret: Option<&str>,
        txid: Option<&str>,
    ) -> (Sent, Requester) {
        let csr = csr(key, cn, dns, secret);
        let who = self_signed(key, &csr);
        let sent = request::pkcs_req(&csr, &who, &self.ra, Cipher::Aes128Cbc, txid).unwrap();
        (sent, who)
    }

    /// A device enrolled in `template` with a fresh challenge for it.
    pub async fn enroll(&self, template: &str, cn: &str, dns: &[&str]) -> Enrolled {
        let c = self.challenge(template, None, &[]).await;
        let key = rsa();
        let (sent, who) = self.pkcs_req(&key, cn, dns, Some(c.secret.as_str()), None);
        let cert = issued(self.op(template, &sent, &who).await);
        let holder = Requester::new(&cert, &key.serialize_der()).unwrap();
        Enrolled {
            serial: serial_of(&cert),
            key,
            cert,
            holder,
        }
    }
}

#[tokio::test]
async fn a_one_time_challenge_issues_the_csrs_certificate_and_is_audited_without_its_secret() {
    let t = setup().await;
    let c = t.challenge("scep", None, &[]).await;
    assert_eq!(c.secret.len(), 32, "128 random bits in hex");
    let before = t.certs().await;
    let key = rsa();
    let (sent, who) = t.pkcs_req(
        &key,
        "dev1",
        &["dev1.devices.example"],
        Some(c.secret.as_str()),
        None,
    );
    let cert = issued(t.op("scep", &sent, &who).await);
    assert_eq!(t.certs().await, before + 1);

    // the CSR's key and subject, issued by the CA
    assert_eq!(key_of(&cert), key.public_key_raw());
    assert_eq!(cn_of(&cert).as_deref(), Some("dev1"));
    let parsed = Certificate::from_der(&cert).unwrap();
    assert_eq!(parsed.tbs_certificate().issuer(), &t.ca);
    let (_, san) = estd::est::cert_identity(&cert).unwrap();
    assert_eq!(
        san,
        vec![estd::est::SanEntry::Dns("dev1.devices.example".into())]
    );

    // audited under the challenge's id, with the serial
    let principal = format!("scep:challenge-{}", c.id);
    let row = t.last_row().await;
    assert_eq!(row.operation, "scep-pkcsreq", "{row:?}");
    assert_eq!(row.principal.as_deref(), Some(principal.as_str()));
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.label.as_deref(), Some("scep"));
    assert_eq!(row.serial.as_deref(), Some(serial_of(&cert).as_str()));
    let record = t
        .store()
        .find_certificate(&serial_of(&cert))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(record.requester, principal);
    assert_eq!(record.template, "scep");
    assert_eq!(record.der, cert);

    // the challenge is used, by this transaction; its secret is stored nowhere
    let used = t.challenge_record(&c).await;
    assert!(used.used_at.is_some());
    // (marked as a SCEP transaction's use: an EST request's never matches it)
    assert_eq!(used.used_by, Some(format!("scep:{}", sent.transaction_id)));
    assert_ne!(used.secret_hash, *c.secret);
    t.assert_secret_absent(&c.secret).await;
    let listed = t
        .store()
        .list_challenges(&timestamp(SystemTime::now()), false, 100)
        .await
        .unwrap();
    assert!(!format!("{listed:?}").contains(c.secret.as_str()));
}

#[tokio::test]
async fn refused_challenges_issue_nothing_and_are_audited_with_their_reason() {
    let t = setup().await;
    let used = t.challenge("scep", None, &[]).await;
    let (sent, who) = t.pkcs_req(&rsa(), "first", &[], Some(used.secret.as_str()), None);
    issued(t.op("scep", &sent, &who).await);

    let expired_secret = "expired-0123456789abcdef0123456789";
    let past = SystemTime::now() - Duration::from_secs(3600);
    t.store()
        .create_challenge(&ChallengeRecord {
            id: 0,
            template: "scep".into(),
            secret_hash: challenge::hash(expired_secret),
            cn: None,
            san: None,
            created_by: "admin".into(),
            created_at: timestamp(past - Duration::from_secs(3600)),
            expires_at: timestamp(past),
            used_at: None,
            used_by: None,
        })
        .await
        .unwrap();
    let other_template = t.challenge("scep-other", None, &[]).await;
    let bound_cn = t.challenge("scep", Some("a"), &[]).await;
    let bound_san = t.challenge("scep", None, &["dns:a.devices.example"]).await;
    let withdrawn = t.challenge("scep", None, &[]).await;
    assert!(t.store().revoke_challenge(withdrawn.id).await.unwrap());

    let before = t.certs().await;
    // (secret, CN, SANs, the reason audited)
    let cases: Vec<(String, &str, Vec<&str>, String)> = vec![
        (
            used.secret.to_string(),
            "second",
            vec![],
            format!("challenge {}: already used by the transaction", used.id),
        ),
        (expired_secret.into(), "late", vec![], "expired at".into()),
        (
            other_template.secret.to_string(),
            "elsewhere",
            vec![],
            format!(
                "challenge {}: issued for the template scep-other, not scep",
                other_template.id
            ),
        ),
        (
            bound_cn.secret.to_string(),
            "b",
            vec![],
            format!(
                "challenge {}: bound to CN=a; the request has CN=b",
                bound_cn.id
            ),
        ),
        (
            bound_san.secret.to_string(),
            "b",
            vec!["b.devices.example"],
            format!(
                "challenge {}: bound to the SubjectAltName DNS:a.devices.example",
                bound_san.id
            ),
        ),
        (
            bound_san.secret.to_string(),
            "b",
            vec!["a.devices.example", "b.devices.example"],
            "bound to the SubjectAltName DNS:a.devices.example".into(),
        ),
        (
            withdrawn.secret.to_string(),
            "gone",
            vec![],
            "the challenge password is not one this server issued".into(),
        ),
        (
            "a-guess-0123456789abcdef01234567".into(),
            "guess",
            vec![],
            "the challenge password is not one this server issued".into(),
        ),
    ];
    // each from an address of its own: wrong challenges from one address are slowed
    // (`a_challenge_guesser_is_slowed`)
    for (i, (secret, cn, dns, why)) in cases.iter().enumerate() {
        let (sent, who) = t.pkcs_req(&rsa(), cn, dns, Some(secret.as_str()), None);
        let peer = format!("127.0.1.{}:40000", i + 1);
        assert_eq!(
            t.op_from("scep", &sent, &who, &peer).await,
            fail(FailInfo::BadRequest),
            "{why}"
        );
        t.assert_refused_row("scep-pkcsreq", why).await;
        assert_eq!(t.certs().await, before, "nothing issued: {why}");
        t.assert_secret_absent(secret).await;
    }
    // no challenge password at all
    let (sent, who) = t.pkcs_req(&rsa(), "none", &[], None, None);
    assert_eq!(
        t.op_from("scep", &sent, &who, "127.0.1.100:40000").await,
        fail(FailInfo::BadRequest)
    );
    t.assert_refused_row("scep-pkcsreq", "the request carries no challenge password")
        .await;
    assert_eq!(t.certs().await, before);

    // a refusal does not use up a challenge: each still works as issued
    for c in [&bound_cn, &bound_san, &other_template] {
        assert!(t.challenge_record(c).await.used_at.is_none(), "{}", c.id);
    }
    let (sent, who) = t.pkcs_req(&rsa(), "a", &[], Some(bound_cn.secret.as_str()), None);
    assert_eq!(
        cn_of(&issued(t.op("scep", &sent, &who).await)).as_deref(),
        Some("a")
    );
    let (sent, who) = t.pkcs_req(
        &rsa(),
        "c",
        &["a.devices.example"],
        Some(bound_san.secret.as_str()),
        None,
    );
    issued(t.op("scep", &sent, &who).await);
    let (sent, who) = t.pkcs_req(&rsa(), "o", &[], Some(other_template.secret.as_str()), None);
    issued(t.op("scep-other", &sent, &who).await);
    assert_eq!(t.certs().await, before + 3);
}

#[tokio::test]
async fn two_requests_racing_with_one_challenge_get_one_certificate() {
    let t = setup().await;
    let c = t.challenge("scep", None, &[]).await;
    let before = t.certs().await;
    let (a, b) = (rsa(), rsa());
    let (sent_a, who_a) = t.pkcs_req(&a, "race-a", &[], Some(c.secret.as_str()), None);
    let (sent_b, who_b) = t.pkcs_req(&b, "race-b", &[], Some(c.secret.as_str()), None);
    let (ra, rb) = tokio::join!(t.op("scep", &sent_a, &who_a), t.op("scep", &sent_b, &who_b));
    let successes = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Reply::Success { .. }))
        .count();
    assert_eq!(successes, 1, "{ra:?} {rb:?}");
    assert!(
        [&ra, &rb].contains(&&fail(FailInfo::BadRequest)),
        "{ra:?} {rb:?}"
    );
    assert_eq!(t.certs().await, before + 1);
}

/// Wrong challenges count as failed log-ins of `scep:<template>` from the address.
#[tokio::test]
async fn a_challenge_guesser_is_slowed_and_others_are_not() {
    let t = setup().await;
    let c = t.challenge("scep", None, &[]).await;
    let guesser = "127.0.2.1:40000";
    let before = t.certs().await;
    let mut refused = 0;
    let throttled = loop {
        assert!(
            refused <= 6,
            "still answered after {refused} wrong challenges"
        );
        let guess = format!("guess-{refused}-0123456789abcdef0123");
        let (sent, who) = t.pkcs_req(&rsa(), "guesser", &[], Some(&guess), None);
        let r = send_from(&t.env, post_op("scep", &sent.der), guesser).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        let reply = request::read_reply(&r.body, &sent, std::slice::from_ref(&t.ra), &who);
        assert_eq!(reply.unwrap(), fail(FailInfo::BadRequest));
        refused += 1;
    };
    assert!(refused >= 5, "slowed after {refused} wrong challenges only");
    let wait: u64 = throttled.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let row = t.last_row().await;
    assert_eq!(
        (row.operation.as_str(), row.status),
        ("scep", 429),
        "{row:?}"
    );
    assert!(
        row.reason
            .as_deref()
            .is_some_and(|r| r.contains("too many wrong challenges")),
        "{row:?}"
    );
    // the right challenge from the guesser's address waits too, and is not used up
    let (sent, who) = t.pkcs_req(&rsa(), "right", &[], Some(c.secret.as_str()), None);
    let r = send_from(&t.env, post_op("scep", &sent.der), guesser).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(t.challenge_record(&c).await.used_at.is_none());
    // another template from that address is another count
    let (other, other_who) = t.pkcs_req(&rsa(), "o", &[], Some("wrong-0123456789abcdef"), None);
    assert_eq!(
        t.op_from("scep-other", &other, &other_who, guesser).await,
        fail(FailInfo::BadRequest)
    );
    // another address is not slowed
    issued(t.op_from("scep", &sent, &who, "127.0.2.2:40000").await);
    assert_eq!(t.certs().await, before + 1);
}

#[tokio::test]
async fn a_template_whose_cn_must_match_the_user_takes_only_challenges_bound_to_a_cn() {
    let t = setup().await;
    let strict = t.template("strict");
    assert!(strict.cn_must_match_user);
    let unbound = challenge::issue(
        t.store(),
        &strict,
        NewChallenge {
            template: "strict".into(),
            created_by: "admin".into(),
            ..NewChallenge::default()
        },
    )
    .await;
    match unbound {
        Err(ChallengeError::Invalid(m)) => {
            assert!(m.contains("bind the code to a CN"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // nor for a template that does not serve SCEP
    let no_scep = challenge::issue(
        t.store(),
        &t.template("noscep"),
        NewChallenge {
            template: "noscep".into(),
            created_by: "admin".into(),
            ..NewChallenge::default()
        },
    )
    .await;
    assert!(
        matches!(&no_scep, Err(ChallengeError::Invalid(m)) if m.contains("takes no enrollment codes")),
        "{no_scep:?}"
    );

    let c = t.challenge("strict", Some("kiosk-7"), &[]).await;
    let before = t.certs().await;
    // another CN with it: refused, and the challenge stays unused
    let (sent, who) = t.pkcs_req(&rsa(), "kiosk-8", &[], Some(c.secret.as_str()), None);
    assert_eq!(
        t.op("strict", &sent, &who).await,
        fail(FailInfo::BadRequest)
    );
    t.assert_refused_row("scep-pkcsreq", "bound to CN=kiosk-7")
        .await;
    assert_eq!(t.certs().await, before);
    // the bound CN: issued, although no user is called kiosk-7
    let key = rsa();
    let (sent, who) = t.pkcs_req(&key, "kiosk-7", &[], Some(c.secret.as_str()), None);
    let cert = issued(t.op("strict", &sent, &who).await);
    assert_eq!(cn_of(&cert).as_deref(), Some("kiosk-7"));
    assert_eq!(key_of(&cert), key.public_key_raw());
    let row = t.last_row().await;
    assert_eq!(
        (
            row.operation.as_str(),
            row.principal.as_deref(),
            row.outcome.as_str()
        ),
        (
            "scep-pkcsreq",
            Some(format!("scep:challenge-{}", c.id).as_str()),
            "ok"
        )
    );
    assert_eq!(t.certs().await, before + 1);
}

#[tokio::test]
async fn a_lost_answer_is_sent_again_without_a_new_certificate_or_challenge() {
    let t = setup().await;
    let c1 = t.challenge("scep", None, &[]).await;
    let key = rsa();
    let csr1 = csr(&key, "lossy", &[], Some(c1.secret.as_str()));
    let who = self_signed(&key, &csr1);
    let sent = request::pkcs_req(&csr1, &who, &t.ra, Cipher::Aes128Cbc, None).unwrap();
    let cert = issued(t.op("scep", &sent, &who).await);
    let count = t.certs().await;

    // the very same bytes again (the answer was lost on the way)
    let again = issued(t.op("scep", &sent, &who).await);
    assert_eq!(serial_of(&again), serial_of(&cert));
    assert_eq!(again, cert);
    let row = t.last_row().await;
    assert_eq!(row.operation, "scep-pkcsreq");
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.serial.as_deref(), Some(serial_of(&cert).as_str()));
    assert_eq!(
        row.principal.as_deref(),
        Some(format!("scep:challenge-{}", c1.id).as_str())
    );
    // built again (a new nonce, another cipher), same key and transactionID
    let rebuilt = request::pkcs_req(&csr1, &who, &t.ra, Cipher::Aes256Cbc, None).unwrap();
    assert_eq!(rebuilt.transaction_id, sent.transaction_id);
    assert_eq!(issued(t.op("scep", &rebuilt, &who).await), cert);
    // the client asked an administrator for a new challenge meanwhile: it is not used up
    let c2 = t.challenge("scep", None, &[]).await;
    let csr2 = csr(&key, "lossy", &[], Some(c2.secret.as_str()));
    let sent2 = request::pkcs_req(&csr2, &who, &t.ra, Cipher::Aes128Cbc, None).unwrap();
    assert_eq!(issued(t.op("scep", &sent2, &who).await), cert);
    assert!(t.challenge_record(&c2).await.used_at.is_none());
    assert_eq!(t.certs().await, count, "nothing issued again");
}

#[path = "scep_service/flow.rs"]
mod flow;
#[path = "scep_service/ra.rs"]
mod ra;
#[path = "scep_service/wire.rs"]
mod wire;
