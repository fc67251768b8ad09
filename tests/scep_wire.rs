//! SCEP messages as real clients send them (micromdm's scepclient 2.1.0, Debian's `scep`:
//! SHA-1, DES-CBC, a BER constructed ciphertext): parsed, their signatures checked, their
//! envelopes opened with the CA's key; and each way a message can be wrong, refused with the
//! `failInfo` RFC 8894 names.

use der::{Decode, DecodePem};
use estd::scep_wire::{self as scep, FailInfo, MessageType, RecipientKey};
use rustls_pki_types::pem::PemObject;

const PKCSREQ: &[u8] = include_bytes!("fixtures/scep/pkcsreq-scepclient-2.1.0.der");
const RENEWAL: &[u8] = include_bytes!("fixtures/scep/renewalreq-scepclient-2.1.0.der");
const CERTREP: &[u8] = include_bytes!("fixtures/scep/certrep-success-micromdm-2.1.0.der");
const CA_PEM: &str = include_str!("fixtures/scep/scep-ca.pem");
const CA_KEY: &str = include_str!("fixtures/scep/scep-ca-key.pem");
const CLIENT_PEM: &str = include_str!("fixtures/scep/client-issued.pem");

fn ca_key() -> RecipientKey {
    let pem = rustls_pki_types::PrivateKeyDer::from_pem_slice(CA_KEY.as_bytes()).expect("the key");
    RecipientKey {
        cert: x509_cert::Certificate::from_pem(CA_PEM).expect("the CA"),
        key: aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(pem.secret_der()).expect("RSA"),
    }
}

#[test]
fn a_pkcsreq_from_scepclient_opens_to_its_csr() {
    let msg = scep::parse(PKCSREQ).expect("a valid PKCSReq");
    assert_eq!(msg.message_type, MessageType::PkcsReq);
    assert_eq!(msg.digest, scep::Digest::Sha1);
    assert!(!msg.transaction_id.is_empty());
    assert_eq!(msg.sender_nonce.len(), 16);
    let (csr, cipher) =
        scep::open(&msg.envelope, &[ca_key()]).expect("the envelope opens (DES-CBC)");
    assert_eq!(cipher, estd::scep_wire::envelope::Cipher::DesCbc);
    let csr = estd::est::Csr::parse(&csr).expect("a CSR whose signature verifies");
    assert!(
        csr.challenge_password.is_some(),
        "the challenge password is in the CSR"
    );
    // the signer is the self-signed certificate of the CSR's key
    let signer = x509_cert::Certificate::from_der(&msg.signer_cert).expect("a certificate");
    assert_eq!(
        signer
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
        csr.public_key.as_slice()
    );
}

#[test]
fn a_renewalreq_is_signed_with_the_current_certificate() {
    let msg = scep::parse(RENEWAL).expect("a valid RenewalReq");
    assert_eq!(msg.message_type, MessageType::RenewalReq);
    let current = x509_cert::Certificate::from_pem(CLIENT_PEM).expect("the issued certificate");
    assert_eq!(msg.signer_cert, der::Encode::to_der(&current).expect("DER"));
    let (csr, _) = scep::open(&msg.envelope, &[ca_key()]).expect("the envelope opens");
    estd::est::Csr::parse(&csr).expect("a CSR");
}

#[test]
fn what_is_wrong_is_refused_with_its_fail_info() {
    let fail = |m: &[u8]| scep::parse(m).expect_err("refused").fail;
    // not CMS at all, truncated, empty
    assert_eq!(fail(b"garbage"), FailInfo::BadRequest);
    assert_eq!(fail(&PKCSREQ[..PKCSREQ.len() / 2]), FailInfo::BadRequest);
    assert_eq!(fail(b""), FailInfo::BadRequest);
    // a CertRep is not a request
    assert_eq!(fail(CERTREP), FailInfo::BadRequest);
    // the signature altered (its last byte)
    let mut m = PKCSREQ.to_vec();
    let sig_end = m.len() - 1;
    m[sig_end] ^= 1;
    let e = scep::parse(&m).expect_err("refused");
    assert_eq!(e.fail, FailInfo::BadMessageCheck, "{e}");
    // a byte of the envelope altered: the messageDigest no longer matches
    let msg = scep::parse(PKCSREQ).expect("valid");
    let at = PKCSREQ
        .windows(msg.envelope.len())
        .position(|w| w == msg.envelope.as_slice())
        .expect("the envelope is in the message as one piece");
    let mut m = PKCSREQ.to_vec();
    m[at + msg.envelope.len() / 2] ^= 0x40;
    let e = scep::parse(&m).expect_err("refused");
    assert_eq!(e.fail, FailInfo::BadMessageCheck, "{e}");
    assert!(e.reason.contains("messageDigest"), "{e}");
}

