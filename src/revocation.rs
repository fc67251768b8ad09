//! Revocation: recording it, the CRL of the issuing CA (signed, kept in memory, made again on
//! every revocation and before `nextUpdate`), and the OCSP responder that answers from the
//! store. Served over plain HTTP by `revocation_routes` (`/crl/<ca>.crl`, `/ocsp`).

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use der::Decode;

use crate::ca::ocsp::{self, IssuerHashes, Refusal, Responder, Status};
use crate::ca::{CaError, IssuanceRequest, Issuer, RevokedEntry};
use crate::enroll::RevokedKeys;
use crate::model::{RequestMeta, timestamp};
use crate::store::{AuditEvent, CertRecord, RevocationRecord, Store, StoreError};

/// The name of the one issuing CA's CRL (`/crl/issuing-ca.crl`).
pub const CA_NAME: &str = "issuing-ca";
const RESPONDER_CERT: &str = "ocsp-responder.pem";
const RESPONDER_KEY: &str = "ocsp-responder.key";
/// A responder certificate is issued for this long, and again when less than a third is left.
const RESPONDER_VALIDITY: Duration = Duration::from_secs(90 * 86_400);
/// An OCSP request (GET or POST) is at most this long.
const MAX_OCSP_REQUEST: usize = 8 * 1024;

/// RFC 5280 reason codes a certificate may be revoked with (`certificateHold` and
/// `removeFromCRL` are not offered: a revocation here is final).
pub const REASONS: &[(&str, u8)] = &[
    ("unspecified", 0),
    ("keyCompromise", 1),
    ("affiliationChanged", 3),
    ("superseded", 4),
    ("cessationOfOperation", 5),
    ("privilegeWithdrawn", 9),
];

/// A reason by name (`keyCompromise`, `key-compromise`, `key_compromise`, any case) or code.
pub fn parse_reason(s: &str) -> Option<u8> {
    let norm: String = s
        .chars()
        .filter(|c| *c != '-' && *c != '_' && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    REASONS
        .iter()
        .find(|(name, code)| name.to_lowercase() == norm || code.to_string() == norm)
        .map(|(_, code)| *code)
}

/// A serial number as stored: lower-case hex without separators (`AB:CD` → `abcd`).
pub fn normalize_serial(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| *c != ':')
        .take(128)
        .collect::<String>()
        .to_ascii_lowercase()
}

pub fn reason_name(code: u8) -> &'static str {
    match code {
        2 => "cACompromise",
        6 => "certificateHold",
        8 => "removeFromCRL",
        10 => "aACompromise",
        _ => REASONS
            .iter()
            .find(|(_, c)| *c == code)
            .map_or("unspecified", |(n, _)| n),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no certificate with serial number {0}")]
    NotFound(String),
    #[error("certificate {serial} was already revoked at {at}")]
    AlreadyRevoked { serial: String, at: String },
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where certificates send relying parties, from `revocation.base_url`.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    pub crl: Option<String>,
    pub ocsp: Option<String>,
}

impl Urls {
    pub fn from_base(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            crl: Some(format!("{base}/crl/{CA_NAME}.crl")),
            ocsp: Some(format!("{base}/ocsp")),
        }
    }
}

struct Crl {
    der: Bytes,
    this_update: SystemTime,
    entries: usize,
}

pub struct RevocationService {
    store: Arc<dyn Store>,
    issuer: Arc<dyn Issuer>,
    /// None when no responder certificate could be issued (an expired CA): OCSP then
    /// answers `internalError`, and the start-up log says why.
    responder: Option<Responder>,
    hashes: IssuerHashes,
    crl: RwLock<Option<Arc<Crl>>>,
    crl_validity: Duration,
    ocsp_validity: Duration,
    pub urls: Urls,
    revoked_keys: Arc<RevokedKeys>,
}

