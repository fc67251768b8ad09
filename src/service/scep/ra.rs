//! The SCEP registration authority: an RSA key and a certificate the CA issues for it
//! (digitalSignature + keyEncipherment), in the CA directory. Clients encrypt their
//! requests to it and check its signature on the replies. The CA's own key is never used
//! for SCEP: it has no keyEncipherment, it may be EC, and a key in a token cannot decrypt
//! through aws-lc-rs.
//!
//! Issued again when missing, not the current CA's, or with less than a third of its
//! validity left; the key it replaces is kept (`scep-ra-previous.*`) and still decrypts,
//! for clients that fetched the old certificate.

use std::path::Path;
use std::time::Duration;

use der::Decode;
use x509_cert::Certificate;

use crate::ca::devpki::replace_file;
use crate::ca::{CaError, IssuanceRequest, Issuer};
use crate::est::{self, KeyType};
use crate::scep_wire::{RecipientKey, Signer};

pub const RA_CERT: &str = "scep-ra.pem";
pub const RA_KEY: &str = "scep-ra.key";
const PREVIOUS_CERT: &str = "scep-ra-previous.pem";
const PREVIOUS_KEY: &str = "scep-ra-previous.key";
const RA_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// The RA: its certificate (DER), the signer for replies, and the keys that decrypt
/// requests (the current one first).
pub struct Ra {
    pub cert_der: Vec<u8>,
    pub signer: Signer,
    pub recipients: Vec<RecipientKey>,
}

impl std::fmt::Debug for Ra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ra(keys redacted)")
    }
}

fn fail(what: &str) -> impl Fn(String) -> CaError + '_ {
    move |e| CaError::Signing(format!("SCEP RA {what}: {e}"))
}

/// Loads the RA from `ca_dir`, issuing a new one when needed (see the module's text).
pub fn ensure_ra(ca_dir: &Path, issuer: &dyn Issuer) -> Result<Ra, CaError> {
    let cert_path = ca_dir.join(RA_CERT);
    let key_path = ca_dir.join(RA_KEY);
    let current =
        crate::revocation::current_delegate(&cert_path, issuer, RA_VALIDITY, "the SCEP RA")
            .and_then(|cert| {
                let pem = std::fs::read_to_string(&key_path).ok()?;
                let pkcs8 = pkcs8_of(&pem)?;
                Some((cert, pkcs8))
            });
    let (cert, pkcs8) = match current {
        Some(found) => found,
        None => {
            if cert_path.exists() && key_path.exists() {
                // keep the key being replaced: clients that fetched its certificate still
                // encrypt to it
                std::fs::rename(&cert_path, ca_dir.join(PREVIOUS_CERT))
                    .map_err(|e| fail("keeping the previous certificate")(e.to_string()))?;
                std::fs::rename(&key_path, ca_dir.join(PREVIOUS_KEY))
                    .map_err(|e| fail("keeping the previous key")(e.to_string()))?;
            }
            let key = est::generate_key(KeyType::Rsa(2048)).map_err(fail("key"))?;
            let subject = <x509_cert::name::Name as std::str::FromStr>::from_str("CN=estd SCEP RA")
                .map_err(|e| fail("subject")(e.to_string()))?;
            let issued = issuer.issue(&IssuanceRequest {
                subject,
                key_type: KeyType::Rsa(2048),
                public_key: key.public_key.clone(),
                san: None,
                validity: RA_VALIDITY,
                key_usage: vec![
                    rcgen::KeyUsagePurpose::DigitalSignature,
                    rcgen::KeyUsagePurpose::KeyEncipherment,
                ],
                extended_key_usage: Vec::new(),
                crl_url: None,
                ocsp_url: None,
                ocsp_no_check: false,
                rsa_pss: false,
            })?;
            replace_file(&key_path, &est::pem("PRIVATE KEY", &key.pkcs8), true)?;
            replace_file(&cert_path, &est::pem("CERTIFICATE", &issued.der), false)?;
            tracing::info!(serial = %issued.serial, file = %cert_path.display(), "issued the SCEP RA certificate (RSA 2048)");
            (issued.der, key.pkcs8.to_vec())
        }
    };
    let pkcs8 = zeroize::Zeroizing::new(pkcs8);
    let parsed = Certificate::from_der(&cert).map_err(|e| fail("certificate")(e.to_string()))?;
    let signer = Signer {
        cert: parsed.clone(),
        key: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| fail("key")(e.to_string()))?,
    };
    let mut recipients = vec![RecipientKey {
        cert: parsed,
        key: aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&pkcs8)
            .map_err(|e| fail("key")(e.to_string()))?,
    }];
    if let Some(previous) = previous(ca_dir) {
        recipients.push(previous);
    }
    Ok(Ra {
        cert_der: cert,
        signer,
        recipients,
    })
}

/// The key the current RA replaced, while its certificate is valid.
fn previous(ca_dir: &Path) -> Option<RecipientKey> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(ca_dir.join(PREVIOUS_CERT)).ok()?;
    let cert = Certificate::from_der(&cert).ok()?;
    let not_after = cert.tbs_certificate().validity().not_after.to_system_time();
    if not_after < std::time::SystemTime::now() {
        return None;
    }
    let pem = std::fs::read_to_string(ca_dir.join(PREVIOUS_KEY)).ok()?;
    let pkcs8 = zeroize::Zeroizing::new(pkcs8_of(&pem)?);
    let key = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&pkcs8).ok()?;
    Some(RecipientKey { cert, key })
}

fn pkcs8_of(pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|k| k.secret_pkcs8_der().to_vec())
}
