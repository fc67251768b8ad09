//! PKCS#10 parsing and proof of possession.
//!
//! The signature is checked over the exact bytes the client signed (not a re-encoding), with
//! aws-lc-rs's verification algorithms.

use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, UintRef};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::request::{CertReqInfo, ExtensionReq};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::WireError;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
const CHALLENGE_PASSWORD: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// A subject public key type estd knows how to certify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcP256,
    EcP384,
    /// RSA with its modulus size in bits.
    Rsa(u32),
    Ed25519,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcP256 => f.write_str("ec-p256"),
            Self::EcP384 => f.write_str("ec-p384"),
            Self::Rsa(bits) => write!(f, "rsa-{bits}"),
            Self::Ed25519 => f.write_str("ed25519"),
        }
    }
}

/// One SubjectAltName entry, comparable so that two SANs can be compared as sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SanEntry {
    Dns(String),
    Email(String),
    Uri(String),
    Ip(IpAddr),
    /// otherName: type OID and the UTF-8 value (or hex of the DER value when not a string).
    OtherName(String, String),
    /// Any other GeneralName, by its DER encoding (hex).
    Other(String),
}

impl SanEntry {
    /// `KIND:VALUE` as typed on a command line: `dns:`, `email:`, `upn:`, `uri:` or `ip:`.
    pub fn parse_arg(s: &str) -> Result<Self, String> {
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: write KIND:VALUE (dns, email, upn, uri or ip)"))?;
        if value.is_empty() {
            return Err(format!("{s:?}: empty value"));
        }
        Ok(match kind.to_ascii_lowercase().as_str() {
            "dns" => Self::Dns(value.into()),
            "email" => Self::Email(value.into()),
            "upn" => Self::OtherName(crate::est::oids::UPN_OID.into(), value.into()),
            "uri" => Self::Uri(value.into()),
            "ip" => Self::Ip(
                value
                    .parse()
                    .map_err(|_| format!("{value:?} is not an IP address"))?,
            ),
            other => {
                return Err(format!(
                    "{other:?}: unknown SAN kind (dns, email, upn, uri, ip)"
                ));
            }
        })
    }
}

impl fmt::Display for SanEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(s) => write!(f, "DNS:{s}"),
            Self::Email(s) => write!(f, "email:{s}"),
            Self::Uri(s) => write!(f, "URI:{s}"),
            Self::Ip(ip) => write!(f, "IP:{ip}"),
            Self::OtherName(oid, v) => write!(f, "otherName:{oid};{v}"),
            Self::Other(hex) => write!(f, "other:{hex}"),
        }
    }
}

/// The SubjectAltName extension a CSR asks for, kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedSan {
    pub critical: bool,
    /// The extnValue contents: a DER `GeneralNames`.
    pub der: Vec<u8>,
    /// The entries, sorted.
    pub entries: Vec<SanEntry>,
}

/// A parsed PKCS#10 request whose signature has been verified.
#[derive(Debug, Clone)]
pub struct Csr {
    pub subject: Name,
    /// DER of the subject `Name`, for exact comparison.
    pub subject_der: Vec<u8>,
    pub key_type: KeyType,
    /// The subjectPublicKey bits (PKCS#1 for RSA, the point for EC, 32 bytes for Ed25519).
    pub public_key: Vec<u8>,
    pub san: Option<RequestedSan>,
    /// The challengePassword attribute, if any. Never log it.
    pub challenge_password: Option<String>,
    /// The OIDs of the CSR's attributes (challengePassword, extensionRequest, …).
    pub attribute_oids: Vec<ObjectIdentifier>,
    /// The OIDs of the extensions in its extensionRequest.
    pub extension_oids: Vec<ObjectIdentifier>,
    /// The DER the client sent (kept for requests that wait for approval).
    pub der: Vec<u8>,
}

#[derive(Sequence)]
struct RawCsr<'a> {
    info: AnyRef<'a>,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitStringRef<'a>,
}

#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    exponent: UintRef<'a>,
}

#[derive(Sequence)]
struct PssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_length: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

fn der_err(e: der::Error) -> WireError {
    WireError::Der(e.to_string())
}

