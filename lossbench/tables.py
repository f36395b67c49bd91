"""Aggregation across seeds: one row per dataset x model x loss x metric with honest uncertainty, and paired
comparisons between losses.

Everything here is deterministic (the bootstraps are seeded from the row's names), so the same store always
gives the same tables. Which runs count for a metric: runs that finished ("ok"); for ``stability_*`` keys also
runs that diverged, since stability is about them too. Failed runs have no values.
"""

from __future__ import annotations

import functools
import math
import warnings
from itertools import combinations
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from lossbench.seeding import derive_seed

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
ALPHA = 0.05
GROUP = ["dataset", "model", "loss"]
SUMMARY_COLUMNS = [
    "dataset", "model", "loss", "metric", "n_seeds", "n_ok", "n_diverged", "n_failed", "n_collapsed",
    "success_share", "n_values", "mean", "std", "cv", "ci_low", "ci_high", "median", "rank",
]
PAIRWISE_COLUMNS = [
    "dataset", "model", "metric", "loss_a", "loss_b", "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value",
    "p_holm", "significant", "better", "test", "min_p_value",
]
FIXED_COLUMNS = {"run_id", "dataset", "model", "loss", "seed", "preset", "steps", "device", "status", "reason",
                 "failed_step"}
PAIR_KEYS = ("seed", "preset", "steps")  # a pair is the same seed of the same setting
REFERENCE_LOSS = "nonsaturating"
GRAD_RATIO = "stability_g_grad_ratio"
COLLAPSED = "modes_collapsed"
SCORES = "stability_scores"  # "logits" or "raw": the scale of D's scores, hence of the generator's gradient

# Metric keys whose better direction is known without a metric object: lower is better unless listed here.
HIGHER_IS_BETTER_PREFIXES = ("modes_covered", "modes_high_quality", "prdc_precision", "prdc_recall",
                             "prdc_density", "prdc_coverage", "classifier_accuracy", "stability_g_grad_early",
                             GRAD_RATIO, "stability_diverged_step")


@functools.lru_cache(maxsize=1)
def _builtin_directions() -> dict[str, str]:
    from lossbench.builtin import metrics

    directions: dict[str, str] = {}
    for value in vars(metrics).values():
        if isinstance(value, type) and isinstance(getattr(value, "better", None), dict):
            directions.update(value.better)
    return directions


def better_direction(key: str, metrics: Iterable[object] = ()) -> str:
    """'higher' or 'lower': which way a metric key improves, for ranks and pairwise winners.

    A metric may declare ``better = {key: "higher" | "lower"}``; pass registered metrics to honour third-party
    declarations. Built-in keys are known; anything else is lower-is-better unless its prefix says otherwise.
    """
    for metric in metrics:
        declared = getattr(metric, "better", None)
        if isinstance(declared, dict) and key in declared:
            return declared[key]
    builtin = _builtin_directions()
    if key in builtin:
        return builtin[key]
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


def metric_keys(runs_wide: pd.DataFrame) -> list[str]:
    """The numeric metric columns of a wide runs table (text facts like ``fid_features`` are not metrics)."""
    return [c for c in runs_wide.columns if c not in FIXED_COLUMNS and pd.api.types.is_numeric_dtype(runs_wide[c])]


def counts_for(key: str, status: pd.Series) -> pd.Series:
    """Which runs' values count for ``key``: finished runs; diverged ones too for stability keys."""
    allowed = ("ok", "diverged") if key.startswith("stability_") else ("ok",)
    return status.isin(allowed)


def collapsed(runs_wide: pd.DataFrame) -> pd.Series:
    """Per run: mode collapse, i.e. ``modes_collapsed == 1`` (fewer modes covered than half of what a perfect
    sampler of the same size would cover; see ``builtin.metrics.mode_statistics``). False where unknown."""
    if COLLAPSED not in runs_wide.columns:
        return pd.Series(False, index=runs_wide.index)
    return pd.to_numeric(runs_wide[COLLAPSED], errors="coerce").fillna(0) >= 0.5


def succeeded(runs_wide: pd.DataFrame) -> pd.Series:
    """Per run: finished ("ok", so neither diverged nor failed) and not mode-collapsed."""
    return (runs_wide["status"] == "ok") & ~collapsed(runs_wide)


def grad_ratio(runs_wide: pd.DataFrame, reference: str = REFERENCE_LOSS) -> pd.Series:
    """Per run: early generator gradient (``stability_g_grad_early``) over the reference loss's on the same
    dataset, model and seed (same preset and steps). Below 1: the loss's generator gradient is weaker early on
    than the non-saturating loss's (saturation). NaN where either is missing, and where the two losses' scores
    are on different scales (``stability_scores``: logits vs raw critic values), which makes the ratio meaningless."""
    result = pd.Series(math.nan, index=runs_wide.index, name=GRAD_RATIO)
    key = "stability_g_grad_early"
    if key not in runs_wide.columns or runs_wide.empty:
        return result
    keys = ["dataset", "model"] + [c for c in PAIR_KEYS if c in runs_wide.columns]
    usable = runs_wide[counts_for(key, runs_wide["status"])]
    if SCORES in runs_wide.columns:  # gradients are comparable only on the same score scale (logits vs raw)
        keys = keys + [SCORES]
        runs_wide = runs_wide.assign(**{SCORES: runs_wide[SCORES].fillna("")})
        usable = runs_wide[counts_for(key, runs_wide["status"])]
    ref = usable[usable["loss"] == reference].dropna(subset=[key]).drop_duplicates(keys)
    ref = ref.set_index(keys)[key]
    if ref.empty:
        return result
    index = pd.MultiIndex.from_frame(runs_wide[keys])
    denominators = ref.reindex(index).to_numpy(dtype=float)
    numerators = pd.to_numeric(runs_wide[key], errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denominators > 0, numerators / denominators, math.nan)
    result[:] = np.where(counts_for(key, runs_wide["status"]).to_numpy(), ratio, math.nan)
    return result


