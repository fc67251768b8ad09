//! `estd ca init`, `ca import` and `ca show`: the CA commands that need the configuration
//! (where the CA's files are, and its keys: files or a PKCS#11 token).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// `estd ca init --pkcs11`: the module and the PIN as `serve` finds them.
pub fn ca_init(
    config: &Config,
    uri: &str,
    key_type: &str,
    csr: Option<&Path>,
    name: &str,
    module: Option<PathBuf>,
) -> Result<(), String> {
    use crate::ca::pkcs11::{Pkcs11Uri, init};
    let uri = Pkcs11Uri::parse(uri).map_err(|e| format!("--pkcs11: {e}"))?;
    let key_type = crate::est::KeyType::parse(key_type).ok_or_else(|| {
        format!("--key-type {key_type:?}: ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096")
    })?;
    let (module, pin) = cli_token(config, &uri, module)?;
    let output = match csr {
        Some(path) => init::InitOutput::Csr(path),
        None => init::InitOutput::SelfSigned(&config.ca_dir),
    };
    let text = init::init(&module, &uri, &pin, key_type, name, output)?;
    crate::outln!("{text}");
    Ok(())
}

/// The module and the PIN for a token named on the command line, found as `serve` finds
/// them (`--module`, `ca.pkcs11_module` or the URI; `ca.pin_file`, the URI or `ESTD_CA_PIN`).
fn cli_token(
    config: &Config,
    uri: &crate::ca::pkcs11::Pkcs11Uri,
    module: Option<PathBuf>,
) -> Result<(String, zeroize::Zeroizing<String>), String> {
    let configured = config.ca_token.as_ref();
    let module = module
        .or_else(|| configured.map(|t| t.module.clone()))
        .or_else(|| uri.module_path.clone().map(PathBuf::from))
        .ok_or("the PKCS#11 module: give --module, ca.pkcs11_module or the URI's module-path")?;
    let token = crate::config::CaToken {
        uri: uri.clone(),
        module: module.clone(),
        pin_file: configured
            .and_then(|t| t.pin_file.clone())
            .or_else(|| crate::config::uri_pin_file(uri)),
        ocsp_key: None,
        seal_key: None,
        sessions: 1,
    };
    Ok((module.to_string_lossy().into_owned(), token.pin()?))
}

/// `estd ca import`: with a key file, or a key in a token (`--pkcs11`).
pub fn ca_import(
    config: &Config,
    cert: &Path,
    key: Option<&Path>,
    pkcs11: Option<String>,
    module: Option<PathBuf>,
    chain: Option<&Path>,
    force: bool,
) -> Result<(), String> {
    use crate::ca::import::{ImportKey, Target, import};
    let key = match (key, pkcs11) {
        (Some(path), _) => ImportKey::File(path),
        (None, Some(uri)) => {
            let uri =
                crate::ca::pkcs11::Pkcs11Uri::parse(&uri).map_err(|e| format!("--pkcs11: {e}"))?;
            let (module, pin) = cli_token(config, &uri, module)?;
            let token = crate::ca::pkcs11::Token::open(&module, &uri, &pin, 1)
                .map_err(|e| format!("--pkcs11: {e}"))?;
            ImportKey::Token(Box::new(
                token.key(&uri).map_err(|e| format!("--pkcs11: {e}"))?,
            ))
        }
        (None, None) => return Err("give --key FILE or --pkcs11 URI".into()),
    };
    let to = Target {
        ca_dir: &config.ca_dir,
        tls_cert: &config.tls_cert,
    };
    let text = import(to, cert, key, chain, force).map_err(|e| e.to_string())?;
    crate::out!("{text}");
    Ok(())
}

/// `estd ca show`: the CA, and where each key lives as the configuration says.
pub fn ca_show(config: &Config) -> Result<(), String> {
    use crate::ca::show::{KeyPlace, KeyPlaces};
    let token = config.ca_token.as_ref();
    let place = |uri: Option<&crate::ca::pkcs11::Pkcs11Uri>, file: PathBuf| match (token, uri) {
        (Some(t), Some(uri)) => KeyPlace::Token {
            uri: uri.to_string(),
            module: t.module.display().to_string(),
        },
        _ => KeyPlace::File(file),
    };
    let places = KeyPlaces {
        issuing: place(token.map(|t| &t.uri), config.ca_dir.join("issuing-ca.key")),
        ocsp: place(
            token.and_then(|t| t.ocsp_key.as_ref()),
            config.ca_dir.join("ocsp-responder.key"),
        ),
        seal: place(
            token.and_then(|t| t.seal_key.as_ref()),
            config.ca_dir.join("jobs.key"),
        ),
        tls: KeyPlace::File(config.tls_key.clone()),
    };
    let text = crate::ca::show::show(&config.ca_dir, &places).map_err(|e| e.to_string())?;
    crate::out!("{text}");
    Ok(())
}
