"""Tests of resilient_pipeline.alerting."""
