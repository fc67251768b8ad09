//! Transactions over time: a request waiting for approval, replayed under its transactionID
//! with other keys, polled by its key only; renewal by the issued certificate itself, never
//! by a look-alike, a self-signed or a revoked one.

use super::*;
use estd::store::PendingState;

/// CertPoll for the request of `subject` under `txid`, signed by `who`.
fn poll(t: &T, subject: &Name, who: &Requester, txid: &str) -> Sent {
    request::cert_poll(&t.ca, subject, who, &t.ra, Cipher::Aes128Cbc, txid).unwrap()
}

fn subject_of(who: &Requester) -> Name {
    who.certificate().tbs_certificate().subject().clone()
}

/// The one request of `template` still pending.
async fn pending_of(t: &T, template: &str) -> estd::store::PendingRecord {
    let mut waiting: Vec<_> = t
        .store()
        .list_pending(Some(PendingState::Pending))
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.template == template)
        .collect();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    waiting.remove(0)
}

#[tokio::test]
async fn a_waiting_transaction_stays_with_its_key_and_is_fetched_by_that_key_only() {
    let t = setup().await;
    let c = t.challenge("scepman", None, &[]).await;
    let principal = format!("scep:challenge-{}", c.id);
    let key = rsa();
    let txid = "victim-transaction-1";
    let (sent, who) = t.pkcs_req(&key, "waiting-1", &[], Some(c.secret.as_str()), Some(txid));
    assert_eq!(t.op("scepman", &sent, &who).await, Reply::Pending);
    let row = t.last_row().await;
    assert_eq!(row.operation, "scep-pkcsreq");
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.principal.as_deref(), Some(principal.as_str()));
    let p = pending_of(&t, "scepman").await;
    assert_eq!(p.requester, principal);
    assert!(
        row.reason
            .as_deref()
            .is_some_and(|r| r.contains(&format!("request {} waits for manual approval", p.id))),
        "{row:?}"
    );
    let before = t.certs().await;

    // the attacker: a challenge of its own, another key, the victim's transactionID
    let c2 = t.challenge("scepman", None, &[]).await;
    let attacker = rsa();
    let (evil, evil_who) = t.pkcs_req(
        &attacker,
        "waiting-1",
        &[],
        Some(c2.secret.as_str()),
        Some(txid),
    );
    assert_eq!(
        t.op("scepman", &evil, &evil_who).await,
        fail(FailInfo::BadRequest)
    );
    t.assert_refused_row(
        "scep-pkcsreq",
        &format!("the transactionID {txid} was used with another key"),
    )
    .await;
    assert!(
        t.challenge_record(&c2).await.used_at.is_none(),
        "the refused replay does not use up the attacker's challenge"
    );
    // with no challenge at all: the same
    let (evil, evil_who) = t.pkcs_req(&attacker, "waiting-1", &[], None, Some(txid));
    assert_eq!(
        t.op("scepman", &evil, &evil_who).await,
        fail(FailInfo::BadRequest)
    );
    // the original still waits, and sent again it is still PENDING
    assert_eq!(
        t.store().get_pending(p.id).await.unwrap().unwrap().state,
        PendingState::Pending
    );
    assert_eq!(t.op("scepman", &sent, &who).await, Reply::Pending);

    let subject = subject_of(&who);
    // polled by the attacker's key: not its request
    let evil_poll = poll(&t, &subject, &evil_who, txid);
    assert_eq!(
        t.op("scepman", &evil_poll, &evil_who).await,
        fail(FailInfo::BadMessageCheck)
    );
    t.assert_refused_row(
        "scep-certpoll",
        "the poll is not signed by the key of the request it names",
    )
    .await;
    // polled by its own key: still waiting
    let own = poll(&t, &subject, &who, txid);
    assert_eq!(t.op("scepman", &own, &who).await, Reply::Pending);
    // a transactionID nobody used
    let unknown = poll(&t, &subject, &who, "no-such-transaction");
    assert_eq!(
        t.op("scepman", &unknown, &who).await,
        fail(FailInfo::BadCertId)
    );
    t.assert_refused_row("scep-certpoll", "no request with this transactionID")
        .await;
    assert_eq!(t.certs().await, before);

    // approved: the attacker's poll still gets nothing, the owner's gets the certificate
    assert!(
        t.store()
            .decide_pending(p.id, true, "admin", None)
            .await
            .unwrap()
    );
    assert_eq!(
        t.op("scepman", &evil_poll, &evil_who).await,
        fail(FailInfo::BadMessageCheck)
    );
    assert_eq!(t.certs().await, before, "nothing issued to the attacker");
    let cert = issued(t.op("scepman", &poll(&t, &subject, &who, txid), &who).await);
    assert_eq!(key_of(&cert), key.public_key_raw());
    assert_eq!(cn_of(&cert).as_deref(), Some("waiting-1"));
    assert_eq!(t.certs().await, before + 1);
    let row = t.last_row().await;
    assert_eq!(row.operation, "scep-pkcsreq", "{row:?}");
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.principal.as_deref(), Some(principal.as_str()));
    assert_eq!(row.serial.as_deref(), Some(serial_of(&cert).as_str()));
    assert_eq!(
        row.reason.as_deref(),
        Some(format!("approved request {}", p.id).as_str())
    );
    assert_eq!(
        t.store().get_pending(p.id).await.unwrap().unwrap().state,
        PendingState::Issued
    );
    // polled again, or the PKCSReq sent again: the same certificate, nothing new
    assert_eq!(issued(t.op("scepman", &own, &who).await), cert);
    assert_eq!(issued(t.op("scepman", &sent, &who).await), cert);
    assert_eq!(t.certs().await, before + 1);
}

