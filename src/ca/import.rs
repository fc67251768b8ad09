//! `estd ca import`: an existing CA (certificate, key, the chain above it) becomes estd's
//! issuing CA, in the files `ensure_ca` reads (`issuing-ca.pem`, `issuing-ca.key`, and
//! `root-ca.pem` holding the certificates above it up to the root). The key is a PKCS#8
//! file (copied into `ca.dir`), or a key in a PKCS#11 token (only the certificates are
//! written; `ca.key` names the key).

use std::path::Path;

use der::Decode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_cert::Certificate;

use super::devpki::{CaPaths, create_private_dir, files_err as bad, read_certs, replace_file};
use super::{CaError, LocalIssuer};

const BASIC_CONSTRAINTS: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.15");

/// Whether the certificate may sign certificates: basicConstraints cA, and keyCertSign
/// when it has a key usage extension.
fn check_ca(path: &Path, cert: &Certificate) -> Result<(), CaError> {
    let tbs = cert.tbs_certificate();
    let exts = tbs.extensions().map(|e| e.as_slice()).unwrap_or(&[]);
    let bc = exts
        .iter()
        .find(|e| e.extn_id == BASIC_CONSTRAINTS)
        .and_then(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).ok()
        });
    if !bc.is_some_and(|b| b.ca) {
        return Err(bad(
            path,
            "not a CA certificate (basicConstraints without cA=TRUE)",
        ));
    }
    if let Some(ku) = exts.iter().find(|e| e.extn_id == KEY_USAGE) {
        let ku = x509_cert::ext::pkix::KeyUsage::from_der(ku.extn_value.as_bytes())
            .map_err(|e| bad(path, format!("key usage: {e}")))?;
        if !ku.key_cert_sign() {
            return Err(bad(path, "the key usage does not allow keyCertSign"));
        }
    }
    let not_after = tbs.validity().not_after.to_system_time();
    if not_after <= std::time::SystemTime::now() {
        return Err(bad(
            path,
            format!(
                "the CA certificate expired at {}",
                crate::model::timestamp(not_after)
            ),
        ));
    }
    Ok(())
}

/// Where the CA goes, and the TLS certificate whose issuer is checked against it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub ca_dir: &'a Path,
    pub tls_cert: &'a Path,
}

/// The CA's key: a file, or a key in a token (opened by the caller).
#[derive(Debug)]
pub enum ImportKey<'a> {
    File(&'a Path),
    Token(Box<super::pkcs11::TokenKey>),
}

/// Imports the CA into `to.ca_dir`; returns what to tell the operator.
pub fn import(
    to: Target<'_>,
    cert_path: &Path,
    key: ImportKey<'_>,
    chain_path: Option<&Path>,
    force: bool,
) -> Result<String, CaError> {
    let mut certs = read_certs(cert_path)?;
    let ca_der = certs.remove(0);
    let ca = Certificate::from_der(&ca_der).map_err(|e| bad(cert_path, e))?;
    check_ca(cert_path, &ca)?;
    let mut above = certs;
    if let Some(p) = chain_path {
        above.extend(read_certs(p)?);
    }
    let self_signed = ca.tbs_certificate().issuer() == ca.tbs_certificate().subject();
    if above.is_empty() {
        if !self_signed {
            return Err(bad(
                cert_path,
                "the CA is not self-signed: give the certificates above it with --chain",
            ));
        }
        above.push(ca_der.clone());
    }
    let (key, key_pem, key_place): (super::CaKey, _, _) = match key {
        ImportKey::File(key_path) => {
            let key_pem = std::fs::read_to_string(key_path).map_err(|e| bad(key_path, e))?;
            let key = rcgen::KeyPair::from_pem(&key_pem)
                .map_err(|e| bad(key_path, format!("not a PKCS#8 PEM key estd can use: {e}")))?;
            (key.into(), Some(key_pem), None)
        }
        ImportKey::Token(k) => {
            let place = k.uri().to_string();
            (super::CaKey::Token(*k), None, Some(place))
        }
    };
    let mut chain = vec![ca_der.clone()];
    chain.extend(above.iter().filter(|c| **c != ca_der).cloned());
    // the key must be the certificate's (LocalIssuer checks it), and it must sign
    let issuer = LocalIssuer::new(chain, key)?;
    super::Issuer::check_key(&issuer)?;

    let paths = CaPaths::in_dir(to.ca_dir);
    create_private_dir(to.ca_dir)?;
    let existing: Vec<&Path> = [
        &paths.issuing_cert,
        &paths.issuing_key,
        &paths.root_cert,
        &paths.root_key,
    ]
    .into_iter()
    .map(|p| p.as_path())
    .filter(|p| p.exists())
    .collect();
    let mut out = String::new();
    if !existing.is_empty() {
        if !force {
            return Err(CaError::Files(format!(
                "{} already holds a CA ({}); give --force to replace it (its files are kept, renamed)",
                to.ca_dir.display(),
                existing
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for p in existing {
            let mut to = p.as_os_str().to_owned();
            to.push(format!(".replaced-{stamp}"));
            std::fs::rename(p, &to).map_err(|e| bad(p, e))?;
            out.push_str(&format!(
                "kept the previous {} as {}\n",
                p.display(),
                Path::new(&to).display()
            ));
        }
    }
    if let Some(key_pem) = &key_pem {
        replace_file(&paths.issuing_key, key_pem, true)?;
    }
    replace_file(
        &paths.issuing_cert,
        &crate::est::pem("CERTIFICATE", &ca_der),
        false,
    )?;
    let chain_text: String = above
        .iter()
        .map(|c| crate::est::pem("CERTIFICATE", c))
        .collect();
    replace_file(&paths.root_cert, &chain_text, false)?;
    out.push_str(&format!(
        "imported the issuing CA {} (valid until {})\n  {}\n  {}\n  {} ({} certificate(s) above it)\n",
        crate::model::printable(&ca.tbs_certificate().subject().to_string()),
        crate::model::timestamp(ca.tbs_certificate().validity().not_after.to_system_time()),
        paths.issuing_cert.display(),
        match &key_place {
            Some(uri) => format!("key {uri} in the token (set ca.key to it)"),
            None => paths.issuing_key.display().to_string(),
        },
        paths.root_cert.display(),
        above.len(),
    ));
    // the TLS certificate and the OCSP responder were the old CA's
    if let Ok(tls) = CertificateDer::pem_file_iter(to.tls_cert)
        .map_err(|e| e.to_string())
        .and_then(|mut i| {
            i.next()
                .ok_or("empty".to_string())
                .and_then(|c| c.map_err(|e| e.to_string()))
        })
        && let Ok(tls) = Certificate::from_der(&tls)
        && tls.tbs_certificate().issuer() != ca.tbs_certificate().subject()
    {
        out.push_str(&format!(
            "note: the TLS certificate {} was not issued by this CA; install your own (then SIGHUP), or delete it and its key to have one issued at the next start\n",
            to.tls_cert.display()
        ));
    }
    out.push_str("the OCSP responder certificate is issued again at the next start; restart estd to use the imported CA\n");
    Ok(out)
}
