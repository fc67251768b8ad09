//! The SQLite store: one file, WAL journal, migrations run at open.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};

use super::{
    AuditEvent, CertRecord, JobCounts, JobItem, JobRecord, PendingRecord, PendingState,
    SessionRecord, Store, StoreError, UserRecord, timestamp,
};

/// How hard SQLite syncs: `Full` survives power loss, `Normal` survives a process crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Normal,
    Full,
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn unique(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate(what.into()),
        _ => StoreError::from(e),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and runs the migrations.
    pub async fn open(path: &Path, sync: Synchronous) -> Result<Self, StoreError> {
        // The file holds password hashes: create it private before SQLite does (SQLite
        // gives its -wal and -shm files the database file's permissions).
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(opts).await
    }

    /// An in-memory database (tests).
    pub async fn memory() -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::connect(opts).await
    }

    async fn connect(opts: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Db(format!("migrations: {e}")))?;
        Ok(Self { pool })
    }

    async fn insert_audit(conn: &mut SqliteConnection, a: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, request_id, operation, label, principal, peer, outcome, status, reason, serial)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.at)
        .bind(&a.request_id)
        .bind(&a.operation)
        .bind(&a.label)
        .bind(&a.principal)
        .bind(&a.peer)
        .bind(&a.outcome)
        .bind(i64::from(a.status))
        .bind(&a.reason)
        .bind(&a.serial)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn insert_certificate(
        conn: &mut SqliteConnection,
        c: &CertRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO certificates (serial, subject, san, template, requester, operation, not_before, not_after, issued_at, der, description)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.serial)
        .bind(&c.subject)
        .bind(&c.san)
        .bind(&c.template)
        .bind(&c.requester)
        .bind(&c.operation)
        .bind(&c.not_before)
        .bind(&c.not_after)
        .bind(&c.issued_at)
        .bind(&c.der)
        .bind(&c.description)
        .execute(conn)
        .await
        .map_err(|e| unique(e, &format!("serial {}", c.serial)))?;
        Ok(())
    }

    async fn groups_of(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT group_name FROM user_groups WHERE user_id = ? ORDER BY group_name")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        groups: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(password_hash)
        .bind(timestamp(SystemTime::now()))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique(e, &format!("user {name:?}")))?;
        for g in groups {
            sqlx::query("INSERT OR IGNORE INTO user_groups (user_id, group_name) VALUES (?, ?)")
                .bind(id)
                .bind(g)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?")
            .bind(password_hash)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT id, name, password_hash, created_at FROM users WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        Ok(Some(UserRecord {
            groups: self.groups_of(row.get(0)).await?,
            name: row.get(1),
            password_hash: row.get(2),
            created_at: row.get(3),
        }))
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, password_hash, created_at FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(UserRecord {
                groups: self.groups_of(row.get(0)).await?,
                name: row.get(1),
                password_hash: row.get(2),
                created_at: row.get(3),
            });
        }
        Ok(out)
    }

    async fn record_issuance(&self, c: &CertRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::insert_certificate(&mut tx, c).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_certificate(&self, serial: &str) -> Result<Option<CertRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT serial, subject, san, template, requester, operation, not_before, not_after, issued_at, der, description
             FROM certificates WHERE serial = ?",
        )
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| CertRecord {
            serial: r.get(0),
            subject: r.get(1),
            san: r.get(2),
            template: r.get(3),
            requester: r.get(4),
            operation: r.get(5),
            not_before: r.get(6),
            not_after: r.get(7),
            issued_at: r.get(8),
            der: r.get(9),
            description: r.get(10),
        }))
    }

    async fn certificate_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM certificates")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn record_audit(&self, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::insert_audit(&mut conn, audit).await
    }

    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, request_id, operation, label, principal, peer, outcome, status, reason, serial
             FROM audit_events ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(audit_row).collect())
    }

    async fn create_job(
        &self,
        job: &JobRecord,
        rows: &[(i64, String, String)],
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (owner, template, description, format, password_sealed, state, total, created_at)
             VALUES (?, ?, ?, ?, ?, 'queued', ?, ?) RETURNING id",
        )
        .bind(&job.owner)
        .bind(&job.template)
        .bind(&job.description)
        .bind(&job.format)
        .bind(&job.password_sealed)
        .bind(rows.len() as i64)
        .bind(&job.created_at)
        .fetch_one(&mut *tx)
        .await?;
        for (n, cn, san) in rows {
            sqlx::query("INSERT INTO job_items (job_id, row_number, cn, san, state) VALUES (?, ?, ?, ?, 'pending')")
                .bind(id)
                .bind(n)
                .bind(cn)
                .bind(san)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn get_job(&self, id: i64) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_row))
    }

    async fn open_job_of(&self, owner: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE owner = ? AND confirmed_at IS NULL ORDER BY id DESC LIMIT 1"
        ))
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(job_row))
    }

    async fn job_counts(&self, id: i64) -> Result<JobCounts, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM job_items WHERE job_id = ? GROUP BY state")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let mut c = JobCounts::default();
        for r in rows {
            let n: i64 = r.get(1);
            match r.get::<String, _>(0).as_str() {
                "pending" => c.pending = n,
                "running" => c.running = n,
                "done" => c.done = n,
                "failed" => c.failed = n,
                _ => c.cancelled += n,
            }
        }
        Ok(c)
    }

    async fn job_items(&self, id: i64) -> Result<Vec<JobItem>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM job_items WHERE job_id = ? ORDER BY row_number"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(item_row).collect())
    }

    async fn claim_job_item(&self) -> Result<Option<JobItem>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE job_items SET state = 'running', claimed_at = ?
             WHERE id = (SELECT i.id FROM job_items i JOIN jobs j ON j.id = i.job_id
                         WHERE i.state = 'pending' AND j.state IN ('queued', 'running')
                         ORDER BY i.job_id, i.row_number LIMIT 1)
             RETURNING {ITEM_COLUMNS}"
        ))
        .bind(timestamp(SystemTime::now()))
        .fetch_optional(&mut *tx)
        .await?;
        let item = row.as_ref().map(item_row);
        if let Some(i) = &item {
            sqlx::query("UPDATE jobs SET state = 'running' WHERE id = ? AND state = 'queued'")
                .bind(i.job_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(item)
    }

    async fn record_job_issuance(
        &self,
        item_id: i64,
        cert: &CertRecord,
        audit: &AuditEvent,
        key_sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE job_items SET state = 'done', serial = ?, key_sealed = ?
             WHERE id = ? AND state = 'running'
               AND job_id IN (SELECT id FROM jobs WHERE state = 'running')",
        )
        .bind(&cert.serial)
        .bind(key_sealed)
        .bind(item_id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        Self::insert_certificate(&mut tx, cert).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn fail_job_item(&self, item_id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE job_items SET state = CASE WHEN state = 'running' THEN 'failed' ELSE state END, error = ? WHERE id = ?")
            .bind(error)
            .bind(item_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn cancel_job(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state IN ('queued', 'running')")
            .bind(timestamp(SystemTime::now()))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        // running rows finish their signing but are not recorded (record_job_issuance checks the job)
        sqlx::query("UPDATE job_items SET state = 'cancelled' WHERE job_id = ? AND state IN ('pending', 'running')")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_job_if_done(&self, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE jobs SET finished_at = ?,
                 state = CASE WHEN EXISTS (SELECT 1 FROM job_items WHERE job_id = jobs.id AND state = 'done')
                              THEN 'completed' ELSE 'failed' END
             WHERE id = ? AND state = 'running'
               AND NOT EXISTS (SELECT 1 FROM job_items WHERE job_id = ? AND state IN ('pending', 'running'))",
        )
        .bind(timestamp(SystemTime::now()))
        .bind(id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn confirm_job(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE jobs SET confirmed_at = ?, password_sealed = NULL
             WHERE id = ? AND confirmed_at IS NULL AND state IN ('completed', 'cancelled', 'failed')",
        )
        .bind(timestamp(SystemTime::now()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE job_items SET key_sealed = NULL WHERE job_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn requeue_running_items(&self) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE job_items SET state = 'pending', claimed_at = NULL
             WHERE state = 'running' AND job_id IN (SELECT id FROM jobs WHERE state IN ('queued', 'running'))",
        )
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn create_session(&self, x: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (id_hash, user_name, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)")
            .bind(&x.id_hash)
            .bind(&x.user_name)
            .bind(&x.csrf)
            .bind(&x.created_at)
            .bind(&x.last_seen)
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, "session"))?;
        Ok(())
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query("SELECT id_hash, user_name, csrf, created_at, last_seen FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| SessionRecord {
            id_hash: r.get(0),
            user_name: r.get(1),
            csrf: r.get(2),
            created_at: r.get(3),
            last_seen: r.get(4),
        }))
    }

    async fn touch_session(&self, id_hash: &str, now: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE id_hash = ?")
            .bind(now)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_name = ?")
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn delete_idle_sessions(&self, before: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE last_seen < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn find_audit(
        &self,
        since: &str,
        principal: Option<&str>,
        failed_only: bool,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, request_id, operation, label, principal, peer, outcome, status, reason, serial
             FROM (SELECT * FROM audit_events
                   WHERE at >= ? AND (? IS NULL OR principal = ?) AND (? = 0 OR status >= 400)
                   ORDER BY id DESC LIMIT ?)
             ORDER BY id",
        )
        .bind(since)
        .bind(principal)
        .bind(principal)
        .bind(i64::from(failed_only))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(audit_row).collect())
    }

    async fn create_pending(&self, p: &PendingRecord) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO pending_requests (template, requester, key_fingerprint, subject, san, operation, csr, state, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?) RETURNING id",
        )
        .bind(&p.template)
        .bind(&p.requester)
        .bind(&p.key_fingerprint)
        .bind(&p.subject)
        .bind(&p.san)
        .bind(&p.operation)
        .bind(&p.csr)
        .bind(&p.created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn find_pending_by_key(
        &self,
        template: &str,
        key_fingerprint: &str,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PENDING_COLUMNS} FROM pending_requests WHERE template = ? AND key_fingerprint = ? ORDER BY id DESC LIMIT 1"
        ))
        .bind(template)
        .bind(key_fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(pending_row))
    }

    async fn get_pending(&self, id: i64) -> Result<Option<PendingRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PENDING_COLUMNS} FROM pending_requests WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(pending_row))
    }

    async fn list_pending(
        &self,
        state: Option<PendingState>,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let rows = match state {
            Some(st) => {
                sqlx::query(&format!(
                    "SELECT {PENDING_COLUMNS} FROM pending_requests WHERE state = ? ORDER BY id"
                ))
                .bind(st.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {PENDING_COLUMNS} FROM pending_requests ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows.iter().map(pending_row).collect())
    }

    async fn decide_pending(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let state = if approve { "approved" } else { "rejected" };
        let r = sqlx::query(
            "UPDATE pending_requests SET state = ?, decided_by = ?, reason = ?, decided_at = ?
             WHERE id = ? AND state = 'pending'",
        )
        .bind(state)
        .bind(by)
        .bind(reason)
        .bind(timestamp(SystemTime::now()))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn record_pending_issuance(
        &self,
        id: i64,
        cert: &CertRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE pending_requests SET state = 'issued', serial = ? WHERE id = ? AND state = 'approved'",
        )
        .bind(&cert.serial)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        Self::insert_certificate(&mut tx, cert).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn audit_row(r: &sqlx::sqlite::SqliteRow) -> AuditEvent {
    AuditEvent {
        at: r.get(0),
        request_id: r.get(1),
        operation: r.get(2),
        label: r.get(3),
        principal: r.get(4),
        peer: r.get(5),
        outcome: r.get(6),
        status: u16::try_from(r.get::<i64, _>(7)).unwrap_or(0),
        reason: r.get(8),
        serial: r.get(9),
    }
}

const JOB_COLUMNS: &str = "id, owner, template, description, format, password_sealed, state, total, created_at, finished_at, confirmed_at";
const ITEM_COLUMNS: &str = "id, job_id, row_number, cn, san, state, error, serial, key_sealed";

fn job_row(r: &sqlx::sqlite::SqliteRow) -> JobRecord {
    JobRecord {
        id: r.get(0),
        owner: r.get(1),
        template: r.get(2),
        description: r.get(3),
        format: r.get(4),
        password_sealed: r.get(5),
        state: r.get(6),
        total: r.get(7),
        created_at: r.get(8),
        finished_at: r.get(9),
        confirmed_at: r.get(10),
    }
}

fn item_row(r: &sqlx::sqlite::SqliteRow) -> JobItem {
    JobItem {
        id: r.get(0),
        job_id: r.get(1),
        row_number: r.get(2),
        cn: r.get(3),
        san: r.get(4),
        state: r.get(5),
        error: r.get(6),
        serial: r.get(7),
        key_sealed: r.get(8),
    }
}

const PENDING_COLUMNS: &str = "id, template, requester, key_fingerprint, subject, san, operation, csr, state, reason, created_at, decided_at, decided_by, serial";

fn pending_row(r: &sqlx::sqlite::SqliteRow) -> PendingRecord {
    PendingRecord {
        id: r.get(0),
        template: r.get(1),
        requester: r.get(2),
        key_fingerprint: r.get(3),
        subject: r.get(4),
        san: r.get(5),
        operation: r.get(6),
        csr: r.get(7),
        state: PendingState::parse(&r.get::<String, _>(8)).unwrap_or(PendingState::Rejected),
        reason: r.get(9),
        created_at: r.get(10),
        decided_at: r.get(11),
        decided_by: r.get(12),
        serial: r.get(13),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(op: &str) -> AuditEvent {
        AuditEvent {
            at: timestamp(SystemTime::now()),
            request_id: "r1".into(),
            operation: op.into(),
            label: None,
            principal: Some("alice".into()),
            peer: "127.0.0.1:1".into(),
            outcome: "ok".into(),
            status: 200,
            reason: None,
            serial: None,
        }
    }

    fn cert(serial: &str) -> CertRecord {
        CertRecord {
            serial: serial.into(),
            subject: "CN=a".into(),
            san: String::new(),
            template: "default".into(),
            requester: "alice".into(),
            operation: "simpleenroll".into(),
            not_before: "x".into(),
            not_after: "y".into(),
            issued_at: "z".into(),
            der: vec![1, 2, 3],
            description: "till 3".into(),
        }
    }

    #[tokio::test]
    async fn users_and_groups() {
        let s = SqliteStore::memory().await.unwrap();
        assert_eq!(s.user_count().await.unwrap(), 0);
        s.add_user("alice", "h1", &["est-users".into(), "Super Admin".into()])
            .await
            .unwrap();
        let err = s.add_user("alice", "h2", &[]).await.unwrap_err();
        assert!(matches!(err, StoreError::Duplicate(_)), "{err}");
        let u = s.find_user("alice").await.unwrap().unwrap();
        assert_eq!(
            u.groups,
            vec!["Super Admin".to_string(), "est-users".to_string()]
        );
        assert!(s.set_password("alice", "h3").await.unwrap());
        assert!(!s.set_password("bob", "h3").await.unwrap());
        assert_eq!(
            s.find_user("alice").await.unwrap().unwrap().password_hash,
            "h3"
        );
        assert!(s.find_user("bob").await.unwrap().is_none());
        assert_eq!(s.list_users().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn issuance_is_atomic_and_serials_unique() {
        let s = SqliteStore::memory().await.unwrap();
        s.record_issuance(&cert("01"), &audit("simpleenroll"))
            .await
            .unwrap();
        let err = s
            .record_issuance(&cert("01"), &audit("simpleenroll"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Duplicate(_)));
        // the failed transaction wrote no audit row
        assert_eq!(s.recent_audit(10).await.unwrap().len(), 1);
        assert_eq!(s.certificate_count().await.unwrap(), 1);
        assert_eq!(
            s.find_certificate("01").await.unwrap().unwrap().der,
            vec![1, 2, 3]
        );
        s.record_audit(&audit("cacerts")).await.unwrap();
        let recent = s.recent_audit(10).await.unwrap();
        assert_eq!(recent[0].operation, "cacerts");
        let mut failed = audit("simpleenroll");
        failed.status = 403;
        failed.principal = Some("bob".into());
        failed.reason = Some("Invalid MAC address".into());
        s.record_audit(&failed).await.unwrap();
        let all = s.find_audit("1970", None, false, 100).await.unwrap();
        assert_eq!(all.len(), 3);
        let bad = s.find_audit("1970", None, true, 100).await.unwrap();
        assert_eq!(
            (bad.len(), bad[0].reason.as_deref()),
            (1, Some("Invalid MAC address"))
        );
        assert_eq!(
            s.find_audit("1970", Some("alice"), false, 100)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(
            s.find_audit("9999", None, false, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }

    fn job(owner: &str) -> JobRecord {
        JobRecord {
            id: 0,
            owner: owner.into(),
            template: "eap-tls".into(),
            description: "d".into(),
            format: "pem".into(),
            password_sealed: Some(vec![9; 40]),
            state: "queued".into(),
            total: 0,
            created_at: timestamp(SystemTime::now()),
            finished_at: None,
            confirmed_at: None,
        }
    }

    #[tokio::test]
    async fn job_lifecycle() {
        let s = SqliteStore::memory().await.unwrap();
        let rows: Vec<(i64, String, String)> = (2..5)
            .map(|n| (n, format!("dev{n}"), "11-22-33-44-55-66".into()))
            .collect();
        let id = s.create_job(&job("joe"), &rows).await.unwrap();
        assert_eq!(s.open_job_of("joe").await.unwrap().unwrap().total, 3);
        let a = s.claim_job_item().await.unwrap().unwrap();
        assert_eq!((a.row_number, a.state.as_str()), (2, "running"));
        assert_eq!(s.get_job(id).await.unwrap().unwrap().state, "running");
        assert!(
            s.record_job_issuance(a.id, &cert("a1"), &audit("bulk"), b"sealed")
                .await
                .unwrap()
        );
        assert!(
            !s.record_job_issuance(a.id, &cert("a2"), &audit("bulk"), b"sealed")
                .await
                .unwrap(),
            "once"
        );
        let b = s.claim_job_item().await.unwrap().unwrap();
        // a restart: the running row is pending again
        assert_eq!(s.requeue_running_items().await.unwrap(), 1);
        let b2 = s.claim_job_item().await.unwrap().unwrap();
        assert_eq!(b.id, b2.id);
        // cancel while b is running: its certificate is not recorded
        assert!(s.cancel_job(id).await.unwrap());
        assert!(
            !s.record_job_issuance(b.id, &cert("b1"), &audit("bulk"), b"x")
                .await
                .unwrap()
        );
        assert!(s.claim_job_item().await.unwrap().is_none());
        let c = s.job_counts(id).await.unwrap();
        assert_eq!((c.done, c.cancelled, c.pending), (1, 2, 0));
        assert!(s.find_certificate("b1").await.unwrap().is_none());
        // confirm: keys and password gone, owner free
        assert!(s.confirm_job(id).await.unwrap());
        assert!(
            s.job_items(id)
                .await
                .unwrap()
                .iter()
                .all(|i| i.key_sealed.is_none())
        );
        assert!(
            s.get_job(id)
                .await
                .unwrap()
                .unwrap()
                .password_sealed
                .is_none()
        );
        assert!(s.open_job_of("joe").await.unwrap().is_none());
        // a job runs to completion
        let id2 = s.create_job(&job("ann"), &rows[..1]).await.unwrap();
        let i = s.claim_job_item().await.unwrap().unwrap();
        assert!(!s.finish_job_if_done(id2).await.unwrap());
        s.fail_job_item(i.id, "Invalid MAC address").await.unwrap();
        assert!(s.finish_job_if_done(id2).await.unwrap());
        assert_eq!(
            s.get_job(id2).await.unwrap().unwrap().state,
            "failed",
            "no row issued"
        );
        assert!(s.confirm_job(id2).await.unwrap());
        let id3 = s.create_job(&job("eve"), &rows[..2]).await.unwrap();
        let x = s.claim_job_item().await.unwrap().unwrap();
        let y = s.claim_job_item().await.unwrap().unwrap();
        assert!(
            s.record_job_issuance(x.id, &cert("x1"), &audit("bulk"), b"k")
                .await
                .unwrap()
        );
        s.fail_job_item(y.id, "CA server error").await.unwrap();
        assert!(s.finish_job_if_done(id3).await.unwrap());
        assert_eq!(s.get_job(id3).await.unwrap().unwrap().state, "completed");
    }

    #[tokio::test]
    async fn a_file_database_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("estd.db");
        {
            let s = SqliteStore::open(&path, Synchronous::Full).await.unwrap();
            s.add_user("alice", "h", &[]).await.unwrap();
        }
        let s = SqliteStore::open(&path, Synchronous::Full).await.unwrap();
        assert_eq!(s.user_count().await.unwrap(), 1);
        use std::os::unix::fs::PermissionsExt;
        for f in ["estd.db", "estd.db-wal", "estd.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}