#[test]
fn an_envelope_for_another_key_does_not_open() {
    let msg = scep::parse(PKCSREQ).expect("valid");
    // another certificate: not a recipient
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let cert = rcgen::CertificateParams::new(vec!["other".into()])
        .expect("params")
        .self_signed(&other)
        .expect("cert");
    let stranger = RecipientKey {
        cert: x509_cert::Certificate::from_der(cert.der()).expect("cert"),
        key: aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&other.serialize_der()).expect("RSA"),
    };
    let e = scep::open(&msg.envelope, &[stranger]).expect_err("refused");
    assert_eq!(e.fail, FailInfo::BadMessageCheck);
    assert!(e.reason.contains("another recipient"), "{e}");
    // the CA's certificate with another key (the key transport fails): the same answer as
    // any other decryption failure, no hint of why
    let wrong_key = RecipientKey {
        cert: x509_cert::Certificate::from_pem(CA_PEM).expect("the CA"),
        key: aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&other.serialize_der()).expect("RSA"),
    };
    let wrong = scep::open(&msg.envelope, &[wrong_key]);
    let refused =
        |r: &Result<(Vec<u8>, estd::scep_wire::envelope::Cipher), scep::ScepError>| match r {
            Err(e) => {
                assert_eq!(e.fail, FailInfo::BadMessageCheck);
                assert!(e.reason.contains("does not decrypt"), "{e}");
                e.reason.clone()
            }
            // one time in 256 the padding fits: noise, which is no CSR
            Ok((noise, _)) => {
                assert!(estd::est::Csr::parse(noise).is_err());
                "noise".into()
            }
        };
    refused(&wrong);
    assert!(scep::open(b"\x30\x00", &[ca_key()]).is_err());
}

#[test]
fn the_content_ciphers_decrypt_what_they_encrypt() {
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
    use estd::scep_wire::envelope::Cipher;
    let plain = b"a certificate request, more than one block long";
    let key24 = [7u8; 24];
    let iv8 = [9u8; 8];
    let ct = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key24, &iv8)
        .unwrap()
        .encrypt_padded_vec::<Pkcs7>(plain);
    assert_eq!(
        Cipher::DesEde3Cbc.decrypt(&key24, &iv8, &ct).as_deref(),
        Some(&plain[..])
    );
    assert_ne!(
        Cipher::DesEde3Cbc.decrypt(&[8u8; 24], &iv8, &ct).as_deref(),
        Some(&plain[..])
    );
    for (alg, cipher) in [
        (&aws_lc_rs::cipher::AES_128, Cipher::Aes128Cbc),
        (&aws_lc_rs::cipher::AES_256, Cipher::Aes256Cbc),
    ] {
        let key = vec![5u8; cipher.key_len()];
        let enc = aws_lc_rs::cipher::PaddedBlockEncryptingKey::cbc_pkcs7(
            aws_lc_rs::cipher::UnboundCipherKey::new(alg, &key).unwrap(),
        )
        .unwrap();
        let mut buf = plain.to_vec();
        let ctx = enc.encrypt(&mut buf).unwrap();
        let iv: &[u8] = (&ctx).try_into().unwrap();
        assert_eq!(cipher.decrypt(&key, iv, &buf).as_deref(), Some(&plain[..]));
        let mut altered = buf.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_ne!(
            cipher.decrypt(&key, iv, &altered).as_deref(),
            Some(&plain[..])
        );
    }
}

/// Runs openssl; its stdout, or a panic with its stderr.
fn openssl(args: &[&str], dir: &std::path::Path) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An RSA RA: a certificate and key, self-signed (what the test trusts).
fn ra() -> (scep::Signer, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "estd SCEP RA");
    let cert = params.self_signed(&key).expect("RA certificate");
    let signer = scep::Signer {
        cert: x509_cert::Certificate::from_der(cert.der()).expect("cert"),
        key: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&key.serialize_der()).expect("RSA"),
    };
    (signer, cert.pem())
}

