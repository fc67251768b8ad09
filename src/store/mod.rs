//! Persistent state behind one `Store` trait: users and groups, issued certificates, and the
//! audit log. SQLite (one file, WAL) is the default implementation.

pub mod devices;
mod rows;
pub mod scep;
pub mod upstream;
#[macro_use]
mod sql;
mod pg;
mod sqlite;

pub use crate::model::timestamp;
pub use devices::{DeviceRecord, DeviceState, DeviceStore};
pub use pg::PgStore;
pub use scep::{ChallengeRecord, ScepStore, TransactionRecord};
pub use sqlite::{SqliteStore, Synchronous};
pub use upstream::{UpstreamPending, UpstreamStore};

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique key already exists (a user name, a serial number).
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("database: {0}")]
    Db(String),
    /// The database could not be reached just now (restarting, a connection reset, every
    /// connection busy): the same request may work in a moment. Answered with 503 and
    /// `Retry-After`; a bulk row is left to be claimed again, not failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Seconds a client is asked to wait when the store is unavailable.
    pub const RETRY_AFTER_SECS: u64 = 5;

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// What a client is told when the store is unavailable (the API and EST bodies; their
    /// `Retry-After` says the same number).
    pub fn unavailable_message() -> String {
        format!(
            "The certificate store is unavailable; try again in {} seconds",
            Self::RETRY_AFTER_SECS
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Db(e.to_string())
        }
    }
}

/// Errors of the connection, not of the statement: the database went away (I/O, TLS, a
/// PostgreSQL shutdown or restart: SQLSTATE class 08 and 57P01 to 57P03), it has no
/// connection to spare (53300), or no connection of the pool was free in time.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Before the migration that makes user names unique regardless of case: the names in the
/// store that differ only in case, as an error that names them and says what to do (the
/// migration itself would fail with a bare constraint error). `names`: the answer to
/// `SELECT name FROM users`; a new database has no users table yet, which is fine.
pub(crate) fn check_name_case(names: Result<Vec<String>, sqlx::Error>) -> Result<(), StoreError> {
    let names = match names {
        Ok(n) => Some(n),
        // SQLite: "no such table: users"; PostgreSQL: 42P01 relation "users" does not exist
        Err(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("42P01") || db.message().contains("no such table") =>
        {
            None
        }
        Err(e) => return Err(StoreError::Db(format!("reading user names: {e}"))),
    };
    let mut by_folded: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for n in names.unwrap_or_default() {
        by_folded.entry(n.to_lowercase()).or_default().push(n);
    }
    let clashes: Vec<String> = by_folded
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|v| {
            v.iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect();
    if clashes.is_empty() {
        return Ok(());
    }
    Err(StoreError::Db(format!(
        "the store holds user names that differ only in case: {}. estd now treats user names \
         regardless of case (one name, as the CN rule compares them); rename or remove all but \
         one of each before starting this version, e.g. UPDATE users SET name = 'alice-2' \
         WHERE name = 'Alice'",
        clashes.join("; ")
    )))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub groups: Vec<String>,
    pub created_at: String,
    /// `estd user disable`: no log-in, enrollment or renewal.
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    pub serial: String,
    pub subject: String,
    pub san: String,
    pub template: String,
    pub requester: String,
    pub operation: String,
    pub not_before: String,
    pub not_after: String,
    pub issued_at: String,
    pub der: Vec<u8>,
    /// The requester's description (portal, JSON API); empty for EST.
    pub description: String,
    /// Who signed it: `local` (estd's CA), or the name of the upstream CA
    /// (registration-authority mode).
    pub issuer: String,
}

pub use crate::model::LOCAL_ISSUER;

/// A portal session. The id itself is never stored: `id_hash` is its SHA-256.
/// A certificate's revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    pub serial: String,
    pub revoked_at: String,
    /// RFC 5280 `CRLReason` code.
    pub reason: u8,
    pub revoked_by: String,
    /// `crate::revocation::public_key_fingerprint` of the certificate's key.
    pub key_fingerprint: String,
    /// The certificate's `CertRecord::issuer`: only `local` ones are on estd's CRL.
    pub issuer: String,
}

/// Which certificates a listing wants (every given condition must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFilter {
    pub requester: Option<String>,
    pub template: Option<String>,
    pub status: Option<CertStatus>,
    /// Part of the subject, SAN or serial (case-insensitive).
    pub text: Option<String>,
    /// For `Valid`/`Expired`: compared with `not_after`.
    pub now: String,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Valid,
    Revoked,
    Expired,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "valid" => Self::Valid,
            "revoked" => Self::Revoked,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub user_name: String,
    pub csrf: String,
    pub created_at: String,
    pub last_seen: String,
}