impl Csr {
    /// Parses a DER PKCS#10 request and verifies its signature with its own public key.
    pub fn parse(der: &[u8]) -> Result<Self, WireError> {
        let raw = RawCsr::from_der(der).map_err(der_err)?;
        let info_der = raw.info.to_der().map_err(der_err)?;
        let info = CertReqInfo::from_der(&info_der).map_err(der_err)?;

        let spki = &info.public_key;
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| WireError::UnsupportedKey("public key is not whole bytes".into()))?
            .to_vec();
        let key_type = key_type(&spki.algorithm, &public_key)?;
        let sig = raw.signature.as_bytes().ok_or(WireError::BadSignature)?;
        let alg = verification_algorithm(&raw.algorithm, key_type)?;
        UnparsedPublicKey::new(alg, &public_key)
            .verify(&info_der, sig)
            .map_err(|_| WireError::BadSignature)?;

        let mut san = None;
        let mut challenge_password = None;
        let mut extension_oids = Vec::new();
        let attribute_oids = info.attributes.iter().map(|a| a.oid).collect();
        // one extensionRequest, each extension once: a CA reads the first where estd would
        // read another, and a name checked here must be the name a CA signs
        if info
            .attributes
            .iter()
            .filter(|a| a.oid == EXTENSION_REQUEST)
            .map(|a| a.values.len())
            .sum::<usize>()
            > 1
        {
            return Err(WireError::BadExtension(
                "more than one extensionRequest".into(),
            ));
        }
        for attr in info.attributes.iter() {
            if attr.oid == EXTENSION_REQUEST {
                let Some(value) = attr.values.iter().next() else {
                    continue;
                };
                let req: ExtensionReq = value
                    .decode_as()
                    .map_err(|e: der::Error| WireError::BadExtension(e.to_string()))?;
                for e in req.0.iter() {
                    if extension_oids.contains(&e.extn_id) {
                        return Err(WireError::BadExtension(format!(
                            "the extension {} is requested twice",
                            crate::est::oids::named(&e.extn_id.to_string())
                        )));
                    }
                    extension_oids.push(e.extn_id);
                }
                for ext in req.0.iter().filter(|e| e.extn_id == SUBJECT_ALT_NAME) {
                    let bytes = ext.extn_value.as_bytes();
                    san = Some(RequestedSan {
                        critical: ext.critical,
                        der: bytes.to_vec(),
                        entries: san_entries(bytes)?,
                    });
                }
            } else if attr.oid == CHALLENGE_PASSWORD {
                challenge_password = attr
                    .values
                    .iter()
                    .next()
                    .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            }
        }

        Ok(Csr {
            subject_der: info.subject.to_der().map_err(der_err)?,
            subject: info.subject,
            key_type,
            public_key,
            san,
            challenge_password,
            attribute_oids,
            extension_oids,
            der: der.to_vec(),
        })
    }

    /// The subject as text (RFC 4514), for logs and the store.
    pub fn subject_text(&self) -> String {
        self.subject.to_string()
    }

    /// The first Common Name of the subject, if any.
    pub fn common_name(&self) -> Option<String> {
        common_name(&self.subject)
    }
}

/// The first CN of a name, as text.
pub fn common_name(name: &Name) -> Option<String> {
    name_value(name, ObjectIdentifier::new_unwrap("2.5.4.3"))
}

/// The first value of an attribute type in a name, as text (decoded by its string type: a
/// BMPString CN is read as the letters it holds, for every rule that looks at it).
pub fn name_value(name: &Name, oid: ObjectIdentifier) -> Option<String> {
    name.iter()
        .find(|atv| atv.oid == oid)
        .map(|atv| directory_string(&atv.value))
}

