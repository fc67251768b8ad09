-- Zero-touch enrollment (issue 24): the devices a template's allow-list or deny-list names,
-- by the serialNumber of their manufacturer certificate (IDevID).
CREATE TABLE devices (
    template TEXT NOT NULL,
    serial   TEXT NOT NULL,
    state    TEXT NOT NULL CHECK (state IN ('allow', 'deny')),
    note     TEXT,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (template, serial)
);
