"""Stacked groups where runs execute: a worker process trains a group, and a killed group resumes its unfinished
members (the driver stored each member as it finished). Interrupting waits on a gate the test controls."""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_lossbench

# a group of three (one recipe family: Adam, n_critic 1): one member diverges at step 1, one holds the group at a
# gate in its second step, so the grid cannot end before the test kills it
PLUGIN = '''import math
import time
from pathlib import Path

from lossbench import hookimpl
from lossbench.builtin.losses import NonSaturating

GATE = Path({gate!r})


class NaNLoss(NonSaturating):
    name = "nan-loss"

    def discriminator_loss(self, real_scores, fake_scores):
        return super().discriminator_loss(real_scores, fake_scores) * math.nan


class HeldLoss(NonSaturating):
    """Holds its second call until ``open`` exists (once: ``claimed`` marks that it held)."""

    name = "held"
    calls = 0

    def discriminator_loss(self, real_scores, fake_scores):
        self.calls += 1
        if self.calls == 2 and not (GATE / "claimed").exists():
            (GATE / "claimed").touch()
            while not (GATE / "open").exists():
                time.sleep(0.05)
        return super().discriminator_loss(real_scores, fake_scores)


@hookimpl
def register_losses(register):
    register(NaNLoss())
    register(HeldLoss())
'''

BASE = [
    "-m",
    "mlp",
    "-d",
    "ring8",
    "--seeds",
    "0",
    "--preset",
    "smoke",
    "--steps",
    "8",
    "--device",
    "cpu",
    "--no-report",
]
GRID = ["run", "-l", "nonsaturating", "-l", "nan-loss", "-l", "held", *BASE, "--vectorise"]


def rows(results: Path) -> list[tuple]:
    try:
        with sqlite3.connect(results / "lossbench.db", timeout=5) as db:
            return db.execute("SELECT loss, status, failed_step, environment_json FROM runs ORDER BY loss").fetchall()
    except sqlite3.Error:
        return []


