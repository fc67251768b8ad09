//! Settings: `conf/estd.toml` (or `--config FILE`), overridden by `ESTD_*` environment
//! variables, extracted by figment into `RawConfig`, then converted into a typed `Config`.
//! Every error names the key and the reason.
//!
//! Environment names: `ESTD_<KEY>` for top-level keys (`ESTD_LISTEN`, `ESTD_DATA_DIR`) and
//! `ESTD_<SECTION>_<KEY>` for keys in a section (`ESTD_DATABASE_URL`, `ESTD_LOG_FILTER`).

mod ca;
mod scep;
mod tokens;
mod upstream;
pub use scep::RawScep;
pub use tokens::{JwksSource, RawTokens, TokensConfig};
pub use upstream::{RawUpstream, UpstreamConfig};

pub use ca::{CA_PIN_ENV, CaToken, RawCa, uri_pin_file};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::ca::devpki::CaKeyType;
use crate::store::Synchronous;

/// The configuration file read when `--config` is not given (and exists).
pub const DEFAULT_FILE: &str = "conf/estd.toml";

/// The sections whose keys `ESTD_<SECTION>_<KEY>` reaches.
const SECTIONS: &[&str] = &[
    "tls",
    "ca",
    "database",
    "est",
    "limits",
    "log",
    "bootstrap",
    "pack",
    "jobs",
    "revocation",
    "metrics",
    "scep",
    "tokens",
];

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub listen: String,
    pub data_dir: String,
    pub tls: RawTls,
    pub ca: RawCa,
    pub database: RawDatabase,
    pub est: RawEst,
    pub limits: RawLimits,
    pub log: RawLog,
    pub bootstrap: RawBootstrap,
    pub pack: RawPack,
    pub portal: RawPortal,
    pub jobs: RawJobs,
    pub revocation: RawRevocation,
    pub metrics: RawMetrics,
    pub scep: RawScep,
    pub auth: RawAuth,
    pub audit: RawAudit,
    /// `[upstream.NAME]`: CAs templates forward to (`config/upstream.rs`).
    pub upstream: std::collections::BTreeMap<String, RawUpstream>,
    /// `[tokens]`: the identity provider of bearer tokens (`config/tokens.rs`).
    pub tokens: Option<RawTokens>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAuth {
    pub max_concurrent_checks: u64,
    pub max_waiting: u64,
    pub failures_per_user_and_address: u32,
    pub failures_per_address: u32,
    pub throttle_window_secs: u64,
    pub slowed_check_interval_ms: u64,
    pub slowed_user_check_interval_secs: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            max_concurrent_checks: 0,
            max_waiting: 64,
            failures_per_user_and_address: 5,
            failures_per_address: 20,
            throttle_window_secs: 900,
            slowed_check_interval_ms: 1000,
            slowed_user_check_interval_secs: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAudit {
    pub retention_days: u64,
    pub unauthenticated_per_minute: u32,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            retention_days: 400,
            unauthenticated_per_minute: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRevocation {
    pub listen: String,
    pub base_url: String,
    pub crl_validity_hours: u64,
    pub ocsp_validity_minutes: u64,
}

impl Default for RawRevocation {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            base_url: String::new(),
            crl_validity_hours: 24,
            ocsp_validity_minutes: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9187".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawJobs {
    pub lease_secs: u64,
}

impl Default for RawJobs {
    fn default() -> Self {
        Self { lease_secs: 60 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPortal {
    pub idle_timeout_secs: u64,
    pub max_session_secs: u64,
}

impl Default for RawPortal {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 900,
            max_session_secs: 43_200,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RawPack {
    pub eap_server_chain: String,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
    pub names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDatabase {
    pub url: String,
    pub synchronous: String,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawEst {
    pub templates_dir: String,
    pub default_template: String,
    pub group: String,
    pub admin_groups: Vec<String>,
    pub auth_cache_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: u64,
    pub handshake_timeout_secs: u64,
    pub header_read_timeout_secs: u64,
    pub max_connections: u64,
    pub shutdown_grace_secs: u64,
    pub max_header_bytes: u64,
    pub first_request_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_connections_per_address: u64,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    pub filter: String,
    pub format: String,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBootstrap {
    pub admin_user: String,
    pub admin_groups: Vec<String>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            data_dir: ".".into(),
            tls: RawTls::default(),
            ca: RawCa::default(),
            database: RawDatabase::default(),
            est: RawEst::default(),
            limits: RawLimits::default(),
            log: RawLog::default(),
            bootstrap: RawBootstrap::default(),
            pack: RawPack::default(),
            portal: RawPortal::default(),
            jobs: RawJobs::default(),
            revocation: RawRevocation::default(),
            metrics: RawMetrics::default(),
            scep: RawScep::default(),
            auth: RawAuth::default(),
            audit: RawAudit::default(),
            upstream: Default::default(),
            tokens: None,
        }
    }
}

impl Default for RawTls {
    fn default() -> Self {
        Self {
            cert: String::new(),
            key: String::new(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
        }
    }
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: String::new(),
            synchronous: "full".into(),
            max_connections: 16,
            acquire_timeout_secs: 30,
        }
    }
}

impl Default for RawEst {
    fn default() -> Self {
        Self {
            templates_dir: "conf/templates".into(),
            default_template: "default".into(),
            group: "est-users".into(),
            admin_groups: vec!["Super Admin".into(), "ERS Admin".into()],
            auth_cache_secs: 300,
        }
    }
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 65_536,
            handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            shutdown_grace_secs: 30,
            max_header_bytes: 16_384,
            first_request_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections_per_address: 256,
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: "text".into(),
        }
    }
}

impl Default for RawBootstrap {
    fn default() -> Self {
        Self {
            admin_user: "admin".into(),
            admin_groups: vec!["Super Admin".into()],
        }
    }
}

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite {
        path: PathBuf,
        sync: Synchronous,
    },
    /// A shared PostgreSQL server (several estd instances may use it at once).
    Postgres {
        url: String,
        max_connections: u32,
        /// How long a request waits for a connection (at start: for the server) before it
        /// is answered 503.
        acquire_timeout: Duration,
    },
}

impl Database {
    /// Whether other estd processes may share this store.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

/// A database URL with its password replaced by `***`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path, sync } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("sync", sync)
                .finish(),
            Self::Postgres {
                url,
                max_connections,
                acquire_timeout,
            } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .field("max_connections", max_connections)
                .field("acquire_timeout", acquire_timeout)
                .finish(),
        }
    }
}

/// The typed, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub tls_names: Vec<String>,
    pub ca_dir: PathBuf,
    pub ca_key_type: CaKeyType,
    /// The issuing CA's key in a PKCS#11 token (`ca.key` a `pkcs11:` URI).
    pub ca_token: Option<CaToken>,
    pub database: Database,
    /// A bulk row claimed longer ago than this and still running is presumed abandoned
    /// (its instance died) and is claimed again.
    pub job_lease: Duration,
    pub templates_dir: PathBuf,
    /// True when `templates_dir` was not set (the built-in default template may stand in).
    pub templates_dir_is_default: bool,
    pub default_template: String,
    pub est_group: String,
    /// Members may request certificates whose CN is another user's name.
    pub est_admin_groups: Vec<String>,
    /// How long verified Basic credentials are remembered (zero: never).
    pub auth_cache: Duration,
    /// Request line and headers, at most.
    pub max_header_bytes: usize,
    pub max_body: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub log_filter: String,
    pub log_json: bool,
    pub admin_user: String,
    pub admin_groups: Vec<String>,
    /// PEM chain of the EAP server certificates put in every download bundle; none: estd's
    /// own TLS server certificate.
    pub eap_server_chain: Option<PathBuf>,
    /// Portal sessions end after this long without a request.
    pub session_idle: Duration,
    /// The plain-HTTP listener for the CRL and OCSP (none: neither is served, and
    /// certificates name neither).
    pub revocation_listen: Option<SocketAddr>,
    /// The URL certificates name for it (default: `http://` + the bound address).
    pub revocation_base_url: Option<String>,
    pub crl_validity: Duration,
    pub ocsp_validity: Duration,
    /// The plain-HTTP listener for `/metrics`, `/healthz` and `/readyz` (none: off).
    pub metrics_listen: Option<SocketAddr>,
    /// The plain-HTTP listener for SCEP (none: SCEP on the TLS listener only).
    pub scep_listen: Option<SocketAddr>,
    /// A new connection must send its first request within this time.
    pub first_request_timeout: Duration,
    /// A connection with no request in flight is closed after this long (HTTP/1.1
    /// keep-alive and HTTP/2 alike).
    pub idle_timeout: Duration,
    /// Open connections from one client address, at most.
    pub max_connections_per_address: usize,
    /// argon2 checks (and other heavy work: key generation, packaging) at once, and waiting.
    pub max_concurrent_checks: usize,
    pub max_waiting: usize,
    pub throttle: crate::auth::ThrottleSettings,
    /// A portal session ends this long after log-in, however active.
    pub session_max: Duration,
    /// Audit rows older than this are deleted (none: kept for ever).
    pub audit_retention: Option<Duration>,
    /// Audit rows for unauthenticated failures, per client address and minute, at most.
    pub audit_unauthenticated_per_minute: u32,
    pub upstreams: Vec<UpstreamConfig>,
    pub tokens: Option<TokensConfig>,
}

