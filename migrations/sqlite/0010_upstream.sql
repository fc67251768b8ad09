-- Registration-authority mode (issue 23): which CA signed a certificate ('local': estd's
-- own; otherwise the name of an [upstream.NAME]), and requests an upstream holds, which
-- estd asks about again (state 'upstream', at next_poll_at, poll_attempts so far).
ALTER TABLE certificates ADD COLUMN issuer TEXT NOT NULL DEFAULT 'local';
ALTER TABLE pending_requests ADD COLUMN upstream TEXT;
ALTER TABLE pending_requests ADD COLUMN next_poll_at TEXT;
ALTER TABLE pending_requests ADD COLUMN poll_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX pending_requests_poll ON pending_requests(state, next_poll_at);
