//! What SCEP keeps: one-time challenges (stored hashed) and transactions (a client's
//! transactionID, bound to its key, with what became of it). Its own trait, which `Store`
//! requires, and its SQL once for both databases (`scep_sql!`, expanded by `sql_store!`).

use async_trait::async_trait;

use super::StoreError;

/// A one-time SCEP challenge password an administrator issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub id: i64,
    pub template: String,
    /// SHA-256 (hex) of the secret: the secret itself is shown once and never stored.
    pub secret_hash: String,
    /// The CN the request must carry, when the challenge is bound to one.
    pub cn: Option<String>,
    /// The SubjectAltName entries (`DNS:x, IP:y`, sorted) the request must carry exactly.
    pub san: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    /// The transactionID that used it.
    pub used_by: Option<String>,
}

/// A SCEP transaction: the client's transactionID, the key it was first used with (a
/// transactionID replayed with another key is refused), and what it came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    pub template: String,
    pub transaction_id: String,
    pub key_fingerprint: String,
    /// The request waiting for approval, when it waits.
    pub pending_id: Option<i64>,
    /// The certificate issued for it.
    pub serial: Option<String>,
    pub created_at: String,
}

#[async_trait]
pub trait ScepStore: Send + Sync {
    /// Stores a new challenge; returns its id.
    async fn create_challenge(&self, c: &ChallengeRecord) -> Result<i64, StoreError>;
    /// Stores new challenges in one transaction; returns their ids, in order.
    async fn create_challenges(&self, cs: &[ChallengeRecord]) -> Result<Vec<i64>, StoreError>;
    async fn find_challenge(
        &self,
        secret_hash: &str,
    ) -> Result<Option<ChallengeRecord>, StoreError>;
    /// Marks the challenge used by `txid` at `at`, if it is still unused: false when another
    /// request used it first (the one that gets `true` may go on).
    async fn use_challenge(&self, id: i64, at: &str, txid: &str) -> Result<bool, StoreError>;
    /// Makes a challenge used by `txid` unused again (its request was refused); false when
    /// it was not used by that transaction.
    async fn release_challenge(&self, id: i64, txid: &str) -> Result<bool, StoreError>;
    /// Challenges newest first; with `open_only`, the unused and unexpired ones (as of `now`).
    async fn list_challenges(
        &self,
        now: &str,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<ChallengeRecord>, StoreError>;
    /// Deletes an unused challenge; false when there is none (or it was used).
    async fn revoke_challenge(&self, id: i64) -> Result<bool, StoreError>;
    /// Records a transaction, or replaces the one under its (template, transactionID):
    /// its key and what it came to, in one write.
    async fn save_transaction(&self, t: &TransactionRecord) -> Result<(), StoreError>;
    async fn find_transaction(
        &self,
        template: &str,
        transaction_id: &str,
    ) -> Result<Option<TransactionRecord>, StoreError>;
    /// Deletes the challenges used or expired before `challenges_before`, and the
    /// transactions started before `transactions_before`; returns how many of each.
    async fn purge_scep(
        &self,
        challenges_before: &str,
        transactions_before: &str,
    ) -> Result<(u64, u64), StoreError>;
}

/// The SQL of `ScepStore`, for the pool type of `sql_store!`.
macro_rules! scep_sql {
    ($store:ident, $row:ty) => {
        use super::scep::{ChallengeRecord, ScepStore, TransactionRecord};

        const CHALLENGE_COLUMNS: &str =
            "id, template, secret_hash, cn, san, created_by, created_at, expires_at, used_at, used_by";

        fn challenge_row(r: &$row) -> ChallengeRecord {
            ChallengeRecord {
                id: r.get("id"),
                template: r.get("template"),
                secret_hash: r.get("secret_hash"),
                cn: r.get("cn"),
                san: r.get("san"),
                created_by: r.get("created_by"),
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
                used_at: r.get("used_at"),
                used_by: r.get("used_by"),
            }
        }

        fn transaction_row(r: &$row) -> TransactionRecord {
            TransactionRecord {
                template: r.get("template"),
                transaction_id: r.get("transaction_id"),
                key_fingerprint: r.get("key_fingerprint"),
                pending_id: r.get("pending_id"),
                serial: r.get("serial"),
                created_at: r.get("created_at"),
            }
        }

        #[async_trait::async_trait]
        impl ScepStore for $store {
            async fn create_challenge(&self, c: &ChallengeRecord) -> Result<i64, StoreError> {
                let ids = self.create_challenges(std::slice::from_ref(c)).await?;
                ids.first().copied().ok_or_else(|| StoreError::Db("no challenge id returned".into()))
            }

            async fn create_challenges(&self, cs: &[ChallengeRecord]) -> Result<Vec<i64>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let mut ids = Vec::with_capacity(cs.len());
                for c in cs {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO scep_challenges (template, secret_hash, cn, san, created_by, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    )
                    .bind(&c.template)
                    .bind(&c.secret_hash)
                    .bind(&c.cn)
                    .bind(&c.san)
                    .bind(&c.created_by)
                    .bind(&c.created_at)
                    .bind(&c.expires_at)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| unique(e, "challenge"))?;
                    ids.push(id);
                }
                tx.commit().await?;
                Ok(ids)
            }

            async fn find_challenge(
                &self,
                secret_hash: &str,
            ) -> Result<Option<ChallengeRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {CHALLENGE_COLUMNS} FROM scep_challenges WHERE secret_hash = $1"
                ))
                .bind(secret_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(challenge_row))
            }

            async fn use_challenge(&self, id: i64, at: &str, txid: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE scep_challenges SET used_at = $1, used_by = $2 WHERE id = $3 AND used_at IS NULL",
                )
                .bind(at)
                .bind(txid)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_challenge(&self, id: i64, txid: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE scep_challenges SET used_at = NULL, used_by = NULL WHERE id = $1 AND used_by = $2",
                )
                .bind(id)
                .bind(txid)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_challenges(
                &self,
                now: &str,
                open_only: bool,
                limit: u32,
            ) -> Result<Vec<ChallengeRecord>, StoreError> {
                let filter = if open_only {
                    "WHERE used_at IS NULL AND expires_at > $1"
                } else {
                    "WHERE $1 = $1"
                };
                let rows = sqlx::query(&format!(
                    "SELECT {CHALLENGE_COLUMNS} FROM scep_challenges {filter} ORDER BY id DESC LIMIT $2"
                ))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(challenge_row).collect())
            }

            async fn revoke_challenge(&self, id: i64) -> Result<bool, StoreError> {
                let done =
                    sqlx::query("DELETE FROM scep_challenges WHERE id = $1 AND used_at IS NULL")
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn save_transaction(&self, t: &TransactionRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO scep_transactions (template, transaction_id, key_fingerprint, pending_id, serial, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (template, transaction_id) DO UPDATE SET
                       key_fingerprint = excluded.key_fingerprint, pending_id = excluded.pending_id,
                       serial = excluded.serial, created_at = excluded.created_at",
                )
                .bind(&t.template)
                .bind(&t.transaction_id)
                .bind(&t.key_fingerprint)
                .bind(t.pending_id)
                .bind(&t.serial)
                .bind(&t.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn purge_scep(
                &self,
                challenges_before: &str,
                transactions_before: &str,
            ) -> Result<(u64, u64), StoreError> {
                let challenges = sqlx::query(
                    "DELETE FROM scep_challenges WHERE (used_at IS NOT NULL AND used_at < $1) OR expires_at < $1",
                )
                .bind(challenges_before)
                .execute(&self.pool)
                .await?
                .rows_affected();
                let transactions =
                    sqlx::query("DELETE FROM scep_transactions WHERE created_at < $1")
                        .bind(transactions_before)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                Ok((challenges, transactions))
            }

            async fn find_transaction(
                &self,
                template: &str,
                transaction_id: &str,
            ) -> Result<Option<TransactionRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT template, transaction_id, key_fingerprint, pending_id, serial, created_at
                     FROM scep_transactions WHERE template = $1 AND transaction_id = $2",
                )
                .bind(template)
                .bind(transaction_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(transaction_row))
            }
        }
    };
}

pub(crate) use scep_sql;
