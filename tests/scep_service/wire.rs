//! Messages the reply cannot be delivered for, GetCert and GetCRL, the HTTP layer (paths,
//! templates, operations, bodies, GET encodings, media types) and a flood of failures from
//! one address against the audit log.

use super::*;
use base64::Engine;
use estd::scep_wire::MessageType;

/// A PKCSReq for `csr` signed with the EC key `key` by a self-signed certificate of it (the
/// client's builder signs with RSA only): what a client with an EC key sends.
fn ec_pkcs_req(t: &T, key: &KeyPair, csr: &[u8], txid: &str) -> Sent {
    use cms::cert::IssuerAndSerialNumber;
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{
        CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
        SignerInfos,
    };
    use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
    use der::{Any, Encode};
    use estd::scep_wire::{Digest, oid, reply};
    use x509_cert::spki::AlgorithmIdentifierOwned;

    let subject = estd::est::Csr::parse(csr).unwrap().subject;
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = estd::est::dn_from_name(&subject).unwrap();
    let cert = Certificate::from_der(p.self_signed(key).unwrap().der()).unwrap();
    let envelope = reply::envelope_to(csr, &t.ra, Cipher::Aes128Cbc).unwrap();
    let nonce = vec![0x42; 16];
    let mut attrs = SetOfVec::new();
    for a in [
        reply::attribute(oid::CONTENT_TYPE, Any::encode_from(&oid::DATA).unwrap()),
        reply::attribute(
            oid::MESSAGE_DIGEST,
            reply::octets(&Digest::Sha256.hash(&envelope)).unwrap(),
        ),
        reply::attribute(oid::MESSAGE_TYPE, reply::printable("19").unwrap()),
        reply::attribute(oid::TRANSACTION_ID, reply::printable(txid).unwrap()),
        reply::attribute(oid::SENDER_NONCE, reply::octets(&nonce).unwrap()),
    ] {
        attrs.insert(a.unwrap()).unwrap();
    }
    let signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &key.serialize_der(),
    )
    .unwrap();
    let signature = signer
        .sign(
            &aws_lc_rs::rand::SystemRandom::new(),
            &attrs.to_der().unwrap(),
        )
        .unwrap();
    let sha256 = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
        parameters: None,
    };
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate().issuer().clone(),
            serial_number: cert.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            parameters: None,
        },
        signature: OctetString::new(signature.as_ref()).unwrap(),
        unsigned_attrs: None,
    };
    let mut digests = SetOfVec::new();
    digests.insert(sha256).unwrap();
    let mut certs = SetOfVec::new();
    certs
        .insert(cms::cert::CertificateChoices::Certificate(cert))
        .unwrap();
    let mut signers = SetOfVec::new();
    signers.insert(si).unwrap();
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digests,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::DATA,
            econtent: Some(reply::octets(&envelope).unwrap()),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(signers),
    };
    let der = ContentInfo {
        content_type: oid::SIGNED_DATA,
        content: Any::encode_from(&sd).unwrap(),
    }
    .to_der()
    .unwrap();
    Sent {
        message_type: MessageType::PkcsReq,
        transaction_id: txid.into(),
        sender_nonce: nonce,
        der,
    }
}

