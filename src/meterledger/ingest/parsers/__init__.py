"""Parsers: each turns a source format into the raw record frame."""