#[test]
fn a_cert_rep_verifies_and_opens_with_openssl() {
    let dir = tempfile::tempdir().expect("a directory");
    let d = dir.path();
    let (signer, ra_pem) = ra();
    std::fs::write(d.join("ra.pem"), ra_pem).unwrap();
    std::fs::write(
        d.join("client.key"),
        include_str!("fixtures/scep/client-key.pem"),
    )
    .unwrap();
    let req = scep::parse(PKCSREQ).expect("valid");
    let issued =
        der::Encode::to_der(&x509_cert::Certificate::from_pem(CLIENT_PEM).unwrap()).unwrap();
    for cipher in [
        estd::scep_wire::envelope::Cipher::DesCbc,
        estd::scep_wire::envelope::Cipher::Aes256Cbc,
    ] {
        let status = scep::Status::Success {
            payload: scep::reply::Payload::Cert(issued.clone()),
            recipient: req.signer_cert.clone(),
            cipher,
        };
        let rep = scep::cert_rep(&req.echo, &status, &signer).expect("a CertRep");
        std::fs::write(d.join("rep.der"), &rep).unwrap();
        std::fs::write(d.join("signer.der"), &req.signer_cert).unwrap();
        openssl(
            &[
                "x509",
                "-inform",
                "DER",
                "-in",
                "signer.der",
                "-out",
                "signer.pem",
            ],
            d,
        );
        // the RA's signature, then the envelope for the requester, then the certificate
        openssl(
            &[
                "cms", "-verify", "-inform", "DER", "-in", "rep.der", "-CAfile", "ra.pem",
                "-binary", "-out", "env.der",
            ],
            d,
        );
        let ci = openssl(
            &[
                "cms", "-cmsout", "-inform", "DER", "-in", "env.der", "-print",
            ],
            d,
        );
        let printed = String::from_utf8_lossy(&ci);
        // a DES request is answered in 3DES (OpenSSL 3 has no DES by default), AES in AES
        let want = if cipher == estd::scep_wire::envelope::Cipher::DesCbc {
            "des-ede3-cbc"
        } else {
            "aes-256-cbc"
        };
        assert!(printed.contains(want), "{want}: {printed}");
        openssl(
            &[
                "cms",
                "-decrypt",
                "-inform",
                "DER",
                "-in",
                "env.der",
                "-inkey",
                "client.key",
                "-recip",
                "signer.pem",
                "-binary",
                "-out",
                "degenerate.der",
            ],
            d,
        );
        let certs = openssl(
            &[
                "pkcs7",
                "-inform",
                "DER",
                "-in",
                "degenerate.der",
                "-print_certs",
            ],
            d,
        );
        let certs = String::from_utf8_lossy(&certs);
        assert_eq!(
            certs.matches("BEGIN CERTIFICATE").count(),
            1,
            "the issued certificate only"
        );
        assert!(
            certs.contains("CN=dev1") || certs.contains("CN = dev1"),
            "{certs}"
        );
        // estd's own parser reads the attributes back (as a client would)
        let ours = cms::content_info::ContentInfo::from_der(&rep).expect("DER");
        assert_eq!(ours.content_type.to_string(), "1.2.840.113549.1.7.2");
    }
    // PENDING and FAILURE: signed, with the status, the failInfo and the nonces
    for (status, want) in [
        (scep::Status::Pending, "pkiStatus=3"),
        (
            scep::Status::Failure(FailInfo::BadRequest),
            "pkiStatus=2 failInfo=2",
        ),
    ] {
        let rep = scep::cert_rep(&req.echo, &status, &signer).expect("a CertRep");
        std::fs::write(d.join("rep.der"), &rep).unwrap();
        openssl(
            &[
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                "rep.der",
                "-CAfile",
                "ra.pem",
                "-binary",
                "-out",
                "empty.der",
            ],
            d,
        );
        let ci = cms::content_info::ContentInfo::from_der(&rep).unwrap();
        let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
        let attrs = sd
            .signer_infos
            .0
            .iter()
            .next()
            .unwrap()
            .signed_attrs
            .clone()
            .unwrap();
        let get = |o: &str| {
            attrs
                .iter()
                .find(|a| a.oid.to_string() == o)
                .map(|a| a.values.iter().next().unwrap().value().to_vec())
        };
        let text = |o: &str| get(o).map(|v| String::from_utf8(v).unwrap());
        let got = match text("2.16.840.1.113733.1.9.4") {
            Some(f) => format!(
                "pkiStatus={} failInfo={f}",
                text("2.16.840.1.113733.1.9.3").unwrap()
            ),
            None => format!("pkiStatus={}", text("2.16.840.1.113733.1.9.3").unwrap()),
        };
        assert_eq!(got, want);
        assert_eq!(text("2.16.840.1.113733.1.9.2").as_deref(), Some("3"));
        assert_eq!(
            text("2.16.840.1.113733.1.9.7").as_deref(),
            Some(req.transaction_id.as_str())
        );
        assert_eq!(
            get("2.16.840.1.113733.1.9.6"),
            Some(req.sender_nonce.clone()),
            "recipientNonce"
        );
        let sender = get("2.16.840.1.113733.1.9.5").unwrap();
        assert_eq!(sender.len(), 16);
        assert_ne!(sender, req.sender_nonce, "a new senderNonce");
    }
}

