"""GPU check, for a CUDA machine: a small grid trains and scores on ``cuda``; two identical CUDA runs give identical
metrics and histories (deterministic algorithms on); training steps/s on cuda vs cpu for the ``mlp`` and ``dcgan``
models. With ``--ray`` the grid also goes through a local Ray (one GPU per task) and must match bitwise.

Without CUDA it says so and exits cleanly (status 0) having run nothing.

    python benchmarks/gpu_check.py [--steps 300] [--ray] [--device cuda:N]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from lossbench.jobs.driver import GridOptions, run_grid
from lossbench.plan import seeding
from lossbench.plan.grid import PRESETS, RunSpec, expand
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.records import RunResult
from lossbench.training.train import run_safely

SPEED_CASES = [("mlp", "ring8", "nonsaturating"), ("dcgan", "digits", "nonsaturating")]


def available(catalog, model: str, dataset: str) -> str | None:
    """Why (model, dataset) cannot be measured here, or None when it can."""
    if model not in catalog.models.names():
        return f"model {model!r} is not registered"
    if dataset not in catalog.datasets.names():
        return f"dataset {dataset!r} is not registered"
    missing = catalog.datasets.get(dataset).availability(None)
    return f"dataset {dataset!r}: {missing}" if missing else None


def same_result(a: RunResult, b: RunResult) -> bool:
    keys = sorted(a.metrics)
    history = [c for c in a.history.columns if c != "seconds"]
    return (
        a.status == b.status
        and keys == sorted(b.metrics)
        and np.array_equal([a.metrics[k] for k in keys], [b.metrics[k] for k in keys], equal_nan=True)
        and a.history[history].equals(b.history[history])
    )


def grid_check(env, config, cases, device: str, folder: Path, executor: str = "local") -> dict[str, list]:
    models = sorted({m for m, _d, _l in cases})
    datasets = sorted({d for _m, d, _l in cases})
    options = GridOptions(
        losses=["nonsaturating", "wgan-gp"],
        models=models,
        datasets=datasets,
        seeds=[0],
        preset="smoke",
        device=device,
        executor=executor,
        results=folder,
        workers=1,
        executor_options={},
    )
    outcome = run_grid(env, config, options)
    print(f"  {executor}: {len(outcome.trained)} runs: {dict(outcome.counts)}")
    for result in outcome.trained:
        if result.status != "ok":
            print(f"    {result.spec.label}: {result.status}: {result.reason}")
    with sqlite3.connect(folder / "lossbench.db") as connection:
        return {
            "metrics": connection.execute(
                "SELECT run_id, key, value, text FROM metrics ORDER BY run_id, key"
            ).fetchall(),
            "counts": [dict(outcome.counts)],
            "environment": [outcome.trained[0].environment],
        }


def steps_per_second(catalog, model: str, dataset: str, loss: str, device: str, steps: int) -> float:
    base = expand(
        catalog, losses=[loss], models=[model], datasets=[dataset], seeds=[0], preset="quick", device=device
    ).specs[0]
    fields = {**base.to_dict(), "steps": steps, "eval_every": steps + 1}
    warm = run_safely(RunSpec.from_dict({**fields, "steps": 5, "eval_every": 6}), catalog)  # CUDA/cuDNN start-up
    result = run_safely(RunSpec.from_dict(fields), catalog)
    if result.status != "ok" or warm.status != "ok":
        raise RuntimeError(f"{model} on {device}: {result.status}: {result.reason or warm.reason}")
    return steps / result.train_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per speed measurement")
    parser.add_argument("--ray", action="store_true", help="also run the grid through a local Ray and compare")
    parser.add_argument("--device", default="cuda", help="the device under test (cpu: a dry run of this script)")
    options = parser.parse_args()

    device = options.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "gpu_check: CUDA is not available on this machine (torch sees no GPU); nothing was run. "
            "Run it on a machine with an NVIDIA GPU and a CUDA build of PyTorch."
        )
        return 0
    seeding.prepare_process()  # CUBLAS_WORKSPACE_CONFIG before the CUDA context starts
    config = PluginConfig()
    env = load_environment(config)
    catalog = env.catalog
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else device
    print(f"device: {name}; torch {torch.__version__}; CUDA {torch.version.cuda}")
    cases = []
    for model, dataset, loss in SPEED_CASES:
        why = available(catalog, model, dataset)
        if why:
            print(f"skipping {model} on {dataset}: {why}")
        else:
            cases.append((model, dataset, loss))
    failures = []

    print(f"\n1. a small grid on {device} (smoke preset)")
    with tempfile.TemporaryDirectory(prefix="lossbench-gpu-") as folder:
        local = grid_check(env, config, cases, device, Path(folder) / "local")
        if set(local["counts"][0]) != {"ok"}:
            failures.append(f"grid on {device}: not every run ok")
        environment = local["environment"][0]
        print(
            "  recorded with the run: "
            + ", ".join(
                f"{key}={environment.get(key)}"
                for key in (
                    "device",
                    "gpu",
                    "deterministic_algorithms",
                    "cudnn_deterministic",
                    "cudnn_benchmark",
                    "cublas_workspace_config",
                    "cublas_config_before_cuda",
                )
            )
        )
        if options.ray:
            remote = grid_check(env, config, cases, device, Path(folder) / "ray", executor="ray")
            same = remote["metrics"] == local["metrics"]
            print(f"  ray metrics bitwise equal to in-process: {'yes' if same else 'NO'}")
            if not same:
                failures.append(f"ray vs in-process metrics differ on {device}")

    print(f"\n2. the same run twice on {device}")
    for model, dataset, _loss in cases:
        spec = expand(
            catalog, losses=["wgan-gp"], models=[model], datasets=[dataset], seeds=[0], preset="smoke", device=device
        ).specs[0]
        first, second = run_safely(spec, catalog), run_safely(spec, catalog)
        same = first.status == "ok" and same_result(first, second)
        print(
            f"  {spec.label}: {first.status}; metrics and history identical: {'yes' if same else 'NO'}"
            + (f" ({first.reason})" if first.reason else "")
        )
        if not same:
            failures.append(f"{spec.label} not reproducible on {device}")

    print(
        f"\n3. training steps/s ({options.steps} steps, batch {PRESETS['quick'].batch_size}, "
        f"{seeding.run_threads()} CPU thread(s) per run)"
    )
    for model, dataset, loss in cases:
        try:
            cpu = steps_per_second(catalog, model, dataset, loss, "cpu", options.steps)
            cuda = steps_per_second(catalog, model, dataset, loss, device, options.steps)
        except RuntimeError as exc:
            failures.append(str(exc))
            print(f"  {model:<6} on {dataset}: {exc}")
            continue
        print(f"  {model:<6} on {dataset:<7} cpu {cpu:8.1f}   {device} {cuda:8.1f}   {device}/cpu {cuda / cpu:5.2f}x")

    print("\n" + ("all checks passed" if not failures else "FAILED: " + "; ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
