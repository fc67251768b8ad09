//! Download formats and zip bundles, read back with the Rust stack and with openssl.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use estd::ca::devpki::{CaKeyType, DevPki};
use estd::ca::{IssuanceRequest, Issuer, LocalIssuer, generate_key};
use estd::est::{KeyType, SanEntry, encode_san};
use estd::pack::{self, BundleAssets, Entity, Format, PackOptions};
use rcgen::KeyPair;
use std::str::FromStr;

const PW: &str = "Secret_#42";

struct Fixture {
    issuer: LocalIssuer,
    assets: BundleAssets,
}

fn fixture() -> Fixture {
    let pki = DevPki::generate(CaKeyType::EcP256).unwrap();
    let issuer = LocalIssuer::new(
        vec![pki.issuing_cert.clone(), pki.root_cert.clone()],
        KeyPair::from_pem(&pki.issuing_key_pem).unwrap(),
    )
    .unwrap();
    let server = rcgen::generate_simple_self_signed(vec!["eap.example".into()]).unwrap();
    let assets = BundleAssets::new(issuer.chain().to_vec(), None, server.cert.der());
    Fixture { issuer, assets }
}

/// A certificate for `cn` with a MAC SAN and a server-generated key of `key_type`.
fn entity(f: &Fixture, cn: &str, mac: &str, key_type: KeyType) -> Entity {
    let key = generate_key(key_type).unwrap();
    let san = vec![SanEntry::Uri(format!(
        "urn:dev:mac:{}",
        mac.replace('-', "").to_lowercase()
    ))];
    let cert = f
        .issuer
        .issue(&IssuanceRequest {
            subject: x509_cert::name::Name::from_str(&format!("CN={cn}")).unwrap(),
            key_type,
            public_key: key.public_key.clone(),
            san: Some((false, encode_san(&san).unwrap())),
            validity: std::time::Duration::from_secs(86_400),
            key_usage: vec![rcgen::KeyUsagePurpose::DigitalSignature],
            extended_key_usage: vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
            crl_url: None,
            ocsp_url: None,
            ocsp_no_check: false,
            rsa_pss: false,
        })
        .unwrap();
    Entity {
        cn: cn.into(),
        san: Some(mac.into()),
        cert_der: cert.der,
        key_pkcs8: Some(key.pkcs8),
    }
}

fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        out.push((f.name().to_string(), data));
    }
    out
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, data) in files {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

#[test]
fn the_zip_holds_the_faq_names_for_each_format() {
    let f = fixture();
    let e = entity(&f, "Joe", "11-22-33-44-55-66", KeyType::Rsa(2048));
    for (format, key_file) in [
        (Format::Pkcs12Chain, "Joe_11-22-33-44-55-66.p12"),
        (Format::Pkcs12, "Joe_11-22-33-44-55-66.p12"),
        (Format::PemChain, "Joe_11-22-33-44-55-66.key"),
        (Format::Pem, "Joe_11-22-33-44-55-66.key"),
    ] {
        let opts = PackOptions {
            format,
            password: PW,
            legacy_pkcs12: false,
        };
        let zip = pack::zip_bundle(std::slice::from_ref(&e), &f.assets, &opts).unwrap();
        let mut names: Vec<String> = unzip(&zip).into_iter().map(|(n, _)| n).collect();
        names.sort();
        let mut want = vec![
            "Joe_11-22-33-44-55-66.cer".to_string(),
            key_file.to_string(),
            "eap-server.cer".to_string(),
            "issuing-ca.cer".to_string(),
            "root-ca.cer".to_string(),
        ];
        want.sort();
        assert_eq!(names, want, "{format:?}");
    }
    // a CSR request: no key, so no .key or .p12
    let csr_entity = Entity {
        key_pkcs8: None,
        ..entity(&f, "Joe", "11-22-33-44-55-66", KeyType::EcP256)
    };
    let opts = PackOptions {
        format: Format::Pkcs12Chain,
        password: PW,
        legacy_pkcs12: false,
    };
    let names: Vec<String> = unzip(&pack::zip_bundle(&[csr_entity], &f.assets, &opts).unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".p12") || n.ends_with(".key")),
        "{names:?}"
    );
    // bulk: a repeated name gets a suffix; an unsafe CN is made safe
    let a = entity(&f, "Joe", "11-22-33-44-55-66", KeyType::EcP256);
    let b = entity(&f, "Joe", "11-22-33-44-55-66", KeyType::EcP256);
    let c = entity(&f, "../evil:name", "aa-bb-cc-dd-ee-ff", KeyType::EcP256);
    let opts = PackOptions {
        format: Format::Pem,
        password: PW,
        legacy_pkcs12: false,
    };
    let names: Vec<String> = unzip(&pack::zip_bundle(&[a, b, c], &f.assets, &opts).unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for want in [
        "Joe_11-22-33-44-55-66.cer",
        "Joe_11-22-33-44-55-66-2.cer",
        "Joe_11-22-33-44-55-66-2.key",
        "_evil_name_aa-bb-cc-dd-ee-ff.cer",
    ] {
        assert!(names.contains(&want.to_string()), "{want} in {names:?}");
    }
    // a configured EAP chain replaces estd's own certificate
    let eap = BundleAssets::new(
        f.assets.chain.clone(),
        Some("-----BEGIN CERTIFICATE-----\n…".into()),
        b"",
    );
    let names: Vec<String> = unzip(&pack::zip_bundle(&[], &eap, &opts).unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.contains(&"eap-server-chain.pem".to_string()),
        "{names:?}"
    );
}

