"""Shared fixtures: every test works in its own folder, with a session-wide cache for trained classifiers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Classifiers are trained once per session into a temporary cache, never into the user's ~/.cache."""
    if "LOSSBENCH_CACHE" not in os.environ:
        os.environ["LOSSBENCH_CACHE"] = str(tmp_path_factory.mktemp("lossbench-cache"))
    # `--workers auto` would spawn a process per core for every small test grid; tests that exercise workers say
    # --workers N themselves (the flag beats the variable)
    os.environ.setdefault("LOSSBENCH_WORKERS", "1")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh current directory, so that ./plugins, ./results and ./reports are the test's own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOSSBENCH_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("LOSSBENCH_DISABLE_PLUGINS", raising=False)
    return tmp_path


@pytest.fixture
def cli(workdir: Path):
    """Invoke the real ``lossbench`` click command in-process; returns click's Result."""
    from lossbench.cli import main

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def run_cli(*args: str) -> tuple[int, str]:
    """The real ``lossbench`` click command in-process, outside any fixture (e.g. in module-scoped ones):
    (exit code, output)."""
    from lossbench.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def make_spec(**overrides):
    """A small CPU RunSpec of nonsaturating / mlp / ring8 (40 steps); keyword arguments override its fields."""
    from lossbench.plan.grid import RunSpec

    values = dict(
        loss="nonsaturating",
        model="mlp",
        dataset="ring8",
        seed=0,
        steps=40,
        batch_size=64,
        log_every=5,
        eval_every=10,
        eval_samples=200,
        final_samples=400,
        device="cpu",
        preset="test",
    )
    values.update(overrides)
    return RunSpec(**values)


def run_lossbench(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``lossbench`` in a child process (for entry points, signals and exit codes as a user sees them)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lossbench.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