/// One EST request, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: String,
    pub request_id: String,
    pub operation: String,
    pub label: Option<String>,
    pub principal: Option<String>,
    pub peer: String,
    /// `ok` or `error`.
    pub outcome: String,
    pub status: u16,
    pub reason: Option<String>,
    pub serial: Option<String>,
}

/// A request waiting for (or decided by) a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    pub id: i64,
    pub template: String,
    pub requester: String,
    pub key_fingerprint: String,
    pub subject: String,
    pub san: String,
    pub operation: String,
    pub csr: Vec<u8>,
    pub state: PendingState,
    pub reason: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingState {
    Pending,
    Approved,
    Rejected,
    Issued,
    /// Forwarded to an upstream CA, which holds it (`store::upstream`).
    Upstream,
}

impl PendingState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Issued => "issued",
            Self::Upstream => "upstream",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "issued" => Self::Issued,
            "upstream" => Self::Upstream,
            _ => return None,
        })
    }
}

/// A bulk job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub owner: String,
    pub template: String,
    pub description: String,
    pub format: String,
    pub password_sealed: Option<Vec<u8>>,
    /// `queued`, `running`, `cancelled`, `completed` or `failed` (ended with no row issued).
    pub state: String,
    pub total: i64,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub confirmed_at: Option<String>,
}

/// One row of a bulk job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobItem {
    pub id: i64,
    pub job_id: i64,
    pub row_number: i64,
    pub cn: String,
    pub san: String,
    /// `pending`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    pub error: Option<String>,
    pub serial: Option<String>,
    pub key_sealed: Option<Vec<u8>>,
    /// The claim a worker holds on a running row (see `JobClaim`).
    pub claim: Option<String>,
}

/// A worker's hold on one bulk row: the row, and the token it claimed the row with. Only
/// the holder of the current claim can record the row, so a row requeued from a worker
/// that was presumed dead is never recorded twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobClaim {
    pub item_id: i64,
    pub token: String,
}

/// How far a job is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
}