#[test]
fn a_bad_password_stops_packaging_with_the_rules() {
    let f = fixture();
    let e = entity(&f, "Joe", "11-22-33-44-55-66", KeyType::EcP256);
    let opts = PackOptions {
        format: Format::Pem,
        password: "password",
        legacy_pkcs12: false,
    };
    let err = pack::zip_bundle(&[e], &f.assets, &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "The certificate password does not follow the password rules: Includes at least one uppercase letter, one lowercase letter, and one number"
    );
}

#[test]
fn every_format_reads_back_with_rust_and_openssl() {
    let f = fixture();
    for (key_type, label) in [
        (KeyType::Rsa(2048), "rsa"),
        (KeyType::EcP256, "p256"),
        (KeyType::EcP384, "p384"),
    ] {
        let e = entity(&f, "Joe", "11-22-33-44-55-66", key_type);
        let original_key = e.key_pkcs8.clone().unwrap();
        for format in Format::ALL {
            for legacy in [false, true] {
                if legacy && !matches!(format, Format::Pkcs12 | Format::Pkcs12Chain) {
                    continue;
                }
                let what = format!("{label} {} legacy={legacy}", format.as_str());
                let dir = tempfile::tempdir().unwrap();
                let opts = PackOptions {
                    format,
                    password: PW,
                    legacy_pkcs12: legacy,
                };
                let files =
                    unzip(&pack::zip_bundle(std::slice::from_ref(&e), &f.assets, &opts).unwrap());
                write_all(dir.path(), &files);
                let d = dir.path();
                let pass = format!("pass:{PW}");

                // the certificate verifies against the chain in the zip
                let (ok, out) = openssl(
                    d,
                    &[
                        "verify",
                        "-CAfile",
                        "root-ca.cer",
                        "-untrusted",
                        "issuing-ca.cer",
                        "Joe_11-22-33-44-55-66.cer",
                    ],
                );
                assert!(ok, "{what}: {out}");
                let cer = std::fs::read_to_string(d.join("Joe_11-22-33-44-55-66.cer")).unwrap();
                let n_certs = cer.matches("BEGIN CERTIFICATE").count();
                assert_eq!(
                    n_certs,
                    if format == Format::PemChain { 3 } else { 1 },
                    "{what}"
                );
                let (_, cert_pub) = openssl(
                    d,
                    &[
                        "x509",
                        "-in",
                        "Joe_11-22-33-44-55-66.cer",
                        "-noout",
                        "-pubkey",
                    ],
                );

                match format {
                    Format::Pem | Format::PemChain => {
                        let key =
                            std::fs::read_to_string(d.join("Joe_11-22-33-44-55-66.key")).unwrap();
                        assert!(
                            key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
                            "{what}"
                        );
                        // openssl decrypts it and it is the certificate's key
                        let (ok, out) = openssl(
                            d,
                            &[
                                "pkcs8",
                                "-in",
                                "Joe_11-22-33-44-55-66.key",
                                "-passin",
                                &pass,
                                "-out",
                                "plain.pem",
                            ],
                        );
                        assert!(ok, "{what}: {out}");
                        let (_, key_pub) = openssl(d, &["pkey", "-in", "plain.pem", "-pubout"]);
                        assert_eq!(key_pub, cert_pub, "{what}");
                        let (ok, _) = openssl(
                            d,
                            &[
                                "pkcs8",
                                "-in",
                                "Joe_11-22-33-44-55-66.key",
                                "-passin",
                                "pass:Wrong_#42",
                                "-out",
                                "x.pem",
                            ],
                        );
                        assert!(!ok, "{what}: a wrong password must fail");
                        // PBES2, PBKDF2 with HMAC-SHA256, AES-256-CBC
                        let (_, asn1) =
                            openssl(d, &["asn1parse", "-in", "Joe_11-22-33-44-55-66.key"]);
                        for alg in ["PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc"] {
                            assert!(asn1.contains(alg), "{what}: {alg} in\n{asn1}");
                        }
                        // and the Rust stack decrypts it to the very key
                        let doc = pkcs8::EncryptedPrivateKeyInfoRef::try_from(
                            pkcs8::der::Document::from_pem(&key).unwrap().1.as_bytes(),
                        )
                        .unwrap()
                        .decrypt(PW)
                        .unwrap();
                        assert_eq!(doc.as_bytes(), original_key.as_slice(), "{what}");
                    }
                    Format::Pkcs12 | Format::Pkcs12Chain => {
                        let p12 = d.join("Joe_11-22-33-44-55-66.p12");
                        let (ok, info) = openssl(
                            d,
                            &[
                                "pkcs12",
                                "-in",
                                p12.to_str().unwrap(),
                                "-info",
                                "-noout",
                                "-passin",
                                &pass,
                            ],
                        );
                        assert!(ok, "{what}: {info}");
                        if legacy {
                            assert!(info.contains("MAC: sha1"), "{what}: {info}");
                            assert!(
                                info.contains("3-key TripleDES")
                                    || info.contains("pbeWithSHA1And3-KeyTripleDES"),
                                "{what}: {info}"
                            );
                        } else {
                            assert!(info.contains("MAC: sha256"), "{what}: {info}");
                            assert!(info.contains("AES-256-CBC"), "{what}: {info}");
                        }
                        let (ok, _) = openssl(
                            d,
                            &[
                                "pkcs12",
                                "-in",
                                p12.to_str().unwrap(),
                                "-info",
                                "-noout",
                                "-passin",
                                "pass:Wrong_#42",
                            ],
                        );
                        assert!(!ok, "{what}: a wrong password must fail");
                        let (ok, certs) = openssl(
                            d,
                            &[
                                "pkcs12",
                                "-in",
                                p12.to_str().unwrap(),
                                "-nokeys",
                                "-passin",
                                &pass,
                            ],
                        );
                        assert!(ok, "{what}");
                        let want = if format == Format::Pkcs12Chain { 3 } else { 1 };
                        assert_eq!(certs.matches("BEGIN CERTIFICATE").count(), want, "{what}");
                        let (ok, out) = openssl(
                            d,
                            &[
                                "pkcs12",
                                "-in",
                                p12.to_str().unwrap(),
                                "-nocerts",
                                "-noenc",
                                "-passin",
                                &pass,
                                "-out",
                                "p12key.pem",
                            ],
                        );
                        assert!(ok, "{what}: {out}");
                        let (_, key_pub) = openssl(d, &["pkey", "-in", "p12key.pem", "-pubout"]);
                        assert_eq!(key_pub, cert_pub, "{what}");
                        // the Rust stack reads it back: the key and the chain
                        let store = p12_keystore::KeyStore::from_pkcs12(
                            &std::fs::read(&p12).unwrap(),
                            PW,
                            p12_keystore::Pkcs12ImportPolicy::default(),
                        )
                        .unwrap();
                        let (_, chain) = store.private_key_chain().expect("a key");
                        assert_eq!(chain.certs().len(), want, "{what}");
                        assert_eq!(chain.certs()[0].as_der(), e.cert_der.as_slice(), "{what}");
                        let got = rcgen::KeyPair::try_from(chain.key().as_der()).unwrap();
                        let orig = rcgen::KeyPair::try_from(original_key.as_slice()).unwrap();
                        assert_eq!(got.public_key_raw(), orig.public_key_raw(), "{what}");
                    }
                }
            }
        }
    }
}
