//! Packaging: the portal FAQ's download formats, its certificate password rules, and the
//! zip bundle of "What are the contents of the certificate zip file?".
//!
//! Layout of a bundle, per certificate (`<base>` is `<CN>_<SAN>`, made safe for every
//! filesystem, e.g. `Joe_11-22-33-44-55-66`):
//! - `<base>.cer`: the certificate in PEM (for `pem-chain`, followed by the CA chain);
//! - when the server generated the key (attribute and bulk requests):
//!   `<base>.key` (encrypted PKCS#8 PEM) for `pem` and `pem-chain`, or `<base>.p12` (key and
//!   certificate, plus the chain for `pkcs12-chain`) for the PKCS#12 formats;
//!
//! and once per bundle: the CA chain (`issuing-ca.cer`, `intermediate-ca-N.cer`,
//! `root-ca.cer`) and the EAP trust file (`eap-server-chain.pem` when an EAP server chain is
//! configured, else `eap-server.cer`, estd's own server certificate).

use std::collections::HashSet;
use std::fmt;
use std::io::Write;

use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
    PrivateKey, PrivateKeyChain,
};
use pkcs8::der::Decode;
use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::pbes2;
use zeroize::Zeroizing;

use crate::est::pem;

/// PBKDF2 iterations for encrypted keys and PKCS#12 (OpenSSL 3 uses 2048 for PKCS#12).
pub const KDF_ITERATIONS: u32 = 10_000;

/// What went wrong packaging.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("unknown download format {0:?} (expected pkcs12-chain, pkcs12, pem-chain or pem)")]
    Format(String),
    #[error("packaging failed: {0}")]
    Encode(String),
}

/// The FAQ's four download formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PKCS#12 with the certificate, its key and the whole chain.
    Pkcs12Chain,
    /// PKCS#12 with the certificate and its key.
    Pkcs12,
    /// The certificate and the chain in PEM; the key as encrypted PKCS#8 PEM.
    PemChain,
    /// The certificate in PEM; the key as encrypted PKCS#8 PEM.
    Pem,
}

impl Format {
    pub const ALL: [Format; 4] = [Self::Pkcs12Chain, Self::Pkcs12, Self::PemChain, Self::Pem];

    pub fn parse(s: &str) -> Result<Self, PackError> {
        Ok(match s {
            "pkcs12-chain" => Self::Pkcs12Chain,
            "pkcs12" => Self::Pkcs12,
            "pem-chain" => Self::PemChain,
            "pem" => Self::Pem,
            other => return Err(PackError::Format(other.chars().take(40).collect())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pkcs12Chain => "pkcs12-chain",
            Self::Pkcs12 => "pkcs12",
            Self::PemChain => "pem-chain",
            Self::Pem => "pem",
        }
    }

    /// The FAQ's description, for the portal's drop-down.
    pub fn description(self) -> &'static str {
        match self {
            Self::Pkcs12Chain => {
                "PKCS12 format (including certificate chain; one file for both the certificate chain and key)"
            }
            Self::Pkcs12 => "PKCS12 format (one file for both certificate and key)",
            Self::PemChain => {
                "Certificate in Privacy Enhanced Electronic Mail (PEM) format, key in PKCS8 PEM format (including certificate chain)"
            }
            Self::Pem => "Certificate in PEM format, key in PKCS8 PEM format",
        }
    }

    fn with_chain(self) -> bool {
        matches!(self, Self::Pkcs12Chain | Self::PemChain)
    }
}

/// One of the FAQ's certificate password rules. `Display` is the FAQ's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRule {
    /// "Includes at least one uppercase letter, one lowercase letter, and one number"
    Classes,
    /// "Length: 8 to 15 characters"
    Length,
    /// "Allowed characters: A-Z, a-z, 0-9, _, #"
    Characters,
}

