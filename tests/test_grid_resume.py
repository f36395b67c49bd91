"""The main job end to end: a smoke grid writes the store and exports, resumes, and survives SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from conftest import run_lossbench

GRID = ["run", "-l", "nonsaturating", "-l", "wgan-gp", "-m", "mlp", "-d", "ring8", "--preset", "smoke"]
EXPORTS = ["runs.csv", "history.csv", "summary.csv", "curves.csv", "runs.parquet", "summary.parquet"]


def stored_runs(results: Path) -> int:
    with sqlite3.connect(results / "lossbench.db") as connection:
        return connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_smoke_grid_writes_store_and_resumes(cli, workdir: Path) -> None:
    first = cli(*GRID)
    assert first.exit_code == 0, first.output
    assert "4 to train, 0 already stored" in first.output
    for name in ["lossbench.db", *EXPORTS]:
        assert (workdir / "results" / name).is_file(), name
    runs = pd.read_csv(workdir / "results" / "runs.csv")
    assert sorted(runs["loss"].unique()) == ["nonsaturating", "wgan-gp"]
    assert len(runs) == 4 and runs["run_id"].is_unique and (runs["status"] == "ok").all()
    history = pd.read_csv(workdir / "results" / "history.csv")
    assert set(history["run_id"]) == set(runs["run_id"])

    again = cli(*GRID)
    assert again.exit_code == 0, again.output
    assert "0 to train, 4 already stored (resumed)" in again.output
    assert stored_runs(workdir / "results") == 4

    retrained = cli(*GRID, "--no-resume")
    assert retrained.exit_code == 0, retrained.output
    assert "4 to train" in retrained.output
    rerun = pd.read_csv(workdir / "results" / "runs.csv")
    pd.testing.assert_frame_equal(runs, rerun)  # identical metrics, to the last bit of the CSV's repr


def test_sigkill_mid_grid_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    grid = [*GRID, "--seeds", "0-3", "--steps", "60"]  # 8 runs
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference_dir.mkdir(), killed_dir.mkdir()
    reference = run_lossbench(*grid, cwd=reference_dir)
    assert reference.returncode == 0, reference.stderr

    process = subprocess.Popen(
        [sys.executable, "-m", "lossbench.cli", *grid],
        cwd=killed_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = killed_dir / "results" / "lossbench.db"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if db.exists() and stored_runs(killed_dir / "results") >= 2:
                break
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    interrupted_count = stored_runs(killed_dir / "results")
    assert 2 <= interrupted_count < 8, "the kill should land in the middle of the grid"

    resumed = run_lossbench(*grid, cwd=killed_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{8 - interrupted_count} to train, {interrupted_count} already stored" in resumed.stderr
    expected = pd.read_csv(reference_dir / "results" / "runs.csv")
    actual = pd.read_csv(killed_dir / "results" / "runs.csv")
    assert len(actual) == 8 and actual["run_id"].is_unique
    pd.testing.assert_frame_equal(expected, actual)
