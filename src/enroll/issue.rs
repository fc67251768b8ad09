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
                    let issued = self
                        .issue(IssueCtx {
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
                        .await?;
                    return Ok(Outcome::Issued(issued));
                }
                PendingState::Issued => {
                    // The client lost the response: the same certificate again, while valid
                    // (not for server-generated keys, which were never kept: a new request).
                    if !server_keygen
                        && let Some(serial) = &p.serial
                        && let Some(cert) = self.store.find_certificate(serial).await?
                        && cert.not_after > timestamp(SystemTime::now())
                    {
                        return Ok(Outcome::Issued(Issued {
                            der: cert.der,
                            serial: cert.serial,
                            fresh: false,
                            key_pkcs8: None,
                        }));
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

    /// Signs and records; `pending_id` marks an approved request issued in the same
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn issue(&self, ctx: IssueCtx<'_>) -> Result<Issued, EnrollError> {
        let IssueCtx {
            meta,
            op,
            requester,
            template,
            csr,
            subject: approved_subject,
            san,
            pending_id,
            renews,
            server_keygen,
            description,
            job_item,
        } = ctx;
        let cn = csr.common_name().unwrap_or_default();
        let generated = if server_keygen {
            let key_type = template.server_keygen_key.key_type();
            let key = self
                .work
                .run(move || crate::ca::generate_key(key_type))
                .await?
                .map_err(|e| EnrollError::Ca {
                    cn: cn.clone(),
                    detail: e.to_string(),
                })?;
            Some(key)
        } else {
            None
        };
        let (key_type, public_key) = match &generated {
            Some(k) => (k.key_type, k.public_key.clone()),
            None => (csr.key_type, csr.public_key.clone()),
        };
        let san_der = if san.is_empty() {
            None
        } else {
            Some(est::encode_san(san).map_err(|e| {
                EnrollError::BadRequest(format!(
                    "the Subject alternative name cannot be encoded: {e}"
                ))
            })?)
        };
        // shared with the signing task (the blocking pool's, for a key in a token) without
        // a copy per attempt
        let request = std::sync::Arc::new(IssuanceRequest {
            subject: approved_subject.clone(),
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
        let subject = approved_subject.to_string();
        let san_text = san_text(san);

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
            let now = timestamp(SystemTime::now());
            let record = CertRecord {
                serial: cert.serial.clone(),
                subject: subject.clone(),
                san: san_text.clone(),
                template: template.name.clone(),
                requester: requester.to_string(),
                operation: op.to_string(),
                not_before: timestamp(cert.not_before),
                not_after: timestamp(cert.not_after),
                issued_at: now.clone(),
                der: cert.der.clone(),
                description: description.to_string(),
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
                reason: match (pending_id, renews) {
                    (Some(id), _) => Some(format!("approved request {id}")),
                    (None, Some(serial)) => Some(format!("renews {serial}")),
                    (None, None) => None,
                },
                serial: Some(cert.serial.clone()),
            };
            let stored = match (pending_id, job_item) {
                (_, Some(item)) => {
                    let key = generated.as_ref().ok_or_else(|| {
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
            match stored {
                Ok(()) => {
                    crate::metrics::metrics().issued();
                    tracing::info!(
                        request_id = %meta.request_id,
                        serial = %cert.serial,
                        subject = %subject,
                        template = %template.name,
                        principal = %requester,
                        "certificate issued"
                    );
                    return Ok(Issued {
                        der: cert.der,
                        serial: cert.serial,
                        fresh: true,
                        key_pkcs8: generated.map(|k| k.pkcs8),
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
