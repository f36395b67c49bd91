"""Quality against training steps, per loss: the measurements behind the default grid's budgets (docs/budgets.md).

Each (dataset, model, loss, seed) trains once for ``--steps`` generator steps with a light evaluation every
``--every`` steps on ``--eval-samples`` samples (2,500: the mixtures' protocol size). Training is deterministic
and an evaluation draws no training randomness, so the value at step s is what a run of s steps would score
(with the light evaluation's sample count). Also prints the seconds of training per 1,000 steps and of one
evaluation, measured inside the run with its pinned threads (``$LOSSBENCH_RUN_THREADS``, default 1): on a shared
machine these are the honest per-run costs; wall-clock time is not.

    PYTHONPATH=. python benchmarks/convergence.py -d ring8 -l nonsaturating --steps 4000 --every 500
    PYTHONPATH=. python benchmarks/convergence.py -d digits -m dcgan --steps 2000 --every 250 --batch 64
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import pandas as pd

from lossbench.grid import RunSpec
from lossbench.plugins import PluginConfig, load_environment
from lossbench.train import run_safely

KEYS = ("modes_covered", "modes_high_quality", "modes_kl", "fid")


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def run_one(catalog, dataset: str, model: str, loss: str, seed: int, args) -> tuple[pd.DataFrame, dict]:
    """Train one run and return its curve (step x key, final values at the last step) and its costs."""
    spec = RunSpec(loss=loss, model=model, dataset=dataset, seed=seed, steps=args.steps, batch_size=args.batch,
                   log_every=max(1, args.every // 4), eval_every=args.every, eval_samples=args.eval_samples,
                   final_samples=args.eval_samples, preset="convergence")
    started = time.perf_counter()
    result = run_safely(spec, catalog)
    wall = time.perf_counter() - started
    curves = result.curves.copy()
    final = pd.DataFrame([(args.steps, key, value) for key, value in result.metrics.items()],
                         columns=["step", "key", "value"])
    table = pd.concat([curves, final]).pivot_table(index="step", columns="key", values="value", aggfunc="first")
    n_evals = len(curves["step"].unique()) + 1
    costs = {"status": result.status, "train_s": result.train_seconds, "eval_s": result.eval_seconds,
             "wall_s": wall, "train_s_per_1k": 1000 * result.train_seconds / args.steps,
             "eval_s_each": result.eval_seconds / n_evals}
    dataset_obj = catalog.datasets.get(dataset)
    target = getattr(dataset_obj, "target", None)
    if target is not None:
        floor = result.metrics.get("fid_floor", math.nan)
        table["target_reached"] = [
            target.reached({**row.dropna().to_dict(), "fid_floor": floor}) for _step, row in table.iterrows()
        ]
    if "fid" in table and "fid_floor" in result.metrics:
        table["fid_over_floor"] = table["fid"] / result.metrics["fid_floor"]
    return table, costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--datasets", default="ring8,grid25")
    parser.add_argument("-m", "--models", default="", help="default: every compatible GAN model")
    parser.add_argument("-l", "--losses", default="nonsaturating", help="comma-separated, or 'gan' for every GAN loss")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--eval-samples", type=int, default=2500)
    parser.add_argument("--lr-scale", type=float, default=1.0,
                        help="multiply every loss's recipe learning rates (a what-if; the grid uses the recipes)")
    parser.add_argument("--width", type=int, help="override the models' width (mlp: hidden units; dcgan: channels)")
    args = parser.parse_args()

    catalog = load_environment(PluginConfig()).catalog
    if args.lr_scale != 1.0:
        for name in catalog.losses.names():
            loss = catalog.losses.get(name)
            loss.recipe = dataclasses.replace(loss.recipe, lr_g=loss.recipe.lr_g * args.lr_scale,
                                              lr_d=loss.recipe.lr_d * args.lr_scale)
    if args.width:
        for name in catalog.models.names():
            factory = catalog.models.get(name)
            if hasattr(factory, "widths"):
                factory.widths = {size: args.width for size in factory.widths}
            elif hasattr(factory, "width"):
                factory.width = args.width
    losses = _names(args.losses)
    if losses == ["gan"]:
        losses = [n for n in catalog.losses.names() if catalog.losses.get(n).family == "gan"]
    seeds = [int(s) for s in _names(args.seeds)]
    print(f"steps {args.steps}, light evaluation every {args.every} on {args.eval_samples} samples, "
          f"batch {args.batch}, width {args.width or 'default'}, lr x {args.lr_scale:g}, seeds {seeds}; value at step s = mean over seeds")
    for dataset in _names(args.datasets):
        spec = catalog.datasets.get(dataset).spec
        models = _names(args.models) or [n for n in catalog.models.names()
                                         if catalog.models.get(n).family == "gan" and catalog.models.get(n).supports(spec)]
        target = getattr(catalog.datasets.get(dataset), "target", None)
        for model in models:
            for loss in losses:
                tables, costs = [], []
                for seed in seeds:
                    table, cost = run_one(catalog, dataset, model, loss, seed, args)
                    tables.append(table)
                    costs.append(cost)
                mean = pd.concat(tables).groupby(level=0).mean(numeric_only=True)
                shown = [k for k in (*KEYS, "fid_over_floor", "target_reached") if k in mean]
                print(f"\n{dataset} · {model} · {loss}"
                      + (f"   target: {target.describe()}" if target is not None else ""))
                print(mean[shown].to_string(float_format=lambda v: f"{v:.3g}"))
                frame = pd.DataFrame(costs)
                print(f"  statuses: {', '.join(frame['status'])}; train {frame['train_s_per_1k'].mean():.2f} s per "
                      f"1,000 steps, one evaluation {frame['eval_s_each'].mean():.2f} s, run wall "
                      f"{frame['wall_s'].mean():.1f} s (pinned threads; mean over seeds)")


if __name__ == "__main__":
    main()
