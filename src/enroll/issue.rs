//! After the policy has approved: a request that waits for an administrator, and issuing
//! (CA, store, audit in one write, retried on a serial collision).

use super::*;

impl EnrollService {
    /// RFC 7030 §4.2.3: the request waits for a person; the client repeats it (same key)
    /// until it is approved (then it gets the certificate) or rejected.
    pub(super) async fn manual(
        &self,
        sub: Submitted<'_>,
        renews: Option<&str>,
    ) -> Result<Outcome, EnrollError> {
        let Submitted {
            meta,
            op,
            principal,
            requester,
            template,
            csr,
            subject,
            san: approved_san,
            server_keygen,
            description,
        } = sub;
        let fp = key_fingerprint(csr);
        let pending = |id| Outcome::Pending {
            id,
            retry_after: template.retry_after,
        };
        if let Some(p) = self.store.find_pending_by_key(&template.name, &fp).await?
            && p.requester == principal.name
        {
            match p.state {
                PendingState::Pending => return Ok(pending(p.id)),
                PendingState::Rejected => {
                    return Err(EnrollError::Rejected {
                        id: p.id,
                        reason: p.reason,
                    });
                }
                PendingState::Approved => {
                    // Issue what was approved: the stored CSR, not the retry's (same key,
                    // but its subject could differ). Channel binding was checked when it
                    // was submitted; the retry's own binding was checked above.
                    let stored = Csr::parse(&p.csr).map_err(|e| EnrollError::Ca {
                        cn: csr.common_name().unwrap_or_default(),
                        detail: format!("stored request {} is unreadable: {e}", p.id),
                    })?;
                    let mut t = template.clone();
                    t.channel_binding = false;
                    let reserved = self.reserved();
                    let approved = t.evaluate(
                        &stored,
                        requester,
                        &EvalContext {
                            server_keygen,
                            reserved: Some(&reserved),
                            renewal: renews.is_some(),
                            ..EvalContext::default()
                        },
                    )?;
                    return self
                        .issue_or_forward(IssueCtx {
                            meta,
                            op,
                            requester: &principal.name,
                            template,
                            csr: &stored,
                            subject: &approved.subject,
                            san: &approved.san,
                            pending_id: Some(p.id),
                            renews,
                            server_keygen,
                            description,
                            job_item: None,
                        })
                        .await;
                }
                PendingState::Upstream => return self.held(p, meta).await,
                PendingState::Issued => {
                    if let Some(again) = self.issued_again(&p, server_keygen, renews).await? {
                        return Ok(again);
                    }
                }
            }
        }
        let record = PendingRecord {
            id: 0,
            template: template.name.clone(),
            requester: principal.name.clone(),
            key_fingerprint: fp,
            subject: subject.to_string(),
            // what the certificate will carry, as the approver should see it
            san: san_text(approved_san),
            operation: op.to_string(),
            csr: csr.der.clone(),
            state: PendingState::Pending,
            reason: None,
            created_at: timestamp(SystemTime::now()),
            decided_at: None,
            decided_by: None,
            serial: None,
        };
        let id = self.store.create_pending(&record).await?;
        tracing::info!(request_id = %meta.request_id, pending_id = id, template = %template.name, principal = %principal.name, "request waits for manual approval");
        Ok(pending(id))
    }

    /// The client lost the answer to a request that was issued: the same certificate again,
    /// while valid (not for server-generated keys, which were never kept: a new request;
    /// nor when it is the very certificate a renewal renews (`renews`): it wants a new one).
    pub(super) async fn issued_again(
        &self,
        p: &PendingRecord,
        server_keygen: bool,
        renews: Option<&str>,
    ) -> Result<Option<Outcome>, EnrollError> {
        if !server_keygen
            && let Some(serial) = &p.serial
            && renews != Some(serial.as_str())
            && let Some(cert) = self.store.find_certificate(serial).await?
            && cert.not_after > timestamp(SystemTime::now())
        {
            return Ok(Some(Outcome::Issued(Issued {
                der: cert.der,
                serial: cert.serial,
                fresh: false,
                key_pkcs8: None,
            })));
        }
        Ok(None)
    }

