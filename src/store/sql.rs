//! The SQL both stores run, written once: `sql_store!` expands to the `Store` implementation
//! for a pool type (SQLite or PostgreSQL). Placeholders are `$1…` (both drivers take them),
//! integers are 64-bit, times are fixed-width UTC text, and the one difference — how a bulk
//! row is claimed — is the `claim_lock` clause (`FOR UPDATE … SKIP LOCKED` on PostgreSQL).

macro_rules! sql_store {
    ($store:ident, $pool:ty, $conn:ty, $row:ty, claim_lock = $claim_lock:expr) => {
        use sqlx::Row;

        use super::{
            AuditEvent, CertFilter, CertRecord, CertStatus, JobClaim, JobCounts, JobItem,
            JobRecord, PendingRecord, PendingState, RevocationRecord, SessionRecord, Store,
            StoreError, UserRecord, timestamp,
        };

        fn unique(e: sqlx::Error, what: &str) -> StoreError {
            match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::Duplicate(what.into())
                }
                _ => StoreError::from(e),
            }
        }

        impl $store {
    async fn insert_audit(conn: &mut $conn, a: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, request_id, operation, label, principal, peer, outcome, status, reason, serial)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        conn: &mut $conn,
        c: &CertRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO certificates (serial, subject, san, template, requester, operation, not_before, not_after, issued_at, der, description, issuer)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .bind(&c.issuer)
        .execute(conn)
        .await
        .map_err(|e| unique(e, &format!("serial {}", c.serial)))?;
        Ok(())
    }

    /// An audit row, with the certificate it records (then both in one transaction),
    /// written at once on its own.
    async fn write_now(
        pool: &$pool,
        cert: Option<&CertRecord>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        match cert {
            Some(c) => {
                let mut tx = pool.begin().await?;
                Self::insert_certificate(&mut tx, c).await?;
                Self::insert_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }
            None => {
                let mut conn = pool.acquire().await?;
                Self::insert_audit(&mut conn, audit).await
            }
        }
    }

    /// A waiting request in state `from` becomes `issued`, with its certificate and the
    /// audit row, in one transaction; false when it is no longer in `from`.
    async fn issue_pending(
        pool: &$pool,
        id: i64,
        from: &str,
        cert: &CertRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = pool.begin().await?;
        let r = sqlx::query(
            "UPDATE pending_requests SET state = 'issued', serial = $1 WHERE id = $2 AND state = $3",
        )
        .bind(&cert.serial)
        .bind(id)
        .bind(from)
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

    async fn groups_of(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT group_name FROM user_groups WHERE user_id = $1 ORDER BY group_name")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }
        }

#[async_trait::async_trait]
impl Store for $store {
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
            "INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(password_hash)
        .bind(timestamp(SystemTime::now()))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique(e, &format!("user {name:?}")))?;
        for g in groups {
            sqlx::query("INSERT INTO user_groups (user_id, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(g)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM user_groups WHERE user_id IN (SELECT id FROM users WHERE name = $1)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn purge_audit(&self, before: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        // one query (a row per group) rather than two: this runs on every Basic request
        let rows = sqlx::query(
            "SELECT u.name, u.password_hash, u.created_at, g.group_name, u.disabled
             FROM users u LEFT JOIN user_groups g ON g.user_id = u.id
             WHERE u.name = $1 ORDER BY g.group_name",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(UserRecord {
            name: first.get(0),
            password_hash: first.get(1),
            created_at: first.get(2),
            groups: rows
                .iter()
                .filter_map(|r| r.get::<Option<String>, _>(3))
                .collect(),
            disabled: first.get::<i64, _>(4) != 0,
        }))
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, password_hash, created_at, disabled FROM users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(UserRecord {
                groups: self.groups_of(row.get(0)).await?,
                name: row.get(1),
                password_hash: row.get(2),
                created_at: row.get(3),
                disabled: row.get::<i64, _>(4) != 0,
            });
        }
        Ok(out)
    }

    async fn record_issuance(&self, c: &CertRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.write_issuance(c, audit).await
    }

    async fn find_certificate(&self, serial: &str) -> Result<Option<CertRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates c WHERE serial = $1"
        ))
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(cert_row))
    }

    async fn list_certificates(
        &self,
        f: &CertFilter,
    ) -> Result<Vec<(CertRecord, Option<RevocationRecord>)>, StoreError> {
        // fixed SQL; an absent condition is a NULL parameter that matches everything
        let status = f.status.map(CertStatus::as_str);
        let text = f
            .text
            .as_ref()
            .map(|t| format!("%{}%", t.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        let rows = sqlx::query(&format!(
            "SELECT {CERT_COLUMNS}, r.revoked_at, r.reason, r.revoked_by, r.key_fingerprint
             FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
             WHERE ($1 IS NULL OR c.requester = $1)
               AND ($2 IS NULL OR c.template = $2)
               AND ($3 IS NULL
                    OR ($3 = 'revoked' AND r.serial IS NOT NULL)
                    OR ($3 = 'valid' AND r.serial IS NULL AND c.not_after > $4)
                    OR ($3 = 'expired' AND r.serial IS NULL AND c.not_after <= $4))
               AND ($5 IS NULL OR LOWER(c.subject) LIKE $5 ESCAPE '\\'
                    OR LOWER(c.san) LIKE $5 ESCAPE '\\' OR c.serial LIKE $5 ESCAPE '\\')
             ORDER BY c.issued_at DESC, c.serial LIMIT $6"
        ))
        .bind(&f.requester)
        .bind(&f.template)
        .bind(status)
        .bind(&f.now)
        .bind(text)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let cert = cert_row(r);
                let revoked = r.get::<Option<String>, _>(12).map(|at| RevocationRecord {
                    serial: cert.serial.clone(),
                    revoked_at: at,
                    reason: reason_code(r.get::<Option<i64>, _>(13).unwrap_or(0)),
                    revoked_by: r.get::<Option<String>, _>(14).unwrap_or_default(),
                    key_fingerprint: r.get::<Option<String>, _>(15).unwrap_or_default(),
                    issuer: cert.issuer.clone(),
                });
                (cert, revoked)
            })
            .collect())
    }

    async fn find_revocation(
        &self,
        serial: &str,
    ) -> Result<Option<RevocationRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT r.serial, r.revoked_at, r.reason, r.revoked_by, r.key_fingerprint, COALESCE(c.issuer, 'local')
             FROM revocations r LEFT JOIN certificates c ON c.serial = r.serial WHERE r.serial = $1",
        )
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(revocation_row))
    }

    async fn revoke_certificate(
        &self,
        rev: &RevocationRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO revocations (serial, revoked_at, reason, revoked_by, key_fingerprint)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&rev.serial)
        .bind(&rev.revoked_at)
        .bind(i64::from(rev.reason))
        .bind(&rev.revoked_by)
        .bind(&rev.key_fingerprint)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn revocations(&self) -> Result<Vec<RevocationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.serial, r.revoked_at, r.reason, r.revoked_by, r.key_fingerprint, COALESCE(c.issuer, 'local')
             FROM revocations r LEFT JOIN certificates c ON c.serial = r.serial
             ORDER BY r.revoked_at, r.serial",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(revocation_row).collect())
    }

    async fn revocation_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM revocations
             WHERE serial NOT IN (SELECT serial FROM certificates WHERE issuer <> 'local')",
        )
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn job_states(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn certificate_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM certificates")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn record_audit(&self, audit: &AuditEvent) -> Result<(), StoreError> {
        self.write_audit(audit).await
    }

    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, request_id, operation, label, principal, peer, outcome, status, reason, serial
             FROM audit_events ORDER BY id DESC LIMIT $1",
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
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7) RETURNING id",
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
            sqlx::query("INSERT INTO job_items (job_id, row_number, cn, san, state) VALUES ($1, $2, $3, $4, 'pending')")
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
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_row))
    }

    async fn open_job_of(&self, owner: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE owner = $1 AND confirmed_at IS NULL ORDER BY id DESC LIMIT 1"
        ))
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(job_row))
    }

    async fn job_counts(&self, id: i64) -> Result<JobCounts, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM job_items WHERE job_id = $1 GROUP BY state")
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
            "SELECT {ITEM_COLUMNS} FROM job_items WHERE job_id = $1 ORDER BY row_number"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(item_row).collect())
    }

    async fn claim_job_item(&self, claim: &str) -> Result<Option<JobItem>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE job_items SET state = 'running', claimed_at = $1, claim = $2
             WHERE id = (SELECT i.id FROM job_items i JOIN jobs j ON j.id = i.job_id
                         WHERE i.state = 'pending' AND j.state IN ('queued', 'running')
                         ORDER BY i.job_id, i.row_number LIMIT 1{lock})
             RETURNING {ITEM_COLUMNS}",
            lock = $claim_lock
        ))
        .bind(timestamp(SystemTime::now()))
        .bind(claim)
        .fetch_optional(&mut *tx)
        .await?;
        let item = row.as_ref().map(item_row);
        if let Some(i) = &item {
            sqlx::query("UPDATE jobs SET state = 'running' WHERE id = $1 AND state = 'queued'")
                .bind(i.job_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(item)
    }

    async fn record_job_issuance(
        &self,
        claim: &JobClaim,
        cert: &CertRecord,
        audit: &AuditEvent,
        key_sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE job_items SET state = 'done', serial = $1, key_sealed = $2
             WHERE id = $3 AND state = 'running' AND claim = $4
               AND job_id IN (SELECT id FROM jobs WHERE state = 'running')",
        )
        .bind(&cert.serial)
        .bind(key_sealed)
        .bind(claim.item_id)
        .bind(&claim.token)
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

    async fn fail_job_item(&self, claim: &JobClaim, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE job_items SET state = 'failed', error = $1 WHERE id = $2 AND state = 'running' AND claim = $3")
            .bind(error)
            .bind(claim.item_id)
            .bind(&claim.token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn cancel_job(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2 AND state IN ('queued', 'running')")
            .bind(timestamp(SystemTime::now()))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        // running rows finish their signing but are not recorded (record_job_issuance checks the job)
        sqlx::query("UPDATE job_items SET state = 'cancelled' WHERE job_id = $1 AND state IN ('pending', 'running')")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_job_if_done(&self, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE jobs SET finished_at = $1,
                 state = CASE WHEN EXISTS (SELECT 1 FROM job_items WHERE job_id = jobs.id AND state = 'done')
                              THEN 'completed' ELSE 'failed' END
             WHERE id = $2 AND state = 'running'
               AND NOT EXISTS (SELECT 1 FROM job_items WHERE job_id = $3 AND state IN ('pending', 'running'))",
        )
        .bind(timestamp(SystemTime::now()))
        .bind(id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish_jobs_if_done(&self) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE jobs SET finished_at = $1,
                 state = CASE WHEN EXISTS (SELECT 1 FROM job_items WHERE job_id = jobs.id AND state = 'done')
                              THEN 'completed' ELSE 'failed' END
             WHERE state = 'running'
               AND NOT EXISTS (SELECT 1 FROM job_items WHERE job_id = jobs.id AND state IN ('pending', 'running'))",
        )
        .bind(timestamp(SystemTime::now()))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn confirm_job(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE jobs SET confirmed_at = $1, password_sealed = NULL
             WHERE id = $2 AND confirmed_at IS NULL AND state IN ('completed', 'cancelled', 'failed')",
        )
        .bind(timestamp(SystemTime::now()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE job_items SET key_sealed = NULL WHERE job_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn requeue_stale_items(&self, claimed_before: &str) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE job_items SET state = 'pending', claimed_at = NULL, claim = NULL
             WHERE state = 'running' AND claimed_at < $1
               AND job_id IN (SELECT id FROM jobs WHERE state IN ('queued', 'running'))",
        )
        .bind(claimed_before)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn create_session(&self, x: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (id_hash, user_name, csrf, created_at, last_seen) VALUES ($1, $2, $3, $4, $5)")
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
        let row = sqlx::query("SELECT id_hash, user_name, csrf, created_at, last_seen FROM sessions WHERE id_hash = $1")
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
        sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn delete_idle_sessions(&self, before: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE last_seen < $1")
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
                   WHERE at >= $1 AND ($2 IS NULL OR principal = $3) AND ($4 = 0 OR status >= 400 OR outcome = 'error')
                   ORDER BY id DESC LIMIT $5) AS recent
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8) RETURNING id",
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
            "SELECT {PENDING_COLUMNS} FROM pending_requests WHERE template = $1 AND key_fingerprint = $2 ORDER BY id DESC LIMIT 1"
        ))
        .bind(template)
        .bind(key_fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(pending_row))
    }

    async fn get_pending(&self, id: i64) -> Result<Option<PendingRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PENDING_COLUMNS} FROM pending_requests WHERE id = $1"
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
                    "SELECT {PENDING_COLUMNS} FROM pending_requests WHERE state = $1 ORDER BY id"
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
            "UPDATE pending_requests SET state = $1, decided_by = $2, reason = $3, decided_at = $4
             WHERE id = $5 AND (state = 'pending' OR (state = 'upstream' AND $1 = 'rejected'))",
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
        Self::issue_pending(&self.pool, id, "approved", cert, audit).await
    }
}

super::rows::sql_rows!($row);

        super::scep::scep_sql!($store, $row);
        super::upstream::upstream_sql!($store, $row);
        super::devices::devices_sql!($store, $row);
    };
}

pub(crate) use sql_store;
