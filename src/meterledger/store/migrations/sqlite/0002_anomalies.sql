-- meterledger schema version 2: the anomaly ledger (filled by VEE), quarantine look-ups and
-- a registry version counter, and strict appends to the audit chain.
CREATE TABLE anomalies (
    anomaly_id   INTEGER PRIMARY KEY,
    channel_id   INTEGER NOT NULL REFERENCES channels (channel_id),
    interval_end INTEGER NOT NULL,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('warn', 'fail')),
    detail       TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'released', 'edited')),
    created_at   TEXT NOT NULL,
    resolved_at  TEXT,
    UNIQUE (channel_id, interval_end, rule)
);
CREATE INDEX anomalies_open ON anomalies (status, channel_id, interval_end);
CREATE INDEX quarantine_status ON quarantine (status, reasons);

-- A counter bumped on every change to meters or channels: writers that validated a batch
-- against a snapshot of the registry compare it inside their transaction.
CREATE TABLE registry_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO registry_version VALUES (1, 0);
CREATE TRIGGER meters_version_ins AFTER INSERT ON meters
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER meters_version_upd AFTER UPDATE ON meters
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER meters_version_del AFTER DELETE ON meters
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER channels_version_ins AFTER INSERT ON channels
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER channels_version_upd AFTER UPDATE ON channels
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER channels_version_del AFTER DELETE ON channels
BEGIN UPDATE registry_version SET version = version + 1; END;

-- REPLACE resolves a key conflict by deleting the old row without firing DELETE triggers,
-- so an append-only table also needs this: a new entry must be exactly the next one.
CREATE TRIGGER audit_log_append_only BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_log)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: an entry must follow the last one');
END;
