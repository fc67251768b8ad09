//! Registration-authority mode: a template whose `issuer` names an upstream CA has its
//! requests forwarded there once estd's own checks passed (access, renewal rules, the
//! template's name rules, manual approval). What comes back is checked
//! (`ca::upstream::check`) and recorded with the upstream's name; a request the upstream
//! holds is held here too (`PendingState::Upstream`), asked about again in the background
//! (`poll_due`) and when the device repeats it.

use std::time::{Duration, SystemTime};

use super::*;
use crate::ca::SignedCert;
use crate::ca::upstream::{Answer, Approved, Upstream, UpstreamError};
use crate::store::UpstreamPending;

/// Held requests asked about per round of the background poller.
const POLL_BATCH: u32 = 16;
/// The first delay between polls of a held request; doubled each time up to `poll_max`.
const POLL_BASE: Duration = Duration::from_secs(5);

impl EnrollService {
    /// Upstream CAs by name (`[upstream.NAME]`); templates name them in `issuer`. The
    /// templates are what held requests are checked against when the upstream issues them.
    pub fn with_upstreams(
        mut self,
        upstreams: Vec<Arc<Upstream>>,
        templates: Arc<crate::policy::Templates>,
    ) -> Self {
        self.upstreams = upstreams
            .into_iter()
            .map(|u| (u.name().to_string(), u))
            .collect();
        self.templates = Some(templates);
        self
    }

    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.upstreams.values()
    }

    /// The template's upstream CA; `None` for estd's own.
    pub fn upstream_of(&self, template: &Template) -> Result<Option<Arc<Upstream>>, EnrollError> {
        if template.issuer == crate::model::LOCAL_ISSUER {
            return Ok(None);
        }
        self.upstreams
            .get(&template.issuer)
            .cloned()
            .map(Some)
            .ok_or_else(|| EnrollError::Ca {
                cn: String::new(),
                detail: format!(
                    "template {} names the upstream {}, which is not configured",
                    template.name, template.issuer
                ),
            })
    }

    /// Sends an approved request to `up` and records what it answers.
    pub(super) async fn forward(
        &self,
        ctx: IssueCtx<'_>,
        up: &Arc<Upstream>,
    ) -> Result<Outcome, EnrollError> {
        let fp = key_fingerprint(ctx.csr);
        if ctx.pending_id.is_none()
            && ctx.job_item.is_none()
            && let Some(p) = self
                .store
                .find_pending_by_key(&ctx.template.name, &fp)
                .await?
        {
            if p.requester != ctx.requester && p.state != PendingState::Rejected {
                // someone else's request for this key: never answered to another, nor
                // forwarded again under another name
                return Err(EnrollError::BadRequest(
                    "another requester's request is for this key; make a new key".into(),
                ));
            }
            match p.state {
                _ if p.requester != ctx.requester => {}
                PendingState::Upstream => return self.held(p, ctx.meta).await,
                PendingState::Issued => {
                    if let Some(again) =
                        self.issued_again(&p, ctx.server_keygen, ctx.renews).await?
                    {
                        return Ok(again);
                    }
                }
                PendingState::Rejected => {
                    // a refusal stands for the key it was made for, as a person's does
                    return Err(EnrollError::Rejected {
                        id: p.id,
                        reason: p.reason,
                    });
                }
                PendingState::Pending | PendingState::Approved => {}
            }
        }
        let generated = self.generated_key(&ctx).await?;
        let (csr_der, public_key) = match &generated {
            Some(key) => {
                let cn = est::common_name(ctx.subject).unwrap_or_default();
                let challenge = up
                    .challenge(&cn)
                    .await
                    .map_err(|e| upstream_error(e, ctx.meta))?;
                let challenge = challenge.as_deref().map(String::as_str);
                (
                    upstream_csr(key, ctx.subject, ctx.san, challenge)?,
                    key.public_key.clone(),
                )
            }
            None => {
                same_as_csr(&ctx, up.name())?;
                (ctx.csr.der.clone(), ctx.csr.public_key.clone())
            }
        };
        let eku = eku_oids(ctx.template);
        let approved = Approved {
            subject: ctx.subject,
            san: ctx.san,
            eku: &eku,
        };
        let answer = up
            .enroll(&csr_der, &public_key, &approved, ctx.renews.is_some())
            .await
            .map_err(|e| upstream_error(e, ctx.meta))?;
        match answer {
            Answer::Issued(cert) => self.record_upstream(&ctx, up, cert, generated).await,
            Answer::Pending { retry_after } => {
                if generated.is_some() {
                    return Err(EnrollError::UpstreamRefused {
                        name: up.name().to_string(),
                        status: 202,
                        reason: "it holds the request for approval, and a key the server generates is not kept while a request waits; send a CSR with your own key (simpleenroll)".into(),
                    });
                }
                let retry_after = retry_after
                    .min(up.settings().poll_max)
                    .max(Duration::from_secs(1));
                let next = timestamp(SystemTime::now() + retry_after);
                let id = match ctx.pending_id {
                    Some(id) => {
                        if !self
                            .store
                            .approved_to_upstream(id, up.name(), &next)
                            .await?
                        {
                            return Err(EnrollError::BadRequest(format!(
                                "request {id} is no longer approved (issued or decided elsewhere); repeat the request"
                            )));
                        }
                        id
                    }
                    None => {
                        let record = PendingRecord {
                            id: 0,
                            template: ctx.template.name.clone(),
                            requester: ctx.requester.to_string(),
                            key_fingerprint: fp,
                            subject: ctx.subject.to_string(),
                            san: san_text(ctx.san),
                            operation: ctx.op.to_string(),
                            csr: ctx.csr.der.clone(),
                            state: PendingState::Upstream,
                            reason: None,
                            created_at: timestamp(SystemTime::now()),
                            decided_at: None,
                            decided_by: None,
                            serial: None,
                        };
                        self.store.hold_upstream(&record, up.name(), &next).await?
                    }
                };
                tracing::info!(request_id = %ctx.meta.request_id, pending_id = id, upstream = %up.name(), retry_secs = retry_after.as_secs(), "the upstream CA holds the request");
                Ok(Outcome::Pending { id, retry_after })
            }
            Answer::Refused { status, reason } => {
                tracing::info!(request_id = %ctx.meta.request_id, upstream = %up.name(), status, reason = %reason, "the upstream CA refused the request");
                Err(EnrollError::UpstreamRefused {
                    name: up.name().to_string(),
                    status,
                    reason,
                })
            }
        }
    }

    async fn record_upstream(
        &self,
        ctx: &IssueCtx<'_>,
        up: &Upstream,
        signed: SignedCert,
        generated: Option<est::GeneratedKey>,
    ) -> Result<Outcome, EnrollError> {
        let note = format!("signed by the upstream CA {}", up.name());
        match self
            .record(ctx, &signed, up.name(), generated.as_ref(), Some(note))
            .await
        {
            Ok(()) => Ok(Outcome::Issued(Issued {
                der: signed.der,
                serial: signed.serial,
                fresh: true,
                key_pkcs8: generated.map(|k| k.pkcs8),
            })),
            Err(EnrollError::Store(StoreError::Duplicate(_))) => {
                // the same certificate again (the upstream answered a repeated request
                // with it) is handed out again; another under a recorded serial is not
                match self.store.find_certificate(&signed.serial).await? {
                    Some(c)
                        if c.der == signed.der
                            && c.requester == ctx.requester
                            && c.template == ctx.template.name =>
                    {
                        Ok(Outcome::Issued(Issued {
                            der: signed.der,
                            serial: signed.serial,
                            fresh: false,
                            key_pkcs8: None,
                        }))
                    }
                    _ => Err(EnrollError::UpstreamUnavailable {
                        detail: format!(
                            "the upstream CA {} returned a certificate with serial {}, which another certificate this server recorded has",
                            up.name(),
                            signed.serial
                        ),
                        retry_after: 60,
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A request the upstream holds, repeated by its device: asked about now when it is
    /// due (the background poller may have been slower), else "come back later".
    pub(super) async fn held(
        &self,
        p: PendingRecord,
        meta: &RequestMeta,
    ) -> Result<Outcome, EnrollError> {
        let Some(row) = self.store.upstream_pending(p.id).await? else {
            // decided meanwhile: the device's next try reads the outcome
            return Ok(Outcome::Pending {
                id: p.id,
                retry_after: Duration::from_secs(1),
            });
        };
        let now = SystemTime::now();
        let due = crate::model::parse_timestamp(&row.next_poll_at).unwrap_or(now);
        if due > now {
            return Ok(Outcome::Pending {
                id: p.id,
                retry_after: due
                    .duration_since(now)
                    .unwrap_or_default()
                    .max(Duration::from_secs(1)),
            });
        }
        match self.poll_held(row, meta).await? {
            Some(issued) => Ok(Outcome::Issued(issued)),
            None => match self.store.get_pending(p.id).await? {
                Some(after) if after.state == PendingState::Rejected => {
                    Err(EnrollError::Rejected {
                        id: after.id,
                        reason: after.reason,
                    })
                }
                _ => Ok(Outcome::Pending {
                    id: p.id,
                    retry_after: self.next_retry(p.id).await,
                }),
            },
        }
    }

    async fn next_retry(&self, id: i64) -> Duration {
        let now = SystemTime::now();
        match self.store.upstream_pending(id).await {
            Ok(Some(r)) => crate::model::parse_timestamp(&r.next_poll_at)
                .and_then(|t| t.duration_since(now).ok())
                .unwrap_or_default()
                .max(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        }
    }

    /// Asks the upstream once about a held request (claimed first, so one poll runs however
    /// many instances and retries try): issued → recorded; refused or waited too long →
    /// rejected with the reason; still held or unreachable → asked again later.
    async fn poll_held(
        &self,
        row: UpstreamPending,
        meta: &RequestMeta,
    ) -> Result<Option<Issued>, EnrollError> {
        let p = &row.pending;
        let now = SystemTime::now();
        let audit =
            |outcome: &str, status: u16, reason: String, serial: Option<String>| AuditEvent {
                at: timestamp(SystemTime::now()),
                request_id: meta.request_id.clone(),
                operation: p.operation.clone(),
                label: Some(p.template.clone()),
                principal: Some(p.requester.clone()),
                peer: meta.peer.clone(),
                outcome: outcome.into(),
                status,
                reason: Some(reason),
                serial,
            };
        let give_up = |reason: String| async move {
            tracing::info!(pending_id = p.id, reason = %reason, "held request given up");
            self.store
                .reject_upstream(p.id, &reason, &audit("error", 403, reason.clone(), None))
                .await
                .map(|_| None)
                .map_err(EnrollError::from)
        };
        // an upstream or template no longer configured: nothing will ever answer it
        let Some(up) = self.upstreams.get(&row.upstream).cloned() else {
            return give_up(format!(
                "the upstream CA {} is no longer configured",
                row.upstream
            ))
            .await;
        };
        let Some(template) = self
            .templates
            .as_ref()
            .and_then(|t| t.get(Some(&p.template)))
        else {
            return give_up(format!(
                "the certificate template {} is no longer configured",
                p.template
            ))
            .await;
        };
        let attempts = u32::try_from(row.poll_attempts).unwrap_or(u32::MAX).min(16);
        let delay = (POLL_BASE * 2u32.saturating_pow(attempts)).min(up.settings().poll_max);
        if !self
            .store
            .claim_upstream_poll(p.id, &row.next_poll_at, &timestamp(now + delay))
            .await?
        {
            return Ok(None);
        }
        let csr = Csr::parse(&p.csr).map_err(|e| EnrollError::Ca {
            cn: String::new(),
            detail: format!("stored request {} is unreadable: {e}", p.id),
        })?;
        let renewal = p.operation == "simplereenroll";
        // forwarded as the device signed it: its subject and SAN are what was approved
        let san = csr
            .san
            .as_ref()
            .map(|s| s.entries.clone())
            .unwrap_or_default();
        let eku = eku_oids(&template);
        let approved = Approved {
            subject: &csr.subject,
            san: &san,
            eku: &eku,
        };
        let answer = up.poll(&csr.der, &csr.public_key, &approved, renewal).await;
        // how long the upstream has held it (since it was forwarded: an approval here first
        // does not count)
        let held_for =
            crate::model::parse_timestamp(p.decided_at.as_deref().unwrap_or(&p.created_at))
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
        match answer {
            Ok(Answer::Issued(cert)) => {
                let record = CertRecord {
                    serial: cert.serial.clone(),
                    subject: cert.subject,
                    san: cert.san,
                    template: p.template.clone(),
                    requester: p.requester.clone(),
                    operation: p.operation.clone(),
                    not_before: timestamp(cert.not_before),
                    not_after: timestamp(cert.not_after),
                    issued_at: timestamp(SystemTime::now()),
                    der: cert.der.clone(),
                    description: String::new(),
                    issuer: up.name().to_string(),
                };
                let reason = format!(
                    "request {} held by the upstream CA {}, issued after {} polls",
                    p.id,
                    up.name(),
                    row.poll_attempts + 1
                );
                let a = audit("ok", 200, reason, Some(cert.serial.clone()));
                match self.store.record_upstream_issuance(p.id, &record, &a).await {
                    Ok(true) => {}
                    Ok(false) => return Ok(None),
                    // the same certificate was recorded for this requester already (the
                    // upstream answered a repeated request for the key with it): this
                    // request has it too
                    Err(StoreError::Duplicate(_)) => {
                        let same = self
                            .store
                            .find_certificate(&cert.serial)
                            .await?
                            .is_some_and(|c| {
                                c.der == cert.der
                                    && c.requester == p.requester
                                    && c.template == p.template
                            });
                        if !same || !self.store.mark_upstream_issued(p.id, &cert.serial).await? {
                            return give_up(format!(
                                "the upstream CA {} returned a certificate with serial {}, which another certificate this server recorded has",
                                up.name(),
                                cert.serial
                            ))
                            .await;
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
                crate::metrics::metrics().issued();
                tracing::info!(pending_id = p.id, serial = %cert.serial, upstream = %up.name(), "held request issued by the upstream CA");
                Ok(Some(Issued {
                    der: cert.der,
                    serial: cert.serial,
                    fresh: true,
                    key_pkcs8: None,
                }))
            }
            Ok(Answer::Refused { status, reason }) => {
                let reason = format!("the upstream CA {} refused it: {reason}", up.name());
                self.store
                    .reject_upstream(p.id, &reason, &audit("error", status, reason.clone(), None))
                    .await?;
                tracing::info!(pending_id = p.id, upstream = %up.name(), "held request refused by the upstream CA");
                Ok(None)
            }
            // still held (or unreachable) past the limit: asked once more just now, given up
            Ok(Answer::Pending { .. }) | Err(_) if held_for > up.settings().pending_max_age => {
                give_up(format!(
                    "the upstream CA {} did not issue it within {} days",
                    up.name(),
                    up.settings().pending_max_age.as_secs() / 86_400
                ))
                .await
            }
            Ok(Answer::Pending { .. }) => Ok(None),
            Err(e) => {
                tracing::warn!(pending_id = p.id, error = %e, "polling the upstream CA failed; asked again later");
                if matches!(e, UpstreamError::Invalid { .. }) {
                    let _ = self
                        .store
                        .record_audit(&audit("error", 503, e.to_string(), None))
                        .await;
                }
                Ok(None)
            }
        }
    }

    /// One round of the background poller: the held requests that are due, asked about
    /// one after the other. Returns how many were issued.
    pub async fn poll_due(&self) -> Result<usize, EnrollError> {
        let now = timestamp(SystemTime::now());
        let due = self.store.due_upstream(&now, POLL_BATCH).await?;
        let meta = RequestMeta {
            request_id: "upstream-poll".into(),
            peer: "-".into(),
            label: None,
        };
        let mut issued = 0;
        for row in due {
            let id = row.pending.id;
            // one row's failure (the store for a moment) does not hold up the others
            match self.poll_held(row, &meta).await {
                Ok(Some(_)) => issued += 1,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(pending_id = id, error = %e, "polling a held request failed")
                }
            }
        }
        Ok(issued)
    }
}

/// The OIDs of the template's extended key usages: what an upstream's certificate may allow.
fn eku_oids(template: &Template) -> Vec<der::asn1::ObjectIdentifier> {
    use rcgen::ExtendedKeyUsagePurpose as P;
    template
        .extended_key_usage
        .iter()
        .filter_map(|p| {
            let oid = match p {
                P::Any => "2.5.29.37.0".to_string(),
                P::ServerAuth => "1.3.6.1.5.5.7.3.1".into(),
                P::ClientAuth => "1.3.6.1.5.5.7.3.2".into(),
                P::CodeSigning => "1.3.6.1.5.5.7.3.3".into(),
                P::EmailProtection => "1.3.6.1.5.5.7.3.4".into(),
                P::TimeStamping => "1.3.6.1.5.5.7.3.8".into(),
                P::OcspSigning => "1.3.6.1.5.5.7.3.9".into(),
                P::Other(arcs) => arcs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            };
            der::asn1::ObjectIdentifier::new(&oid).ok()
        })
        .collect()
}

/// A device's CSR goes to the upstream as it was signed: the template may not change its
/// subject or SAN on the way (`required_rdns`, dropped attributes, a SAN pattern).
fn same_as_csr(ctx: &IssueCtx<'_>, upstream: &str) -> Result<(), EnrollError> {
    let subject = der::Encode::to_der(ctx.subject)
        .map_err(|e| EnrollError::BadRequest(format!("the subject cannot be encoded: {e}")))?;
    let mut asked = ctx
        .csr
        .san
        .as_ref()
        .map(|s| s.entries.clone())
        .unwrap_or_default();
    asked.sort();
    let mut approved = ctx.san.to_vec();
    approved.sort();
    let what = if subject != ctx.csr.subject_der {
        "subject"
    } else if asked != approved {
        "SubjectAltName"
    } else {
        return Ok(());
    };
    Err(EnrollError::BadRequest(format!(
        "the certificate template {} forwards requests to the upstream CA {upstream}, which signs the CSR as sent; the template would change its {what} (send the {what} the template asks for)",
        ctx.template.name
    )))
}

/// A CSR for a key the server generated, with the subject and SAN the template approved
/// and the upstream's challenge when it wants one.
fn upstream_csr(
    key: &est::GeneratedKey,
    subject: &x509_cert::name::Name,
    san: &[SanEntry],
    challenge: Option<&str>,
) -> Result<Vec<u8>, EnrollError> {
    let fail = |e: String| EnrollError::Ca {
        cn: est::common_name(subject).unwrap_or_default(),
        detail: format!("a CSR for the upstream CA: {e}"),
    };
    let kp = rcgen::KeyPair::try_from(key.pkcs8.as_slice()).map_err(|e| fail(e.to_string()))?;
    let dn = est::dn_from_name(subject).map_err(fail)?;
    crate::scep_wire::request::csr(&kp, dn, san, challenge).map_err(|e| fail(e.to_string()))
}

/// What the device is told when the upstream is not usable: 503 with when to come back.
fn upstream_error(e: UpstreamError, meta: &RequestMeta) -> EnrollError {
    tracing::warn!(request_id = %meta.request_id, error = %e, "upstream CA unavailable");
    let retry_after = match &e {
        UpstreamError::Unavailable { retry_after, .. } => *retry_after,
        UpstreamError::Invalid { .. } => 60,
    };
    EnrollError::UpstreamUnavailable {
        detail: e.to_string(),
        retry_after,
    }
}
