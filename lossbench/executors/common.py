"""What every executor shares: the driver's polling pace, portable plugin configs, forwarded variables, throttled
progress, the record of a run that never came back, and the unit of work (a run, or a stacked group)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import PluginConfig
from lossbench.records import RunResult

EXECUTORS = ("local", "ray")
POLL_SECONDS = 0.2  # how often the driver looks for finished runs and progress messages
PROGRESS_SECONDS = 0.25  # a worker reports a run's step at most this often (its first and last always)
FORWARDED_VARIABLES = ("CUBLAS_WORKSPACE_CONFIG",)


def portable_config(config: PluginConfig) -> PluginConfig:
    """``config`` with what the driver resolved from its own cwd and environment made explicit (an absolute
    plugins folder, the blocked plugin names), so that a worker elsewhere loads the same plugins."""
    folder = config.resolved_plugins_dir()
    return dataclasses.replace(
        config,
        plugins_dir=None if folder is None else folder.resolve(),
        disabled=frozenset(config.blocked()),
    )


def resolve_workers(value: str, device: str) -> int:
    """``--workers``: a positive number, or ``auto``: one per CPU core for CPU runs (runs use one thread each, and
    small models gain more from runs side by side than from threads), one for a GPU."""
    from lossbench.plan.grid import parse_positive_int
    from lossbench.training.train import resolve_device

    if value.strip().lower() == "auto":
        return (os.cpu_count() or 1) if resolve_device(device).type == "cpu" else 1
    return parse_positive_int(value, "--workers (or auto)")


def forwarded_environment() -> dict[str, str]:
    """The variables a worker must see as the driver does: LOSSBENCH_* (data root, cache, run threads) and a
    user-chosen CUBLAS_WORKSPACE_CONFIG."""
    return {
        key: value for key, value in os.environ.items() if key.startswith("LOSSBENCH_") or key in FORWARDED_VARIABLES
    }


def failed(spec: RunSpec, reason: str) -> RunResult:
    """A run that did not come back from its worker, recorded with why."""
    return RunResult(spec=spec, status="failed", reason=reason)


class ThrottledProgress:
    """A worker's progress callback: forwards (run_id, step) through ``send`` at most every ``interval`` seconds
    per run, so that reporting costs the training loop nothing noticeable."""

    def __init__(self, send: Callable[[str, int], None], interval: float = PROGRESS_SECONDS) -> None:
        self.send = send
        self.interval = interval
        self.last: dict[str, float] = {}

    def __call__(self, spec: RunSpec, step: int) -> None:
        now = time.monotonic()
        if now - self.last.get(spec.run_id, -self.interval) >= self.interval or step >= spec.steps:
            self.last[spec.run_id] = now
            self.send(spec.run_id, step)


def warm_up() -> None:
    """Pay once per process, before any run starts its clock, the imports torch defers to the first optimizer
    (torch._dynamo: seconds), so that a process's first run is not timed slower than the others."""
    import torch._dynamo  # noqa: F401


@dataclass(frozen=True)
class Task:
    """What one worker call trains: one run (``train.run_safely``), or a group trained stacked."""

    specs: tuple[RunSpec, ...]
    stacked: bool = False
