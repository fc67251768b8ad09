//! Key generation and packaging (issue 4), and the enrollment crypto they sit beside.
//! Run: `cargo bench -p estd-benches --bench crypto` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::str::FromStr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use estd::ca::devpki::{CaKeyType, DevPki};
use estd::ca::{IssuanceRequest, Issuer, LocalIssuer, generate_key};
use estd::est::{Csr, KeyType};
use estd::pack::{self, BundleAssets, Entity, Format, PackOptions};

const PW: &str = "Secret_#42";

fn keygen(c: &mut Criterion) {
    let mut g = c.benchmark_group("keygen");
    for (name, kt) in [
        ("ec-p256", KeyType::EcP256),
        ("ec-p384", KeyType::EcP384),
        ("ed25519", KeyType::Ed25519),
    ] {
        g.bench_function(name, |b| b.iter(|| generate_key(black_box(kt)).unwrap()));
    }
    g.sample_size(10);
    for bits in [2048, 3072] {
        g.bench_function(format!("rsa-{bits}"), |b| {
            b.iter(|| generate_key(black_box(KeyType::Rsa(bits))).unwrap())
        });
    }
    g.finish();
}

fn issuer() -> LocalIssuer {
    let pki = DevPki::generate(CaKeyType::EcP256).unwrap();
    LocalIssuer::new(
        vec![pki.issuing_cert, pki.root_cert],
        rcgen::KeyPair::from_pem(&pki.issuing_key_pem).unwrap(),
    )
    .unwrap()
}

fn request(key: &estd::ca::GeneratedKey) -> IssuanceRequest {
    IssuanceRequest {
        subject: x509_cert::name::Name::from_str("CN=Joe").unwrap(),
        key_type: key.key_type,
        public_key: key.public_key.clone(),
        san: None,
        validity: Duration::from_secs(86_400 * 365),
        key_usage: vec![rcgen::KeyUsagePurpose::DigitalSignature],
        extended_key_usage: vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        crl_url: None,
        ocsp_url: None,
        ocsp_no_check: false,
        rsa_pss: false,
    }
}

fn enrollment_crypto(c: &mut Criterion) {
    let ca = issuer();
    let kp = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Joe");
    let csr = params.serialize_request(&kp).unwrap().der().to_vec();
    let key = generate_key(KeyType::EcP256).unwrap();
    let req = request(&key);
    let cert = ca.issue(&req).unwrap();
    let mut g = c.benchmark_group("enroll");
    g.bench_function("csr-parse-verify-p256", |b| {
        b.iter(|| Csr::parse(black_box(&csr)).unwrap())
    });
    g.bench_function("sign-p256-ca", |b| {
        b.iter(|| ca.issue(black_box(&req)).unwrap())
    });
    g.bench_function("certs-only-encode", |b| {
        b.iter(|| estd::est::certs_only(&[black_box(&cert.der)]).unwrap())
    });
    g.finish();
}

fn packaging(c: &mut Criterion) {
    let ca = issuer();
    let server = rcgen::generate_simple_self_signed(vec!["eap.example".into()]).unwrap();
    let assets = BundleAssets::new(ca.chain().to_vec(), None, server.cert.der());
    let mut g = c.benchmark_group("pack");
    for (name, kt) in [("p256", KeyType::EcP256), ("rsa2048", KeyType::Rsa(2048))] {
        let key = generate_key(kt).unwrap();
        let cert = ca.issue(&request(&key)).unwrap();
        g.bench_function(format!("encrypted-pkcs8-pem/{name}"), |b| {
            b.iter(|| pack::encrypted_key_pem(black_box(&key.pkcs8), PW).unwrap())
        });
        for (label, legacy) in [("pkcs12", false), ("pkcs12-legacy", true)] {
            g.bench_function(format!("{label}/{name}"), |b| {
                b.iter(|| pack::pkcs12(&cert.der, &key.pkcs8, &assets.chain, PW, legacy).unwrap())
            });
        }
        let entity = Entity {
            cn: "Joe".into(),
            san: Some("11-22-33-44-55-66".into()),
            cert_der: cert.der.clone(),
            key_pkcs8: Some(key.pkcs8.clone()),
        };
        for format in Format::ALL {
            let opts = PackOptions {
                format,
                password: PW,
                legacy_pkcs12: false,
            };
            g.bench_function(format!("zip-{}/{name}", format.as_str()), |b| {
                b.iter(|| pack::zip_bundle(std::slice::from_ref(&entity), &assets, &opts).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = keygen, enrollment_crypto, packaging
}
criterion_main!(benches);