impl std::fmt::Debug for RevocationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationService")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl RevocationService {
    pub fn new(
        store: Arc<dyn Store>,
        issuer: Arc<dyn Issuer>,
        ca_dir: &Path,
        urls: Urls,
        crl_validity: Duration,
        ocsp_validity: Duration,
        revoked_keys: Arc<RevokedKeys>,
    ) -> Result<Self, CaError> {
        let ca = issuer
            .chain()
            .first()
            .ok_or_else(|| CaError::Files("empty CA chain".into()))?;
        let hashes = IssuerHashes::of(ca).map_err(CaError::Files)?;
        let responder = match ensure_responder(ca_dir, issuer.as_ref()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "no OCSP responder certificate: OCSP answers internalError until the CA can issue one (restart after fixing)");
                None
            }
        };
        Ok(Self {
            store,
            issuer,
            responder,
            hashes,
            crl: RwLock::new(None),
            crl_validity,
            ocsp_validity,
            urls,
            revoked_keys,
        })
    }

    /// The current CRL (made when there is none, or when half its validity has passed).
    pub async fn crl(&self) -> Result<Bytes, CaError> {
        let current = self.crl.read().ok().and_then(|c| c.clone());
        match current {
            Some(c) if !self.stale(&c) => Ok(c.der.clone()),
            _ => self.regenerate().await,
        }
    }

    fn stale(&self, c: &Crl) -> bool {
        SystemTime::now()
            .duration_since(c.this_update)
            .map_or(true, |age| age >= self.crl_validity / 2)
    }

    /// Signs a new CRL from the store's revocations.
    pub async fn regenerate(&self) -> Result<Bytes, CaError> {
        let revoked = self
            .store
            .revocations()
            .await
            .map_err(|e| CaError::Signing(format!("reading revocations: {e}")))?;
        for r in &revoked {
            if !r.key_fingerprint.is_empty() {
                self.revoked_keys
                    .insert(r.key_fingerprint.clone(), r.serial.clone());
            }
        }
        let entries = revoked
            .iter()
            .map(|r| {
                Ok(RevokedEntry {
                    serial: r.serial.clone(),
                    at: crate::model::parse_timestamp(&r.revoked_at).ok_or_else(|| {
                        CaError::Signing(format!("stored time {:?} unreadable", r.revoked_at))
                    })?,
                    reason: r.reason,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let now = SystemTime::now();
        // whole seconds (the CRL's times have no fractions); the number grows with time,
        // so CRLs made by several instances are ordered too
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|e| CaError::Signing(e.to_string()))?
            .as_secs();
        let this_update = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let number = u64::try_from(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map_err(|e| CaError::Signing(e.to_string()))?
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let der = self.issuer.crl(
            &entries,
            number,
            this_update,
            this_update + self.crl_validity,
        )?;
        let der = Bytes::from(der);
        tracing::info!(entries = entries.len(), number, "CRL signed");
        if let Ok(mut c) = self.crl.write() {
            *c = Some(Arc::new(Crl {
                der: der.clone(),
                this_update,
                entries: entries.len(),
            }));
        }
        Ok(der)
    }

    /// Makes the CRL again when it is half way to `nextUpdate`, or when another instance
    /// revoked a certificate (the store has more revocations than the CRL lists).
    pub fn spawn_refresher(self: Arc<Self>) {
        let every = (self.crl_validity / 8).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let current = self.crl.read().ok().and_then(|c| c.clone());
                let listed = current.as_ref().map(|c| c.entries);
                let stored = match self.store.revocation_count().await {
                    Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read revocations; CRL not refreshed");
                        continue;
                    }
                };
                let due = current.as_ref().is_none_or(|c| self.stale(c));
                if (due || listed != Some(stored))
                    && let Err(e) = self.regenerate().await
                {
                    tracing::error!(error = %e, "cannot sign the CRL");
                }
            }
        });
    }

    /// Revokes `serial` for `reason` on behalf of `by` (see `revoke_in_store`), then signs
    /// a new CRL and refuses the key from now on.
    pub async fn revoke(
        &self,
        meta: &RequestMeta,
        serial: &str,
        reason: u8,
        by: &str,
        may_revoke_any: bool,
    ) -> Result<(CertRecord, RevocationRecord), RevokeError> {
        let (cert, record) = revoke_in_store(
            self.store.as_ref(),
            meta,
            serial,
            reason,
            by,
            may_revoke_any,
        )
        .await?;
        self.revoked_keys
            .insert(record.key_fingerprint.clone(), record.serial.clone());
        crate::metrics::metrics().revoked();
        if let Err(e) = self.regenerate().await {
            // the revocation stands (OCSP answers from the store); the refresher retries
            tracing::error!(error = %e, "cannot sign the CRL after a revocation");
        }
        Ok((cert, record))
    }

    /// The OCSP response (DER) to a request (DER).
    pub async fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        let req = match ocsp::parse_request(request) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "OCSP request refused");
                return ocsp::refusal(Refusal::MalformedRequest);
            }
        };
        let mut answers = Vec::with_capacity(req.ids.len());
        for id in req.ids {
            let status = if self.hashes.matches(&id) {
                match self.status_of(&id.serial_hex()).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "OCSP: the store cannot be read");
                        return ocsp::refusal(Refusal::TryLater);
                    }
                }
            } else {
                Status::Unknown
            };
            tracing::debug!(serial = %id.serial_hex(), ?status, "OCSP answer");
            answers.push((id, status));
        }
        let Some(responder) = &self.responder else {
            return ocsp::refusal(Refusal::InternalError);
        };
        let now = SystemTime::now();
        match responder.respond(
            &answers,
            req.nonce.as_deref(),
            now,
            now + self.ocsp_validity,
        ) {
            Ok(der) => der,
            Err(e) => {
                tracing::error!(error = %e, "OCSP: cannot sign the response");
                ocsp::refusal(Refusal::InternalError)
            }
        }
    }

    async fn status_of(&self, serial: &str) -> Result<Status, StoreError> {
        if self.store.find_certificate(serial).await?.is_none() {
            return Ok(Status::Unknown);
        }
        Ok(match self.store.find_revocation(serial).await? {
            Some(r) => Status::Revoked {
                at: crate::model::parse_timestamp(&r.revoked_at).unwrap_or(SystemTime::UNIX_EPOCH),
                reason: r.reason,
            },
            None => Status::Good,
        })
    }
}

