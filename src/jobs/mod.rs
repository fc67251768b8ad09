//! Bulk certificate requests: the CSV, the job state machine and its workers.
//!
//! A submission is validated whole (CSV shape, every row through the policy) before a job is
//! stored. Workers (one per core) claim rows from the store, issue each through the
//! enrollment service with a server-generated key (on the blocking pool), and record the
//! certificate together with the row and its sealed key in one transaction. A restart
//! requeues rows left running; a cancel stops rows from being recorded.

pub mod csv;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::auth::{AuthMethod, Principal};
use crate::ca::seal::Sealer;
use crate::enroll::{self, EnrollError, EnrollRequest, EnrollService, Outcome};
use crate::model::RequestMeta;
use crate::pack::{self, BundleAssets, Entity, Format, PackOptions};
use crate::policy::{Approval, EvalContext, Requester, Templates};
use crate::store::{JobClaim, JobCounts, JobItem, JobRecord, Store, StoreError, timestamp};

/// How many row errors a refused submission lists.
const MAX_ROW_ERRORS: usize = 50;

/// Why a bulk request was refused or a job call failed. `Display` is the text people see.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BulkError {
    #[error(
        "You can submit only one request at a time. Your bulk request {0} is still running or its download has not been confirmed; confirm the download (or cancel the request) before submitting another."
    )]
    Busy(i64),
    #[error("{0}")]
    Csv(#[from] csv::CsvError),
    /// Rows the policy refuses: (row number, message).
    #[error("{}", .0.iter().map(|(r, m)| format!("Row {r}: {m}")).collect::<Vec<_>>().join("\n"))]
    Rows(Vec<(usize, String)>),
    #[error("{0}")]
    Invalid(String),
    /// Who may not use the template (its access rules).
    #[error("{0}")]
    Denied(String),
    /// At the bound on heavy work (packaging): try again.
    #[error("The server is busy; try again in {0} seconds")]
    Busy503(u64),
    #[error("no such bulk request")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// The database is out of reach for a moment: try again.
    #[error("The certificate store is unavailable; try again in {0} seconds")]
    StoreUnavailable(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for BulkError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "bulk: the store is unavailable");
            BulkError::StoreUnavailable(StoreError::RETRY_AFTER_SECS)
        } else {
            BulkError::Internal(e.to_string())
        }
    }
}

/// A bulk submission as the portal or the API received it.
pub struct Submission {
    pub template: String,
    pub description: String,
    pub format: String,
    pub password: zeroize::Zeroizing<String>,
    pub csv: Vec<u8>,
}

/// A job and how far it is.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub job: JobRecord,
    pub counts: JobCounts,
    /// Failed rows: (row number, reason).
    pub errors: Vec<(i64, String)>,
}

impl JobStatus {
    /// Rows that are finished one way or another.
    pub fn processed(&self) -> i64 {
        self.counts.done + self.counts.failed + self.counts.cancelled
    }

    pub fn finished(&self) -> bool {
        matches!(
            self.job.state.as_str(),
            "completed" | "cancelled" | "failed"
        )
    }
}

pub struct JobService {
    store: Arc<dyn Store>,
    enroll: Arc<EnrollService>,
    templates: Arc<Templates>,
    sealer: Arc<Sealer>,
    bundle: Arc<BundleAssets>,
    wake: tokio::sync::Notify,
    workers: usize,
    /// This process, in claim tokens (`<instance>/<worker>/<n>`).
    instance: String,
    claims: std::sync::atomic::AtomicU64,
    /// A row claimed longer ago than this and still running is claimed again.
    lease: Duration,
    /// Other processes share the store: only stale rows are requeued at start.
    shared: bool,
}

fn password_context(owner: &str) -> String {
    format!("estd-job-password:{owner}")
}