#[async_trait]
pub trait Store:
    scep::ScepStore + upstream::UpstreamStore + devices::DeviceStore + Send + Sync
{
    async fn user_count(&self) -> Result<u64, StoreError>;
    /// Adds a user; `Duplicate` when the name is taken.
    async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        groups: &[String],
    ) -> Result<(), StoreError>;
    /// Replaces a user's password hash; false when there is no such user.
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError>;
    /// Disables (or enables again) a user; false when there is none.
    async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError>;
    /// Deletes a user and their groups and sessions; false when there is none. Their
    /// certificates and audit rows stay.
    async fn delete_user(&self, name: &str) -> Result<bool, StoreError>;
    /// Deletes audit rows from before `before`; returns how many.
    async fn purge_audit(&self, before: &str) -> Result<u64, StoreError>;
    async fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Records an issued certificate and its audit event in one transaction;
    /// `Duplicate` when the serial number is taken (nothing is written then).
    async fn record_issuance(
        &self,
        cert: &CertRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    async fn find_certificate(&self, serial: &str) -> Result<Option<CertRecord>, StoreError>;
    async fn certificate_count(&self) -> Result<u64, StoreError>;
    /// Certificates matching `filter`, newest first, each with its revocation if any.
    async fn list_certificates(
        &self,
        filter: &CertFilter,
    ) -> Result<Vec<(CertRecord, Option<RevocationRecord>)>, StoreError>;
    async fn find_revocation(&self, serial: &str) -> Result<Option<RevocationRecord>, StoreError>;
    /// Records a revocation and its audit row in one transaction. False when the
    /// certificate was already revoked (nothing written).
    async fn revoke_certificate(
        &self,
        r: &RevocationRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Every revocation, oldest first (the CRL lists those of `LOCAL_ISSUER`; every one's
    /// key stays refused).
    async fn revocations(&self) -> Result<Vec<RevocationRecord>, StoreError>;
    /// How many certificates estd's CA signed are revoked (whether the CRL is behind).
    async fn revocation_count(&self) -> Result<u64, StoreError>;
    /// Bulk jobs by state, for the metrics.
    async fn job_states(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn record_audit(&self, audit: &AuditEvent) -> Result<(), StoreError>;
    /// The latest audit events, newest first.
    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
    /// Audit events since `since` (a timestamp), optionally of one principal and/or only
    /// failures (status ≥ 400): the latest `limit` of them, oldest first.
    async fn find_audit(
        &self,
        since: &str,
        principal: Option<&str>,
        failed_only: bool,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Stores a new pending request (state `pending`; `id` is ignored) and returns its id.
    async fn create_pending(&self, p: &PendingRecord) -> Result<i64, StoreError>;
    /// The newest request for this template and public key.
    async fn find_pending_by_key(
        &self,
        template: &str,
        key_fingerprint: &str,
    ) -> Result<Option<PendingRecord>, StoreError>;
    async fn get_pending(&self, id: i64) -> Result<Option<PendingRecord>, StoreError>;
    /// Requests in `state`, or all of them, oldest first.
    async fn list_pending(
        &self,
        state: Option<PendingState>,
    ) -> Result<Vec<PendingRecord>, StoreError>;
    /// Approves or rejects a request that is still pending, or rejects one an upstream CA
    /// holds (an administrator gives up on it); false when it is neither.
    async fn decide_pending(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError>;
    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError>;
    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    async fn touch_session(&self, id_hash: &str, now: &str) -> Result<(), StoreError>;
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;
    /// Ends every session of a user (after a password change); returns how many.
    async fn delete_user_sessions(&self, user: &str) -> Result<u64, StoreError>;
    /// Ends sessions idle since before `before`; returns how many.
    async fn delete_idle_sessions(&self, before: &str) -> Result<u64, StoreError>;

    /// Creates a queued job with its rows (`(row number, CN, SAN)`), in one transaction.
    async fn create_job(
        &self,
        job: &JobRecord,
        rows: &[(i64, String, String)],
    ) -> Result<i64, StoreError>;
    async fn get_job(&self, id: i64) -> Result<Option<JobRecord>, StoreError>;
    /// The owner's job that is not yet confirmed downloaded, if any.
    async fn open_job_of(&self, owner: &str) -> Result<Option<JobRecord>, StoreError>;
    async fn job_counts(&self, id: i64) -> Result<JobCounts, StoreError>;
    async fn job_items(&self, id: i64) -> Result<Vec<JobItem>, StoreError>;
    /// Claims the next pending row of a queued or running job with `claim`, a token unique
    /// to this claim (marks it running, the job running). Several processes may claim at
    /// once: each row goes to one of them.
    async fn claim_job_item(&self, claim: &str) -> Result<Option<JobItem>, StoreError>;
    /// Records an item's certificate, its audit event and the sealed key, and marks the item
    /// done, in one transaction — unless the item is no longer running under this claim or
    /// its job was cancelled (then nothing is written and the answer is false).
    async fn record_job_issuance(
        &self,
        claim: &JobClaim,
        cert: &CertRecord,
        audit: &AuditEvent,
        key_sealed: &[u8],
    ) -> Result<bool, StoreError>;
    /// Marks a row failed, if it is still running under this claim.
    async fn fail_job_item(&self, claim: &JobClaim, error: &str) -> Result<(), StoreError>;
    /// Cancels a queued or running job: its pending rows are cancelled. False when the job
    /// had already ended.
    async fn cancel_job(&self, id: i64) -> Result<bool, StoreError>;
    /// Ends a job when none of its rows is pending or running: `completed`, or `failed` when
    /// no row was issued; true if it did.
    async fn finish_job_if_done(&self, id: i64) -> Result<bool, StoreError>;
    /// `finish_job_if_done` for every running job (a worker that died, or lost the
    /// database, between its row's last write and the finish); how many it ended.
    async fn finish_jobs_if_done(&self) -> Result<u64, StoreError>;
    /// Download confirmed: drops the sealed keys and password; frees the owner.
    async fn confirm_job(&self, id: i64) -> Result<bool, StoreError>;
    /// Rows claimed before `claimed_before` and still running (their worker died, or was
    /// presumed dead) are pending again.
    async fn requeue_stale_items(&self, claimed_before: &str) -> Result<u64, StoreError>;

    /// Records the certificate issued for an approved request, its audit event, and marks
    /// the request issued, in one transaction. False (nothing written) when the request is
    /// no longer approved (another instance issued it first).
    async fn record_pending_issuance(
        &self,
        id: i64,
        cert: &CertRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable_statement_errors_are_not() {
        let io = |k| sqlx::Error::Io(std::io::Error::from(k));
        for e in [
            io(std::io::ErrorKind::ConnectionReset),
            io(std::io::ErrorKind::ConnectionRefused),
            io(std::io::ErrorKind::UnexpectedEof),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
        ] {
            let text = e.to_string();
            let s = StoreError::from(e);
            assert!(s.is_unavailable(), "{text}");
            assert!(s.to_string().starts_with("database unavailable: "), "{s}");
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
            sqlx::Error::Protocol("x".into()),
        ] {
            assert!(!StoreError::from(e).is_unavailable());
        }
    }
}