impl fmt::Display for PasswordRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Classes => {
                "Includes at least one uppercase letter, one lowercase letter, and one number"
            }
            Self::Length => "Length: 8 to 15 characters",
            Self::Characters => "Allowed characters: A-Z, a-z, 0-9, _, #",
        })
    }
}

/// The rules a certificate password breaks, in the FAQ's order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PasswordError {
    pub broken: Vec<PasswordRule>,
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("The certificate password does not follow the password rules: ")?;
        let rules: Vec<String> = self.broken.iter().map(ToString::to_string).collect();
        f.write_str(&rules.join("; "))
    }
}

/// Checks a certificate password against the FAQ's rules; the error names every rule broken.
pub fn check_password(password: &str) -> Result<(), PasswordError> {
    let mut broken = Vec::new();
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
    if !(has(char::is_ascii_uppercase)
        && has(char::is_ascii_lowercase)
        && has(char::is_ascii_digit))
    {
        broken.push(PasswordRule::Classes);
    }
    if !(8..=15).contains(&password.chars().count()) {
        broken.push(PasswordRule::Length);
    }
    if !password
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '#')
    {
        broken.push(PasswordRule::Characters);
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(PasswordError { broken })
    }
}

fn encode_err(e: impl fmt::Display) -> PackError {
    PackError::Encode(e.to_string())
}

/// A PKCS#8 key encrypted with PBES2 (PBKDF2-SHA256, AES-256-CBC), as
/// `-----BEGIN ENCRYPTED PRIVATE KEY-----` PEM.
pub fn encrypted_key_pem(pkcs8_der: &[u8], password: &str) -> Result<Zeroizing<String>, PackError> {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PackError::Encode("no randomness".into()))?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| PackError::Encode("no randomness".into()))?;
    let params = pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(KDF_ITERATIONS, &salt, iv)
        .map_err(encode_err)?;
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8_der).map_err(encode_err)?;
    let doc = info
        .encrypt_with_params(params, password)
        .map_err(encode_err)?;
    let pem = doc
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(encode_err)?;
    Ok(Zeroizing::new(pem.to_string()))
}

/// A PKCS#12 file: the key with the certificate (and `chain`, issuing CA first), protected by
/// `password`. Modern: PBES2/AES-256-CBC with HMAC-SHA256 MAC, which OpenSSL 3 reads
/// without `-legacy`. `legacy`: 3DES and a SHA-1 MAC, for old device importers.
pub fn pkcs12(
    cert_der: &[u8],
    key_pkcs8: &[u8],
    chain: &[Vec<u8>],
    password: &str,
    legacy: bool,
) -> Result<Vec<u8>, PackError> {
    let mut certs = vec![P12Certificate::from_der(cert_der).map_err(encode_err)?];
    for c in chain {
        certs.push(P12Certificate::from_der(c).map_err(encode_err)?);
    }
    let key = PrivateKey::from_der(key_pkcs8).map_err(encode_err)?;
    let mut key_id = [0u8; 20];
    aws_lc_rs::rand::fill(&mut key_id).map_err(|_| PackError::Encode("no randomness".into()))?;
    let mut store = KeyStore::new();
    store.add_entry(
        "certificate",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id.to_vec(), key, certs)),
    );
    let writer = store
        .writer(password)
        .encryption_iterations(KDF_ITERATIONS)
        .mac_iterations(KDF_ITERATIONS);
    let writer = if legacy {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
    } else {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
    };
    writer.write().map_err(encode_err)
}

/// The base file name of a certificate: `<CN>_<SAN>`, or `<CN>` without a SAN.
pub fn base_name(cn: &str, san: Option<&str>) -> String {
    match san.filter(|s| !s.is_empty()) {
        Some(san) => crate::fields::safe_name(&format!("{cn}_{san}")),
        None => crate::fields::safe_name(cn),
    }
}

