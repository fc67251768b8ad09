-- SCEP (issue 22): one-time challenge passwords, stored as the SHA-256 of the secret, and
-- the transactions clients started (a transactionID stays bound to its first key).
CREATE TABLE scep_challenges (
    id          INTEGER PRIMARY KEY,
    template    TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    cn          TEXT,
    san         TEXT,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    used_by     TEXT
);
CREATE TABLE scep_transactions (
    template        TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    pending_id      INTEGER,
    serial          TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (template, transaction_id)
);
