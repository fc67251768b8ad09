//! SCEP (RFC 8894) as a service: a pkiMessage in, a signed CertRep out, through the same
//! enrollment service, policy, CA, store and audit as EST. The HTTP adapter (`api/scep.rs`)
//! only finds the template and the message bytes.
//!
//! Who may have a certificate: a PKCSReq carries a challenge password (a one-time challenge
//! an administrator issued, `challenge.rs`, or the template's static `scep_challenge`) and
//! is signed by the key of its CSR; a RenewalReq, or a PKCSReq signed by a current
//! certificate of this CA (what certmonger sends), renews that certificate under the EST
//! re-enrollment rules. A transactionID stays bound to the key it was first used with.

pub mod challenge;
mod fetch;
pub mod ra;
pub mod retention;

use std::sync::Arc;
use std::time::SystemTime;

use der::Decode;
use x509_cert::Certificate;

use crate::auth::{AuthMethod, Principal};
use crate::enroll::{EnrollError, EnrollRequest, EnrollService, Outcome, Renewing};
use crate::est::Csr;
use crate::model::RequestMeta;
use crate::policy::Template;
use crate::revocation::{RevocationService, public_key_fingerprint};
use crate::scep_wire::reply::LooseCertificate;
use crate::scep_wire::{self as scep, FailInfo, MessageType, Payload, PkiMessage, Status};
use crate::store::{PendingState, Store, TransactionRecord, timestamp};

pub use ra::Ra;

/// `GetCACaps`: what this server does. No `GetNextCACert`: estd has no CA rollover.
pub const CAPS: &str =
    "POSTPKIOperation\nSHA-1\nSHA-256\nSHA-512\nAES\nDES3\nSCEPStandard\nRenewal\n";

/// A pkiMessage estd cannot answer with a CertRep (no transactionID or nonce could be
/// read, or its own failure): the adapter answers with an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// 400: not a SCEP request.
    #[error("{0}")]
    Malformed(String),
    /// 503: the store or the bound on heavy work; the client may send it again.
    #[error("{reason}")]
    Unavailable { reason: String, retry_after: u64 },
    /// 429: too many wrong challenges from this address lately.
    #[error("Too many wrong challenge passwords; try again in {retry_after} seconds")]
    Throttled { retry_after: u64 },
    /// 500.
    #[error("{0}")]
    Internal(String),
}

/// What the audit row and the metrics say of one message.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// `scep-pkcsreq`, `scep-renewal`, `scep-certpoll`, `scep-getcert`, `scep-getcrl`,
    /// `scep` (unreadable).
    pub operation: &'static str,
    pub principal: Option<String>,
    pub reason: Option<String>,
    pub serial: Option<String>,
    /// The enrollment service wrote the row with the certificate.
    pub recorded: bool,
    /// A FAILURE was answered.
    pub failed: bool,
}

/// A CertRep (DER) and what to audit of it.
#[derive(Debug)]
pub struct Reply {
    pub cert_rep: Vec<u8>,
    pub audit: Audit,
}

pub struct ScepService {
    enroll: Arc<EnrollService>,
    store: Arc<dyn Store>,
    revocation: Option<Arc<RevocationService>>,
    ra: Ra,
    /// `GetCACert`'s answer: the RA's certificate first, then the CA chain.
    ca_certs: Vec<u8>,
}

/// How a message was refused: the failInfo the client gets and the reason audited.
struct Fail(FailInfo, String);

impl Fail {
    fn bad_request(reason: impl Into<String>) -> Self {
        Self(FailInfo::BadRequest, reason.into())
    }
}

/// What a handled message comes to.
enum Handled {
    Answer {
        status: Status,
        serial: Option<String>,
        recorded: bool,
        note: Option<String>,
    },
    Refused(Fail),
}

impl From<Fail> for Handled {
    fn from(f: Fail) -> Self {
        Self::Refused(f)
    }
}

