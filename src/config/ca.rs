//! `[ca]`'s key: the file beside the CA certificate, or a key in a PKCS#11 token.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, bad};

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCa {
    pub dir: String,
    pub key_type: String,
    /// Empty: the key file beside the CA certificate. Or a PKCS#11 URI.
    pub key: String,
    pub pkcs11_module: String,
    pub pin_file: String,
    /// The OCSP responder's key in the same token (a PKCS#11 URI), or empty for a file.
    pub ocsp_key: String,
    /// The key sealing bulk jobs' keys, an AES key in the same token, or empty for a file.
    pub seal_key: String,
    /// Sessions with the token to sign in at once; 0: the default (`DEFAULT_SESSIONS`).
    pub pkcs11_sessions: usize,
}

impl Default for RawCa {
    fn default() -> Self {
        Self {
            dir: String::new(),
            key_type: "ec-p256".into(),
            key: String::new(),
            pkcs11_module: String::new(),
            pin_file: String::new(),
            ocsp_key: String::new(),
            seal_key: String::new(),
            pkcs11_sessions: 0,
        }
    }
}

/// Where the issuing CA's key is when it is in a token. The PIN is not here: it is read
/// from `pin_file`, or from `ESTD_CA_PIN`, when the token is opened.
#[derive(Debug, Clone)]
pub struct CaToken {
    pub uri: crate::ca::pkcs11::Pkcs11Uri,
    /// The vendor's PKCS#11 library (`ca.pkcs11_module`, or the URI's `module-path`).
    pub module: PathBuf,
    pub pin_file: Option<PathBuf>,
    /// The OCSP responder's key pair in the same token (`ca.ocsp_key`), made there when
    /// missing; `None`: a file in `ca.dir`, as without a token.
    pub ocsp_key: Option<crate::ca::pkcs11::Pkcs11Uri>,
    /// The AES key sealing bulk jobs' keys in the same token (`ca.seal_key`), made there
    /// when missing; `None`: `jobs.key` in `ca.dir`.
    pub seal_key: Option<crate::ca::pkcs11::Pkcs11Uri>,
    /// Sessions with the token (each signs one thing at a time): `ca.pkcs11_sessions`.
    pub sessions: usize,
}

/// Sessions with the token when `ca.pkcs11_sessions` is 0: at least 16, and one more than
/// the cores. A local token signs in well under a millisecond, so a few sessions keep up;
/// an HSM across a network holds a session for its round trip (1–5 ms), and S sessions
/// then sign at most S per round trip (S / 5 ms = 3,200 a second for 16): BENCHMARKS.md.
pub fn default_sessions(cores: usize) -> usize {
    (cores + 1).max(16)
}

/// The environment variable that may hold the token's PIN (never the TOML).
pub const CA_PIN_ENV: &str = "ESTD_CA_PIN";

impl CaToken {
    /// The PIN: `pin_file`'s first line, or `ESTD_CA_PIN`.
    pub fn pin(&self) -> Result<zeroize::Zeroizing<String>, String> {
        if let Some(f) = &self.pin_file {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f)
                .map_err(|e| format!("ca.pin_file {}: {e}", f.display()))?
                .permissions()
                .mode();
            if mode & 0o007 != 0 {
                return Err(format!(
                    "ca.pin_file {}: other users may read or write it (mode {:o}): chmod 600 (or 640 for a group)",
                    f.display(),
                    mode & 0o777
                ));
            }
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

/// The PIN file a URI's `pin-source` names (`file:/path` or a plain path).
pub fn uri_pin_file(uri: &crate::ca::pkcs11::Pkcs11Uri) -> Option<PathBuf> {
    uri.pin_source
        .as_deref()
        .map(|s| PathBuf::from(s.strip_prefix("file:").unwrap_or(s)))
}

pub(super) fn ca_token(raw: &RawCa) -> Result<Option<CaToken>, ConfigError> {
    use crate::ca::pkcs11::Pkcs11Uri;
    if raw.key.is_empty() {
        for (k, v) in [
            ("ca.pkcs11_module", &raw.pkcs11_module),
            ("ca.pin_file", &raw.pin_file),
            ("ca.ocsp_key", &raw.ocsp_key),
            ("ca.seal_key", &raw.seal_key),
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
        uri_pin_file(&uri)
    } else {
        Some(PathBuf::from(&raw.pin_file))
    };
    if raw.pkcs11_sessions > 1024 {
        return Err(bad("ca.pkcs11_sessions", "at most 1024 (0: the default)"));
    }
    if pin_file.is_none() && std::env::var_os(CA_PIN_ENV).is_none() {
        return Err(bad(
            "ca.key",
            format!("the token's PIN: set ca.pin_file or {CA_PIN_ENV} (never the TOML)"),
        ));
    }
    let same_token = |k: &str, v: &str| -> Result<Option<Pkcs11Uri>, ConfigError> {
        if v.is_empty() {
            return Ok(None);
        }
        let other = Pkcs11Uri::parse(v).map_err(|e| bad(k, e))?;
        if other.module_path.is_some() || other.pin_source.is_some() {
            return Err(bad(k, "module-path and pin-source are ca.key's"));
        }
        // the same token as ca.key: its attributes when none are given, else equal ones
        let mut other = other;
        if other.token.is_none() && other.serial.is_none() && other.slot_id.is_none() {
            other.token = uri.token.clone();
            other.serial = uri.serial.clone();
            other.slot_id = uri.slot_id;
        } else if (&other.token, &other.serial, other.slot_id)
            != (&uri.token, &uri.serial, uri.slot_id)
        {
            return Err(bad(
                k,
                "must name the token ca.key is in (one log-in, one PIN)",
            ));
        }
        if (&other.object, &other.id) == (&uri.object, &uri.id) {
            return Err(bad(k, "must name another object than ca.key"));
        }
        Ok(Some(other))
    };
    let ocsp_key = same_token("ca.ocsp_key", &raw.ocsp_key)?;
    let seal_key = same_token("ca.seal_key", &raw.seal_key)?;
    if let (Some(o), Some(s)) = (&ocsp_key, &seal_key)
        && (&o.object, &o.id) == (&s.object, &s.id)
    {
        return Err(bad(
            "ca.seal_key",
            "must name another object than ca.ocsp_key",
        ));
    }
    Ok(Some(CaToken {
        uri,
        module,
        pin_file,
        ocsp_key,
        seal_key,
        sessions: match raw.pkcs11_sessions {
            0 => default_sessions(std::thread::available_parallelism().map_or(1, |n| n.get())),
            n => n,
        },
    }))
}
