"""Where the user's on-disk datasets live: one environment variable, set by ``--data-root`` (torch-free)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "LOSSBENCH_DATA"


def data_root() -> Path | None:
    """The user's data folder for on-disk datasets (``--data-root`` sets ``$LOSSBENCH_DATA``)."""
    value = os.environ.get(DATA_ROOT_ENV)
    return Path(value) if value else None
