//! The development PKI: a root CA, an issuing CA and a TLS server certificate, generated on
//! first start into the CA directory, private keys with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{CaError, Issuer, LocalIssuer};
use crate::est::pem;

/// The key type of a generated CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKeyType {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl CaKeyType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ec-p256" => Self::EcP256,
            "ec-p384" => Self::EcP384,
            "rsa-2048" => Self::Rsa2048,
            "rsa-3072" => Self::Rsa3072,
            "rsa-4096" => Self::Rsa4096,
            _ => return None,
        })
    }

    fn generate(self) -> Result<KeyPair, CaError> {
        use rcgen::RsaKeySize;
        let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
        match self {
            Self::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Self::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            Self::Rsa2048 => rsa(RsaKeySize::_2048),
            Self::Rsa3072 => rsa(RsaKeySize::_3072),
            Self::Rsa4096 => rsa(RsaKeySize::_4096),
        }
        .map_err(|e| CaError::Signing(format!("key generation: {e}")))
    }
}

/// A freshly generated root and issuing CA.
pub struct DevPki {
    pub root_cert: Vec<u8>,
    pub root_key_pem: String,
    pub issuing_cert: Vec<u8>,
    pub issuing_key_pem: String,
}

fn years(n: u64) -> Duration {
    Duration::from_secs(n * 365 * 86_400)
}

fn ca_params(cn: &str, path_len: Option<u8>, lifetime: Duration) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::OrganizationName, "estd development");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    p.not_before = (now - Duration::from_secs(3600)).into();
    p.not_after = (now + lifetime).into();
    p.use_authority_key_identifier_extension = true;
    p
}

impl DevPki {
    pub fn generate(key_type: CaKeyType) -> Result<Self, CaError> {
        let sign = |e: rcgen::Error| CaError::Signing(e.to_string());
        let root_key = key_type.generate()?;
        let root_params = ca_params("estd Development Root CA", None, years(20));
        let root_cert = root_params.self_signed(&root_key).map_err(sign)?;
        let root = rcgen::Issuer::from_params(&root_params, &root_key);

        let issuing_key = key_type.generate()?;
        let issuing_params = ca_params("estd Development Issuing CA", Some(0), years(10));
        let issuing_cert = issuing_params
            .signed_by(&issuing_key, &root)
            .map_err(sign)?;
        Ok(Self {
            root_cert: root_cert.der().to_vec(),
            root_key_pem: root_key.serialize_pem(),
            issuing_cert: issuing_cert.der().to_vec(),
            issuing_key_pem: issuing_key.serialize_pem(),
        })
    }
}

/// Where the CA and TLS files live.
#[derive(Debug, Clone)]
pub struct CaPaths {
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
    pub issuing_cert: PathBuf,
    pub issuing_key: PathBuf,
}

impl CaPaths {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            root_cert: dir.join("root-ca.pem"),
            root_key: dir.join("root-ca.key"),
            issuing_cert: dir.join("issuing-ca.pem"),
            issuing_key: dir.join("issuing-ca.key"),
        }
    }
}

/// The loaded CA: chain (issuing first) and the issuing key.
pub struct LoadedCa {
    pub issuer: LocalIssuer,
    /// True when this start generated the CA.
    pub generated: bool,
}

pub(crate) fn files_err(path: &Path, e: impl std::fmt::Display) -> CaError {
    CaError::Files(format!("{}: {e}", path.display()))
}

/// Loads the CA from `paths`, generating a development PKI when none of its files exist.
pub fn ensure_ca(paths: &CaPaths, key_type: CaKeyType) -> Result<LoadedCa, CaError> {
    let all = [
        &paths.root_cert,
        &paths.root_key,
        &paths.issuing_cert,
        &paths.issuing_key,
    ];
    let generated = if all.iter().all(|p| !p.exists()) {
        if let Some(dir) = paths.issuing_cert.parent() {
            create_private_dir(dir)?;
        }
        let pki = DevPki::generate(key_type)?;
        write_public(&paths.root_cert, &pem("CERTIFICATE", &pki.root_cert))?;
        write_private(&paths.root_key, &pki.root_key_pem)?;
        write_public(&paths.issuing_cert, &pem("CERTIFICATE", &pki.issuing_cert))?;
        write_private(&paths.issuing_key, &pki.issuing_key_pem)?;
        true
    } else {
        for p in [&paths.issuing_cert, &paths.issuing_key, &paths.root_cert] {
            if !p.exists() {
                return Err(files_err(p, "missing (the other CA files exist)"));
            }
        }
        false
    };
    let issuing = read_certs(&paths.issuing_cert)?;
    let root = read_certs(&paths.root_cert)?;
    let key_pem = read_private(&paths.issuing_key)?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| files_err(&paths.issuing_key, e))?;
    let mut chain = issuing;
    for c in root {
        if !chain.contains(&c) {
            chain.push(c);
        }
    }
    let issuer = LocalIssuer::new(chain, key)?;
    Ok(LoadedCa { issuer, generated })
}

