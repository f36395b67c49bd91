"""The plugin author's kit: conformance checks, smoke runs, scaffolding and generated docs."""
