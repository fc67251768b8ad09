//! The SQLite store: one file, WAL journal, migrations run at open.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::{ConnectOptions, SqliteConnection};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
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
    /// Certificates and audit rows go to one writer task, which commits what has queued
    /// up together (group commit): SQLite has one writer at a time, and a commit per
    /// enrollment would serialise enrollments behind fsync.
    writer: tokio::sync::mpsc::Sender<WriteJob>,
}

/// One queued write: an audit row, with the certificate it records when there is one.
#[derive(Debug)]
struct WriteJob {
    cert: Option<CertRecord>,
    audit: AuditEvent,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// Writes committed together at most.
const MAX_BATCH: usize = 256;

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
        // One connection first, alone: it turns the file to WAL and runs the migrations.
        // A pool opening several connections at once on a new file can have one of them
        // refused with SQLITE_BUSY ("database is locked") while another converts the
        // journal, which the busy timeout does not cover.
        {
            use sqlx::Connection;
            let mut first = sqlx::SqliteConnection::connect_with(&opts).await?;
            // (no users table yet: a new database)
            let names = sqlx::query_scalar::<_, String>("SELECT name FROM users")
                .fetch_all(&mut first)
                .await;
            super::check_name_case(names)?;
            sqlx::migrate!("./migrations/sqlite")
                .run(&mut first)
                .await
                .map_err(|e| StoreError::Db(format!("migrations: {e}")))?;
            first.close().await?;
        }
        Self::connect(opts, true).await
    }

    /// An in-memory database (tests).
    pub async fn memory() -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // (a shared in-memory database locks whole tables: the writer uses the pool)
        Self::connect(opts, false).await
    }

    async fn connect(opts: SqliteConnectOptions, own_writer: bool) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Db(format!("migrations: {e}")))?;
        // The writer has a connection of its own: a batch is then one round trip to it
        // (BEGIN, the INSERTs, COMMIT sent as one multi-statement query), with no pool
        // hand-over, and its page cache stays warm between batches.
        let conn = if own_writer {
            match opts.connect().await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "SQLite: no connection of its own for the writer; writing through the pool");
                    None
                }
            }
        } else {
            None
        };
        let (writer, queue) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
        let me = WriterHandle {
            pool: pool.clone(),
            conn,
        };
        tokio::spawn(async move { me.write_loop(queue).await });
        Ok(Self { pool, writer })
    }

    async fn write_issuance(&self, c: &CertRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.queue(Some(c.clone()), audit.clone()).await
    }

    async fn write_audit(&self, audit: &AuditEvent) -> Result<(), StoreError> {
        self.queue(None, audit.clone()).await
    }

    /// Hands a write to the writer and waits until it is committed (or refused).
    async fn queue(&self, cert: Option<CertRecord>, audit: AuditEvent) -> Result<(), StoreError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job = WriteJob { cert, audit, done };
        if let Err(tokio::sync::mpsc::error::SendError(job)) = self.writer.send(job).await {
            // no writer (the runtime is shutting down): write it directly
            return SqliteStore::write_now(&self.pool, job.cert.as_ref(), &job.audit).await;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Db("the write queue stopped".into())))
    }
}

/// What the writer task holds: the pool (for writes one by one) and, normally, a
/// connection of its own for the batches.
struct WriterHandle {
    pool: SqlitePool,
    conn: Option<SqliteConnection>,
}

impl WriterHandle {
    async fn write_loop(mut self, mut queue: tokio::sync::mpsc::Receiver<WriteJob>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // Let the requests that are running now reach their write first, so that one
            // commit (one fsync) serves them all; with nothing else to run, this costs
            // no wait at all.
            tokio::task::yield_now().await;
            take_queued(&mut queue, &mut batch);
            match self.write_batch(&batch).await {
                Ok(()) => {
                    for job in batch.drain(..) {
                        let _ = job.done.send(Ok(()));
                    }
                }
                Err(e) => {
                    // one bad write (a duplicate serial) must not fail the others: each
                    // alone, in its own transaction, with its own answer
                    tracing::debug!(error = %e, writes = batch.len(), "group commit failed; writing one by one");
                    for job in batch.drain(..) {
                        let r =
                            SqliteStore::write_now(&self.pool, job.cert.as_ref(), &job.audit).await;
                        let _ = job.done.send(r);
                    }
                }
            }
        }
    }

    /// Every certificate and audit row of the batch in one transaction: one multi-row
    /// INSERT per table, sent with BEGIN and COMMIT as one query. A failure rolls the
    /// whole batch back.
    async fn write_batch(&mut self, batch: &[WriteJob]) -> Result<(), StoreError> {
        let Some(conn) = self.conn.as_mut() else {
            let mut tx = self.pool.begin().await?;
            batch_inserts(batch, "").build().execute(&mut *tx).await?;
            tx.commit().await?;
            return Ok(());
        };
        let result = batch_inserts(batch, "BEGIN IMMEDIATE; ")
            .push("; COMMIT")
            .build()
            .execute(&mut *conn)
            .await;
        if let Err(e) = result {
            // the failed statement left the transaction open (unless BEGIN failed)
            if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *conn).await
                && !rollback.to_string().contains("no transaction is active")
            {
                tracing::warn!(error = %rollback, "SQLite writer: rollback failed; writing through the pool from now on");
                self.conn = None;
            }
            return Err(e.into());
        }
        Ok(())
    }
}

/// Moves what is queued now into the batch, up to MAX_BATCH.
fn take_queued(queue: &mut tokio::sync::mpsc::Receiver<WriteJob>, batch: &mut Vec<WriteJob>) {
    while batch.len() < MAX_BATCH
        && let Ok(job) = queue.try_recv()
    {
        batch.push(job);
    }
}

/// The batch's INSERTs (certificates, then audit rows), after `prefix`.
fn batch_inserts<'a>(batch: &'a [WriteJob], prefix: &str) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(prefix);
    let mut certs = batch.iter().filter_map(|j| j.cert.as_ref()).peekable();
    if certs.peek().is_some() {
        q.push(
            "INSERT INTO certificates (serial, subject, san, template, requester, operation, not_before, not_after, issued_at, der, description, issuer) ",
        );
        q.push_values(certs, |mut b, c| {
            b.push_bind(&c.serial)
                .push_bind(&c.subject)
                .push_bind(&c.san)
                .push_bind(&c.template)
                .push_bind(&c.requester)
                .push_bind(&c.operation)
                .push_bind(&c.not_before)
                .push_bind(&c.not_after)
                .push_bind(&c.issued_at)
                .push_bind(&c.der)
                .push_bind(&c.description)
                .push_bind(&c.issuer);
        });
        q.push("; ");
    }
    q.push(
        "INSERT INTO audit_events (at, request_id, operation, label, principal, peer, outcome, status, reason, serial) ",
    );
    q.push_values(batch, |mut b, j| {
        let a = &j.audit;
        b.push_bind(&a.at)
            .push_bind(&a.request_id)
            .push_bind(&a.operation)
            .push_bind(&a.label)
            .push_bind(&a.principal)
            .push_bind(&a.peer)
            .push_bind(&a.outcome)
            .push_bind(i64::from(a.status))
            .push_bind(&a.reason)
            .push_bind(&a.serial);
    });
    q
}

super::sql::sql_store!(
    SqliteStore,
    SqlitePool,
    SqliteConnection,
    sqlx::sqlite::SqliteRow,
    claim_lock = ""
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

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