    /// Signs with estd's CA, or forwards to the template's upstream CA.
    pub(super) async fn issue_or_forward(&self, ctx: IssueCtx<'_>) -> Result<Outcome, EnrollError> {
        match self.upstream_of(ctx.template)? {
            Some(up) => self.forward(ctx, &up).await,
            None => self.issue(ctx).await.map(Outcome::Issued),
        }
    }

    /// Signs and records; `pending_id` marks an approved request issued in the same
    /// transaction.
    pub(super) async fn issue(&self, ctx: IssueCtx<'_>) -> Result<Issued, EnrollError> {
        let cn = ctx.csr.common_name().unwrap_or_default();
        let generated = self.generated_key(&ctx).await?;
        let (key_type, public_key) = match &generated {
            Some(k) => (k.key_type, k.public_key.clone()),
            None => (ctx.csr.key_type, ctx.csr.public_key.clone()),
        };
        let san_der = if ctx.san.is_empty() {
            None
        } else {
            Some(est::encode_san(ctx.san).map_err(|e| {
                EnrollError::BadRequest(format!(
                    "the Subject alternative name cannot be encoded: {e}"
                ))
            })?)
        };
        let template = ctx.template;
        // shared with the signing task (the blocking pool's, for a key in a token) without
        // a copy per attempt
        let request = std::sync::Arc::new(IssuanceRequest {
            subject: ctx.subject.clone(),
            key_type,
            public_key,
            san: san_der.map(|der| (false, der)),
            validity: template.validity,
            key_usage: template.key_usage.clone(),
            extended_key_usage: template.extended_key_usage.clone(),
            crl_url: self
                .revocation_urls
                .crl
                .clone()
                .filter(|_| template.crl_distribution_point),
            ocsp_url: self.revocation_urls.ocsp.clone().filter(|_| template.ocsp),
            ocsp_no_check: false,
            rsa_pss: template.rsa_pss,
        });
        let subject = ctx.subject.to_string();
        let san_text = san_text(ctx.san);

        let mut last = None;
        for _ in 0..SERIAL_ATTEMPTS {
            let req = std::sync::Arc::clone(&request);
            let signed = crate::ca::signing(&self.issuer, move |ca| ca.issue(&req)).await;
            let cert = signed.map_err(|e| match e {
                CaError::UnsupportedSubject(m) => {
                    EnrollError::BadRequest(format!("the CSR subject cannot be issued: {m}"))
                }
                other => EnrollError::Ca {
                    cn: cn.clone(),
                    detail: other.to_string(),
                },
            })?;
            let record = crate::ca::SignedCert {
                der: cert.der,
                serial: cert.serial,
                subject: subject.clone(),
                san: san_text.clone(),
                not_before: cert.not_before,
                not_after: cert.not_after,
            };
            let local = crate::model::LOCAL_ISSUER;
            match self
                .record(&ctx, &record, local, generated.as_ref(), None)
                .await
            {
                Ok(()) => {
                    return Ok(Issued {
                        der: record.der,
                        serial: record.serial,
                        fresh: true,
                        key_pkcs8: generated.map(|k| k.pkcs8),
                    });
                }
                Err(EnrollError::Store(StoreError::Duplicate(what))) => {
                    tracing::warn!(request_id = %ctx.meta.request_id, %what, "serial number collision, signing again");
                    last = Some(StoreError::Duplicate(what));
                }
                Err(e) => return Err(e),
            }
        }
        Err(EnrollError::Store(last.unwrap_or_else(|| {
            StoreError::Db("no serial number attempt was made".into())
        })))
    }

