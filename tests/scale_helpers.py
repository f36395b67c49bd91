"""Shared by the executor tests: a plugin whose losses fail on purpose, the smoke grid, a serial reference computed
once per test session, and a bitwise comparison of two stores."""

from __future__ import annotations

import functools
import json
import sqlite3
import tempfile
from pathlib import Path

import pandas as pd

FAILING_PLUGIN = '''"""Losses that fail on purpose: a grid must record them as failed and go on."""
import os

from lossbench import AdversarialLoss, hookimpl


class Boom(AdversarialLoss):
    """Raises in its discriminator loss."""

    name = "boom"

    def discriminator_loss(self, real_scores, fake_scores):
        raise ValueError("boom: this loss always raises")

    def generator_loss(self, fake_scores, real_scores):
        return -fake_scores.mean()


class Crash(AdversarialLoss):
    """Kills the process that runs it, as a segfault or the OOM killer would."""

    name = "crash"

    def discriminator_loss(self, real_scores, fake_scores):
        os._exit(3)

    def generator_loss(self, fake_scores, real_scores):
        return -fake_scores.mean()


@hookimpl
def register_losses(register):
    register(Boom())
    register(Crash())
'''

GATE_PLUGIN = '''"""A loss that holds its run at a gate until the test opens it: no grid ends before the test acts."""
import os
import time
from pathlib import Path

from lossbench import hookimpl
from lossbench.builtin.losses import NonSaturating

GATE = Path({gate!r})


class Gated(NonSaturating):
    """The first run of this loss to start waits until the file ``open`` appears; the others train at once."""

    name = {name!r}

    def discriminator_loss(self, real_scores, fake_scores):
        try:  # exactly one run holds: the others keep the other workers busy committing results
            os.close(os.open(GATE / "claimed", os.O_CREAT | os.O_EXCL))
            while not (GATE / "open").exists():
                time.sleep(0.05)
        except FileExistsError:
            pass
        return super().discriminator_loss(real_scores, fake_scores)


@hookimpl
def register_losses(register):
    register(Gated())
'''


def gate_plugin(gate: Path, name: str) -> str:
    """The source of a plugin whose loss ``name`` holds its first run until ``gate/open`` exists (tests create
    it); ``gate/claimed`` appears when a run is held. Interrupting tests wait on these files, never on a timer."""
    return GATE_PLUGIN.format(gate=str(gate), name=name)


OK_LOSSES = ["nonsaturating", "wgan-gp"]
SMOKE = dict(models=["mlp"], datasets=["ring8"], seeds=[0, 1], preset="smoke", device="cpu")
SMOKE_ARGS = ["-m", "mlp", "-d", "ring8", "--seeds", "0,1", "--preset", "smoke", "--device", "cpu", "--no-report"]
BOOM_REASON = "loss 'boom' (plugin 'failing'): ValueError: boom: this loss always raises"

_KEEP: list[tempfile.TemporaryDirectory] = []


def write_failing_plugin(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "failing.py").write_text(FAILING_PLUGIN)
    return folder


@functools.cache
def serial_reference(stacked: bool = True) -> tuple[Path, Path]:
    """(results folder, plugins folder) of the smoke grid with ``boom`` trained serially in this process, once per
    session and engine: the default one (these MLP runs stack) or, with ``stacked=False``, the sequential one
    (``--no-vectorise``). ``crash`` cannot run serially: it would kill the test process."""
    import os

    from lossbench.jobs.driver import GridOptions, run_grid
    from lossbench.plugin.loader import PluginConfig, load_environment
    from lossbench.training.stacked_plan import VECTORISE_ENV

    folder = tempfile.TemporaryDirectory(prefix="lossbench-serial-")
    _KEEP.append(folder)
    root = Path(folder.name)
    plugins = write_failing_plugin(root / "plugins")
    config = PluginConfig(plugins_dir=plugins)
    before = os.environ.pop(VECTORISE_ENV, None)
    if not stacked:
        os.environ[VECTORISE_ENV] = "0"
    try:
        outcome = run_grid(
            load_environment(config),
            config,
            GridOptions(losses=[*OK_LOSSES, "boom"], results=root / "results", **SMOKE),
        )
    finally:
        os.environ.pop(VECTORISE_ENV, None)
        if before is not None:
            os.environ[VECTORISE_ENV] = before
    assert outcome.counts == {"ok": 4, "failed": 2}, outcome.counts
    return root / "results", plugins


def tables(results: Path) -> dict[str, pd.DataFrame]:
    """Everything a run stores that must not depend on where it ran (timings and environment excluded)."""
    with sqlite3.connect(results / "lossbench.db") as connection:
        read = lambda sql: pd.read_sql_query(sql, connection)  # noqa: E731
        history_columns = [row[1] for row in connection.execute("PRAGMA table_info(history)") if row[1] != "seconds"]
        runs = read(
            "SELECT run_id, dataset, model, loss, seed, steps, device, status, reason, failed_step "
            "FROM runs ORDER BY run_id"
        )
        return {
            "runs": runs,
            "metrics": read("SELECT * FROM metrics ORDER BY run_id, key"),
            "history": read(f"SELECT {', '.join(history_columns)} FROM history ORDER BY run_id, step"),
            "curves": read("SELECT * FROM curves ORDER BY run_id, step, key"),
            "samples": read("SELECT * FROM samples ORDER BY run_id"),
        }


def environments(results: Path) -> dict[str, dict]:
    with sqlite3.connect(results / "lossbench.db") as connection:
        rows = connection.execute("SELECT run_id, environment_json FROM runs").fetchall()
    return {run_id: json.loads(text) for run_id, text in rows}


def assert_bitwise_equal(expected: Path, actual: Path, run_ids: set[str]) -> None:
    """The runs ``run_ids`` have exactly the same stored outcome, metrics, history, curves and samples."""
    want, got = tables(expected), tables(actual)
    for name in want:
        a = want[name][want[name]["run_id"].isin(run_ids)].reset_index(drop=True)
        b = got[name][got[name]["run_id"].isin(run_ids)].reset_index(drop=True)
        assert len(a) > 0 or name == "curves", f"no {name} rows for the compared runs"
        for column in a.columns:  # a column of NULLs only reads as object: compare numbers as numbers
            if "f" in (a[column].dtype.kind, b[column].dtype.kind):
                a[column], b[column] = a[column].astype(float), b[column].astype(float)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