/// The first 256-byte OCTET STRING in the envelope: the RSA-2048 encryptedKey.
fn encrypted_key_at(envelope: &[u8]) -> usize {
    envelope
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .expect("the encrypted key")
        + 4
}

#[test]
fn key_transport_failures_all_look_the_same() {
    let msg = scep::parse(PKCSREQ).expect("valid");
    let at = encrypted_key_at(&msg.envelope);
    let outcome = |env: &[u8]| match scep::open(env, &[ca_key()]) {
        Err(e) => format!("{:?}: {}", e.fail, e.reason),
        Ok((p, _)) => {
            assert!(
                estd::est::Csr::parse(&p).is_err(),
                "a CSR from a broken envelope"
            );
            "noise".to_string()
        }
    };
    // a flipped byte of the wrapped key (the RSA padding breaks): the same answer as a
    // wrong key, and the same answer every time for the same message
    let mut flipped = msg.envelope.clone();
    flipped[at + 100] ^= 0x01;
    let first = outcome(&flipped);
    assert_eq!(
        first,
        outcome(&flipped),
        "the same message fails the same way"
    );
    let mut other = msg.envelope.clone();
    other[at + 7] ^= 0x80;
    let second = outcome(&other);
    for o in [&first, &second] {
        assert!(
            o == "noise"
                || o == "BadMessageCheck: the message does not decrypt (another key, or altered)",
            "{o}"
        );
    }
    // an unknown content cipher: badAlg (DES-CBC's OID 1.3.14.3.2.7 made .8)
    let des = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x07];
    let pos = msg
        .envelope
        .windows(7)
        .position(|w| w == des)
        .expect("the DES OID");
    let mut rc = msg.envelope.clone();
    rc[pos + 6] = 0x08;
    assert_eq!(
        scep::open(&rc, &[ca_key()]).expect_err("refused").fail,
        FailInfo::BadAlg
    );
}

#[test]
fn a_tampered_attribute_is_refused_and_the_refusal_can_be_answered() {
    let msg = scep::parse(PKCSREQ).expect("valid");
    let id = msg.transaction_id.as_bytes();
    let at = PKCSREQ
        .windows(id.len())
        .position(|w| w == id)
        .expect("the transactionID");
    let mut m = PKCSREQ.to_vec();
    // another letter or digit: still a PrintableString, no longer what was signed
    m[at] = if m[at] == b'A' { b'B' } else { b'A' };
    let e = scep::parse(&m).expect_err("refused");
    assert_eq!(e.fail, FailInfo::BadMessageCheck, "{e}");
    let echo = e
        .echo
        .expect("the refusal carries the transactionID and the nonce");
    assert_eq!(echo.sender_nonce, msg.sender_nonce);
    // and a signed FAILURE answers it, echoing the transactionID as sent
    let (signer, _) = ra();
    let rep = scep::cert_rep(&echo, &scep::Status::Failure(e.fail), &signer).expect("a CertRep");
    assert!(
        rep.windows(id.len())
            .any(|w| w[1..] == id[1..] && w[0] == m[at])
    );
    // a message refused before its fields were read carries none
    assert!(scep::parse(b"junk").expect_err("refused").echo.is_none());
}

