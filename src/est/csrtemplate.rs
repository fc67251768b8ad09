//! RFC 9908 CSR templates: the `id-aa-certificationRequestInfoTemplate` attribute of a
//! CsrAttrs — the subject with the values the server fixes and empty ones the client fills,
//! the key type, and the extensions wanted — encoded for `/csrattrs`, read back by the
//! client, and a CSR checked against it.
//!
//! ```text
//! CertificationRequestInfoTemplate ::= SEQUENCE {
//!     version       INTEGER { v1(0) },
//!     subject       NameTemplate OPTIONAL,           -- RDNSequence of SingleAttributeTemplate
//!     subjectPKInfo [0] IMPLICIT SubjectPublicKeyInfoTemplate OPTIONAL,
//!     attributes    [1] IMPLICIT Attributes }
//! SingleAttributeTemplate ::= SEQUENCE { type OID, value ANY OPTIONAL }  -- absent: client fills
//! SubjectPublicKeyInfoTemplate ::= SEQUENCE { algorithm AlgorithmIdentifier,
//!                                             subjectPublicKey BIT STRING OPTIONAL }
//! ExtensionTemplate ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE,
//!                                  extnValue OCTET STRING OPTIONAL }      -- absent: client fills
//! ```
//!
//! Pure: bytes in, bytes out.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};

use super::{Csr, KeyType, WireError, tlv};

/// `id-aa-certificationRequestInfoTemplate` (RFC 9908).
pub const ID_AA_CRI_TEMPLATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.61");
/// `id-aa-extensionReqTemplate` (RFC 9908).
pub const ID_AA_EXT_REQ_TEMPLATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.62");
const ID_EXTENSION_REQ: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// subjectAltName.
pub const SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// keyUsage.
pub const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
/// extKeyUsage.
pub const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");

/// One RDN of the subject: its type, and the value the server fixes (`None`: the client
/// fills it in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdnTemplate {
    pub oid: ObjectIdentifier,
    pub value: Option<String>,
}

/// An extension the client is to request: with its value given, or for the client to fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtTemplate {
    pub oid: ObjectIdentifier,
    pub critical: bool,
    /// The DER of the extension's value, when the server fixes it.
    pub value: Option<Vec<u8>>,
}

/// A CSR template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CriTemplate {
    pub subject: Vec<RdnTemplate>,
    /// The key type the client is to use.
    pub key: Option<KeyType>,
    pub extensions: Vec<ExtTemplate>,
}

fn der_of<T: Encode>(v: &T) -> Result<Vec<u8>, WireError> {
    v.to_der().map_err(|e| WireError::Encode(e.to_string()))
}

/// An RSA public key with a modulus of `bits` bits (a placeholder: its length is the size
/// the server asks for, RFC 9908 §3.4).
fn rsa_placeholder(bits: u32) -> Vec<u8> {
    let mut modulus = vec![0u8; (bits as usize).div_ceil(8)];
    if let Some(first) = modulus.first_mut() {
        *first = 0x80;
    }
    let modulus = [&[0u8][..], &modulus].concat();
    tlv(
        0x30,
        &[tlv(0x02, &modulus), tlv(0x02, &[0x01, 0x00, 0x01])].concat(),
    )
}