impl ScepService {
    pub fn new(
        enroll: Arc<EnrollService>,
        store: Arc<dyn Store>,
        revocation: Option<Arc<RevocationService>>,
        ra: Ra,
    ) -> Result<Self, String> {
        let chain = enroll.issuer().chain().to_vec();
        let mut certs: Vec<&[u8]> = vec![&ra.cert_der];
        certs.extend(chain.iter().map(Vec::as_slice));
        let ca_certs = scep::reply::degenerate(&certs, &[]).map_err(|e| e.to_string())?;
        Ok(Self {
            enroll,
            store,
            revocation,
            ra,
            ca_certs,
        })
    }

    /// `GetCACert`: a degenerate PKCS#7 (`application/x-x509-ca-ra-cert`).
    pub fn ca_certs(&self) -> &[u8] {
        &self.ca_certs
    }

    /// The RA's certificate (DER).
    pub fn ra_certificate(&self) -> &[u8] {
        &self.ra.cert_der
    }

    /// `PKIOperation`: the CertRep answering `msg`, for `template`.
    pub async fn operation(
        &self,
        meta: &RequestMeta,
        template: &Template,
        msg: &[u8],
    ) -> Result<Reply, Refusal> {
        let parsed = match scep::parse(msg) {
            Ok(p) => p,
            Err(e) => {
                crate::metrics::metrics().scep("unreadable", answer_of(&Status::Failure(e.fail)));
                let audit = Audit {
                    operation: "scep",
                    reason: Some(e.reason.clone()),
                    failed: true,
                    ..Audit::default()
                };
                // with its transactionID and nonce read, a refusal is a signed FAILURE
                // (micromdm's client gives up on an HTTP error); without, a 400
                let Some(echo) = e.echo else {
                    return Err(Refusal::Malformed(e.reason));
                };
                let cert_rep = scep::cert_rep(&echo, &Status::Failure(e.fail), &self.ra.signer)
                    .map_err(|e| Refusal::Internal(e.to_string()))?;
                return Ok(Reply { cert_rep, audit });
            }
        };
        let (message, mut audit) = (
            message_name(parsed.message_type),
            Audit {
                operation: operation_of(parsed.message_type),
                ..Audit::default()
            },
        );
        let handled = match parsed.message_type {
            MessageType::PkcsReq | MessageType::RenewalReq => {
                self.enroll(meta, template, &parsed, &mut audit).await?
            }
            MessageType::CertPoll => self.poll(meta, template, &parsed, &mut audit).await?,
            MessageType::GetCert => self.get_cert(&parsed, &mut audit).await?,
            MessageType::GetCrl => self.get_crl(&parsed, &mut audit).await?,
            MessageType::CertRep => Fail::bad_request("a CertRep is not a request").into(),
        };
        let status = match handled {
            Handled::Answer {
                status,
                serial,
                recorded,
                note,
            } => {
                audit.serial = serial;
                audit.recorded = recorded;
                audit.reason = note;
                status
            }
            Handled::Refused(Fail(info, reason)) => {
                tracing::info!(request_id = %meta.request_id, template = %template.name, transaction_id = %crate::model::printable(&parsed.transaction_id), fail_info = info.code(), reason = %crate::model::printable(&reason), "SCEP request refused");
                audit.reason = Some(reason);
                audit.failed = true;
                Status::Failure(info)
            }
        };
        crate::metrics::metrics().scep(message, answer_of(&status));
        let cert_rep = scep::cert_rep(&parsed.echo, &status, &self.ra.signer)
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        Ok(Reply { cert_rep, audit })
    }

