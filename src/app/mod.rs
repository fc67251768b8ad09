//! The only wiring place: configuration → CA, store, templates, enrollment service, router,
//! TLS listener.

pub mod ca_cli;
pub mod code_cli;
pub mod device_cli;
pub mod scep_cli;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api;
use crate::auth;
use crate::ca::devpki::{self, CaPaths};
use crate::ca::{CaError, Issuer};
use crate::config::{Config, Database};
use crate::enroll::EnrollService;
use crate::est;
use crate::pack::BundleAssets;
use crate::policy::{Template, TemplateError, Templates};
use crate::server::{self, ServerLimits};
use crate::store::{SqliteStore, Store, StoreError};
use crate::web::AppState;

/// The template used when the templates directory is not there (running from elsewhere
/// than the repository): the same text as `conf/templates/default.toml`.
const BUILTIN_DEFAULT_TEMPLATE: &str = include_str!("../../conf/templates/default.toml");

/// Name of the file (in the data directory) holding the first admin's password.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Server(#[from] server::ServerError),
    #[error("{0}")]
    Other(String),
}

/// Opens the store the configuration names.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match &config.database {
        Database::Sqlite { path, sync } => {
            if let Some(dir) = path.parent() {
                devpki::create_private_dir(dir)?;
            }
            let store = SqliteStore::open(path, *sync).await?;
            tracing::info!(path = %path.display(), "SQLite store open");
            Ok(Arc::new(store))
        }
        Database::Postgres {
            url,
            max_connections,
            acquire_timeout,
        } => {
            let store =
                crate::store::PgStore::open_with(url, *max_connections, *acquire_timeout).await?;
            tracing::info!(
                url = %crate::config::redact_url(url),
                max_connections,
                "PostgreSQL store open"
            );
            Ok(Arc::new(store))
        }
    }
}

pub fn load_templates(config: &Config) -> Result<Templates, StartError> {
    if config.templates_dir_is_default && !config.templates_dir.exists() {
        tracing::warn!(dir = %config.templates_dir.display(), "templates directory not found; using the built-in default template");
        let t = Template::from_toml(
            Path::new("(built-in default.toml)"),
            BUILTIN_DEFAULT_TEMPLATE,
        )?;
        let name = t.name.clone();
        return Templates::new(vec![t], &name).map_err(StartError::Other);
    }
    Ok(Templates::load(
        &config.templates_dir,
        &config.default_template,
    )?)
}

