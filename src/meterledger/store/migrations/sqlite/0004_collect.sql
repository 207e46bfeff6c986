-- meterledger schema version 4: what the head-end keeps per meter.
-- dlms_counters: DLMS invocation counters are never reused. A session reserves a block of
-- counters (reserved_upto moves first, in its own transaction) and uses only values above
-- the previous reservation; server_last is the last counter accepted from the meter, so a
-- replayed response is refused even across restarts.
CREATE TABLE dlms_counters (
    meter_id      TEXT PRIMARY KEY REFERENCES meters (meter_id),
    reserved_upto INTEGER NOT NULL CHECK (reserved_upto >= 0),
    server_last   INTEGER NOT NULL DEFAULT 0 CHECK (server_last >= 0),
    updated_at    TEXT NOT NULL
);

-- clock_reads: each read of a meter's clock, for drift checks (VEE) and clock setting.
CREATE TABLE clock_reads (
    meter_id   TEXT NOT NULL REFERENCES meters (meter_id),
    read_at    INTEGER NOT NULL,   -- head-end time, epoch milliseconds UTC
    meter_time INTEGER NOT NULL,   -- the meter's clock at that moment, epoch milliseconds
    drift_ms   INTEGER NOT NULL,   -- meter_time - read_at (positive: the meter is ahead)
    PRIMARY KEY (meter_id, read_at)
);
