//! The client's side of SCEP: each request `scep::request` builds is parsed and opened the
//! way the server does (`scep::parse`, `scep::open`), answered with `scep::cert_rep`, and
//! the answer read back; answers that are not for us are refused; openssl reads our
//! requests; micromdm's real CertRep reads; and `estd client scep` runs against a small
//! SCEP server in this process.

use der::{Decode, DecodePem, Encode};
use estd::scep_wire::envelope::Cipher;
use estd::scep_wire::request::{self, Reply, RequestError, Requester};
use estd::scep_wire::{self as scep, FailInfo, MessageType, Payload, RecipientKey, Status};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair, KeyUsagePurpose};
use x509_cert::Certificate;

fn rsa() -> KeyPair {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
}

/// A CA, its RA (RSA, digitalSignature + keyEncipherment, issued by the CA), and what the
/// server holds: the RA as signer and as recipient.
struct Pki {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_der: Vec<u8>,
    ra_der: Vec<u8>,
    ra_key: KeyPair,
}

fn ca_named(name: &str) -> (CertificateParams, KeyPair, Vec<u8>) {
    let key = rsa();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let der = p.self_signed(&key).unwrap().der().to_vec();
    (p, key, der)
}

fn issue_ra(
    ca: &CertificateParams,
    ca_key: &KeyPair,
    usages: Vec<KeyUsagePurpose>,
) -> (Vec<u8>, KeyPair) {
    let key = rsa();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "estd SCEP RA");
    p.key_usages = usages;
    let der = p
        .signed_by(&key, &Issuer::from_params(ca, ca_key))
        .unwrap()
        .der()
        .to_vec();
    (der, key)
}

impl Pki {
    fn new() -> Self {
        let (ca_params, ca_key, ca_der) = ca_named("estd test CA");
        let (ra_der, ra_key) = issue_ra(
            &ca_params,
            &ca_key,
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
        );
        Self {
            ca_params,
            ca_key,
            ca_der,
            ra_der,
            ra_key,
        }
    }

    fn signer(&self) -> scep::Signer {
        signer_of(&self.ra_der, &self.ra_key)
    }

    fn recipient(&self) -> RecipientKey {
        RecipientKey {
            cert: Certificate::from_der(&self.ra_der).unwrap(),
            key: aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&self.ra_key.serialize_der())
                .unwrap(),
        }
    }

    /// A certificate of the CA for the key of this CSR, with its subject.
    fn issue(&self, csr: &[u8]) -> Vec<u8> {
        let csr = estd::est::Csr::parse(csr).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = estd::est::dn_from_name(&csr.subject).unwrap();
        let public = Public(csr.public_key.clone());
        p.signed_by(&public, &Issuer::from_params(&self.ca_params, &self.ca_key))
            .unwrap()
            .der()
            .to_vec()
    }

    fn crl(&self) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(7u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&Issuer::from_params(&self.ca_params, &self.ca_key))
        .unwrap()
        .der()
        .to_vec()
    }
}

fn signer_of(der: &[u8], key: &KeyPair) -> scep::Signer {
    scep::Signer {
        cert: Certificate::from_der(der).unwrap(),
        key: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap(),
    }
}

/// An RSA public key (subjectPublicKey bits), as rcgen wants it.
struct Public(Vec<u8>);

impl rcgen::PublicKeyData for Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

