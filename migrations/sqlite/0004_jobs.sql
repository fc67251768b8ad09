-- Bulk certificate jobs and their rows.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    owner           TEXT NOT NULL,
    template        TEXT NOT NULL,
    description     TEXT NOT NULL,
    format          TEXT NOT NULL,
    password_sealed BLOB,            -- the certificate password, AES-256-GCM; NULL once confirmed
    state           TEXT NOT NULL,   -- queued | running | cancelled | completed
    total           INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    finished_at     TEXT,
    confirmed_at    TEXT             -- download confirmed: the owner may submit again
);
CREATE INDEX jobs_owner ON jobs(owner, confirmed_at);

CREATE TABLE job_items (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    row_number INTEGER NOT NULL,
    cn         TEXT NOT NULL,
    san        TEXT NOT NULL,
    state      TEXT NOT NULL,        -- pending | running | done | failed | cancelled
    error      TEXT,
    serial     TEXT,
    key_sealed BLOB,                 -- the generated PKCS#8, AES-256-GCM; NULL once confirmed
    claimed_at TEXT
);
CREATE INDEX job_items_state ON job_items(state, job_id, row_number);
CREATE INDEX job_items_job ON job_items(job_id, row_number);
