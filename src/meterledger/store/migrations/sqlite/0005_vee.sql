-- meterledger schema version 5: VEE (validation, estimation, editing).
-- meters.meter_class picks the VEE rule settings of the meter (see vee/config).
ALTER TABLE meters ADD COLUMN meter_class TEXT NOT NULL DEFAULT 'default';

-- The anomaly ledger gains the status 'cleared' (an open finding that a later run over the
-- same data no longer raises; kept, and reopened if it is raised again), the reading's value
-- when found (NULL for a gap), the reviewer's note and the audit entry of the decision.
-- SQLite cannot change a CHECK in place: the table is rebuilt, its rows kept as they were.
CREATE TABLE anomalies_v5 (
    anomaly_id   INTEGER PRIMARY KEY,
    channel_id   INTEGER NOT NULL REFERENCES channels (channel_id),
    interval_end INTEGER NOT NULL,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('warn', 'fail')),
    detail       TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'released', 'edited', 'cleared')),
    created_at   TEXT NOT NULL,
    resolved_at  TEXT,
    note         TEXT,
    value        INTEGER,
    audit_seq    INTEGER,
    UNIQUE (channel_id, interval_end, rule)
);
INSERT INTO anomalies_v5 (anomaly_id, channel_id, interval_end, rule, severity, detail, status,
                          created_at, resolved_at)
    SELECT anomaly_id, channel_id, interval_end, rule, severity, detail, status, created_at,
           resolved_at FROM anomalies;
DROP TABLE anomalies;
ALTER TABLE anomalies_v5 RENAME TO anomalies;
CREATE INDEX anomalies_open ON anomalies (status, channel_id, interval_end);
CREATE INDEX anomalies_status_rule ON anomalies (status, rule, anomaly_id);
-- what billing leaves out: the open findings of severity fail
CREATE INDEX anomalies_held ON anomalies (interval_end, channel_id)
    WHERE status = 'open' AND severity = 'fail';

-- Findings are never deleted, and a person's decision (released, edited) is final.
CREATE TRIGGER anomalies_no_delete BEFORE DELETE ON anomalies
BEGIN
    SELECT RAISE(ABORT, 'anomalies are kept: DELETE refused');
END;
CREATE TRIGGER anomalies_decided_final BEFORE UPDATE ON anomalies
WHEN OLD.status IN ('released', 'edited')
BEGIN
    SELECT RAISE(ABORT, 'anomalies: a released or edited finding is final, UPDATE refused');
END;

-- Cumulative register values (milli-units) read at read_at (UTC epoch seconds), for the sum
-- check and estimation scaled to the register delta. Append-only, like readings: the same
-- read twice is one row, a different value for the same read is refused by the store.
CREATE TABLE register_reads (
    channel_id INTEGER NOT NULL REFERENCES channels (channel_id),
    read_at    INTEGER NOT NULL,
    value      INTEGER NOT NULL,
    source     TEXT NOT NULL,
    batch_id   INTEGER,
    PRIMARY KEY (channel_id, read_at)
) WITHOUT ROWID;

CREATE TRIGGER register_reads_no_update BEFORE UPDATE ON register_reads
BEGIN
    SELECT RAISE(ABORT, 'register_reads is append-only: UPDATE refused');
END;
CREATE TRIGGER register_reads_no_delete BEFORE DELETE ON register_reads
BEGIN
    SELECT RAISE(ABORT, 'register_reads is append-only: DELETE refused');
END;
-- REPLACE resolves a key conflict by deleting the old row without firing DELETE triggers
CREATE TRIGGER register_reads_no_replace BEFORE INSERT ON register_reads
WHEN EXISTS (SELECT 1 FROM register_reads WHERE channel_id = NEW.channel_id
             AND read_at = NEW.read_at)
BEGIN
    SELECT RAISE(ABORT, 'register_reads is append-only: INSERT over a stored read refused');
END;

-- Which channels and interval ends each batch wrote (current rows or other versions), kept
-- by the store as it writes: VEE checks a batch's spans without scanning readings, which
-- have no index by batch. Existing rows are entered here once.
CREATE TABLE batch_spans (
    batch_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    lo         INTEGER NOT NULL,   -- first interval_end written
    hi         INTEGER NOT NULL    -- last interval_end written
);
CREATE INDEX batch_spans_batch ON batch_spans (batch_id, channel_id);
INSERT INTO batch_spans (batch_id, channel_id, lo, hi)
    SELECT batch_id, channel_id, min(interval_end), max(interval_end)
    FROM (SELECT batch_id, channel_id, interval_end FROM readings
          UNION ALL SELECT batch_id, channel_id, interval_end FROM reading_versions)
    GROUP BY batch_id, channel_id;

-- When VEE last checked a batch's data; NULL: not yet (the ingest checks each batch after
-- it commits, and finds those a crash left unchecked by this). Batches stored before this
-- version count as checked at the upgrade: VEE holds intervals out of billing, and data
-- already billed is checked on purpose, with `meterledger vee run --from --to`.
ALTER TABLE batches ADD COLUMN vee_at TEXT;
UPDATE batches SET vee_at = strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now');
CREATE INDEX batches_vee_pending ON batches (batch_id) WHERE vee_at IS NULL;