    /// The key the server generates for the request (`server_keygen`), within the bound on
    /// heavy work; `None` when the CSR brings its own.
    pub(super) async fn generated_key(
        &self,
        ctx: &IssueCtx<'_>,
    ) -> Result<Option<est::GeneratedKey>, EnrollError> {
        if !ctx.server_keygen {
            return Ok(None);
        }
        let key_type = ctx.template.server_keygen_key.key_type();
        let key = self
            .work
            .run(move || crate::ca::generate_key(key_type))
            .await?
            .map_err(|e| EnrollError::Ca {
                cn: ctx.csr.common_name().unwrap_or_default(),
                detail: e.to_string(),
            })?;
        Ok(Some(key))
    }

    /// Records a signed certificate with its audit row, in one write: with the approved
    /// request it issues (`pending_id`), the bulk row (its generated key sealed into it), or
    /// alone. A serial already recorded is `StoreError::Duplicate`, for the caller to judge.
    pub(super) async fn record(
        &self,
        ctx: &IssueCtx<'_>,
        cert: &crate::ca::SignedCert,
        issuer: &str,
        generated: Option<&est::GeneratedKey>,
        note: Option<String>,
    ) -> Result<(), EnrollError> {
        let IssueCtx {
            meta,
            op,
            requester,
            template,
            csr,
            pending_id,
            renews,
            description,
            job_item,
            ..
        } = *ctx;
        let cn = csr.common_name().unwrap_or_default();
        let now = timestamp(SystemTime::now());
        let record = CertRecord {
            serial: cert.serial.clone(),
            subject: cert.subject.clone(),
            san: cert.san.clone(),
            template: template.name.clone(),
            requester: requester.to_string(),
            operation: op.to_string(),
            not_before: timestamp(cert.not_before),
            not_after: timestamp(cert.not_after),
            issued_at: now.clone(),
            der: cert.der.clone(),
            description: description.to_string(),
            issuer: issuer.to_string(),
        };
        let reason = match (pending_id, renews) {
            (Some(id), _) => Some(format!("approved request {id}")),
            (None, Some(serial)) => Some(format!("renews {serial}")),
            (None, None) => None,
        };
        let reason = match (reason, note) {
            (Some(r), Some(n)) => Some(format!("{r}; {n}")),
            (r, n) => r.or(n),
        };
        let audit = AuditEvent {
            at: now,
            request_id: meta.request_id.clone(),
            operation: op.to_string(),
            label: meta.label.clone(),
            principal: Some(requester.to_string()),
            peer: meta.peer.clone(),
            outcome: "ok".into(),
            status: 200,
            reason,
            serial: Some(cert.serial.clone()),
        };
        let stored = match (pending_id, job_item) {
            (_, Some(item)) => {
                let key = generated.ok_or_else(|| {
                    EnrollError::BadRequest("bulk rows need a server-generated key".into())
                })?;
                let sealer = self.sealer.as_ref().ok_or_else(|| EnrollError::Ca {
                    cn: cn.clone(),
                    detail: "no key sealer configured for bulk jobs".into(),
                })?;
                let sealed = sealer
                    .seal_async(&job_key_context(item.item_id), &key.pkcs8)
                    .await
                    .map_err(|e| EnrollError::Ca {
                        cn: cn.clone(),
                        detail: e.to_string(),
                    })?;
                match self
                    .store
                    .record_job_issuance(item, &record, &audit, &sealed)
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => return Err(EnrollError::Cancelled),
                    Err(e) => Err(e),
                }
            }
            (None, None) => self.store.record_issuance(&record, &audit).await,
            (Some(id), None) => match self
                .store
                .record_pending_issuance(id, &record, &audit)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => {
                    return Err(EnrollError::BadRequest(format!(
                        "request {id} is no longer approved (issued or decided elsewhere); repeat the request"
                    )));
                }
                Err(e) => Err(e),
            },
        };
        stored?;
        crate::metrics::metrics().issued();
        tracing::info!(
            request_id = %meta.request_id,
            serial = %cert.serial,
            subject = %cert.subject,
            template = %template.name,
            principal = %requester,
            issuer = %issuer,
            "certificate issued"
        );
        Ok(())
    }
}
