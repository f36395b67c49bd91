"""What keeping checkpoints costs and what rescoring saves: per built-in model, the checkpoint's size, the time to
train and score a run, and the time ``lossbench rescore`` takes to score it again with every metric.

Each combination trains one seed of the chosen preset on the CPU into a temporary results folder; rescoring then
recomputes every metric from the stored checkpoint and must give the stored values (checked, bit for bit).

    python benchmarks/checkpoint_cost.py [--preset smoke] [--steps N]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from lossbench.jobs.driver import GridOptions, run_grid
from lossbench.jobs.rescore import rescore
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.results.store import Store

COMBINATIONS = [  # (dataset, model, loss): one per built-in model
    ("ring8", "mlp", "nonsaturating"),
    ("ring8", "mlp-vae", "vae"),
    ("digits", "dcgan", "nonsaturating"),
    ("digits", "conv-vae", "vae"),
    ("stacked-digits", "dcgan", "nonsaturating"),
]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--steps", type=int, default=None)
    options = parser.parse_args()
    env = load_environment(PluginConfig(entry_points=False, default_folders=False))
    metrics = env.catalog.metrics.names()
    print(f"{'dataset/model/loss':<36} {'checkpoint KiB':>14} {'train s':>8} {'score s':>8} {'rescore s':>9}  same")
    for dataset, model, loss in COMBINATIONS:
        with tempfile.TemporaryDirectory() as folder:
            results = Path(folder)
            grid = GridOptions(
                losses=[loss],
                models=[model],
                datasets=[dataset],
                seeds=[0],
                preset=options.preset,
                steps=options.steps,
                device="cpu",
                results=results,
            )
            outcome = run_grid(env, PluginConfig(entry_points=False, default_folders=False), grid)
            run = outcome.trained[0]
            with Store.open(results) as store:
                before = store.metrics().set_index("key")["value"].to_dict()
                size = store.checkpoint_path(run.run_id).stat().st_size
                started = time.perf_counter()
                rescore(env, store, metrics)
                seconds = time.perf_counter() - started
                after = store.metrics().set_index("key")["value"].to_dict()
            equal = before.keys() == after.keys() and all(same(before[k], after[k]) for k in before)
            print(
                f"{dataset + '/' + model + '/' + loss:<36} {size / 1024:>14.1f} {run.train_seconds:>8.2f} "
                f"{run.eval_seconds:>8.2f} {seconds:>9.2f}  {'yes' if equal else 'NO'}"
            )


if __name__ == "__main__":
    main()
