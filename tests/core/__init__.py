"""Tests of the _core layer and the exceptions: events, deadlines, redaction, testing helpers."""
