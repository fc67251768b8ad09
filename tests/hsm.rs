//! Keys in a real PKCS#11 token (SoftHSM2, in a temporary directory): P-256, P-384 and
//! RSA-2048 keys generated inside the token (sensitive, never extractable) sign a CA
//! certificate and a CRL through rcgen, and openssl verifies both. A wrong PIN, an unknown
//! token and a missing key are refused with what went wrong.
//!
//! One test function: the token directory is chosen by SOFTHSM2_CONF, which the module
//! reads once per process.

mod common;

use std::path::Path;
use std::process::Command;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234-estd";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// Asserts that a command's run succeeded, showing its stderr otherwise.
fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tool(conf: &Path) -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.env("SOFTHSM2_CONF", conf).args([
        "--module",
        MODULE,
        "--token-label",
        "estd",
        "--login",
        "--pin",
        PIN,
    ]);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn token_keys_sign_certificates_and_crls_that_openssl_verifies() {
    assert!(
        Path::new(MODULE).exists(),
        "SoftHSM2 is not installed ({MODULE}); tests/run.sh installs it (apt-get install softhsm2 opensc)"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).expect("the token directory");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("the SoftHSM configuration");
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "estd",
            "--pin",
            PIN,
            "--so-pin",
            "5678",
        ]));
    for (label, id, kind) in [
        ("ca-p256", "01", "EC:prime256v1"),
        ("ca-p384", "02", "EC:secp384r1"),
        ("ca-rsa", "03", "rsa:2048"),
    ] {
        run(tool(&conf).args([
            "--keypairgen",
            "--key-type",
            kind,
            "--label",
            label,
            "--id",
            id,
        ]));
    }
    let listed = run(tool(&conf).args(["--list-objects", "--type", "privkey"]));
    assert!(
        listed.matches("never extractable").count() >= 3,
        "the keys are not marked never extractable: {listed}"
    );
    // SAFETY of the test's environment: set before the module is loaded, read once by it
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };

    use estd::ca::pkcs11::{Pkcs11Uri, Token};
    let uri = |s: &str| Pkcs11Uri::parse(s).expect("a PKCS#11 URI");

    // refusals, each saying what went wrong
    let e = Token::open(
        "/nonexistent/libnothing.so",
        &uri("pkcs11:token=estd;object=ca-p256"),
        PIN,
        1,
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot be loaded"), "{e}");
    let e = Token::open(MODULE, &uri("pkcs11:token=nosuch;object=ca-p256"), PIN, 1).unwrap_err();
    assert!(e.to_string().contains("no such token"), "{e}");
    let e = Token::open(MODULE, &uri("pkcs11:token=estd;object=ca-p256"), "0000", 1).unwrap_err();
    assert_eq!(e.ckr, Some("CKR_PIN_INCORRECT"), "{e}");
    assert!(!e.to_string().contains("0000"), "the PIN is printed: {e}");

    let token = Token::open(MODULE, &uri("pkcs11:token=estd;object=ca-p256"), PIN, 2)
        .expect("the token opens");
    let e = token
        .key(&uri("pkcs11:token=estd;object=nosuch"))
        .unwrap_err();
    assert!(e.to_string().contains("no such private key"), "{e}");

    for (object, want) in [
        ("object=ca-p256", "ecdsa-with-SHA256"),
        ("id=%02", "ecdsa-with-SHA384"),
        ("object=ca-rsa", "sha256WithRSAEncryption"),
    ] {
        let key = token
            .key(&uri(&format!("pkcs11:token=estd;{object}")))
            .expect("the key is found");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("HSM CA {object}"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("signed in the token");
        let issuer = rcgen::Issuer::new(params, &key);
        let crl = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2026, 1, 1),
            next_update: rcgen::date_time_ymd(2036, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(42u64),
                revocation_time: rcgen::date_time_ymd(2026, 1, 2),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .expect("CRL signed in the token");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("ca.pem");
        if object == "object=ca-p256" {
            std::fs::write(dir.path().join("p256-ca.pem"), cert.pem()).expect("p256-ca.pem");
        }
        let crl_path = dir.path().join("ca.crl");
        std::fs::write(&crl_path, crl.der().as_ref()).expect("ca.crl");
        let text = run(Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&ca));
        assert!(
            text.contains(want),
            "{object}: not signed with {want}: {text}"
        );
        run(Command::new("openssl")
            .args(["verify", "-check_ss_sig", "-CAfile"])
            .arg(&ca)
            .arg(&ca));
        let out = run(Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-in"])
            .arg(&crl_path)
            .arg("-CAfile")
            .arg(&ca));
        assert!(out.contains("verify OK"), "{object}: CRL: {out}");
        assert!(key.take_error().is_none());

        // the CA itself, with its key in the token: a device certificate that chains to it
        drop(issuer);
        let ca_issuer =
            estd::ca::LocalIssuer::new(vec![cert.der().to_vec()], key).expect("a token CA");
        let device = estd::ca::generate_key(estd::est::KeyType::EcP256).expect("a device key");
        let issued = estd::ca::Issuer::issue(
            &ca_issuer,
            &estd::ca::IssuanceRequest {
                subject: "CN=device-1".parse().expect("a name"),
                key_type: device.key_type,
                public_key: device.public_key.clone(),
                san: None,
                validity: std::time::Duration::from_secs(86_400),
                key_usage: vec![rcgen::KeyUsagePurpose::DigitalSignature],
                extended_key_usage: vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
                crl_url: None,
                ocsp_url: None,
                ocsp_no_check: false,
                rsa_pss: false,
            },
        )
        .expect("issued by the token CA");
        let leaf = dir.path().join("device.pem");
        std::fs::write(&leaf, estd::est::pem("CERTIFICATE", &issued.der)).expect("device.pem");
        run(Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&ca)
            .arg(&leaf));
        estd::ca::Issuer::check_key(&ca_issuer).expect("the token key answers");
    }

    // the sealing key: AES-256-GCM in the token, the same layout as the file key's
    // (nonce ‖ ciphertext ‖ tag), bound to its context
    let (secret, made) = token
        .secret_or_generate(&uri("pkcs11:token=estd;object=seal"))
        .expect("an AES key made in the token");
    assert!(made);
    let sealer = estd::ca::seal::Sealer::in_token(secret);
    let sealed = sealer.seal("item-1", b"a device key").expect("sealed");
    assert_eq!(sealed.len(), 12 + 12 + 16, "nonce, ciphertext, tag");
    assert!(!sealed.windows(12).any(|w| w == b"a device key"));
    assert_eq!(
        sealer.open("item-1", &sealed).expect("opened").as_slice(),
        b"a device key"
    );
    let e = sealer.open("item-2", &sealed).unwrap_err().to_string();
    assert!(e.contains("does not open"), "another context: {e}");
    let mut altered = sealed.clone();
    altered[14] ^= 1;
    assert!(
        sealer.open("item-1", &altered).is_err(),
        "altered data opens"
    );
    let (_, made) = token
        .secret_or_generate(&uri("pkcs11:token=estd;object=seal"))
        .expect("found again");
    assert!(!made, "a second AES key was made");
    let listed = run(tool(&conf).args(["--list-objects", "--type", "secrkey"]));
    assert!(
        listed.contains("never extractable") && listed.contains("seal"),
        "the AES key is not in the token, never extractable: {listed}"
    );
    // a key generated over a name already taken is refused, whatever the object's class
    let e = token
        .generate(
            &uri("pkcs11:token=estd;object=seal"),
            estd::est::KeyType::EcP256,
        )
        .unwrap_err();
    assert!(e.to_string().contains("already holds"), "{e}");

    // estd serve with the issuing CA's key in the token: its TLS certificate and a device's
    // certificate are signed there
    let data = dir.path().join("data");
    let certs = data.join("certs");
    std::fs::create_dir_all(&certs).expect("certs/");
    let ca_pem = std::fs::read(dir.path().join("p256-ca.pem")).expect("the token CA");
    std::fs::write(certs.join("issuing-ca.pem"), &ca_pem).expect("issuing-ca.pem");
    std::fs::write(certs.join("root-ca.pem"), &ca_pem).expect("root-ca.pem");
    let conf_s = conf.to_string_lossy().into_owned();
    let (mut estd, ports) = common::spawn_estd_ports(
        &data,
        &[
            ("ESTD_CA_KEY", "pkcs11:token=estd;object=ca-p256"),
            ("ESTD_CA_PKCS11_MODULE", MODULE),
            ("ESTD_CA_PIN", PIN),
            ("SOFTHSM2_CONF", &conf_s),
        ],
        std::process::Stdio::inherit(),
    );
    let password = std::fs::read_to_string(data.join("admin-password")).expect("admin-password");
    let kp = common::key(common::Key::P256);
    let resp = common::client(&ca_pem, None, false)
        .post(format!(
            "https://127.0.0.1:{}/.well-known/est/simpleenroll",
            ports.est
        ))
        .basic_auth("admin", Some(password.trim()))
        .header("content-type", "application/pkcs10")
        .body(common::b64(&common::csr(&kp, "admin", &[])))
        .send()
        .await
        .expect("enrollment");
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.expect("body");
    let device = common::der_of(&common::certs_of(&body)[0]);
    let leaf = dir.path().join("enrolled.pem");
    std::fs::write(&leaf, estd::est::pem("CERTIFICATE", &device)).expect("enrolled.pem");
    let ca_file = dir.path().join("p256-ca.pem");
    run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&ca_file)
        .arg(&leaf));
    let _ = estd.kill();
    let _ = estd.wait();

    // a wrong PIN stops start-up, saying so and not printing the PIN
    let out = Command::new(env!("CARGO_BIN_EXE_estd"))
        .arg("serve")
        .env("ESTD_DATA_DIR", &data)
        .env("ESTD_LISTEN", "127.0.0.1:0")
        .env("ESTD_CA_KEY", "pkcs11:token=estd;object=ca-p256")
        .env("ESTD_CA_PKCS11_MODULE", MODULE)
        .env("ESTD_CA_PIN", "9999-wrong")
        .env("SOFTHSM2_CONF", &conf)
        .env_remove("ESTD_CONFIG")
        .output()
        .expect("estd serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("CKR_PIN_INCORRECT"), "{err}");
    assert!(!err.contains("9999-wrong"), "the PIN is printed: {err}");

    // estd ca init --pkcs11: the key made in the token, a self-signed CA in ca.dir, and
    // estd serve with it; a request for an external root; the same key twice is refused
    let data2 = dir.path().join("data2");
    let init = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_estd"))
            .args(["ca", "init"])
            .args(args)
            .env("ESTD_DATA_DIR", &data2)
            .env("ESTD_CA_PIN", PIN)
            .env("SOFTHSM2_CONF", &conf)
            .env_remove("ESTD_CONFIG")
            .output()
            .expect("estd ca init")
    };
    let out = init(&[
        "--pkcs11",
        "pkcs11:token=estd;object=made-ca",
        "--key-type",
        "ec-p384",
        "--self-signed",
        "--module",
        MODULE,
    ]);
    succeeded(&out);
    let made = data2.join("certs/issuing-ca.pem");
    run(Command::new("openssl")
        .args(["verify", "-check_ss_sig", "-CAfile"])
        .arg(&made)
        .arg(&made));
    let listed = run(tool(&conf).args(["--list-objects", "--type", "privkey"]));
    let made_key = listed
        .split("Private Key Object")
        .find(|o| o.contains("made-ca"))
        .expect("the key is in the token");
    assert!(made_key.contains("never extractable"), "{made_key}");
    let (mut estd2, _) = common::spawn_estd_ports(
        &data2,
        &[
            ("ESTD_CA_KEY", "pkcs11:token=estd;object=made-ca"),
            ("ESTD_CA_PKCS11_MODULE", MODULE),
            ("ESTD_CA_PIN", PIN),
            ("SOFTHSM2_CONF", &conf_s),
        ],
        std::process::Stdio::inherit(),
    );
    let _ = estd2.kill();
    let _ = estd2.wait();
    let again = init(&[
        "--pkcs11",
        "pkcs11:token=estd;object=made-ca",
        "--self-signed",
        "--module",
        MODULE,
    ]);
    assert!(!again.status.success());
    let csr = dir.path().join("sub.csr");
    let out = init(&[
        "--pkcs11",
        "pkcs11:token=estd;object=sub-ca",
        "--key-type",
        "rsa-2048",
        "--csr",
        &csr.to_string_lossy(),
        "--module",
        MODULE,
    ]);
    succeeded(&out);
    run(Command::new("openssl")
        .args(["req", "-verify", "-noout", "-in"])
        .arg(&csr));
}
