//! `/serverkeygen` (RFC 7030 §4.4): a key of the template's type, PKCS#8, matching the
//! certificate, in a multipart/mixed answer whose boundary comes from the header.

mod common;

use common::inproc::*;
use common::*;
use der::Decode;
use estd::est::multipart::{boundary_of, parse_multipart};

fn template(name: &str, key: &str) -> String {
    format!(
        "name = \"{name}\"\nkey_types = [\"ec-p256\"]\nserver_keygen_key = \"{key}\"\nvalidity_days = 30\nsan_style = \"dns\"\nsan_optional = true\ndns_names = [\"admin.example\", \"joe.example\", \"dev.example\"]\n"
    )
}

const KEYS: &[(&str, &str)] = &[
    ("kg-p256", "ec-p256"),
    ("kg-p384", "ec-p384"),
    ("kg-rsa2048", "rsa-2048"),
    ("kg-rsa3072", "rsa-3072"),
    ("kg-rsa4096", "rsa-4096"),
    ("kg-ed25519", "ed25519"),
];

const EAP: &str = "name = \"eap\"\nkey_types = [\"ec-p256\"]\nserver_keygen_key = \"rsa-2048\"\nvalidity_days = 30\nsan_style = \"mac\"\n";

async fn setup() -> Env {
    let templates: Vec<String> = KEYS.iter().map(|(n, k)| template(n, k)).collect();
    let mut all: Vec<&str> = templates.iter().map(String::as_str).collect();
    all.push(EAP);
    let env = env_with(&all).await;
    env.add_user("alice", "alice-pw", &["est-users"]).await;
    env
}

/// The key (PKCS#8 DER) and the certificate of a serverkeygen response.
fn split(r: &Resp) -> (Vec<u8>, x509_cert::Certificate) {
    let ct = r.ct();
    assert!(ct.starts_with("multipart/mixed; boundary="), "{ct}");
    let boundary = boundary_of(ct).expect("boundary");
    let parts = parse_multipart(&r.body, &boundary).expect("multipart");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].header("content-type"), Some("application/pkcs8"));
    assert_eq!(
        parts[1].header("content-type"),
        Some("application/pkcs7-mime; smime-type=certs-only")
    );
    let key = unb64(&parts[0].body);
    let certs = certs_of(&parts[1].body);
    assert_eq!(certs.len(), 1);
    (key, certs[0].clone())
}