/// On first start (no users) creates the admin with a random password, written to a 0600
/// file in the data directory. Returns the password when it made one.
pub async fn bootstrap_admin(
    config: &Config,
    store: &dyn Store,
) -> Result<Option<String>, StartError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    // (checked only when it is created: an existing administrator keeps working)
    crate::model::check_user_name(&config.admin_user)
        .map_err(|e| StartError::Other(format!("bootstrap.admin_user: {e}")))?;
    let password = auth::random_password(20).map_err(|e| StartError::Other(e.to_string()))?;
    let hash = {
        let p = password.clone();
        tokio::task::spawn_blocking(move || auth::hash_password(&p))
            .await
            .map_err(|e| StartError::Other(e.to_string()))?
            .map_err(|e| StartError::Other(e.to_string()))?
    };
    let mut groups = vec![config.est_group.clone()];
    groups.extend(config.admin_groups.iter().cloned());
    match store.add_user(&config.admin_user, &hash, &groups).await {
        Ok(()) => {}
        // another instance sharing the database created it a moment ago
        Err(crate::store::StoreError::Duplicate(_)) => {
            tracing::info!(user = %config.admin_user, "the first administrator was created by another instance");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    let file = config.data_dir.join(ADMIN_PASSWORD_FILE);
    let _ = std::fs::remove_file(&file);
    devpki::write_private(&file, &format!("{password}\n"))?;
    tracing::info!(user = %config.admin_user, file = %file.display(), "created the first administrator; password written to the file");
    Ok(Some(password))
}

/// Everything `serve` needs, built and checked.
pub struct Built {
    pub state: Arc<AppState>,
    pub tls: Arc<rustls::ServerConfig>,
    /// The TLS server certificate, for reloading.
    pub tls_cert: Arc<server::ReloadableCert>,
    /// The CRL and OCSP listener (`revocation.listen`), bound.
    pub revocation_listener: Option<TcpListener>,
    /// The metrics and health listener (`metrics.listen`), bound.
    pub metrics_listener: Option<TcpListener>,
    /// The plain-HTTP SCEP listener (`scep.listen`), bound.
    pub scep_listener: Option<TcpListener>,
    pub limits: ServerLimits,
    /// The admin password, when this start created the admin.
    pub admin_password: Option<String>,
}

/// The keys estd keeps in the CA's token.
struct TokenKeys {
    ca: crate::ca::CaKey,
    ocsp: Option<crate::ca::pkcs11::TokenKey>,
    seal: Option<crate::ca::pkcs11::TokenSecret>,
    /// Upstream RAs' TLS client keys, by the URI configured.
    ra: HashMap<String, Arc<crate::ca::pkcs11::TokenKey>>,
}

/// Logs in to the token once and finds the CA key, and the OCSP responder's and the
/// sealing key when they are configured in the token (made there when missing). On the
/// blocking pool: PKCS#11 calls block. Sessions: `ca.pkcs11_sessions`.
async fn open_token_keys(
    t: &crate::config::CaToken,
    ra_keys: Vec<String>,
) -> Result<TokenKeys, StartError> {
    let t = t.clone();
    tokio::task::spawn_blocking(move || {
        let pin = t.pin().map_err(StartError::Other)?;
        let module = t.module.to_string_lossy().into_owned();
        let token = crate::ca::pkcs11::Token::open(&module, &t.uri, &pin, t.sessions)
            .map_err(|e| StartError::Other(format!("ca.key: {e}")))?;
        let key = token
            .key(&t.uri)
            .map_err(|e| StartError::Other(format!("ca.key: {e}")))?;
        let ocsp = match &t.ocsp_key {
            None => None,
            Some(uri) => {
                let (k, made) = token
                    .key_or_generate(uri, crate::est::KeyType::EcP256)
                    .map_err(|e| StartError::Other(format!("ca.ocsp_key: {e}")))?;
                if made {
                    tracing::info!(key = %uri, "made the OCSP responder's P-256 key in the token");
                }
                // another name for the CA's own key (object= here, id= there) is refused:
                // the responder's certificate would certify the CA key for OCSP signing
                if rcgen::PublicKeyData::der_bytes(&k) == rcgen::PublicKeyData::der_bytes(&key) {
                    return Err(StartError::Other(format!(
                        "ca.ocsp_key: {uri} is the issuing CA's own key; name another key"
                    )));
                }
                Some(k)
            }
        };
        let seal = match &t.seal_key {
            None => None,
            Some(uri) => {
                let (k, made) = token
                    .secret_or_generate(uri)
                    .map_err(|e| StartError::Other(format!("ca.seal_key: {e}")))?;
                if made {
                    tracing::info!(key = %uri, "made the AES-256 sealing key in the token");
                }
                Some(k)
            }
        };
        let mut ra = HashMap::new();
        for uri in ra_keys {
            let bad = |e: &dyn std::fmt::Display| {
                StartError::Other(format!("an upstream's client_key {uri}: {e}"))
            };
            let parsed = crate::ca::pkcs11::Pkcs11Uri::parse(&uri).map_err(|e| bad(&e))?;
            let k = token.key(&parsed).map_err(|e| bad(&e))?;
            if rcgen::PublicKeyData::der_bytes(&k) == rcgen::PublicKeyData::der_bytes(&key) {
                return Err(StartError::Other(format!(
                    "upstream client_key: {uri} is the issuing CA's own key; name another key"
                )));
            }
            ra.insert(uri, Arc::new(k));
        }
        Ok(TokenKeys {
            ca: crate::ca::CaKey::Token(key),
            ocsp,
            seal,
            ra,
        })
    })
    .await
    .map_err(|e| StartError::Other(format!("ca.key: {e}")))?
}

pub async fn build(config: &Config) -> Result<Built, StartError> {
    let templates = Arc::new(load_templates(config)?);
    let paths = CaPaths::in_dir(&config.ca_dir);
    let mut ocsp_key = None;
    let mut seal_key = None;
    // the RAs' TLS keys in the token (`[upstream.*] client_key = "pkcs11:…"`), by URI
    let mut token_ra_keys = HashMap::new();
    let loaded = match &config.ca_token {
        None => devpki::ensure_ca(&paths, config.ca_key_type)?,
        Some(t) => {
            let ra_keys: Vec<String> = config
                .upstreams
                .iter()
                .filter_map(|u| u.client_key_uri.clone())
                .collect();
            let keys = open_token_keys(t, ra_keys).await?;
            token_ra_keys = keys.ra;
            tracing::info!(key = %t.uri, module = %t.module.display(), sessions = t.sessions, "the issuing CA's key is in a PKCS#11 token");
            ocsp_key = keys.ocsp;
            seal_key = keys.seal;
            devpki::load_ca_with_key(&paths, keys.ca)?
        }
    };
    if loaded.generated {
        tracing::info!(dir = %config.ca_dir.display(), "generated a development root and issuing CA");
    }
    let issuer: Arc<dyn Issuer> = Arc::new(loaded.issuer);
    if let Some(t) = templates.iter().find(|t| t.rsa_pss && !issuer.signs_pss()) {
        return Err(StartError::Other(format!(
            "template {}: rsa_pss needs an RSA CA key, and the issuing CA's is not one",
            t.name
        )));
    }
    let (chain, key, tls_generated) = devpki::ensure_tls(
        &config.tls_cert,
        &config.tls_key,
        loaded_issuer(&issuer)?,
        &config.tls_names,
    )?;
    if tls_generated {
        tracing::info!(cert = %config.tls_cert.display(), names = ?config.tls_names, "generated a TLS server certificate");
    }
    let own_server_cert = chain.first().map(|c| c.to_vec()).unwrap_or_default();
    let upstreams = upstreams(config, &templates, &token_ra_keys).await?;
    // devices renew certificates upstream CAs signed with those as TLS client certificates
    let mut client_roots = issuer.chain().to_vec();
    for up in &upstreams {
        client_roots.extend(up.chain().iter().cloned());
    }
    // devices enroll with manufacturer certificates on the templates that trust their vendor
    let vendor_roots: Vec<Vec<u8>> = templates
        .iter()
        .filter_map(|t| t.vendor.as_ref())
        .flat_map(|v| v.anchor_ders().iter().cloned())
        .collect();
    let (tls, tls_cert) = server::tls_config(chain, key, &client_roots, &vendor_roots)?;
    let eap_chain = match &config.eap_server_chain {
        Some(path) => Some(load_eap_chain(path)?),
        None => None,
    };
    let bundle = Arc::new(BundleAssets::new(
        issuer.chain().to_vec(),
        eap_chain,
        &own_server_cert,
    ));

    let store = open_store(config).await?;
    let admin_password = bootstrap_admin(config, store.as_ref()).await?;

    // the plain-HTTP listeners are bound here: the revocation URLs certificates name may
    // come from the bound address
    let revocation_listener = match config.revocation_listen {
        Some(addr) => Some(bind("revocation.listen", addr).await?),
        None => None,
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind("metrics.listen", addr).await?),
        None => None,
    };
    let scep_listener = match config.scep_listen {
        Some(addr) => Some(bind("scep.listen", addr).await?),
        None => None,
    };
    let urls = match (&revocation_listener, &config.revocation_base_url) {
        (None, _) => crate::revocation::Urls::default(),
        (Some(_), Some(base)) => crate::revocation::Urls::from_base(base),
        (Some(l), None) => {
            let addr = l.local_addr().map_err(server::ServerError::from)?;
            if addr.ip().is_unspecified() {
                return Err(StartError::Other(format!(
                    "revocation.base_url: must be set when revocation.listen is {addr} (certificates must name a reachable URL)"
                )));
            }
            crate::revocation::Urls::from_base(&format!("http://{addr}"))
        }
    };

    let chain_refs: Vec<&[u8]> = issuer.chain().iter().map(Vec::as_slice).collect();
    let cacerts = est::certs_only(&chain_refs).map_err(|e| StartError::Other(e.to_string()))?;
    let mut csrattrs_bodies = HashMap::new();
    for t in templates.iter() {
        // a template that asks nothing gets an empty SEQUENCE (200), not 204: libest's
        // client reports 204 as a failure (EST_ERR_HTTP_NO_CONTENT); RFC 7030 §4.5.2 allows both
        let der = est::csrattrs(&t.csr_attrs()).map_err(|e| StartError::Other(e.to_string()))?;
        csrattrs_bodies.insert(t.name.clone(), Bytes::from(est::encode_body(&der)));
    }
    let sealer = Arc::new(match seal_key {
        Some(k) => crate::ca::seal::Sealer::in_token(k),
        None => crate::ca::seal::Sealer::load_or_create(&config.ca_dir.join("jobs.key"))?,
    });
    let tokens = token_verifier(config, &templates)?;
    let mut service = EnrollService::new(
        issuer,
        store.clone(),
        config.est_group.clone(),
        config.est_admin_groups.clone(),
    )
    .with_sealer(sealer.clone())
    .with_credential_cache(
        auth::CredentialCache::new(config.auth_cache)
            .map_err(|e| StartError::Other(e.to_string()))?,
    )
    .with_revocation_urls(urls.clone())
    .with_upstreams(upstreams, templates.clone())
    .with_work_bounds(config.max_concurrent_checks, config.max_waiting)
    .with_throttle(config.throttle);
    if let Some(v) = tokens {
        service = service.with_tokens(v);
    }
    let enroll = Arc::new(service);
    enroll.set_server_certificate(&own_server_cert);
    let revocation = match &revocation_listener {
        Some(_) => {
            let service = Arc::new(crate::revocation::RevocationService::new(
                store.clone(),
                enroll.issuer().clone(),
                &config.ca_dir,
                urls,
                crate::revocation::Validity {
                    crl: config.crl_validity,
                    ocsp: config.ocsp_validity,
                },
                enroll.revoked_keys().clone(),
                ocsp_key.take(),
            )?);
            service.regenerate().await?;
            service.clone().spawn_refresher();
            Some(service)
        }
        None => None,
    };
    let jobs = Arc::new(crate::jobs::JobService::new(
        store.clone(),
        enroll.clone(),
        templates.clone(),
        sealer,
        bundle.clone(),
        config.job_lease,
        config.database.is_shared(),
    ));
    jobs.start().await?;
    // SCEP needs its RA certificate from the CA: a CA that cannot sign now (expired, its
    // token away) leaves SCEP off (404) and the rest running, as it leaves /readyz failing
    let scep = match crate::service::scep::ra::ensure_ra(&config.ca_dir, enroll.issuer().as_ref())
        .map_err(|e| e.to_string())
        .and_then(|ra| {
            crate::service::scep::ScepService::new(
                enroll.clone(),
                store.clone(),
                revocation.clone(),
                ra,
            )
        }) {
        Ok(s) => {
            crate::service::scep::retention::spawn_purger(store.clone());
            Some(Arc::new(s))
        }
        Err(e) => {
            tracing::error!(error = %e, "SCEP is off: its RA certificate could not be loaded or issued");
            None
        }
    };
    spawn_upstream_tasks(&enroll);
    spawn_session_sweeper(store.clone(), config.session_idle);
    if let Some(retention) = config.audit_retention {
        spawn_audit_purger(store.clone(), retention);
    }
    let state = Arc::new(AppState {
        enroll,
        templates,
        store,
        cacerts_body: Bytes::from(est::encode_body(&cacerts)),
        csrattrs_bodies,
        max_body: config.max_body,
        bundle,
        session_idle: config.session_idle,
        session_max: config.session_max,
        audit_limiter: crate::web::AuditLimiter::new(config.audit_unauthenticated_per_minute),
        jobs,
        revocation,
        scep,
    });
    Ok(Built {
        state,
        tls,
        tls_cert,
        revocation_listener,
        metrics_listener,
        scep_listener,
        limits: ServerLimits {
            handshake_timeout: config.handshake_timeout,
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
            shutdown_grace: config.shutdown_grace,
            max_header_bytes: config.max_header_bytes,
            first_request_timeout: config.first_request_timeout,
            idle_timeout: config.idle_timeout,
            max_per_address: config.max_connections_per_address,
        },
        admin_password,
    })
}

