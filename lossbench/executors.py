"""Where runs execute: in the driver (serial) or in local worker processes. Results always come back to the
driver, which alone writes the store."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Callable, Iterator, Sequence

import torch

from lossbench.grid import RunSpec
from lossbench.plugins import Environment, PluginConfig, load_environment
from lossbench.train import ProgressCallback, RunResult, run_safely

EXECUTORS = ("local", "ray")


def run_serial(specs: Sequence[RunSpec], env: Environment, progress: ProgressCallback | None = None) -> Iterator[RunResult]:
    """Each run in turn in this process, reporting the current run's step through ``progress``."""
    for spec in specs:
        yield run_safely(spec, env.catalog, progress)


_WORKER_ENV: Environment | None = None


def _init_worker(config: PluginConfig, threads: int, environ: dict[str, str]) -> None:
    global _WORKER_ENV
    os.environ.update(environ)
    torch.set_num_threads(threads)
    _WORKER_ENV = load_environment(config)


def _run_in_worker(spec: RunSpec) -> RunResult:
    assert _WORKER_ENV is not None, "worker was not initialised"
    return run_safely(spec, _WORKER_ENV.catalog)


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of ``workers`` processes: the cores shared out, at least one each."""
    return max(1, (os.cpu_count() or 1) // workers)


def forwarded_environment() -> dict[str, str]:
    """The LOSSBENCH_* variables a worker must see as the driver does."""
    return {key: value for key, value in os.environ.items() if key.startswith("LOSSBENCH_")}


def run_processes(specs: Sequence[RunSpec], config: PluginConfig, workers: int) -> Iterator[RunResult]:
    """Runs spread over ``workers`` fresh processes (spawned, so CUDA and threads start clean); yields results as
    they finish. A worker that dies takes only its run with it: that run comes back as failed."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker,
        initargs=(config, threads_per_worker(workers), forwarded_environment()),
    ) as pool:
        futures = {pool.submit(_run_in_worker, spec): spec for spec in specs}
        try:
            for future in concurrent.futures.as_completed(futures):
                spec = futures[future]
                try:
                    yield future.result()
                except concurrent.futures.process.BrokenProcessPool as exc:
                    yield RunResult(spec=spec, status="failed", reason=f"worker process died: {exc}")
                except Exception as exc:  # run_safely catches run errors; this is transport (pickling) trouble
                    yield RunResult(spec=spec, status="failed", reason=f"{type(exc).__name__}: {exc}")
        finally:
            for future in futures:
                future.cancel()


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
    """Dispatch to the chosen executor; every executor yields RunResults in the driver."""
    if executor == "ray":
        from lossbench.ray_executor import run_ray

        return run_ray(specs, config, **options)
    if workers > 1 and len(specs) > 1:
        return run_processes(specs, config, min(workers, len(specs)))
    return run_serial(specs, env, progress)


ResultHandler = Callable[[RunResult], None]