/// Records the revocation of `serial` for `reason` on behalf of `by` (an admin, or the
/// certificate's requester: `may_revoke_any` false means only one's own) with its audit row.
/// The CRL follows (at once in this process, within a minute in others); OCSP answers from
/// the store at once.
pub async fn revoke_in_store(
    store: &dyn Store,
    meta: &RequestMeta,
    serial: &str,
    reason: u8,
    by: &str,
    may_revoke_any: bool,
) -> Result<(CertRecord, RevocationRecord), RevokeError> {
    let serial = normalize_serial(serial);
    let cert = store
        .find_certificate(&serial)
        .await?
        .ok_or_else(|| RevokeError::NotFound(serial.clone()))?;
    if !may_revoke_any && cert.requester != by {
        // not one's own: the same answer as for a serial that does not exist
        return Err(RevokeError::NotFound(serial));
    }
    if let Some(r) = store.find_revocation(&serial).await? {
        return Err(RevokeError::AlreadyRevoked {
            serial,
            at: r.revoked_at,
        });
    }
    let parsed = x509_cert::Certificate::from_der(&cert.der)
        .map_err(|e| StoreError::Db(format!("stored certificate {serial}: {e}")))?;
    let key_fingerprint = crate::enroll::public_key_fingerprint(
        parsed
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
    );
    let now = timestamp(SystemTime::now());
    let record = RevocationRecord {
        serial: serial.clone(),
        revoked_at: now.clone(),
        reason,
        revoked_by: by.to_string(),
        key_fingerprint,
    };
    let audit = AuditEvent {
        at: now,
        request_id: meta.request_id.clone(),
        operation: "revoke".into(),
        label: Some(cert.template.clone()),
        principal: Some(by.to_string()),
        peer: meta.peer.clone(),
        outcome: "ok".into(),
        status: 200,
        reason: Some(format!("revoked: {}", reason_name(reason))),
        serial: Some(serial.clone()),
    };
    if !store.revoke_certificate(&record, &audit).await? {
        let at = store
            .find_revocation(&serial)
            .await?
            .map(|r| r.revoked_at)
            .unwrap_or_default();
        return Err(RevokeError::AlreadyRevoked { serial, at });
    }
    tracing::info!(request_id = %meta.request_id, %serial, reason = reason_name(reason), by, "certificate revoked");
    Ok((cert, record))
}

