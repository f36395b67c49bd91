"""The ``lossbench`` command: a thin click layer over the library. Errors become one clear line and an exit code.

Heavy libraries (torch, pandas, scipy, matplotlib) are imported inside the commands that use them, never at the
top of this module: ``lossbench --help`` answers at once and ``lossbench show`` runs without torch
(tests/test_imports.py holds the line; benchmarks/cli_latency.py measures it).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from lossbench import __version__
from lossbench.data.root import DATA_ROOT_ENV
from lossbench.errors import DeviceUnavailable, LossbenchError, UsageError
from lossbench.plan.grid import DEFAULT_PRESET, MAX_RUNS, PRESETS, parse_seeds
from lossbench.plugin.kinds import KIND_NAMES, KINDS, kind_named

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from lossbench.jobs.progress import RunLines
    from lossbench.plan.grid import GridPlan, RunSpec
    from lossbench.plugin.loader import Environment, PluginConfig
    from lossbench.records import RunResult


class LossbenchGroup(click.Group):
    """Turns a ``LossbenchError`` anywhere below into click's own error output: one line, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise click.UsageError(str(exc), ctx) from None
        except LossbenchError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None


def plugin_options(command: Callable, hidden: bool = False) -> Callable:
    command = click.option(
        "--strict-plugins", is_flag=True, hidden=hidden, help="Any plugin problem is fatal (non-zero exit)."
    )(command)
    command = click.option(
        "--plugins-dir",
        type=click.Path(path_type=Path, file_okay=False),
        hidden=hidden,
        help="Folder of *.py plugins (default: ./plugins, or $LOSSBENCH_PLUGINS_DIR).",
    )(command)
    return command


def unused_plugin_options(command: Callable) -> Callable:
    """--plugins-dir and --strict-plugins on a command that loads no plugins (``show`` reads every fact it needs,
    directions included, from the store): accepted, so that a script passing them to every command keeps working,
    and hidden from the help."""
    return plugin_options(command, hidden=True)


def comparison_options(command: Callable) -> Callable:
    """--reference and --comparisons: the paired comparisons tested (a Holm family per dataset x model x metric)."""
    command = click.option(
        "--comparisons",
        type=click.Choice(["reference", "all"]),
        default="reference",
        show_default=True,
        help="reference: every loss against the reference loss (k-1 tests); all: every pair "
        "(k(k-1)/2 tests, so more seeds are needed to reach significance).",
    )(command)
    command = click.option(
        "--reference",
        metavar="NAME",
        help="Reference loss of the comparisons (default: nonsaturating for GANs, vae for VAEs).",
    )(command)
    return command


def check_reference(reference: str | None, known: list[str]) -> None:
    """A --reference that names no known loss is a usage error naming the culprit."""
    from lossbench.plugin.registry import unknown_name_message

    if reference is not None and reference not in known:
        raise UsageError(unknown_name_message("--reference loss", reference, known))


def load(plugins_dir: Path | None, strict: bool) -> tuple[PluginConfig, Environment]:
    """Load the plugins, print each problem as a warning, and stop if --strict-plugins."""
    from lossbench.plugin.loader import PluginConfig, load_environment

    config = PluginConfig(plugins_dir=plugins_dir, strict=strict)
    env = load_environment(config)
    for problem in env.problems:
        click.echo(f"warning: {problem}", err=True)
    env.raise_if_strict(strict)
    return config, env


results_option = click.option(
    "--results",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("results"),
    show_default=True,
    help="Folder of the SQLite store and its CSV/Parquet tables.",
)
reports_option = click.option(
    "--reports",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("reports"),
    show_default=True,
    help="Folder of the HTML report (index.html and its figures).",
)


