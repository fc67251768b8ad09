//! `estd ca show`: the CA certificates in `ca.dir`, and where each of estd's keys lives —
//! a file (with its path) or a PKCS#11 token (with its URI; never a PIN).

use std::path::Path;

use der::Decode;
use x509_cert::Certificate;

use super::CaError;
use super::devpki::{CaPaths, read_certs};

/// Where a key lives, as the configuration says.
#[derive(Debug, Clone)]
pub enum KeyPlace {
    File(std::path::PathBuf),
    /// The URI (no PIN: estd refuses `pin-value`) and the module.
    Token {
        uri: String,
        module: String,
    },
}

impl std::fmt::Display for KeyPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) if p.exists() => write!(f, "{} (a file)", p.display()),
            Self::File(p) => write!(f, "{} (a file, not made yet)", p.display()),
            Self::Token { uri, module } => write!(f, "{uri} (in a PKCS#11 token, module {module})"),
        }
    }
}

/// The keys `estd ca show` reports.
#[derive(Debug, Clone)]
pub struct KeyPlaces {
    pub issuing: KeyPlace,
    pub ocsp: KeyPlace,
    pub seal: KeyPlace,
    pub tls: KeyPlace,
}

fn describe(label: &str, der: &[u8]) -> String {
    let fp = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    match Certificate::from_der(der) {
        Ok(c) => {
            let tbs = c.tbs_certificate();
            format!(
                "{label:<20}{}\n{:<20}issued by {}, valid until {}, SHA-256 {}\n",
                crate::model::printable(&tbs.subject().to_string()),
                "",
                crate::model::printable(&tbs.issuer().to_string()),
                crate::model::timestamp(tbs.validity().not_after.to_system_time()),
                crate::est::hex(fp.as_ref()),
            )
        }
        Err(e) => format!("{label:<20}unreadable: {e}\n"),
    }
}

/// The report: the issuing CA and the certificates above it, then each key's place.
pub fn show(ca_dir: &Path, keys: &KeyPlaces) -> Result<String, CaError> {
    let paths = CaPaths::in_dir(ca_dir);
    let mut out = String::new();
    if paths.issuing_cert.exists() {
        let issuing = read_certs(&paths.issuing_cert)?;
        if let Some(c) = issuing.first() {
            out.push_str(&describe("issuing CA:", c));
        }
    } else {
        out.push_str(&format!(
            "{:<20}none yet ({} is made at the first start)\n",
            "issuing CA:",
            paths.issuing_cert.display()
        ));
    }
    if paths.root_cert.exists() {
        for c in read_certs(&paths.root_cert)? {
            out.push_str(&describe("above it:", &c));
        }
    }
    for (label, place) in [
        ("issuing CA key:", &keys.issuing),
        ("OCSP responder key:", &keys.ocsp),
        ("sealing key:", &keys.seal),
        ("TLS key:", &keys.tls),
    ] {
        out.push_str(&format!("{label:<20}{place}\n"));
    }
    Ok(out)
}
