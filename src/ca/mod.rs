//! The certificate authority: an `Issuer` signs an already-approved `IssuanceRequest`.
//!
//! `LocalIssuer` signs with a key on disk (rcgen + aws-lc-rs). `devpki` creates a development
//! root, issuing CA and TLS certificate on first start.

pub mod devpki;
pub mod import;
pub mod ocsp;
pub mod pkcs11;
mod pss;
pub mod seal;
pub mod show;
pub mod upstream;

use std::time::{Duration, SystemTime};

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use rcgen::{
    CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use x509_cert::Certificate;
use x509_cert::name::Name;

use crate::est::{KeyType, hex, unhex};

/// What went wrong issuing a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The requested subject cannot be reproduced exactly (the client's problem: 400).
    #[error("unsupported subject: {0}")]
    UnsupportedSubject(String),
    /// The CA itself failed (our problem: 500).
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("CA files: {0}")]
    Files(String),
}

/// An approved request: everything the CA needs, nothing it has to decide.
#[derive(Debug, Clone)]
pub struct IssuanceRequest {
    pub subject: Name,
    pub key_type: KeyType,
    /// subjectPublicKey bits as in the CSR.
    pub public_key: Vec<u8>,
    /// SubjectAltName: criticality and DER `GeneralNames`, copied as requested.
    pub san: Option<(bool, Vec<u8>)>,
    pub validity: Duration,
    pub key_usage: Vec<KeyUsagePurpose>,
    pub extended_key_usage: Vec<ExtendedKeyUsagePurpose>,
    /// Where relying parties find revocation: the CRL's URL (CRL Distribution Points) and
    /// the OCSP responder's (Authority Information Access).
    pub crl_url: Option<String>,
    pub ocsp_url: Option<String>,
    /// A delegated OCSP responder's certificate: `id-pkix-ocsp-nocheck` (RFC 6960 §4.2.2.2.1).
    pub ocsp_no_check: bool,
    /// Sign with RSASSA-PSS (the template's `rsa_pss`; an RSA CA key only).
    pub rsa_pss: bool,
}

/// One entry of a CRL.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    /// Serial number, lower-case hex (as stored).
    pub serial: String,
    pub at: SystemTime,
    /// RFC 5280 `CRLReason` code.
    pub reason: u8,
}

/// A freshly signed certificate.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    /// Serial number, lower-case hex.
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// A signed certificate as the store records it: estd's CA's, or one an upstream CA
/// returned and `upstream::check` accepted.
#[derive(Debug, Clone)]
pub struct SignedCert {
    pub der: Vec<u8>,
    /// Lower-case hex.
    pub serial: String,
    /// `CN=dev-1,O=Example`.
    pub subject: String,
    /// SubjectAltName entries, `DNS:a, IP:b` (empty without one).
    pub san: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Something that signs certificates. Local keys today; an HSM tomorrow.
pub trait Issuer: Send + Sync {
    fn issue(&self, req: &IssuanceRequest) -> Result<IssuedCert, CaError>;
    /// The chain EST clients receive from `/cacerts`: issuing CA first, root last.
    fn chain(&self) -> &[Vec<u8>];
    /// A CRL listing `revoked`, signed by the issuing CA.
    fn crl(
        &self,
        revoked: &[RevokedEntry],
        number: u64,
        this_update: SystemTime,
        next_update: SystemTime,
    ) -> Result<Vec<u8>, CaError>;
    /// Whether the CA can issue right now: its certificate is valid and its key signs.
    fn check_key(&self) -> Result<(), CaError>;
    /// For the wiring code to reach an implementation's extras (the local key).
    fn as_any(&self) -> &dyn std::any::Any;
    /// Whether a signature may block for milliseconds (a key in a token, perhaps across a
    /// network): then callers sign on the blocking pool (`signing`).
    fn signs_remotely(&self) -> bool {
        false
    }
    /// Whether the CA can sign with RSASSA-PSS (its key is RSA): a template's `rsa_pss`.
    fn signs_pss(&self) -> bool {
        false
    }
}

/// Runs `f` with the issuer: on the blocking pool when its key is in a token (a network
/// HSM takes milliseconds a signature, which must not stall the async executor), inline
/// otherwise (a file key signs in microseconds).
pub async fn signing<T, F>(issuer: &std::sync::Arc<dyn Issuer>, f: F) -> Result<T, CaError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Issuer) -> Result<T, CaError> + Send + 'static,
{
    if !issuer.signs_remotely() {
        return f(issuer.as_ref());
    }
    let issuer = std::sync::Arc::clone(issuer);
    tokio::task::spawn_blocking(move || f(issuer.as_ref()))
        .await
        .map_err(|e| CaError::Signing(format!("the signing task failed: {e}")))?
}

