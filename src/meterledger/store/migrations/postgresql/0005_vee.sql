-- meterledger schema version 5 (PostgreSQL): VEE, as in the SQLite version 5.
-- meters.meter_class picks the VEE rule settings of the meter (see vee/config).
ALTER TABLE meters ADD COLUMN meter_class text NOT NULL DEFAULT 'default';

-- The anomaly ledger gains the status 'cleared' (an open finding that a later run over the
-- same data no longer raises; kept, and reopened if it is raised again), the reading's value
-- when found (NULL for a gap), the reviewer's note and the audit entry of the decision.
ALTER TABLE anomalies DROP CONSTRAINT anomalies_status_check;
ALTER TABLE anomalies ADD CONSTRAINT anomalies_status_check
    CHECK (status IN ('open', 'released', 'edited', 'cleared'));
ALTER TABLE anomalies ADD COLUMN note text;
ALTER TABLE anomalies ADD COLUMN value bigint;
ALTER TABLE anomalies ADD COLUMN audit_seq bigint;
CREATE INDEX anomalies_status_rule ON anomalies (status, rule, anomaly_id);
-- what billing leaves out: the open findings of severity fail
CREATE INDEX anomalies_held ON anomalies (interval_end, channel_id)
    WHERE status = 'open' AND severity = 'fail';

-- Findings are never deleted, and a person's decision (released, edited) is final
-- (billing_refuse is migration 3's guard).
CREATE TRIGGER anomalies_no_delete BEFORE DELETE ON anomalies
    FOR EACH ROW EXECUTE FUNCTION billing_refuse('anomalies are kept');
CREATE TRIGGER anomalies_no_truncate BEFORE TRUNCATE ON anomalies
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse('anomalies are kept');
CREATE TRIGGER anomalies_decided_final BEFORE UPDATE ON anomalies
    FOR EACH ROW WHEN (OLD.status IN ('released', 'edited'))
    EXECUTE FUNCTION billing_refuse('anomalies: a released or edited finding is final');

-- Cumulative register values (milli-units) read at read_at (UTC epoch seconds), for the sum
-- check and estimation scaled to the register delta. Append-only, like readings.
CREATE TABLE register_reads (
    channel_id bigint NOT NULL REFERENCES channels (channel_id),
    read_at    bigint NOT NULL,
    value      bigint NOT NULL,
    source     text NOT NULL,
    batch_id   bigint,
    PRIMARY KEY (channel_id, read_at)
);
CREATE TRIGGER register_reads_no_change BEFORE UPDATE OR DELETE ON register_reads
    FOR EACH ROW EXECUTE FUNCTION billing_refuse('register_reads is append-only');
CREATE TRIGGER register_reads_no_truncate BEFORE TRUNCATE ON register_reads
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse('register_reads is append-only');
REVOKE UPDATE, DELETE, TRUNCATE ON register_reads FROM PUBLIC;

-- Which channels and interval ends each batch wrote (current rows or other versions), kept
-- by the store as it writes: VEE checks a batch's spans without scanning readings, which
-- have no index by batch. Existing rows are entered here once.
CREATE TABLE batch_spans (
    batch_id   bigint NOT NULL,
    channel_id bigint NOT NULL,
    lo         bigint NOT NULL,   -- first interval_end written
    hi         bigint NOT NULL    -- last interval_end written
);
CREATE INDEX batch_spans_batch ON batch_spans (batch_id, channel_id);
INSERT INTO batch_spans (batch_id, channel_id, lo, hi)
    SELECT batch_id, channel_id, min(interval_end), max(interval_end)
    FROM (SELECT batch_id, channel_id, interval_end FROM readings
          UNION ALL SELECT batch_id, channel_id, interval_end FROM reading_versions) AS w
    GROUP BY batch_id, channel_id;

-- When VEE last checked a batch's data; NULL: not yet. Batches stored before this version
-- count as checked at the upgrade (see the SQLite migration).
ALTER TABLE batches ADD COLUMN vee_at text;
UPDATE batches SET vee_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"');
CREATE INDEX batches_vee_pending ON batches (batch_id) WHERE vee_at IS NULL;

GRANT SELECT ON register_reads, batch_spans TO meterledger_reader;
