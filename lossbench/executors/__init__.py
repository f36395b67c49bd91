"""Executors: where runs train (this process, worker processes, Ray)."""