/// The issuing CA's private key: from a file (held in memory), or in a PKCS#11 token.
pub enum CaKey {
    File(KeyPair),
    Token(pkcs11::TokenKey),
}

impl From<KeyPair> for CaKey {
    fn from(k: KeyPair) -> Self {
        Self::File(k)
    }
}

impl From<pkcs11::TokenKey> for CaKey {
    fn from(k: pkcs11::TokenKey) -> Self {
        Self::Token(k)
    }
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            Self::File(k) => k.der_bytes(),
            Self::Token(k) => k.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::File(k) => k.algorithm(),
            Self::Token(k) => k.algorithm(),
        }
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            Self::File(k) => k.sign(msg),
            Self::Token(k) => k.sign(msg),
        }
    }
}

/// Signs with a CA key held in memory.
pub struct LocalIssuer {
    issuer: rcgen::Issuer<'static, CaKey>,
    /// The CA's parameters again, for the capturing issuer of PSS certificates.
    params: CertificateParams,
    /// The file key as aws-lc-rs's RSA key pair, for PSS (rcgen has none): RSA file keys only.
    pss_file_key: Option<aws_lc_rs::signature::RsaKeyPair>,
    chain: Vec<Vec<u8>>,
    ca_not_after: SystemTime,
    /// How the CA's key identifier is made (for the CRL's Authority Key Identifier).
    key_identifier_method: KeyIdMethod,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer").finish_non_exhaustive()
    }
}

const SAN_OID: &[u64] = &[2, 5, 29, 17];
const AIA_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
const OCSP_NOCHECK_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
const SKI_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

