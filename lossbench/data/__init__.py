"""Data on disk: reading dataset files and fetching them on request."""
