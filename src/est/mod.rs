//! The RFC 7030 wire format: operations, labels, media types, base64 bodies (RFC 8951),
//! PKCS#10 parsing with proof-of-possession, certs-only PKCS#7 and csrattrs; and what both
//! ends of the wire need to make or read it: hex and DER TLV (`bytes`), key types, key
//! generation and X.509 names in rcgen's model (`keys`), OIDs.
//!
//! No I/O and nothing of the server: bytes in, bytes or typed values out (key generation
//! draws from the system's random source).

mod body;
mod bytes;
mod csr;
pub mod csrtemplate;
mod keys;
pub mod lenient;
pub mod multipart;
pub mod oids;
mod pkcs7;

pub use body::{decode_body, encode_body, pem};
pub use bytes::{hex, tlv, unhex};
pub use csr::{
    Csr, KeyType, RequestedSan, SanEntry, cert_identity, common_name, directory_string, encode_san,
    name_value,
};
pub use keys::{GeneratedKey, dn_from_name, generate_key};
pub use pkcs7::{CsrAttr, certs_only, csrattrs};

/// The seed's answer to a CSR that cannot be read (EST, the portal and the JSON API).
pub const MALFORMED_CSR: &str = "ISE server error - The given CSR text is malformed";

/// Largest request body estd reads (64 KiB): a CSR is rarely over 4 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// Response media type of `/cacerts` (BouncyCastle rejects the `smime-type` parameter here).
pub const CT_CACERTS: &str = "application/pkcs7-mime";
/// Response media type of the enrollment operations, compared byte for byte by libest.
pub const CT_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
/// Response media type of `/csrattrs`.
pub const CT_CSRATTRS: &str = "application/csrattrs";
/// Request media type of the enrollment operations.
pub const CT_PKCS10: &str = "application/pkcs10";

/// What went wrong reading or writing the wire format. The messages are shown to clients.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    #[error("the request body is empty")]
    Empty,
    #[error("the request body is not valid base64")]
    Base64,
    #[error("the request body is not a PEM certificate request")]
    Pem,
    #[error("the CSR is not valid DER PKCS#10: {0}")]
    Der(String),
    #[error("the CSR signature does not verify (proof of possession failed)")]
    BadSignature,
    #[error("unsupported CSR signature algorithm {0}")]
    UnsupportedSignature(String),
    #[error("unsupported public key: {0}")]
    UnsupportedKey(String),
    #[error("the CSR's extensionRequest is malformed: {0}")]
    BadExtension(String),
    #[error("could not encode the response: {0}")]
    Encode(String),
}

/// An EST operation, as named in the last path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CaCerts,
    SimpleEnroll,
    SimpleReenroll,
    ServerKeygen,
    CsrAttrs,
    FullCmc,
}

impl Operation {
    pub fn from_segment(s: &str) -> Option<Self> {
        Some(match s {
            "cacerts" => Self::CaCerts,
            "simpleenroll" => Self::SimpleEnroll,
            "simplereenroll" => Self::SimpleReenroll,
            "serverkeygen" => Self::ServerKeygen,
            "csrattrs" => Self::CsrAttrs,
            "fullcmc" => Self::FullCmc,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaCerts => "cacerts",
            Self::SimpleEnroll => "simpleenroll",
            Self::SimpleReenroll => "simplereenroll",
            Self::ServerKeygen => "serverkeygen",
            Self::CsrAttrs => "csrattrs",
            Self::FullCmc => "fullcmc",
        }
    }

    /// The one HTTP method the operation accepts (RFC 7030 §3.2.2).
    pub fn method(self) -> &'static str {
        match self {
            Self::CaCerts | Self::CsrAttrs => "GET",
            _ => "POST",
        }
    }
}

/// Is `ct` (a Content-Type header value) the PKCS#10 media type? Parameters and case are ignored.
pub fn is_pkcs10(ct: &str) -> bool {
    ct.split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CT_PKCS10))
}

/// Is `s` usable as an EST label? (RFC 7030 §3.2.2: a path segment; not an operation name.)
pub fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && Operation::from_segment(s).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip() {
        for op in [
            Operation::CaCerts,
            Operation::SimpleEnroll,
            Operation::SimpleReenroll,
            Operation::ServerKeygen,
            Operation::CsrAttrs,
            Operation::FullCmc,
        ] {
            assert_eq!(Operation::from_segment(op.as_str()), Some(op));
        }
        assert_eq!(Operation::from_segment("simpleEnroll"), None);
    }

    #[test]
    fn pkcs10_content_type() {
        assert!(is_pkcs10("application/pkcs10"));
        assert!(is_pkcs10("Application/PKCS10; charset=x"));
        assert!(!is_pkcs10("application/x-www-form-urlencoded"));
        assert!(!is_pkcs10(""));
    }
}
