//! `[upstream.NAME]`: the CAs templates with `issuer = "NAME"` forward to
//! (registration-authority mode). One table per upstream:
//!
//! ```toml
//! [upstream.corp]
//! kind = "est"
//! url = "https://ca.example.com:8443/.well-known/est"
//! label = "routers"              # optional: the upstream's CA label
//! ca_file = "conf/corp-ca.pem"   # trust anchors for the upstream's TLS certificate
//! client_cert = "conf/ra.pem"    # the RA's TLS client certificate and key
//! client_key = "conf/ra.key"
//! user = "estd-ra"               # optional HTTP Basic
//! password_env = "ESTD_RA_PASSWORD"
//!
//! [upstream.ndes]                # AD CS through NDES
//! kind = "scep"
//! url = "http://ndes.example.com/certsrv/mscep/mscep.dll"
//! ca_fingerprint = "5f3c…"       # SHA-256 of the CA certificate GetCACert returns
//! ra_cert = "conf/ndes-ra.pem"   # the RA's RSA certificate and key: they sign the requests
//! ra_key = "conf/ndes-ra.key"
//! challenge = "ndes"             # none | static | estd | ndes
//! challenge_url = "https://ndes.example.com/certsrv/mscep_admin/"
//! challenge_user = "CORP\\svc-estd"
//! challenge_password_env = "ESTD_NDES_PASSWORD"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ConfigError, bad, secs};
use crate::ca::upstream::{Protocol, Reenroll, ScepSettings, Settings, challenge};
use crate::outbound::TransportSettings;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawUpstream {
    pub kind: String,
    pub url: String,
    pub label: String,
    pub ca_file: String,
    pub client_cert: String,
    pub client_key: String,
    pub user: String,
    /// The environment variable holding the Basic password (never the password itself).
    pub password_env: String,
    pub connect_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_in_flight: u64,
    pub breaker_failures: u32,
    pub breaker_open_secs: u64,
    pub cacerts_refresh_secs: u64,
    /// `simpleenroll` (default) or `simplereenroll`: what a device's renewal becomes.
    pub reenroll: String,
    pub poll_max_secs: u64,
    pub pending_max_days: u64,
    /// SCEP: the RA's RSA certificate and PKCS#8 key (PEM files).
    pub ra_cert: String,
    pub ra_key: String,
    /// SCEP: SHA-256 (hex) of the CA certificate GetCACert returns (required over http://).
    pub ca_fingerprint: String,
    /// SCEP: where estd-made CSRs get their challenge: none, static, estd, ndes.
    pub challenge: String,
    pub challenge_env: String,
    pub challenge_url: String,
    pub challenge_template: String,
    pub challenge_user: String,
    pub challenge_password_env: String,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            kind: "est".into(),
            url: String::new(),
            label: String::new(),
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            user: String::new(),
            password_env: String::new(),
            connect_timeout_secs: 3,
            request_timeout_secs: 15,
            max_in_flight: 16,
            breaker_failures: 5,
            breaker_open_secs: 30,
            cacerts_refresh_secs: 3600,
            reenroll: "simpleenroll".into(),
            poll_max_secs: 300,
            pending_max_days: 7,
            ra_cert: String::new(),
            ra_key: String::new(),
            ca_fingerprint: String::new(),
            challenge: "none".into(),
            challenge_env: String::new(),
            challenge_url: String::new(),
            challenge_template: String::new(),
            challenge_user: String::new(),
            challenge_password_env: String::new(),
        }
    }
}

/// An upstream as the wiring needs it: how it behaves, and how it is reached.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub settings: Settings,
    pub transport: TransportSettings,
    /// Where a SCEP upstream's one-time challenges are fetched (`challenge_url`).
    pub challenge_transport: Option<TransportSettings>,
    /// `client_key = "pkcs11:…"`: the RA's TLS key in the CA's token (`[ca]`), which the
    /// wiring opens and puts into `transport.client_token_key`.
    pub client_key_uri: Option<String>,
}

/// Largest answer read from an upstream (a certs-only PKCS#7 is a few KiB).
const MAX_ANSWER: usize = 1024 * 1024;

pub fn parse(raw: &BTreeMap<String, RawUpstream>) -> Result<Vec<UpstreamConfig>, ConfigError> {
    raw.iter().map(|(name, u)| one(name, u)).collect()
}

