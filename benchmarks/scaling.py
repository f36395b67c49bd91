"""Executors compared: the wall time of one smoke grid serial, with ``--workers 2`` and through a local Ray with
2 CPUs, as ratios to serial (target on 2 cores: workers >= 1.6x for a grid of at least 8 runs).

Each executor runs the same ``lossbench run`` command in a fresh process with a fresh results folder, so every
figure includes what a user waits for: the driver's start, worker processes' or Ray's start, training, scoring and
committing (the HTML report is left out: it does not depend on the executor). The runs' stored metrics are then
checked to be bitwise equal across the executors. The machine's load average is printed beside the timings,
because on a shared machine it, not the executor, can decide the figures.

    python benchmarks/scaling.py [--seeds 0,1] [--steps N] [--repeat 1] [--skip-ray]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOSSES = ["nonsaturating", "wgan-gp", "hinge", "lsgan"]


def grid_args(seeds: str, steps: int | None) -> list[str]:
    args = [
        "run",
        *sum((["-l", loss] for loss in LOSSES), []),
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--seeds",
        seeds,
        "--preset",
        "smoke",
        "--device",
        "cpu",
        "--no-report",
    ]
    return args + (["--steps", str(steps)] if steps else [])


def timed_run(args: list[str], results: Path) -> float:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lossbench.cli", *args, "--results", str(results)],
        capture_output=True,
        text=True,
        env=env,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def stored_metrics(results: Path) -> list[tuple]:
    with sqlite3.connect(results / "lossbench.db") as connection:
        return connection.execute("SELECT run_id, key, value, text FROM metrics ORDER BY run_id, key").fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1", help="seeds of the grid (4 losses each; default 0,1: 8 runs)")
    parser.add_argument("--steps", type=int, default=None, help="override the smoke preset's steps")
    parser.add_argument("--repeat", type=int, default=1, help="time each executor this many times; the best counts")
    parser.add_argument("--skip-ray", action="store_true", help="leave Ray out")
    options = parser.parse_args()

    executors = {"serial": [], "workers 2": ["--workers", "2"]}
    if not options.skip_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print('Ray is not installed (pip install "lossbench[ray]"): leaving it out')
        else:
            executors["ray, 2 CPUs"] = ["--executor", "ray", "--workers", "2"]

    args = grid_args(options.seeds, options.steps)
    n_runs = len(LOSSES) * len(options.seeds.split(","))
    print(
        f"grid: {n_runs} runs ({', '.join(LOSSES)} x mlp x ring8 x seeds {options.seeds}, smoke preset"
        f"{f', {options.steps} steps' if options.steps else ''}); {os.cpu_count()} CPUs"
    )
    timings: dict[str, float] = {}
    metrics: dict[str, list[tuple]] = {}
    with tempfile.TemporaryDirectory(prefix="lossbench-scaling-") as folder:
        for repeat in range(options.repeat):
            for name, extra in executors.items():
                results = Path(folder) / f"{name.replace(' ', '_').replace(',', '')}-{repeat}"
                load = os.getloadavg()[0]
                seconds = timed_run(args + extra, results)
                timings[name] = min(seconds, timings.get(name, float("inf")))
                metrics[name] = stored_metrics(results)
                print(f"  {name:<12} {seconds:7.1f} s   (load average before: {load:.1f})", flush=True)
    serial = timings["serial"]
    print("\nwall time of the grid (best of each), ratio = serial / executor (higher is faster):")
    for name, seconds in timings.items():
        print(f"  {name:<12} {seconds:7.1f} s   {serial / seconds:5.2f}x")
    same = all(rows == metrics["serial"] for rows in metrics.values())
    print(f"\nstored metrics bitwise equal across executors: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
