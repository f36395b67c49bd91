"""One-call smoke run of a plugin in a tiny real grid: the plugin trained and scored by the real harness.

Conformance checks (``lossbench.conformance``) test an object in isolation; a smoke run proves that the harness
can find the plugin, pair it with models and datasets, train it for a few steps, score it and store the result.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Iterable, Sequence

import pandas as pd

from lossbench.conformance import ConformanceError
from lossbench.driver import GridOptions, GridOutcome, run_grid
from lossbench.plugins import Environment, PluginConfig, PluginInfo, register_plugin, build_catalog, load_plugins
from lossbench.train import RunResult


@dataclass
class SmokeResult:
    """What a smoke run trained: one ``RunResult`` per run, the store folder, and any plugin problems."""

    outcome: GridOutcome
    results_dir: Path
    problems: list[str] = field(default_factory=list)

    @property
    def runs(self) -> list[RunResult]:
        return self.outcome.trained

    @property
    def statuses(self) -> dict[str, int]:
        """Runs by status, e.g. ``{"ok": 2}``."""
        return dict(self.outcome.counts)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(run.status == "ok" for run in self.runs)

    def frame(self) -> pd.DataFrame:
        """One row per run: loss, model, dataset, seed, status, reason and every metric value."""
        return pd.DataFrame([
            {"loss": r.spec.loss, "model": r.spec.model, "dataset": r.spec.dataset, "seed": r.spec.seed,
             "status": r.status, "reason": r.reason, **r.metrics}
            for r in self.runs
        ])


def environment_with(modules: Iterable[ModuleType], config: PluginConfig) -> Environment:
    """The plugins ``config`` finds, plus ``modules`` registered as plugins (skipped if already loaded).

    This lets an author smoke-run a plugin module before installing it; once installed, its entry point loads
    the very same module object, which is then not registered twice.
    """
    loaded = load_plugins(config)
    for module in modules:
        if loaded.manager.is_registered(module):
            continue
        name = module.__name__
        register_plugin(loaded, name, module, PluginInfo(name, "module", getattr(module, "__file__", None) or name))
    return Environment(loaded, build_catalog(loaded))


def smoke_run(*, losses: Sequence[str] = (), models: Sequence[str] = (), datasets: Sequence[str] = (),
              seeds: Sequence[int] = (0,), steps: int | None = None, preset: str = "smoke",
              modules: Iterable[ModuleType] = (), plugins_dir: Path | str | None = None,
              results_dir: Path | str | None = None, check: bool = True) -> SmokeResult:
    """Train and score the selected grid on the CPU with the ``smoke`` preset; returns what ran.

    Narrow the grid with ``losses``/``models``/``datasets`` (e.g. ``datasets=["ring8"]``): unfiltered kinds take
    every compatible registered object. ``modules`` are plugin modules to register in addition to the installed
    ones. With ``check`` (the default) a plugin problem or a run that did not finish ``ok`` raises
    ``ConformanceError`` with the reasons. Results go to ``results_dir`` (default: a new temporary folder).
    """
    config = PluginConfig(plugins_dir=Path(plugins_dir) if plugins_dir is not None else None)
    env = environment_with(modules, config)
    problems = [str(problem) for problem in env.problems]
    if check and problems:
        raise ConformanceError("plugin problems: " + "; ".join(problems))
    folder = Path(results_dir) if results_dir is not None else Path(tempfile.mkdtemp(prefix="lossbench-smoke-"))
    options = GridOptions(losses=losses, models=models, datasets=datasets, seeds=list(seeds), preset=preset,
                          steps=steps, device="cpu", executor="local", workers=1, results=folder, resume=False)
    result = SmokeResult(run_grid(env, config, options), folder, problems)
    if check and not result.ok:
        bad = [f"{run.spec.label}: {run.status} ({run.reason})" for run in result.runs if run.status != "ok"]
        raise ConformanceError("smoke run did not finish ok: " + "; ".join(bad or ["no run was trained"]))
    return result

