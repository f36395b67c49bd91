"""Environment variables set for the duration of one command: how the CLI's choices reach worker processes and Ray
tasks (``LOSSBENCH_*`` variables are forwarded to them) without outliving the command that made them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def scoped(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set each variable to its value (None: unset it) while the block runs, then put back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        _apply(values)
        yield
    finally:
        _apply(saved)


def _apply(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