    /// PKCSReq and RenewalReq.
    async fn enroll(
        &self,
        meta: &RequestMeta,
        template: &Template,
        msg: &PkiMessage,
        audit: &mut Audit,
    ) -> Result<Handled, Refusal> {
        let (plain, cipher) = match scep::open(&msg.envelope, &self.ra.recipients) {
            Ok(p) => p,
            Err(e) => return Ok(Fail(e.fail, e.reason).into()),
        };
        // a key transport that failed yields random bytes (Marvin): they do not parse
        let Ok(csr) = Csr::parse(&plain) else {
            return Ok(Fail(
                FailInfo::BadMessageCheck,
                "the envelope could not be decrypted, or does not hold a PKCS#10 request".into(),
            )
            .into());
        };
        if let Some(f) = unencryptable(msg) {
            return Ok(f.into());
        }
        let signer = match LooseCertificate::from_der(&msg.signer_cert) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Fail::bad_request(format!("unreadable signer certificate: {e}")).into());
            }
        };
        // signed by a registration authority the template lists: the RA vouches for the
        // device's key (the request still needs its challenge), and renews nothing
        let via_ra = template.scep_ra_signers.contains(&msg.signer_cert);
        let renewal = if via_ra {
            false
        } else {
            match self.current_certificate(&signer, &msg.signer_cert).await? {
                Ok(found) => found,
                Err(f) => return Ok(f.into()),
            }
        };
        if renewal {
            audit.operation = "scep-renewal";
        }
        if msg.message_type == MessageType::RenewalReq && !renewal {
            return Ok(Fail::bad_request(
                "a RenewalReq must be signed by the certificate being renewed, a current certificate of this CA",
            )
            .into());
        }
        let fingerprint = public_key_fingerprint(&csr.public_key);
        if !renewal && !via_ra && signer_key(&signer) != csr.public_key {
            return Ok(Fail(
                FailInfo::BadMessageCheck,
                "the message is not signed by the key of its certificate request".into(),
            )
            .into());
        }
        // the transaction: a transactionID stays bound to its first key; only a renewal of
        // the device it issued to starts it over (certmonger renews under its first
        // transactionID, with a new key or the same). A request sent again after its answer
        // was lost gets the same certificate.
        let known = self
            .store
            .find_transaction(&template.name, &msg.transaction_id)
            .await
            .map_err(unavailable)?;
        if let Some(t) = &known {
            let signer_serial =
                crate::est::hex(signer.tbs_certificate().serial_number().as_bytes());
            if t.key_fingerprint == fingerprint {
                // the same key: the request again (its answer lost) unless it renews the
                // very certificate this transaction issued
                let renews_that = renewal && t.serial.as_deref() == Some(signer_serial.as_str());
                if !renews_that
                    && let Some(done) = self.finished(meta, template, t, msg, cipher, audit).await?
                {
                    return Ok(done);
                }
            } else if !(renewal && self.renews_its_own(t, &signer_serial).await?) {
                return Ok(Fail::bad_request(format!(
                    "the transactionID {} was used with another key",
                    crate::model::printable(&msg.transaction_id)
                ))
                .into());
            }
        }
        let (principal, effective) = if renewal {
            match self.enroll.authenticate_certificate(&msg.signer_cert).await {
                Ok(p) => (p, None),
                Err(e) => return Ok(refused(e)?.into()),
            }
        } else {
            match challenge::check(
                self.store.as_ref(),
                &self.enroll,
                &meta.peer,
                template,
                &csr,
                &msg.transaction_id,
            )
            .await?
            {
                Ok(passed) => passed,
                Err(f) => return Ok(f.into()),
            }
        };
        audit.principal = Some(principal.name.clone());
        let template = effective.as_ref().unwrap_or(template);
        let record = TransactionRecord {
            template: template.name.clone(),
            transaction_id: msg.transaction_id.clone(),
            key_fingerprint: fingerprint,
            pending_id: None,
            serial: None,
            created_at: timestamp(SystemTime::now()),
        };
        // the certificate's record names the RA that asked for it
        let via = if via_ra {
            format!(
                "via the SCEP RA {}",
                crate::model::printable(&signer.tbs_certificate().subject().to_string())
            )
        } else {
            String::new()
        };
        let outcome = self
            .enroll
            .enroll(EnrollRequest {
                meta,
                op: audit.operation,
                description: &via,
                principal: &principal,
                template,
                csr: &csr,
                renewing: renewal.then_some(Renewing {
                    cert_der: &msg.signer_cert,
                }),
                exporter: None,
                server_keygen: false,
                job_item: None,
                vars: None,
            })
            .await;
        // a request refused (the policy, or estd failing to finish it) leaves its one-time
        // challenge unused: it may be sent again, corrected or later
        if let (Err(_), AuthMethod::Code { id: Some(id), .. }) = (&outcome, &principal.method) {
            self.enroll
                .release_code(*id, &crate::enroll::codes::scep_use(&msg.transaction_id))
                .await;
        }
        self.answer(msg, cipher, outcome, record).await
    }

    /// Whether a renewal signed by `signer_serial` (a current certificate of this CA) may start
    /// the finished transaction `t` over: it issued `signer`, or a certificate of the same
    /// subject to the same requester. A transaction still waiting for approval never is.
    async fn renews_its_own(
        &self,
        t: &TransactionRecord,
        signer_serial: &str,
    ) -> Result<bool, Refusal> {
        let Some(serial) = t.serial.as_deref() else {
            return Ok(false);
        };
        if serial == signer_serial {
            return Ok(true);
        }
        let issued = self
            .store
            .find_certificate(serial)
            .await
            .map_err(unavailable)?;
        let own = self
            .store
            .find_certificate(signer_serial)
            .await
            .map_err(unavailable)?;
        Ok(match (issued, own) {
            (Some(i), Some(o)) => i.subject == o.subject && i.requester == o.requester,
            _ => false,
        })
    }

    /// What an enrollment came to, recorded with its transaction (one write: the
    /// transaction's key and what it came to, inserted or replaced).
    async fn answer(
        &self,
        msg: &PkiMessage,
        cipher: scep::envelope::Cipher,
        outcome: Result<Outcome, EnrollError>,
        mut record: TransactionRecord,
    ) -> Result<Handled, Refusal> {
        match outcome {
            Ok(Outcome::Issued(issued)) => {
                record.pending_id = None;
                record.serial = Some(issued.serial.clone());
                self.store
                    .save_transaction(&record)
                    .await
                    .map_err(unavailable)?;
                Ok(Handled::Answer {
                    status: Status::Success {
                        payload: Payload::Cert(issued.der),
                        recipient: msg.signer_cert.clone(),
                        cipher,
                    },
                    serial: Some(issued.serial),
                    recorded: issued.fresh,
                    note: None,
                })
            }
            Ok(Outcome::Pending { id, .. }) => {
                record.pending_id = Some(id);
                record.serial = None;
                self.store
                    .save_transaction(&record)
                    .await
                    .map_err(unavailable)?;
                Ok(Handled::Answer {
                    status: Status::Pending,
                    serial: None,
                    recorded: false,
                    note: Some(format!("request {id} waits for manual approval")),
                })
            }
            Err(e) => Ok(refused(e)?.into()),
        }
    }

    /// A transaction already answered or decided: its certificate again (while valid), a
    /// rejection, still pending, or approved (then issued now); `None` when it must be
    /// handled anew.
    async fn finished(
        &self,
        meta: &RequestMeta,
        template: &Template,
        t: &TransactionRecord,
        msg: &PkiMessage,
        cipher: scep::envelope::Cipher,
        audit: &mut Audit,
    ) -> Result<Option<Handled>, Refusal> {
        let recipient = msg.signer_cert.as_slice();
        let pending = match t.pending_id {
            Some(id) => self.store.get_pending(id).await.map_err(unavailable)?,
            None => None,
        };
        // the transaction's certificate, or the one an upstream CA issued for the request it
        // held (the poll that got it was estd's own, not this transaction's)
        let serial = t.serial.clone().or_else(|| {
            pending
                .as_ref()
                .filter(|p| p.state == PendingState::Issued)
                .and_then(|p| p.serial.clone())
        });
        if let Some(serial) = &serial {
            let cert = self
                .store
                .find_certificate(serial)
                .await
                .map_err(unavailable)?;
            if let Some(c) = cert
                && c.not_after > timestamp(SystemTime::now())
            {
                audit.principal = Some(c.requester.clone());
                return Ok(Some(Handled::Answer {
                    status: Status::Success {
                        payload: Payload::Cert(c.der),
                        recipient: recipient.to_vec(),
                        cipher,
                    },
                    serial: Some(c.serial),
                    recorded: false,
                    note: Some("the certificate of this transaction, sent again".into()),
                }));
            }
            return Ok(None);
        }
        let Some(p) = pending else {
            return Ok(None);
        };
        let id = p.id;
        audit.principal = Some(p.requester.clone());
        Ok(match p.state {
            PendingState::Pending => Some(Handled::Answer {
                status: Status::Pending,
                serial: None,
                recorded: false,
                note: Some(format!("request {id} waits for manual approval")),
            }),
            PendingState::Upstream => Some(Handled::Answer {
                status: Status::Pending,
                serial: None,
                recorded: false,
                note: Some(format!("request {id} waits for the upstream CA")),
            }),
            PendingState::Rejected => Some(
                Fail::bad_request(format!(
                    "the certificate request {id} was rejected{}",
                    p.reason.map(|r| format!(": {r}")).unwrap_or_default()
                ))
                .into(),
            ),
            PendingState::Approved => Some(
                self.issue_approved(meta, template, msg, cipher, &p, t.clone())
                    .await?,
            ),
            // issued: found by its serial above (expired since: handled anew)
            PendingState::Issued => None,
        })
    }

    /// CertPoll (GetCertInitial): the request is found by its transactionID and must be
    /// signed by the key it was made with.
    async fn poll(
        &self,
        meta: &RequestMeta,
        template: &Template,
        msg: &PkiMessage,
        audit: &mut Audit,
    ) -> Result<Handled, Refusal> {
        let cipher = match scep::open(&msg.envelope, &self.ra.recipients) {
            Ok((_, c)) => c,
            Err(e) => return Ok(Fail(e.fail, e.reason).into()),
        };
        let Some(t) = self
            .store
            .find_transaction(&template.name, &msg.transaction_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(Fail(
                FailInfo::BadCertId,
                "no request with this transactionID".into(),
            )
            .into());
        };
        let signer = match LooseCertificate::from_der(&msg.signer_cert) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Fail::bad_request(format!("unreadable signer certificate: {e}")).into());
            }
        };
        let renewal = matches!(
            self.current_certificate(&signer, &msg.signer_cert).await?,
            Ok(true)
        );
        let same_key = public_key_fingerprint(&signer_key(&signer)) == t.key_fingerprint;
        let via_ra = template.scep_ra_signers.contains(&msg.signer_cert);
        if !same_key && !renewal && !via_ra {
            return Ok(Fail(
                FailInfo::BadMessageCheck,
                "the poll is not signed by the key of the request it names".into(),
            )
            .into());
        }
        if let Some(f) = unencryptable(msg) {
            return Ok(f.into());
        }
        if let Some(done) = self
            .finished(meta, template, &t, msg, cipher, audit)
            .await?
        {
            return Ok(done);
        }
        Ok(Fail(
            FailInfo::BadCertId,
            "no request waits under this transactionID".into(),
        )
        .into())
    }

    /// An approved request, issued now from the stored request by the enrollment service
    /// (which finds it approved by its key and requester).
    async fn issue_approved(
        &self,
        meta: &RequestMeta,
        template: &Template,
        msg: &PkiMessage,
        cipher: scep::envelope::Cipher,
        p: &crate::store::PendingRecord,
        transaction: TransactionRecord,
    ) -> Result<Handled, Refusal> {
        let Ok(csr) = Csr::parse(&p.csr) else {
            return Err(Refusal::Internal(format!(
                "stored request {} is unreadable",
                p.id
            )));
        };
        let principal = Principal {
            name: p.requester.clone(),
            groups: Vec::new(),
            method: AuthMethod::Code {
                template: template.name.clone(),
                id: None,
            },
        };
        let mut t = template.clone();
        // the approved request passed the CN rules when it was made
        t.cn_must_match_user = false;
        let op = if p.operation == "scep-renewal" {
            "scep-renewal"
        } else {
            "scep-pkcsreq"
        };
        let outcome = self
            .enroll
            .enroll(EnrollRequest {
                meta,
                op,
                description: "",
                principal: &principal,
                template: &t,
                csr: &csr,
                renewing: None,
                exporter: None,
                server_keygen: false,
                job_item: None,
                vars: None,
            })
            .await;
        self.answer(msg, cipher, outcome, transaction).await
    }

    /// Whether the signer is a certificate this CA issued (then it must be exactly the one
    /// recorded, and current); `Ok(false)` for any other certificate (a self-signed one).
    async fn current_certificate(
        &self,
        signer: &LooseCertificate,
        signer_der: &[u8],
    ) -> Result<Result<bool, Fail>, Refusal> {
        let issued_here = self.enroll.issuer().chain().first().is_some_and(|ca| {
            Certificate::from_der(ca)
                .is_ok_and(|ca| ca.tbs_certificate().subject() == signer.tbs_certificate().issuer())
        });
        if !issued_here || signer.tbs_certificate().issuer() == signer.tbs_certificate().subject() {
            return Ok(Ok(false));
        }
        let serial = crate::est::hex(signer.tbs_certificate().serial_number().as_bytes());
        let record = self
            .store
            .find_certificate(&serial)
            .await
            .map_err(unavailable)?;
        // the message's signature proves the key; the certificate must be the very one
        // this CA issued (a look-alike with a copied serial is not)
        let Some(record) = record.filter(|r| r.der == signer_der) else {
            return Ok(Err(Fail(
                FailInfo::BadCertId,
                format!("the signer certificate (serial {serial}) was not issued by this CA"),
            )));
        };
        let now = timestamp(SystemTime::now());
        if record.not_after <= now || record.not_before > now {
            return Ok(Err(Fail(
                FailInfo::BadTime,
                format!("the signer certificate (serial {serial}) is not valid now"),
            )));
        }
        Ok(Ok(true))
    }
}

