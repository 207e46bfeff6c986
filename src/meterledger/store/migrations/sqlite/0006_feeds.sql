-- meterledger schema version 6: resilience of the feeds (docs/resilience.md).
-- dead_letters: a delivery that still failed after its retries, kept with the bytes as
-- received and the last error, so nothing is lost; `meterledger deadletters replay` runs the
-- payload through ingest (idempotency keys make a replay take effect once).
CREATE TABLE dead_letters (
    dead_letter_id  INTEGER PRIMARY KEY,
    feed            TEXT NOT NULL,
    source          TEXT NOT NULL,
    payload         BLOB NOT NULL,
    format          TEXT NOT NULL,
    error           TEXT NOT NULL,
    attempts        INTEGER NOT NULL CHECK (attempts >= 1),
    first_failed_at TEXT NOT NULL,
    last_failed_at  TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'replayed', 'discarded')),
    replayed_batch  INTEGER
);
CREATE INDEX dead_letters_open ON dead_letters (feed, dead_letter_id) WHERE status = 'open';

-- feed_state: an operator's emergency pause of one feed, or of all ingestion (feed '*').
CREATE TABLE feed_state (
    feed       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL CHECK (paused IN (0, 1)),
    reason     TEXT,
    updated_at TEXT NOT NULL
);

-- breaker_state: the last snapshot of each endpoint's circuit breaker, written by a
-- collector at the end of its run, for `meterledger status`.
CREATE TABLE breaker_state (
    endpoint        TEXT PRIMARY KEY,
    state           TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half-open')),
    failure_rate    REAL NOT NULL,
    calls_in_window INTEGER NOT NULL,
    opened          INTEGER NOT NULL DEFAULT 0,
    opened_at       TEXT,
    updated_at      TEXT NOT NULL
);