impl CriTemplate {
    /// The DER of the CertificationRequestInfoTemplate (the attribute's one value).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut body = tlv(0x02, &[0]);
        if !self.subject.is_empty() {
            let mut rdns = Vec::new();
            for r in &self.subject {
                let mut atv = der_of(&r.oid)?;
                if let Some(v) = &r.value {
                    atv.extend(tlv(0x0c, v.as_bytes()));
                }
                rdns.extend(tlv(0x31, &tlv(0x30, &atv)));
            }
            body.extend(tlv(0x30, &rdns));
        }
        if let Some(key) = self.key {
            let alg = match key {
                KeyType::EcP256 => tlv(0x30, &[der_of(&EC_PUBLIC_KEY)?, der_of(&P256)?].concat()),
                KeyType::EcP384 => tlv(0x30, &[der_of(&EC_PUBLIC_KEY)?, der_of(&P384)?].concat()),
                KeyType::Rsa(_) => tlv(0x30, &[der_of(&RSA)?, vec![0x05, 0x00]].concat()),
                KeyType::Ed25519 => tlv(0x30, &der_of(&ED25519)?),
            };
            let spk = match key {
                KeyType::Rsa(bits) => tlv(0x03, &[&[0u8][..], &rsa_placeholder(bits)].concat()),
                _ => Vec::new(),
            };
            body.extend(tlv(0xa0, &[alg, spk].concat()));
        }
        let mut attributes = Vec::new();
        if !self.extensions.is_empty() {
            // every value given: an ordinary extensionRequest (RFC 9908 §3.4)
            let templated = self.extensions.iter().any(|e| e.value.is_none());
            let mut exts = Vec::new();
            for e in &self.extensions {
                let mut x = der_of(&e.oid)?;
                if e.critical {
                    x.extend([0x01, 0x01, 0xff]);
                }
                if let Some(v) = &e.value {
                    x.extend(tlv(0x04, v));
                }
                exts.extend(tlv(0x30, &x));
            }
            let oid = if templated {
                ID_AA_EXT_REQ_TEMPLATE
            } else {
                ID_EXTENSION_REQ
            };
            attributes.extend(tlv(
                0x30,
                &[der_of(&oid)?, tlv(0x31, &tlv(0x30, &exts))].concat(),
            ));
        }
        body.extend(tlv(0xa1, &attributes));
        Ok(tlv(0x30, &body))
    }

    /// Reads a template (what `encode` writes, and any server's that keeps to RFC 9908:
    /// unknown RDN value types are kept as their DER bytes' text).
    pub fn decode(der: &[u8]) -> Result<Self, String> {
        let bad = |what: &str| format!("CSR template: {what}");
        let mut outer = SliceReader::new(der).map_err(|_| bad("not DER"))?;
        let seq = der::Any::decode(&mut outer).map_err(|_| bad("not a SEQUENCE"))?;
        if seq.tag() != Tag::Sequence {
            return Err(bad("not a SEQUENCE"));
        }
        let mut r = SliceReader::new(seq.value()).map_err(|_| bad("not DER"))?;
        let version = der::Any::decode(&mut r).map_err(|_| bad("no version"))?;
        if version.tag() != Tag::Integer || version.value() != [0] {
            return Err(bad("version is not v1(0)"));
        }
        let mut t = Self::default();
        while !r.is_finished() {
            let item = der::Any::decode(&mut r).map_err(|_| bad("unreadable element"))?;
            match item.tag() {
                Tag::Sequence => {
                    t.subject = read_subject(item.value()).ok_or_else(|| bad("subject"))?
                }
                Tag::ContextSpecific {
                    number: TagNumber(0),
                    ..
                } => {
                    t.key = read_key(item.value()).ok_or_else(|| bad("subjectPKInfo"))?;
                }
                Tag::ContextSpecific {
                    number: TagNumber(1),
                    ..
                } => {
                    t.extensions =
                        read_extensions(item.value()).ok_or_else(|| bad("attributes"))?;
                }
                _ => return Err(bad("unexpected element")),
            }
        }
        Ok(t)
    }

    /// Whether `csr`'s subject and key are what the template asks for; the first mismatch
    /// named. With
    /// `any_key`, the CSR's key type is not compared (the server makes the key, or allows
    /// other types besides the one the template prefers).
    pub fn check(&self, csr: &Csr, any_key: bool) -> Result<(), String> {
        for rdn in &self.subject {
            let have = super::name_value(&csr.subject, rdn.oid);
            let name = super::oids::oid_name(&rdn.oid.to_string())
                .map_or_else(|| rdn.oid.to_string(), str::to_string);
            match (&rdn.value, have) {
                (_, None) => {
                    return Err(format!(
                        "the CSR's subject has no {name}, which the CSR template asks for"
                    ));
                }
                (Some(want), Some(have)) if *want != have => {
                    return Err(format!(
                        "the CSR's subject has {name} {have:?} where the CSR template fixes {want:?}"
                    ));
                }
                (_, Some(have)) if have.trim().is_empty() => {
                    return Err(format!("the CSR's subject has an empty {name}"));
                }
                _ => {}
            }
        }
        if let Some(key) = self.key
            && !any_key
            && key != csr.key_type
        {
            return Err(format!(
                "the CSR's key is {}, where the CSR template asks for {key}",
                csr.key_type
            ));
        }
        // (the extensions are not compared: a SAN the server builds from other values, key
        // usages the certificate gets whatever the CSR asks)
        Ok(())
    }

    /// The template in words, for `estd client csrattrs`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        let name = |oid: &ObjectIdentifier| {
            super::oids::oid_name(&oid.to_string()).map_or_else(|| oid.to_string(), str::to_string)
        };
        for r in &self.subject {
            out.push(match &r.value {
                Some(v) => format!("subject {} = {v:?} (fixed)", name(&r.oid)),
                None => format!("subject {}: yours to fill in", name(&r.oid)),
            });
        }
        if let Some(k) = self.key {
            out.push(format!("key: {k}"));
        }
        for e in &self.extensions {
            out.push(format!(
                "extension {}{}: {}",
                name(&e.oid),
                if e.critical { " (critical)" } else { "" },
                if e.value.is_some() {
                    "value given"
                } else {
                    "yours to fill in"
                }
            ));
        }
        out
    }
}

