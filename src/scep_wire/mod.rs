//! SCEP (RFC 8894) messages, pure: a pkiMessage parsed and its signature verified
//! (`message`), its EnvelopedData opened with an RA's RSA key (`envelope`). No HTTP, no
//! policy: the SCEP adapter and the enrollment service sit above.
//!
//! What real clients send that a strict decoder refuses, and is accepted here: BER
//! (indefinite lengths, constructed OCTET STRINGs, e.g. Go's `encryptedContent`), signed
//! attributes in any order (the signature is checked over the bytes as received), SHA-1
//! and single DES (micromdm's scepclient 2.1.0, Debian's `scep` package).

pub mod envelope;
mod loose;
pub mod message;
pub mod operations;
pub mod reply;
pub mod request;

pub use envelope::{RecipientKey, open};
pub use message::{Echo, PkiMessage, parse};
pub use reply::{Payload, Signer, Status, can_encrypt_to, cert_rep};
pub use request::{CaCerts, Reply, RequestError, Requester, Sent, read_reply};

use der::asn1::ObjectIdentifier;

/// `messageType` (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "3" => Self::CertRep,
            "17" => Self::RenewalReq,
            "19" => Self::PkcsReq,
            "20" => Self::CertPoll,
            "21" => Self::GetCert,
            "22" => Self::GetCrl,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::CertRep => "3",
            Self::RenewalReq => "17",
            Self::PkcsReq => "19",
            Self::CertPoll => "20",
            Self::GetCert => "21",
            Self::GetCrl => "22",
        }
    }
}

/// `failInfo` (RFC 8894 §3.2.1.4): why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    BadCertId,
}

impl FailInfo {
    pub fn code(self) -> &'static str {
        match self {
            Self::BadAlg => "0",
            Self::BadMessageCheck => "1",
            Self::BadRequest => "2",
            Self::BadTime => "3",
            Self::BadCertId => "4",
        }
    }
}

/// A refused message: the `failInfo` to answer with, and the reason for the log and the
/// audit (never key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ScepError {
    pub fail: FailInfo,
    pub reason: String,
    /// The request's transactionID and senderNonce, when they were read before the
    /// refusal: then it is answered with a signed FAILURE CertRep (else a 400).
    pub echo: Option<message::Echo>,
}

impl ScepError {
    pub fn new(fail: FailInfo, reason: impl Into<String>) -> Self {
        Self {
            fail,
            reason: reason.into(),
            echo: None,
        }
    }
}

/// The digest a request's signer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match oid.to_string().as_str() {
            "1.3.14.3.2.26" => Self::Sha1,
            "2.16.840.1.101.3.4.2.1" => Self::Sha256,
            "2.16.840.1.101.3.4.2.2" => Self::Sha384,
            "2.16.840.1.101.3.4.2.3" => Self::Sha512,
            _ => return None,
        })
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        let alg = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// SCEP's attribute OIDs (id-VeriSign 2.16.840.1.113733.1.9.*) and CMS's.
pub mod oid {
    use der::asn1::ObjectIdentifier as O;
    pub const MESSAGE_TYPE: O = O::new_unwrap("2.16.840.1.113733.1.9.2");
    pub const PKI_STATUS: O = O::new_unwrap("2.16.840.1.113733.1.9.3");
    pub const FAIL_INFO: O = O::new_unwrap("2.16.840.1.113733.1.9.4");
    pub const SENDER_NONCE: O = O::new_unwrap("2.16.840.1.113733.1.9.5");
    pub const RECIPIENT_NONCE: O = O::new_unwrap("2.16.840.1.113733.1.9.6");
    pub const TRANSACTION_ID: O = O::new_unwrap("2.16.840.1.113733.1.9.7");
    pub const CONTENT_TYPE: O = O::new_unwrap("1.2.840.113549.1.9.3");
    pub const MESSAGE_DIGEST: O = O::new_unwrap("1.2.840.113549.1.9.4");
    pub const DATA: O = O::new_unwrap("1.2.840.113549.1.7.1");
    pub const SIGNED_DATA: O = O::new_unwrap("1.2.840.113549.1.7.2");
    pub const ENVELOPED_DATA: O = O::new_unwrap("1.2.840.113549.1.7.3");
    pub const RSA_ENCRYPTION: O = O::new_unwrap("1.2.840.113549.1.1.1");
    pub const RSAES_OAEP: O = O::new_unwrap("1.2.840.113549.1.1.7");
    pub const EC_PUBLIC_KEY: O = O::new_unwrap("1.2.840.10045.2.1");
    pub const DES_CBC: O = O::new_unwrap("1.3.14.3.2.7");
    pub const DES_EDE3_CBC: O = O::new_unwrap("1.2.840.113549.3.7");
    pub const AES_128_CBC: O = O::new_unwrap("2.16.840.1.101.3.4.1.2");
    pub const AES_192_CBC: O = O::new_unwrap("2.16.840.1.101.3.4.1.22");
    pub const AES_256_CBC: O = O::new_unwrap("2.16.840.1.101.3.4.1.42");
    pub const CHALLENGE_PASSWORD: O = O::new_unwrap("1.2.840.113549.1.9.7");
}

