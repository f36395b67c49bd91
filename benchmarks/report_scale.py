"""The report at scale: ``lossbench report`` on a synthetic store of N runs (default 2,000), its wall time and the
size of the index page and of the report folder. Targets (issue 16): <= 60 s on 2 cores, index page < 2 MB.

The store is real (``Store.commit``, SQLite) with made-up values: 20 losses (the built-ins and nine plugin names)
x 2 models x ring8 x N/40 seeds, each with 13 history rows, two light evaluations, the headline metrics and 2,500
generated points; one run in 25 diverged and one in 50 failed. The report is built twice: from scratch, then
again on the same folder (cached per-run figures reused), each in a fresh ``lossbench report`` process.

    python benchmarks/report_scale.py [--runs 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench.plan.grid import PRESETS, RunSpec
from lossbench.records import HISTORY_COLUMNS, RunResult
from lossbench.report.figures import BUILTIN_LOSS_SLOTS
from lossbench.results.store import Store

LOSSES = [name for name in BUILTIN_LOSS_SLOTS if "vae" not in name] + [f"plugin-{i}" for i in range(12)]
MODELS = ["mlp", "mlp-wide"]


def synthetic_store(results: Path, n_runs: int) -> int:
    preset = PRESETS["smoke"]
    rng = np.random.default_rng(0)
    seeds = max(1, n_runs // (len(LOSSES) * len(MODELS)))
    count = 0
    with Store.open(results) as store:
        for model in MODELS:
            for index, loss in enumerate(LOSSES):
                for seed in range(seeds):
                    spec = RunSpec(
                        loss=loss,
                        model=model,
                        dataset="ring8",
                        seed=seed,
                        steps=120,
                        batch_size=preset.batch_size,
                        log_every=10,
                        eval_every=40,
                        eval_samples=preset.eval_samples,
                        final_samples=preset.final_samples,
                        device="cpu",
                        preset="smoke",
                    )
                    status = "failed" if count % 50 == 49 else "diverged" if count % 25 == 24 else "ok"
                    steps = [1, *range(10, 121, 10)]
                    history = pd.DataFrame(
                        [{c: float(rng.normal()) for c in HISTORY_COLUMNS} | {"step": s} for s in steps],
                        columns=list(HISTORY_COLUMNS),
                    )
                    curves = pd.DataFrame(
                        [(s, "fid", float(rng.gamma(2.0) + index / 5)) for s in (40, 80)],
                        columns=["step", "key", "value"],
                    )
                    metrics = (
                        {}
                        if status == "failed"
                        else {
                            "fid": float(rng.gamma(2.0) + index / 5),
                            "fid_floor": 0.01,
                            "modes_covered": float(rng.integers(1, 9)),
                            "modes_high_quality": float(rng.random()),
                            "modes_kl": float(rng.random()),
                            "prdc_precision": float(rng.random()),
                            "prdc_recall": float(rng.random()),
                            "stability_diverged": float(status == "diverged"),
                        }
                    )
                    texts = {} if status == "failed" else {"fid_features": "coordinates"}
                    samples = rng.normal(size=(2500, 2)).astype(np.float32) if status == "ok" else None
                    store.commit(
                        RunResult(
                            spec=spec,
                            status=status,
                            reason="" if status == "ok" else "synthetic",
                            failed_step=None if status == "ok" else 60,
                            history=history if status != "failed" else history.iloc[0:0],
                            curves=curves if status == "ok" else curves.iloc[0:0],
                            metrics=metrics,
                            texts=texts,
                            samples=samples,
                            train_seconds=1.0,
                            eval_seconds=0.5,
                            environment={"device": "cpu", "torch": "synthetic"},
                        )
                    )
                    count += 1
    return count


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--keep", type=Path, help="Build in this folder and keep it (default: a temporary one).")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="lossbench-report-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    n = synthetic_store(root / "results", args.runs)
    print(
        f"synthetic store: {n} runs ({len(LOSSES)} losses x {len(MODELS)} models) in "
        f"{time.perf_counter() - started:.1f}s; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'build':<10} {'seconds':>8} {'index MB':>9} {'report MB':>10} {'pages':>6}")
    for build in ("scratch", "rebuild"):
        began = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "lossbench.cli",
                "report",
                "--results",
                str(root / "results"),
                "--reports",
                str(root / "reports"),
                "--plugins-dir",
                str(root),
            ],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - began
        if done.returncode != 0:
            sys.exit(f"lossbench report failed ({done.returncode}):\n{done.stderr[-3000:]}")
        index = root / "reports" / "index.html"
        pages = len(list((root / "reports").rglob("*.html")))
        print(
            f"{build:<10} {seconds:>8.1f} {index.stat().st_size / 1e6:>9.2f} "
            f"{folder_size(root / 'reports') / 1e6:>10.1f} {pages:>6}"
        )
    print(f"targets: <= 60 s and index < 2 MB on 2 cores; folder: {root}")


if __name__ == "__main__":
    main()
