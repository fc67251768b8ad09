//! RFC 6960 OCSP: reading a request and writing a signed basic response.
//!
//! Only what a responder for one issuing CA needs: the request's `CertID`s (SHA-1 or SHA-256
//! hashes of the issuer) and its nonce; the answer is signed by a delegated responder
//! certificate (`id-kp-OCSPSigning`, issued by the CA) which the response carries.

use der::asn1::{Any, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use x509_cert::ext::Extensions;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::est::{hex, tlv};

pub const CT_REQUEST: &str = "application/ocsp-request";
pub const CT_RESPONSE: &str = "application/ocsp-response";

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

/// At most this many certificates asked about in one request.
pub const MAX_REQUESTS: usize = 32;

#[derive(Sequence)]
struct OcspRequest {
    tbs_request: TbsRequest,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    optional_signature: Option<Any>,
}

#[derive(Sequence)]
struct TbsRequest {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<u8>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    requestor_name: Option<Any>,
    request_list: Vec<SingleRequest>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    request_extensions: Option<Extensions>,
}

#[derive(Sequence)]
struct SingleRequest {
    req_cert: CertId,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    single_request_extensions: Option<Any>,
}

/// Which certificate a request asks about.
#[derive(Sequence, Clone, Debug, PartialEq, Eq)]
pub struct CertId {
    pub hash_algorithm: AlgorithmIdentifierOwned,
    pub issuer_name_hash: OctetString,
    pub issuer_key_hash: OctetString,
    pub serial_number: SerialNumber,
}

impl CertId {
    /// The serial number as estd stores it (lower-case hex).
    pub fn serial_hex(&self) -> String {
        hex(self.serial_number.as_bytes())
    }
}

/// A request, read.
#[derive(Debug)]
pub struct Request {
    pub ids: Vec<CertId>,
    /// The nonce extension's value, echoed in the response.
    pub nonce: Option<Vec<u8>>,
}

/// Why no answer about certificates (RFC 6960 `OCSPResponseStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    Unauthorized = 6,
}

/// The whole response for a refusal: just the status.
pub fn refusal(r: Refusal) -> Vec<u8> {
    tlv(0x30, &[0x0a, 0x01, r as u8])
}

pub fn parse_request(der: &[u8]) -> Result<Request, String> {
    let req = OcspRequest::from_der(der).map_err(|e| format!("not an OCSP request: {e}"))?;
    let tbs = req.tbs_request;
    if tbs.version.unwrap_or(0) != 0 {
        return Err("unknown OCSP request version".into());
    }
    if tbs.request_list.is_empty() {
        return Err("the request asks about no certificate".into());
    }
    if tbs.request_list.len() > MAX_REQUESTS {
        return Err(format!(
            "the request asks about {} certificates (at most {MAX_REQUESTS})",
            tbs.request_list.len()
        ));
    }
    let nonce = tbs
        .request_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == NONCE)
        .map(|e| e.extn_value.as_bytes().to_vec());
    // RFC 8954: a nonce of 1 to 32 octets (inside its OCTET STRING, as clients send it);
    // anything else is refused rather than echoed
    if let Some(n) = &nonce {
        let len = match n.as_slice() {
            [0x04, l, rest @ ..] if usize::from(*l) == rest.len() => rest.len(),
            _ => n.len(),
        };
        if len == 0 || len > 32 {
            return Err(format!("the nonce has {len} octets (1 to 32, RFC 8954)"));
        }
    }
    Ok(Request {
        ids: tbs.request_list.into_iter().map(|r| r.req_cert).collect(),
        nonce,
    })
}

