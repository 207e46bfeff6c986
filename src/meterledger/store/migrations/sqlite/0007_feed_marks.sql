-- meterledger schema version 7: where each feed got to, and the files already taken in.
-- feed_marks: the high-water mark of a polled feed (a vendor API's last reading time or
-- cursor), written in the same transaction as the readings it covers, so a restarted
-- poller neither skips nor repeats (docs/vendor.md).
CREATE TABLE feed_marks (
    feed       TEXT PRIMARY KEY,
    mark       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- received_files: each file a file drop or SFTP pull took in, by the SHA-256 of its bytes,
-- so the same file is never ingested twice; moved_to is where it was moved afterwards.
CREATE TABLE received_files (
    sha256      TEXT PRIMARY KEY,
    feed        TEXT NOT NULL,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    batch_count INTEGER NOT NULL CHECK (batch_count >= 0),
    received_at TEXT NOT NULL,
    moved_to    TEXT
);
CREATE INDEX received_files_feed ON received_files (feed, received_at);
