-- meterledger schema version 8: when an open circuit breaker half-opens.
-- retry_at (ISO-8601 UTC) is saved with an open breaker's snapshot, so `meterledger status`
-- can tell a circuit that still holds its feed from one whose cool-down has ended, even
-- when the collector that saved it was killed and never saved it again. Null for the
-- snapshots of the other states, and for those saved before this version.
ALTER TABLE breaker_state ADD COLUMN retry_at TEXT;