@click.group(cls=LossbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lossbench")
def main() -> None:
    """lossbench: which loss should you train your generative model with, and how sure can you be?"""


class ProgressDisplay:
    """A progress bar of runs done / total with an ETA, and the current run's step (GridListener for the CLI)."""

    def __init__(self, lines: bool | None = None) -> None:
        self.bar: ProgressBar[Any] | None = None
        self.current = ""
        self.running: dict[str, str] = {}  # run_id -> "label step s/S", for the runs in flight (workers, Ray)
        # stderr not a terminal (nohup, CI, a cluster job's log): one line per finished run instead of a bar
        self.lines = (not sys.stderr.isatty()) if lines is None else lines
        self.lines_progress: RunLines | None = None

    def planned(self, plan: GridPlan, todo: list[RunSpec], resumed: int) -> None:
        for note in plan.notes:
            click.echo(note, err=True)
        click.echo(
            f"{len(plan.specs)} runs in the grid: {len(todo)} to train, {resumed} already stored (resumed)", err=True
        )
        if self.lines:
            from lossbench.jobs.progress import RunLines

            self.lines_progress = RunLines(len(todo), lambda line: click.echo(line, err=True))
            return
        self.bar = click.progressbar(
            length=len(todo),
            label="runs",
            show_eta=True,
            show_pos=True,
            item_show_func=lambda _item: self.current,
            file=sys.stderr,
        )
        self.bar.__enter__()

    def step(self, spec: RunSpec, step: int) -> None:
        self.running.pop(spec.run_id, None)
        self.running[spec.run_id] = f"{spec.label} step {step}/{spec.steps}"
        others = len(self.running) - 1
        self.current = self.running[spec.run_id] + (f" (+{others} running)" if others else "")
        if self.bar is not None:
            self.bar.render_progress()

    def finished(self, result: RunResult) -> None:
        spec = result.spec
        self.running.pop(spec.run_id, None)
        self.current = f"{spec.label} {result.status}"
        if self.lines_progress is not None:
            self.lines_progress.finished(result)
        if self.bar is not None:
            self.bar.update(1)

    def waiting(self, holder: str) -> None:
        click.echo(f"waiting: another lossbench run is writing to this results folder ({holder})", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@main.command()
@click.option(
    "--grid", "whole_grid", is_flag=True, help="Run every compatible loss x model x dataset (the default grid)."
)
@click.option("-l", "--loss", "losses", multiple=True, help="Only this loss (repeatable).")
@click.option("-m", "--model", "models", multiple=True, help="Only this model (repeatable).")
@click.option("-d", "--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@click.option("--seeds", help="Seeds to run, e.g. 0,1,2 or 0-4.")
@click.option("--n-seeds", type=click.IntRange(min=1), help="Run seeds 0..N-1.")
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default=DEFAULT_PRESET,
    show_default=True,
    help="Steps, batch size and sample sizes: smoke (seconds, for tests), quick, standard, paper.",
)
@click.option("--steps", type=click.IntRange(min=1), help="Override the preset's training steps.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where runs train: local worker processes, or a Ray cluster (--ray-address).",
)
@click.option(
    "--workers",
    default="auto",
    show_default=True,
    envvar="LOSSBENCH_WORKERS",
    help="Local worker processes, or auto: one per CPU core for CPU runs, one for a GPU.",
)
@click.option(
    "--vectorise/--no-vectorise",
    default=None,
    envvar="LOSSBENCH_VECTORISE",
    help="Train compatible GAN runs (same model, dataset, sizes, optimizer kind and n_critic) as one stacked "
    "model per group; each worker process or Ray task trains a group. Neither flag: where it pays (every "
    "compatible group on CUDA, MLPs on the CPU).",
)
@click.option(
    "--group-size",
    type=click.IntRange(min=1),
    envvar="LOSSBENCH_GROUP_SIZE",
    help="Most runs per stacked group (default: chosen for the device).",
)
@click.option("--ray-address", help="Ray cluster address for --executor ray (default: start a local Ray).")
@results_option
@reports_option
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip runs already in the store, unless they came from other code (see --reuse-stale).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=MAX_RUNS,
    show_default=True,
    help="Refuse a grid of more runs than this (a guard against a typo in --seeds).",
)
@click.option("--wait", is_flag=True, help="If another `lossbench run` writes to --results, wait for it to finish.")
@click.option("--no-report", is_flag=True, help="Do not build reports/index.html at the end.")
@click.option("--retry-failed", is_flag=True, help="With --resume, run again the runs stored as failed.")
@click.option(
    "--reuse-stale",
    is_flag=True,
    help="With --resume, keep stored runs that came from other code (a changed plugin or lossbench "
    "version) instead of training them again; a warning says how many.",
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Folder with on-disk datasets (MNIST, CIFAR-10); default ${DATA_ROOT_ENV}.",
)
@click.option(
    "--inception-weights",
    type=click.Path(path_type=Path, dir_okay=False),
    help="pytorch-fid's FID Inception weights (pt_inception-2015-12-05-6726825d.pth) for image FID; "
    "default: the torch hub cache. Nothing is downloaded.",
)
@click.option(
    "--feature-space",
    "spaces",
    multiple=True,
    metavar="NAME",
    help="Also compute FID, KID and PRDC in this feature space (repeatable, or a comma list), stored as "
    "fid@NAME...: inception, classifier, raw or a plugin's (lossbench list feature_spaces).",
)
@click.option(
    "--log",
    "loggers",
    multiple=True,
    metavar="NAME",
    help='Log live while runs train: tensorboard (needs pip install "lossbench[tensorboard]"). Plugins '
    "implementing the run_logged hook log whenever loaded.",
)
@click.option(
    "--log-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of the live logs, one subfolder per run (default: ./runs).",
)
@comparison_options
@plugin_options
def run(
    whole_grid: bool,
    losses: tuple[str, ...],
    models: tuple[str, ...],
    datasets: tuple[str, ...],
    seeds: str | None,
    n_seeds: int | None,
    preset: str,
    steps: int | None,
    device: str,
    executor: str,
    workers: str,
    vectorise: bool | None,
    group_size: int | None,
    ray_address: str | None,
    results: Path,
    reports: Path,
    resume: bool,
    max_runs: int,
    wait: bool,
    no_report: bool,
    retry_failed: bool,
    reuse_stale: bool,
    data_root: Path | None,
    inception_weights: Path | None,
    spaces: tuple[str, ...],
    loggers: tuple[str, ...],
    log_dir: Path | None,
    reference: str | None,
    comparisons: str,
    plugins_dir: Path | None,
    strict_plugins: bool,
) -> None:
    """Train and score every selected loss x model x dataset x seed; store and export the results."""
    import os

    from lossbench.jobs.driver import GridOptions, run_grid
    from lossbench.plugin import live

    if not (whole_grid or losses or models or datasets):
        raise UsageError("say what to run: --grid for every combination, or filters -l/-m/-d")
    if seeds is not None and n_seeds is not None:
        raise UsageError("give --seeds or --n-seeds, not both")
    if n_seeds is not None and n_seeds > max_runs:  # before range(n_seeds) becomes a list
        raise UsageError(
            f"--n-seeds {n_seeds}: more seeds than the limit of {max_runs:,} runs; "
            f"narrow it, or raise the limit with --max-runs {n_seeds}"
        )
    seed_list = parse_seeds(seeds, max_runs) if seeds is not None else (list(range(n_seeds)) if n_seeds else None)
    from lossbench.environ import scoped
    from lossbench.scoring.inception import INCEPTION_WEIGHTS_ENV, inception_weights as check_weights
    from lossbench.training.stacked import GROUP_SIZE_ENV, VECTORISE_ENV

    # the command's choices, for the executors and the workers (which inherit them), undone when it ends; neither
    # --vectorise/--no-vectorise nor $LOSSBENCH_VECTORISE: stack where it pays
    chosen: dict[str, str | None] = {VECTORISE_ENV: None if vectorise is None else "1" if vectorise else "0"}
    if group_size is not None:
        chosen[GROUP_SIZE_ENV] = str(group_size)
    if data_root is not None:
        chosen[DATA_ROOT_ENV] = str(data_root)
    if inception_weights is not None:
        chosen[INCEPTION_WEIGHTS_ENV] = str(inception_weights.resolve())
    click.get_current_context().with_resource(scoped(chosen))
    if inception_weights is not None:
        check_weights()  # a path that is not a file is one clear error now, not a failure of every image run
    from lossbench.scoring import chosen as feature_spaces

    # workers inherit the chosen spaces; checked once the grid is planned; undone when the command ends
    click.get_current_context().with_resource(feature_spaces.choose(feature_spaces.parse_spaces(spaces)))
    if log_dir is not None and not loggers:
        raise UsageError("--log-dir goes with --log NAME")
    # before the plugins load (they decide which loggers listen); undone when the command ends
    click.get_current_context().with_resource(live.choose(loggers, log_dir))
    _check_executor(executor, device, ray_address)
    from lossbench.executors.common import resolve_workers

    worker_count = resolve_workers(workers, device)
    cores = os.cpu_count() or 1
    if worker_count > cores and executor == "local":
        click.echo(
            f"warning: --workers {worker_count} is more than the {cores} CPU cores here: the extra processes "
            "only wait for a core, each holding its own copy of torch in memory",
            err=True,
        )
    if not no_report:
        from lossbench.report import prepare_reports

        prepare_reports(reports)  # an unwritable --reports is one line now, not a traceback after training
    config, env = load(plugins_dir, strict_plugins)
    check_reference(reference, env.catalog.losses.names())
    options = GridOptions(
        losses=losses,
        models=models,
        datasets=datasets,
        seeds=seed_list,
        preset=preset,
        steps=steps,
        device=device,
        executor=executor,
        workers=worker_count,
        results=results,
        resume=resume,
        retry_failed=retry_failed,
        reuse_stale=reuse_stale,
        data_root=data_root,
        executor_options={"address": ray_address} if executor == "ray" else {},
        comparisons=comparisons,
        reference=reference,
        max_runs=max_runs,
        wait=wait,
    )
    display = ProgressDisplay()
    started = time.perf_counter()
    sigterm = SigtermState()
    try:
        with sigterm_as_interrupt(sigterm):
            outcome = run_grid(env, config, options, display)
    except KeyboardInterrupt:
        _stopped(display, sigterm)
    except DeviceUnavailable as exc:  # e.g. --device cuda on a Ray cluster without GPUs
        raise _one_line(exc) from None
    except Exception:
        if sigterm.received:  # the interrupt surfaced as another error (e.g. an import it cut short)
            _stopped(display, sigterm)
        raise
    finally:
        display.close()  # end the bar's line before any error message
    counts = outcome.counts
    click.echo(
        f"trained {len(outcome.trained)} runs in {time.perf_counter() - started:.1f}s "
        f"({counts.get('ok', 0)} ok, {counts.get('diverged', 0)} diverged, {counts.get('failed', 0)} failed), "
        f"{outcome.resumed} resumed; results in {results}/"
    )
    for result in outcome.trained:
        if result.status == "failed":
            click.echo(f"failed: {result.spec.label}: {result.reason}", err=True)
    if loggers:
        click.echo(
            f"live logs ({', '.join(loggers)}): {live.log_dir()}/, one folder per run "
            f"(tensorboard --logdir {live.log_dir()})"
        )
    if not no_report:
        from lossbench.report import build_report

        click.echo(f"report: {build_report(results, reports, env.catalog, comparisons, reference).resolve()}")
    if counts.get("failed", 0):
        sys.exit(1)


def _stopped(display: ProgressDisplay, sigterm: SigtermState) -> NoReturn:
    """Ctrl-C or SIGTERM: one line, and exit 130 or 143 (the runs committed so far stay in the store)."""
    display.close()
    how = "terminated (SIGTERM)" if sigterm.received else "interrupted"
    click.echo(f"{how}: the runs committed so far are kept; run the same command again to resume", err=True)
    sys.exit(143 if sigterm.received else 130)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the runs in flight are abandoned, nothing half-done is committed."""


@dataclass
class SigtermState:
    """Whether SIGTERM arrived (an executor may turn the interrupt into a plain KeyboardInterrupt on its way up,
    as Ray's ``wait`` does)."""

    received: bool = False


@contextmanager
def sigterm_as_interrupt(state: SigtermState) -> Iterator[None]:
    """While the block runs, SIGTERM raises ``Terminated`` in the main thread (once: a second SIGTERM during the
    clean-up is ignored, so that the clean-up finishes)."""

    def handler(_signum: int, _frame: object) -> None:
        state.received = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line(exc: LossbenchError) -> click.ClickException:
    """``exc`` as click's one-line "Error: ..." with its exit code (no usage text: the flags were well formed)."""
    error = click.ClickException(str(exc))
    error.exit_code = exc.exit_code
    return error


def _check_executor(executor: str, device: str, ray_address: str | None) -> None:
    """Fail before loading anything when the executor or the device cannot work here, in one line."""
    from lossbench.training.train import resolve_device

    if ray_address and executor != "ray":
        raise UsageError("--ray-address goes with --executor ray")
    if executor == "ray":
        from lossbench.executors.ray import cluster_address, require_ray

        require_ray()
        if cluster_address(ray_address):
            return  # the cluster's devices count, checked once connected
    try:
        resolve_device(device)
    except DeviceUnavailable as exc:
        raise _one_line(exc) from None


def _rows(kind: str, env) -> list[dict[str, Any]]:
    from lossbench.api import describe

    registry = env.catalog.registry(kind)
    facts = kind_named(kind).facts
    return [
        {"name": name, "plugin": entry.plugin, "description": describe(entry.obj), **facts(entry.obj)}
        for name, entry in registry.entries.items()
    ]


@main.command(name="list")
@click.argument("kind", required=False, type=click.Choice(KIND_NAMES))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@plugin_options
def list_(kind: str | None, as_json: bool, plugins_dir: Path | None, strict_plugins: bool) -> None:
    """What is registered (losses, models, datasets, metrics), and by which plugin."""
    _config, env = load(plugins_dir, strict_plugins)
    kinds = [kind] if kind else list(KIND_NAMES)
    listing = {k: _rows(k, env) for k in kinds}
    if as_json:
        click.echo(json.dumps(listing if not kind else listing[kind], indent=2))
        return
    for k in kinds:
        click.echo(f"{k}:")
        for row in listing[k]:
            family = f" [{row['family']}]" if "family" in row else ""
            click.echo(f"  {row['name']:<18}{family:<7} {row['description']}  ({row['plugin']})")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@plugin_options
def plugins(as_json: bool, plugins_dir: Path | None, strict_plugins: bool) -> None:
    """Installed plugins: where each comes from, its version, its hooks and what it registered."""
    from lossbench.plugin.provenance import ProvenanceIndex

    _config, env = load(plugins_dir, strict_plugins)
    origins = ProvenanceIndex(env)  # the source hash stored with runs (file plugins, editable installs)
    infos = [
        {**_plugin_row(info), "source_hash": origins.origin_of_plugin(info.name).source}
        for info in env.plugins.infos.values()
    ]
    if as_json:
        problems = [{"plugin": p.plugin, "reason": p.reason} for p in env.problems]
        click.echo(json.dumps({"plugins": infos, "problems": problems}, indent=2))
        return
    for info in infos:
        dist = f"{info['distribution']} {info['version'] or ''}".strip() if info["distribution"] else "no distribution"
        click.echo(f"{info['name']}  [{info['source']}: {dist}]")
        click.echo(f"  location: {info['location']}")
        if info["source_hash"]:
            click.echo(f"  source hash: {info['source_hash']} (stored with every run it takes part in)")
        click.echo(f"  hooks: {', '.join(info['hooks']) or '-'}")
        for kind in KIND_NAMES:
            if info["registered"].get(kind):
                click.echo(f"  {kind}: {', '.join(info['registered'][kind])}")


def _plugin_row(info) -> dict[str, Any]:
    """A plugin's facts for display; a distribution's version is looked up when the loader did not record it."""
    from importlib import metadata

    row = dict(vars(info))
    if row.get("distribution") and not row.get("version"):
        try:
            row["version"] = metadata.version(row["distribution"])
        except metadata.PackageNotFoundError:
            row["version"] = None
    return row


@main.command(name="new-plugin")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice([kind.option for kind in KINDS if kind.templates]),
    default="loss",
    show_default=True,
    help="What the plugin registers; the package holds a working example of it.",
)
@click.option(
    "--template",
    default="",
    help="The example to start from (default: the kind's first): "
    + "; ".join(f"{', '.join(kind.templates)} for {kind.name}" for kind in KINDS if kind.templates)
    + ".",
)
@click.option(
    "--dir",
    "parent",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Folder in which to create lossbench-NAME/.",
)
@plugin_options
def new_plugin(
    name: str, kind: str, template: str, parent: Path, plugins_dir: Path | None, strict_plugins: bool
) -> None:
    """Scaffold an installable plugin package lossbench-NAME registering the KIND called NAME."""
    from lossbench.authoring.scaffold import REGISTRY_KINDS, PluginNames, create_plugin, validate
    from lossbench.plugin.kinds import kind_named

    kind = kind_named(kind).singular
    validate(name, kind, template=template)  # a bad --template is one line before plugins load
    _config, env = load(plugins_dir, strict_plugins)
    folder = create_plugin(
        name, kind, parent, taken=env.catalog.registry(REGISTRY_KINDS[kind]).names(), template=template
    )
    chosen = PluginNames(name, kind, template).chosen_template
    click.echo(f"created {folder}/ : a {kind} plugin registering {name!r}, from the {chosen} template")
    click.echo(f"its description is the `description` line of {folder}/src/{PluginNames(name, kind).package}/plugin.py")
    click.echo(f"next: pip install -e {folder} && lossbench list {REGISTRY_KINDS[kind]} && pytest {folder}")


@main.command()
@results_option
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Show this metric key (repeatable, e.g. modes_covered); default: the headline metrics.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: the summary rows.")
@click.option(
    "--runs",
    "per_run",
    is_flag=True,
    help="One line per stored run instead: status and the code that produced it (provenance).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "latex", "csv", "json"]),
    default="table",
    show_default=True,
    help="table: the terminal leaderboard; markdown, latex (booktabs), csv, json: one "
    "grid per dataset x model for a paper (best in bold, a dagger where significant against the reference).",
)
@click.option(
    "--statistic",
    type=click.Choice(["mean-ci", "median-iqr"]),
    default="mean-ci",
    show_default=True,
    help="Cells as mean ± half the bootstrap 95% CI, or median [IQR], over finished seeds.",
)
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@click.option("--model", "models", multiple=True, help="Only this model (repeatable).")
@comparison_options
@unused_plugin_options
def show(
    results: Path,
    metrics: tuple[str, ...],
    as_json: bool,
    per_run: bool,
    fmt: str,
    statistic: str,
    datasets: tuple[str, ...],
    models: tuple[str, ...],
    reference: str | None,
    comparisons: str,
    plugins_dir: Path | None,
    strict_plugins: bool,
) -> None:
    """Print the leaderboard per dataset x model: ranks over all seeds, means [95% CI] over finished seeds.

    Reads the store alone: every fact it ranks by is stored with the runs, so no plugin is loaded, the answer
    comes at once, and it is the same on a machine without the plugins that made the runs.
    """
    from lossbench.plugin.registry import unknown_name_message
    from lossbench.results.facts import known_facts
    from lossbench.results.leaderboard import leaderboard_text
    from lossbench.results.store import Store
    from lossbench.results.tables import summarise

    with Store.open(results, create=False) as store:
        wide = store.runs_wide()
        if per_run:
            _show_runs(store, as_json)
            return
    for column, wanted in (("dataset", datasets), ("model", models)):
        stored = sorted(wide[column].unique()) if not wide.empty else []
        for name in wanted:
            if name not in stored:
                raise UsageError(unknown_name_message(f"{column} (in {results})", name, stored))
        if wanted:
            wide = wide[wide[column].isin(wanted)].reset_index(drop=True)
    if not wide.empty:
        check_reference(reference, sorted(wide["loss"].unique()))
    facts = known_facts(wide)  # the facts stored with the runs: no plugin is loaded
    summary = summarise(wide, {key: fact.better for key, fact in facts.items()})
    known = sorted(summary["metric"].unique())
    for metric in metrics:
        if metric not in known:
            raise UsageError(unknown_name_message("metric key", metric, known))
    if metrics:
        summary = summary[summary["metric"].isin(metrics)]
    if as_json:
        click.echo(summary.to_json(orient="records", indent=2))
        return
    if wide.empty:
        click.echo("no results stored yet")
        return
    if fmt == "table" and statistic == "mean-ci":
        click.echo(leaderboard_text(wide, summary, list(metrics) or None, comparisons, reference, facts))
        return
    from lossbench.results import paper

    text = paper.render(paper.build_grids(wide, summary, metrics, statistic, reference, facts), fmt)
    click.echo(text, nl=not text.endswith("\n"))


def _show_runs(store, as_json: bool) -> None:
    """``show --runs``: each current run with its outcome and provenance (``--json``: the provenance itself)."""
    from lossbench.plugin import provenance

    recorded = store.provenances()
    runs = store.runs()
    if as_json:
        rows = [
            {
                "run_id": r["run_id"],
                "label": f"{r['dataset']}/{r['model']}/{r['loss']}/seed{r['seed']}",
                "status": r["status"],
                "provenance": recorded.get(r["run_id"]),
            }
            for r in runs.to_dict("records")
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if runs.empty:
        click.echo("no results stored yet")
        return
    for r in runs.to_dict("records"):
        click.echo(f"{r['run_id']}  {r['dataset']}/{r['model']}/{r['loss']}/seed{r['seed']}  {r['status']}")
        click.echo(f"  code: {provenance.describe(recorded.get(r['run_id']))}")
    superseded = store.superseded()
    if len(superseded):
        click.echo(f"({len(superseded)} superseded record(s) of runs trained again are kept in the store)")


@main.command()
@results_option
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Compute this metric (repeatable) for every stored run; default: each run's missing or changed metrics.",
)
@click.option(
    "--feature-space",
    "spaces",
    multiple=True,
    metavar="NAME",
    help="Add FID, KID and PRDC in this feature space (repeatable, or a comma list) to runs that lack it.",
)
@click.option("--device", default=None, help="Where to score (default: each run's own device).")
@reports_option
@click.option("--no-report", is_flag=True, help="Do not rebuild reports/index.html afterwards.")
@plugin_options
def rescore(
    results: Path,
    metrics: tuple[str, ...],
    spaces: tuple[str, ...],
    device: str | None,
    reports: Path,
    no_report: bool,
    plugins_dir: Path | None,
    strict_plugins: bool,
) -> None:
    """Compute missing or changed metrics of stored runs from their checkpoints, without training."""
    from lossbench.jobs.driver import export_all
    from lossbench.jobs.rescore import rescore as rescore_runs
    from lossbench.results.store import Store, WriterLock
    from lossbench.scoring.chosen import parse_spaces

    _config, env = load(plugins_dir, strict_plugins)
    with Store.open(results, create=False) as store, WriterLock(results).acquire():  # a writer, as `run` is
        store.check_writable()
        outcome = rescore_runs(
            env,
            store,
            metrics,
            device,
            progress=lambda line: click.echo(f"scoring {line}", err=True),
            spaces=parse_spaces(spaces),
        )
        export_all(store, results)
    for run_id, reason in outcome.skipped.items():
        click.echo(f"skipped {run_id}: {reason}", err=True)
    for where, message in outcome.errors.items():
        click.echo(f"metric failed: {where}: {message}", err=True)
    click.echo(f"rescored {len(outcome.scored)} run(s), {len(outcome.skipped)} skipped; results in {results}/")
    if outcome.scored and not no_report:
        from lossbench.report import build_report

        click.echo(f"report: {build_report(results, reports, env.catalog).resolve()}")
    if outcome.errors:
        sys.exit(1)


@main.command()
@results_option
@reports_option
@comparison_options
@plugin_options
def report(
    results: Path,
    reports: Path,
    reference: str | None,
    comparisons: str,
    plugins_dir: Path | None,
    strict_plugins: bool,
) -> None:
    """(Re)build reports/index.html and its figures from the store (plugins supply the datasets' mode centres)."""
    from lossbench.report import build_report
    from lossbench.results.store import Store

    _config, env = load(plugins_dir, strict_plugins)
    if reference is not None:
        with Store.open(results, create=False) as store:
            check_reference(reference, sorted(store.runs()["loss"].unique()))
    started = time.perf_counter()
    index = build_report(results, reports, env.catalog, comparisons, reference)
    click.echo(f"report: {index.resolve()} (built in {time.perf_counter() - started:.1f}s)")


@main.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option(
    "--to",
    "target",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to fetch into (default: $LOSSBENCH_DATA for datasets, torch's hub cache for inception).",
)
@click.option(
    "--mirror",
    envvar="LOSSBENCH_FETCH_MIRROR",
    help="A base URL tried first for every file (<mirror>/<file name>); checksums are still verified.",
)
def fetch(names: tuple[str, ...], target: Path | None, mirror: str | None) -> None:
    """Download mnist, fashion-mnist, cifar10 or inception, verified against the official checksums.

    Runs never download; this is the only command that does. An interrupted download resumes when run again.
    """
    from lossbench.data import fetch as fetching

    for name in names:
        for line in fetching.fetch(name, target, mirror, progress_for=_download_bar):
            click.echo(line)


def _download_bar(remote) -> Callable[[int, int | None], None]:
    """A progress bar on stderr for one file, opened when its size is known."""
    state: dict[str, Any] = {}

    def progress(done: int, total: int | None) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=remote.filename, file=sys.stderr)
            state["bar"].__enter__()
            state["done"] = 0
        state["bar"].update(done - state["done"])
        state["done"] = done
        if total is not None and done >= total:
            state["bar"].__exit__(None, None, None)

    return progress


if __name__ == "__main__":  # pragma: no cover
    main()
