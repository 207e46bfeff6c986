-- meterledger schema version 4 (PostgreSQL): what the head-end keeps per meter, as in the
-- SQLite version 4 (invocation counters reserved in blocks and never reused; clock reads).
CREATE TABLE dlms_counters (
    meter_id      text PRIMARY KEY REFERENCES meters (meter_id),
    reserved_upto bigint NOT NULL CHECK (reserved_upto >= 0),
    server_last   bigint NOT NULL DEFAULT 0 CHECK (server_last >= 0),
    updated_at    text NOT NULL
);

CREATE TABLE clock_reads (
    meter_id   text NOT NULL REFERENCES meters (meter_id),
    read_at    bigint NOT NULL,
    meter_time bigint NOT NULL,
    drift_ms   bigint NOT NULL,
    PRIMARY KEY (meter_id, read_at)
);

GRANT SELECT ON dlms_counters, clock_reads TO meterledger_reader;
