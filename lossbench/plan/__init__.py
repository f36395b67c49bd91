"""Planning a grid: run specs and the paired seeds they derive."""