#[tokio::test]
async fn a_reply_that_cannot_be_delivered_or_a_signer_that_is_not_the_csrs_key_issues_nothing() {
    let t = setup().await;
    let c = t.challenge("scep", None, &[]).await;
    let before = t.certs().await;

    // signed by another key than the CSR's
    let key = rsa();
    let csr1 = csr(&key, "mismatch", &[], Some(c.secret.as_str()));
    let other = self_signed(&rsa(), &csr1);
    let sent = request::pkcs_req(&csr1, &other, &t.ra, Cipher::Aes128Cbc, None).unwrap();
    assert_eq!(
        t.op("scep", &sent, &other).await,
        fail(FailInfo::BadMessageCheck)
    );
    t.assert_refused_row(
        "scep-pkcsreq",
        "the message is not signed by the key of its certificate request",
    )
    .await;

    // an EC key (allowed by the template): the reply could not be encrypted to it
    let ec = KeyPair::generate().unwrap();
    let ec_csr = csr(&ec, "ec-device", &[], Some(c.secret.as_str()));
    let sent = ec_pkcs_req(&t, &ec, &ec_csr, "ec-transaction-1");
    let r = send(&t.env, post_op("scep", &sent.der)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let reader = self_signed(&key, &csr1);
    assert_eq!(
        request::read_reply(&r.body, &sent, std::slice::from_ref(&t.ra), &reader).unwrap(),
        fail(FailInfo::BadAlg)
    );
    t.assert_refused_row(
        "scep-pkcsreq",
        "the reply can be encrypted only to an RSA key",
    )
    .await;

    // enveloped to another RSA certificate than the RA's
    let who = self_signed(&key, &csr1);
    let stranger = der::Encode::to_der(other.certificate()).unwrap();
    let sent = request::pkcs_req(&csr1, &who, &stranger, Cipher::Aes128Cbc, None).unwrap();
    assert_eq!(
        t.op("scep", &sent, &who).await,
        fail(FailInfo::BadMessageCheck)
    );
    t.assert_refused_row("scep-pkcsreq", "encrypted for another recipient")
        .await;
    // enveloped to the RA, but no CSR inside
    let sent = request::request(
        MessageType::PkcsReq,
        b"not a certificate request",
        &who,
        &t.ra,
        Cipher::Aes128Cbc,
        None,
    )
    .unwrap();
    assert_eq!(
        t.op("scep", &sent, &who).await,
        fail(FailInfo::BadMessageCheck)
    );
    t.assert_refused_row("scep-pkcsreq", "does not hold a PKCS#10 request")
        .await;
    // a CertRep is no request: a signed FAILURE all the same
    let sent = request::request(
        MessageType::CertRep,
        &csr1,
        &who,
        &t.ra,
        Cipher::Aes128Cbc,
        None,
    )
    .unwrap();
    assert_eq!(t.op("scep", &sent, &who).await, fail(FailInfo::BadRequest));
    t.assert_refused_row("scep", "is not a request").await;

    assert_eq!(t.certs().await, before, "nothing issued");
    assert!(
        t.challenge_record(&c).await.used_at.is_none(),
        "refused before the challenge was used"
    );
    // the right signer and envelope: issued with the same challenge
    let sent = request::pkcs_req(&csr1, &who, &t.ra, Cipher::Aes128Cbc, None).unwrap();
    assert_eq!(
        key_of(&issued(t.op("scep", &sent, &who).await)),
        key.public_key_raw()
    );
}

fn serial_number(der: &[u8]) -> x509_cert::serial_number::SerialNumber {
    Certificate::from_der(der)
        .unwrap()
        .tbs_certificate()
        .serial_number()
        .clone()
}

#[tokio::test]
async fn getcert_gives_ones_own_certificates_and_getcrl_the_crl() {
    let t = setup().await;
    let revocation = t.env.state.revocation.clone().expect("revocation is on");
    let a = t.enroll("scep", "holder-a", &[]).await;
    let a_principal = t.last_row().await.principal.unwrap();
    let b = t.enroll("scep", "holder-b", &[]).await;
    let cipher = Cipher::Aes128Cbc;

    // its own certificate, by serial
    let sent = request::get_cert(&t.ca, &serial_number(&a.cert), &a.holder, &t.ra, cipher).unwrap();
    assert_eq!(issued(t.op("scep", &sent, &a.holder).await), a.cert);
    let row = t.last_row().await;
    assert_eq!(row.operation, "scep-getcert");
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.principal.as_deref(), Some(a_principal.as_str()));
    assert_eq!(row.serial.as_deref(), Some(a.serial.as_str()));
    // another requester's, or one that does not exist
    let sent = request::get_cert(&t.ca, &serial_number(&b.cert), &a.holder, &t.ra, cipher).unwrap();
    assert_eq!(
        t.op("scep", &sent, &a.holder).await,
        fail(FailInfo::BadCertId)
    );
    let row = t.last_row().await;
    assert_eq!(
        (row.operation.as_str(), row.outcome.as_str()),
        ("scep-getcert", "error")
    );
    assert_eq!(
        row.reason.as_deref(),
        Some(format!("no certificate {} of {a_principal}", b.serial).as_str())
    );
    let nobody = x509_cert::serial_number::SerialNumber::new(&[0x01, 0x02, 0x03]).unwrap();
    let sent = request::get_cert(&t.ca, &nobody, &a.holder, &t.ra, cipher).unwrap();
    assert_eq!(
        t.op("scep", &sent, &a.holder).await,
        fail(FailInfo::BadCertId)
    );
    // asked by a self-signed certificate
    let key = rsa();
    let stranger = self_signed(&key, &csr(&key, "holder-a", &[], None));
    let sent = request::get_cert(&t.ca, &serial_number(&a.cert), &stranger, &t.ra, cipher).unwrap();
    assert_eq!(
        t.op("scep", &sent, &stranger).await,
        fail(FailInfo::BadRequest)
    );
    t.assert_refused_row(
        "scep-getcert",
        "this message must be signed by a current certificate of this CA",
    )
    .await;

    // GetCRL: the CRL, which lists b once revoked
    let meta = estd::model::RequestMeta {
        request_id: "test".into(),
        peer: "test".into(),
        label: None,
    };
    revocation
        .revoke(&meta, &b.serial, 1, "admin", true)
        .await
        .unwrap();
    let tbs = a.holder.certificate().tbs_certificate();
    let sent =
        request::get_crl(tbs.issuer(), tbs.serial_number(), &a.holder, &t.ra, cipher).unwrap();
    let crl = match t.op("scep", &sent, &a.holder).await {
        Reply::Success { certs, mut crls } if certs.is_empty() && crls.len() == 1 => crls.remove(0),
        other => panic!("{other:?}"),
    };
    let crl: x509_cert::crl::CertificateList =
        x509_cert::crl::CertificateList::from_der(&crl).unwrap();
    assert_eq!(&crl.tbs_cert_list.issuer, &t.ca);
    let listed: Vec<String> = crl
        .tbs_cert_list
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| estd::est::hex(r.serial_number.as_bytes()))
        .collect();
    assert_eq!(listed, vec![b.serial.clone()]);
    let row = t.last_row().await;
    assert_eq!(
        (row.operation.as_str(), row.outcome.as_str()),
        ("scep-getcrl", "ok")
    );
    assert_eq!(row.principal.as_deref(), Some(a_principal.as_str()));
    // not for a self-signed certificate, nor for the revoked one
    let sent =
        request::get_crl(tbs.issuer(), tbs.serial_number(), &stranger, &t.ra, cipher).unwrap();
    assert_eq!(
        t.op("scep", &sent, &stranger).await,
        fail(FailInfo::BadRequest)
    );
    let sent =
        request::get_crl(tbs.issuer(), tbs.serial_number(), &b.holder, &t.ra, cipher).unwrap();
    assert_eq!(
        t.op("scep", &sent, &b.holder).await,
        fail(FailInfo::BadRequest)
    );
    let row = t.last_row().await;
    assert!(
        row.reason
            .as_deref()
            .is_some_and(|r| r.contains("was revoked")),
        "{row:?}"
    );
}