/// The `[upstream.NAME]` CAs, each with its `/cacerts` fetched once (an upstream down at
/// start is logged, reported by `/readyz` and fetched again later); every template's
/// `issuer` must name `local` or one of them.
async fn upstreams(
    config: &Config,
    templates: &Templates,
    token_keys: &HashMap<String, Arc<crate::ca::pkcs11::TokenKey>>,
) -> Result<Vec<Arc<crate::ca::upstream::Upstream>>, StartError> {
    let mut out = Vec::new();
    for u in &config.upstreams {
        let mut settings = u.transport.clone();
        if let Some(uri) = &u.client_key_uri {
            settings.client_token_key = Some(token_keys.get(uri).cloned().ok_or_else(|| {
                StartError::Other(format!(
                    "upstream.{}.client_key: a pkcs11: key is in the CA's token, and [ca] key names none",
                    u.settings.name
                ))
            })?);
        }
        let transport = crate::outbound::HttpsTransport::new(&settings)
            .map_err(|e| StartError::Other(format!("upstream.{}: {e}", u.settings.name)))?;
        let challenges = match &u.challenge_transport {
            Some(t) => Some(
                Arc::new(crate::outbound::HttpsTransport::new(t).map_err(|e| {
                    StartError::Other(format!("upstream.{}.challenge_url: {e}", u.settings.name))
                })?) as Arc<dyn crate::ca::upstream::Transport>,
            ),
            None => None,
        };
        let up = Arc::new(
            crate::ca::upstream::Upstream::new(u.settings.clone(), Arc::new(transport), challenges)
                .map_err(|e| StartError::Other(format!("upstream.{}: {e}", u.settings.name)))?,
        );
        match up.refresh_cacerts().await {
            Ok(n) => {
                tracing::info!(upstream = %up.name(), certificates = n, "upstream CA reachable")
            }
            Err(e) => {
                tracing::error!(error = %e, "upstream CA unreachable at start: its templates answer 503 until it is back, and its certificates renew over TLS only after a restart")
            }
        }
        out.push(up);
    }
    for t in templates.iter() {
        if t.issuer != crate::model::LOCAL_ISSUER && !out.iter().any(|u| u.name() == t.issuer) {
            return Err(StartError::Other(format!(
                "template {}: issuer {:?} is not \"local\" nor an [upstream.NAME] of the configuration",
                t.name, t.issuer
            )));
        }
        if t.issuer != crate::model::LOCAL_ISSUER {
            tracing::info!(template = %t.name, upstream = %t.issuer, "template forwarded to an upstream CA: its validity, usages and CRL/OCSP pointers are the upstream's");
        }
    }
    Ok(out)
}

