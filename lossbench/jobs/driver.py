"""The driver of a grid: plan, skip what is stored, execute, commit each result as it arrives, export.

Only the driver writes the store, one transaction per finished run, so a crash or Ctrl-C loses at most the runs
in flight and ``--resume`` continues where it stopped.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lossbench.errors import StoreError
from lossbench.executors.dispatch import execute
from lossbench.jobs.rescore import missing_space_notes
from lossbench.plan import seeding
from lossbench.plan.grid import MAX_RUNS, GridPlan, RunSpec, expand
from lossbench.plugin import provenance
from lossbench.plugin.loader import Environment, PluginConfig, notify_run_finished
from lossbench.plugin.provenance import ProvenanceIndex
from lossbench.records import RunResult
from lossbench.results.store import Store, StoreLost, WriterLock, export
from lossbench.results.tables import directions, pairwise_table, summarise
from lossbench.scoring.chosen import check_spaces, chosen_spaces
from lossbench.scoring.spaces import catalog_spaces
from lossbench.training.train import ProgressCallback, resolve_device


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
    reuse_stale: bool = False  # keep stored runs whose code (provenance) differs from the current code
    data_root: Path | None = None
    executor_options: dict = field(default_factory=dict)
    comparisons: str = "reference"  # paired-comparison family of pairwise.csv: "reference" or "all"
    reference: str | None = None  # reference loss (default: nonsaturating for GANs, vae for VAEs)
    max_runs: int | None = MAX_RUNS  # a larger grid is refused before it is planned (None: no limit)
    wait: bool = False  # wait for another ``run`` writing to the same results folder, instead of exiting


@dataclass
class GridOutcome:
    plan: GridPlan
    trained: list[RunResult]
    resumed: int
    exported: list[Path]

    @property
    def counts(self) -> Counter:
        return Counter(result.status for result in self.trained)


class GridListener(Protocol):
    """Callbacks the CLI uses to show progress. A protocol: the CLI's display implements it without importing this
    module (lossbench.cli imports nothing heavy); a subclass inherits do-nothing defaults for what it leaves out."""

    def planned(self, plan: GridPlan, todo: list[RunSpec], resumed: int) -> None:
        return None  # not ``...``: a subclass that leaves it out does nothing, and mypy sees no abstract method

    def step(self, spec: RunSpec, step: int) -> None:
        return None

    def finished(self, result: RunResult) -> None:
        return None

    def waiting(self, holder: str) -> None:
        return None


class SilentListener(GridListener):
    """Shows nothing (library use, tests)."""


def plan_grid(env: Environment, options: GridOptions) -> GridPlan:
    if options.executor == "ray":  # a Ray cluster's GPUs decide, not the driver's
        from lossbench.executors.ray import cluster_device

        device_name = cluster_device(options.device, **options.executor_options)
    else:
        device = resolve_device(options.device)
        device_name = str(device) if options.device != "auto" or device.type != "cpu" else "cpu"
    return expand(
        env.catalog,
        losses=options.losses,
        models=options.models,
        datasets=options.datasets,
        seeds=options.seeds,
        preset=options.preset,
        steps=options.steps,
        device=device_name,
        data_root=options.data_root,
        max_runs=options.max_runs,
    )


def export_all(
    store: Store,
    results: Path,
    metrics: Sequence[object] = (),
    comparisons: str = "reference",
    reference: str | None = None,
) -> list[Path]:
    """runs/history/curves/summary/pairwise as CSV and Parquet in ``results``.

    ``metrics`` (the registered metric objects) declare the directions that ranks and tests follow.
    """
    wide = store.runs_wide()
    known = directions(wide, metrics)
    return export(
        store,
        results,
        [
            ("summary", summarise(wide, known)),
            ("pairwise", pairwise_table(wide, comparisons=comparisons, reference=reference, known=known)),
        ],
    )


def run_grid(
    env: Environment, config: PluginConfig, options: GridOptions, listener: GridListener | None = None
) -> GridOutcome:
    """Train every planned run not yet stored, committing each as it finishes; then export the tables."""
    listener = listener or SilentListener()
    seeding.prepare_process()  # before anything in this process may touch CUDA
    seeding.run_threads()  # a bad $LOSSBENCH_RUN_THREADS is one usage error here, not a failure of every run
    plan = plan_grid(env, options)
    spaces = chosen_spaces()  # --feature-space: checked against the grid before anything trains
    datasets = [env.catalog.datasets.get(name) for name in dict.fromkeys(spec.dataset for spec in plan.specs)]
    plan.notes.extend(check_spaces(catalog_spaces(env.catalog), spaces, datasets, bool(options.datasets)))
    origins = ProvenanceIndex(env)
    current = {spec.run_id: origins.of_run(spec) for spec in plan.specs}  # the code as loaded, before training
    with WriterLock(options.results).acquire(options.wait, listener.waiting), Store.open(options.results) as store:
        store.check_writable()  # a read-only or immutable store is found now, not after the first run trained
        stored = store.finished_ids() if options.resume else set()
        if options.retry_failed:
            stored -= store.failed_ids()
        stale = stale_runs(store, plan, stored, origins)
        plan.notes.extend(stale_notes(store, plan, stored, stale, origins, options.reuse_stale))
        if not options.reuse_stale:
            stored -= set(stale)
        plan.notes.extend(
            missing_space_notes(
                store, [s for s in plan.specs if s.run_id in stored], spaces, catalog_spaces(env.catalog), env.catalog
            )
        )
        todo = [spec for spec in plan.specs if spec.run_id not in stored]
        resumed = len(plan.specs) - len(todo)
        listener.planned(plan, todo, resumed)
        trained: list[RunResult] = []
        progress: ProgressCallback = listener.step
        workers = max(1, min(options.workers, len(todo)))  # never more processes than runs
        results = execute(
            todo, env, config, executor=options.executor, workers=workers, progress=progress, **options.executor_options
        )
        try:
            for result in results:
                reasons = stale.get(result.run_id)
                store.commit(
                    result, current[result.run_id], "stale: " + "; ".join(reasons) if reasons else "trained again"
                )
                trained.append(result)
                listener.finished(result)
                notify_run_finished(env.plugins, run_record(result, current[result.run_id]))
        except StoreLost as exc:
            raise StoreError(f"{exc}: the grid stopped. {_rescued(store)}") from None
        finally:  # stop workers / Ray tasks still in flight at once (Ctrl-C, an error while committing)
            getattr(results, "close", lambda: None)()
        metrics = [env.catalog.metrics.get(name) for name in env.catalog.metrics.names()]
        exported = export_all(store, options.results, metrics, options.comparisons, options.reference)
    return GridOutcome(plan, trained, resumed, exported)


def _rescued(store: Store) -> str:
    """Save what a lost store held (the connection still reads the deleted file) and say where it went."""
    try:
        count = len(store.finished_ids())
        where = store.rescue()
    except (OSError, sqlite3.Error) as exc:
        return f"Its runs could not be saved back ({exc})."
    return (
        f"The {count} runs it held were saved back to {where}; "
        "run the same command again (with that store in place) to resume."
    )


def stale_runs(store: Store, plan: GridPlan, stored: set[str], origins: ProvenanceIndex) -> dict[str, list[str]]:
    """Stored runs of the plan whose loss, model, dataset or lossbench version differ from the current code."""
    recorded = store.provenances()
    stale = {}
    for spec in plan.specs:
        if spec.run_id in stored:
            reasons = provenance.training_changes(recorded.get(spec.run_id), origins.of_run(spec))
            if reasons:
                stale[spec.run_id] = reasons
    return stale


def _runs(count: int) -> str:
    return f"{count} stored run{'s' * (count != 1)}"


def stale_notes(
    store: Store, plan: GridPlan, stored: set[str], stale: dict[str, list[str]], origins: ProvenanceIndex, reuse: bool
) -> list[str]:
    """The lines that tell the user about stored runs from other code (retrained, or kept with --reuse-stale)
    and about stored runs whose metrics are missing or changed (``lossbench rescore``)."""
    notes = []
    if stale:
        why = provenance.summarise_reasons(list(stale.values()))
        if reuse:
            notes.append(
                f"warning: {_runs(len(stale))} came from other code ({why}): kept because of "
                "--reuse-stale; their numbers are not those of the current code"
            )
        else:
            notes.append(
                f"{_runs(len(stale))} came from other code ({why}): retraining them "
                "(the old records are kept as superseded); --reuse-stale keeps them"
            )
    recorded = store.provenances()
    kept = [spec for spec in plan.specs if spec.run_id in stored and (reuse or spec.run_id not in stale)]
    rescore = [
        spec
        for spec in kept
        if spec.run_id in recorded and provenance.metric_changes(recorded[spec.run_id], origins.of_run(spec))
    ]
    if rescore:
        changes = [
            [
                f"metric {name!r}: {why}"
                for name, why in provenance.metric_changes(recorded[spec.run_id], origins.of_run(spec)).items()
            ]
            for spec in rescore
        ]
        notes.append(
            f"{_runs(len(rescore))} lack metrics or were scored by other metric code "
            f"({provenance.summarise_reasons(changes)}): `lossbench rescore` scores them without training"
        )
    return notes


def run_record(result: RunResult, code: dict | None = None) -> dict:
    """The dict handed to ``run_finished`` hooks."""
    spec = result.spec
    return {
        "run_id": result.run_id,
        "loss": spec.loss,
        "model": spec.model,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "spec": spec.to_dict(),
        "status": result.status,
        "reason": result.reason,
        "failed_step": result.failed_step,
        "metrics": dict(result.metrics),
        "texts": dict(result.texts),
        "history": result.history,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "provenance": code or {},
    }


Callback = Callable[[RunResult], None]