impl LocalIssuer {
    /// `chain[0]` is the issuing CA certificate (DER) whose key is `key`; the rest lead to
    /// the root.
    pub fn new(chain: Vec<Vec<u8>>, key: impl Into<CaKey>) -> Result<Self, CaError> {
        let key: CaKey = key.into();
        let ca_der = chain
            .first()
            .ok_or_else(|| CaError::Files("empty CA chain".into()))?;
        let ca = Certificate::from_der(ca_der)
            .map_err(|e| CaError::Files(format!("issuing CA certificate: {e}")))?;
        let tbs = ca.tbs_certificate();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| CaError::Files(e.to_string()))?;
        if spki != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(CaError::Files(
                "the CA key does not belong to the issuing CA certificate".into(),
            ));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = dn_from_name(tbs.subject())
            .map_err(|e| CaError::Files(format!("issuing CA subject: {e}")))?;
        let ski = tbs
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id == SKI_OID)
            .and_then(|e| der::asn1::OctetString::from_der(e.extn_value.as_bytes()).ok());
        if let Some(ski) = ski {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski.as_bytes().to_vec());
        }
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_not_after = tbs.validity().not_after.to_system_time();
        let pss_file_key = match &key {
            CaKey::File(k) if is_rsa(k.algorithm()) => Some(
                aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&k.serialize_der())
                    .map_err(|e| CaError::Files(format!("the CA's RSA key: {e}")))?,
            ),
            _ => None,
        };
        Ok(Self {
            key_identifier_method: params.key_identifier_method.clone(),
            params: params.clone(),
            pss_file_key,
            issuer: rcgen::Issuer::new(params, key),
            chain,
            ca_not_after,
        })
    }

    /// The rcgen issuer, for the development PKI's own TLS certificate.
    /// A failed signature as the CA's error: a token's own (with its `CKR_*` code) when the
    /// key is in a token, rcgen's otherwise.
    fn signing_error(&self, e: rcgen::Error) -> CaError {
        match self.issuer.key() {
            CaKey::Token(k) => match k.take_error() {
                Some(t) => CaError::Signing(t.to_string()),
                None => CaError::Signing(e.to_string()),
            },
            CaKey::File(_) => CaError::Signing(e.to_string()),
        }
    }

    pub(crate) fn rcgen_issuer(&self) -> &rcgen::Issuer<'static, CaKey> {
        &self.issuer
    }

    /// A PSS signature with the CA's RSA key, in the token or from the file.
    fn sign_pss(&self, msg: &[u8]) -> Result<Vec<u8>, CaError> {
        match (self.issuer.key(), &self.pss_file_key) {
            (CaKey::Token(k), _) if k.is_rsa() => {
                k.sign_pss(msg).map_err(|e| CaError::Signing(e.to_string()))
            }
            (CaKey::File(_), Some(k)) => pss::sign_with_file_key(k, msg),
            _ => Err(CaError::Signing(
                "rsa_pss: the CA's key is not an RSA key".into(),
            )),
        }
    }

    /// Signs `params` for `key` with RSASSA-PSS: rcgen builds the TBS, PSS signs it.
    fn signed_pss(
        &self,
        params: &CertificateParams,
        key: &RequestKey<'_>,
    ) -> Result<Vec<u8>, CaError> {
        if !Issuer::signs_pss(self) {
            return Err(CaError::Signing(
                "rsa_pss: the CA's key is not an RSA key".into(),
            ));
        }
        let capture = pss::Capture {
            key: self.issuer.key(),
            tbs: std::cell::RefCell::new(None),
        };
        let issuer = rcgen::Issuer::new(self.params.clone(), &capture);
        params
            .signed_by(key, &issuer)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let tbs = capture
            .tbs
            .take()
            .ok_or_else(|| CaError::Signing("PSS: nothing to sign".into()))?;
        pss::certificate(&tbs, |m| self.sign_pss(m))
    }
}

/// Whether a key signs with RSA (PKCS#1 v1.5 in rcgen's terms).
fn is_rsa(alg: &'static SignatureAlgorithm) -> bool {
    [
        &rcgen::PKCS_RSA_SHA256,
        &rcgen::PKCS_RSA_SHA384,
        &rcgen::PKCS_RSA_SHA512,
    ]
    .contains(&alg)
}

/// The CSR's public key, presented to rcgen.
struct RequestKey<'a> {
    alg: &'static SignatureAlgorithm,
    raw: &'a [u8],
}

impl PublicKeyData for RequestKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// rcgen writes the SubjectPublicKeyInfo algorithm from the signature algorithm's key OIDs.
fn spki_algorithm(key: KeyType) -> &'static SignatureAlgorithm {
    match key {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
    }
}

pub use crate::est::{GeneratedKey, dn_from_name};

/// Generates a key pair (aws-lc-rs), failing as the CA does. RSA takes tens to hundreds of
/// milliseconds: call it off the async executor.
pub fn generate_key(key_type: KeyType) -> Result<GeneratedKey, CaError> {
    crate::est::generate_key(key_type).map_err(CaError::Signing)
}

/// A 16-byte serial number, positive and without a leading zero byte: `0x40`, the time in
/// milliseconds (6 bytes), then 9 random bytes (72 bits from the system's CSPRNG; the
/// CA/Browser Forum asks for at least 64).
///
/// Time first makes serials ascend, like a UUIDv7: a batch of new certificates lands in one
/// page of the database's serial index instead of one random page each, which is most of
/// the pages written per enrollment otherwise (BENCHMARKS.md, issue 9).
pub fn new_serial() -> Result<[u8; 16], CaError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b[7..]).map_err(|_| CaError::Signing("no randomness".into()))?;
    let ms = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    b[0] = 0x40;
    b[1..7].copy_from_slice(&ms.to_be_bytes()[2..]);
    Ok(b)
}

