"""Results: the store of runs and the tables, tests and verdicts computed from it (no torch)."""
