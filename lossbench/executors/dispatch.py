"""Dispatch a plan's runs to the chosen executor (this process, local workers, or Ray)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from lossbench.executors.local import run_processes, run_serial
from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import Environment, PluginConfig
from lossbench.records import RunResult
from lossbench.training import stacked_plan
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
    Unless ``--no-vectorise`` (``stacked_plan.enabled``) the unit of work is a group of compatible runs trained
    stacked (every such group with ``--vectorise``, else where it pays: ``stacked_plan.pays``): a worker process
    or a Ray task trains one group at a time, and groups are cut so that every worker gets one
    (``stacked_plan.plan_groups``).
    """
    groups = None
    if stacked_plan.enabled():
        cores = workers if workers > 1 or executor != "ray" else (os.cpu_count() or 1)  # a local Ray: all cores
        auto = stacked_plan.mode() == "auto"
        groups = stacked_plan.plan_groups(specs, env.catalog, stacked_plan.group_size(), max(cores, 1), auto)
    if executor == "ray":
        from lossbench.executors.ray import run_ray

        if workers > 1:
            options.setdefault("num_cpus", workers)
        return run_ray(specs, config, progress=progress, groups=groups, **options)  # type: ignore[arg-type]
    if workers > 1 and len(groups if groups is not None else specs) > 1:
        count = len(groups if groups is not None else specs)
        return run_processes(specs, config, min(workers, count), progress, groups)
    return run_serial(specs, env, progress, groups)