/// One certificate to put in a bundle.
pub struct Entity {
    pub cn: String,
    /// The SAN as the requester gave it, normalised (a MAC as `11-22-33-44-55-66`).
    pub san: Option<String>,
    pub cert_der: Vec<u8>,
    /// The PKCS#8 key when the server generated it. Never stored in clear or logged.
    pub key_pkcs8: Option<Zeroizing<Vec<u8>>>,
}

/// The files every bundle carries besides the certificates.
#[derive(Debug, Clone)]
pub struct BundleAssets {
    /// The CA chain, issuing CA first, root last (DER).
    pub chain: Vec<Vec<u8>>,
    /// The EAP trust file: its name and PEM text.
    pub eap_file: (String, String),
}

impl BundleAssets {
    /// `eap_chain_pem`: the configured EAP server chain, else estd's own server certificate.
    pub fn new(chain: Vec<Vec<u8>>, eap_chain_pem: Option<String>, own_server_cert: &[u8]) -> Self {
        let eap_file = match eap_chain_pem {
            Some(text) => ("eap-server-chain.pem".to_string(), text),
            None => (
                "eap-server.cer".to_string(),
                pem("CERTIFICATE", own_server_cert),
            ),
        };
        Self { chain, eap_file }
    }

    fn chain_files(&self) -> Vec<(String, String)> {
        let n = self.chain.len();
        self.chain
            .iter()
            .enumerate()
            .map(|(i, der)| {
                let name = if i + 1 == n {
                    "root-ca.cer".to_string()
                } else if i == 0 {
                    "issuing-ca.cer".to_string()
                } else {
                    format!("intermediate-ca-{i}.cer")
                };
                (name, pem("CERTIFICATE", der))
            })
            .collect()
    }
}

/// How to package.
#[derive(Debug, Clone, Copy)]
pub struct PackOptions<'a> {
    pub format: Format,
    pub password: &'a str,
    /// 3DES / SHA-1 PKCS#12 (per template).
    pub legacy_pkcs12: bool,
}

/// A file of a bundle: its name and its bytes (wiped on drop: it may be a key).
pub type BundleFile = (String, Zeroizing<Vec<u8>>);

/// The files of one certificate, by the bundle layout (names not yet made unique).
pub fn entity_files(
    e: &Entity,
    assets: &BundleAssets,
    opts: &PackOptions<'_>,
) -> Result<Vec<BundleFile>, PackError> {
    let base = base_name(&e.cn, e.san.as_deref());
    let mut cer = pem("CERTIFICATE", &e.cert_der);
    if opts.format == Format::PemChain {
        for c in &assets.chain {
            cer.push_str(&pem("CERTIFICATE", c));
        }
    }
    let mut files = vec![(format!("{base}.cer"), Zeroizing::new(cer.into_bytes()))];
    if let Some(key) = &e.key_pkcs8 {
        match opts.format {
            Format::Pem | Format::PemChain => {
                let text = encrypted_key_pem(key, opts.password)?;
                files.push((
                    format!("{base}.key"),
                    Zeroizing::new(text.as_bytes().to_vec()),
                ));
            }
            Format::Pkcs12 | Format::Pkcs12Chain => {
                let chain: &[Vec<u8>] = if opts.format.with_chain() {
                    &assets.chain
                } else {
                    &[]
                };
                let p12 = pkcs12(&e.cert_der, key, chain, opts.password, opts.legacy_pkcs12)?;
                files.push((format!("{base}.p12"), Zeroizing::new(p12)));
            }
        }
    }
    Ok(files)
}

