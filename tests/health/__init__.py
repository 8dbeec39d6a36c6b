"""Tests of resilient_pipeline.health."""
