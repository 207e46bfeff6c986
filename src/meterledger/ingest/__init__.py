"""The ingest pipeline: parse, validate, key, dedupe/revise, quarantine, audit, store."""