fn read_subject(der: &[u8]) -> Option<Vec<RdnTemplate>> {
    let mut out = Vec::new();
    let mut r = SliceReader::new(der).ok()?;
    while !r.is_finished() {
        let set = der::Any::decode(&mut r).ok()?;
        let mut s = SliceReader::new(set.value()).ok()?;
        while !s.is_finished() {
            let atv = der::Any::decode(&mut s).ok()?;
            let mut a = SliceReader::new(atv.value()).ok()?;
            let oid = ObjectIdentifier::decode(&mut a).ok()?;
            let value = if a.is_finished() {
                None
            } else {
                let v = der::Any::decode(&mut a).ok()?;
                Some(super::directory_string(&v))
            };
            out.push(RdnTemplate { oid, value });
        }
    }
    Some(out)
}

fn read_key(der: &[u8]) -> Option<Option<KeyType>> {
    let mut r = SliceReader::new(der).ok()?;
    let alg = der::Any::decode(&mut r).ok()?;
    let mut a = SliceReader::new(alg.value()).ok()?;
    let oid = ObjectIdentifier::decode(&mut a).ok()?;
    let param = if a.is_finished() {
        None
    } else {
        der::Any::decode(&mut a).ok()
    };
    Some(match oid {
        EC_PUBLIC_KEY => match param.and_then(|p| p.decode_as::<ObjectIdentifier>().ok()) {
            Some(P256) => Some(KeyType::EcP256),
            Some(P384) => Some(KeyType::EcP384),
            _ => None,
        },
        ED25519 => Some(KeyType::Ed25519),
        RSA => {
            // the placeholder's modulus length is the size asked for
            let spk = der::asn1::BitString::decode(&mut r).ok()?;
            let mut k = SliceReader::new(spk.raw_bytes()).ok()?;
            let seq = der::Any::decode(&mut k).ok()?;
            let mut m = SliceReader::new(seq.value()).ok()?;
            let modulus = der::asn1::UintRef::decode(&mut m).ok()?;
            Some(KeyType::Rsa((modulus.as_bytes().len() * 8) as u32))
        }
        _ => None,
    })
}

