"""Validation, estimation and editing of interval data (VEE)."""