impl JobService {
    pub fn new(
        store: Arc<dyn Store>,
        enroll: Arc<EnrollService>,
        templates: Arc<Templates>,
        sealer: Arc<Sealer>,
        bundle: Arc<BundleAssets>,
        lease: Duration,
        shared: bool,
    ) -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut id = [0u8; 6];
        let instance = match aws_lc_rs::rand::fill(&mut id) {
            Ok(()) => crate::est::hex(&id),
            Err(_) => format!("pid{}", std::process::id()),
        };
        Self {
            store,
            enroll,
            templates,
            sealer,
            bundle,
            wake: tokio::sync::Notify::new(),
            workers,
            instance,
            claims: std::sync::atomic::AtomicU64::new(0),
            lease,
            shared,
        }
    }

    /// This process's name in claim tokens.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Validates everything, then stores a queued job. Nothing is issued before it returns.
    pub async fn submit(&self, principal: &Principal, sub: Submission) -> Result<i64, BulkError> {
        if let Some(open) = self.store.open_job_of(&principal.name).await? {
            return Err(BulkError::Busy(open.id));
        }
        let format = Format::parse(&sub.format).map_err(|e| BulkError::Invalid(e.to_string()))?;
        pack::check_password(&sub.password).map_err(|e| BulkError::Invalid(e.to_string()))?;
        let template = self
            .templates
            .get(Some(sub.template.as_str()))
            .ok_or_else(|| {
                BulkError::Invalid(format!(
                    "There is no certificate template {:?}",
                    sub.template.chars().take(64).collect::<String>()
                ))
            })?;
        self.enroll
            .check_access(principal, &template)
            .map_err(|e| BulkError::Denied(e.to_string()))?;
        if template.approval == Approval::Manual {
            return Err(BulkError::Invalid(format!(
                "The certificate template {} waits for manual approval and cannot be used for bulk requests",
                template.name
            )));
        }
        if sub.description.chars().count() > 256 {
            return Err(BulkError::Invalid(
                "The description is longer than 256 characters".into(),
            ));
        }
        let rows = csv::parse(&sub.csv)?;
        let requester = Requester {
            name: &principal.name,
            is_admin: self.enroll.is_admin(principal),
        };
        let mut errors = Vec::new();
        let reserved = self.enroll.reserved();
        for row in &rows {
            let checked = template.san_from_field(&row.san).and_then(|san| {
                let csr = enroll::attribute_csr(&row.cn, &san, &template)
                    .map_err(|_| crate::policy::PolicyError::InvalidMac)?;
                template.evaluate(
                    &csr,
                    &requester,
                    &EvalContext {
                        server_keygen: true,
                        reserved: Some(&reserved),
                        ..EvalContext::default()
                    },
                )
            });
            if let Err(e) = checked {
                errors.push((row.number, e.to_string()));
                if errors.len() == MAX_ROW_ERRORS {
                    break;
                }
            }
        }
        if !errors.is_empty() {
            return Err(BulkError::Rows(errors));
        }
        let sealed = self
            .sealer
            .seal_async(&password_context(&principal.name), sub.password.as_bytes())
            .await
            .map_err(|e| BulkError::Internal(e.to_string()))?;
        let job = JobRecord {
            id: 0,
            owner: principal.name.clone(),
            template: template.name.clone(),
            description: sub.description,
            format: format.as_str().to_string(),
            password_sealed: Some(sealed),
            state: "queued".into(),
            total: rows.len() as i64,
            created_at: crate::model::timestamp(std::time::SystemTime::now()),
            finished_at: None,
            confirmed_at: None,
        };
        let items: Vec<(i64, String, String)> = rows
            .into_iter()
            .map(|r| (r.number as i64, r.cn, r.san))
            .collect();
        let id = self.store.create_job(&job, &items).await?;
        tracing::info!(job = id, owner = %principal.name, rows = items.len(), template = %template.name, "bulk request queued");
        self.wake.notify_waiters();
        Ok(id)
    }

    /// Starts the workers (one per core). Rows left running by a previous process are
    /// requeued first.
    pub async fn start(self: &Arc<Self>) -> Result<(), StoreError> {
        // Alone on the store, every running row is a dead process's; shared, only those
        // whose lease has run out.
        let before = if self.shared {
            SystemTime::now() - self.lease
        } else {
            SystemTime::now()
        };
        let requeued = self.store.requeue_stale_items(&timestamp(before)).await?;
        if requeued > 0 {
            tracing::warn!(
                rows = requeued,
                "bulk rows left running by a previous process requeued"
            );
        }
        tracing::info!(instance = %self.instance, workers = self.workers, lease_secs = self.lease.as_secs(), "bulk workers starting");
        for n in 0..self.workers {
            let me = self.clone();
            tokio::spawn(async move { me.work(n).await });
        }
        let me = self.clone();
        tokio::spawn(async move { me.sweep().await });
        Ok(())
    }

    /// Requeues rows whose worker stopped answering (another instance died mid-row), and
    /// ends jobs whose rows are all done when no worker did.
    async fn sweep(self: Arc<Self>) {
        let every = (self.lease / 2).max(Duration::from_millis(500));
        loop {
            tokio::time::sleep(every).await;
            let before = timestamp(SystemTime::now() - self.lease);
            match self.store.requeue_stale_items(&before).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(rows = n, "bulk rows held past their lease requeued");
                    self.wake.notify_waiters();
                }
                Err(e) => tracing::error!(error = %e, "cannot requeue stale bulk rows"),
            }
            // a job whose last row was written by a worker that died (or lost the database)
            // before it could end the job
            match self.store.finish_jobs_if_done().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "bulk requests with every row done ended"),
                Err(e) => tracing::error!(error = %e, "cannot end finished bulk requests"),
            }
        }
    }

    async fn work(self: Arc<Self>, worker: usize) {
        loop {
            let n = self
                .claims
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let token = format!("{}/{worker}/{n}", self.instance);
            match self.store.claim_job_item(&token).await {
                Ok(Some(item)) => self.process(item, token).await,
                Ok(None) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(worker, error = %e, "bulk worker cannot claim a row");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn process(&self, item: JobItem, token: String) {
        let job_id = item.job_id;
        let claim = JobClaim {
            item_id: item.id,
            token,
        };
        let mut outcome = self.issue_row(&item, &claim).await;
        // at the bound on key generation (portal and EST requests take their share): wait
        // and try again while the lease lasts, rather than fail a row that did nothing wrong
        let started = std::time::Instant::now();
        while let Err(EnrollError::Busy { retry_after }) = outcome {
            let wait = Duration::from_secs(retry_after.max(1));
            if started.elapsed() + wait >= self.lease / 2 {
                break;
            }
            tokio::time::sleep(wait).await;
            outcome = self.issue_row(&item, &claim).await;
        }
        match outcome {
            Ok(()) | Err(EnrollError::Cancelled) => {}
            Err(EnrollError::Store(e)) if e.is_unavailable() => {
                // not the row's fault: it stays claimed until its lease runs out, then any
                // worker takes it again (what it signed was not recorded); the sweep ends
                // the job if this row was in fact recorded and was its last
                tracing::warn!(job = job_id, row = item.row_number, error = %e, "the store is unavailable: the row will be claimed again");
                return;
            }
            Err(EnrollError::Busy { .. }) => {
                // still busy after half the lease: leave it to be claimed again, as above
                tracing::warn!(
                    job = job_id,
                    row = item.row_number,
                    "key generation stayed busy: the row will be claimed again"
                );
                return;
            }
            Err(e) => {
                let message = match &e {
                    EnrollError::Ca { cn, .. } => enroll::ca_failure_message(cn),
                    other => other.to_string(),
                };
                tracing::warn!(job = job_id, row = item.row_number, reason = %e, "bulk row failed");
                if let Err(e) = self.store.fail_job_item(&claim, &message).await {
                    tracing::error!(job = job_id, error = %e, "cannot record a failed row");
                }
            }
        }
        match self.store.finish_job_if_done(job_id).await {
            Ok(true) => tracing::info!(job = job_id, "bulk request ended"),
            Ok(false) => {}
            Err(e) => tracing::error!(job = job_id, error = %e, "cannot finish the job"),
        }
    }

    async fn issue_row(&self, item: &JobItem, claim: &JobClaim) -> Result<(), EnrollError> {
        let job = self
            .store
            .get_job(item.job_id)
            .await?
            .ok_or_else(|| EnrollError::BadRequest("the job disappeared".into()))?;
        let template = self
            .templates
            .get(Some(job.template.as_str()))
            .ok_or_else(|| {
                EnrollError::BadRequest(format!("the template {} no longer exists", job.template))
            })?;
        let user = self.store.find_user(&job.owner).await?.ok_or_else(|| {
            EnrollError::Unauthorized(format!("the user {} no longer exists", job.owner))
        })?;
        let principal = Principal {
            name: user.name,
            groups: user.groups,
            method: AuthMethod::Session,
        };
        let san = template.san_from_field(&item.san)?;
        let csr =
            enroll::attribute_csr(&item.cn, &san, &template).map_err(EnrollError::BadRequest)?;
        let meta = RequestMeta {
            request_id: format!("job-{}-row-{}", item.job_id, item.row_number),
            peer: "bulk".into(),
            label: Some(template.name.clone()),
        };
        let outcome = self
            .enroll
            .enroll(EnrollRequest {
                meta: &meta,
                op: "bulk",
                description: &job.description,
                principal: &principal,
                template: &template,
                csr: &csr,
                renewing: None,
                exporter: None,
                server_keygen: true,
                job_item: Some(claim),
                vars: None,
            })
            .await?;
        match outcome {
            Outcome::Issued(_) => Ok(()),
            Outcome::Pending { .. } => Err(EnrollError::BadRequest(
                "the template waits for approval".into(),
            )),
        }
    }

    /// A job its owner (or an admin) may see; anyone else gets `NotFound`.
    pub async fn job_for(&self, principal: &Principal, id: i64) -> Result<JobRecord, BulkError> {
        let job = self.store.get_job(id).await?.ok_or(BulkError::NotFound)?;
        if job.owner != principal.name && !self.enroll.is_admin(principal) {
            return Err(BulkError::NotFound);
        }
        Ok(job)
    }

    pub async fn status(&self, principal: &Principal, id: i64) -> Result<JobStatus, BulkError> {
        let job = self.job_for(principal, id).await?;
        let counts = self.store.job_counts(id).await?;
        let errors = if counts.failed > 0 {
            self.store
                .job_items(id)
                .await?
                .into_iter()
                .filter(|i| i.state == "failed")
                .map(|i| (i.row_number, i.error.unwrap_or_default()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(JobStatus {
            job,
            counts,
            errors,
        })
    }

    /// The user's job that still needs attention (running, or not confirmed downloaded).
    pub async fn open_job_of(&self, owner: &str) -> Result<Option<JobRecord>, BulkError> {
        Ok(self.store.open_job_of(owner).await?)
    }

    pub async fn cancel(&self, principal: &Principal, id: i64) -> Result<(), BulkError> {
        self.job_for(principal, id).await?;
        if !self.store.cancel_job(id).await? {
            return Err(BulkError::Conflict(
                "The bulk request has already finished".into(),
            ));
        }
        tracing::info!(job = id, by = %principal.name, "bulk request cancelled");
        Ok(())
    }

    /// The zip of every issued row (names as in the packaging module), the chain and the EAP
    /// file. Only for a finished job whose keys are still kept.
    pub async fn zip(
        &self,
        principal: &Principal,
        id: i64,
    ) -> Result<(String, Vec<u8>), BulkError> {
        let job = self.job_for(principal, id).await?;
        if !matches!(job.state.as_str(), "completed" | "cancelled" | "failed") {
            return Err(BulkError::Conflict(
                "The bulk request is still running".into(),
            ));
        }
        let sealed_password = job.password_sealed.as_ref().ok_or_else(|| {
            BulkError::Conflict("The download was confirmed: the keys are deleted".into())
        })?;
        let password = self
            .sealer
            .open_async(&password_context(&job.owner), sealed_password)
            .await
            .map_err(|e| BulkError::Internal(e.to_string()))?;
        let template = self.templates.get(Some(job.template.as_str()));
        let mut entities = Vec::new();
        for item in self.store.job_items(id).await? {
            if item.state != "done" {
                continue;
            }
            let (Some(serial), Some(sealed)) = (&item.serial, &item.key_sealed) else {
                continue;
            };
            let cert =
                self.store.find_certificate(serial).await?.ok_or_else(|| {
                    BulkError::Internal(format!("certificate {serial} is missing"))
                })?;
            let key = self
                .sealer
                .open_async(&enroll::job_key_context(item.id), sealed)
                .await
                .map_err(|e| BulkError::Internal(e.to_string()))?;
            let san = template
                .as_ref()
                .map_or_else(|| item.san.clone(), |t| t.san_label(&item.san));
            entities.push(Entity {
                cn: item.cn,
                san: Some(san),
                cert_der: cert.der,
                key_pkcs8: Some(key),
            });
        }
        let format = Format::parse(&job.format).map_err(|e| BulkError::Internal(e.to_string()))?;
        let legacy = template.as_ref().is_some_and(|t| t.pkcs12_legacy);
        let bundle = self.bundle.clone();
        let password =
            String::from_utf8(password.to_vec()).map_err(|e| BulkError::Internal(e.to_string()))?;
        let password = zeroize::Zeroizing::new(password);
        let zip = self
            .enroll
            .work()
            .run(move || {
                pack::zip_bundle(
                    &entities,
                    &bundle,
                    &PackOptions {
                        format,
                        password: &password,
                        legacy_pkcs12: legacy,
                    },
                )
            })
            .await
            .map_err(|b| BulkError::Busy503(b.retry_after))?
            .map_err(|e| BulkError::Internal(e.to_string()))?;
        Ok((format!("bulk-{id}.zip"), zip))
    }

    /// The download is complete: the stored keys and password are deleted and the user may
    /// submit again.
    pub async fn confirm(&self, principal: &Principal, id: i64) -> Result<(), BulkError> {
        self.job_for(principal, id).await?;
        if !self.store.confirm_job(id).await? {
            return Err(BulkError::Conflict(
                "Only a finished bulk request can be confirmed, once".into(),
            ));
        }
        tracing::info!(job = id, by = %principal.name, "bulk download confirmed; keys deleted");
        Ok(())
    }
}
