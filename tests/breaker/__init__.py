"""Tests of resilient_pipeline.breaker."""
