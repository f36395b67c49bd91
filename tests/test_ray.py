"""--executor ray with a real local Ray (2 CPUs): bitwise the serial results, failures recorded, Ctrl-C then
--resume continues; without Ray, one line saying how to install it."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scale_helpers import (
    BOOM_REASON,
    OK_LOSSES,
    SMOKE_ARGS,
    assert_bitwise_equal,
    environments,
    gate_plugin,
    serial_reference,
    tables,
)

from lossbench.errors import DeviceUnavailable
from lossbench.plan.grid import RunSpec

RAY_GRID = [
    "run",
    *sum((["-l", loss] for loss in [*OK_LOSSES, "boom", "crash", "hold"]), []),
    *SMOKE_ARGS,
    "--executor",
    "ray",
    "--workers",
    "2",
]
N_RUNS = 10  # 5 losses x 2 seeds


def spec(device: str) -> RunSpec:
    return RunSpec(
        "nonsaturating",
        "mlp",
        "ring8",
        0,
        steps=2,
        batch_size=8,
        log_every=1,
        eval_every=2,
        eval_samples=8,
        final_samples=8,
        device=device,
    )


def lossbench(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    return subprocess.Popen(
        [sys.executable, "-m", "lossbench.cli", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stored(results: Path, where: str = "") -> int:
    try:
        with sqlite3.connect(results / "lossbench.db", timeout=1) as connection:
            return connection.execute(f"SELECT COUNT(*) FROM runs {where}").fetchone()[0]
    except sqlite3.Error:  # not created yet, or being written
        return 0


def test_ray_grid_interrupted_resumed_equals_serial(workdir: Path) -> None:
    pytest.importorskip("ray")
    serial, failing_plugins = serial_reference()
    gate = workdir / "gate"
    gate.mkdir()
    plugins = workdir / "plugins"
    plugins.mkdir()
    shutil.copy(failing_plugins / "failing.py", plugins / "failing.py")
    (plugins / "hold.py").write_text(gate_plugin(gate, "hold"))
    args = [*RAY_GRID, "--plugins-dir", str(plugins), "--results", "results"]

    # Ctrl-C once a result is committed while one run is held at the gate, so the grid cannot have ended:
    # the driver stops the tasks and its local Ray
    first = lossbench(args, workdir)
    deadline = time.monotonic() + 400
    while not (stored(workdir / "results") >= 1 and (gate / "claimed").exists()):
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "no run was committed in 400 s"
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert "interrupted: the runs committed so far are kept" in err
    kept = stored(workdir / "results")
    assert 1 <= kept < N_RUNS
    failed_before = stored(workdir / "results", "WHERE status = 'failed'")

    (gate / "open").touch()  # the held run trains normally from now on

    # the same command again continues where it stopped, and records the failures with their reasons
    second = lossbench(args, workdir)
    out, err = second.communicate(timeout=500)
    # a failed run among those this command trains makes its exit status non-zero (4 runs fail in all)
    assert second.returncode == (1 if failed_before < 4 else 0), err
    assert f"{N_RUNS} runs in the grid: {N_RUNS - kept} to train, {kept} already stored (resumed)" in err
    assert f"trained {N_RUNS - kept} runs" in out

    runs = tables(workdir / "results")["runs"].set_index("run_id")
    assert len(runs) == N_RUNS and runs["status"].value_counts().to_dict() == {"ok": 6, "failed": 4}
    assert set(runs.loc[runs["loss"] == "boom", "reason"]) == {BOOM_REASON}
    crashed = runs.loc[runs["loss"] == "crash", "reason"]
    assert len(crashed) == 2 and all(reason.startswith("Ray worker lost (") for reason in crashed), list(crashed)
    compared = set(runs.index[~runs["loss"].isin(["crash", "hold"])])
    assert len(compared) == 6
    assert_bitwise_equal(serial, workdir / "results", compared)  # metrics, history, curves, samples, outcome
    envs = environments(workdir / "results")
    assert {envs[run_id]["executor"] for run_id in runs.index[runs["status"] == "ok"]} == {"ray"}


def test_without_ray_the_executor_says_how_to_install_it(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from lossbench.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as where it is not installed
    result = CliRunner().invoke(main, ["run", "-l", "nonsaturating", "-m", "mlp", "-d", "ring8", "--executor", "ray"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        'Error: the ray executor needs Ray, which is not installed here: pip install "lossbench[ray]"'
    ]


def test_ray_task_resources_follow_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from lossbench.executors.ray import task_resources

    assert task_resources(spec("cuda")) == {"num_gpus": 1, "num_cpus": 1}
    assert task_resources(spec("cuda:1")) == {"num_gpus": 1, "num_cpus": 1}
    assert task_resources(spec("cpu")) == {"num_cpus": 1}
    monkeypatch.setenv("LOSSBENCH_RUN_THREADS", "2")
    assert task_resources(spec("cpu")) == {"num_cpus": 2}


def test_a_task_trains_on_the_gpu_ray_gave_it() -> None:
    from lossbench.executors.ray import spec_in_task

    assert spec_in_task(spec("cuda:3")).device == "cuda"
    assert spec_in_task(spec("cuda")) == spec("cuda")
    assert spec_in_task(spec("cpu")) == spec("cpu")


def test_a_clusters_gpus_decide_the_device() -> None:
    from lossbench.executors.ray import choose_device

    assert choose_device("auto", 0, "the Ray cluster at x:1") == "cpu"
    assert choose_device("auto", 4, "the Ray cluster at x:1") == "cuda"
    assert choose_device("cuda:1", 4, "the Ray cluster at x:1") == "cuda:1"
    assert choose_device("cpu", 4, "the Ray cluster at x:1") == "cpu"
    with pytest.raises(DeviceUnavailable, match=r"^--device cuda: the Ray cluster at x:1 has no GPUs"):
        choose_device("cuda", 0, "the Ray cluster at x:1")


def test_a_local_ray_uses_this_machines_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from lossbench.executors.ray import cluster_device

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_device("cpu") == "cpu"
    assert cluster_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()  # decided without starting Ray
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="CUDA is not available on this machine"):
            cluster_device("cuda")


def test_an_unreachable_cluster_is_one_line_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    pytest.importorskip("ray")
    from lossbench.executors.ray import RayUnavailable, connect

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(RayUnavailable, match=rf"^cannot reach the Ray cluster at '127.0.0.1:{port}': "):
        connect(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 10