/// A CertPoll nobody can have made: any server answers it with a FAILURE badCertId, so it
/// shows that a message arrived whole.
fn probe(t: &T, who: &Requester) -> Sent {
    let subject = who.certificate().tbs_certificate().subject().clone();
    request::cert_poll(&t.ca, &subject, who, &t.ra, Cipher::Aes128Cbc, "probe-1").unwrap()
}

#[tokio::test]
async fn the_http_layer_finds_templates_reads_bodies_and_answers_with_exact_types() {
    let t = setup().await;
    // GetCACaps on every path a client may use, the operation's case as it comes
    for path in [
        "/scep/scep?operation=GetCACaps",
        "/scep?operation=GetCACaps",
        "/cgi-bin/pkiclient.exe?operation=GetCACaps",
        "/scep/scep/pkiclient.exe?operation=getcacaps",
        "/scep/scep/cgi-bin/pkiclient.exe?operation=GETCACAPS",
    ] {
        let r = send(&t.env, get(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.ct(), "text/plain", "{path}");
        let caps = r.raw_text();
        let lines: Vec<&str> = caps.lines().collect();
        for cap in [
            "POSTPKIOperation",
            "SHA-256",
            "SHA-512",
            "AES",
            "SCEPStandard",
            "Renewal",
        ] {
            assert!(lines.contains(&cap), "{path}: {cap} in {caps:?}");
        }
        assert!(!lines.contains(&"GetNextCACert"), "no CA rollover");
    }
    // GetCACert: the RA first, then the CA chain
    let r = send(&t.env, get("/cgi-bin/pkiclient.exe?operation=GetCACert")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.ct(), "application/x-x509-ca-ra-cert");
    let certs = request::degenerate_contents(&r.body).unwrap().certs;
    assert!(certs.len() >= 2, "the RA and the CA");
    assert_eq!(certs[0], t.ra);
    assert_eq!(
        Certificate::from_der(&certs[1])
            .unwrap()
            .tbs_certificate()
            .subject(),
        &t.ca
    );

    // templates: unknown, not serving SCEP, a name with a control character
    for (path, status) in [
        ("/scep/nosuch?operation=GetCACaps", StatusCode::NOT_FOUND),
        ("/scep/nosuch?operation=GetCACert", StatusCode::NOT_FOUND),
        ("/scep/noscep?operation=GetCACaps", StatusCode::NOT_FOUND),
        ("/scep/noscep?operation=GetCACert", StatusCode::NOT_FOUND),
        (
            "/scep/bad%07name?operation=GetCACaps",
            StatusCode::BAD_REQUEST,
        ),
        // operations
        ("/scep/scep?operation=Nonsense", StatusCode::BAD_REQUEST),
        ("/scep/scep", StatusCode::BAD_REQUEST),
        ("/scep/scep?operation=GetNextCACert", StatusCode::NOT_FOUND),
        ("/scep/scep?operation=PKIOperation", StatusCode::BAD_REQUEST),
        (
            "/scep/scep?operation=PKIOperation&message=%25%25not-base64",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = send(&t.env, get(path)).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }
    let key = rsa();
    let who = self_signed(&key, &csr(&key, "prober", &[], None));
    let sent = probe(&t, &who);
    // a PKIOperation to a template that does not serve SCEP, or does not exist
    for template in ["noscep", "nosuch"] {
        let r = send(&t.env, post_op(template, &sent.der)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{template}");
    }
    let r = send(
        &t.env,
        Request::put("/scep/scep?operation=GetCACaps")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // bodies: not DER, over the limit (declared or not), any Content-Type
    let r = send(&t.env, post_op("scep", b"not a pkiMessage")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let row = t.last_row().await;
    assert_eq!((row.operation.as_str(), row.status), ("scep", 400));
    let limit = t.env.state.max_body;
    let big = vec![0x30u8; limit + 1];
    let declared = Request::post("/scep/scep?operation=PKIOperation")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    assert_eq!(
        send(&t.env, declared).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let streamed = Request::post("/scep/scep?operation=PKIOperation")
        .body(Body::from_stream(futures_util::stream::iter(
            big.chunks(4096)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        )))
        .unwrap();
    assert_eq!(
        send(&t.env, streamed).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let read = |r: &Resp, sent: &Sent| {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.ct(), "application/x-pki-message");
        request::read_reply(&r.body, sent, std::slice::from_ref(&t.ra), &who).unwrap()
    };
    for ct in [None, Some("text/plain"), Some("application/octet-stream")] {
        let mut req = Request::post("/scep/scep?operation=PKIOperation");
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let r = send(&t.env, req.body(Body::from(sent.der.clone())).unwrap()).await;
        assert_eq!(read(&r, &sent), fail(FailInfo::BadCertId), "{ct:?}");
    }

    // by GET: the message in base64 as clients write it
    let sent = loop {
        let s = probe(&t, &who);
        let b = base64::engine::general_purpose::STANDARD.encode(&s.der);
        if b.contains('+') && b.contains('/') {
            break s;
        }
    };
    let std64 = base64::engine::general_purpose::STANDARD.encode(&sent.der);
    let url64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sent.der);
    let escaped = std64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for (how, message) in [
        ("percent-escaped", escaped.clone()),
        // '+' left as is: the query decoder makes it a space
        ("raw '+'", std64.clone()),
        ("spaces for '+'", std64.replace('+', "%20")),
        ("URL-safe, unpadded", url64),
        ("in lines", escaped.replace("%2F", "%0D%0A%2F")),
    ] {
        let path = format!("/scep/scep?operation=PKIOperation&message={message}");
        let r = send(&t.env, get(&path)).await;
        assert_eq!(read(&r, &sent), fail(FailInfo::BadCertId), "{how}");
    }
}

#[tokio::test]
async fn a_flood_of_failures_from_one_address_does_not_flood_the_audit_log() {
    const RATE: usize = 5;
    let t = setup_with("[audit]\nunauthenticated_per_minute = 5\n").await;
    // all of the flood within one minute (the limiter counts per minute)
    let minute = || {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60
    };
    let second = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second > 50 {
        tokio::time::sleep(Duration::from_secs(61 - second)).await;
    }
    let started = minute();
    // signed by another key than the CSR's: a SCEP FAILURE (badMessageCheck) each, which
    // no throttle slows
    let key = rsa();
    let flood_csr = csr(&key, "flood", &[], Some("wrong-challenge-0123456789"));
    let other = self_signed(&rsa(), &flood_csr);
    let sent = request::pkcs_req(&flood_csr, &other, &t.ra, Cipher::Aes128Cbc, None).unwrap();
    let flooder = "127.0.0.1:50000";
    for i in 0..200 {
        let r = send_from(&t.env, post_op("scep", &sent.der), flooder).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
        let reply = request::read_reply(&r.body, &sent, std::slice::from_ref(&t.ra), &other);
        assert_eq!(
            reply.unwrap(),
            fail(FailInfo::BadMessageCheck),
            "request {i}"
        );
    }
    // and wrong challenges: FAILUREs, then 429 (slowed)
    let who = self_signed(&key, &flood_csr);
    let (mut failures, mut slowed) = (0, 0);
    for _ in 0..20 {
        let wrong = request::pkcs_req(&flood_csr, &who, &t.ra, Cipher::Aes128Cbc, None).unwrap();
        let r = send_from(&t.env, post_op("scep", &wrong.der), flooder).await;
        match r.status {
            StatusCode::OK => failures += 1,
            StatusCode::TOO_MANY_REQUESTS => slowed += 1,
            other => panic!("{other}"),
        }
    }
    assert!(failures >= 5 && slowed >= 10, "{failures} {slowed}");
    let one_minute = minute() == started;
    let rows = t.rows().await;
    let failures_from = |ip: &str| {
        rows.iter()
            .filter(|r| r.peer.starts_with(ip) && r.outcome == "error")
            .count()
    };
    let scep_rows = rows
        .iter()
        .filter(|r| r.peer == flooder && r.operation.starts_with("scep"))
        .count();
    if one_minute {
        assert_eq!(scep_rows, RATE, "the rate, row by row");
        assert!(
            failures_from("127.0.0.1:") <= RATE + 1,
            "and one summary at most"
        );
    } else {
        // the minute turned during the flood: two minutes' rates and one summary
        assert!(scep_rows <= 2 * RATE, "{scep_rows}");
        assert!(failures_from("127.0.0.1:") <= 2 * RATE + 1);
    }

    // another address still gets its rows
    let second = "127.0.0.2:50001";
    for _ in 0..3 {
        let r = send_from(&t.env, post_op("scep", &sent.der), second).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let rows = t.rows().await;
    let from_other = rows
        .iter()
        .filter(|r| r.peer == second && r.operation == "scep-pkcsreq" && r.outcome == "error")
        .count();
    assert_eq!(from_other, 3);
    // and an enrollment from the flooding address is recorded all the same (under another
    // template: wrong challenges for `scep` from it are slowed for a minute)
    let c = t.challenge("scep-other", None, &[]).await;
    let (sent, who) = t.pkcs_req(&rsa(), "after-flood", &[], Some(c.secret.as_str()), None);
    let cert = issued(t.op_from("scep-other", &sent, &who, flooder).await);
    let row = t.last_row().await;
    assert_eq!(
        (
            row.operation.as_str(),
            row.outcome.as_str(),
            row.peer.as_str()
        ),
        ("scep-pkcsreq", "ok", flooder)
    );
    assert_eq!(row.serial.as_deref(), Some(serial_of(&cert).as_str()));
}

#[tokio::test]
async fn devices_of_the_static_challenge_get_only_their_own_certificates() {
    let t = setup().await;
    // two devices enrolled with the template's static challenge: one requester, scep:static
    let mut devices = Vec::new();
    for cn in ["static-a", "static-b"] {
        let key = rsa();
        let (sent, who) = t.pkcs_req(&key, cn, &[], Some("Static-Profile-Secret-1"), None);
        let cert = issued(t.op("scep", &sent, &who).await);
        assert_eq!(t.last_row().await.principal.as_deref(), Some("scep:static"));
        let holder = Requester::new(&cert, &key.serialize_der()).unwrap();
        devices.push((cert, holder));
    }
    let cipher = Cipher::Aes128Cbc;
    let (a, a_holder) = &devices[0];
    let (b, _) = &devices[1];
    let sent = request::get_cert(&t.ca, &serial_number(a), a_holder, &t.ra, cipher).unwrap();
    assert_eq!(&issued(t.op("scep", &sent, a_holder).await), a);
    // the same requester, another device's subject: not given
    let sent = request::get_cert(&t.ca, &serial_number(b), a_holder, &t.ra, cipher).unwrap();
    assert_eq!(
        t.op("scep", &sent, a_holder).await,
        fail(FailInfo::BadCertId)
    );
}

#[tokio::test]
async fn a_request_the_policy_refuses_leaves_its_challenge_unused() {
    let t = setup().await;
    let c = t.challenge("scep", None, &[]).await;
    let before = t.certs().await;
    // a name the template does not allow (dns_names = *.devices.example)
    let key = rsa();
    let (sent, who) = t.pkcs_req(
        &key,
        "dev-9",
        &["dev-9.elsewhere.example"],
        Some(c.secret.as_str()),
        None,
    );
    assert_eq!(t.op("scep", &sent, &who).await, fail(FailInfo::BadRequest));
    t.assert_refused_row("scep-pkcsreq", "dev-9.elsewhere.example")
        .await;
    assert_eq!(t.certs().await, before);
    let record = t.challenge_record(&c).await;
    assert_eq!(
        record.used_at, None,
        "a refused request leaves the challenge unused"
    );
    assert_eq!(record.used_by, None);
    // corrected, with the same challenge: issued, and now it is used
    let key = rsa();
    let (sent, who) = t.pkcs_req(
        &key,
        "dev-9",
        &["dev-9.devices.example"],
        Some(c.secret.as_str()),
        None,
    );
    issued(t.op("scep", &sent, &who).await);
    assert!(t.challenge_record(&c).await.used_at.is_some());
    assert_eq!(t.certs().await, before + 1);
}

#[tokio::test]
async fn a_challenge_used_by_a_transaction_that_did_not_finish_serves_that_transaction_only() {
    let t = setup().await;
    let c = t.challenge("scep", None, &[]).await;
    let id = t.challenge_record(&c).await.id;
    // as if estd had used it for the transaction "tx-unfinished" and then failed (the store
    // gone before the answer was recorded)
    let now = estd::model::timestamp(std::time::SystemTime::now());
    assert!(
        t.store()
            .use_challenge(id, &now, "scep:tx-unfinished")
            .await
            .unwrap()
    );
    let key = rsa();
    let (sent, who) = t.pkcs_req(
        &key,
        "dev-u",
        &[],
        Some(c.secret.as_str()),
        Some("tx-other"),
    );
    assert_eq!(t.op("scep", &sent, &who).await, fail(FailInfo::BadRequest));
    t.assert_refused_row(
        "scep-pkcsreq",
        "already used by the transaction tx-unfinished",
    )
    .await;
    let (sent, who) = t.pkcs_req(
        &key,
        "dev-u",
        &[],
        Some(c.secret.as_str()),
        Some("tx-unfinished"),
    );
    issued(t.op("scep", &sent, &who).await);
    assert_eq!(
        t.challenge_record(&c).await.used_by.as_deref(),
        Some("scep:tx-unfinished")
    );
}

#[tokio::test]
async fn a_hashed_static_challenge_is_checked_against_its_hash() {
    let phc = estd::auth::hash_password("Hashed-Profile-Secret-1").unwrap();
    let hashed = format!(
        "name = \"hashed\"\nkey_types = [\"rsa-2048\"]\nvalidity_days = 30\ncn_must_match_user = false\nscep_challenge = \"{phc}\"\n"
    );
    let t = setup_in(tempfile::tempdir().unwrap(), "", &[hashed.as_str()]).await;
    let key = rsa();
    let (sent, who) = t.pkcs_req(&key, "hashed-1", &[], Some("Hashed-Profile-Secret-1"), None);
    issued(t.op("hashed", &sent, &who).await);
    assert_eq!(t.last_row().await.principal.as_deref(), Some("scep:static"));
    // the hash itself is no password
    let key = rsa();
    let (sent, who) = t.pkcs_req(&key, "hashed-2", &[], Some(phc.as_str()), None);
    assert_eq!(
        t.op("hashed", &sent, &who).await,
        fail(FailInfo::BadRequest)
    );
    let (sent, who) = t.pkcs_req(&key, "hashed-2", &[], Some("Hashed-Profile-Secret-2"), None);
    assert_eq!(
        t.op("hashed", &sent, &who).await,
        fail(FailInfo::BadRequest)
    );
    // `estd template show` never prints it
    let shown = t.template("hashed").settings("est-users");
    assert!(!format!("{shown:?}").contains(&phc));
}
