-- meterledger schema version 2: the anomaly ledger (filled by VEE) and quarantine look-ups.
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
