"""Non-test modules the tests import or run in other processes (workers, fake servers)."""
