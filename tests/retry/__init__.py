"""Tests of resilient_pipeline.retry."""