/// For each upstream, `/cacerts` again every `cacerts_refresh` (every `breaker_open` while
/// it fails: the probe that brings `/readyz` back without device traffic); and, with any
/// upstream, the poller of requests upstreams hold (every second, a bounded batch).
/// The bearer tokens' verifier of `[tokens]`: a JWKS file read now, or a URL fetched now
/// and on a schedule. A template that takes bearer tokens needs one.
fn token_verifier(
    config: &Config,
    templates: &crate::policy::Templates,
) -> Result<Option<Arc<auth::jwt::Verifier>>, StartError> {
    let Some(t) = &config.tokens else {
        return match templates
            .iter()
            .find(|t| t.auth.contains(&crate::policy::AuthScheme::Bearer))
        {
            Some(t) => Err(StartError::Other(format!(
                "template {}: auth takes bearer tokens, and no [tokens] is configured",
                t.name
            ))),
            None => Ok(None),
        };
    };
    let v = Arc::new(auth::jwt::Verifier::new(
        t.settings.clone(),
        Default::default(),
    ));
    match &t.source {
        crate::config::JwksSource::File(path) => {
            v.set_keys(crate::service::tokens::load_file(path).map_err(StartError::Other)?);
        }
        crate::config::JwksSource::Url {
            transport,
            path,
            refresh,
        } => {
            let tr = crate::outbound::HttpsTransport::new(transport)
                .map_err(|e| StartError::Other(format!("tokens.jwks_url: {e}")))?;
            crate::service::tokens::spawn_refresh(v.clone(), Arc::new(tr), path.clone(), *refresh);
        }
    }
    Ok(Some(v))
}