fn cn(name: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// A device: its key, a CSR with a challenge password, the self-signed requester.
fn device(name: &str) -> (KeyPair, Vec<u8>, Requester) {
    let key = rsa();
    let san = [estd::est::SanEntry::Dns(format!("{name}.example"))];
    let csr = request::csr(&key, cn(name), &san, Some("s3cret")).unwrap();
    let subject = estd::est::Csr::parse(&csr).unwrap().subject;
    let who = Requester::self_signed(&key.serialize_der(), &subject).unwrap();
    (key, csr, who)
}

/// What the server does with a request: parse, check it is what was sent, open.
fn serve(pki: &Pki, sent: &request::Sent) -> (scep::PkiMessage, Vec<u8>, Cipher) {
    let msg = scep::parse(&sent.der).expect("the server parses the request");
    assert_eq!(msg.message_type, sent.message_type);
    assert_eq!(msg.transaction_id, sent.transaction_id);
    assert_eq!(msg.sender_nonce, sent.sender_nonce);
    assert_eq!(msg.sender_nonce.len(), 16);
    assert_eq!(msg.digest, scep::Digest::Sha256);
    let (plain, cipher) = scep::open(&msg.envelope, &[pki.recipient()]).expect("it opens");
    (msg, plain, cipher)
}

#[test]
fn a_pkcsreq_is_issued_in_every_cipher() {
    let pki = Pki::new();
    let (key, csr, who) = device("dev1");
    for cipher in [Cipher::Aes128Cbc, Cipher::Aes256Cbc, Cipher::DesEde3Cbc] {
        let sent = request::pkcs_req(&csr, &who, &pki.ra_der, cipher, None).unwrap();
        let (msg, plain, used) = serve(&pki, &sent);
        assert_eq!(used, cipher);
        assert_eq!(plain, csr, "the CSR comes out as it went in");
        let parsed = estd::est::Csr::parse(&plain).unwrap();
        assert_eq!(parsed.challenge_password.as_deref(), Some("s3cret"));
        assert_eq!(parsed.public_key, key.public_key_raw());
        // the signer: self-signed, for the CSR's key and with its subject
        let signer = Certificate::from_der(&msg.signer_cert).unwrap();
        let tbs = signer.tbs_certificate();
        assert_eq!(tbs.subject(), tbs.issuer());
        assert_eq!(tbs.subject(), &parsed.subject);
        assert_eq!(
            tbs.subject_public_key_info().subject_public_key.raw_bytes(),
            key.public_key_raw()
        );
        // the default transaction ID: hex SHA-256 of the public key
        let spki = tbs.subject_public_key_info().to_der().unwrap();
        assert_eq!(
            sent.transaction_id,
            estd::est::hex(&scep::Digest::Sha256.hash(&spki))
        );
        let issued = pki.issue(&plain);
        let status = Status::Success {
            payload: Payload::Cert(issued.clone()),
            recipient: msg.signer_cert.clone(),
            cipher: used,
        };
        let rep = scep::cert_rep(&msg.echo, &status, &pki.signer()).unwrap();
        let got =
            request::read_reply(&rep, &sent, std::slice::from_ref(&pki.ra_der), &who).unwrap();
        assert_eq!(
            got,
            Reply::Success {
                certs: vec![issued],
                crls: vec![]
            }
        );
    }
    // a new nonce every time, the same transaction ID
    let a = request::pkcs_req(&csr, &who, &pki.ra_der, Cipher::Aes128Cbc, None).unwrap();
    let b = request::pkcs_req(&csr, &who, &pki.ra_der, Cipher::Aes128Cbc, Some("my-id")).unwrap();
    assert_ne!(a.sender_nonce, b.sender_nonce);
    assert_eq!(b.transaction_id, "my-id");
    assert!(request::pkcs_req(&csr, &who, &pki.ra_der, Cipher::DesCbc, None).is_err());
    assert!(request::pkcs_req(&csr, &who, &pki.ra_der, Cipher::Aes128Cbc, Some("a_b")).is_err());
}

#[test]
fn pending_and_failure_are_read_with_their_fail_info() {
    let pki = Pki::new();
    let (_, csr, who) = device("dev2");
    let sent = request::pkcs_req(&csr, &who, &pki.ra_der, Cipher::Aes128Cbc, None).unwrap();
    let (msg, _, _) = serve(&pki, &sent);
    let trusted = [pki.ra_der.clone()];
    let rep = scep::cert_rep(&msg.echo, &Status::Pending, &pki.signer()).unwrap();
    assert_eq!(
        request::read_reply(&rep, &sent, &trusted, &who).unwrap(),
        Reply::Pending
    );
    for f in [
        FailInfo::BadAlg,
        FailInfo::BadMessageCheck,
        FailInfo::BadRequest,
        FailInfo::BadTime,
        FailInfo::BadCertId,
    ] {
        let rep = scep::cert_rep(&msg.echo, &Status::Failure(f), &pki.signer()).unwrap();
        assert_eq!(
            request::read_reply(&rep, &sent, &trusted, &who).unwrap(),
            Reply::Failure(Some(f))
        );
    }
}

#[test]
fn replies_for_another_request_or_by_another_key_are_refused() {
    let pki = Pki::new();
    let (_, csr, who) = device("dev3");
    let sent = request::pkcs_req(&csr, &who, &pki.ra_der, Cipher::Aes128Cbc, None).unwrap();
    let (msg, _, _) = serve(&pki, &sent);
    let trusted = [pki.ra_der.clone()];
    let read = |rep: &[u8]| request::read_reply(rep, &sent, &trusted, &who);
    // the control: the right reply reads
    let ok = scep::cert_rep(&msg.echo, &Status::Pending, &pki.signer()).unwrap();
    assert_eq!(read(&ok).unwrap(), Reply::Pending);
    // another senderNonce echoed
    let mut echo = msg.echo.clone();
    echo.sender_nonce[0] ^= 1;
    let rep = scep::cert_rep(&echo, &Status::Pending, &pki.signer()).unwrap();
    assert!(matches!(read(&rep), Err(RequestError::Mismatch(m)) if m.contains("recipientNonce")));
    // another transactionID
    let echo = scep::Echo {
        transaction_id: der::Any::encode_from(
            &der::asn1::PrintableStringRef::new("other").unwrap(),
        )
        .unwrap(),
        sender_nonce: msg.echo.sender_nonce.clone(),
    };
    let rep = scep::cert_rep(&echo, &Status::Pending, &pki.signer()).unwrap();
    assert!(matches!(read(&rep), Err(RequestError::Mismatch(m)) if m.contains("transactionID")));
    // signed by a stranger
    let (stranger_params, stranger_key, stranger_der) = ca_named("a stranger");
    let _ = stranger_params;
    let rep = scep::cert_rep(
        &msg.echo,
        &Status::Pending,
        &signer_of(&stranger_der, &stranger_key),
    )
    .unwrap();
    assert!(
        matches!(read(&rep), Err(RequestError::Untrusted(_))),
        "{:?}",
        read(&rep)
    );
    // signed by a look-alike: the RA's name and serial, another key (the certificate in
    // the message is never the one trusted)
    let ra = Certificate::from_der(&pki.ra_der).unwrap();
    let (fake_ca, fake_ca_key, _) = ca_named("estd test CA");
    let fake_key = rsa();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "estd SCEP RA");
    p.serial_number = Some(rcgen::SerialNumber::from_slice(
        ra.tbs_certificate().serial_number().as_bytes(),
    ));
    let fake = p
        .signed_by(&fake_key, &Issuer::from_params(&fake_ca, &fake_ca_key))
        .unwrap();
    let rep = scep::cert_rep(
        &msg.echo,
        &Status::Pending,
        &signer_of(fake.der(), &fake_key),
    )
    .unwrap();
    match read(&rep) {
        Err(RequestError::Untrusted(m)) => assert!(m.contains("does not verify"), "{m}"),
        other => panic!("{other:?}"),
    }
    // a byte of the signed attributes changed: the pkiStatus 3 made 2
    let status = [
        0x06, 0x0a, 0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x03, 0x31, 0x03, 0x13,
        0x01, b'3',
    ];
    let at = ok.windows(status.len()).position(|w| w == status).unwrap() + status.len() - 1;
    let mut tampered = ok.clone();
    tampered[at] = b'2';
    assert!(matches!(read(&tampered), Err(RequestError::Untrusted(_))));
    // a request is no reply, and junk is no CertRep
    assert!(read(&sent.der).is_err());
    assert!(matches!(read(b"junk"), Err(RequestError::Malformed(_))));
    // a SUCCESS enveloped for someone else does not open
    let (_, _, other) = device("other");
    let issued = pki.issue(&csr);
    let status = Status::Success {
        payload: Payload::Cert(issued),
        recipient: der::Encode::to_der(other.certificate()).unwrap(),
        cipher: Cipher::Aes128Cbc,
    };
    let rep = scep::cert_rep(&msg.echo, &status, &pki.signer()).unwrap();
    assert!(matches!(read(&rep), Err(RequestError::Malformed(m)) if m.contains("envelope")));
}

