"""Tests of resilient_pipeline.flags."""