/// RFC 5280 reason code → rcgen's (unknown codes and `removeFromCRL` as unspecified).
fn revocation_reason(code: u8) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Some(match code {
        1 => R::KeyCompromise,
        2 => R::CaCompromise,
        3 => R::AffiliationChanged,
        4 => R::Superseded,
        5 => R::CessationOfOperation,
        6 => R::CertificateHold,
        9 => R::PrivilegeWithdrawn,
        10 => R::AaCompromise,
        _ => return None,
    })
}

/// The subject of a DER certificate, as DER, found by stepping over the TBSCertificate's
/// first fields without decoding them (a whole decode cost more than the rest of the check).
fn subject_der(cert: &[u8]) -> Option<Vec<u8>> {
    use der::asn1::AnyRef;
    use der::{SliceReader, Tagged};
    let outer = AnyRef::from_der(cert).ok()?;
    let mut r = SliceReader::new(outer.value()).ok()?;
    let tbs = AnyRef::decode(&mut r).ok()?;
    let mut r = SliceReader::new(tbs.value()).ok()?;
    let mut field = AnyRef::decode(&mut r).ok()?;
    if field.tag().is_context_specific() {
        // [0] version
        field = AnyRef::decode(&mut r).ok()?;
    }
    // serialNumber (in `field`), signature, issuer, validity, then subject
    for _ in 0..4 {
        field = AnyRef::decode(&mut r).ok()?;
    }
    field.to_der().ok()
}