/// Loads the delegated OCSP responder (certificate and key in the CA directory), issuing a
/// new one when there is none, when it is not the current issuing CA's, or when less than a
/// third of its validity is left.
fn ensure_responder(ca_dir: &Path, issuer: &dyn Issuer) -> Result<Responder, CaError> {
    let cert_path = ca_dir.join(RESPONDER_CERT);
    let key_path = ca_dir.join(RESPONDER_KEY);
    if let Some(r) = load_responder(&cert_path, &key_path, issuer) {
        return Ok(r);
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CaError::Signing(e.to_string()))?;
    let subject = <x509_cert::name::Name as std::str::FromStr>::from_str("CN=estd OCSP responder")
        .map_err(|e| CaError::Signing(e.to_string()))?;
    let cert = issuer.issue(&IssuanceRequest {
        subject,
        key_type: crate::est::KeyType::EcP256,
        public_key: key.public_key_raw().to_vec(),
        san: None,
        validity: RESPONDER_VALIDITY,
        key_usage: vec![rcgen::KeyUsagePurpose::DigitalSignature],
        extended_key_usage: vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning],
        crl_url: None,
        ocsp_url: None,
        ocsp_no_check: true,
    })?;
    use crate::ca::devpki::replace_file;
    replace_file(&key_path, &key.serialize_pem(), true)?;
    replace_file(
        &cert_path,
        &crate::est::pem("CERTIFICATE", &cert.der),
        false,
    )?;
    tracing::info!(serial = %cert.serial, file = %cert_path.display(), "issued the OCSP responder certificate");
    Responder::new(cert.der, key).map_err(CaError::Signing)
}

fn load_responder(cert_path: &Path, key_path: &Path, issuer: &dyn Issuer) -> Option<Responder> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(cert_path).ok()?.to_vec();
    let key_pem = std::fs::read_to_string(key_path).ok()?;
    let key = rcgen::KeyPair::from_pem(&key_pem).ok()?;
    let parsed = x509_cert::Certificate::from_der(&cert).ok()?;
    let ca = x509_cert::Certificate::from_der(issuer.chain().first()?).ok()?;
    if parsed.tbs_certificate().issuer() != ca.tbs_certificate().subject()
        || !same_key_id(&parsed, &ca)
    {
        tracing::info!("the OCSP responder certificate is not the current CA's; issuing another");
        return None;
    }
    let validity = parsed.tbs_certificate().validity();
    let not_after = validity.not_after.to_system_time();
    let left = not_after.duration_since(SystemTime::now()).ok()?;
    if left < RESPONDER_VALIDITY / 3 {
        tracing::info!("the OCSP responder certificate expires soon; issuing another");
        return None;
    }
    match Responder::new(cert, key) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "OCSP responder files unusable; issuing another");
            None
        }
    }
}

