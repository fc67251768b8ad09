-- `estd user disable NAME`: the account stays (its certificates, its audit rows) but can no
-- longer log in, enroll or renew; 1 = disabled.
ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
