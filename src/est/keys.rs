//! Key material on the wire: the key types a CSR or a template names, key pairs generated
//! for `/serverkeygen` (and by the EST client), and X.509 names in rcgen's model.

use der::{Tag, Tagged};
use rcgen::{DistinguishedName, DnType, DnValue, KeyPair};
use x509_cert::name::Name;

use super::KeyType;

impl KeyType {
    /// The key type a template or the command line names: `ec-p256`, `ec-p384`,
    /// `rsa-2048`, `rsa-3072`, `rsa-4096`, `ed25519` (as `Display` writes it).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ec-p256" => Self::EcP256,
            "ec-p384" => Self::EcP384,
            "rsa-2048" => Self::Rsa(2048),
            "rsa-3072" => Self::Rsa(3072),
            "rsa-4096" => Self::Rsa(4096),
            "ed25519" => Self::Ed25519,
            _ => return None,
        })
    }
}

/// A key pair the server generated (`/serverkeygen`, portal). The PKCS#8 is wiped on drop;
/// never store or log it.
pub struct GeneratedKey {
    pub key_type: KeyType,
    /// subjectPublicKey bits, as a CSR would carry them.
    pub public_key: Vec<u8>,
    /// PKCS#8 PrivateKeyInfo, DER.
    pub pkcs8: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeneratedKey({}, private key redacted)", self.key_type)
    }
}

/// Generates a key pair (aws-lc-rs). RSA takes tens to hundreds of milliseconds: call it
/// off the async executor.
pub fn generate_key(key_type: KeyType) -> Result<GeneratedKey, String> {
    use rcgen::RsaKeySize;
    let fail = |e: rcgen::Error| format!("key generation: {e}");
    let kp = match key_type {
        KeyType::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        KeyType::Rsa(bits) => {
            let size = match bits {
                2048 => RsaKeySize::_2048,
                3072 => RsaKeySize::_3072,
                4096 => RsaKeySize::_4096,
                other => {
                    return Err(format!(
                        "RSA keys of {other} bits cannot be generated (2048, 3072 or 4096)"
                    ));
                }
            };
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        }
    }
    .map_err(fail)?;
    Ok(GeneratedKey {
        key_type,
        public_key: kp.public_key_raw().to_vec(),
        pkcs8: zeroize::Zeroizing::new(kp.serialize_der()),
    })
}

/// Converts an X.509 name into rcgen's model, refusing what that model cannot hold exactly
/// (an attribute type used twice, a multi-valued RDN, an unusual string type).
pub fn dn_from_name(name: &Name) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    for rdn in name.iter_rdn() {
        let mut atvs = rdn.iter();
        let (Some(atv), None) = (atvs.next(), atvs.next()) else {
            return Err("multi-valued RDNs are not supported".into());
        };
        let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
        if seen.contains(&atv.oid) {
            return Err(format!("attribute {} appears more than once", atv.oid));
        }
        seen.push(atv.oid);
        let bytes = atv.value.value();
        let text =
            || std::str::from_utf8(bytes).map_err(|_| format!("attribute {} is not text", atv.oid));
        let invalid = |e: rcgen::Error| format!("attribute {}: {e}", atv.oid);
        let value = match atv.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into().map_err(invalid)?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(invalid)?),
            Tag::TeletexString => DnValue::TeletexString(text()?.try_into().map_err(invalid)?),
            Tag::BmpString => DnValue::BmpString(
                rcgen::string::BmpString::from_utf16be(bytes.to_vec()).map_err(invalid)?,
            ),
            other => {
                return Err(format!(
                    "attribute {} has unsupported string type {other}",
                    atv.oid
                ));
            }
        };
        dn.push(DnType::from_oid(&arcs), value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_names_round_trip() {
        for s in [
            "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519",
        ] {
            assert_eq!(KeyType::parse(s).map(|k| k.to_string()).as_deref(), Some(s));
        }
        assert_eq!(KeyType::parse("rsa-1024"), None);
        assert!(generate_key(KeyType::Rsa(1024)).is_err());
        let k = generate_key(KeyType::EcP256).unwrap();
        assert_eq!(k.public_key.len(), 65);
    }
}
