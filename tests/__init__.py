"""The test suite: one folder per package of resilient_pipeline, mirroring src/."""
