//! The delegated OCSP responder's certificate and key, in the CA directory: loaded, or
//! issued again when missing, stale or not the current issuing CA's.

use std::path::Path;
use std::time::SystemTime;

use der::Decode;

use super::{RESPONDER_CERT, RESPONDER_KEY, RESPONDER_VALIDITY};
use crate::ca::ocsp::Responder;
use crate::ca::{CaError, IssuanceRequest, Issuer};

/// Loads the delegated OCSP responder (certificate and key in the CA directory), issuing a
/// new one when there is none, when it is not the current issuing CA's, or when less than a
/// third of its validity is left.
pub(super) fn ensure_responder(ca_dir: &Path, issuer: &dyn Issuer) -> Result<Responder, CaError> {
    let cert_path = ca_dir.join(RESPONDER_CERT);
    let key_path = ca_dir.join(RESPONDER_KEY);
    if let Some(r) = load_responder(&cert_path, &key_path, issuer) {
        return Ok(r);
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CaError::Signing(e.to_string()))?;
    let subject = <x509_cert::name::Name as std::str::FromStr>::from_str("CN=estd OCSP responder")
        .map_err(|e| CaError::Signing(e.to_string()))?;
    let cert = issuer.issue(&IssuanceRequest {
        subject,
        key_type: crate::est::KeyType::EcP256,
        public_key: key.public_key_raw().to_vec(),
        san: None,
        validity: RESPONDER_VALIDITY,
        key_usage: vec![rcgen::KeyUsagePurpose::DigitalSignature],
        extended_key_usage: vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning],
        crl_url: None,
        ocsp_url: None,
        ocsp_no_check: true,
    })?;
    use crate::ca::devpki::replace_file;
    replace_file(&key_path, &key.serialize_pem(), true)?;
    replace_file(
        &cert_path,
        &crate::est::pem("CERTIFICATE", &cert.der),
        false,
    )?;
    tracing::info!(serial = %cert.serial, file = %cert_path.display(), "issued the OCSP responder certificate");
    Responder::new(cert.der, key).map_err(CaError::Signing)
}

fn load_responder(cert_path: &Path, key_path: &Path, issuer: &dyn Issuer) -> Option<Responder> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(cert_path).ok()?.to_vec();
    let key_pem = std::fs::read_to_string(key_path).ok()?;
    let key = rcgen::KeyPair::from_pem(&key_pem).ok()?;
    let parsed = x509_cert::Certificate::from_der(&cert).ok()?;
    let ca = x509_cert::Certificate::from_der(issuer.chain().first()?).ok()?;
    if parsed.tbs_certificate().issuer() != ca.tbs_certificate().subject()
        || !same_key_id(&parsed, &ca)
    {
        tracing::info!("the OCSP responder certificate is not the current CA's; issuing another");
        return None;
    }
    let validity = parsed.tbs_certificate().validity();
    let not_after = validity.not_after.to_system_time();
    let left = not_after.duration_since(SystemTime::now()).ok()?;
    if left < RESPONDER_VALIDITY / 3 {
        tracing::info!("the OCSP responder certificate expires soon; issuing another");
        return None;
    }
    match Responder::new(cert, key) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "OCSP responder files unusable; issuing another");
            None
        }
    }
}

/// Whether `cert`'s Authority Key Identifier is `ca`'s Subject Key Identifier (true when
/// either is missing: then the names decide). A CA imported with the old one's name but
/// another key must not keep the old responder.
fn same_key_id(cert: &x509_cert::Certificate, ca: &x509_cert::Certificate) -> bool {
    use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
    let ext = |c: &x509_cert::Certificate, oid: &str| {
        c.tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes().to_vec())
    };
    let aki = ext(cert, "2.5.29.35")
        .and_then(|d| AuthorityKeyIdentifier::from_der(&d).ok())
        .and_then(|a| a.key_identifier)
        .map(|k| k.as_bytes().to_vec());
    let ski = ext(ca, "2.5.29.14")
        .and_then(|d| SubjectKeyIdentifier::from_der(&d).ok())
        .map(|k| k.0.as_bytes().to_vec());
    match (aki, ski) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}
