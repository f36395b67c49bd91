"""The extra feature spaces a user chooses with ``--feature-space``: parsed, carried to workers, checked.

They travel in ``$LOSSBENCH_FEATURE_SPACES`` (``LOSSBENCH_*`` variables reach worker processes and Ray tasks) and
are checked against a grid before anything trains. Values computed in space ``s`` are stored under ``<metric>@<s>``
keys (``lossbench.records.space_key``), so the default space's keys never change.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from lossbench.api import Dataset, FeatureSpace
from lossbench.environ import scoped
from lossbench.errors import DataUnavailable, UnknownNameError, UsageError
from lossbench.plugin.registry import unknown_name_message

SPACES_ENV = "LOSSBENCH_FEATURE_SPACES"  # set by ``--feature-space``: comma-separated names


def parse_spaces(values: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """``("a", "b,c")`` or ``"a,b"`` -> ``("a", "b", "c")``: distinct names in order."""
    parts = [values] if isinstance(values, str) else list(values)
    names = [name.strip() for part in parts for name in part.split(",") if name.strip()]
    return tuple(dict.fromkeys(names))


@contextlib.contextmanager
def choose(names: tuple[str, ...]) -> Iterator[None]:
    """Set ``$LOSSBENCH_FEATURE_SPACES`` for the duration of a command (workers inherit it), then restore it."""
    with scoped({SPACES_ENV: ",".join(names)}):
        yield


def chosen_spaces() -> tuple[str, ...]:
    """The extra spaces of this process's runs (``$LOSSBENCH_FEATURE_SPACES``, set by ``--feature-space``)."""
    return parse_spaces(os.environ.get(SPACES_ENV, ""))


def check_spaces(
    registry: Mapping[str, FeatureSpace], names: tuple[str, ...], datasets: list[Dataset], named: bool
) -> list[str]:
    """Check the chosen spaces against a grid before anything trains; returns notes for the user.

    An unknown name or a space that cannot be built here (a missing weights file) is one error line. A space that
    cannot take a dataset is an error when the user named that dataset (``named``), else a note: the dataset's
    runs are scored in their default space only.
    """
    notes = []
    for name in names:
        if name not in registry:
            raise UnknownNameError(unknown_name_message("feature space", name, sorted(registry)))
        space = registry[name]
        missing = space.unavailable()
        if missing:
            raise DataUnavailable(f"feature space {name!r}: {missing}")
        for dataset in datasets:
            why = space.refuses(dataset.spec)
            if why and named:
                raise UsageError(f"feature space {name!r} cannot score dataset {dataset.name!r}: {why}")
            if why:
                notes.append(f"feature space {name!r} skips dataset {dataset.name!r} ({why})")
    return notes