#[test]
fn renewal_poll_getcert_and_getcrl() {
    let pki = Pki::new();
    let (key, csr, first) = device("dev4");
    let issued = pki.issue(&csr);
    let current = Requester::new(&issued, &key.serialize_der()).unwrap();
    assert!(
        Requester::new(&issued, &rsa().serialize_der()).is_err(),
        "another key"
    );
    let trusted = [pki.ra_der.clone()];
    // RenewalReq, a new key, signed by the current certificate
    let new_key = rsa();
    let old = Certificate::from_der(&issued).unwrap();
    let dn = estd::est::dn_from_name(old.tbs_certificate().subject()).unwrap();
    let new_csr = request::csr(&new_key, dn, &[], None).unwrap();
    let sent =
        request::renewal_req(&new_csr, &current, &pki.ra_der, Cipher::Aes256Cbc, None).unwrap();
    let (msg, plain, cipher) = serve(&pki, &sent);
    assert_eq!(msg.signer_cert, issued);
    assert_eq!(plain, new_csr);
    let renewed = pki.issue(&plain);
    let status = Status::Success {
        payload: Payload::Cert(renewed.clone()),
        recipient: msg.signer_cert.clone(),
        cipher,
    };
    let rep = scep::cert_rep(&msg.echo, &status, &pki.signer()).unwrap();
    match request::read_reply(&rep, &sent, &trusted, &current).unwrap() {
        Reply::Success { certs, .. } => assert_eq!(certs, vec![renewed]),
        other => panic!("{other:?}"),
    }
    // the same as a PKCSReq signed by the current certificate (certmonger)
    let sent = request::pkcs_req(&new_csr, &current, &pki.ra_der, Cipher::Aes128Cbc, None).unwrap();
    let (msg, _, _) = serve(&pki, &sent);
    assert_eq!(msg.signer_cert, issued);

    // CertPoll: IssuerAndSubject, the PKCSReq's transaction ID
    let ca = Certificate::from_der(&pki.ca_der).unwrap();
    let subject = estd::est::Csr::parse(&csr).unwrap().subject;
    let poll = request::cert_poll(
        ca.tbs_certificate().subject(),
        &subject,
        &first,
        &pki.ra_der,
        Cipher::Aes128Cbc,
        "txid-1",
    )
    .unwrap();
    let (msg, plain, _) = serve(&pki, &poll);
    assert_eq!(msg.transaction_id, "txid-1");
    let names: Vec<x509_cert::name::Name> = Vec::from_der(&plain).unwrap();
    assert_eq!(names, vec![ca.tbs_certificate().subject().clone(), subject]);

    // GetCert: IssuerAndSerialNumber of what is asked
    let wanted = Certificate::from_der(&issued).unwrap();
    let serial = wanted.tbs_certificate().serial_number();
    let sent = request::get_cert(
        ca.tbs_certificate().subject(),
        serial,
        &current,
        &pki.ra_der,
        Cipher::Aes128Cbc,
    )
    .unwrap();
    let (msg, plain, cipher) = serve(&pki, &sent);
    let ias = cms::cert::IssuerAndSerialNumber::from_der(&plain).unwrap();
    assert_eq!(
        (&ias.issuer, &ias.serial_number),
        (ca.tbs_certificate().subject(), serial)
    );
    let status = Status::Success {
        payload: Payload::Cert(issued.clone()),
        recipient: msg.signer_cert.clone(),
        cipher,
    };
    let rep = scep::cert_rep(&msg.echo, &status, &pki.signer()).unwrap();
    assert_eq!(
        request::read_reply(&rep, &sent, &trusted, &current).unwrap(),
        Reply::Success {
            certs: vec![issued.clone()],
            crls: vec![]
        }
    );

    // GetCRL: the CRL comes back as a CRL
    let tbs = current.certificate().tbs_certificate();
    let sent = request::get_crl(
        tbs.issuer(),
        tbs.serial_number(),
        &current,
        &pki.ra_der,
        Cipher::Aes128Cbc,
    )
    .unwrap();
    let (msg, plain, cipher) = serve(&pki, &sent);
    assert_eq!(msg.message_type, MessageType::GetCrl);
    let ias = cms::cert::IssuerAndSerialNumber::from_der(&plain).unwrap();
    assert_eq!(&ias.serial_number, tbs.serial_number());
    let crl = pki.crl();
    let status = Status::Success {
        payload: Payload::Crl(crl.clone()),
        recipient: msg.signer_cert.clone(),
        cipher,
    };
    let rep = scep::cert_rep(&msg.echo, &status, &pki.signer()).unwrap();
    assert_eq!(
        request::read_reply(&rep, &sent, &trusted, &current).unwrap(),
        Reply::Success {
            certs: vec![],
            crls: vec![crl]
        }
    );
}