#[test]
fn the_transaction_id_is_echoed_as_sent_and_keys_are_checked_before_issuing() {
    let msg = scep::parse(PKCSREQ).expect("valid");
    let (signer, _) = ra();
    // a UTF8String transactionID with a character PrintableString has not
    let utf8 = der::Any::new(der::Tag::Utf8String, b"a_b@1".to_vec()).expect("any");
    let echo = scep::Echo {
        transaction_id: utf8.clone(),
        sender_nonce: msg.sender_nonce.clone(),
    };
    let rep = scep::cert_rep(&echo, &scep::Status::Pending, &signer).expect("a CertRep");
    let want = der::Encode::to_der(&utf8).unwrap();
    assert!(
        rep.windows(want.len()).any(|w| w == want.as_slice()),
        "echoed byte for byte"
    );
    // SUCCESS carries pkiStatus 0 (the other statuses are checked above)
    let issued =
        der::Encode::to_der(&x509_cert::Certificate::from_pem(CLIENT_PEM).unwrap()).unwrap();
    let ok = scep::Status::Success {
        payload: scep::reply::Payload::Cert(issued),
        recipient: msg.signer_cert.clone(),
        cipher: estd::scep_wire::envelope::Cipher::Aes128Cbc,
    };
    let rep = scep::cert_rep(&msg.echo, &ok, &signer).expect("a CertRep");
    let status = [
        0x06, 0x0a, 0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x03, 0x31, 0x03, 0x13,
        0x01, b'0',
    ];
    assert!(
        rep.windows(status.len()).any(|w| w == status),
        "pkiStatus 0"
    );
    // who can be answered: an RSA-2048 key yes, an EC key no
    assert!(scep::can_encrypt_to(&msg.signer_cert));
    let ec = rcgen::KeyPair::generate().unwrap();
    let ec_cert = rcgen::CertificateParams::new(vec!["ec".into()])
        .unwrap()
        .self_signed(&ec)
        .unwrap();
    assert!(!scep::can_encrypt_to(ec_cert.der()));
    assert!(!scep::can_encrypt_to(b"not a certificate"));
}

/// Every single-byte change of a real request: no panic; what still parses says what the
/// original said (only bytes outside the signed data may change unnoticed, e.g. the signer
/// certificate's own signature); an envelope that still opens gives the original CSR or
/// something that is no CSR.
#[test]
fn every_flipped_byte_is_refused_or_harmless() {
    let original = scep::parse(PKCSREQ).expect("valid");
    let spki = |der: &[u8]| {
        let c = x509_cert::Certificate::from_der(der).expect("a certificate");
        der::Encode::to_der(c.tbs_certificate().subject_public_key_info()).expect("DER")
    };
    let mut accepted = 0;
    for i in 0..PKCSREQ.len() {
        let mut m = PKCSREQ.to_vec();
        m[i] ^= 0x5a;
        if let Ok(msg) = scep::parse(&m) {
            accepted += 1;
            assert_eq!(msg.message_type, original.message_type, "byte {i}");
            assert_eq!(msg.transaction_id, original.transaction_id, "byte {i}");
            assert_eq!(msg.sender_nonce, original.sender_nonce, "byte {i}");
            assert_eq!(msg.envelope, original.envelope, "byte {i}");
            assert_eq!(
                spki(&msg.signer_cert),
                spki(&original.signer_cert),
                "byte {i}"
            );
        }
    }
    assert!(
        accepted < PKCSREQ.len() / 4,
        "{accepted} changed messages accepted"
    );
    let (csr, _) = scep::open(&original.envelope, &[ca_key()]).expect("opens");
    let key = [ca_key()];
    for i in 0..original.envelope.len() {
        let mut e = original.envelope.clone();
        e[i] ^= 0x5a;
        if let Ok((plain, _)) = scep::open(&e, &key) {
            assert!(
                plain == csr || estd::est::Csr::parse(&plain).is_err(),
                "byte {i}: another CSR came out"
            );
        }
    }
}