/// The zip bundle of `entities` (checks the password first). Names that repeat get `-2`,
/// `-3`, … before the extension.
pub fn zip_bundle(
    entities: &[Entity],
    assets: &BundleAssets,
    opts: &PackOptions<'_>,
) -> Result<Vec<u8>, PackError> {
    check_password(opts.password)?;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600);
    let mut used = HashSet::new();
    let mut add =
        |zip: &mut zip::ZipWriter<_>, name: String, data: &[u8]| -> Result<(), PackError> {
            let name = unique(&mut used, name);
            zip.start_file(name, options).map_err(encode_err)?;
            zip.write_all(data).map_err(encode_err)
        };
    for files in package_all(entities, assets, opts)? {
        for (name, data) in files {
            add(&mut zip, name, &data)?;
        }
    }
    for (name, text) in assets.chain_files() {
        add(&mut zip, name, text.as_bytes())?;
    }
    let (name, text) = &assets.eap_file;
    add(&mut zip, name.clone(), text.as_bytes())?;
    let cursor = zip.finish().map_err(encode_err)?;
    Ok(cursor.into_inner())
}

/// Every entity's files, in order, spread over the cores (PBKDF2 dominates: ~1 ms a key
/// file, ~2.3 ms a PKCS#12).
fn package_all(
    entities: &[Entity],
    assets: &BundleAssets,
    opts: &PackOptions<'_>,
) -> Result<Vec<Vec<BundleFile>>, PackError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(entities.len())
        .max(1);
    if threads == 1 {
        return entities
            .iter()
            .map(|e| entity_files(e, assets, opts))
            .collect();
    }
    let chunk = entities.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = entities
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|e| entity_files(e, assets, opts))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(entities.len());
        for h in handles {
            let part = h
                .join()
                .map_err(|_| PackError::Encode("a packaging thread panicked".into()))??;
            out.extend(part);
        }
        Ok(out)
    })
}

fn unique(used: &mut HashSet<String>, name: String) -> String {
    if used.insert(name.clone()) {
        return name;
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name.as_str(), ""),
    };
    for n in 2.. {
        let candidate = format!("{stem}-{n}{ext}");
        if used.insert(candidate.clone()) {
            return candidate;
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_password_rule() {
        assert!(check_password("Abcdef12").is_ok());
        assert!(
            check_password("A_b#c1defghijkl").is_ok(),
            "15 characters, _ and #"
        );
        let broken = |p: &str| check_password(p).unwrap_err().broken;
        assert_eq!(
            broken("abcdefg1"),
            vec![PasswordRule::Classes],
            "no upper case"
        );
        assert_eq!(
            broken("ABCDEFG1"),
            vec![PasswordRule::Classes],
            "no lower case"
        );
        assert_eq!(broken("Abcdefgh"), vec![PasswordRule::Classes], "no digit");
        assert_eq!(
            broken("Abcde12"),
            vec![PasswordRule::Length],
            "7 characters"
        );
        assert_eq!(
            broken("Abcdefgh1234567X"),
            vec![PasswordRule::Length],
            "16 characters"
        );
        assert_eq!(broken("Abcdef12!"), vec![PasswordRule::Characters]);
        assert_eq!(broken("Abcdef12 "), vec![PasswordRule::Characters], "space");
        assert_eq!(
            broken("Abcdéf12"),
            vec![PasswordRule::Characters],
            "non-ASCII"
        );
        assert_eq!(
            broken("a!"),
            vec![
                PasswordRule::Classes,
                PasswordRule::Length,
                PasswordRule::Characters
            ]
        );
        assert_eq!(
            check_password("short").unwrap_err().to_string(),
            "The certificate password does not follow the password rules: Includes at least one uppercase letter, one lowercase letter, and one number; Length: 8 to 15 characters"
        );
    }

    #[test]
    fn safe_names() {
        assert_eq!(
            base_name("Joe", Some("11-22-33-44-55-66")),
            "Joe_11-22-33-44-55-66"
        );
        assert_eq!(base_name("Joe", None), "Joe");
        let mut used = HashSet::new();
        assert_eq!(unique(&mut used, "a.cer".into()), "a.cer");
        assert_eq!(unique(&mut used, "a.cer".into()), "a-2.cer");
        assert_eq!(unique(&mut used, "a.cer".into()), "a-3.cer");
    }

    #[test]
    fn formats_parse() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()).unwrap(), f);
        }
        assert!(Format::parse("der").is_err());
    }
}