fn read_extensions(der: &[u8]) -> Option<Vec<ExtTemplate>> {
    let mut out = Vec::new();
    let mut r = SliceReader::new(der).ok()?;
    while !r.is_finished() {
        let attr = der::Any::decode(&mut r).ok()?;
        let mut a = SliceReader::new(attr.value()).ok()?;
        let oid = ObjectIdentifier::decode(&mut a).ok()?;
        if oid != ID_AA_EXT_REQ_TEMPLATE && oid != ID_EXTENSION_REQ {
            continue;
        }
        let set = der::Any::decode(&mut a).ok()?;
        let mut s = SliceReader::new(set.value()).ok()?;
        let exts = der::Any::decode(&mut s).ok()?;
        let mut e = SliceReader::new(exts.value()).ok()?;
        while !e.is_finished() {
            let ext = der::Any::decode(&mut e).ok()?;
            let mut x = SliceReader::new(ext.value()).ok()?;
            let id = ObjectIdentifier::decode(&mut x).ok()?;
            let mut t = ExtTemplate {
                oid: id,
                critical: false,
                value: None,
            };
            while !x.is_finished() {
                let f = der::Any::decode(&mut x).ok()?;
                match f.tag() {
                    Tag::Boolean => t.critical = f.value() == [0xff],
                    Tag::OctetString => t.value = Some(f.value().to_vec()),
                    _ => return None,
                }
            }
            out.push(t);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    //! Fixed templates; an unwrap failing is the test failing.
    use super::*;

    fn sample() -> CriTemplate {
        CriTemplate {
            subject: vec![
                RdnTemplate {
                    oid: ObjectIdentifier::new_unwrap("2.5.4.11"),
                    value: Some("POS".into()),
                },
                RdnTemplate {
                    oid: ObjectIdentifier::new_unwrap("2.5.4.3"),
                    value: None,
                },
            ],
            key: Some(KeyType::EcP256),
            extensions: vec![
                ExtTemplate {
                    oid: SAN,
                    critical: false,
                    value: None,
                },
                ExtTemplate {
                    oid: KEY_USAGE,
                    critical: true,
                    value: Some(vec![0x03, 0x02, 0x07, 0x80]),
                },
            ],
        }
    }

    #[test]
    fn encodes_as_rfc_9908_and_reads_back() {
        let t = sample();
        let der = t.encode().unwrap();
        // version 0, then the subject with OU fixed and CN to fill (no value)
        assert!(der.starts_with(&[0x30]));
        let hex = crate::est::hex(&der);
        assert!(hex.contains("020100"), "{hex}");
        assert!(
            hex.contains("310730050603550403"),
            "the CN without a value: {hex}"
        );
        // [0] { ecPublicKey, prime256v1 } without a BIT STRING, [1] with extensionReqTemplate
        assert!(
            hex.contains("a015301306072a8648ce3d020106082a8648ce3d030107"),
            "{hex}"
        );
        assert!(hex.contains("a1"), "{hex}");
        assert!(hex.contains(&crate::est::hex(&ID_AA_EXT_REQ_TEMPLATE.to_der().unwrap())));
        assert_eq!(CriTemplate::decode(&der).unwrap(), t);
        // every value given: an ordinary extensionRequest
        let mut fixed = sample();
        fixed.extensions.remove(0);
        let hex = crate::est::hex(&fixed.encode().unwrap());
        assert!(
            hex.contains(&crate::est::hex(&ID_EXTENSION_REQ.to_der().unwrap())),
            "{hex}"
        );
        assert_eq!(
            CriTemplate::decode(&fixed.encode().unwrap()).unwrap(),
            fixed
        );
        // RSA: the size rides in a placeholder key
        let rsa = CriTemplate {
            key: Some(KeyType::Rsa(3072)),
            ..CriTemplate::default()
        };
        assert_eq!(
            CriTemplate::decode(&rsa.encode().unwrap()).unwrap().key,
            Some(KeyType::Rsa(3072))
        );
        // an empty attributes field is still there
        assert!(
            CriTemplate::default()
                .encode()
                .unwrap()
                .ends_with(&[0xa1, 0x00])
        );
    }
}