fn spawn_upstream_tasks(enroll: &Arc<EnrollService>) {
    let mut any = false;
    for up in enroll.upstreams() {
        any = true;
        let up = up.clone();
        tokio::spawn(async move {
            loop {
                let s = up.settings();
                let wait = if up.health().is_some() {
                    s.breaker_open
                } else {
                    s.cacerts_refresh
                };
                tokio::time::sleep(wait).await;
                if let Err(e) = up.refresh_cacerts().await {
                    tracing::warn!(error = %e, "upstream CA certificates not refreshed");
                }
            }
        });
    }
    if any {
        let enroll = enroll.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Err(e) = enroll.poll_due().await {
                    tracing::warn!(error = %e, "polling requests held by upstream CAs failed");
                }
            }
        });
    }
}

async fn bind(key: &str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Other(format!("{key}: cannot bind {addr}: {e}")))
}

/// At start and every hour, deletes audit rows older than `audit.retention_days` (every
/// instance does it; a row is deleted once).
fn spawn_audit_purger(store: Arc<dyn Store>, retention: std::time::Duration) {
    tokio::spawn(async move {
        loop {
            let before = crate::model::timestamp(
                std::time::SystemTime::now()
                    .checked_sub(retention)
                    .unwrap_or(std::time::UNIX_EPOCH),
            );
            match store.purge_audit(&before).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(rows = n, %before, "audit rows past their retention deleted")
                }
                Err(e) => tracing::warn!(error = %e, "cannot purge old audit rows"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
}

/// Every few minutes, deletes portal sessions idle for longer than the timeout (they are
/// refused when presented anyway; this keeps abandoned ones from piling up).
fn spawn_session_sweeper(store: Arc<dyn Store>, idle: std::time::Duration) {
    tokio::spawn(async move {
        let every = idle.clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(300),
        );
        loop {
            tokio::time::sleep(every).await;
            let before = crate::model::timestamp(std::time::SystemTime::now() - idle);
            match store.delete_idle_sessions(&before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "idle portal sessions deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot delete idle sessions"),
            }
        }
    });
}

/// Reads the configured EAP server chain: PEM with at least one certificate.
fn load_eap_chain(path: &Path) -> Result<String, StartError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let bad = |reason: String| {
        StartError::Other(format!(
            "pack.eap_server_chain: {}: {reason}",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(text)
}

// The dev TLS certificate is signed with the local issuer; an `Issuer` that is not local
// (a future HSM) would need the TLS files provided.
fn loaded_issuer(issuer: &Arc<dyn Issuer>) -> Result<&crate::ca::LocalIssuer, StartError> {
    issuer
        .as_any()
        .downcast_ref::<crate::ca::LocalIssuer>()
        .ok_or_else(|| StartError::Other("TLS files must be provided for a non-local CA".into()))
}

/// A server running in the background (tests and `serve`).
pub struct Running {
    pub addr: SocketAddr,
    /// Where the CRL and OCSP are served (plain HTTP), when they are.
    pub revocation_addr: Option<SocketAddr>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (plain HTTP), when they are.
    pub metrics_addr: Option<SocketAddr>,
    /// Where SCEP is served over plain HTTP, when it is.
    pub scep_addr: Option<SocketAddr>,
    pub tls_cert: Arc<server::ReloadableCert>,
    pub admin_password: Option<String>,
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), server::ServerError>>,
    /// The plain-HTTP listeners (CRL and OCSP, metrics): they drain their requests too.
    plain_tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, waits for in-flight requests (up to the grace period).
    pub async fn stop(mut self) -> Result<(), StartError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Waits until every listener has ended (after `shutdown` fires).
    pub async fn wait(mut self) -> Result<(), StartError> {
        let main = (&mut self.task)
            .await
            .map_err(|e| StartError::Other(e.to_string()));
        // they were told to stop at the same time: their grace period runs alongside
        for t in self.plain_tasks.drain(..) {
            let _ = t.await;
        }
        main??;
        Ok(())
    }
}

/// Builds everything, binds the listener and serves in a background task until `stop`.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    start_with_shutdown(config, std::future::pending()).await
}

pub async fn start_with_shutdown(
    config: &Config,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    let built = build(config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Other(format!("listen: cannot bind {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(server::ServerError::from)?;
    let router = api::router_with(built.state.clone(), crate::portal::routes());
    let (tx, rx) = oneshot::channel::<()>();
    // one shutdown for every listener
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = rx => {}
            () = signal => {}
        }
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut plain_tasks = Vec::new();
    let revocation_addr = match built.revocation_listener {
        Some(l) => {
            let a = l.local_addr().map_err(server::ServerError::from)?;
            let routes = match &built.state.revocation {
                Some(service) => crate::api::revocation::routes(service.clone()),
                None => axum::Router::new(),
            };
            plain_tasks.push(tokio::spawn(plain(
                "revocation",
                l,
                routes,
                built.limits.clone(),
                stopped(),
            )));
            tracing::info!(addr = %a, "CRL and OCSP on http://{a}/ (crl/{}.crl, ocsp)", crate::revocation::CA_NAME);
            Some(a)
        }
        None => None,
    };
    let metrics_addr = match built.metrics_listener {
        Some(l) => {
            let a = l.local_addr().map_err(server::ServerError::from)?;
            let routes = api::health::routes(built.state.clone());
            plain_tasks.push(tokio::spawn(plain(
                "metrics",
                l,
                routes,
                built.limits.clone(),
                stopped(),
            )));
            tracing::info!(addr = %a, "metrics and health checks on http://{a}/ (metrics, healthz, readyz)");
            Some(a)
        }
        None => None,
    };
    let scep_addr = match built.scep_listener {
        Some(l) => {
            let a = l.local_addr().map_err(server::ServerError::from)?;
            plain_tasks.push(tokio::spawn(plain(
                "scep",
                l,
                api::scep_router(built.state.clone()),
                built.limits.clone(),
                stopped(),
            )));
            tracing::info!(addr = %a, "SCEP on http://{a}/scep/<template> (and /scep, /cgi-bin/pkiclient.exe)");
            Some(a)
        }
        None => None,
    };
    let task = tokio::spawn(server::serve(
        listener,
        built.tls,
        router,
        built.limits,
        stopped(),
    ));
    tracing::info!(%addr, "estd listening (EST under https://{addr}/.well-known/est/)");
    Ok(Running {
        addr,
        revocation_addr,
        metrics_addr,
        scep_addr,
        tls_cert: built.tls_cert,
        admin_password: built.admin_password,
        state: built.state,
        shutdown: Some(tx),
        task,
        plain_tasks,
    })
}

/// A plain-HTTP listener's task; an error is logged (the TLS listener goes on).
async fn plain(
    what: &'static str,
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    if let Err(e) = server::serve_plain(what, listener, router, limits, stop).await {
        tracing::error!(listener = what, error = %e, "listener stopped");
    }
}

/// Reads the TLS certificate and key files again and serves them from the next handshake
/// on (SIGHUP); its names become the ones never issued. On any error the current
/// certificate stays.
pub fn reload_tls(
    config: &Config,
    cert: &server::ReloadableCert,
    enroll: &EnrollService,
) -> Result<String, StartError> {
    let (chain, key) = devpki::read_tls(&config.tls_cert, &config.tls_key)?;
    let leaf = chain.first().map(|c| c.to_vec()).unwrap_or_default();
    let serial = crate::enroll::serial_of(&leaf).unwrap_or_default();
    cert.reload(chain, key)?;
    enroll.set_server_certificate(&leaf);
    Ok(serial)
}
