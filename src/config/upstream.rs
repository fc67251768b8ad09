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
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ConfigError, bad, secs};
use crate::ca::upstream::{Reenroll, Settings};
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
        }
    }
}

/// An upstream as the wiring needs it: how it behaves, and how it is reached.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub settings: Settings,
    pub transport: TransportSettings,
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
    if u.kind != "est" {
        return Err(bad(
            &key("kind"),
            format!("{:?}: only \"est\" upstreams are supported", u.kind),
        ));
    }
    let (origin, path) = split_url(&u.url).map_err(|e| bad(&key("url"), e))?;
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
    let file = |v: &str| (!v.is_empty()).then(|| PathBuf::from(v));
    let ca_file = file(&u.ca_file);
    if origin.starts_with("https://") && ca_file.is_none() {
        return Err(bad(
            &key("ca_file"),
            "must name the CA certificates the upstream's TLS certificate chains to",
        ));
    }
    if u.client_cert.is_empty() != u.client_key.is_empty() {
        return Err(bad(
            &key("client_cert"),
            "client_cert and client_key must be set together",
        ));
    }
    let basic = match (u.user.is_empty(), u.password_env.is_empty()) {
        (true, true) => None,
        (false, false) => {
            let password = std::env::var(&u.password_env).map_err(|_| {
                bad(
                    &key("password_env"),
                    format!("the environment variable {} is not set", u.password_env),
                )
            })?;
            Some((u.user.clone(), Zeroizing::new(password)))
        }
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
            path,
            basic,
            reenroll,
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
        transport: TransportSettings {
            origin,
            ca_file,
            client_cert: file(&u.client_cert),
            client_key: file(&u.client_key),
            connect_timeout: secs(&key("connect_timeout_secs"), u.connect_timeout_secs, 300)?,
            request_timeout: secs(&key("request_timeout_secs"), u.request_timeout_secs, 600)?,
            max_answer: MAX_ANSWER,
        },
    })
}

/// `https://host:port/path` → (`https://host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String), String> {
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