/// A directory string's characters, by its tag: UTF-8, Printable, IA5, Visible and Numeric
/// strings as UTF-8 (lossily), Teletex as Latin-1 (so its 0x80–0x9F are the C1 controls),
/// BMPString as UTF-16BE (not as raw bytes, which would read every ASCII letter of a
/// BMPString as a NUL and a letter). Anything else: as bytes. (`der` has no UniversalString
/// tag: a CSR with one does not parse.)
pub fn directory_string(value: &der::Any) -> String {
    let bytes = value.value();
    match value.tag() {
        Tag::TeletexString => bytes.iter().map(|&b| char::from(b)).collect(),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                .collect();
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The subject (DER) and SubjectAltName entries of a certificate, for re-enrollment checks.
pub fn cert_identity(cert_der: &[u8]) -> Result<(Vec<u8>, Vec<SanEntry>), WireError> {
    let cert = Certificate::from_der(cert_der).map_err(der_err)?;
    let tbs = cert.tbs_certificate();
    let subject = tbs.subject().to_der().map_err(der_err)?;
    let mut sans = Vec::new();
    for ext in tbs.extensions().into_iter().flatten() {
        if ext.extn_id == SUBJECT_ALT_NAME {
            sans = san_entries(ext.extn_value.as_bytes())?;
        }
    }
    Ok((subject, sans))
}

/// Decodes a DER `GeneralNames` into sorted entries.
pub fn san_entries(der: &[u8]) -> Result<Vec<SanEntry>, WireError> {
    let san = SubjectAltName::from_der(der).map_err(|e| WireError::BadExtension(e.to_string()))?;
    let mut out = Vec::with_capacity(san.0.len());
    for name in &san.0 {
        out.push(match name {
            GeneralName::DnsName(s) => SanEntry::Dns(s.to_string()),
            GeneralName::Rfc822Name(s) => SanEntry::Email(s.to_string()),
            GeneralName::UniformResourceIdentifier(s) => SanEntry::Uri(s.to_string()),
            GeneralName::IpAddress(o) => match o.as_bytes().len() {
                4 => {
                    let b: [u8; 4] = o.as_bytes().try_into().map_err(|_| bad_ip())?;
                    SanEntry::Ip(IpAddr::from(b))
                }
                16 => {
                    let b: [u8; 16] = o.as_bytes().try_into().map_err(|_| bad_ip())?;
                    SanEntry::Ip(IpAddr::from(b))
                }
                _ => return Err(bad_ip()),
            },
            GeneralName::OtherName(other) => {
                let value = if other.value.tag() == Tag::Utf8String {
                    String::from_utf8_lossy(other.value.value()).into_owned()
                } else {
                    crate::est::hex(&other.value.to_der().map_err(der_err)?)
                };
                SanEntry::OtherName(other.type_id.to_string(), value)
            }
            other => SanEntry::Other(crate::est::hex(&other.to_der().map_err(der_err)?)),
        });
    }
    out.sort();
    Ok(out)
}

/// Encodes SAN entries as a DER `GeneralNames` (the extnValue of SubjectAltName), in order.
/// otherName values are written as UTF8String.
pub fn encode_san(entries: &[SanEntry]) -> Result<Vec<u8>, WireError> {
    use der::asn1::{Ia5String, OctetString, Utf8StringRef};
    use x509_cert::ext::pkix::name::OtherName;
    let bad = |e: der::Error| WireError::Encode(e.to_string());
    let ia5 = |s: &str| {
        Ia5String::new(s).map_err(|_| WireError::Encode(format!("{s:?} is not IA5 text")))
    };
    let mut names = Vec::with_capacity(entries.len());
    for e in entries {
        names.push(match e {
            SanEntry::Dns(s) => GeneralName::DnsName(ia5(s)?),
            SanEntry::Email(s) => GeneralName::Rfc822Name(ia5(s)?),
            SanEntry::Uri(s) => GeneralName::UniformResourceIdentifier(ia5(s)?),
            SanEntry::Ip(ip) => GeneralName::IpAddress(
                OctetString::new(match ip {
                    IpAddr::V4(v4) => v4.octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                })
                .map_err(bad)?,
            ),
            SanEntry::OtherName(oid, value) => GeneralName::OtherName(OtherName {
                type_id: ObjectIdentifier::new(oid)
                    .map_err(|e| WireError::Encode(format!("otherName type {oid:?}: {e}")))?,
                value: der::Any::encode_from(&Utf8StringRef::new(value).map_err(bad)?)
                    .map_err(bad)?,
            }),
            SanEntry::Other(hex) => {
                return Err(WireError::Encode(format!(
                    "cannot re-encode SAN entry {hex}"
                )));
            }
        });
    }
    SubjectAltName(names).to_der().map_err(bad)
}

fn bad_ip() -> WireError {
    WireError::BadExtension("an iPAddress SAN must be 4 or 16 bytes".into())
}

fn key_type(alg: &AlgorithmIdentifierOwned, key: &[u8]) -> Result<KeyType, WireError> {
    if alg.oid == RSA_ENCRYPTION {
        let rsa = RsaPublicKey::from_der(key)
            .map_err(|e| WireError::UnsupportedKey(format!("bad RSA public key: {e}")))?;
        let m = rsa.modulus.as_bytes();
        let bits = u32::try_from(m.len())
            .unwrap_or(u32::MAX / 8)
            .saturating_mul(8)
            .saturating_sub(m.first().map_or(8, |b| b.leading_zeros()));
        let _ = rsa.exponent;
        if !(2048..=8192).contains(&bits) {
            return Err(WireError::UnsupportedKey(format!(
                "RSA keys must have 2048 to 8192 bits, this one has {bits}"
            )));
        }
        Ok(KeyType::Rsa(bits))
    } else if alg.oid == EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = alg
            .parameters
            .as_ref()
            .ok_or_else(|| WireError::UnsupportedKey("EC key without a named curve".into()))?
            .decode_as()
            .map_err(|_| WireError::UnsupportedKey("EC key without a named curve".into()))?;
        match curve {
            SECP256R1 => Ok(KeyType::EcP256),
            SECP384R1 => Ok(KeyType::EcP384),
            other => Err(WireError::UnsupportedKey(format!("EC curve {other}"))),
        }
    } else if alg.oid == ED25519 {
        Ok(KeyType::Ed25519)
    } else {
        Err(WireError::UnsupportedKey(format!("algorithm {}", alg.oid)))
    }
}

fn verification_algorithm(
    alg: &AlgorithmIdentifierOwned,
    key: KeyType,
) -> Result<&'static dyn VerificationAlgorithm, WireError> {
    let unsupported = || WireError::UnsupportedSignature(format!("{} for a {key} key", alg.oid));
    let alg: &'static dyn VerificationAlgorithm = match (alg.oid, key) {
        (ECDSA_SHA256, KeyType::EcP256) => &signature::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA384, KeyType::EcP256) => &signature::ECDSA_P256_SHA384_ASN1,
        (ECDSA_SHA512, KeyType::EcP256) => &signature::ECDSA_P256_SHA512_ASN1,
        (ECDSA_SHA256, KeyType::EcP384) => &signature::ECDSA_P384_SHA256_ASN1,
        (ECDSA_SHA384, KeyType::EcP384) => &signature::ECDSA_P384_SHA384_ASN1,
        (ECDSA_SHA512, KeyType::EcP384) => &signature::ECDSA_P384_SHA512_ASN1,
        (SHA256_WITH_RSA, KeyType::Rsa(_)) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (SHA384_WITH_RSA, KeyType::Rsa(_)) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (SHA512_WITH_RSA, KeyType::Rsa(_)) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (RSASSA_PSS, KeyType::Rsa(_)) => {
            let params: PssParams = alg
                .parameters
                .as_ref()
                .ok_or_else(unsupported)?
                .decode_as()
                .map_err(|_| unsupported())?;
            let _ = (params.mask_gen, params.salt_length, params.trailer_field);
            match params.hash.map(|h| h.oid) {
                Some(SHA256) => &signature::RSA_PSS_2048_8192_SHA256,
                Some(SHA384) => &signature::RSA_PSS_2048_8192_SHA384,
                Some(SHA512) => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return Err(unsupported()),
            }
        }
        (ED25519, KeyType::Ed25519) => &signature::ED25519,
        _ => return Err(unsupported()),
    };
    Ok(alg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn csr_der(alg: &'static rcgen::SignatureAlgorithm, sans: Vec<SanType>) -> Vec<u8> {
        let key = if alg == &rcgen::PKCS_RSA_SHA256 {
            KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
        } else {
            KeyPair::generate_for(alg).unwrap()
        };
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "device-1");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.subject_alt_names = sans;
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    #[test]
    fn parses_and_verifies_every_key_type() {
        for (alg, kt) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyType::EcP256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyType::EcP384),
            (&rcgen::PKCS_ED25519, KeyType::Ed25519),
            (&rcgen::PKCS_RSA_SHA256, KeyType::Rsa(2048)),
        ] {
            let csr = Csr::parse(&csr_der(alg, vec![])).unwrap();
            assert_eq!(csr.key_type, kt);
            assert_eq!(csr.common_name().as_deref(), Some("device-1"));
            assert!(csr.san.is_none());
        }
    }

    #[test]
    fn reads_the_san_sorted() {
        let sans = vec![
            SanType::DnsName("b.example".try_into().unwrap()),
            SanType::IpAddress("10.0.0.1".parse().unwrap()),
            SanType::DnsName("a.example".try_into().unwrap()),
        ];
        let csr = Csr::parse(&csr_der(&rcgen::PKCS_ECDSA_P256_SHA256, sans)).unwrap();
        let san = csr.san.unwrap();
        assert_eq!(
            san.entries,
            vec![
                SanEntry::Dns("a.example".into()),
                SanEntry::Dns("b.example".into()),
                SanEntry::Ip("10.0.0.1".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn encoded_sans_decode_to_the_same_entries() {
        let entries = vec![
            SanEntry::OtherName("1.3.6.1.4.1.311.20.2.3".into(), "joe@example.com".into()),
            SanEntry::Email("joe@example.com".into()),
            SanEntry::Dns("dev.example".into()),
            SanEntry::Uri("urn:dev:mac:001122334455".into()),
            SanEntry::Ip("10.1.2.3".parse().unwrap()),
        ];
        let der = encode_san(&entries).unwrap();
        let mut want = entries.clone();
        want.sort();
        assert_eq!(san_entries(&der).unwrap(), want);
        assert!(encode_san(&[SanEntry::Dns("bücher.example".into())]).is_err());
    }

    #[test]
    fn a_flipped_signature_bit_is_refused() {
        let mut der = csr_der(&rcgen::PKCS_ECDSA_P256_SHA256, vec![]);
        let n = der.len();
        der[n - 5] ^= 0x01;
        assert!(matches!(
            Csr::parse(&der),
            Err(WireError::BadSignature | WireError::Der(_))
        ));
    }

    #[test]
    fn a_changed_subject_is_refused() {
        let mut der = csr_der(&rcgen::PKCS_ECDSA_P256_SHA256, vec![]);
        let pos = der.windows(8).position(|w| w == b"device-1").unwrap();
        der[pos] = b'D';
        assert_eq!(Csr::parse(&der).unwrap_err(), WireError::BadSignature);
    }

    #[test]
    fn degenerate_rsa_keys_are_refused_without_panicking() {
        let alg = AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: None,
        };
        // RSAPublicKey { modulus 0, exponent 3 } and { modulus 1, exponent 3 }
        for key in [
            &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03][..],
            &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x03],
        ] {
            assert!(matches!(
                key_type(&alg, key),
                Err(WireError::UnsupportedKey(_))
            ));
        }
    }

    #[test]
    fn garbage_is_a_der_error_not_a_panic() {
        for input in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x00", &[0xff; 40]] {
            assert!(matches!(Csr::parse(input), Err(WireError::Der(_))));
        }
    }
}

#[cfg(test)]
mod twice {
    // Tests only: each unwrap asserts that a fixture made here builds; its panic is the test
    // failing.
    use super::*;

    /// A CSR whose extensionRequest carries these SAN extensions (DER each), in this order.
    fn with_sans(sans: &[Vec<u8>]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dev");
        for der in sans {
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    &[2, 5, 29, 17],
                    der.clone(),
                ));
        }
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_name_is_requested_once_or_the_csr_is_refused() {
        let san = |name: &str| crate::est::encode_san(&[SanEntry::Dns(name.into())]).unwrap();
        let one = Csr::parse(&with_sans(&[san("me.devices.example")])).unwrap();
        assert_eq!(
            one.san.unwrap().entries,
            vec![SanEntry::Dns("me.devices.example".into())]
        );
        // a CA reading the first SAN would sign victim.example where estd checked the second
        let e = Csr::parse(&with_sans(&[
            san("victim.example"),
            san("me.devices.example"),
        ]))
        .unwrap_err();
        assert!(
            matches!(e, WireError::BadExtension(ref m) if m.contains("twice")),
            "{e}"
        );
    }
}
