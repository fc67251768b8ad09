//! The PostgreSQL store: one database several estd instances share (sessions, jobs, audit,
//! certificates). Bulk rows are claimed with `FOR UPDATE SKIP LOCKED`, so instances never
//! take the same row.

use std::time::{Duration, SystemTime};

use sqlx::PgConnection;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects (waiting up to 30 s for the server) and runs the migrations. Several
    /// instances may start at once: sqlx serialises migrations with an advisory lock.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::open_with(url, max_connections, Duration::from_secs(30)).await
    }

    /// `open`, waiting `acquire_timeout` for the server at start and for a free connection
    /// afterwards (`database.acquire_timeout_secs`): past it a request fails with
    /// `StoreError::Unavailable` (503).
    pub async fn open_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let opts: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Db(format!("database.url: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(acquire_timeout)
            .connect_with(opts)
            .await?;
        // (no users table yet: a new database)
        let names = sqlx::query_scalar::<_, String>("SELECT name FROM users")
            .fetch_all(&pool)
            .await;
        super::check_name_case(names)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Db(format!("migrations: {e}")))?;
        Ok(Self { pool })
    }

    // PostgreSQL commits concurrent transactions together by itself.
    async fn write_issuance(&self, c: &CertRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        Self::write_now(&self.pool, Some(c), audit).await
    }

    async fn write_audit(&self, audit: &AuditEvent) -> Result<(), StoreError> {
        Self::write_now(&self.pool, None, audit).await
    }
}

super::sql::sql_store!(
    PgStore,
    PgPool,
    PgConnection,
    sqlx::postgres::PgRow,
    claim_lock = " FOR UPDATE OF i SKIP LOCKED"
);
