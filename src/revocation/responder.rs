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
/// third of its validity is left. With `token_key`, the key is that key in the CA's token
/// (only the certificate is a file) and a new certificate is issued for it.
pub(super) fn ensure_responder(
    ca_dir: &Path,
    issuer: &dyn Issuer,
    token_key: Option<crate::ca::pkcs11::TokenKey>,
) -> Result<Responder, CaError> {
    let cert_path = ca_dir.join(RESPONDER_CERT);
    let key_path = ca_dir.join(RESPONDER_KEY);
    if let Some(key) = token_key {
        use rcgen::PublicKeyData;
        let public = key.der_bytes().to_vec();
        if let Some(cert) = current_cert(&cert_path, issuer)
            && x509_cert::Certificate::from_der(&cert).is_ok_and(|c| {
                c.tbs_certificate()
                    .subject_public_key_info()
                    .subject_public_key
                    .raw_bytes()
                    == public
            })
        {
            return Responder::new(cert, key).map_err(CaError::Signing);
        }
        let key_type = if key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
            crate::est::KeyType::EcP256
        } else if key.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
            crate::est::KeyType::EcP384
        } else {
            crate::est::KeyType::Rsa(
                u32::try_from(public.len().saturating_sub(14) * 8).unwrap_or(0),
            )
        };
        let cert = issue_responder(issuer, key_type, public)?;
        crate::ca::devpki::replace_file(
            &cert_path,
            &crate::est::pem("CERTIFICATE", &cert.der),
            false,
        )?;
        tracing::info!(serial = %cert.serial, file = %cert_path.display(), key = %key.uri(), "issued the OCSP responder certificate for its key in the token");
        return Responder::new(cert.der, key).map_err(CaError::Signing);
    }
    if let Some(r) = load_responder(&cert_path, &key_path, issuer) {
        return Ok(r);
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CaError::Signing(e.to_string()))?;
    let cert = issue_responder(
        issuer,
        crate::est::KeyType::EcP256,
        key.public_key_raw().to_vec(),
    )?;
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

/// The responder's certificate: for `public_key`, by the issuing CA, OCSP signing only.
fn issue_responder(
    issuer: &dyn Issuer,
    key_type: crate::est::KeyType,
    public_key: Vec<u8>,
) -> Result<crate::ca::IssuedCert, CaError> {
    let subject = <x509_cert::name::Name as std::str::FromStr>::from_str("CN=estd OCSP responder")
        .map_err(|e| CaError::Signing(e.to_string()))?;
    issuer.issue(&IssuanceRequest {
        subject,
        key_type,
        public_key,
        san: None,
        validity: RESPONDER_VALIDITY,
        key_usage: vec![rcgen::KeyUsagePurpose::DigitalSignature],
        extended_key_usage: vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning],
        crl_url: None,
        ocsp_url: None,
        ocsp_no_check: true,
        rsa_pss: false,
    })
}

fn load_responder(cert_path: &Path, key_path: &Path, issuer: &dyn Issuer) -> Option<Responder> {
    let cert = current_cert(cert_path, issuer)?;
    let key_pem = std::fs::read_to_string(key_path).ok()?;
    let key = rcgen::KeyPair::from_pem(&key_pem).ok()?;
    match Responder::new(cert, key) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "OCSP responder files unusable; issuing another");
            None
        }
    }
}

fn current_cert(cert_path: &Path, issuer: &dyn Issuer) -> Option<Vec<u8>> {
    current_delegate(cert_path, issuer, RESPONDER_VALIDITY, "the OCSP responder")
}

/// A delegated certificate (the OCSP responder's, the SCEP RA's) in `cert_path` when it is
/// the current issuing CA's and has more than a third of `lifetime` left; `what` names it
/// in the log.
pub fn current_delegate(
    cert_path: &Path,
    issuer: &dyn Issuer,
    lifetime: std::time::Duration,
    what: &str,
) -> Option<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(cert_path).ok()?.to_vec();
    let parsed = x509_cert::Certificate::from_der(&cert).ok()?;
    let ca = x509_cert::Certificate::from_der(issuer.chain().first()?).ok()?;
    if parsed.tbs_certificate().issuer() != ca.tbs_certificate().subject()
        || !same_key_id(&parsed, &ca)
    {
        tracing::info!("{what} certificate is not the current CA's; issuing another");
        return None;
    }
    let validity = parsed.tbs_certificate().validity();
    let not_after = validity.not_after.to_system_time();
    let left = not_after.duration_since(SystemTime::now()).ok()?;
    if left < lifetime / 3 {
        tracing::info!("{what} certificate expires soon; issuing another");
        return None;
    }
    Some(cert)
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
