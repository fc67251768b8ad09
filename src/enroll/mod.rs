//! The enrollment service: authenticate → policy → CA → store. Nothing else issues a
//! certificate, so every path gets the same checks, the same audit and the same numbers.

use std::sync::Arc;
use std::time::SystemTime;

use crate::auth::{self, AuthMethod, Principal};
use crate::ca::{CaError, IssuanceRequest, Issuer};
use crate::est::{self, Csr, Operation};
use crate::model::RequestMeta;
use crate::policy::{PolicyError, Template};
use crate::store::{AuditEvent, CertRecord, Store, StoreError, timestamp};

/// Why an enrollment did not happen. `api/error.rs` turns these into HTTP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("user {user} is not a member of the group {group} that may enroll")]
    NotInGroup { user: String, group: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Re-enrollment whose Subject or SubjectAltName differs from the certificate renewed.
    #[error("{0}")]
    ReenrollMismatch(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("CA error: {0}")]
    Ca(String),
    #[error("store error: {0}")]
    Store(#[from] StoreError),
}

/// A certificate just issued and recorded.
#[derive(Debug, Clone)]
pub struct Issued {
    pub der: Vec<u8>,
    pub serial: String,
}

/// The certificate a re-enrollment renews: the TLS client certificate, DER.
#[derive(Debug, Clone)]
pub struct Renewing<'a> {
    pub cert_der: &'a [u8],
}

pub struct EnrollService {
    issuer: Arc<dyn Issuer>,
    store: Arc<dyn Store>,
    est_group: String,
}

/// How many times a serial-number collision is retried (each is a 2^-126 event).
const SERIAL_ATTEMPTS: usize = 3;

impl EnrollService {
    pub fn new(issuer: Arc<dyn Issuer>, store: Arc<dyn Store>, est_group: String) -> Self {
        Self {
            issuer,
            store,
            est_group,
        }
    }

    pub fn issuer(&self) -> &Arc<dyn Issuer> {
        &self.issuer
    }

