-- estd schema, SQLite. Times are UTC text, fixed width: 2026-11-21T23:18:14.123456Z

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE user_groups (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
);

CREATE TABLE certificates (
    serial     TEXT PRIMARY KEY,   -- lower-case hex, 16 random bytes
    subject    TEXT NOT NULL,
    san        TEXT NOT NULL,      -- entries joined by ", "
    template   TEXT NOT NULL,
    requester  TEXT NOT NULL,
    operation  TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after  TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    der        BLOB NOT NULL
);
CREATE INDEX certificates_requester ON certificates(requester);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    request_id TEXT NOT NULL,
    operation  TEXT NOT NULL,
    label      TEXT,
    principal  TEXT,
    peer       TEXT NOT NULL,
    outcome    TEXT NOT NULL,      -- 'ok' or 'error'
    status     INTEGER NOT NULL,   -- the HTTP status sent
    reason     TEXT,
    serial     TEXT
);
CREATE INDEX audit_events_at ON audit_events(at);
