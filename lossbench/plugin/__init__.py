"""The plugin system: the kinds of plugin object, their registry, loading and provenance."""
