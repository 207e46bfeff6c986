-- meterledger schema version 7 (PostgreSQL): feed high-water marks and received files, as
-- in the SQLite version 7.
CREATE TABLE feed_marks (
    feed       text PRIMARY KEY,
    mark       text NOT NULL,
    updated_at text NOT NULL
);

CREATE TABLE received_files (
    sha256      text PRIMARY KEY,
    feed        text NOT NULL,
    name        text NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    batch_count bigint NOT NULL CHECK (batch_count >= 0),
    received_at text NOT NULL,
    moved_to    text
);
CREATE INDEX received_files_feed ON received_files (feed, received_at);

GRANT SELECT ON feed_marks, received_files TO meterledger_reader;
