-- Portal sessions: only a SHA-256 of the session id is kept.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen  TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_name);

-- The requester's optional description of a certificate (portal, JSON API).
ALTER TABLE certificates ADD COLUMN description TEXT NOT NULL DEFAULT '';
