//! `[tokens]`: the identity provider whose JWTs templates with `auth = ["bearer", …]` take
//! (`Authorization: Bearer`), and the JSON API too.
//!
//! ```toml
//! [tokens]
//! jwks_file = "conf/idp-jwks.json"     # the IdP's keys (JWKS), read at start, or:
//! # jwks_url = "https://idp.example.com/.well-known/jwks.json"
//! # jwks_ca_file = "conf/idp-ca.pem"   # trust anchors for the IdP's TLS certificate
//! # refresh_secs = 600                 # how often the URL is fetched again
//! issuer = "https://idp.example.com/"
//! audience = "estd"
//! user_claim = "preferred_username"   # default "sub"
//! groups_claim = "groups"             # optional
//! algorithms = ["ES256", "EdDSA", "RS256"]
//! leeway_secs = 60
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, bad, secs};
use crate::auth::jwt::{Alg, Settings};
use crate::outbound::TransportSettings;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTokens {
    pub jwks_file: String,
    pub jwks_url: String,
    pub jwks_ca_file: String,
    pub refresh_secs: u64,
    pub issuer: String,
    pub audience: String,
    pub user_claim: String,
    pub groups_claim: String,
    pub algorithms: Vec<String>,
    pub leeway_secs: u64,
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            jwks_file: String::new(),
            jwks_url: String::new(),
            jwks_ca_file: String::new(),
            refresh_secs: 600,
            issuer: String::new(),
            audience: String::new(),
            user_claim: "sub".into(),
            groups_claim: String::new(),
            algorithms: vec!["ES256".into(), "EdDSA".into(), "RS256".into()],
            leeway_secs: 60,
        }
    }
}

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    File(PathBuf),
    /// Fetched at start and every `refresh` (the old keys stay while a fetch fails).
    Url {
        transport: TransportSettings,
        path: String,
        refresh: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct TokensConfig {
    pub settings: Settings,
    pub source: JwksSource,
}

/// `None` without a `[tokens]` table.
pub fn parse(raw: &Option<RawTokens>) -> Result<Option<TokensConfig>, ConfigError> {
    let Some(t) = raw else {
        return Ok(None);
    };
    let need = |key: &str, v: &str| {
        if v.trim().is_empty() || v.chars().any(char::is_control) {
            Err(bad(
                &format!("tokens.{key}"),
                "required (text without control characters)",
            ))
        } else {
            Ok(v.to_string())
        }
    };
    let mut algorithms = Vec::new();
    for a in &t.algorithms {
        let alg = Alg::parse(a).ok_or_else(|| {
            bad(
                "tokens.algorithms",
                format!("{a:?} is not one of RS256, ES256, EdDSA"),
            )
        })?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if algorithms.is_empty() {
        return Err(bad("tokens.algorithms", "name at least one"));
    }
    let settings = Settings {
        issuer: need("issuer", &t.issuer)?,
        audience: need("audience", &t.audience)?,
        user_claim: need("user_claim", &t.user_claim)?,
        groups_claim: (!t.groups_claim.is_empty()).then(|| t.groups_claim.clone()),
        algorithms,
        leeway: Duration::from_secs(t.leeway_secs.min(600)),
    };
    let source = match (t.jwks_file.is_empty(), t.jwks_url.is_empty()) {
        (false, true) => JwksSource::File(PathBuf::from(&t.jwks_file)),
        (true, false) => {
            let (origin, path) =
                super::upstream::split_url(&t.jwks_url).map_err(|e| bad("tokens.jwks_url", e))?;
            if !origin.starts_with("https://") {
                return Err(bad(
                    "tokens.jwks_url",
                    "https:// only (the keys decide who may enroll)",
                ));
            }
            if t.jwks_ca_file.is_empty() {
                return Err(bad(
                    "tokens.jwks_ca_file",
                    "required with jwks_url (the IdP's TLS trust anchors)",
                ));
            }
            JwksSource::Url {
                transport: TransportSettings {
                    origin,
                    ca_file: Some(PathBuf::from(&t.jwks_ca_file)),
                    client_cert: None,
                    client_key: None,
                    client_token_key: None,
                    connect_timeout: Duration::from_secs(5),
                    request_timeout: Duration::from_secs(15),
                    max_answer: 256 * 1024,
                },
                path: if path.is_empty() { "/".into() } else { path },
                refresh: secs("tokens.refresh_secs", t.refresh_secs, 86_400)?,
            }
        }
        _ => {
            return Err(bad(
                "tokens",
                "name the identity provider's keys: jwks_file or jwks_url (one of them)",
            ));
        }
    };
    Ok(Some(TokensConfig { settings, source }))
}
