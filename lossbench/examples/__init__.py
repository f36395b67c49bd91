"""Plugin examples shipped with lossbench. Not loaded by default: copy one into ``./plugins/`` to use it."""