/// Loads the CA whose key is elsewhere (a token): the chain from `paths`' certificate
/// files, nothing generated. The key must belong to the issuing CA certificate.
pub fn load_ca_with_key(paths: &CaPaths, key: super::CaKey) -> Result<LoadedCa, CaError> {
    for p in [&paths.issuing_cert, &paths.root_cert] {
        if !p.exists() {
            return Err(files_err(
                p,
                "missing (with ca.key in a token, the CA certificates are files in ca.dir)",
            ));
        }
    }
    let mut chain = read_certs(&paths.issuing_cert)?;
    for c in read_certs(&paths.root_cert)? {
        if !chain.contains(&c) {
            chain.push(c);
        }
    }
    let issuer = LocalIssuer::new(chain, key)?;
    Ok(LoadedCa {
        issuer,
        generated: false,
    })
}

/// The TLS server certificate chain and key, generated (signed by the issuing CA, for
/// `names`) when `cert` and `key` do not exist yet.
pub fn ensure_tls(
    cert: &Path,
    key: &Path,
    ca: &LocalIssuer,
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, bool), CaError> {
    let generated = if !cert.exists() && !key.exists() {
        if let Some(dir) = cert.parent() {
            create_private_dir(dir)?;
        }
        let tls_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "estd");
        p.subject_alt_names = names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e: rcgen::Error| CaError::Files(format!("TLS name {n:?}: {e}"))),
            })
            .collect::<Result<_, _>>()?;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = SystemTime::now();
        p.not_before = (now - Duration::from_secs(3600)).into();
        p.not_after = (now + years(1)).into();
        p.use_authority_key_identifier_extension = true;
        let der = p
            .signed_by(&tls_key, ca.rcgen_issuer())
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let mut text = pem("CERTIFICATE", der.der());
        if let Some(issuing) = ca.chain().first() {
            text.push_str(&pem("CERTIFICATE", issuing));
        }
        write_public(cert, &text)?;
        write_private(key, &tls_key.serialize_pem())?;
        true
    } else {
        false
    };
    let (chain, key_der) = read_tls(cert, key)?;
    Ok((chain, key_der, generated))
}

/// The TLS certificate chain (PEM, at least one certificate) and its private key (at start,
/// and again on SIGHUP).
pub fn read_tls(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| files_err(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| files_err(cert, e))?;
    if chain.is_empty() {
        return Err(files_err(cert, "no certificate in the file"));
    }
    warn_if_readable(key);
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| files_err(key, e))?;
    Ok((chain, key_der))
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, CaError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| files_err(path, e))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| files_err(path, e))?;
    if certs.is_empty() {
        return Err(files_err(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn read_private(path: &Path) -> Result<String, CaError> {
    warn_if_readable(path);
    fs::read_to_string(path).map_err(|e| files_err(path, e))
}

fn warn_if_readable(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "private key file is readable by others; chmod 600 it");
    }
}

/// Creates a directory (and parents), mode 0700 when this call creates it.
pub fn create_private_dir(dir: &Path) -> Result<(), CaError> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| files_err(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| files_err(dir, e))
}

pub(crate) fn write_public(path: &Path, text: &str) -> Result<(), CaError> {
    write_new(path, text, 0o644)
}

/// Writes `text` over `path` (or creates it) all at once: a new file beside it, synced, then
/// renamed, so a reader sees the old content or the new, never half. `private`: mode 0600.
pub fn replace_file(path: &Path, text: &str, private: bool) -> Result<(), CaError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".new-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, text, if private { 0o600 } else { 0o644 })?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        files_err(path, e)
    })
}

/// Writes a secret: created new (never overwriting), mode 0600 from the start.
pub fn write_private(path: &Path, text: &str) -> Result<(), CaError> {
    write_new(path, text, 0o600)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), CaError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| files_err(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| files_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_loads_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CaPaths::in_dir(&dir.path().join("certs"));
        let first = ensure_ca(&paths, CaKeyType::EcP256).unwrap();
        assert!(first.generated);
        for key in [&paths.root_key, &paths.issuing_key] {
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let second = ensure_ca(&paths, CaKeyType::EcP256).unwrap();
        assert!(!second.generated);
        assert_eq!(first.issuer.chain(), second.issuer.chain());
        assert_eq!(second.issuer.chain().len(), 2);

        let (cert, key) = (
            dir.path().join("certs/tls.pem"),
            dir.path().join("certs/tls.key"),
        );
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let (chain, _, generated) = ensure_tls(&cert, &key, &second.issuer, &names).unwrap();
        assert!(generated);
        assert_eq!(chain.len(), 2);
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CaPaths::in_dir(dir.path());
        ensure_ca(&paths, CaKeyType::EcP256).unwrap();
        fs::remove_file(&paths.issuing_key).unwrap();
        let err = ensure_ca(&paths, CaKeyType::EcP256)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("issuing-ca.key"), "{err}");
    }
}
