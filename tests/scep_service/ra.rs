//! A registration authority in front of estd's SCEP server: a template's `scep_ra_signers`
//! lets a listed RA sign PKCSReqs for devices' keys (the request still needs its challenge);
//! nobody else may.

use super::*;
use estd::store::PendingState;

const VIA_RA: &str = r#"
name = "viara"
key_types = ["rsa-2048", "ec-p256"]
validity_days = 30
cn_must_match_user = false
scep_ra_signers = ["ra.pem"]
"#;

const VIA_RA_MANUAL: &str = r#"
name = "viaraman"
key_types = ["ec-p256"]
validity_days = 30
cn_must_match_user = false
approval = "manual"
scep_ra_signers = ["ra.pem"]
"#;

/// An RA: an RSA key and a self-signed certificate.
fn ra(cn: &str) -> (Requester, Vec<u8>) {
    let key = rsa();
    let name = Name::from_der(&dn_der(&key, cn)).unwrap();
    let who = Requester::self_signed(&key.serialize_der(), &name).unwrap();
    let der = der::Encode::to_der(who.certificate()).unwrap();
    (who, der)
}

/// The DER of a subject `CN=cn` (through a CSR rcgen builds).
fn dn_der(key: &KeyPair, cn: &str) -> Vec<u8> {
    let der = csr(key, cn, &[], None);
    let parsed = estd::est::Csr::parse(&der).unwrap();
    parsed.subject_der
}

async fn setup_ra() -> (T, Requester) {
    let dir = tempfile::tempdir().unwrap();
    let (who, der) = ra("registration authority");
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/ra.pem"),
        estd::est::pem("CERTIFICATE", &der),
    )
    .unwrap();
    let t = setup_in(dir, "", &[VIA_RA, VIA_RA_MANUAL]).await;
    (t, who)
}

#[tokio::test]
async fn a_listed_ra_enrolls_a_devices_key_and_nobody_else_does() {
    let (t, ra_who) = setup_ra().await;
    let c = t.challenge("viara", None, &[]).await;
    let before = t.certs().await;
    // the device's key is EC: only the RA's needs to be RSA (the reply is for the RA)
    let device = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let device_csr = csr(&device, "sensor-1", &[], Some(c.secret.as_str()));
    let sent = request::pkcs_req(
        &device_csr,
        &ra_who,
        &t.ra,
        Cipher::Aes128Cbc,
        Some("sensor-1-tx"),
    )
    .unwrap();
    let cert = issued(t.op("viara", &sent, &ra_who).await);
    assert_eq!(key_of(&cert), device.public_key_raw());
    assert_eq!(cn_of(&cert).as_deref(), Some("sensor-1"));
    assert_eq!(t.certs().await, before + 1);
    let record = t
        .store()
        .find_certificate(&serial_of(&cert))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.description,
        "via the SCEP RA CN=registration authority"
    );
    assert!(t.challenge_record(&c).await.used_at.is_some());

    // the same RA on a template that does not list it: the signer is not the CSR's key
    let c2 = t.challenge("scep", None, &[]).await;
    let device_csr = csr(&device, "sensor-2", &[], Some(c2.secret.as_str()));
    let sent =
        request::pkcs_req(&device_csr, &ra_who, &t.ra, Cipher::Aes128Cbc, Some("s2")).unwrap();
    assert_eq!(
        t.op("scep", &sent, &ra_who).await,
        fail(FailInfo::BadMessageCheck)
    );
    // another RA on the template: the same
    let (other, _) = ra("some other RA");
    let c3 = t.challenge("viara", None, &[]).await;
    let device_csr = csr(&device, "sensor-3", &[], Some(c3.secret.as_str()));
    let sent =
        request::pkcs_req(&device_csr, &other, &t.ra, Cipher::Aes128Cbc, Some("s3")).unwrap();
    assert_eq!(
        t.op("viara", &sent, &other).await,
        fail(FailInfo::BadMessageCheck)
    );
    // the listed RA still needs a challenge
    let device_csr = csr(&device, "sensor-4", &[], None);
    let sent =
        request::pkcs_req(&device_csr, &ra_who, &t.ra, Cipher::Aes128Cbc, Some("s4")).unwrap();
    assert_eq!(
        t.op("viara", &sent, &ra_who).await,
        fail(FailInfo::BadRequest)
    );
    assert_eq!(t.certs().await, before + 1);
}

#[tokio::test]
async fn an_ras_pending_request_is_polled_by_the_ra() {
    let (t, ra_who) = setup_ra().await;
    let c = t.challenge("viaraman", None, &[]).await;
    let device = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let device_csr = csr(&device, "meter-7", &[], Some(c.secret.as_str()));
    let txid = "meter-7-tx";
    let sent =
        request::pkcs_req(&device_csr, &ra_who, &t.ra, Cipher::Aes128Cbc, Some(txid)).unwrap();
    assert_eq!(t.op("viaraman", &sent, &ra_who).await, Reply::Pending);
    let subject = Name::from_der(&estd::est::Csr::parse(&device_csr).unwrap().subject_der).unwrap();
    let poll = |who: &Requester| {
        request::cert_poll(&t.ca, &subject, who, &t.ra, Cipher::Aes128Cbc, txid).unwrap()
    };
    assert_eq!(
        t.op("viaraman", &poll(&ra_who), &ra_who).await,
        Reply::Pending
    );
    let p = t
        .store()
        .list_pending(Some(PendingState::Pending))
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.template == "viaraman")
        .unwrap();
    assert!(
        t.store()
            .decide_pending(p.id, true, "admin", None)
            .await
            .unwrap()
    );
    // an RA the template does not list cannot collect it
    let (other, _) = ra("some other RA");
    assert_eq!(
        t.op("viaraman", &poll(&other), &other).await,
        fail(FailInfo::BadMessageCheck)
    );
    let cert = issued(t.op("viaraman", &poll(&ra_who), &ra_who).await);
    assert_eq!(key_of(&cert), device.public_key_raw());
}