#[test]
fn ca_certs_keep_their_order_and_the_ra_is_found() {
    let pki = Pki::new();
    let client = {
        let (_, csr, _) = device("dev5");
        pki.issue(&csr)
    };
    // degenerate PKCS#7 of 2 and 3 certificates, in every order: read back as put
    let three = [pki.ra_der.clone(), pki.ca_der.clone(), client];
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
        let certs: Vec<&[u8]> = order.iter().map(|&i| three[i].as_slice()).collect();
        let p7 = scep::reply::degenerate(&certs, &[]).unwrap();
        let back = request::degenerate_contents(&p7).unwrap();
        assert_eq!(
            back.certs,
            certs.iter().map(|c| c.to_vec()).collect::<Vec<_>>(),
            "{order:?}"
        );
        let two = scep::reply::degenerate(&certs[..2], &[]).unwrap();
        assert_eq!(request::degenerate_contents(&two).unwrap().certs.len(), 2);
    }
    // RA first or CA first: the RA is the RA
    for (first, second) in [(&pki.ra_der, &pki.ca_der), (&pki.ca_der, &pki.ra_der)] {
        let p7 = scep::reply::degenerate(&[first, second], &[]).unwrap();
        let got = request::ca_certs("application/x-x509-ca-ra-cert", &p7).unwrap();
        assert_eq!(got.all, vec![first.clone(), second.clone()]);
        assert_eq!(got.encryption, pki.ra_der);
        assert_eq!(got.signing, pki.ra_der);
        assert_eq!(got.ca, pki.ca_der);
        got.verify_chain().unwrap();
    }
    // one certificate: the CA does everything
    let one = request::ca_certs("application/x-x509-ca-cert", &pki.ca_der).unwrap();
    assert_eq!(
        (&one.ca, &one.encryption, &one.signing),
        (&pki.ca_der, &pki.ca_der, &pki.ca_der)
    );
    // two RA certificates, one to sign and one to decrypt
    let (sign_ra, _) = issue_ra(
        &pki.ca_params,
        &pki.ca_key,
        vec![KeyUsagePurpose::DigitalSignature],
    );
    let (enc_ra, _) = issue_ra(
        &pki.ca_params,
        &pki.ca_key,
        vec![KeyUsagePurpose::KeyEncipherment],
    );
    let got = request::pick(vec![pki.ca_der.clone(), sign_ra.clone(), enc_ra.clone()]).unwrap();
    assert_eq!(
        (got.signing, got.encryption, got.ca),
        (sign_ra, enc_ra, pki.ca_der.clone())
    );
    // an RA from another CA of the same name does not chain to this one
    let (other_ca, other_key, _) = ca_named("estd test CA");
    let (foreign, _) = issue_ra(
        &other_ca,
        &other_key,
        vec![KeyUsagePurpose::KeyEncipherment],
    );
    let got = request::pick(vec![foreign, pki.ca_der.clone()]).unwrap();
    assert_eq!(got.ca, pki.ca_der);
    assert!(got.verify_chain().is_err());
    assert!(request::ca_certs("application/x-x509-ca-cert", b"junk").is_err());
    assert!(request::pick(vec![]).is_err());
}

