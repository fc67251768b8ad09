//! Requests an upstream CA holds (registration-authority mode): a `pending_requests` row in
//! state `upstream`, with the upstream's name, when it is asked again and how often it has
//! been. Its own trait, which `Store` requires, and its SQL once for both databases
//! (`upstream_sql!`, expanded by `sql_store!`).

use async_trait::async_trait;

use super::{AuditEvent, CertRecord, PendingRecord, StoreError};

/// A request an upstream holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamPending {
    pub pending: PendingRecord,
    pub upstream: String,
    pub next_poll_at: String,
    pub poll_attempts: i64,
}

#[async_trait]
pub trait UpstreamStore: Send + Sync {
    /// Records a request the upstream holds (state `upstream`); returns its id.
    async fn hold_upstream(
        &self,
        p: &PendingRecord,
        upstream: &str,
        next_poll_at: &str,
    ) -> Result<i64, StoreError>;
    /// An approved request the upstream now holds (`approved` → `upstream`); false when it
    /// is no longer approved.
    async fn approved_to_upstream(
        &self,
        id: i64,
        upstream: &str,
        next_poll_at: &str,
    ) -> Result<bool, StoreError>;
    async fn upstream_pending(&self, id: i64) -> Result<Option<UpstreamPending>, StoreError>;
    /// Held requests due to be asked about (`next_poll_at <= now`), oldest due first.
    async fn due_upstream(&self, now: &str, limit: u32)
    -> Result<Vec<UpstreamPending>, StoreError>;
    /// Takes a held request for one poll: moves `next_poll_at` from `seen` to `next` and
    /// counts the attempt; false when another poll (another instance, the device's retry)
    /// took it first.
    async fn claim_upstream_poll(
        &self,
        id: i64,
        seen: &str,
        next: &str,
    ) -> Result<bool, StoreError>;
    /// The upstream issued it: `upstream` → `issued`, with the certificate and the audit
    /// row, in one transaction; false when it is no longer held.
    async fn record_upstream_issuance(
        &self,
        id: i64,
        cert: &CertRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// The upstream issued it a certificate already recorded (for the same requester, an
    /// earlier request for the key): `upstream` → `issued` with that serial.
    async fn mark_upstream_issued(&self, id: i64, serial: &str) -> Result<bool, StoreError>;
    /// The upstream refused it, or it waited too long: `upstream` → `rejected` with the
    /// reason, and the audit row.
    async fn reject_upstream(
        &self,
        id: i64,
        reason: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
}

macro_rules! upstream_sql {
    ($store:ident, $row:ty) => {
        use super::upstream::{UpstreamPending, UpstreamStore};

        const UPSTREAM_COLUMNS: &str = "upstream, next_poll_at, poll_attempts";

        fn upstream_row(r: &$row) -> UpstreamPending {
            UpstreamPending {
                pending: pending_row(r),
                upstream: r.get::<Option<String>, _>(14).unwrap_or_default(),
                next_poll_at: r.get::<Option<String>, _>(15).unwrap_or_default(),
                poll_attempts: r.get(16),
            }
        }

        #[async_trait::async_trait]
        impl UpstreamStore for $store {
            async fn hold_upstream(
                &self,
                p: &PendingRecord,
                upstream: &str,
                next_poll_at: &str,
            ) -> Result<i64, StoreError> {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO pending_requests (template, requester, key_fingerprint, subject, san, operation, csr, state, created_at, upstream, next_poll_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'upstream', $8, $9, $10) RETURNING id",
                )
                .bind(&p.template)
                .bind(&p.requester)
                .bind(&p.key_fingerprint)
                .bind(&p.subject)
                .bind(&p.san)
                .bind(&p.operation)
                .bind(&p.csr)
                .bind(&p.created_at)
                .bind(upstream)
                .bind(next_poll_at)
                .fetch_one(&self.pool)
                .await?;
                Ok(id)
            }

            async fn approved_to_upstream(
                &self,
                id: i64,
                upstream: &str,
                next_poll_at: &str,
            ) -> Result<bool, StoreError> {
                let r = sqlx::query(
                    "UPDATE pending_requests SET state = 'upstream', upstream = $1, next_poll_at = $2
                     WHERE id = $3 AND state = 'approved'",
                )
                .bind(upstream)
                .bind(next_poll_at)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn upstream_pending(
                &self,
                id: i64,
            ) -> Result<Option<UpstreamPending>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {PENDING_COLUMNS}, {UPSTREAM_COLUMNS} FROM pending_requests WHERE id = $1 AND state = 'upstream'"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(upstream_row))
            }

            async fn due_upstream(
                &self,
                now: &str,
                limit: u32,
            ) -> Result<Vec<UpstreamPending>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {PENDING_COLUMNS}, {UPSTREAM_COLUMNS} FROM pending_requests
                     WHERE state = 'upstream' AND next_poll_at <= $1 ORDER BY next_poll_at, id LIMIT $2"
                ))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(upstream_row).collect())
            }

            async fn claim_upstream_poll(
                &self,
                id: i64,
                seen: &str,
                next: &str,
            ) -> Result<bool, StoreError> {
                let r = sqlx::query(
                    "UPDATE pending_requests SET next_poll_at = $1, poll_attempts = poll_attempts + 1
                     WHERE id = $2 AND state = 'upstream' AND next_poll_at = $3",
                )
                .bind(next)
                .bind(id)
                .bind(seen)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn record_upstream_issuance(
                &self,
                id: i64,
                cert: &CertRecord,
                audit: &AuditEvent,
            ) -> Result<bool, StoreError> {
                Self::issue_pending(&self.pool, id, "upstream", cert, audit).await
            }

            async fn mark_upstream_issued(&self, id: i64, serial: &str) -> Result<bool, StoreError> {
                let r = sqlx::query(
                    "UPDATE pending_requests SET state = 'issued', serial = $1 WHERE id = $2 AND state = 'upstream'",
                )
                .bind(serial)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn reject_upstream(
                &self,
                id: i64,
                reason: &str,
                audit: &AuditEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let r = sqlx::query(
                    "UPDATE pending_requests SET state = 'rejected', reason = $1, decided_at = $2,
                     decided_by = 'upstream ' || upstream
                     WHERE id = $3 AND state = 'upstream'",
                )
                .bind(reason)
                .bind(&audit.at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if r.rows_affected() != 1 {
                    return Ok(false);
                }
                Self::insert_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(crate) use upstream_sql;
