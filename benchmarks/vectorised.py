"""The stacked engine against the sequential one: run-steps per second training the same runs, in one process.

The set is every GAN loss x 3 seeds on ring8 · mlp and on digits · dcgan (the stacked engine groups them by
recipe). Each round trains the whole set sequentially (``train.run_safely``) and then stacked
(``stacked.run_groups``), alternating, so that load from other processes on a shared machine falls on both sides;
the figures are training time only (``RunResult.train_seconds``: evaluations are the same code on both sides), and
both sides use ``seeding.run_threads()`` threads. The largest stacked-vs-sequential metric gap is printed as a
check that both sides trained the same runs. Goals (2 CPU cores): >= 3x for ring8 · mlp, >= 1.5x for digits · dcgan.

    python benchmarks/vectorised.py [--steps 200] [--seeds 3] [--rounds 2] [--only ring8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from lossbench.api import AdversarialLoss
from lossbench.plan import seeding
from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import load_environment
from lossbench.training.stacked import plan_groups, run_groups
from lossbench.training.train import run_safely

SETS = {"ring8": ("mlp", 128), "digits": ("dcgan", 64)}


def specs_for(dataset: str, steps: int, seeds: int, catalog) -> list[RunSpec]:
    model, batch = SETS[dataset]
    losses = [n for n in catalog.losses.names() if isinstance(catalog.losses.get(n), AdversarialLoss)]
    return [RunSpec(loss=loss, model=model, dataset=dataset, seed=seed, steps=steps, batch_size=batch,
                    log_every=25, eval_every=steps + 1, eval_samples=200, final_samples=200, device="cpu",
                    preset="benchmark") for loss in losses for seed in range(seeds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=None)
    parser.add_argument("--only", choices=sorted(SETS), default=None)
    args = parser.parse_args()
    catalog = load_environment().catalog
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"threads per run {seeding.run_threads()}")
    print(f"{'set':<16}{'runs':>5}{'groups':>7}{'seq run-steps/s':>17}{'stacked run-steps/s':>21}{'ratio':>7}"
          f"{'max |metric gap|':>18}")
    for dataset in [args.only] if args.only else list(SETS):
        specs = specs_for(dataset, args.steps, args.seeds, catalog)
        groups = plan_groups(specs, catalog, args.group_size)
        seq_seconds = stacked_seconds = 0.0
        gap, worst = 0.0, "-"
        for _ in range(args.rounds):
            sequential = {s.run_id: run_safely(s, catalog) for s in specs}
            seq_seconds += sum(r.train_seconds for r in sequential.values())
            quiet: list[str] = []
            stacked = {r.run_id: r for r in run_groups(specs, catalog, args.group_size, notice=quiet.append)}
            stacked_seconds += sum(r.train_seconds for r in stacked.values())
            for run_id, a in stacked.items():
                b = sequential[run_id]
                for key in a.metrics.keys() & b.metrics.keys():
                    difference = abs(a.metrics[key] - b.metrics[key])
                    if difference > gap:  # NaN (undefined on both sides) never counts
                        gap, worst = difference, f"{a.spec.loss} seed {a.spec.seed}: {key}"
            for line in quiet:
                print("  " + line, file=sys.stderr)
        run_steps = len(specs) * args.steps * args.rounds
        seq_rate, stacked_rate = run_steps / seq_seconds, run_steps / stacked_seconds
        label = f"{dataset} · {SETS[dataset][0]}"
        print(f"{label:<16}{len(specs):>5}{len(groups):>7}{seq_rate:>17.0f}{stacked_rate:>21.0f}"
              f"{stacked_rate / seq_rate:>6.2f}x{gap:>18.2g}  ({worst})", flush=True)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"({time.perf_counter() - started:.0f} s)")
