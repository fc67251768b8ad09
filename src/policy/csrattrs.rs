//! What `/csrattrs` tells clients about a template: RFC 7030's list of attribute OIDs, for
//! old clients, and RFC 9908's CSR template (`est::csrtemplate`), which clients that know it
//! use instead; and the check of a CSR against that template.

use super::*;
use crate::est::csrtemplate::{self, CriTemplate, ExtTemplate, RdnTemplate};

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

impl Template {
    /// What `/csrattrs` tells clients (RFC 7030 §4.5.2): channel binding's challengePassword,
    /// the preferred key type (when the template restricts key types) and its signature
    /// algorithm, the SAN extension when one is required, and any further OIDs.
    /// Empty means the template asks nothing (an empty SEQUENCE). The RFC 9908 template
    /// comes first, when the template asks for anything.
    pub fn csr_attrs(&self) -> Vec<CsrAttr> {
        let mut out = Vec::new();
        if self.channel_binding {
            out.push(CsrAttr::Oid(CHALLENGE_PASSWORD));
        }
        if self.key_types.len() < AllowedKey::ALL
            && let Some(first) = self.key_types.first()
        {
            let oid = |s| ObjectIdentifier::new_unwrap(s);
            match first {
                AllowedKey::EcP256 => {
                    out.push(CsrAttr::AttrOids(
                        EC_PUBLIC_KEY,
                        vec![oid("1.2.840.10045.3.1.7")],
                    ));
                    out.push(CsrAttr::Oid(oid("1.2.840.10045.4.3.2")));
                }
                AllowedKey::EcP384 => {
                    out.push(CsrAttr::AttrOids(EC_PUBLIC_KEY, vec![oid("1.3.132.0.34")]));
                    out.push(CsrAttr::Oid(oid("1.2.840.10045.4.3.3")));
                }
                AllowedKey::Rsa(bits) => {
                    out.push(CsrAttr::AttrInt(RSA_ENCRYPTION, *bits));
                    out.push(CsrAttr::Oid(oid("1.2.840.113549.1.1.11")));
                }
                AllowedKey::Ed25519 => out.push(CsrAttr::Oid(ED25519)),
            }
        }
        if self.san_required() {
            let mut exts = vec![SUBJECT_ALT_NAME];
            if self.san_style == SanStyle::Mac {
                exts.push(ObjectIdentifier::new_unwrap(san::MAC_ADDRESS_OID));
            }
            out.push(CsrAttr::AttrOids(EXTENSION_REQUEST, exts));
        }
        out.extend(self.extra_attrs.iter().map(|o| CsrAttr::Oid(*o)));
        // first, the RFC 9908 template (clients that know it use it alone); the list still
        // ends with an OID, as libest's example client needs (it loops for ever otherwise)
        if let Some(der) = self.cri_template().and_then(|t| t.encode().ok()) {
            out.insert(0, CsrAttr::AttrDer(csrtemplate::ID_AA_CRI_TEMPLATE, der));
            if out.len() == 1 {
                out.push(CsrAttr::Oid(COMMON_NAME));
            }
        }
        out
    }

    /// Whether the template asks for anything /csrattrs can say: a key type, fixed subject
    /// attributes, a SAN. (A template that asks for nothing sends no template.)
    fn san_required(&self) -> bool {
        !self.san_optional
            && matches!(
                self.san_style,
                SanStyle::Mac
                    | SanStyle::Upn
                    | SanStyle::UpnEmail
                    | SanStyle::Email
                    | SanStyle::Dns
            )
    }