@pytest.mark.parametrize(
    ("executor", "stop"),
    [
        ([], signal.SIGKILL),  # the serial driver, killed outright
        (["--workers", "2"], signal.SIGKILL),  # the driver killed outright: its worker processes die with it
        (["--executor", "ray", "--workers", "1"], signal.SIGINT),  # Ctrl-C: the driver stops its local Ray
    ],
    ids=["serial", "workers", "ray"],
)
def test_a_killed_group_resumes_its_unfinished_members(workdir: Path, executor: list[str], stop: int) -> None:
    if "ray" in executor:
        pytest.importorskip("ray")
    gate, plugins = workdir / "gate", workdir / "plugins"
    gate.mkdir(), plugins.mkdir()
    (plugins / "gated.py").write_text(PLUGIN.format(gate=str(gate)))
    args = [*GRID, *executor, "--plugins-dir", str(plugins)]
    with open(workdir / "driver.err", "w") as err:
        driver = subprocess.Popen(
            [sys.executable, "-m", "lossbench.cli", *args], cwd=workdir, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        # events, not timers: the member that diverged at step 1 is committed while the group is held at step 2
        deadline = time.monotonic() + 300  # only a bound on a failure: the loop ends on the events
        while not ((gate / "claimed").exists() and rows(workdir / "results")):
            assert driver.poll() is None, (workdir / "driver.err").read_text()
            assert time.monotonic() < deadline, "the diverged member was not stored while its group trained on"
            time.sleep(0.05)
        driver.send_signal(stop)
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait()
    expected = -signal.SIGKILL if stop == signal.SIGKILL else 130  # Ctrl-C: the driver's own exit status
    assert driver.returncode == expected, (workdir / "driver.err").read_text()
    stored = rows(workdir / "results")
    assert [(loss, status, step) for loss, status, step, _env in stored] == [("nan-loss", "diverged", 1)]
    assert json.loads(stored[0][3])["group_size"] == 3

    (gate / "open").touch()
    resumed = run_lossbench(*args, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 to train, 1 already stored (resumed)" in resumed.stderr
    final = rows(workdir / "results")
    assert [(loss, status) for loss, status, _step, _env in final] == [
        ("held", "ok"),
        ("nan-loss", "diverged"),
        ("nonsaturating", "ok"),
    ]
    assert [json.loads(env)["group_size"] for loss, _s, _f, env in final if loss != "nan-loss"] == [2, 2]


def test_workers_train_a_group_each_and_record_it(cli, workdir: Path, monkeypatch) -> None:
    from lossbench.plan.grid import RunSpec
    from lossbench.plugin.loader import load_environment
    from lossbench.training.train import run_safely

    monkeypatch.setenv("LOSSBENCH_VECTORISE", "0")  # the CLI sets it for its workers; restored afterwards
    monkeypatch.delenv("LOSSBENCH_GROUP_SIZE", raising=False)
    result = cli(
        "run",
        "-l",
        "nonsaturating",
        "-l",
        "hinge",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--seeds",
        "0,1",
        "--preset",
        "smoke",
        "--steps",
        "10",
        "--device",
        "cpu",
        "--no-report",
        "--vectorise",
        "--workers",
        "2",
    )
    assert result.exit_code == 0, result.output
    with sqlite3.connect(workdir / "results" / "lossbench.db") as db:
        stored = db.execute("SELECT run_id, status, spec_json, environment_json FROM runs").fetchall()
        metrics = db.execute("SELECT run_id, key, value FROM metrics WHERE value IS NOT NULL").fetchall()
    environments = [json.loads(row[3]) for row in stored]
    # four compatible runs cut into two groups of two: one per worker process
    assert (
        sorted((e["engine"], e["executor"], e["group_size"]) for e in environments) == [("stacked", "processes", 2)] * 4
    )
    assert len({e["worker_pid"] for e in environments}) == 2
    catalog = load_environment().catalog
    for run_id, status, spec_json, _env in stored:  # each member as its run trains alone (test_stacked's bound)
        alone = run_safely(RunSpec.from_dict(json.loads(spec_json)), catalog)
        assert status == alone.status == "ok"
        mine = {key: value for rid, key, value in metrics if rid == run_id}
        assert mine.keys() == {k for k, v in alone.metrics.items() if not math.isnan(v)}
        assert all(math.isclose(mine[key], alone.metrics[key], abs_tol=1e-3) for key in mine), run_id


def test_a_ray_task_trains_a_group(workdir: Path) -> None:
    pytest.importorskip("ray")
    result = run_lossbench(
        "run",
        "-l",
        "nonsaturating",
        "-l",
        "dragan",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--seeds",
        "0",
        "--preset",
        "smoke",
        "--steps",
        "5",
        "--device",
        "cpu",
        "--no-report",
        "--vectorise",
        "--executor",
        "ray",
        "--workers",
        "1",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(workdir / "results" / "lossbench.db") as db:
        environments = [json.loads(row[0]) for row in db.execute("SELECT environment_json FROM runs")]
    # nonsaturating and dragan: one recipe family (Adam, n_critic 1), their own learning rates and betas
    assert [(e["engine"], e["executor"], e["group_size"]) for e in environments] == [("stacked", "ray", 2)] * 2
    assert len({e["worker_pid"] for e in environments}) == 1


def test_a_ray_group_whose_worker_dies_trains_its_members_again_alone(workdir: Path) -> None:
    """A member that kills its Ray worker (``os._exit``) takes the group's task with it; each member then trains
    again in a task of its own, so only that member fails, as with local workers."""
    from scale_helpers import write_failing_plugin

    pytest.importorskip("ray")
    plugins = write_failing_plugin(workdir / "plugins")
    result = run_lossbench(
        *("run", "-l", "nonsaturating", "-l", "crash", "-m", "mlp", "-d", "ring8", "--seeds", "0"),
        *("--preset", "smoke", "--steps", "5", "--device", "cpu", "--no-report", "--vectorise"),
        *("--executor", "ray", "--workers", "1", "--plugins-dir", str(plugins)),
        cwd=workdir,
    )
    assert result.returncode == 1, result.stderr  # a failed run: the grid finishes with exit status 1
    with sqlite3.connect(workdir / "results" / "lossbench.db") as db:
        rows = dict(db.execute("SELECT loss, status FROM runs").fetchall())
        reasons = dict(db.execute("SELECT loss, reason FROM runs").fetchall())
    assert rows == {"nonsaturating": "ok", "crash": "failed"}
    assert reasons["crash"].startswith("Ray worker lost")
