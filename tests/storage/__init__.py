"""Tests of resilient_pipeline.storage."""