fn one(name: &str, u: &RawUpstream) -> Result<UpstreamConfig, ConfigError> {
    let key = |k: &str| format!("upstream.{name}.{k}");
    if !crate::est::valid_label(name) || name == crate::model::LOCAL_ISSUER {
        return Err(bad(
            &format!("upstream.{name}"),
            "an upstream's name is letters, digits, '-' and '_' (and not \"local\")",
        ));
    }
    let (origin, path) = split_url(&u.url).map_err(|e| bad(&key("url"), e))?;
    let file = |v: &str| (!v.is_empty()).then(|| PathBuf::from(v));
    let ca_file = file(&u.ca_file);
    if origin.starts_with("https://") && ca_file.is_none() {
        return Err(bad(
            &key("ca_file"),
            "must name the CA certificates the upstream's TLS certificate chains to",
        ));
    }
    let https = origin.starts_with("https://");
    if !https && !u.client_cert.is_empty() {
        return Err(bad(
            &key("client_cert"),
            "a TLS client certificate needs an https:// url",
        ));
    }
    if u.client_cert.is_empty() != u.client_key.is_empty() {
        return Err(bad(
            &key("client_cert"),
            "client_cert and client_key must be set together",
        ));
    }
    let connect_timeout = secs(&key("connect_timeout_secs"), u.connect_timeout_secs, 300)?;
    let request_timeout = secs(&key("request_timeout_secs"), u.request_timeout_secs, 600)?;
    // certificates only for https:// (a SCEP upstream may be http:// with its challenges
    // fetched over https://)
    let transport = |origin: String, client: bool| TransportSettings {
        ca_file: ca_file.clone().filter(|_| origin.starts_with("https://")),
        client_cert: file(&u.client_cert).filter(|_| client),
        client_key: file(&u.client_key).filter(|_| client && !u.client_key.starts_with("pkcs11:")),
        client_token_key: None,
        origin,
        connect_timeout,
        request_timeout,
        max_answer: MAX_ANSWER,
    };
    let mut challenge_transport = None;
    let protocol = match u.kind.as_str() {
        // RFC 7030 §3.3: EST is over TLS (the RA's password, and the CA certificates that
        // become trust anchors, must not cross the network in clear)
        "est" if !https => {
            return Err(bad(&key("url"), "an EST upstream is reached over https://"));
        }
        "est" => est(u, &key, &path)?,
        "scep" => {
            let (protocol, at) = scep(u, &key, &path, https)?;
            challenge_transport = at.map(|o| transport(o, false));
            protocol
        }
        other => {
            return Err(bad(
                &key("kind"),
                format!("{other:?} is not \"est\" or \"scep\""),
            ));
        }
    };
    let max_in_flight = usize::try_from(u.max_in_flight)
        .ok()
        .filter(|n| (1..=1024).contains(n))
        .ok_or_else(|| bad(&key("max_in_flight"), "out of range (1 to 1024)"))?;
    if !(1..=1000).contains(&u.breaker_failures) {
        return Err(bad(&key("breaker_failures"), "out of range (1 to 1000)"));
    }
    Ok(UpstreamConfig {
        settings: Settings {
            name: name.to_string(),
            protocol,
            max_in_flight,
            breaker_failures: u.breaker_failures,
            breaker_open: secs(&key("breaker_open_secs"), u.breaker_open_secs, 3600)?,
            cacerts_refresh: secs(&key("cacerts_refresh_secs"), u.cacerts_refresh_secs, 86_400)?,
            poll_max: secs(&key("poll_max_secs"), u.poll_max_secs, 86_400)?,
            pending_max_age: Duration::from_secs(
                u.pending_max_days
                    .checked_mul(86_400)
                    .filter(|_| (1..=90).contains(&u.pending_max_days))
                    .ok_or_else(|| bad(&key("pending_max_days"), "out of range (1 to 90)"))?,
            ),
        },
        transport: transport(origin, true),
        challenge_transport,
        client_key_uri: u
            .client_key
            .starts_with("pkcs11:")
            .then(|| u.client_key.clone()),
    })
}