/// The DER content of an Authority Information Access extension naming one OCSP responder.
fn aia_ocsp(url: &str) -> Vec<u8> {
    use crate::est::tlv;
    // AccessDescription { id-ad-ocsp, uniformResourceIdentifier [6] IA5String }
    let mut desc = vec![0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    desc.extend_from_slice(&tlv(0x86, url.as_bytes()));
    tlv(0x30, &tlv(0x30, &desc))
}

impl Issuer for LocalIssuer {
    fn issue(&self, req: &IssuanceRequest) -> Result<IssuedCert, CaError> {
        let serial = new_serial()?;
        let now = SystemTime::now();
        if now >= self.ca_not_after {
            return Err(CaError::Signing(format!(
                "the issuing CA certificate expired at {}",
                crate::model::timestamp(self.ca_not_after)
            )));
        }
        let not_before = now - Duration::from_secs(300);
        let not_after = (now + req.validity).min(self.ca_not_after);

        let mut params = CertificateParams::default();
        params.distinguished_name =
            dn_from_name(&req.subject).map_err(CaError::UnsupportedSubject)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.is_ca = IsCa::NoCa;
        params.key_usages = req.key_usage.clone();
        params.extended_key_usages = req.extended_key_usage.clone();
        params.use_authority_key_identifier_extension = true;
        if let Some((critical, der)) = &req.san {
            let mut ext = CustomExtension::from_oid_content(SAN_OID, der.clone());
            ext.set_criticality(*critical || req.subject.is_empty());
            params.custom_extensions.push(ext);
        }
        if let Some(url) = &req.crl_url {
            params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        if let Some(url) = &req.ocsp_url {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(AIA_OID, aia_ocsp(url)));
        }
        if req.ocsp_no_check {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    OCSP_NOCHECK_OID,
                    vec![0x05, 0x00],
                ));
        }
        let key = RequestKey {
            alg: spki_algorithm(req.key_type),
            raw: &req.public_key,
        };
        let der = if req.rsa_pss {
            self.signed_pss(&params, &key)?
        } else {
            params
                .signed_by(&key, &self.issuer)
                .map_err(|e| self.signing_error(e))?
                .der()
                .to_vec()
        };

        // rcgen rebuilds the subject from its own model: make sure it is byte for byte the
        // one that was approved.
        let approved = req
            .subject
            .to_der()
            .map_err(|e| CaError::Signing(e.to_string()))?;
        if subject_der(&der).as_deref() != Some(&approved[..]) {
            return Err(CaError::UnsupportedSubject(
                "the subject could not be reproduced exactly".into(),
            ));
        }
        Ok(IssuedCert {
            der,
            serial: hex(&serial),
            not_before,
            not_after,
        })
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn crl(
        &self,
        revoked: &[RevokedEntry],
        number: u64,
        this_update: SystemTime,
        next_update: SystemTime,
    ) -> Result<Vec<u8>, CaError> {
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for r in revoked {
            let serial = unhex(&r.serial).ok_or_else(|| {
                CaError::Signing(format!("stored serial {:?} is not hex", r.serial))
            })?;
            revoked_certs.push(rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: r.at.into(),
                reason_code: revocation_reason(r.reason),
                invalidity_date: None,
            });
        }
        let params = rcgen::CertificateRevocationListParams {
            this_update: this_update.into(),
            next_update: next_update.into(),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.key_identifier_method.clone(),
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|e| self.signing_error(e))?;
        Ok(crl.der().to_vec())
    }

    fn check_key(&self) -> Result<(), CaError> {
        use rcgen::SigningKey;
        if SystemTime::now() >= self.ca_not_after {
            return Err(CaError::Signing(format!(
                "the issuing CA certificate expired at {}",
                crate::model::timestamp(self.ca_not_after)
            )));
        }
        match self.issuer.key() {
            // signed in the token and verified with the certificate's public key
            CaKey::Token(k) => k.check().map_err(|e| CaError::Signing(e.to_string())),
            CaKey::File(k) => k
                .sign(b"estd readiness check")
                .map(|_| ())
                .map_err(|e| self.signing_error(e)),
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn signs_remotely(&self) -> bool {
        matches!(self.issuer.key(), CaKey::Token(_))
    }

    fn signs_pss(&self) -> bool {
        match self.issuer.key() {
            CaKey::Token(k) => k.is_rsa(),
            CaKey::File(_) => self.pss_file_key.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn test_ca() -> (LocalIssuer, Vec<u8>) {
        let pki = devpki::DevPki::generate(devpki::CaKeyType::EcP256).unwrap();
        let issuer = LocalIssuer::new(
            vec![pki.issuing_cert.clone(), pki.root_cert.clone()],
            KeyPair::from_pem(&pki.issuing_key_pem).unwrap(),
        )
        .unwrap();
        (issuer, pki.issuing_cert)
    }

    fn request(subject: &str) -> IssuanceRequest {
        let key = KeyPair::generate().unwrap();
        IssuanceRequest {
            subject: Name::from_str(subject).unwrap(),
            key_type: KeyType::EcP256,
            public_key: key.public_key_raw().to_vec(),
            san: None,
            validity: Duration::from_secs(86_400),
            key_usage: vec![KeyUsagePurpose::DigitalSignature],
            extended_key_usage: vec![ExtendedKeyUsagePurpose::ClientAuth],
            crl_url: None,
            ocsp_url: None,
            ocsp_no_check: false,
            rsa_pss: false,
        }
    }

    #[test]
    fn the_subject_is_found_in_the_certificate_bytes() {
        let (issuer, ca) = test_ca();
        for subject in ["CN=dev-1,O=Example", "CN=x", "C=DE,O=A\\, B,CN=y"] {
            let cert = issuer.issue(&request(subject)).unwrap();
            let parsed = Certificate::from_der(&cert.der).unwrap();
            assert_eq!(
                subject_der(&cert.der).unwrap(),
                parsed.tbs_certificate().subject().to_der().unwrap(),
                "{subject}"
            );
        }
        let ca_parsed = Certificate::from_der(&ca).unwrap();
        assert_eq!(
            subject_der(&ca).unwrap(),
            ca_parsed.tbs_certificate().subject().to_der().unwrap()
        );
        assert_eq!(subject_der(b"\x30\x00"), None);
        assert_eq!(subject_der(b"garbage"), None);
    }

    #[test]
    fn serials_ascend_with_time_and_end_in_random_bytes() {
        let a = new_serial().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = new_serial().unwrap();
        assert_eq!((a[0], b[0]), (0x40, 0x40), "positive, no leading zero byte");
        assert!(a < b, "{} then {}", hex(&a), hex(&b));
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut ms = [0u8; 8];
        ms[2..].copy_from_slice(&b[1..7]);
        assert!(now - u64::from_be_bytes(ms) < 60_000);
        // the same millisecond still gives different serials (72 random bits)
        let same: std::collections::HashSet<[u8; 16]> =
            (0..1000).map(|_| new_serial().unwrap()).collect();
        assert_eq!(same.len(), 1000);
    }

    #[test]
    fn issues_with_the_requested_subject_and_a_16_byte_serial() {
        let (issuer, ca) = test_ca();
        let cert = issuer.issue(&request("CN=dev-1,O=Example")).unwrap();
        let parsed = Certificate::from_der(&cert.der).unwrap();
        let ca = Certificate::from_der(&ca).unwrap();
        assert_eq!(
            parsed.tbs_certificate().issuer(),
            ca.tbs_certificate().subject()
        );
        assert_eq!(
            parsed.tbs_certificate().subject().to_string(),
            "CN=dev-1,O=Example"
        );
        assert_eq!(
            parsed.tbs_certificate().serial_number().as_bytes().len(),
            16
        );
        assert_eq!(cert.serial.len(), 32);
        let other = issuer.issue(&request("CN=dev-1")).unwrap();
        assert_ne!(cert.serial, other.serial);
    }

    #[test]
    fn a_repeated_attribute_is_refused_not_dropped() {
        let (issuer, _) = test_ca();
        let err = issuer.issue(&request("CN=x,OU=a,OU=b")).unwrap_err();
        assert!(matches!(err, CaError::UnsupportedSubject(_)), "{err}");
        let err = issuer.issue(&request("CN=x+OU=a")).unwrap_err();
        assert!(matches!(err, CaError::UnsupportedSubject(_)), "{err}");
    }

    #[test]
    fn rsa_pss_certificates_verify_and_need_an_rsa_ca() {
        use aws_lc_rs::signature::{RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
        let pki = devpki::DevPki::generate(devpki::CaKeyType::Rsa2048).unwrap();
        let issuer = LocalIssuer::new(
            vec![pki.issuing_cert.clone()],
            KeyPair::from_pem(&pki.issuing_key_pem).unwrap(),
        )
        .unwrap();
        assert!(issuer.signs_pss());
        let mut req = request("CN=pss-device");
        req.rsa_pss = true;
        let cert = issuer.issue(&req).unwrap();
        let parsed = Certificate::from_der(&cert.der).unwrap();
        assert_eq!(
            parsed.signature_algorithm().to_der().unwrap(),
            pss::PSS_SHA256
        );
        assert_eq!(
            parsed.tbs_certificate().signature().to_der().unwrap(),
            pss::PSS_SHA256,
            "the TBS names the same algorithm"
        );
        assert_eq!(
            subject_der(&cert.der).unwrap(),
            req.subject.to_der().unwrap()
        );
        let ca = Certificate::from_der(&pki.issuing_cert).unwrap();
        let ca_key = ca
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let tbs = parsed.tbs_certificate().to_der().unwrap();
        UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &ca_key)
            .verify(&tbs, parsed.signature().raw_bytes())
            .expect("a PSS signature by the CA");
        // without rsa_pss: PKCS#1 v1.5 as before
        let plain = issuer.issue(&request("CN=plain")).unwrap();
        let plain = Certificate::from_der(&plain.der).unwrap();
        assert_eq!(
            plain.signature_algorithm().oid.to_string(),
            "1.2.840.113549.1.1.11"
        );
        // an EC CA cannot
        let (ec, _) = test_ca();
        assert!(!ec.signs_pss());
        let e = ec.issue(&req).unwrap_err();
        assert!(e.to_string().contains("not an RSA key"), "{e}");
    }

    #[test]
    fn a_key_from_another_certificate_is_refused() {
        let pki = devpki::DevPki::generate(devpki::CaKeyType::EcP256).unwrap();
        let err = LocalIssuer::new(vec![pki.issuing_cert], KeyPair::generate().unwrap());
        assert!(err.is_err());
    }
}
