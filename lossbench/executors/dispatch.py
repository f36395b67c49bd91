"""Dispatch a plan's runs to the chosen executor (this process, local workers, or Ray)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

from lossbench.executors.local import run_processes, run_serial
from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import Environment, PluginConfig
from lossbench.records import RunResult
from lossbench.training import stacked
from lossbench.training.train import ProgressCallback


def execute(
    specs: Sequence[RunSpec],
    env: Environment,
    config: PluginConfig,
    *,
    executor: str = "local",
    workers: int = 1,
    progress: ProgressCallback | None = None,
    **options: object,
) -> Iterator[RunResult]:
    """Dispatch to the chosen executor; every executor yields RunResults in the driver, as they finish.

    With ``executor="ray"``, ``workers`` > 1 is the number of CPUs of a local Ray (ignored with an address).
    """
    if executor == "ray":
        from lossbench.executors.ray import run_ray

        if stacked.enabled():
            print("--vectorise: not available with --executor ray yet; each run trains alone in its task",
                  file=sys.stderr)
        if workers > 1:
            options.setdefault("num_cpus", workers)
        return run_ray(specs, config, progress=progress, **options)  # type: ignore[arg-type]
    if stacked.enabled():  # one process trains the groups: its K members fill the cores that workers would
        if workers > 1:
            print(f"--vectorise: the {len(specs)} runs train as stacked groups in this process (--workers {workers} "
                  "does not apply)", file=sys.stderr)
        return run_serial(specs, env, progress)
    if workers > 1 and len(specs) > 1:
        return run_processes(specs, config, min(workers, len(specs)), progress)
    return run_serial(specs, env, progress)