#[test]
fn micromdms_cert_rep_is_read() {
    let req = include_bytes!("fixtures/scep/pkcsreq-scepclient-2.1.0.der");
    let rep = include_bytes!("fixtures/scep/certrep-success-micromdm-2.1.0.der");
    let msg = scep::parse(req).unwrap();
    let pem = std::fs::read("tests/fixtures/scep/client-key.pem").unwrap();
    let pkcs1 = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|k: rustls_pki_types::PrivatePkcs1KeyDer| k.secret_pkcs1_der().to_vec())
        .unwrap();
    let pkcs8 = estd::client::wire::key_to_pkcs8(&pkcs1).unwrap();
    let who = Requester::new(&msg.signer_cert, &pkcs8).unwrap();
    let sent = request::Sent {
        message_type: MessageType::PkcsReq,
        transaction_id: msg.transaction_id.clone(),
        sender_nonce: msg.sender_nonce.clone(),
        der: req.to_vec(),
    };
    let ca = Certificate::from_pem(include_str!("fixtures/scep/scep-ca.pem")).unwrap();
    let trusted = [ca.to_der().unwrap()];
    let issued = Certificate::from_pem(include_str!("fixtures/scep/client-issued.pem")).unwrap();
    match request::read_reply(rep, &sent, &trusted, &who).unwrap() {
        Reply::Success { certs, .. } => assert_eq!(certs[0], issued.to_der().unwrap()),
        other => panic!("{other:?}"),
    }
    // with another nonce it is not ours
    let mut other = sent.clone();
    other.sender_nonce[0] ^= 1;
    assert!(request::read_reply(rep, &other, &trusted, &who).is_err());
}

