-- Requests waiting for manual approval (templates with approval = "manual").
CREATE TABLE pending_requests (
    id              INTEGER PRIMARY KEY,
    template        TEXT NOT NULL,
    requester       TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,   -- SHA-256 of the CSR's public key (hex)
    subject         TEXT NOT NULL,
    san             TEXT NOT NULL,
    operation       TEXT NOT NULL,
    csr             BLOB NOT NULL,   -- the DER CSR that is approved or rejected
    state           TEXT NOT NULL,   -- pending | approved | rejected | issued
    reason          TEXT,
    created_at      TEXT NOT NULL,
    decided_at      TEXT,
    decided_by      TEXT,
    serial          TEXT             -- the certificate issued for it
);
CREATE INDEX pending_requests_key ON pending_requests(template, key_fingerprint);
CREATE INDEX pending_requests_state ON pending_requests(state);