fn est(u: &RawUpstream, key: &dyn Fn(&str) -> String, path: &str) -> Result<Protocol, ConfigError> {
    let mut path = path.trim_end_matches('/').to_string();
    if path.is_empty() {
        path = "/.well-known/est".into();
    }
    if !u.label.is_empty() {
        if !crate::est::valid_label(&u.label) {
            return Err(bad(
                &key("label"),
                format!("{:?} is not a valid EST label", u.label),
            ));
        }
        path = format!("{path}/{}", u.label);
    }
    let basic = match (u.user.is_empty(), u.password_env.is_empty()) {
        (true, true) => None,
        (false, false) => Some((
            u.user.clone(),
            env_secret(&key("password_env"), &u.password_env)?,
        )),
        _ => {
            return Err(bad(
                &key("user"),
                "user and password_env must be set together",
            ));
        }
    };
    if basic.is_none() && u.client_cert.is_empty() {
        return Err(bad(
            &key("client_cert"),
            "the registration authority needs a client certificate or user and password_env",
        ));
    }
    let reenroll = match u.reenroll.as_str() {
        "simpleenroll" => Reenroll::SimpleEnroll,
        "simplereenroll" => Reenroll::SimpleReenroll,
        other => {
            return Err(bad(
                &key("reenroll"),
                format!("{other:?} is not \"simpleenroll\" or \"simplereenroll\""),
            ));
        }
    };
    Ok(Protocol::Est {
        path,
        basic,
        reenroll,
    })
}

/// A SCEP upstream, and the origin its challenges come from (when fetched).
fn scep(
    u: &RawUpstream,
    key: &dyn Fn(&str) -> String,
    path: &str,
    https: bool,
) -> Result<(Protocol, Option<String>), ConfigError> {
    for (k, set) in [
        ("label", &u.label),
        ("user", &u.user),
        ("password_env", &u.password_env),
    ] {
        if !set.is_empty() {
            return Err(bad(
                &key(k),
                "is for kind = \"est\" (a SCEP upstream's URL names its path; its challenges have challenge_user)",
            ));
        }
    }
    let path = if path.is_empty() || path == "/" {
        "/cgi-bin/pkiclient.exe".to_string()
    } else {
        path.to_string()
    };
    let fingerprint = u.ca_fingerprint.replace(':', "").to_ascii_lowercase();
    if !fingerprint.is_empty()
        && (fingerprint.len() != 64 || !fingerprint.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(bad(
            &key("ca_fingerprint"),
            "a SHA-256 fingerprint is 64 hex digits",
        ));
    }
    if fingerprint.is_empty() && !https {
        return Err(bad(
            &key("ca_fingerprint"),
            "over http:// GetCACert is trusted only by the CA's SHA-256 fingerprint: set it",
        ));
    }
    if u.ra_cert.is_empty() || u.ra_key.is_empty() {
        return Err(bad(
            &key("ra_cert"),
            "a SCEP upstream needs the RA's RSA certificate and key (ra_cert, ra_key)",
        ));
    }
    use rustls_pki_types::pem::PemObject;
    let ra_cert = rustls_pki_types::CertificateDer::from_pem_file(&u.ra_cert)
        .map_err(|e| bad(&key("ra_cert"), format!("{}: {e:?}", u.ra_cert)))?
        .to_vec();
    let ra_key = match rustls_pki_types::PrivateKeyDer::from_pem_file(&u.ra_key)
        .map_err(|e| bad(&key("ra_key"), format!("{}: {e:?}", u.ra_key)))?
    {
        rustls_pki_types::PrivateKeyDer::Pkcs8(k) => Zeroizing::new(k.secret_pkcs8_der().to_vec()),
        _ => {
            return Err(bad(
                &key("ra_key"),
                "must be PKCS#8 (BEGIN PRIVATE KEY): openssl pkcs8 -topk8 -nocrypt converts it",
            ));
        }
    };
    let secret = |k: &str, env: &str| env_secret(&key(k), env);
    let (challenge, origin) = match u.challenge.as_str() {
        "none" => (challenge::Source::None, None),
        "static" => (
            challenge::Source::Static(secret("challenge_env", &u.challenge_env)?),
            None,
        ),
        kind @ ("estd" | "ndes") => {
            let (origin, cpath) =
                split_url(&u.challenge_url).map_err(|e| bad(&key("challenge_url"), e))?;
            // the service account's password and the one-time challenges it fetches
            if !origin.starts_with("https://") {
                return Err(bad(
                    &key("challenge_url"),
                    "challenges are fetched over https://",
                ));
            }
            let basic = match (
                u.challenge_user.is_empty(),
                u.challenge_password_env.is_empty(),
            ) {
                (false, false) => Some(crate::ca::upstream::basic_header(
                    &u.challenge_user,
                    &secret("challenge_password_env", &u.challenge_password_env)?,
                )),
                (true, true) => None,
                _ => {
                    return Err(bad(
                        &key("challenge_user"),
                        "challenge_user and challenge_password_env must be set together",
                    ));
                }
            };
            let source = if kind == "estd" {
                if u.challenge_template.is_empty() {
                    return Err(bad(
                        &key("challenge_template"),
                        "the estd upstream's template the challenges are for",
                    ));
                }
                challenge::Source::Estd {
                    path: if cpath.is_empty() {
                        "/api/v1/scep/challenges".into()
                    } else {
                        cpath
                    },
                    template: u.challenge_template.clone(),
                    basic: basic.ok_or_else(|| {
                        bad(
                            &key("challenge_user"),
                            "an estd upstream's API needs its administrator's user and password",
                        )
                    })?,
                }
            } else {
                challenge::Source::Ndes {
                    path: if cpath.is_empty() {
                        "/certsrv/mscep_admin/".into()
                    } else {
                        cpath
                    },
                    basic,
                }
            };
            (source, Some(origin))
        }
        other => {
            return Err(bad(
                &key("challenge"),
                format!("{other:?} is not none, static, estd or ndes"),
            ));
        }
    };
    Ok((
        Protocol::Scep {
            scep: ScepSettings {
                path,
                ra_cert,
                ra_key,
                ca_fingerprint: (!fingerprint.is_empty()).then_some(fingerprint),
            },
            challenge,
        },
        origin,
    ))
}