def with_derived(runs_wide: pd.DataFrame) -> pd.DataFrame:
    """The wide table plus per-run values derived across runs (``stability_g_grad_ratio``) where defined."""
    ratio = grad_ratio(runs_wide)
    if ratio.notna().any():
        runs_wide = runs_wide.assign(**{GRAD_RATIO: ratio})
    return runs_wide


def summarise(runs_wide: pd.DataFrame) -> pd.DataFrame:
    """Summary table from the wide runs table (one row per run, metric columns) of ``Store.runs_wide``.

    Per dataset x model x loss x metric: seed counts by outcome, ``n_collapsed`` (finished but mode-collapsed
    seeds), ``success_share`` (seeds that neither diverged, failed nor collapsed, over all seeds), and over the
    counting runs' values: mean, std, coefficient of variation (std / |mean|), seeded percentile-bootstrap 95% CI
    of the mean, median, and the rank of the mean among losses (1 = best in the metric's direction).
    """
    if runs_wide.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    runs_wide = with_derived(runs_wide)
    keys = metric_keys(runs_wide)
    success = succeeded(runs_wide)
    is_collapsed = collapsed(runs_wide) & (runs_wide["status"] == "ok")
    rows = []
    for (dataset, model, loss), group in runs_wide.groupby(GROUP, sort=True):
        counts = group["status"].value_counts()
        n_seeds = len(group)
        for key in keys:
            values = group.loc[counts_for(key, group["status"]), key].dropna().to_numpy(dtype=float)
            mean = float(values.mean()) if len(values) else math.nan
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            low, high = bootstrap_ci(values, derive_seed("bootstrap", dataset, model, loss, key))
            rows.append({
                "dataset": dataset, "model": model, "loss": loss, "metric": key,
                "n_seeds": n_seeds, "n_ok": int(counts.get("ok", 0)), "n_diverged": int(counts.get("diverged", 0)),
                "n_failed": int(counts.get("failed", 0)), "n_collapsed": int(is_collapsed[group.index].sum()),
                "success_share": float(success[group.index].sum()) / n_seeds,
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


def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN and is not counted."""
    p = np.asarray(list(p_values), dtype=float)
    adjusted = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, (m - position) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def paired_test(differences: np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value (exact for small n); 1.0 when every difference is 0.

    Exact and distribution-free, hence honest with few seeds: with n non-zero pairs the smallest attainable
    p is 2 / 2^n, so fewer than 6 seeds can never reach 0.05 (see ``min_p_value``).
    """
    differences = np.asarray(differences, dtype=float)
    if len(differences) == 0:
        return math.nan
    if not np.any(differences != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def pairwise(runs_wide: pd.DataFrame, metric: str, alpha: float = ALPHA) -> pd.DataFrame:
    """Every pair of losses within each dataset x model, compared on ``metric`` over the seeds both have.

    Paired by seed (same preset and steps): ``mean_diff`` is the mean of (loss_a - loss_b) over the pairs with a
    seeded paired-bootstrap 95% CI; ``p_value`` is the paired Wilcoxon signed-rank test's, ``p_holm`` its Holm
    correction within the dataset x model x metric family; ``significant`` is ``p_holm < alpha``, and
    ``better`` names the better loss in the metric's direction when significant, else "". ``min_p_value`` is
    the smallest p the test could give with these pairs (2 / 2^n): above ``alpha`` means "too few seeds to
    tell", not "no difference".
    """
    if runs_wide.empty:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    if metric == GRAD_RATIO:
        runs_wide = with_derived(runs_wide)
    if metric not in runs_wide.columns:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    values = pd.to_numeric(runs_wide[metric], errors="coerce")
    usable = runs_wide[counts_for(metric, runs_wide["status"]) & np.isfinite(values)].assign(_value=values)
    pair_keys = [c for c in PAIR_KEYS if c in usable.columns]
    direction = better_direction(metric)
    rows = []
    for (dataset, model), group in usable.groupby(["dataset", "model"], sort=True):
        table = group.pivot_table(index=pair_keys, columns="loss", values="_value", aggfunc="first")
        family = []
        for loss_a, loss_b in combinations(sorted(table.columns), 2):
            both = table[[loss_a, loss_b]].dropna()
            differences = (both[loss_a] - both[loss_b]).to_numpy(dtype=float)
            n_pairs = len(differences)
            low, high = bootstrap_ci(differences, derive_seed("pairwise", dataset, model, metric, loss_a, loss_b))
            nonzero = int(np.count_nonzero(differences))
            family.append({
                "dataset": dataset, "model": model, "metric": metric, "loss_a": loss_a, "loss_b": loss_b,
                "n_pairs": n_pairs, "mean_diff": float(differences.mean()) if n_pairs else math.nan,
                "ci_low": low, "ci_high": high, "p_value": paired_test(differences),
                "test": "wilcoxon signed-rank (paired by seed)",
                "min_p_value": min(1.0, 2.0 / 2**nonzero) if nonzero else 1.0,
            })
        for row, adjusted in zip(family, holm(row["p_value"] for row in family)):
            row["p_holm"] = adjusted
            row["significant"] = bool(adjusted < alpha)  # NaN compares False
            a_better = row["mean_diff"] < 0 if direction == "lower" else row["mean_diff"] > 0
            row["better"] = (row["loss_a"] if a_better else row["loss_b"]) if row["significant"] else ""
        rows.extend(family)
    return pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)