#[tokio::test]
async fn a_rejected_request_is_told_so_on_its_poll() {
    let t = setup().await;
    let c = t.challenge("scepman", None, &[]).await;
    let key = rsa();
    let (sent, who) = t.pkcs_req(&key, "rejected-1", &[], Some(c.secret.as_str()), None);
    assert_eq!(t.op("scepman", &sent, &who).await, Reply::Pending);
    let p = pending_of(&t, "scepman").await;
    assert!(
        t.store()
            .decide_pending(p.id, false, "admin", Some("not ours"))
            .await
            .unwrap()
    );
    let before = t.certs().await;
    let polled = poll(&t, &subject_of(&who), &who, &sent.transaction_id);
    assert_eq!(
        t.op("scepman", &polled, &who).await,
        fail(FailInfo::BadRequest)
    );
    let row = t.last_row().await;
    assert_eq!(row.operation, "scep-certpoll");
    assert_eq!(row.outcome, "error");
    assert_eq!(
        row.reason.as_deref(),
        Some(format!("the certificate request {} was rejected: not ours", p.id).as_str())
    );
    assert_eq!(t.certs().await, before);
}

/// The victim's transactionID is no secret: by default it is the hash of its public key,
/// which its self-signed certificate shows to anyone on the path. A holder of any current
/// certificate of this CA sends a RenewalReq under it to the victim's template.
#[tokio::test]
async fn a_renewal_under_another_keys_transaction_id_does_not_take_it_over() {
    let t = setup().await;
    let c = t.challenge("scepman", None, &[]).await;
    let key = rsa();
    let (sent, who) = t.pkcs_req(&key, "victim-2", &[], Some(c.secret.as_str()), None);
    assert_eq!(t.op("scepman", &sent, &who).await, Reply::Pending);
    let p = pending_of(&t, "scepman").await;

    let attacker = t.enroll("scep", "attacker-2", &[]).await;
    let subject = Certificate::from_der(&attacker.cert)
        .unwrap()
        .tbs_certificate()
        .subject()
        .clone();
    let new_key = rsa();
    let renewal_csr = request::csr(
        &new_key,
        estd::est::dn_from_name(&subject).unwrap(),
        &[],
        None,
    )
    .unwrap();
    let evil = request::renewal_req(
        &renewal_csr,
        &attacker.holder,
        &t.ra,
        Cipher::Aes128Cbc,
        Some(sent.transaction_id.as_str()),
    )
    .unwrap();
    let answer = t.op("scepman", &evil, &attacker.holder).await;
    assert!(
        matches!(answer, Reply::Failure(_)),
        "a certificate of template scep does not renew under scepman: {answer:?}"
    );

    // the victim's request, approved, is still the victim's
    assert!(
        t.store()
            .decide_pending(p.id, true, "admin", None)
            .await
            .unwrap()
    );
    let polled = poll(&t, &subject_of(&who), &who, &sent.transaction_id);
    let cert = issued(t.op("scepman", &polled, &who).await);
    assert_eq!(key_of(&cert), key.public_key_raw());
}