/// The issuing CA as OCSP names it: hashes of its subject and of its public key.
#[derive(Debug, Clone)]
pub struct IssuerHashes {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

impl IssuerHashes {
    pub fn of(ca_der: &[u8]) -> Result<Self, String> {
        let ca = x509_cert::Certificate::from_der(ca_der).map_err(|e| e.to_string())?;
        let tbs = ca.tbs_certificate();
        let name = tbs.subject().to_der().map_err(|e| e.to_string())?;
        let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
        let h = |alg, b: &[u8]| aws_lc_rs::digest::digest(alg, b).as_ref().to_vec();
        use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256 as S256};
        Ok(Self {
            sha1: (
                h(&SHA1_FOR_LEGACY_USE_ONLY, &name),
                h(&SHA1_FOR_LEGACY_USE_ONLY, key),
            ),
            sha256: (h(&S256, &name), h(&S256, key)),
        })
    }

    /// Whether `id` names this issuer (with a hash algorithm this responder knows).
    pub fn matches(&self, id: &CertId) -> bool {
        let (name, key) = match id.hash_algorithm.oid {
            SHA1 => &self.sha1,
            SHA256 => &self.sha256,
            _ => return false,
        };
        id.issuer_name_hash.as_bytes() == name.as_slice()
            && id.issuer_key_hash.as_bytes() == key.as_slice()
    }
}

/// What the responder says about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Good,
    /// When, and the RFC 5280 reason code.
    Revoked {
        at: std::time::SystemTime,
        reason: u8,
    },
    Unknown,
}