/// `badAlg` when the reply could not be enveloped to the signer's key (an RSA key of 2048
/// bits or more): asked before anything is issued.
fn unencryptable(msg: &PkiMessage) -> Option<Fail> {
    (!scep::can_encrypt_to(&msg.signer_cert)).then(|| {
        Fail(
            FailInfo::BadAlg,
            "the reply can be encrypted only to an RSA key of 2048 bits or more: sign the request with one".into(),
        )
    })
}

/// The subjectPublicKey bits of a certificate.
fn signer_key(c: &LooseCertificate) -> Vec<u8> {
    c.tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

/// A refusal of the enrollment service as a SCEP failure; what is transient (the store,
/// the bound on work) or estd's own fault is an HTTP error instead.
fn refused(e: EnrollError) -> Result<Fail, Refusal> {
    match e {
        EnrollError::Busy { retry_after } | EnrollError::Throttled { retry_after } => {
            Err(Refusal::Unavailable {
                reason: e.to_string(),
                retry_after,
            })
        }
        EnrollError::Store(s) => Err(unavailable(s)),
        EnrollError::Ca { .. } => Err(Refusal::Unavailable {
            reason: e.to_string(),
            retry_after: 30,
        }),
        other => Ok(Fail::bad_request(other.to_string())),
    }
}

pub(super) fn unavailable(e: crate::store::StoreError) -> Refusal {
    Refusal::Unavailable {
        reason: format!("store error: {e}"),
        retry_after: 5,
    }
}

/// The audit's operation for a message (a PKCSReq signed by a current certificate is a
/// renewal: `enroll` says so).
fn operation_of(t: MessageType) -> &'static str {
    match t {
        MessageType::RenewalReq => "scep-renewal",
        MessageType::PkcsReq => "scep-pkcsreq",
        MessageType::CertPoll => "scep-certpoll",
        MessageType::GetCert => "scep-getcert",
        MessageType::GetCrl => "scep-getcrl",
        MessageType::CertRep => "scep",
    }
}

fn message_name(t: MessageType) -> &'static str {
    match t {
        MessageType::PkcsReq => "pkcsreq",
        MessageType::RenewalReq => "renewalreq",
        MessageType::CertPoll => "certpoll",
        MessageType::GetCert => "getcert",
        MessageType::GetCrl => "getcrl",
        MessageType::CertRep => "certrep",
    }
}

fn answer_of(s: &Status) -> &'static str {
    match s {
        Status::Success { .. } => "success",
        Status::Pending => "pending",
        Status::Failure(FailInfo::BadAlg) => "failure-badAlg",
        Status::Failure(FailInfo::BadMessageCheck) => "failure-badMessageCheck",
        Status::Failure(FailInfo::BadRequest) => "failure-badRequest",
        Status::Failure(FailInfo::BadTime) => "failure-badTime",
        Status::Failure(FailInfo::BadCertId) => "failure-badCertId",
    }
}