    /// Checks a user name and password against the store (argon2 off the async executor).
    /// Unknown users cost as much time as wrong passwords.
    pub async fn authenticate_basic(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Principal, EnrollError> {
        let record = self.store.find_user(user).await?;
        let hash = record.as_ref().map_or_else(
            || auth::dummy_hash().to_string(),
            |r| r.password_hash.clone(),
        );
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        match record {
            Some(r) if ok => Ok(Principal {
                name: r.name,
                groups: r.groups,
                method: AuthMethod::Basic,
            }),
            _ => Err(EnrollError::Unauthorized(format!(
                "the user name or password is wrong (user {:?})",
                user.chars().take(64).collect::<String>()
            ))),
        }
    }

    /// The principal behind a TLS client certificate this CA issued: the user who requested it.
    pub async fn authenticate_certificate(
        &self,
        cert_der: &[u8],
    ) -> Result<Principal, EnrollError> {
        let serial = serial_of(cert_der).map_err(|e| {
            EnrollError::Unauthorized(format!("unreadable client certificate: {e}"))
        })?;
        let record = self.store.find_certificate(&serial).await?.ok_or_else(|| {
            EnrollError::Unauthorized(format!(
                "the client certificate (serial {serial}) was not issued by this server"
            ))
        })?;
        let user = self
            .store
            .find_user(&record.requester)
            .await?
            .ok_or_else(|| {
                EnrollError::Unauthorized(format!(
                    "the user {} who requested the client certificate no longer exists",
                    record.requester
                ))
            })?;
        Ok(Principal {
            name: user.name,
            groups: user.groups,
            method: AuthMethod::ClientCert { serial },
        })
    }

    /// Issues a certificate for `csr` under `template`, records it with its audit event.
    pub async fn enroll(
        &self,
        meta: &RequestMeta,
        op: Operation,
        principal: &Principal,
        template: &Template,
        csr: &Csr,
        renewing: Option<Renewing<'_>>,
    ) -> Result<Issued, EnrollError> {
        if !principal.in_group(&self.est_group) {
            return Err(EnrollError::NotInGroup {
                user: principal.name.clone(),
                group: self.est_group.clone(),
            });
        }
        template.check_key(csr.key_type)?;
        if let Some(old) = renewing {
            check_same_identity(csr, old.cert_der)?;
        }
        let request = IssuanceRequest {
            subject: csr.subject.clone(),
            key_type: csr.key_type,
            public_key: csr.public_key.clone(),
            san: csr.san.as_ref().map(|s| (s.critical, s.der.clone())),
            validity: template.validity,
            key_usage: template.key_usage.clone(),
            extended_key_usage: template.extended_key_usage.clone(),
        };
        let san_text = csr
            .san
            .as_ref()
            .map(|s| {
                s.entries
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();

        let mut last = None;
        for _ in 0..SERIAL_ATTEMPTS {
            let cert = self.issuer.issue(&request).map_err(|e| match e {
                CaError::UnsupportedSubject(m) => {
                    EnrollError::BadRequest(format!("the CSR subject cannot be issued: {m}"))
                }
                other => EnrollError::Ca(other.to_string()),
            })?;
            let now = timestamp(SystemTime::now());
            let record = CertRecord {
                serial: cert.serial.clone(),
                subject: csr.subject_text(),
                san: san_text.clone(),
                template: template.name.clone(),
                requester: principal.name.clone(),
                operation: op.as_str().to_string(),
                not_before: timestamp(cert.not_before),
                not_after: timestamp(cert.not_after),
                issued_at: now.clone(),
                der: cert.der.clone(),
            };
            let audit = AuditEvent {
                at: now,
                request_id: meta.request_id.clone(),
                operation: op.as_str().to_string(),
                label: meta.label.clone(),
                principal: Some(principal.name.clone()),
                peer: meta.peer.clone(),
                outcome: "ok".into(),
                status: 200,
                reason: None,
                serial: Some(cert.serial.clone()),
            };
            match self.store.record_issuance(&record, &audit).await {
                Ok(()) => {
                    tracing::info!(
                        request_id = %meta.request_id,
                        serial = %cert.serial,
                        subject = %record.subject,
                        template = %template.name,
                        principal = %principal.name,
                        "certificate issued"
                    );
                    return Ok(Issued {
                        der: cert.der,
                        serial: cert.serial,
                    });
                }
                Err(StoreError::Duplicate(what)) => {
                    tracing::warn!(request_id = %meta.request_id, %what, "serial number collision, signing again");
                    last = Some(StoreError::Duplicate(what));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EnrollError::Store(last.unwrap_or_else(|| {
            StoreError::Db("no serial number attempt was made".into())
        })))
    }
}

/// RFC 7030 §4.2.2: the Subject and SubjectAltName of a re-enrollment request must be those
/// of the certificate being renewed. SANs are compared as sets (order does not matter).
pub fn check_same_identity(csr: &Csr, cert_der: &[u8]) -> Result<(), EnrollError> {
    let (subject, sans) = est::cert_identity(cert_der)
        .map_err(|e| EnrollError::BadRequest(format!("unreadable client certificate: {e}")))?;
    if subject != csr.subject_der {
        return Err(EnrollError::ReenrollMismatch(
            "the CSR Subject differs from the Subject of the certificate being renewed".into(),
        ));
    }
    let requested = csr
        .san
        .as_ref()
        .map(|s| s.entries.clone())
        .unwrap_or_default();
    if requested != sans {
        return Err(EnrollError::ReenrollMismatch(
            "the CSR SubjectAltName differs from the SubjectAltName of the certificate being renewed".into(),
        ));
    }
    Ok(())
}

/// The serial number of a DER certificate, lower-case hex.
pub fn serial_of(cert_der: &[u8]) -> Result<String, der::Error> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der)?;
    Ok(crate::ca::hex(
        cert.tbs_certificate().serial_number().as_bytes(),
    ))
}