    /// The RFC 9908 CSR template: the fixed RDNs with their values and (where the template
    /// needs one) a CN for the client to fill, the key type (when the template restricts key types, its first), and the
    /// extensions: the SAN for the client to fill when one is required, the key usage and
    /// extended key usage the certificate gets. `None` when the template asks for nothing.
    pub fn cri_template(&self) -> Option<CriTemplate> {
        let key = (self.key_types.len() < AllowedKey::ALL)
            .then(|| self.key_types.first().map(|k| k.key_type()))
            .flatten();
        if key.is_none() && self.required_rdns.is_empty() && !self.san_required() {
            return None;
        }
        let mut subject: Vec<RdnTemplate> = self
            .required_rdns
            .iter()
            .map(|r| RdnTemplate {
                oid: r.oid,
                value: Some(r.value.clone()),
            })
            .collect();
        // a CN the client fills in, where the template needs one (the user's name, or the
        // device's); elsewhere a CN is the client's choice
        if self.cn_must_match_user || self.vendor.is_some() {
            subject.push(RdnTemplate {
                oid: COMMON_NAME,
                value: None,
            });
        }
        let mut extensions = Vec::new();
        if self.san_required() {
            extensions.push(ExtTemplate {
                oid: csrtemplate::SAN,
                critical: false,
                value: None,
            });
        }
        if let Some(ku) = key_usage_der(&self.key_usage) {
            extensions.push(ExtTemplate {
                oid: csrtemplate::KEY_USAGE,
                critical: true,
                value: Some(ku),
            });
        }
        if !self.extended_key_usage.is_empty() {
            let oids: Vec<u8> = self
                .extended_key_usage
                .iter()
                .filter_map(eku_oid)
                .flat_map(|o| der::Encode::to_der(&o).unwrap_or_default())
                .collect();
            extensions.push(ExtTemplate {
                oid: csrtemplate::EXT_KEY_USAGE,
                critical: false,
                value: Some(crate::est::tlv(0x30, &oids)),
            });
        }
        Some(CriTemplate {
            subject,
            key,
            extensions,
        })
    }
}

/// keyUsage as DER (a BIT STRING, bit 0 = digitalSignature), `None` when empty.
fn key_usage_der(usages: &[KeyUsagePurpose]) -> Option<Vec<u8>> {
    let mut bits: u16 = 0;
    for u in usages {
        let bit = match u {
            KeyUsagePurpose::DigitalSignature => 0,
            KeyUsagePurpose::ContentCommitment => 1,
            KeyUsagePurpose::KeyEncipherment => 2,
            KeyUsagePurpose::DataEncipherment => 3,
            KeyUsagePurpose::KeyAgreement => 4,
            KeyUsagePurpose::KeyCertSign => 5,
            KeyUsagePurpose::CrlSign => 6,
            KeyUsagePurpose::EncipherOnly => 7,
            KeyUsagePurpose::DecipherOnly => 8,
        };
        bits |= 0x8000 >> bit;
    }
    if bits == 0 {
        return None;
    }
    let bytes = bits.to_be_bytes();
    let used = if bytes[1] == 0 { 1 } else { 2 };
    let last = bytes[used - 1];
    let unused = last.trailing_zeros() as u8;
    Some(crate::est::tlv(
        0x03,
        &[&[unused][..], &bytes[..used]].concat(),
    ))
}

fn eku_oid(e: &ExtendedKeyUsagePurpose) -> Option<ObjectIdentifier> {
    let arc = match e {
        ExtendedKeyUsagePurpose::ServerAuth => "1.3.6.1.5.5.7.3.1",
        ExtendedKeyUsagePurpose::ClientAuth => "1.3.6.1.5.5.7.3.2",
        ExtendedKeyUsagePurpose::CodeSigning => "1.3.6.1.5.5.7.3.3",
        ExtendedKeyUsagePurpose::EmailProtection => "1.3.6.1.5.5.7.3.4",
        ExtendedKeyUsagePurpose::TimeStamping => "1.3.6.1.5.5.7.3.8",
        ExtendedKeyUsagePurpose::OcspSigning => "1.3.6.1.5.5.7.3.9",
        _ => return None,
    };
    ObjectIdentifier::new(arc).ok()
}
