"""One-call smoke run of a plugin in a tiny real grid: the plugin trained and scored by the real harness.

Conformance checks (``lossbench.authoring.conformance``) test an object in isolation; a smoke run proves that the
harness can find the plugin, pair it with models and datasets, train it for a few steps, score it and store the result.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pandas as pd

from lossbench.api import PROJECT_NAME
from lossbench.authoring.conformance import ConformanceError
from lossbench.jobs.driver import GridOptions, GridOutcome, run_grid
from lossbench.plugin.loader import (
    Environment,
    LoadedPlugins,
    PluginConfig,
    PluginInfo,
    PluginProblem,
    build_catalog,
    load_plugins,
    register_plugin,
)
from lossbench.records import RunResult


@dataclass
class SmokeResult:
    """What a smoke run trained: one ``RunResult`` per run, the store folder, and any plugin problems."""

    outcome: GridOutcome
    results_dir: Path
    problems: list[str] = field(default_factory=list)  # of the plugins under test
    other_problems: list[str] = field(default_factory=list)  # of other plugins (``environment=True`` only)

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
        return pd.DataFrame(
            [
                {
                    "loss": r.spec.loss,
                    "model": r.spec.model,
                    "dataset": r.spec.dataset,
                    "seed": r.spec.seed,
                    "status": r.status,
                    "reason": r.reason,
                    **r.metrics,
                }
                for r in self.runs
            ]
        )


def _file_of(plugin: object) -> Path | None:
    file = getattr(plugin, "__file__", None)
    return Path(file).resolve() if file else None


def add_module(loaded: LoadedPlugins, module: ModuleType) -> str | None:
    """Register ``module`` as a plugin unless the same code is already loaded; return the plugin's name.

    The same module object (an installed plugin's entry point) or the same file loaded under another module name
    (a ``./plugins`` file the test also imported) is that plugin already: it is not registered twice. A different
    plugin of the same name is one clear problem, not pluggy's registration dump.
    """
    manager = loaded.manager
    if manager.is_registered(module):
        return manager.get_name(module)
    file = _file_of(module)
    for name, plugin in manager.list_name_plugin():
        if file is not None and _file_of(plugin) == file:
            return name
    name = module.__name__
    if manager.is_blocked(name):  # $LOSSBENCH_DISABLE_PLUGINS names it
        return None
    if manager.get_plugin(name) is not None:
        where = loaded.infos[name].location if name in loaded.infos else "another plugin"
        loaded.problems.append(
            PluginProblem(
                name,
                f"module {name} ({file or 'no file'}) was not registered: a "
                f"plugin of that name is already loaded ({where})",
            )
        )
        return name
    register_plugin(loaded, name, module, PluginInfo(name, "module", str(file) if file else name))
    return name


def _add_entry_points(loaded: LoadedPlugins, names: Sequence[str]) -> None:
    """Load the installed entry points called ``names`` (group ``lossbench``); a name not installed is a problem."""
    found = {ep.name: ep for ep in metadata.entry_points(group=PROJECT_NAME)}
    for name in names:
        ep = found.get(name)
        if ep is None:
            loaded.problems.append(
                PluginProblem(
                    name,
                    "no installed entry point of this name in the 'lossbench' "
                    f"group (installed: {', '.join(sorted(found)) or 'none'})",
                )
            )
            continue
        if loaded.manager.get_plugin(name) is not None:
            continue
        dist = getattr(ep, "dist", None)
        try:
            module = ep.load()
        except Exception as exc:
            loaded.problems.append(PluginProblem(name, f"failed to import {ep.value}: {type(exc).__name__}: {exc}"))
            continue
        register_plugin(
            loaded,
            name,
            module,
            PluginInfo(name, "entry point", ep.value, dist.name if dist else None, dist.version if dist else None),
        )


@dataclass
class KitEnvironment:
    """The environment of a smoke run and the names of the plugins under test (whose problems count)."""

    env: Environment
    under_test: set[str]

    def problems(self) -> tuple[list[str], list[str]]:
        """(problems of the plugins under test, problems of the other plugins)."""
        mine = [str(p) for p in self.env.problems if p.plugin in self.under_test]
        others = [str(p) for p in self.env.problems if p.plugin not in self.under_test]
        return mine, others


def kit_config(plugins_dir: Path | None, environment: bool) -> PluginConfig:
    """Where a smoke run looks for plugins: ``plugins_dir`` only, or (``environment``) where lossbench would."""
    return PluginConfig(plugins_dir=plugins_dir, entry_points=environment, default_folders=environment)


def kit_environment(
    modules: Iterable[ModuleType] = (),
    plugins_dir: Path | None = None,
    entry_points: Sequence[str] = (),
    environment: bool = False,
) -> KitEnvironment:
    """The built-ins plus exactly the plugins under test: ``modules``, the files of ``plugins_dir`` and the
    installed ``entry_points`` named. With ``environment`` also everything ``lossbench`` itself would load here
    (every installed entry point, ``./plugins`` or ``$LOSSBENCH_PLUGINS_DIR``), whose problems then do not count.
    """
    loaded = load_plugins(kit_config(plugins_dir, environment))
    under_test = set(entry_points)
    if plugins_dir is not None:
        under_test |= {path.stem for path in Path(plugins_dir).glob("*.py")} | {str(plugins_dir)}
    _add_entry_points(loaded, entry_points)
    for module in modules:
        name = add_module(loaded, module)
        if name is not None:
            under_test.add(name)
    return KitEnvironment(Environment(loaded, build_catalog(loaded)), under_test)


def environment_with(modules: Iterable[ModuleType], config: PluginConfig) -> Environment:
    """The plugins ``config`` finds, plus ``modules`` registered as plugins (skipped if already loaded).

    This lets an author smoke-run a plugin module before installing it; once installed, its entry point loads
    the very same module object, which is then not registered twice.
    """
    loaded = load_plugins(config)
    for module in modules:
        add_module(loaded, module)
    return Environment(loaded, build_catalog(loaded))


def smoke_run(
    *,
    losses: Sequence[str] = (),
    models: Sequence[str] = (),
    datasets: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    steps: int | None = None,
    preset: str = "smoke",
    modules: Iterable[ModuleType] = (),
    plugins_dir: Path | str | None = None,
    results_dir: Path | str | None = None,
    check: bool = True,
    entry_points: Sequence[str] = (),
    environment: bool = False,
) -> SmokeResult:
    """Train and score the selected grid on the CPU with the ``smoke`` preset; returns what ran.

    The plugins are lossbench's built-ins plus exactly the plugins under test: ``modules`` (plugin modules, e.g.
    your package's ``plugin`` module, installed or not), every file of ``plugins_dir`` and the installed
    ``entry_points`` named; so the result does not depend on what else is installed on the machine.
    ``environment=True`` loads, in addition, what ``lossbench`` itself would (every installed entry point,
    ``./plugins`` or ``$LOSSBENCH_PLUGINS_DIR``); problems of those other plugins are then kept in
    ``SmokeResult.other_problems`` and never fail the run. A module also loaded from a plugins folder (the same
    file) is registered once.

    Narrow the grid with ``losses``/``models``/``datasets`` (e.g. ``datasets=["ring8"]``): unfiltered kinds take
    every compatible registered object. With ``check`` (the default) a problem of a plugin under test or a run
    that did not finish ``ok`` raises ``ConformanceError`` with the reasons. Results go to ``results_dir``
    (default: a new temporary folder).
    """
    folder_of_plugins = Path(plugins_dir) if plugins_dir is not None else None
    kit = kit_environment(modules, folder_of_plugins, entry_points, environment)
    problems, other_problems = kit.problems()
    if check and problems:
        raise ConformanceError("plugin problems: " + "; ".join(problems))
    config = kit_config(folder_of_plugins, environment)
    folder = Path(results_dir) if results_dir is not None else Path(tempfile.mkdtemp(prefix="lossbench-smoke-"))
    options = GridOptions(
        losses=losses,
        models=models,
        datasets=datasets,
        seeds=list(seeds),
        preset=preset,
        steps=steps,
        device="cpu",
        executor="local",
        workers=1,
        results=folder,
        resume=False,
    )
    result = SmokeResult(run_grid(kit.env, config, options), folder, problems, other_problems)
    if check and not result.ok:
        bad = [f"{run.spec.label}: {run.status} ({run.reason})" for run in result.runs if run.status != "ok"]
        raise ConformanceError("smoke run did not finish ok: " + "; ".join(bad or ["no run was trained"]))
    return result
