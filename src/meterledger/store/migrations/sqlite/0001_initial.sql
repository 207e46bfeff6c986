-- meterledger schema version 1: meters, channels, batches, readings and their versions,
-- quarantine, and the append-only audit chain.
CREATE TABLE meters (
    meter_id    TEXT PRIMARY KEY,
    service     TEXT NOT NULL CHECK (service IN ('electric', 'water', 'gas')),
    unit        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    account     TEXT,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'retired')),
    capacity    INTEGER NOT NULL,          -- physical ceiling, base milli-units per hour
    created_at  TEXT NOT NULL
);

CREATE TABLE channels (
    channel_id  INTEGER PRIMARY KEY,
    meter_id    TEXT NOT NULL REFERENCES meters (meter_id),
    obis        TEXT NOT NULL,
    base_unit   TEXT NOT NULL,
    allows_negative INTEGER NOT NULL DEFAULT 0,
    UNIQUE (meter_id, obis)
);

CREATE TABLE batches (
    batch_id    INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    format      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    records     INTEGER NOT NULL DEFAULT 0,
    accepted    INTEGER NOT NULL DEFAULT 0,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    superseded  INTEGER NOT NULL DEFAULT 0,
    ignored     INTEGER NOT NULL DEFAULT 0,
    conflicts   INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    audit_seq   INTEGER
);

-- The billing view: one current value per natural key (meter, channel, interval_end);
-- channel_id stands for (meter_id, obis). interval_end is UTC epoch seconds.
CREATE TABLE readings (
    channel_id       INTEGER NOT NULL,
    interval_end     INTEGER NOT NULL,
    interval_seconds INTEGER NOT NULL,
    value            INTEGER NOT NULL,     -- milli-units of the channel's base unit
    quality          INTEGER NOT NULL,     -- core.reading.Quality flags
    batch_id         INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    PRIMARY KEY (channel_id, interval_end)
) WITHOUT ROWID;

-- Every version that is not the current one: superseded values, revisions held for
-- review, estimates that arrived behind an actual.
CREATE TABLE reading_versions (
    channel_id       INTEGER NOT NULL,
    interval_end     INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    interval_seconds INTEGER NOT NULL,
    value            INTEGER NOT NULL,
    quality          INTEGER NOT NULL,
    batch_id         INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('superseded', 'pending_review', 'ignored')),
    reason           TEXT,
    PRIMARY KEY (channel_id, interval_end, version)
) WITHOUT ROWID;
CREATE INDEX reading_versions_batch ON reading_versions (batch_id);

CREATE TABLE quarantine (
    q_id          INTEGER PRIMARY KEY,
    record_key    TEXT NOT NULL UNIQUE,   -- sha256 of format + raw payload (or reading key)
    batch_id      INTEGER NOT NULL,
    source        TEXT NOT NULL,
    format        TEXT NOT NULL,
    record_no     INTEGER,
    meter_id      TEXT,
    channel       TEXT,
    interval_end  TEXT,
    reasons       TEXT NOT NULL,          -- comma-separated reason codes
    detail        TEXT NOT NULL,
    raw           TEXT NOT NULL,
    fields        TEXT NOT NULL,          -- JSON object of the record's fields as text
    status        TEXT NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'released', 'replayed')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    note          TEXT
);
CREATE INDEX quarantine_batch ON quarantine (batch_id);

CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY,
    recorded_at  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    payload      TEXT NOT NULL,           -- canonical JSON
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
