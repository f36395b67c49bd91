"""Aggregation across seeds: one row per dataset x model x loss x metric with honest uncertainty.

The bootstrap is seeded, so the same store always gives the same summary.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lossbench.seeding import derive_seed

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
GROUP = ["dataset", "model", "loss"]
SUMMARY_COLUMNS = [
    "dataset", "model", "loss", "metric", "n_seeds", "n_ok", "n_diverged", "n_failed", "success_share",
    "n_values", "mean", "std", "cv", "ci_low", "ci_high", "median", "rank",
]

# Metric keys whose better direction is known: lower is better unless listed as higher.
HIGHER_IS_BETTER_PREFIXES = ("modes_covered", "modes_high_quality", "prdc_precision", "prdc_recall",
                             "prdc_density", "prdc_coverage", "classifier_accuracy")


def better_direction(key: str) -> str:
    """'higher' or 'lower': which way a metric key improves, for ranks."""
    return "higher" if key.startswith(HIGHER_IS_BETTER_PREFIXES) else "lower"


def bootstrap_ci(values: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; (nan, nan) for fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarise(runs_wide: pd.DataFrame) -> pd.DataFrame:
    """Summary table from the wide runs table (one row per run, metric columns) of ``Store.runs_wide``."""
    if runs_wide.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    fixed = {"run_id", "dataset", "model", "loss", "seed", "preset", "steps", "device", "status", "reason", "failed_step"}
    metric_keys = [c for c in runs_wide.columns if c not in fixed and pd.api.types.is_numeric_dtype(runs_wide[c])]
    rows = []
    for (dataset, model, loss), group in runs_wide.groupby(GROUP, sort=True):
        counts = group["status"].value_counts()
        n_seeds = len(group)
        ok = group[group["status"] == "ok"]
        for key in metric_keys:
            values = ok[key].dropna().to_numpy(dtype=float)
            mean = float(values.mean()) if len(values) else math.nan
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            low, high = bootstrap_ci(values, derive_seed("bootstrap", dataset, model, loss, key))
            rows.append({
                "dataset": dataset, "model": model, "loss": loss, "metric": key,
                "n_seeds": n_seeds, "n_ok": int(counts.get("ok", 0)), "n_diverged": int(counts.get("diverged", 0)),
                "n_failed": int(counts.get("failed", 0)), "success_share": counts.get("ok", 0) / n_seeds,
                "n_values": len(values), "mean": mean, "std": std,
                "cv": std / abs(mean) if len(values) > 1 and mean != 0 else math.nan,
                "ci_low": low, "ci_high": high,
                "median": float(np.median(values)) if len(values) else math.nan,
            })
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-1])
    summary["rank"] = math.nan
    for (_dataset, _model, key), group in summary.groupby(["dataset", "model", "metric"]):
        ascending = better_direction(key) == "lower"
        summary.loc[group.index, "rank"] = group["mean"].rank(ascending=ascending, method="min")
    return summary[SUMMARY_COLUMNS]