#[tokio::test]
async fn each_key_type_is_pkcs8_and_matches_its_certificate() {
    let env = setup().await;
    let csr_key = key(Key::P256);
    let auth = basic("admin", &env.password);
    for (label, key_type) in KEYS {
        let path = format!("/.well-known/est/{label}/serverkeygen");
        let r = send(
            &env,
            post(
                &path,
                Some(&auth),
                "application/pkcs10",
                b64(&csr(&csr_key, "admin", &["dev.example"])),
            ),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        let (pkcs8, cert) = split(&r);

        // PKCS#8 PrivateKeyInfo (version, AlgorithmIdentifier, key), not PKCS#1
        let info = pkcs8::PrivateKeyInfoRef::from_der(&pkcs8).expect("PKCS#8");
        let alg = info.algorithm.oid.to_string();
        let want_alg = if key_type.starts_with("rsa") {
            "1.2.840.113549.1.1.1"
        } else if key_type.starts_with("ec") {
            "1.2.840.10045.2.1"
        } else {
            "1.3.101.112"
        };
        assert_eq!(alg, want_alg, "{label}");

        // the key is the certificate's, not the CSR's
        let kp = rcgen::KeyPair::try_from(pkcs8.as_slice()).expect("usable key");
        let cert_key = cert
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        assert_eq!(kp.public_key_raw(), cert_key, "{label}");
        assert_ne!(
            csr_key.public_key_raw(),
            cert_key,
            "{label}: the CSR's key is ignored"
        );
        if let Some(bits) = key_type.strip_prefix("rsa-") {
            let n = kp.public_key_raw().len();
            assert!(
                n > bits.parse::<usize>().unwrap() / 8,
                "{label}: {n} bytes of RSAPublicKey"
            );
        }
        // subject and SAN from the CSR
        assert_eq!(cert.tbs_certificate().subject().to_string(), "CN=admin");
        let (_, sans) = estd::est::cert_identity(&der_of(&cert)).unwrap();
        assert_eq!(sans, vec![estd::est::SanEntry::Dns("dev.example".into())]);
    }
}

#[tokio::test]
async fn the_policy_applies_to_serverkeygen() {
    let env = setup().await;
    let csr_key = key(Key::P256);
    let alice = basic("alice", "alice-pw");
    let mac = |cn: &str| {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.subject_alt_names = vec![rcgen::SanType::DnsName(
            "00:11:22:33:44:55".try_into().unwrap(),
        )];
        b64(p.serialize_request(&csr_key).unwrap().der())
    };
    let r = send(
        &env,
        post(
            "/.well-known/est/eap/serverkeygen",
            Some(&alice),
            "application/pkcs10",
            mac("bob"),
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.text()
            .starts_with("Invalid request - The given CSR has a CN that does not match")
    );
    let r = send(
        &env,
        post(
            "/.well-known/est/eap/serverkeygen",
            Some(&alice),
            "application/pkcs10",
            mac("alice"),
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (pkcs8, cert) = split(&r);
    assert_eq!(
        pkcs8::PrivateKeyInfoRef::from_der(&pkcs8)
            .unwrap()
            .algorithm
            .oid
            .to_string(),
        "1.2.840.113549.1.1.1"
    );
    let (_, sans) = estd::est::cert_identity(&der_of(&cert)).unwrap();
    assert_eq!(
        sans,
        vec![estd::est::SanEntry::Uri("urn:dev:mac:001122334455".into())]
    );
    // a CSR key type the template does not allow does not matter: the server makes the key
    let p384 = key(Key::P384);
    let r = send(
        &env,
        post(
            "/.well-known/est/eap/serverkeygen",
            Some(&alice),
            "application/pkcs10",
            {
                let mut p = rcgen::CertificateParams::default();
                p.distinguished_name
                    .push(rcgen::DnType::CommonName, "alice");
                p.subject_alt_names =
                    vec![rcgen::SanType::DnsName("001122334455".try_into().unwrap())];
                b64(p.serialize_request(&p384).unwrap().der())
            },
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // needs credentials like simpleenroll
    let r = send(
        &env,
        post(
            "/.well-known/est/eap/serverkeygen",
            None,
            "application/pkcs10",
            mac("alice"),
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn the_generated_key_is_never_stored() {
    let env = setup().await;
    let r = send(
        &env,
        post(
            "/.well-known/est/kg-p256/serverkeygen",
            Some(&basic("admin", &env.password)),
            "application/pkcs10",
            b64(&csr(&key(Key::P256), "admin", &[])),
        ),
        None,
    )
    .await;
    let (pkcs8, _) = split(&r);
    let info = pkcs8::PrivateKeyInfoRef::from_der(&pkcs8).unwrap();
    // the 32-byte secret scalar inside ECPrivateKey { version 1, privateKey OCTET STRING, … }
    let ec = info.private_key.as_bytes();
    let at = ec
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("ECPrivateKey")
        + 5;
    let secret = ec[at..at + 32].to_vec();
    // every file of the data directory (database, WAL, CA files): the private key is in none
    let mut files = vec![env.dir.path().to_path_buf()];
    let mut checked = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let data = std::fs::read(&p).unwrap();
            assert!(
                !data.windows(secret.len()).any(|w| w == secret.as_slice()),
                "{} holds the key",
                p.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "checked {checked} files");
    assert_eq!(env.state.store.certificate_count().await.unwrap(), 1);
}

/// RFC 7030 §4.4.1: a CSR asking for the server-generated key encrypted (to a shared key, or
/// to a certificate) is refused with 400 naming the attribute: the key is never sent in
/// clear to a client that asked for it encrypted.
#[tokio::test]
async fn a_request_for_an_encrypted_key_is_refused_not_answered_in_clear() {
    let env = setup().await;
    let alice = basic("alice", "alice-pw");
    for (arcs, name) in [
        (
            &[1u64, 2, 840, 113549, 1, 9, 16, 2, 37][..],
            "DecryptKeyIdentifier",
        ),
        (
            &[1, 2, 840, 113549, 1, 9, 16, 2, 54][..],
            "AsymmetricDecryptKeyIdentifier",
        ),
    ] {
        let kp = key(Key::P256);
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        // SET { OCTET STRING (a 20-byte key identifier) }
        let mut value = vec![0x31, 22, 0x04, 20];
        value.extend([7u8; 20]);
        let oid: &'static [u64] = Box::leak(arcs.to_vec().into_boxed_slice());
        let der = p
            .serialize_request_with_attributes(&kp, vec![rcgen::Attribute { oid, values: value }])
            .unwrap();
        let r = send(
            &env,
            post(
                "/.well-known/est/kg-p256/serverkeygen",
                Some(&alice),
                "application/pkcs10",
                b64(der.der()),
            ),
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{name}");
        let text = r.text();
        assert!(text.contains(name), "{text}");
        assert!(!r.ct().starts_with("multipart"), "no key in clear");
    }
}
