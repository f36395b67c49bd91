"""Live logging while runs train: the ``run_logged`` hook's batches and the built-in loggers ``--log`` turns on.

The hook is called in the process that trains a run (so it works the same with workers and Ray), batched on
the run's own schedule: at each light evaluation and when the run ends, never per step. The choice of built-in
loggers and their folder travel to workers as ``LOSSBENCH_*`` variables, like the data root.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from lossbench.environ import scoped
from lossbench.errors import LossbenchError, UsageError

LOG_ENV = "LOSSBENCH_LOG"  # comma-separated built-in loggers chosen with --log
LOG_DIR_ENV = "LOSSBENCH_LOG_DIR"
DEFAULT_LOG_DIR = Path("runs")  # TensorBoard's and PyTorch's habit
BUILTIN_LOGGERS = {"tensorboard": "lossbench.builtin.loggers"}  # name -> the built-in plugin implementing it
EXTRAS = {"tensorboard": "tensorboard"}  # name -> the package it needs (pip install "lossbench[NAME]")

LiveCallback = Callable[[dict[str, Any]], None]


def chosen() -> list[str]:
    """The built-in loggers turned on for this process (``--log``, forwarded to workers)."""
    return [name for name in os.environ.get(LOG_ENV, "").split(",") if name]


def log_dir() -> Path:
    return Path(os.environ.get(LOG_DIR_ENV) or DEFAULT_LOG_DIR)


@contextlib.contextmanager
def choose(names: tuple[str, ...] | list[str], folder: Path | None) -> Iterator[None]:
    """Turn on built-in loggers for this process and its workers while the block runs; one clear error for an
    unknown name or a logger whose package is missing."""
    from lossbench.plugin.registry import unknown_name_message

    for name in names:
        if name not in BUILTIN_LOGGERS:
            raise UsageError(unknown_name_message("--log logger", name, list(BUILTIN_LOGGERS)))
        package = EXTRAS.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise LossbenchError(f'--log {name} needs the {package} package: pip install "lossbench[{name}]"')
    chosen = {LOG_ENV: ",".join(dict.fromkeys(names)), LOG_DIR_ENV: str((folder or DEFAULT_LOG_DIR).resolve())}
    with scoped(chosen if names else {}):
        yield


def run_folder(label: str, run_id: str) -> str:
    """One folder per run, named by its label and run_id (``ring8_mlp_hinge_seed0-1a2b3c...``)."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label).strip('_')}-{run_id}"


def hook_caller(manager: Any) -> LiveCallback | None:
    """A callback that hands a batch to every ``run_logged`` implementation, or None when nothing listens (the
    built-in loggers count only when chosen), so that a run without loggers builds no batch at all.

    An implementation that raises is reported once per run on stderr, with its plugin's name; the run goes on.
    """
    active = set(chosen())
    impls = [
        impl
        for impl in manager.hook.run_logged.get_hookimpls()
        if impl.plugin_name not in BUILTIN_LOGGERS.values()
        or any(BUILTIN_LOGGERS[name] == impl.plugin_name for name in active)
    ]
    if not impls:
        return None
    reported: set[tuple[str, str]] = set()

    def call(batch: dict[str, Any]) -> None:
        for impl in impls:
            try:
                impl.function(batch=batch)
            except Exception as exc:
                key = (impl.plugin_name, batch["run_id"])
                if key not in reported:
                    reported.add(key)
                    print(
                        f"warning: plugin {impl.plugin_name!r} raised in run_logged for {batch['label']}: "
                        f"{type(exc).__name__}: {exc}",
                        file=sys.stderr,
                    )

    return call


def finite_items(values: dict[str, Any]) -> list[tuple[str, float]]:
    """The finite numeric entries of a dict (a logger has no use for NaN placeholders)."""
    found = []
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            found.append((str(key), number))
    return found


def batch(
    spec: Any,
    step: int,
    history: pd.DataFrame,
    curves: pd.DataFrame,
    final: bool,
    status: str = "running",
    reason: str = "",
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The dict a ``run_logged`` implementation receives (documented in ``lossbench.hookspecs``)."""
    return {
        "run_id": spec.run_id,
        "label": spec.label,
        "spec": spec.to_dict(),
        "step": step,
        "history": history,
        "curves": curves,
        "final": final,
        "status": status,
        "reason": reason,
        "metrics": dict(metrics or {}),
    }