impl Config {
    /// Reads the file (when `file` is given it must exist; the default `conf/estd.toml` may
    /// be missing) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let figment = match file {
            Some(f) if !f.exists() => {
                return Err(ConfigError(format!("{}: no such file", f.display())));
            }
            Some(f) => Figment::new().merge(Toml::file_exact(f)),
            None if Path::new(DEFAULT_FILE).exists() => {
                Figment::new().merge(Toml::file_exact(DEFAULT_FILE))
            }
            None => Figment::new(),
        };
        Self::from_figment(figment.merge(env()))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawConfig = figment.extract().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Self::try_from(raw)
    }
}

/// `ESTD_*` variables; `ESTD_SECTION_KEY` is `section.key`. `ESTD_CA_PIN` is not a setting:
/// `CaToken::pin` reads it.
fn env() -> Env {
    Env::prefixed("ESTD_")
        .ignore(&["config", "ca_pin"])
        .map(|key| {
            let k = key.as_str().to_ascii_lowercase();
            for s in SECTIONS {
                if let Some(rest) = k.strip_prefix(s).and_then(|r| r.strip_prefix('_')) {
                    return format!("{s}.{rest}").into();
                }
            }
            k.into()
        })
}

fn bad(key: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{key}: {reason}"))
}

fn secs(key: &str, v: u64, max: u64) -> Result<Duration, ConfigError> {
    if v == 0 || v > max {
        return Err(bad(key, format!("{v} is out of range (1 to {max})")));
    }
    Ok(Duration::from_secs(v))
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen: SocketAddr = raw.listen.parse().map_err(|e| {
            bad(
                "listen",
                format!(
                    "{:?} is not a socket address like 127.0.0.1:8443 ({e})",
                    raw.listen
                ),
            )
        })?;
        if raw.data_dir.trim().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        let data_dir = PathBuf::from(&raw.data_dir);
        let or_in = |v: &str, default: PathBuf| {
            if v.is_empty() {
                default
            } else {
                PathBuf::from(v)
            }
        };
        let ca_dir = or_in(&raw.ca.dir, data_dir.join("certs"));
        let tls_cert = or_in(&raw.tls.cert, ca_dir.join("tls.pem"));
        let tls_key = or_in(&raw.tls.key, ca_dir.join("tls.key"));
        if raw.tls.cert.is_empty() != raw.tls.key.is_empty() {
            return Err(bad("tls.cert", "tls.cert and tls.key must be set together"));
        }
        if raw.tls.names.is_empty() {
            return Err(bad(
                "tls.names",
                "must name at least one host name or address",
            ));
        }
        let ca_key_type = CaKeyType::parse(&raw.ca.key_type).ok_or_else(|| {
            bad(
                "ca.key_type",
                format!(
                    "{:?} is not one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096",
                    raw.ca.key_type
                ),
            )
        })?;
        let ca_token = ca::ca_token(&raw.ca)?;
        let sync = match raw.database.synchronous.as_str() {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            other => {
                return Err(bad(
                    "database.synchronous",
                    format!("{other:?} is not \"full\" or \"normal\""),
                ));
            }
        };
        let database = if raw.database.url.is_empty() {
            Database::Sqlite {
                path: data_dir.join("estd.db"),
                sync,
            }
        } else if let Some(path) = raw
            .database
            .url
            .strip_prefix("sqlite://")
            .or_else(|| raw.database.url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(bad("database.url", "sqlite: URL without a file name"));
            }
            Database::Sqlite {
                path: PathBuf::from(path),
                sync,
            }
        } else if raw.database.url.starts_with("postgres://")
            || raw.database.url.starts_with("postgresql://")
        {
            if !(1..=1000).contains(&raw.database.max_connections) {
                return Err(bad(
                    "database.max_connections",
                    format!(
                        "{} is out of range (1 to 1000)",
                        raw.database.max_connections
                    ),
                ));
            }
            if !(1..=300).contains(&raw.database.acquire_timeout_secs) {
                return Err(bad(
                    "database.acquire_timeout_secs",
                    format!(
                        "{} is out of range (1 to 300)",
                        raw.database.acquire_timeout_secs
                    ),
                ));
            }
            Database::Postgres {
                url: raw.database.url.clone(),
                max_connections: raw.database.max_connections,
                acquire_timeout: Duration::from_secs(raw.database.acquire_timeout_secs),
            }
        } else {
            return Err(bad(
                "database.url",
                format!(
                    "{:?}: expected sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB",
                    redact_url(&raw.database.url)
                ),
            ));
        };
        if !crate::est::valid_label(&raw.est.default_template) {
            return Err(bad(
                "est.default_template",
                format!(
                    "{:?} is not a valid template name",
                    raw.est.default_template
                ),
            ));
        }
        if raw.est.group.trim().is_empty() {
            return Err(bad("est.group", "must not be empty"));
        }
        let max_body = usize::try_from(raw.limits.max_body_bytes)
            .ok()
            .filter(|n| (1024..=16 * 1024 * 1024).contains(n))
            .ok_or_else(|| {
                bad(
                    "limits.max_body_bytes",
                    format!(
                        "{} is out of range (1024 to 16777216)",
                        raw.limits.max_body_bytes
                    ),
                )
            })?;
        let max_connections = usize::try_from(raw.limits.max_connections)
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                bad(
                    "limits.max_connections",
                    format!(
                        "{} is out of range (1 to 1000000)",
                        raw.limits.max_connections
                    ),
                )
            })?;
        let log_json = match raw.log.format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(bad(
                    "log.format",
                    format!("{other:?} is not \"text\" or \"json\""),
                ));
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&raw.log.filter).is_err() {
            return Err(bad(
                "log.filter",
                format!(
                    "{:?} is not a tracing filter (e.g. \"info\" or \"estd=debug\")",
                    raw.log.filter
                ),
            ));
        }
        if raw.bootstrap.admin_user.trim().is_empty() {
            return Err(bad("bootstrap.admin_user", "must not be empty"));
        }
        let optional_addr = |key: &str, v: &str| -> Result<Option<SocketAddr>, ConfigError> {
            if v.trim().is_empty() {
                return Ok(None);
            }
            v.trim().parse().map(Some).map_err(|_| {
                bad(
                    key,
                    format!("{v:?} is not an address:port (or \"\" for off)"),
                )
            })
        };
        let revocation_listen = optional_addr("revocation.listen", &raw.revocation.listen)?;
        let metrics_listen = optional_addr("metrics.listen", &raw.metrics.listen)?;
        let scep_listen = optional_addr("scep.listen", &raw.scep.listen)?;
        let base = raw.revocation.base_url.trim().trim_end_matches('/');
        let revocation_base_url = if base.is_empty() {
            None
        } else if (base.starts_with("http://") || base.starts_with("https://"))
            && base.len() > "http://".len()
            && !base.contains(char::is_whitespace)
        {
            Some(base.to_string())
        } else {
            return Err(bad(
                "revocation.base_url",
                format!("{base:?} is not an http:// URL"),
            ));
        };
        let hours = raw.revocation.crl_validity_hours;
        if !(1..=24 * 31).contains(&hours) {
            return Err(bad(
                "revocation.crl_validity_hours",
                format!("{hours} is out of range (1 to 744)"),
            ));
        }
        let minutes = raw.revocation.ocsp_validity_minutes;
        if !(1..=7 * 24 * 60).contains(&minutes) {
            return Err(bad(
                "revocation.ocsp_validity_minutes",
                format!("{minutes} is out of range (1 to 10080)"),
            ));
        }
        Ok(Config {
            upstreams: upstream::parse(&raw.upstream)?,
            tokens: tokens::parse(&raw.tokens)?,
            revocation_listen,
            revocation_base_url,
            crl_validity: Duration::from_secs(hours * 3600),
            ocsp_validity: Duration::from_secs(minutes * 60),
            metrics_listen,
            scep_listen,
            listen,
            tls_cert,
            tls_key,
            tls_names: raw.tls.names,
            ca_dir,
            ca_key_type,
            ca_token,
            database,
            job_lease: secs("jobs.lease_secs", raw.jobs.lease_secs, 3600)?,
            templates_dir_is_default: raw.est.templates_dir == RawEst::default().templates_dir,
            templates_dir: PathBuf::from(raw.est.templates_dir),
            default_template: raw.est.default_template,
            est_group: raw.est.group,
            est_admin_groups: raw.est.admin_groups,
            max_header_bytes: usize::try_from(raw.limits.max_header_bytes)
                .ok()
                .filter(|n| (8192..=1024 * 1024).contains(n))
                .ok_or_else(|| {
                    bad(
                        "limits.max_header_bytes",
                        format!(
                            "{} is out of range (8192 to 1048576)",
                            raw.limits.max_header_bytes
                        ),
                    )
                })?,
            auth_cache: if raw.est.auth_cache_secs > 86_400 {
                return Err(bad(
                    "est.auth_cache_secs",
                    format!("{} is out of range (0 to 86400)", raw.est.auth_cache_secs),
                ));
            } else {
                Duration::from_secs(raw.est.auth_cache_secs)
            },
            max_body,
            handshake_timeout: secs(
                "limits.handshake_timeout_secs",
                raw.limits.handshake_timeout_secs,
                300,
            )?,
            header_read_timeout: secs(
                "limits.header_read_timeout_secs",
                raw.limits.header_read_timeout_secs,
                300,
            )?,
            max_connections,
            shutdown_grace: secs(
                "limits.shutdown_grace_secs",
                raw.limits.shutdown_grace_secs,
                3600,
            )?,
            log_filter: raw.log.filter,
            log_json,
            admin_user: raw.bootstrap.admin_user,
            admin_groups: raw.bootstrap.admin_groups,
            session_idle: secs(
                "portal.idle_timeout_secs",
                raw.portal.idle_timeout_secs,
                86_400,
            )?,
            eap_server_chain: (!raw.pack.eap_server_chain.is_empty())
                .then(|| PathBuf::from(&raw.pack.eap_server_chain)),
            first_request_timeout: secs(
                "limits.first_request_timeout_secs",
                raw.limits.first_request_timeout_secs,
                300,
            )?,
            idle_timeout: secs(
                "limits.idle_timeout_secs",
                raw.limits.idle_timeout_secs,
                3600,
            )?,
            max_connections_per_address: usize::try_from(raw.limits.max_connections_per_address)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("limits.max_connections_per_address", "must be 1 or more"))?,
            max_concurrent_checks: match raw.auth.max_concurrent_checks {
                0 => crate::enroll::default_parallelism(),
                n @ 1..=1024 => n as usize,
                n => {
                    return Err(bad(
                        "auth.max_concurrent_checks",
                        format!("{n} is out of range (0 for the number of cores, or 1 to 1024)"),
                    ));
                }
            },
            max_waiting: usize::try_from(raw.auth.max_waiting)
                .ok()
                .filter(|n| *n <= 100_000)
                .ok_or_else(|| bad("auth.max_waiting", "is out of range (0 to 100000)"))?,
            throttle: crate::auth::ThrottleSettings {
                per_pair: match raw.auth.failures_per_user_and_address {
                    0 => {
                        return Err(bad(
                            "auth.failures_per_user_and_address",
                            "must be 1 or more",
                        ));
                    }
                    n => n,
                },
                per_address: match raw.auth.failures_per_address {
                    0 => return Err(bad("auth.failures_per_address", "must be 1 or more")),
                    n => n,
                },
                window: secs(
                    "auth.throttle_window_secs",
                    raw.auth.throttle_window_secs,
                    86_400,
                )?,
                slowed_interval: match raw.auth.slowed_check_interval_ms {
                    n @ 1..=60_000 => Duration::from_millis(n),
                    n => {
                        return Err(bad(
                            "auth.slowed_check_interval_ms",
                            format!("{n} is out of range (1 to 60000)"),
                        ));
                    }
                },
                slowed_user_interval: secs(
                    "auth.slowed_user_check_interval_secs",
                    raw.auth.slowed_user_check_interval_secs,
                    3600,
                )?,
            },
            session_max: secs(
                "portal.max_session_secs",
                raw.portal.max_session_secs,
                31 * 86_400,
            )?,
            audit_retention: match raw.audit.retention_days {
                0 => None,
                d @ 1..=36_500 => Some(Duration::from_secs(d * 86_400)),
                d => {
                    return Err(bad(
                        "audit.retention_days",
                        format!("{d} is out of range (0 to keep for ever, or 1 to 36500)"),
                    ));
                }
            },
            audit_unauthenticated_per_minute: raw.audit.unauthenticated_per_minute,
            data_dir,
        })
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests;
