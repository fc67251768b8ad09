//! The SQLite store: one file, WAL journal, migrations run at open.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::SqliteConnection;
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
}

super::sql::sql_store!(
    SqliteStore,
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
