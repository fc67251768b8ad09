//! Bearer tokens (JWTs of an identity provider, `[tokens]`) over real TLS: a template that
//! takes them challenges with `Bearer` first; a good token enrolls under the same policy as
//! a Basic user (the CN must be the token's user, its groups decide the template and admin
//! rights); a token for another audience, expired, of another issuer, unsigned or signed by
//! another key is a 401; libest's base64-wrapped token works; the JSON API takes them; the
//! certificate renews itself.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use serde_json::{Value, json};

const TOKENS: &str = r#"name = "tokens"
key_types = ["ec-p256"]
validity_days = 30
auth = ["bearer", "basic"]
"#;

struct Idp {
    ed: Ed25519KeyPair,
    ec: EcdsaKeyPair,
}

impl Idp {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
            .unwrap();
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let ec = EcdsaKeyPair::from_pkcs8(
            alg,
            EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap().as_ref(),
        )
        .unwrap();
        Self { ed, ec }
    }

    fn jwks(&self) -> String {
        let p = self.ec.public_key().as_ref();
        json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": URL_SAFE_NO_PAD.encode(self.ed.public_key().as_ref())},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..])},
        ]})
        .to_string()
    }

    fn token(&self, alg: &str, claims: Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{h}.{c}");
        let sig = match alg {
            "ES256" => self
                .ec
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            _ => self.ed.sign(signed.as_bytes()).as_ref().to_vec(),
        };
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(user: &str, groups: &[&str]) -> Value {
    json!({"iss": "https://idp.test", "aud": "estd", "sub": user, "groups": groups,
           "exp": now() + 300, "iat": now()})
}

async fn server(idp: &Idp) -> TestServer {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, idp.jwks()).unwrap();
    let config = test_config_with(
        dir.path(),
        &format!(
            "[tokens]\njwks_file = {:?}\nissuer = \"https://idp.test\"\naudience = \"estd\"\ngroups_claim = \"groups\"\n",
            jwks.display().to_string()
        ),
        &[TOKENS],
    );
    let running = estd::app::start(&config).await.expect("start");
    let admin_password = running.admin_password.clone().expect("admin created");
    TestServer {
        dir,
        config,
        running: Some(running),
        admin_password,
    }
}

