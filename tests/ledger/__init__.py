"""Tests of resilient_pipeline.ledger."""
