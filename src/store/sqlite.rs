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
    AuditEvent, CertRecord, PendingRecord, PendingState, SessionRecord, Store, StoreError,
    UserRecord, timestamp,
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
        Ok(rows
            .into_iter()
            .map(|r| AuditEvent {
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
            })
            .collect())
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
