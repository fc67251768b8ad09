//! `estd ca init --pkcs11`: the CA's key made inside a token, then either a self-signed CA
//! certificate (a root) in `ca.dir`, or a certificate request for an external root.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};

use super::{Pkcs11Uri, Token};
use crate::ca::devpki::{CaPaths, create_private_dir, write_public};
use crate::est::KeyType;

/// What to make with the new key.
#[derive(Debug, Clone, Copy)]
pub enum InitOutput<'a> {
    /// A self-signed CA certificate, written as `issuing-ca.pem` and `root-ca.pem` in this
    /// directory.
    SelfSigned(&'a Path),
    /// A PKCS#10 request (PEM) written here.
    Csr(&'a Path),
}

/// Makes the key in the token and the certificate or request; returns what to tell the
/// operator.
pub fn init(
    module: &str,
    uri: &Pkcs11Uri,
    pin: &str,
    key_type: KeyType,
    name: &str,
    output: InitOutput<'_>,
) -> Result<String, String> {
    if let InitOutput::SelfSigned(dir) = output {
        let paths = CaPaths::in_dir(dir);
        for p in [&paths.issuing_cert, &paths.root_cert, &paths.issuing_key] {
            if p.exists() {
                return Err(format!("{}: a CA is already there", p.display()));
            }
        }
    }
    let token = Token::open(module, uri, pin, 1).map_err(|e| e.to_string())?;
    let key = token.generate(uri, key_type).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let fail = |e: rcgen::Error| match key.take_error() {
        Some(t) => t.to_string(),
        None => e.to_string(),
    };
    match output {
        InitOutput::Csr(path) => {
            let csr = params.serialize_request(&key).map_err(fail)?;
            let pem = csr.pem().map_err(|e| e.to_string())?;
            std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(format!(
                "made {key_type} key {uri} in the token; certificate request in {} (have it signed, then put the certificate in ca.dir as issuing-ca.pem and its root as root-ca.pem)",
                path.display()
            ))
        }
        InitOutput::SelfSigned(dir) => {
            let now = SystemTime::now();
            params.not_before = (now - Duration::from_secs(300)).into();
            params.not_after = (now + Duration::from_secs(10 * 365 * 86_400)).into();
            params.serial_number = Some(
                crate::ca::new_serial()
                    .map_err(|e| e.to_string())?
                    .to_vec()
                    .into(),
            );
            let cert = params.self_signed(&key).map_err(fail)?;
            create_private_dir(dir).map_err(|e| e.to_string())?;
            let paths = CaPaths::in_dir(dir);
            write_public(&paths.issuing_cert, &cert.pem()).map_err(|e| e.to_string())?;
            write_public(&paths.root_cert, &cert.pem()).map_err(|e| e.to_string())?;
            Ok(format!(
                "made {key_type} key {uri} in the token and a self-signed CA certificate, CN={name}, in {} (set ca.key to the URI)",
                paths.issuing_cert.display()
            ))
        }
    }
}