async fn enroll(
    s: &TestServer,
    label: &str,
    token: &str,
    kp: &rcgen::KeyPair,
    cn: &str,
) -> reqwest::Response {
    client(&s.root_pem(), None, false)
        .post(s.url(&format!("/.well-known/est/{label}/simpleenroll")))
        .header("content-type", "application/pkcs10")
        .header("authorization", format!("Bearer {token}"))
        .body(b64(&csr(kp, cn, &[])))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_enrolls_under_the_policy_of_its_user_and_groups() {
    let idp = Idp::new();
    let mut s = server(&idp).await;
    let alice = idp.token("EdDSA", claims("alice", &["est-users"]));

    // no credentials: 401 challenging with Bearer first, then Basic (libest answers the first)
    let r = client(&s.root_pem(), None, false)
        .post(s.url("/.well-known/est/tokens/simpleenroll"))
        .header("content-type", "application/pkcs10")
        .body(b64(&csr(&key(Key::P256), "alice", &[])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        vec!["Bearer realm=\"estd\"", "Basic realm=\"estd\""]
    );

    let kp = key(Key::P256);
    let r = enroll(&s, "tokens", &alice, &kp, "alice").await;
    assert_eq!(r.status(), 200);
    let cert = der_of(&certs_of(&r.bytes().await.unwrap())[0]);
    let serial = estd::enroll::serial_of(&cert).unwrap();
    let record = s
        .state()
        .store
        .find_certificate(&serial)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.requester, "token:alice");

    // the CN must be the token's user; a group outside the template's access is refused
    let r = enroll(&s, "tokens", &alice, &key(Key::P256), "bob").await;
    assert_eq!(r.status(), 403);
    let outsider = idp.token("ES256", claims("carol", &["visitors"]));
    let r = enroll(&s, "tokens", &outsider, &key(Key::P256), "carol").await;
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("may not use the certificate template")
    );
    // an admin group in the token may name another user
    let admin = idp.token("ES256", claims("ops", &["est-users", "Super Admin"]));
    let r = enroll(&s, "tokens", &admin, &key(Key::P256), "bob").await;
    assert_eq!(r.status(), 200);

    // libest sends the standard base64 of the token
    let r = enroll(
        &s,
        "tokens",
        &STANDARD.encode(&alice),
        &key(Key::P256),
        "alice",
    )
    .await;
    assert_eq!(r.status(), 200);

    // a template that does not list bearer refuses the token
    let r = enroll(&s, "devices", &alice, &key(Key::P256), "alice").await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("takes no bearer tokens"));

    // the certificate renews itself (the token's user has no account to check)
    let device = client(&s.root_pem(), Some((cert, &kp)), false);
    let r = post_pkcs10(
        &device,
        s.url("/.well-known/est/tokens/simplereenroll"),
        None,
        b64(&csr(&kp, "alice", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);

    // the JSON API takes tokens too: the token's alice sees her certificates, not those of
    // the local account alice (another person as far as estd knows)
    let hash = estd::auth::hash_password("alice-password-1").unwrap();
    s.state()
        .store
        .add_user("alice", &hash, &["est-users".to_string()])
        .await
        .unwrap();
    let r = post_pkcs10(
        &client(&s.root_pem(), None, false),
        s.url("/.well-known/est/tokens/simpleenroll"),
        Some(("alice", "alice-password-1")),
        b64(&csr(&key(Key::P256), "alice", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let local = estd::enroll::serial_of(&der_of(&certs_of(&r.bytes().await.unwrap())[0])).unwrap();
    let list: serde_json::Value = client(&s.root_pem(), None, false)
        .get(s.url("/api/v1/certificates"))
        .header("authorization", format!("Bearer {alice}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let serials: Vec<&str> = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert!(serials.contains(&serial.as_str()), "{list}");
    assert!(
        !serials.contains(&local.as_str()),
        "the local alice's certificate: {list}"
    );
    // bulk jobs run as a local account: not for a token
    let r = client(&s.root_pem(), None, false)
        .post(s.url("/api/v1/bulk"))
        .header("authorization", format!("Bearer {alice}"))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    s.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_401_and_audited_without_the_token() {
    let idp = Idp::new();
    let mut s = server(&idp).await;
    let other = Idp::new();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("alice", &["est-users"]);
        f(&mut c);
        idp.token("EdDSA", c)
    };
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims("alice", &["est-users"]).to_string())
    );
    let cases: Vec<(String, &str)> = vec![
        (with(&|c| c["aud"] = "other".into()), "not for the audience"),
        (with(&|c| c["exp"] = (now() - 3600).into()), "expired at"),
        (
            with(&|c| c["iss"] = "https://evil.test".into()),
            "issuer is not",
        ),
        (
            other.token("EdDSA", claims("alice", &["est-users"])),
            "signature does not verify",
        ),
        (unsigned, "algorithm \"none\""),
        ("not-a-token".into(), "not a JWT"),
    ];
    for (token, why) in &cases {
        let r = enroll(&s, "tokens", token, &key(Key::P256), "alice").await;
        assert_eq!(r.status(), 401, "{why}");
        let text = r.text().await.unwrap();
        assert!(text.contains(why), "{why}: {text}");
    }
    let rows = s
        .state()
        .store
        .find_audit("2000-01-01T00:00:00Z", None, true, 100)
        .await
        .unwrap();
    assert!(rows.len() >= cases.len());
    for (token, _) in cases.iter().filter(|(t, _)| t.len() > 20) {
        assert!(
            !rows
                .iter()
                .any(|r| r.reason.as_deref().unwrap_or("").contains(token.as_str())),
            "a token in the audit log"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn a_template_that_takes_tokens_needs_tokens_configured() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config_with(dir.path(), "", &[TOKENS]);
    let e = estd::app::start(&config)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("no [tokens] is configured"), "{e}");
    // and [tokens] needs its keys, issuer and audience
    let bad = estd::config::Config::from_figment(figment::Figment::new().merge(
        <figment::providers::Toml as figment::providers::Format>::string(
            "[tokens]\nissuer = \"https://idp.test\"\naudience = \"estd\"\n",
        ),
    ))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(bad.contains("jwks_file or jwks_url"), "{bad}");
}
