"""Tests of resilient_pipeline.limits."""
