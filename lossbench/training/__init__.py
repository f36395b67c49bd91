"""Training one run (or one stacked group of runs) from its spec to a result."""
