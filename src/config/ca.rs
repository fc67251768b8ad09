//! `[ca]`'s key: the file beside the CA certificate, or a key in a PKCS#11 token.

use std::path::PathBuf;

use super::{ConfigError, RawCa, bad};

/// Where the issuing CA's key is when it is in a token. The PIN is not here: it is read
/// from `pin_file`, or from `ESTD_CA_PIN`, when the token is opened.
#[derive(Debug, Clone)]
pub struct CaToken {
    pub uri: crate::ca::pkcs11::Pkcs11Uri,
    /// The vendor's PKCS#11 library (`ca.pkcs11_module`, or the URI's `module-path`).
    pub module: PathBuf,
    pub pin_file: Option<PathBuf>,
}

/// The environment variable that may hold the token's PIN (never the TOML).
pub const CA_PIN_ENV: &str = "ESTD_CA_PIN";

impl CaToken {
    /// The PIN: `pin_file`'s first line, or `ESTD_CA_PIN`.
    pub fn pin(&self) -> Result<zeroize::Zeroizing<String>, String> {
        if let Some(f) = &self.pin_file {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("ca.pin_file {}: {e}", f.display()))?,
            );
            let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if line.is_empty() {
                return Err(format!("ca.pin_file {}: empty", f.display()));
            }
            return Ok(zeroize::Zeroizing::new(line.to_string()));
        }
        std::env::var(CA_PIN_ENV)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| format!("the token's PIN: set ca.pin_file or {CA_PIN_ENV}"))
    }
}

pub(super) fn ca_token(raw: &RawCa) -> Result<Option<CaToken>, ConfigError> {
    use crate::ca::pkcs11::Pkcs11Uri;
    if raw.key.is_empty() {
        for (k, v) in [
            ("ca.pkcs11_module", &raw.pkcs11_module),
            ("ca.pin_file", &raw.pin_file),
        ] {
            if !v.is_empty() {
                return Err(bad(k, "needs ca.key to be a PKCS#11 URI"));
            }
        }
        return Ok(None);
    }
    if !Pkcs11Uri::is_uri(&raw.key) {
        return Err(bad(
            "ca.key",
            "a PKCS#11 URI (pkcs11:token=…;object=…), or empty for the key file in ca.dir",
        ));
    }
    let uri = Pkcs11Uri::parse(&raw.key).map_err(|e| bad("ca.key", e))?;
    let module = if raw.pkcs11_module.is_empty() {
        uri.module_path.clone().map(PathBuf::from).ok_or_else(|| {
            bad(
                "ca.pkcs11_module",
                "the vendor's PKCS#11 library (.so) is needed for ca.key",
            )
        })?
    } else {
        PathBuf::from(&raw.pkcs11_module)
    };
    let pin_file = if raw.pin_file.is_empty() {
        uri.pin_source
            .as_deref()
            .map(|s| PathBuf::from(s.strip_prefix("file:").unwrap_or(s)))
    } else {
        Some(PathBuf::from(&raw.pin_file))
    };
    if pin_file.is_none() && std::env::var_os(CA_PIN_ENV).is_none() {
        return Err(bad(
            "ca.key",
            format!("the token's PIN: set ca.pin_file or {CA_PIN_ENV} (never the TOML)"),
        ));
    }
    Ok(Some(CaToken {
        uri,
        module,
        pin_file,
    }))
}
