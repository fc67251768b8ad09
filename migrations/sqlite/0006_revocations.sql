-- Revoked certificates (RFC 5280 reason codes); one row per certificate, never deleted.
CREATE TABLE revocations (
    serial     TEXT PRIMARY KEY REFERENCES certificates(serial),
    revoked_at TEXT NOT NULL,
    reason     INTEGER NOT NULL,
    revoked_by TEXT NOT NULL,
    -- SHA-256 of the certificate's public key: no new certificate for a revoked key
    key_fingerprint TEXT NOT NULL
);
CREATE INDEX certificates_template ON certificates(template);
