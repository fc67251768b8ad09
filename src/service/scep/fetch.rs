//! GetCert and GetCRL: what a holder of a current certificate of this CA may fetch.

use super::*;

impl ScepService {
    /// GetCert: a certificate of the signer's own (same requester), by serial.
    pub(super) async fn get_cert(
        &self,
        msg: &PkiMessage,
        audit: &mut Audit,
    ) -> Result<Handled, Refusal> {
        let (plain, cipher) = match scep::open(&msg.envelope, &self.ra.recipients) {
            Ok(p) => p,
            Err(e) => return Ok(Fail(e.fail, e.reason).into()),
        };
        let Ok(asked) = cms::cert::IssuerAndSerialNumber::from_der(&plain) else {
            return Ok(Fail(
                FailInfo::BadMessageCheck,
                "the envelope does not hold an IssuerAndSerialNumber".into(),
            )
            .into());
        };
        let owner = match self.holder(msg, audit).await? {
            Ok(o) => o,
            Err(f) => return Ok(f.into()),
        };
        let serial = crate::est::hex(asked.serial_number.as_bytes());
        let cert = self
            .store
            .find_certificate(&serial)
            .await
            .map_err(unavailable)?;
        // a SCEP requester (`scep:static`, `scep:challenge-7`) may stand for several
        // devices: they get certificates of their own subject only
        let signer_subject = LooseCertificate::from_der(&msg.signer_cert)
            .map(|c| c.tbs_certificate().subject().to_string())
            .unwrap_or_default();
        let mine = |c: &crate::store::CertRecord| {
            c.requester == owner
                && (!crate::auth::is_scep_requester(&owner) || c.subject == signer_subject)
        };
        match cert {
            Some(c) if mine(&c) => Ok(Handled::Answer {
                status: Status::Success {
                    payload: Payload::Cert(c.der),
                    recipient: msg.signer_cert.clone(),
                    cipher,
                },
                serial: Some(c.serial),
                recorded: false,
                note: None,
            }),
            _ => Ok(Fail(
                FailInfo::BadCertId,
                format!("no certificate {serial} of {owner}"),
            )
            .into()),
        }
    }

    /// GetCRL: the CRL, to a holder of a current certificate of this CA.
    pub(super) async fn get_crl(
        &self,
        msg: &PkiMessage,
        audit: &mut Audit,
    ) -> Result<Handled, Refusal> {
        let cipher = match scep::open(&msg.envelope, &self.ra.recipients) {
            Ok((_, c)) => c,
            Err(e) => return Ok(Fail(e.fail, e.reason).into()),
        };
        if let Err(f) = self.holder(msg, audit).await? {
            return Ok(f.into());
        }
        let Some(revocation) = &self.revocation else {
            return Ok(
                Fail::bad_request("this server keeps no CRL (revocation.listen is off)").into(),
            );
        };
        let crl = revocation
            .crl()
            .await
            .map_err(|e| Refusal::Internal(format!("the CRL: {e}")))?;
        Ok(Handled::Answer {
            status: Status::Success {
                payload: Payload::Crl(crl.to_vec()),
                recipient: msg.signer_cert.clone(),
                cipher,
            },
            serial: None,
            recorded: false,
            note: None,
        })
    }

    /// The requester behind a message signed by a current certificate of this CA (GetCert,
    /// GetCRL).
    async fn holder(
        &self,
        msg: &PkiMessage,
        audit: &mut Audit,
    ) -> Result<Result<String, Fail>, Refusal> {
        let signer = match LooseCertificate::from_der(&msg.signer_cert) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(Fail::bad_request(format!(
                    "unreadable signer certificate: {e}"
                ))));
            }
        };
        match self.current_certificate(&signer, &msg.signer_cert).await? {
            Ok(true) => {}
            Ok(false) => {
                return Ok(Err(Fail::bad_request(
                    "this message must be signed by a current certificate of this CA",
                )));
            }
            Err(f) => return Ok(Err(f)),
        }
        if let Some(f) = unencryptable(msg) {
            return Ok(Err(f));
        }
        match self.enroll.authenticate_certificate(&msg.signer_cert).await {
            Ok(p) => {
                audit.principal = Some(p.name.clone());
                Ok(Ok(p.name))
            }
            Err(e) => Ok(Err(refused(e)?)),
        }
    }
}
