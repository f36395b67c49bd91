"""Whole jobs the CLI starts: a grid run, rescoring, progress lines."""