/// The DER of a ContentInfo's content, checked to be of type `want` (`what` names it in
/// the refusal, which carries `fail`).
fn content_of(
    msg: &[u8],
    want: ObjectIdentifier,
    what: &str,
    fail: FailInfo,
) -> Result<Vec<u8>, ScepError> {
    use der::{Decode, Encode};
    let ci = cms::content_info::ContentInfo::from_ber(msg)
        .map_err(|e| ScepError::new(fail, format!("not a CMS message: {e}")))?;
    if ci.content_type != want {
        return Err(ScepError::new(
            fail,
            format!("a {} where {what} was expected", ci.content_type),
        ));
    }
    ci.content
        .to_der()
        .map_err(|e| ScepError::new(fail, format!("{what}: {e}")))
}

/// How CMS names a certificate (a signer's, a recipient's).
#[derive(Debug, Clone, Copy)]
enum CertName<'a> {
    IssuerAndSerial(&'a cms::cert::IssuerAndSerialNumber),
    SubjectKeyId(&'a [u8]),
}

impl CertName<'_> {
    fn names(self, cert: &x509_cert::Certificate) -> bool {
        let tbs = cert.tbs_certificate();
        match self {
            Self::IssuerAndSerial(ias) => {
                tbs.issuer() == &ias.issuer && tbs.serial_number() == &ias.serial_number
            }
            Self::SubjectKeyId(ski) => subject_key_id(cert).is_some_and(|k| k == ski),
        }
    }
}

/// A certificate's Subject Key Identifier.
fn subject_key_id(c: &x509_cert::Certificate) -> Option<Vec<u8>> {
    subject_key_id_of(c.tbs_certificate())
}

/// The Subject Key Identifier of a TBSCertificate of any profile.
fn subject_key_id_of<P: x509_cert::certificate::Profile>(
    tbs: &x509_cert::certificate::TbsCertificateInner<P>,
) -> Option<Vec<u8>> {
    use der::Decode;
    const SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
    let ext = tbs.extensions()?.iter().find(|e| e.extn_id == SKI)?;
    der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
        .ok()
        .map(|o| o.as_bytes().to_vec())
}

/// The content octets of an OCTET STRING as received: a primitive one's value, or a BER
/// constructed one's segments joined.
fn octets(any: &der::Any) -> Result<Vec<u8>, der::Error> {
    use der::{Decode, Reader, Tagged};
    if !any.tag().is_constructed() {
        return Ok(any.value().to_vec());
    }
    let mut r = der::SliceReader::new_with_encoding_rules(any.value(), der::EncodingRules::Ber)?;
    let mut out = Vec::new();
    while !r.is_finished() {
        let seg = der::asn1::OctetString::decode(&mut r)?;
        out.extend_from_slice(seg.as_bytes());
    }
    Ok(out)
}
