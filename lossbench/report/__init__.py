"""The HTML report (``build_report``) and the check that its folder may be written (``prepare_reports``).

Both are loaded on first use, so that importing a light part of the report (``runsvg``, ``pages``) does not load
the plotting libraries.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report", "prepare_reports"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lossbench.report import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'lossbench.report' has no attribute {name!r}")
