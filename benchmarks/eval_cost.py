"""Evaluation cost: the Fréchet distance on 10,000 x 2,048 features, and the share of a quick-preset run spent
evaluating.

1. ``frechet_distance_features`` on two sets of 10,000 x 2,048 float64 features (FID's size at the paper
   preset), BLAS limited to each of ``--threads`` (default 1 and 2; runs use 1, see ``seeding.run_threads``):
   statistics (means, covariances) and the distance, best of ``--repeats``. Target <= 5 s on 2 CPU cores. The
   load average is printed: on a shared machine, threaded BLAS mostly measures the neighbours.
2. Real quick-preset runs (``lossbench.training.train.run_safely``: final evaluation on 2,500 samples with every
   built-in metric, light evaluations every 250 steps), one per ``--case DATASET/MODEL`` (default ring8/mlp and
   digits/dcgan): eval_seconds / (train_seconds + eval_seconds). Target <= 25%.

    python benchmarks/eval_cost.py [--threads 1,2] [--repeats 3] [--case ring8/mlp] [--skip-runs]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from lossbench.plan.grid import expand
from lossbench.plugin.loader import load_environment
from lossbench.scoring.frechet import frechet_distance, gaussian_stats
from lossbench.training.train import load_data, run_safely

FID_TARGET_S = 5.0
EVAL_SHARE_TARGET = 0.25


def frechet_timing(threads: int, repeats: int, n: int = 10_000, d: int = 2048) -> tuple[float, float, float, float]:
    """Best (statistics s, distance s, total s, process CPU s of that repeat) over ``repeats``, wall clock.

    CPU seconds are printed too: on a shared machine wall time mostly measures the neighbours, and with one
    thread the CPU time is what the work costs a dedicated core.
    """
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)  # correlated features, like a network's
    x = np.maximum(rng.standard_normal((n, d)) @ mixing, 0)
    y = np.maximum(rng.standard_normal((n, d)) @ mixing + 0.05, 0)
    best = (np.inf, np.inf, np.inf, np.inf)
    with threadpool_limits(limits=threads):
        for _ in range(repeats):
            cpu = time.process_time()
            started = time.perf_counter()
            stats = gaussian_stats(x), gaussian_stats(y)
            middle = time.perf_counter()
            value = frechet_distance(*stats[0], *stats[1])
            done = time.perf_counter()
            if done - started < best[2]:
                best = (middle - started, done - middle, done - started, time.process_time() - cpu)
    assert np.isfinite(value) and value > 0
    return best


def eval_share(case: str) -> tuple[float, float, str]:
    dataset, model = case.split("/")
    env = load_environment()
    plan = expand(
        env.catalog,
        losses=["nonsaturating"],
        models=[model],
        datasets=[dataset],
        seeds=[0],
        preset="quick",
        device="cpu",
    )
    spec = plan.specs[0]
    data = env.catalog.datasets.get(dataset)
    load_data(data)  # loading the data is not evaluation ...
    data.feature_network(torch.device("cpu"))  # ... nor is training the classifier on first use (cached on disk)
    result = run_safely(spec, env.catalog)
    if result.status != "ok":
        raise SystemExit(f"{case}: run {result.status}: {result.reason}")
    spaces = result.texts.get("fid_features", "?")
    return result.train_seconds, result.eval_seconds, f"{spec.steps} steps, features {spaces}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="BLAS thread counts to time, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", action="append", help="DATASET/MODEL of a quick-preset run (repeatable)")
    parser.add_argument("--skip-runs", action="store_true")
    args = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for threads in (int(t) for t in args.threads.split(",")):
        stats_s, distance_s, total_s, cpu_s = frechet_timing(threads, args.repeats)
        verdict = "ok" if total_s <= FID_TARGET_S else "over target"
        print(
            f"Fréchet distance, 10,000 x 2,048 features, {threads} BLAS thread(s): {total_s:.2f} s wall "
            f"(statistics {stats_s:.2f} s + distance {distance_s:.2f} s; {cpu_s:.2f} CPU s; "
            f"target <= {FID_TARGET_S:.0f} s: {verdict})"
        )
    if args.skip_runs:
        return
    for case in args.case or ["ring8/mlp", "digits/dcgan"]:
        train_s, eval_s, facts = eval_share(case)
        share = eval_s / (train_s + eval_s)
        verdict = "ok" if share <= EVAL_SHARE_TARGET else "over target"
        print(
            f"quick preset {case} nonsaturating ({facts}): train {train_s:.1f} s, evaluation {eval_s:.1f} s, "
            f"evaluation share {share:.1%} (target <= {EVAL_SHARE_TARGET:.0%}: {verdict})"
        )


if __name__ == "__main__":
    main()
