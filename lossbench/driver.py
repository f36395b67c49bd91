"""The driver of a grid: plan, skip what is stored, execute, commit each result as it arrives, export.

Only the driver writes the store, one transaction per finished run, so a crash or Ctrl-C loses at most the runs
in flight and ``--resume`` continues where it stopped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from lossbench import seeding
from lossbench.executors import execute
from lossbench.grid import GridPlan, RunSpec, expand
from lossbench.plugins import Environment, PluginConfig, notify_run_finished
from lossbench.store import Store, export
from lossbench.tables import directions, pairwise_table, summarise
from lossbench.train import ProgressCallback, RunResult, resolve_device


@dataclass
class GridOptions:
    """What ``lossbench run`` was asked to do (the CLI's flags, parsed)."""

    losses: Sequence[str] = ()
    models: Sequence[str] = ()
    datasets: Sequence[str] = ()
    seeds: Sequence[int] | None = None
    preset: str = "quick"
    steps: int | None = None
    device: str = "auto"
    executor: str = "local"
    workers: int = 1
    results: Path = Path("results")
    resume: bool = True
    retry_failed: bool = False
    data_root: Path | None = None
    executor_options: dict = field(default_factory=dict)
    comparisons: str = "reference"  # paired-comparison family of pairwise.csv: "reference" or "all"
    reference: str | None = None  # reference loss (default: nonsaturating for GANs, vae for VAEs)


@dataclass
class GridOutcome:
    plan: GridPlan
    trained: list[RunResult]
    resumed: int
    exported: list[Path]

    @property
    def counts(self) -> Counter:
        return Counter(result.status for result in self.trained)


class GridListener:
    """Callbacks the CLI uses to show progress; the defaults do nothing (library use, tests)."""

    def planned(self, plan: GridPlan, todo: list[RunSpec], resumed: int) -> None: ...
    def step(self, spec: RunSpec, step: int) -> None: ...
    def finished(self, result: RunResult) -> None: ...


def plan_grid(env: Environment, options: GridOptions) -> GridPlan:
    if options.executor == "ray":  # a Ray cluster's GPUs decide, not the driver's
        from lossbench.ray_executor import cluster_device

        device_name = cluster_device(options.device, **options.executor_options)
    else:
        device = resolve_device(options.device)
        device_name = str(device) if options.device != "auto" or device.type != "cpu" else "cpu"
    return expand(
        env.catalog, losses=options.losses, models=options.models, datasets=options.datasets, seeds=options.seeds,
        preset=options.preset, steps=options.steps, device=device_name, data_root=options.data_root,
    )


def export_all(store: Store, results: Path, metrics: Sequence[object] = (), comparisons: str = "reference",
               reference: str | None = None) -> list[Path]:
    """runs/history/curves/summary/pairwise as CSV and Parquet in ``results``.

    ``metrics`` (the registered metric objects) declare the directions that ranks and tests follow.
    """
    wide = store.runs_wide()
    known = directions(wide, metrics)
    return export(store, results, [("summary", summarise(wide, known)),
                                   ("pairwise", pairwise_table(wide, comparisons=comparisons, reference=reference,
                                                               known=known))])


def run_grid(env: Environment, config: PluginConfig, options: GridOptions,
             listener: GridListener | None = None) -> GridOutcome:
    """Train every planned run not yet stored, committing each as it finishes; then export the tables."""
    listener = listener or GridListener()
    seeding.prepare_process()  # before anything in this process may touch CUDA
    seeding.run_threads()  # a bad $LOSSBENCH_RUN_THREADS is one usage error here, not a failure of every run
    plan = plan_grid(env, options)
    with Store.open(options.results) as store:
        stored = store.finished_ids() if options.resume else set()
        if options.retry_failed:
            stored -= store.failed_ids()
        todo = [spec for spec in plan.specs if spec.run_id not in stored]
        resumed = len(plan.specs) - len(todo)
        listener.planned(plan, todo, resumed)
        trained: list[RunResult] = []
        progress: ProgressCallback = listener.step
        results = execute(todo, env, config, executor=options.executor, workers=options.workers,
                          progress=progress, **options.executor_options)
        try:
            for result in results:
                store.commit(result)
                trained.append(result)
                listener.finished(result)
                notify_run_finished(env.plugins, run_record(result))
        finally:  # stop workers / Ray tasks still in flight at once (Ctrl-C, an error while committing)
            getattr(results, "close", lambda: None)()
        metrics = [env.catalog.metrics.get(name) for name in env.catalog.metrics.names()]
        exported = export_all(store, options.results, metrics, options.comparisons, options.reference)
    return GridOutcome(plan, trained, resumed, exported)


def run_record(result: RunResult) -> dict:
    """The dict handed to ``run_finished`` hooks."""
    spec = result.spec
    return {
        "run_id": result.run_id, "loss": spec.loss, "model": spec.model, "dataset": spec.dataset, "seed": spec.seed,
        "spec": spec.to_dict(), "status": result.status, "reason": result.reason, "failed_step": result.failed_step,
        "metrics": dict(result.metrics), "texts": dict(result.texts), "history": result.history,
        "train_seconds": result.train_seconds, "eval_seconds": result.eval_seconds,
    }


Callback = Callable[[RunResult], None]
