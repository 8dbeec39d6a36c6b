"""Tests of resilient_pipeline.validation."""
