"""Tests of resilient_pipeline.checks."""
