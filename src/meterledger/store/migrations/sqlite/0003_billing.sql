-- meterledger schema version 3: the billing tables. A tariff is immutable once stored (a
-- changed tariff is a new tariff_id, or an effective-dated version inside its document);
-- an account names the tariff it is billed on and may be re-assigned; bills are an
-- append-only ledger, where a correction is a 'cancel' row naming the bill it cancels
-- (replaces), then a 'rebill'.
CREATE TABLE tariffs (
    tariff_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('yaml', 'urdb')),
    document     TEXT NOT NULL,         -- the tariff as loaded (YAML, or URDB JSON)
    content_hash TEXT NOT NULL,
    added_at     TEXT NOT NULL
);

CREATE TRIGGER tariffs_no_update BEFORE UPDATE ON tariffs
BEGIN
    SELECT RAISE(ABORT, 'tariffs are immutable: UPDATE refused');
END;

CREATE TRIGGER tariffs_no_delete BEFORE DELETE ON tariffs
BEGIN
    SELECT RAISE(ABORT, 'tariffs are immutable: DELETE refused');
END;

-- REPLACE resolves a key conflict by deleting the old row without firing DELETE triggers
CREATE TRIGGER tariffs_no_replace BEFORE INSERT ON tariffs
WHEN EXISTS (SELECT 1 FROM tariffs WHERE tariff_id = NEW.tariff_id)
BEGIN
    SELECT RAISE(ABORT, 'tariffs are immutable: INSERT over a stored tariff refused');
END;

CREATE TABLE accounts (
    account_id   TEXT PRIMARY KEY,
    tariff_id    TEXT NOT NULL REFERENCES tariffs (tariff_id),
    timezone     TEXT NOT NULL,         -- IANA zone of the billing cycle
    cycle_day    INTEGER NOT NULL CHECK (cycle_day BETWEEN 1 AND 28),
    move_in      TEXT,                  -- local date YYYY-MM-DD
    move_out     TEXT,                  -- local date YYYY-MM-DD
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE bills (
    bill_id      INTEGER PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (account_id),
    period       TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('bill', 'cancel', 'rebill')),
    replaces     INTEGER REFERENCES bills (bill_id),
    content_hash TEXT NOT NULL,
    total        TEXT NOT NULL,         -- a Decimal as text
    document     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    audit_seq    INTEGER
);
CREATE INDEX bills_account_period ON bills (account_id, period, bill_id);
CREATE INDEX bills_replaces ON bills (replaces);

CREATE TRIGGER bills_no_update BEFORE UPDATE ON bills
BEGIN
    SELECT RAISE(ABORT, 'bills is append-only: UPDATE refused');
END;

CREATE TRIGGER bills_no_delete BEFORE DELETE ON bills
BEGIN
    SELECT RAISE(ABORT, 'bills is append-only: DELETE refused');
END;

CREATE TRIGGER bills_no_replace BEFORE INSERT ON bills
WHEN EXISTS (SELECT 1 FROM bills WHERE bill_id = NEW.bill_id)
BEGIN
    SELECT RAISE(ABORT, 'bills is append-only: INSERT over a stored bill refused');
END;