/// The responder: its certificate and key, signing basic responses.
pub struct Responder {
    cert_der: Vec<u8>,
    key: super::CaKey,
    key_hash: Vec<u8>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Responder {
    pub fn new(cert_der: Vec<u8>, key: impl Into<super::CaKey>) -> Result<Self, String> {
        let key: super::CaKey = key.into();
        let cert = x509_cert::Certificate::from_der(&cert_der).map_err(|e| e.to_string())?;
        let bits = cert
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes()
            .to_vec();
        if bits != rcgen::PublicKeyData::der_bytes(&key) {
            return Err("the OCSP responder key does not belong to its certificate".into());
        }
        let key_hash =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &bits)
                .as_ref()
                .to_vec();
        Ok(Self {
            cert_der,
            key,
            key_hash,
        })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Whether the key is in a token (sign off the async executor then).
    pub fn signs_remotely(&self) -> bool {
        matches!(self.key, super::CaKey::Token(_))
    }

    /// A successful response about `answers`, valid until `next_update`.
    pub fn respond(
        &self,
        answers: &[(CertId, Status)],
        nonce: Option<&[u8]>,
        now: std::time::SystemTime,
        next_update: std::time::SystemTime,
    ) -> Result<Vec<u8>, String> {
        let time = |t: std::time::SystemTime| -> Result<Vec<u8>, String> {
            // whole seconds: GeneralizedTime without fractions (RFC 5280 §4.1.2.5.2)
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
                .and_then(|g| g.to_der())
                .map_err(|e| e.to_string())
        };
        let mut responses = Vec::new();
        for (id, status) in answers {
            let mut single = id.to_der().map_err(|e| e.to_string())?;
            match status {
                Status::Good => single.extend_from_slice(&[0x80, 0x00]),
                Status::Unknown => single.extend_from_slice(&[0x82, 0x00]),
                Status::Revoked { at, reason } => {
                    let mut info = time(*at)?;
                    info.extend_from_slice(&tlv(0xa0, &[0x0a, 0x01, *reason]));
                    single.extend_from_slice(&tlv(0xa1, &info));
                }
            }
            single.extend_from_slice(&time(now)?);
            single.extend_from_slice(&tlv(0xa0, &time(next_update)?));
            responses.extend_from_slice(&tlv(0x30, &single));
        }
        let mut data = tlv(0xa2, &tlv(0x04, &self.key_hash));
        data.extend_from_slice(&time(now)?);
        data.extend_from_slice(&tlv(0x30, &responses));
        if let Some(nonce) = nonce {
            let mut ext = NONCE.to_der().map_err(|e| e.to_string())?;
            ext.extend_from_slice(&tlv(0x04, nonce));
            data.extend_from_slice(&tlv(0xa1, &tlv(0x30, &tlv(0x30, &ext))));
        }
        let tbs = tlv(0x30, &data);
        let sig = rcgen::SigningKey::sign(&self.key, &tbs).map_err(|e| match &self.key {
            super::CaKey::Token(k) => k.take_error().map_or(e.to_string(), |t| t.to_string()),
            super::CaKey::File(_) => e.to_string(),
        })?;
        let mut basic = tbs;
        basic.extend_from_slice(&signature_algorithm(&self.key)?);
        let mut bits = vec![0u8];
        bits.extend_from_slice(&sig);
        basic.extend_from_slice(&tlv(0x03, &bits));
        basic.extend_from_slice(&tlv(0xa0, &tlv(0x30, &self.cert_der)));
        let basic = tlv(0x30, &basic);
        let mut bytes = BASIC.to_der().map_err(|e| e.to_string())?;
        bytes.extend_from_slice(&tlv(0x04, &basic));
        let mut resp = vec![0x0a, 0x01, 0x00];
        resp.extend_from_slice(&tlv(0xa0, &tlv(0x30, &bytes)));
        Ok(tlv(0x30, &resp))
    }
}

/// The DER `AlgorithmIdentifier` of the signatures `key` makes.
fn signature_algorithm(key: &super::CaKey) -> Result<Vec<u8>, String> {
    let alg = rcgen::PublicKeyData::algorithm(key);
    let (oid, null) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        ("1.2.840.10045.4.3.2", false)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        ("1.2.840.10045.4.3.3", false)
    } else if alg == &rcgen::PKCS_ED25519 {
        ("1.3.101.112", false)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        ("1.2.840.113549.1.1.11", true)
    } else {
        return Err("the OCSP responder key's algorithm is not supported".into());
    };
    let mut content = ObjectIdentifier::new(oid)
        .map_err(|e| e.to_string())?
        .to_der()
        .map_err(|e| e.to_string())?;
    if null {
        content.extend_from_slice(&[0x05, 0x00]);
    }
    Ok(tlv(0x30, &content))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OCSP request for one certificate, with a nonce extension of `nonce` (inside its
    /// OCTET STRING, as openssl sends it).
    fn request(nonce: Option<&[u8]>) -> Vec<u8> {
        let sha1 = tlv(
            0x30,
            &[
                &tlv(0x06, &[0x2b, 0x0e, 0x03, 0x02, 0x1a])[..],
                &[0x05, 0x00],
            ]
            .concat(),
        );
        let cert_id = tlv(
            0x30,
            &[
                sha1,
                tlv(0x04, &[1; 20]),
                tlv(0x04, &[2; 20]),
                tlv(0x02, &[0x40, 1, 2, 3]),
            ]
            .concat(),
        );
        let list = tlv(0x30, &tlv(0x30, &cert_id));
        let mut tbs = list;
        if let Some(n) = nonce {
            let oid = tlv(
                0x06,
                &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02],
            );
            let ext = tlv(0x30, &[oid, tlv(0x04, &tlv(0x04, n))].concat());
            tbs.extend(tlv(0xa2, &tlv(0x30, &ext)));
        }
        tlv(0x30, &tlv(0x30, &tbs))
    }

    #[test]
    fn nonces_of_1_to_32_octets_only() {
        assert!(parse_request(&request(None)).is_ok());
        let ok = parse_request(&request(Some(&[7; 16]))).unwrap();
        assert_eq!(ok.nonce.unwrap().len(), 18, "kept as sent, to be echoed");
        assert!(parse_request(&request(Some(&[7; 32]))).is_ok());
        for bad in [0, 33, 64, 1000] {
            let e = parse_request(&request(Some(&vec![7; bad]))).unwrap_err();
            assert!(e.contains("RFC 8954"), "{bad}: {e}");
        }
    }
}
