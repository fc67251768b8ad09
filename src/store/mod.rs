//! Persistent state behind one `Store` trait: users and groups, issued certificates, and the
//! audit log. SQLite (one file, WAL) is the default implementation.

mod sqlite;

pub use sqlite::{SqliteStore, Synchronous};

use std::time::SystemTime;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique key already exists (a user name, a serial number).
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("database: {0}")]
    Db(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub groups: Vec<String>,
    pub created_at: String,
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

#[async_trait]
pub trait Store: Send + Sync {
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
    async fn record_audit(&self, audit: &AuditEvent) -> Result<(), StoreError>;
    /// The latest audit events, newest first.
    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
}

/// A UTC time as fixed-width text, sortable as a string.
pub fn timestamp(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_fixed_width_and_sort() {
        let a = timestamp(SystemTime::UNIX_EPOCH + Duration::from_micros(1));
        let b = timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 365 * 60));
        assert_eq!(a, "1970-01-01T00:00:00.000001Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }
}