/// Runs openssl in `dir`; its stdout, or a panic with its stderr.
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

#[test]
fn openssl_verifies_and_decrypts_our_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new();
    std::fs::write(d.join("ra.pem"), estd::est::pem("CERTIFICATE", &pki.ra_der)).unwrap();
    std::fs::write(d.join("ra.key"), pki.ra_key.serialize_pem()).unwrap();
    let (_, csr, who) = device("dev6");
    for (cipher, name) in [
        (Cipher::Aes128Cbc, "aes-128-cbc"),
        (Cipher::Aes256Cbc, "aes-256-cbc"),
        (Cipher::DesEde3Cbc, "des-ede3-cbc"),
    ] {
        let sent = request::pkcs_req(&csr, &who, &pki.ra_der, cipher, None).unwrap();
        std::fs::write(d.join("req.der"), &sent.der).unwrap();
        let printed = openssl(
            &[
                "cms", "-cmsout", "-print", "-inform", "DER", "-in", "req.der",
            ],
            d,
        );
        let printed = String::from_utf8_lossy(&printed);
        assert!(printed.contains(&sent.transaction_id), "{printed}");
        openssl(
            &[
                "cms",
                "-verify",
                "-noverify",
                "-inform",
                "DER",
                "-in",
                "req.der",
                "-binary",
                "-out",
                "env.der",
            ],
            d,
        );
        let env = openssl(
            &[
                "cms", "-cmsout", "-print", "-inform", "DER", "-in", "env.der",
            ],
            d,
        );
        assert!(String::from_utf8_lossy(&env).contains(name), "{name}");
        openssl(
            &[
                "cms", "-decrypt", "-inform", "DER", "-in", "env.der", "-inkey", "ra.key",
                "-recip", "ra.pem", "-binary", "-out", "csr.der",
            ],
            d,
        );
        assert_eq!(std::fs::read(d.join("csr.der")).unwrap(), csr);
        openssl(
            &[
                "req", "-inform", "DER", "-in", "csr.der", "-noout", "-verify",
            ],
            d,
        );
    }
    // a tampered request does not verify
    let sent = request::pkcs_req(&csr, &who, &pki.ra_der, Cipher::Aes128Cbc, None).unwrap();
    let mut bad = sent.der.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(d.join("bad.der"), &bad).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-noverify",
            "-inform",
            "DER",
            "-in",
            "bad.der",
            "-binary",
            "-out",
            "x",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[path = "scep_client/cli.rs"]
mod cli;
