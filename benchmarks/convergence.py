"""Quality against training steps, per loss: the measurements behind the default grid's budgets (docs/budgets.md).

Each (dataset, model, loss, seed) trains once for ``--steps`` generator steps with a light evaluation every
``--every`` steps on ``--eval-samples`` samples (2,500: the mixtures' protocol size). Training is deterministic
and an evaluation draws no training randomness, so the value at step s is what a run of s steps would score
(with the light evaluation's sample count). Also prints the seconds of training per 1,000 steps and of one
evaluation, measured inside the run with its pinned threads (``$LOSSBENCH_RUN_THREADS``, default 1): on a shared
machine these are the honest per-run costs; wall-clock time is not.

    PYTHONPATH=. python benchmarks/convergence.py -d ring8 -l nonsaturating --steps 4000 --every 500
    PYTHONPATH=. python benchmarks/convergence.py -d digits -m dcgan --steps 2000 --every 250 --batch 64

``--estimate quick`` instead extrapolates the wall time of a preset's whole default grid on ``--cores`` cores:
it trains every distinct dataset x model x loss of that grid once (seed 0) for ``--probe-steps`` steps through
the real driver (one worker, a temporary store), measures each one's seconds per training step and its final
evaluation, the harness's own time per run (wall clock minus training and evaluation), and the report's build
time per run, then adds up every run of the grid at its real steps and divides by the cores.

    PYTHONPATH=. python benchmarks/convergence.py --estimate quick --probe-steps 200 --cores 2
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import pandas as pd

from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.training.train import run_safely

KEYS = ("modes_covered", "modes_high_quality", "modes_kl", "fid")


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def run_one(catalog, dataset: str, model: str, loss: str, seed: int, args) -> tuple[pd.DataFrame, dict]:
    """Train one run and return its curve (step x key, final values at the last step) and its costs."""
    spec = RunSpec(
        loss=loss,
        model=model,
        dataset=dataset,
        seed=seed,
        steps=args.steps,
        batch_size=args.batch,
        log_every=max(1, args.every // 4),
        eval_every=args.every,
        eval_samples=args.eval_samples,
        final_samples=args.eval_samples,
        preset="convergence",
    )
    started = time.perf_counter()
    result = run_safely(spec, catalog)
    wall = time.perf_counter() - started
    curves = result.curves.copy()
    final = pd.DataFrame(
        [(args.steps, key, value) for key, value in result.metrics.items()], columns=["step", "key", "value"]
    )
    table = pd.concat([curves, final]).pivot_table(index="step", columns="key", values="value", aggfunc="first")
    n_evals = len(curves["step"].unique()) + 1
    costs = {
        "status": result.status,
        "train_s": result.train_seconds,
        "eval_s": result.eval_seconds,
        "wall_s": wall,
        "train_s_per_1k": 1000 * result.train_seconds / args.steps,
        "eval_s_each": result.eval_seconds / n_evals,
    }
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


LIGHT_EVAL_SECONDS = 0.2  # one light evaluation (500 samples), the upper end of what the curves above measure


def estimate(preset_name: str, probe_steps: int, cores: int) -> None:
    """Extrapolate the default grid's wall time from one short probe run per distinct combination."""
    import tempfile
    from pathlib import Path

    from lossbench.jobs.driver import GridOptions, run_grid
    from lossbench.plan.grid import expand
    from lossbench.report import build_report
    from lossbench.results.store import Store

    env = load_environment(PluginConfig())
    plan = expand(env.catalog, preset=preset_name, device="cpu")
    probe_root = Path(tempfile.mkdtemp(prefix="lossbench-estimate-"))
    options = GridOptions(
        seeds=[0], preset=preset_name, steps=probe_steps, device="cpu", workers=1, results=probe_root / "results"
    )
    started = time.perf_counter()
    outcome = run_grid(env, PluginConfig(), options)
    wall = time.perf_counter() - started
    started = time.perf_counter()
    build_report(probe_root / "results", probe_root / "reports", env.catalog)
    report_seconds = time.perf_counter() - started
    with Store.open(probe_root / "results") as store:
        runs = store.runs()
    costs = {(r.dataset, r.model, r.loss): (r.train_seconds / probe_steps, r.eval_seconds) for r in runs.itertuples()}
    overhead = max(0.0, (wall - float((runs["train_seconds"] + runs["eval_seconds"]).sum())) / len(runs))
    rows = []
    for spec in plan.specs:
        per_step, final_eval = costs[(spec.dataset, spec.model, spec.loss)]
        light = max(0, (spec.steps - 1) // spec.eval_every) * LIGHT_EVAL_SECONDS
        rows.append(
            {
                "dataset": spec.dataset,
                "model": spec.model,
                "loss": spec.loss,
                "steps": spec.steps,
                "seconds": per_step * spec.steps + final_eval + light + overhead,
            }
        )
    table = pd.DataFrame(rows)
    per_combo = table.groupby(["dataset", "model", "loss"]).agg(
        steps=("steps", "first"), runs=("seconds", "size"), seconds_per_run=("seconds", "mean")
    )
    print(
        f"preset {preset_name}: {len(plan.specs)} runs; probe: {len(runs)} runs of {probe_steps} steps "
        f"({outcome.counts}), harness {overhead:.2f} s per run, report {report_seconds:.1f} s for {len(runs)} runs"
    )
    print(per_combo.to_string(float_format=lambda v: f"{v:.1f}"))
    total = float(table["seconds"].sum())
    report = report_seconds * len(plan.specs) / len(runs)
    print(
        f"\ntraining + evaluation + harness: {total:.0f} core-seconds; on {cores} cores {total / cores / 60:.1f} "
        f"min, plus the report ({report:.0f} s, one process): {(total / cores + report) / 60:.1f} min. "
        f"Seconds are measured with the runs' pinned threads; on a shared machine they are upper bounds."
    )
    for note in plan.notes:
        print(f"note: {note}")


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
    parser.add_argument(
        "--lr-scale",
        type=float,
        default=1.0,
        help="multiply every loss's recipe learning rates (a what-if; the grid uses the recipes)",
    )
    parser.add_argument("--estimate", metavar="PRESET", help="extrapolate PRESET's default grid wall time instead")
    parser.add_argument("--probe-steps", type=int, default=200)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--width", type=int, help="override the models' width (mlp: hidden units; dcgan: channels)")
    args = parser.parse_args()
    if args.estimate:
        estimate(args.estimate, args.probe_steps, args.cores)
        return

    catalog = load_environment(PluginConfig()).catalog
    if args.lr_scale != 1.0:
        for name in catalog.losses.names():
            loss = catalog.losses.get(name)
            loss.recipe = dataclasses.replace(
                loss.recipe, lr_g=loss.recipe.lr_g * args.lr_scale, lr_d=loss.recipe.lr_d * args.lr_scale
            )
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
    print(
        f"steps {args.steps}, light evaluation every {args.every} on {args.eval_samples} samples, "
        f"batch {args.batch}, width {args.width or 'default'}, lr x {args.lr_scale:g}, seeds {seeds}; "
        "value at step s = mean over seeds"
    )
    for dataset in _names(args.datasets):
        spec = catalog.datasets.get(dataset).spec
        models = _names(args.models) or [
            n
            for n in catalog.models.names()
            if catalog.models.get(n).family == "gan" and catalog.models.get(n).supports(spec)
        ]
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
                print(
                    f"\n{dataset} · {model} · {loss}"
                    + (f"   target: {target.describe()}" if target is not None else "")
                )
                print(mean[shown].to_string(float_format=lambda v: f"{v:.3g}"))
                frame = pd.DataFrame(costs)
                print(
                    f"  statuses: {', '.join(frame['status'])}; train {frame['train_s_per_1k'].mean():.2f} s per "
                    f"1,000 steps, one evaluation {frame['eval_s_each'].mean():.2f} s, run wall "
                    f"{frame['wall_s'].mean():.1f} s (pinned threads; mean over seeds)"
                )


if __name__ == "__main__":
    main()