/// A CSR for `key` with the subject and DNS SANs of a certificate being renewed.
fn renewal_csr(key: &KeyPair, cert: &[u8], dns: &[&str]) -> Vec<u8> {
    let c = Certificate::from_der(cert).unwrap();
    let san: Vec<estd::est::SanEntry> = dns
        .iter()
        .map(|d| estd::est::SanEntry::Dns((*d).into()))
        .collect();
    let dn = estd::est::dn_from_name(c.tbs_certificate().subject()).unwrap();
    request::csr(key, dn, &san, None).unwrap()
}

fn renewal(t: &T, csr: &[u8], who: &Requester) -> Sent {
    request::renewal_req(csr, who, &t.ra, Cipher::Aes128Cbc, None).unwrap()
}

#[tokio::test]
async fn renewal_is_by_the_issued_certificate_itself() {
    let t = setup().await;
    let dns = ["renew-1.devices.example"];
    let dev = t.enroll("scep", "renew-1", &dns).await;
    let principal = t
        .last_row()
        .await
        .principal
        .expect("the challenge's principal");
    let before = t.certs().await;

    // RenewalReq: a new key, signed by the current certificate
    let k2 = rsa();
    let sent = renewal(&t, &renewal_csr(&k2, &dev.cert, &dns), &dev.holder);
    let renewed = issued(t.op("scep", &sent, &dev.holder).await);
    assert_ne!(serial_of(&renewed), dev.serial);
    assert_eq!(key_of(&renewed), k2.public_key_raw());
    assert_eq!(
        Certificate::from_der(&renewed)
            .unwrap()
            .tbs_certificate()
            .subject(),
        Certificate::from_der(&dev.cert)
            .unwrap()
            .tbs_certificate()
            .subject()
    );
    assert_eq!(t.certs().await, before + 1);
    let row = t.last_row().await;
    assert_eq!(row.operation, "scep-renewal", "{row:?}");
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.principal.as_deref(), Some(principal.as_str()));
    assert_eq!(row.serial.as_deref(), Some(serial_of(&renewed).as_str()));
    assert_eq!(
        row.reason.as_deref(),
        Some(format!("renews {}", dev.serial).as_str())
    );
    // a PKCSReq signed by the current certificate (certmonger): a renewal too
    let k2b = rsa();
    let csr2b = renewal_csr(&k2b, &dev.cert, &dns);
    let sent = request::pkcs_req(&csr2b, &dev.holder, &t.ra, Cipher::Aes256Cbc, None).unwrap();
    let again = issued(t.op("scep", &sent, &dev.holder).await);
    assert_eq!(key_of(&again), k2b.public_key_raw());
    assert_eq!(t.last_row().await.operation, "scep-renewal");
    let before = t.certs().await;

    // another subject
    let k3 = rsa();
    let other = csr(&k3, "someone-else", &dns, None);
    let sent = renewal(&t, &other, &dev.holder);
    assert_eq!(
        t.op("scep", &sent, &dev.holder).await,
        fail(FailInfo::BadRequest)
    );
    let row = t.last_row().await;
    assert_eq!(
        (row.operation.as_str(), row.outcome.as_str()),
        ("scep-renewal", "error")
    );
    assert!(
        row.reason
            .as_deref()
            .is_some_and(|r| r.contains("the CSR Subject differs")),
        "{row:?}"
    );
    assert_eq!(t.certs().await, before);

    // a look-alike: the issued certificate's issuer name and serial, its own key
    let fake_key = rsa();
    let mut fake_ca = rcgen::CertificateParams::default();
    fake_ca.distinguished_name = estd::est::dn_from_name(&t.ca).unwrap();
    let mut p = rcgen::CertificateParams::default();
    let real = Certificate::from_der(&dev.cert).unwrap();
    p.distinguished_name = estd::est::dn_from_name(real.tbs_certificate().subject()).unwrap();
    p.serial_number = Some(rcgen::SerialNumber::from_slice(
        real.tbs_certificate().serial_number().as_bytes(),
    ));
    let fake = p
        .signed_by(&fake_key, &rcgen::Issuer::from_params(&fake_ca, &fake_key))
        .unwrap()
        .der()
        .to_vec();
    let parsed = Certificate::from_der(&fake).unwrap();
    assert_eq!(
        parsed.tbs_certificate().issuer(),
        real.tbs_certificate().issuer()
    );
    assert_eq!(serial_of(&fake), dev.serial);
    let fake_holder = Requester::new(&fake, &fake_key.serialize_der()).unwrap();
    let k4 = rsa();
    let sent = renewal(&t, &renewal_csr(&k4, &dev.cert, &dns), &fake_holder);
    assert_eq!(
        t.op("scep", &sent, &fake_holder).await,
        fail(FailInfo::BadCertId)
    );
    t.assert_refused_row(
        "scep-renewal",
        &format!(
            "the signer certificate (serial {}) was not issued by this CA",
            dev.serial
        ),
    )
    .await;
    // as a PKCSReq (certmonger's way) too
    let sent = request::pkcs_req(
        &renewal_csr(&k4, &dev.cert, &dns),
        &fake_holder,
        &t.ra,
        Cipher::Aes128Cbc,
        None,
    )
    .unwrap();
    assert_eq!(
        t.op("scep", &sent, &fake_holder).await,
        fail(FailInfo::BadCertId)
    );
    assert_eq!(t.certs().await, before);

    // signed by a self-signed certificate
    let k5 = rsa();
    let csr5 = renewal_csr(&k5, &dev.cert, &dns);
    let own = self_signed(&k5, &csr5);
    assert_eq!(
        t.op("scep", &renewal(&t, &csr5, &own), &own).await,
        fail(FailInfo::BadRequest)
    );
    t.assert_refused_row(
        "scep-renewal",
        "a RenewalReq must be signed by the certificate being renewed",
    )
    .await;
    assert_eq!(t.certs().await, before);

    // revoked: neither a RenewalReq nor a PKCSReq signed by it renews
    let meta = estd::model::RequestMeta {
        request_id: "test".into(),
        peer: "test".into(),
        label: None,
    };
    let revocation = t.env.state.revocation.as_ref().expect("revocation on");
    revocation
        .revoke(&meta, &serial_of(&renewed), 1, "admin", true)
        .await
        .unwrap();
    let holder2 = Requester::new(&renewed, &k2.serialize_der()).unwrap();
    let k6 = rsa();
    let csr6 = renewal_csr(&k6, &renewed, &dns);
    for sent in [
        renewal(&t, &csr6, &holder2),
        request::pkcs_req(&csr6, &holder2, &t.ra, Cipher::Aes128Cbc, None).unwrap(),
    ] {
        assert_eq!(
            t.op("scep", &sent, &holder2).await,
            fail(FailInfo::BadRequest)
        );
        let row = t.last_row().await;
        assert_eq!(
            (row.operation.as_str(), row.outcome.as_str()),
            ("scep-renewal", "error")
        );
        assert!(
            row.reason
                .as_deref()
                .is_some_and(|r| r.contains("was revoked")),
            "{row:?}"
        );
    }
    assert_eq!(t.certs().await, before);
}

#[tokio::test]
async fn a_renewal_keeping_its_key_and_its_lost_answer() {
    let t = setup().await;
    let dev = t.enroll("scep", "rekeyless", &[]).await;
    let before = t.certs().await;
    // the same key, the same (default) transactionID as the first request
    let sent = renewal(&t, &renewal_csr(&dev.key, &dev.cert, &[]), &dev.holder);
    let renewed = issued(t.op("scep", &sent, &dev.holder).await);
    assert_ne!(serial_of(&renewed), dev.serial);
    assert_eq!(key_of(&renewed), dev.key.public_key_raw());
    assert_eq!(t.certs().await, before + 1);
    // its answer lost: sent again, the same renewed certificate
    let again = issued(t.op("scep", &sent, &dev.holder).await);
    assert_eq!(serial_of(&again), serial_of(&renewed));
    assert_eq!(t.certs().await, before + 1);
}
