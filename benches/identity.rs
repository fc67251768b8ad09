//! What zero-touch authentication costs per request (issue 24): a bearer token's
//! verification (EdDSA, ES256, RS256) and a manufacturer certificate's chain checked against
//! a template's vendor CAs, with and without a CRL; beside a CSR's parse and signature check,
//! which every enrollment does, as the yardstick of the same run.
//! Run: `cargo bench -p estd-benches --bench identity` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use estd::auth::jwt::{Alg, KeySet, Settings, verify};
use estd::policy::vendor::VendorTrust;

fn settings() -> Settings {
    Settings {
        issuer: "https://idp.test".into(),
        audience: "estd".into(),
        user_claim: "sub".into(),
        groups_claim: Some("groups".into()),
        algorithms: vec![Alg::Rs256, Alg::Es256, Alg::EdDsa],
        leeway: std::time::Duration::from_secs(60),
    }
}

fn token(alg: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let h = B64.encode(format!(r#"{{"alg":"{alg}"}}"#));
    let c = B64.encode(format!(
        r#"{{"iss":"https://idp.test","aud":"estd","sub":"mdm-1","groups":["est-users"],"exp":{exp}}}"#
    ));
    let signed = format!("{h}.{c}");
    format!("{signed}.{}", B64.encode(sign(signed.as_bytes())))
}

fn tokens(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let ed =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let ec = EcdsaKeyPair::from_pkcs8(
        alg,
        EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap().as_ref(),
    )
    .unwrap();
    let rsa_key = estd::est::generate_key(estd::est::KeyType::Rsa(2048)).unwrap();
    let rsa = RsaKeyPair::from_pkcs8(&rsa_key.pkcs8).unwrap();
    let point = ec.public_key().as_ref();
    let (n, e) = {
        use aws_lc_rs::signature::KeyPair;
        let pk = rsa.public_key();
        let comps = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pk);
        (comps.n, comps.e)
    };
    let jwks = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}"}},{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}},{{"kty":"RSA","n":"{}","e":"{}"}}]}}"#,
        B64.encode(ed.public_key().as_ref()),
        B64.encode(&point[1..33]),
        B64.encode(&point[33..]),
        B64.encode(&n),
        B64.encode(&e)
    );
    let keys = KeySet::from_jwks(jwks.as_bytes()).unwrap();
    let s = settings();
    let cases = [
        ("EdDSA", token("EdDSA", |m| ed.sign(m).as_ref().to_vec())),
        (
            "ES256",
            token("ES256", |m| ec.sign(&rng, m).unwrap().as_ref().to_vec()),
        ),
        (
            "RS256",
            token("RS256", |m| {
                let mut sig = vec![0; rsa.public_modulus_len()];
                rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig)
                    .unwrap();
                sig
            }),
        ),
    ];
    let mut g = c.benchmark_group("bearer-token");
    for (name, t) in &cases {
        assert!(verify(&keys, &s, t, SystemTime::now()).is_ok(), "{name}");
        g.bench_function(*name, |b| {
            b.iter(|| verify(&keys, &s, black_box(t), SystemTime::now()).unwrap())
        });
    }
    g.finish();
}

fn idevid(c: &mut Criterion) {
    let ca = |cn: &str| {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        p
    };
    let root_key = rcgen::KeyPair::generate().unwrap();
    let root_params = ca("Vendor Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let issuing_key = rcgen::KeyPair::generate().unwrap();
    let issuing_params = ca("Vendor Issuing");
    let issuing = issuing_params
        .signed_by(
            &issuing_key,
            &rcgen::Issuer::from_params(&root_params, &root_key),
        )
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut lp = rcgen::CertificateParams::default();
    lp.distinguished_name
        .push(rcgen::DnType::CommonName, "router");
    lp.distinguished_name
        .push(rcgen::DnType::from_oid(&[2, 5, 4, 5]), "SN-1");
    let leaf = lp
        .signed_by(
            &leaf_key,
            &rcgen::Issuer::from_params(&issuing_params, &issuing_key),
        )
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(7),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: (1..=1000u64)
            .map(|n| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(n * 7919),
                revocation_time: now - time::Duration::hours(2),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&rcgen::Issuer::from_params(&issuing_params, &issuing_key))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), root.pem()).unwrap();
    std::fs::write(dir.path().join("v.crl"), crl.pem().unwrap()).unwrap();
    let chain = vec![leaf.der().to_vec(), issuing.der().to_vec()];
    let mut g = c.benchmark_group("idevid-chain");
    for (name, crls) in [
        ("no CRL", vec![]),
        ("CRL of 1000", vec!["v.crl".to_string()]),
    ] {
        let trust = VendorTrust::load(
            dir.path(),
            &["root.pem".into()],
            &crls,
            "%idevid_serial%",
            false,
        )
        .unwrap();
        assert!(trust.verify("zt", &chain, SystemTime::now()).is_ok());
        g.bench_function(name, |b| {
            b.iter(|| {
                trust
                    .verify("zt", black_box(&chain), SystemTime::now())
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// What every enrollment does anyway, measured in the same run as the yardstick: parsing a
/// P-256 CSR and checking its signature.
fn reference(c: &mut Criterion) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, "SN-1");
    let der = p.serialize_request(&key).unwrap().der().to_vec();
    c.bench_function("reference/csr-parse-verify-p256", |b| {
        b.iter(|| estd::est::Csr::parse(black_box(&der)).unwrap())
    });
}

criterion_group!(benches, reference, tokens, idevid);
criterion_main!(benches);
