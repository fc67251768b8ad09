//! Revocation: recording it, the keys of revoked certificates, the CRL of the issuing CA
//! (signed, kept in memory, made again on every revocation and before `nextUpdate`), and
//! OCSP answers made from the store (bytes in, bytes out). The HTTP routes that serve them
//! are `api::revocation`'s.

mod responder;

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use der::Decode;

use crate::ca::ocsp::{self, IssuerHashes, Refusal, Responder, Status};
use crate::ca::{CaError, Issuer, RevokedEntry};
use crate::model::{RequestMeta, timestamp};
use crate::store::{AuditEvent, CertRecord, RevocationRecord, Store, StoreError};
pub use responder::current_delegate;
use responder::ensure_responder;

/// The name of the one issuing CA's CRL (`/crl/issuing-ca.crl`).
pub const CA_NAME: &str = "issuing-ca";
const RESPONDER_CERT: &str = "ocsp-responder.pem";
const RESPONDER_KEY: &str = "ocsp-responder.key";
/// A responder certificate is issued for this long, and again when less than a third is left.
const RESPONDER_VALIDITY: Duration = Duration::from_secs(90 * 86_400);
/// An OCSP request (GET or POST) is at most this long.
pub const MAX_OCSP_REQUEST: usize = 8 * 1024;

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

/// How long CRLs and OCSP answers are valid (`nextUpdate`).
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub crl: Duration,
    pub ocsp: Duration,
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
    responder: Option<Arc<Responder>>,
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
        validity: Validity,
        revoked_keys: Arc<RevokedKeys>,
        responder_key: Option<crate::ca::pkcs11::TokenKey>,
    ) -> Result<Self, CaError> {
        let ca = issuer
            .chain()
            .first()
            .ok_or_else(|| CaError::Files("empty CA chain".into()))?;
        let hashes = IssuerHashes::of(ca).map_err(CaError::Files)?;
        let responder = match ensure_responder(ca_dir, issuer.as_ref(), responder_key) {
            Ok(r) => Some(Arc::new(r)),
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
            crl_validity: validity.crl,
            ocsp_validity: validity.ocsp,
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
        // certificates an upstream CA signed are on its CRL, not on this CA's
        let entries = revoked
            .iter()
            .filter(|r| r.issuer == crate::store::LOCAL_ISSUER)
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
        let next_update = this_update + self.crl_validity;
        let listed = entries.len();
        let der = crate::ca::signing(&self.issuer, move |ca| {
            ca.crl(&entries, number, this_update, next_update)
        })
        .await?;
        let der = Bytes::from(der);
        tracing::info!(entries = listed, number, "CRL signed");
        if let Ok(mut c) = self.crl.write() {
            *c = Some(Arc::new(Crl {
                der: der.clone(),
                this_update,
                entries: listed,
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
        let next_update = now + self.ocsp_validity;
        let nonce = req.nonce;
        let signed = if responder.signs_remotely() {
            // a key in a token: on the blocking pool (a network HSM takes milliseconds)
            let responder = Arc::clone(responder);
            tokio::task::spawn_blocking(move || {
                responder.respond(&answers, nonce.as_deref(), now, next_update)
            })
            .await
            .unwrap_or_else(|e| Err(format!("the signing task failed: {e}")))
        } else {
            responder.respond(&answers, nonce.as_deref(), now, next_update)
        };
        match signed {
            Ok(der) => der,
            Err(e) => {
                tracing::error!(error = %e, "OCSP: cannot sign the response");
                ocsp::refusal(Refusal::InternalError)
            }
        }
    }

    async fn status_of(&self, serial: &str) -> Result<Status, StoreError> {
        // a certificate an upstream CA signed is that CA's to answer for
        match self.store.find_certificate(serial).await? {
            Some(c) if c.issuer == crate::store::LOCAL_ISSUER => {}
            _ => return Ok(Status::Unknown),
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
    let key_fingerprint = public_key_fingerprint(
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
        issuer: cert.issuer.clone(),
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

/// SHA-256 of a public key's bits (a CSR's, a certificate's): which keys were revoked.
pub fn public_key_fingerprint(public_key: &[u8]) -> String {
    crate::est::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key).as_ref())
}

/// The keys of revoked certificates (kept by the revocation service): no new certificate
/// for them.
#[derive(Debug, Default)]
pub struct RevokedKeys(std::sync::RwLock<std::collections::HashMap<String, String>>);

impl RevokedKeys {
    /// The serial of a revoked certificate with this key, if any.
    pub fn serial_for(&self, fingerprint: &str) -> Option<String> {
        self.0.read().ok()?.get(fingerprint).cloned()
    }

    pub fn insert(&self, fingerprint: String, serial: String) {
        if let Ok(mut m) = self.0.write() {
            m.insert(fingerprint, serial);
        }
    }

    pub fn len(&self) -> usize {
        self.0.read().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