/// The secret in the environment variable `env` names.
fn env_secret(key: &str, env: &str) -> Result<Zeroizing<String>, ConfigError> {
    if env.is_empty() {
        return Err(bad(
            key,
            "name the environment variable that holds the secret",
        ));
    }
    std::env::var(env)
        .map(Zeroizing::new)
        .map_err(|_| bad(key, format!("the environment variable {env} is not set")))
}

/// `https://host:port/path` → (`https://host:port`, `/path`).
pub(super) fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an https:// (or http://) URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty()
        || authority.contains(['@', '?', '#'])
        || path.contains(['?', '#'])
        || url.contains(char::is_whitespace)
    {
        return Err(format!(
            "{url:?} is not a URL like https://ca.example.com:8443/.well-known/est"
        ));
    }
    Ok((url[..url.len() - path.len()].to_string(), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_and_path() {
        assert_eq!(
            split_url("https://ca:8443/.well-known/est").ok(),
            Some(("https://ca:8443".into(), "/.well-known/est".into()))
        );
        assert_eq!(
            split_url("http://10.0.0.1").ok(),
            Some(("http://10.0.0.1".into(), String::new()))
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://u@h/",
            "https://h/p?q",
            "https://h /",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod secrets {
    // Tests only: an unwrap asserts that a literal configuration loads; its panic is the
    // test failing.
    use super::*;

    #[test]
    fn the_basic_password_is_never_printed() {
        // PATH as the password: a variable every test process has (the crate sets none)
        let secret = std::env::var("PATH").unwrap();
        let mut raw = BTreeMap::new();
        raw.insert(
            "corp".to_string(),
            RawUpstream {
                url: "https://ca.example/.well-known/est".into(),
                ca_file: "ca.pem".into(),
                user: "estd-ra".into(),
                password_env: "PATH".into(),
                ..RawUpstream::default()
            },
        );
        let parsed = parse(&raw).unwrap();
        let shown = format!("{parsed:?}");
        assert!(
            shown.contains("estd-ra") && !shown.contains(&secret),
            "{shown}"
        );
        // and over http:// an EST upstream is refused (its password, its CA certificates)
        raw.get_mut("corp").unwrap().url = "http://ca.example/.well-known/est".into();
        let e = parse(&raw).unwrap_err().to_string();
        assert!(e.contains("https://"), "{e}");
    }
}