/// Whether `cert`'s Authority Key Identifier is `ca`'s Subject Key Identifier (true when
/// either is missing: then the names decide). A CA imported with the old one's name but
/// another key must not keep the old responder.
fn same_key_id(cert: &x509_cert::Certificate, ca: &x509_cert::Certificate) -> bool {
    use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
    let ext = |c: &x509_cert::Certificate, oid: &str| {
        c.tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes().to_vec())
    };
    let aki = ext(cert, "2.5.29.35")
        .and_then(|d| AuthorityKeyIdentifier::from_der(&d).ok())
        .and_then(|a| a.key_identifier)
        .map(|k| k.as_bytes().to_vec());
    let ski = ext(ca, "2.5.29.14")
        .and_then(|d| SubjectKeyIdentifier::from_der(&d).ok())
        .map(|k| k.0.as_bytes().to_vec());
    match (aki, ski) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}

/// The plain-HTTP routes: the CRL and the OCSP responder (GET and POST).
pub fn routes(service: Arc<RevocationService>) -> Router {
    Router::new()
        .route("/crl/{file}", get(crl))
        .route("/ocsp", axum::routing::post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .layer(DefaultBodyLimit::max(MAX_OCSP_REQUEST))
        .with_state(service)
}

async fn crl(State(s): State<Arc<RevocationService>>, UrlPath(file): UrlPath<String>) -> Response {
    if file != format!("{CA_NAME}.crl") {
        return (StatusCode::NOT_FOUND, "no such CRL\n").into_response();
    }
    match s.crl().await {
        Ok(der) => der_response("application/pkix-crl", der),
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the CRL");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the CRL cannot be signed right now\n",
            )
                .into_response()
        }
    }
}

/// A DER body with its media type (no Content-Transfer-Encoding: these are not EST).
fn der_response(content_type: &'static str, der: impl Into<Bytes>) -> Response {
    let mut r = der.into().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn ocsp_response(der: Vec<u8>) -> Response {
    der_response(ocsp::CT_RESPONSE, der)
}

async fn ocsp_post(
    State(s): State<Arc<RevocationService>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !crate::api::media_type_is(&headers, ocsp::CT_REQUEST) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {}\n", ocsp::CT_REQUEST),
        )
            .into_response();
    }
    ocsp_response(s.ocsp(&body).await)
}

/// RFC 6960 appendix A.1: GET `{url}/{url-encoding of base-64 encoding of the DER request}`.
async fn ocsp_get(
    State(s): State<Arc<RevocationService>>,
    UrlPath(request): UrlPath<String>,
) -> Response {
    use base64::Engine;
    if request.len() > MAX_OCSP_REQUEST * 2 {
        return ocsp_response(ocsp::refusal(Refusal::MalformedRequest));
    }
    // the path is already percent-decoded; some clients send '+' and '/' unencoded
    let b64: String = request.chars().filter(|c| !c.is_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
        Ok(der) => ocsp_response(s.ocsp(&der).await),
        Err(_) => ocsp_response(ocsp::refusal(Refusal::MalformedRequest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_by_any_spelling() {
        for (s, code) in [
            ("keyCompromise", 1),
            ("key-compromise", 1),
            ("KEY_COMPROMISE", 1),
            ("1", 1),
            ("unspecified", 0),
            ("cessation of operation", 5),
            ("privilegeWithdrawn", 9),
        ] {
            assert_eq!(parse_reason(s), Some(code), "{s}");
        }
        for s in [
            "",
            "hold",
            "certificateHold",
            "removeFromCRL",
            "6",
            "8",
            "cACompromise",
        ] {
            assert_eq!(parse_reason(s), None, "{s}");
        }
        assert_eq!(reason_name(1), "keyCompromise");
        assert_eq!(reason_name(6), "certificateHold");
        assert_eq!(reason_name(77), "unspecified");
    }

    #[test]
    fn urls_from_a_base() {
        let u = Urls::from_base("http://pki.example.com:8080/");
        assert_eq!(
            u.crl.as_deref(),
            Some("http://pki.example.com:8080/crl/issuing-ca.crl")
        );
        assert_eq!(u.ocsp.as_deref(), Some("http://pki.example.com:8080/ocsp"));
    }
}
