"""Simulated meters and feeds: load shapes, a meter fleet and the files its head-end drops.

The simulators stand in for the field so that the demo and the tests exercise the real
ingest path with realistic, reproducible data. Everything here is deterministic from a seed
and reads no clock; importing the package does nothing.
"""
