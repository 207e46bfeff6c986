"""Tests of meterledger.vee."""
