"""--device: auto picks CUDA when present, a missing device is one clear line, and the determinism switches a
CUDA run needs are applied and recorded (exercised here as far as a machine without CUDA allows)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_lossbench

from lossbench.errors import DeviceUnavailable
from lossbench.plan import seeding
from lossbench.training.train import resolve_device

CUDA = torch.cuda.is_available()
ONE_RUN = [
    "run",
    "-l",
    "nonsaturating",
    "-m",
    "mlp",
    "-d",
    "ring8",
    "--seeds",
    "0",
    "--preset",
    "smoke",
    "--steps",
    "2",
    "--no-report",
]


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_one_line_and_non_zero(workdir: Path) -> None:
    done = run_lossbench(*ONE_RUN, "--device", "cuda", cwd=workdir)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: --device cuda: CUDA is not available on this machine (use --device cpu or auto)"
    ]
    assert done.stdout == ""
    assert not (workdir / "results").exists()  # failed before touching anything


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda:1", "Error: --device cuda:1: CUDA is not available on this machine (use --device cpu or auto)"),
        ("tpu", "Error: --device 'tpu' is not a device; use auto, cpu, cuda, cuda:N or mps"),
    ],
)
def test_other_unusable_devices_are_one_line(cli, device: str, message: str) -> None:
    from click.testing import CliRunner

    from lossbench.cli import main

    result = CliRunner().invoke(main, [*ONE_RUN, "--device", device])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [message]


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    if not CUDA:
        with pytest.raises(DeviceUnavailable, match="CUDA is not available"):
            resolve_device("cuda:0")
    if not torch.backends.mps.is_available():
        with pytest.raises(DeviceUnavailable, match="MPS is not available"):
            resolve_device("mps")


@pytest.fixture
def cuda_switches(monkeypatch: pytest.MonkeyPatch):
    """Restore cuDNN's flags after a test flips them (they are process-wide)."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


@pytest.mark.skipif(CUDA and torch.cuda.is_initialized(), reason="CUDA already started in this process")
def test_cuda_determinism_switches_are_applied_and_recorded(cuda_switches) -> None:
    settings = seeding.enable_determinism(torch.device("cuda"))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    assert torch.are_deterministic_algorithms_enabled()
    assert settings == {
        "deterministic_algorithms": True,
        "torch_threads": torch.get_num_threads(),
        "run_threads": 1,
        "cudnn_deterministic": True,
        "cudnn_benchmark": False,
        "cublas_workspace_config": ":4096:8",
        "cublas_config_before_cuda": True,
    }


def test_a_users_cublas_workspace_is_kept(cuda_switches, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    seeding.prepare_process()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert seeding.enable_determinism(torch.device("cuda"))["cublas_workspace_config"] == ":16:8"


def test_cpu_run_records_its_determinism_and_threads(cli, workdir: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the process may use more threads; the run pins its own
    try:
        result = cli(*ONE_RUN, "--device", "cpu")
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(workdir / "results" / "lossbench.db") as connection:
        ((device, text),) = connection.execute("SELECT device, environment_json FROM runs").fetchall()
    environment = json.loads(text)
    assert device == "cpu"
    assert environment["device"] == "cpu" and environment["executor"] == "serial"
    assert environment["deterministic_algorithms"] is True
    assert environment["run_threads"] == 1 and environment["torch_threads"] == 1
    assert "cudnn_deterministic" not in environment  # only CUDA runs carry the CUDA switches


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_runs_are_reproducible(workdir: Path) -> None:  # pragma: no cover - runs where a GPU is present
    from lossbench.plan.grid import expand
    from lossbench.plugin.loader import load_environment
    from lossbench.training.train import run_safely

    catalog = load_environment().catalog
    spec = expand(
        catalog, losses=["wgan-gp"], models=["mlp"], datasets=["ring8"], seeds=[0], preset="smoke", device="cuda"
    ).specs[0]
    first, second = run_safely(spec, catalog), run_safely(spec, catalog)
    assert first.status == second.status == "ok", first.reason
    assert sorted(first.metrics) == sorted(second.metrics)
    np.testing.assert_array_equal(
        [first.metrics[k] for k in sorted(first.metrics)], [second.metrics[k] for k in sorted(second.metrics)]
    )
    assert first.environment["cudnn_deterministic"] is True
