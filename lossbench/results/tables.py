"""Aggregation across seeds: one row per dataset x model x loss x metric with honest uncertainty, and paired
comparisons between losses.

Everything here is deterministic (the bootstraps are seeded from the row's names), so the same store always
gives the same tables. Two kinds of numbers, kept apart on purpose:

- Estimates over the seeds that produced a value (``mean``, ``std``, CI, ``median``): runs that finished
  ("ok"); for ``stability_*`` keys also runs that diverged, since stability is about them too. Labelled "over
  finished seeds" wherever shown.
- The ranking and the paired tests keep EVERY seed: a seed that failed or diverged (or a diverged seed's missing
  stability value, or a finished seed whose metric could not score its samples) takes the metric's worst value,
  so a loss that finishes 1 seed of 3 cannot rank first on that seed. ``mean_rank`` is the loss's mean rank
  among all seeds of all losses on that dataset x model (failures tied last); ``rank`` orders the losses by it.

Directions come from the metrics themselves (``Metric.better``: "lower" by default, "higher", or "none" for keys
that are facts rather than scores, which get no rank and no test). The harness stores each metric's
declaration with every run (a ``<metric>_facts`` text, ``lossbench.results.facts``), so a table rebuilt without
the plugin still ranks right; registered metrics passed in take precedence.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import combinations

import numpy as np
import pandas as pd

from lossbench.plan.seeding import derive_seed
from lossbench.records import base_key
from lossbench.results.facts import declared_facts, known_facts, stored_facts
from lossbench.results.signed_rank import paired_test, signed_rank_sum

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
ALPHA = 0.05
GROUP = ["dataset", "model", "loss"]
SUMMARY_COLUMNS = [
    "dataset",
    "model",
    "loss",
    "metric",
    "better",
    "n_seeds",
    "n_ok",
    "n_diverged",
    "n_failed",
    "n_collapsed",
    "success_share",
    "n_values",
    "mean",
    "std",
    "cv",
    "ci_low",
    "ci_high",
    "median",
    "n_ranked",
    "mean_rank",
    "rank",
]
PAIRWISE_COLUMNS = [
    "dataset",
    "model",
    "metric",
    "family",
    "family_size",
    "pair",
    "loss_a",
    "loss_b",
    "n_pairs",
    "n_finished_pairs",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "significant",
    "better",
    "test",
    "min_p_value",
    "min_p_holm",
    "min_seeds",
]
FIXED_COLUMNS = {
    "run_id",
    "dataset",
    "model",
    "loss",
    "seed",
    "preset",
    "steps",
    "device",
    "status",
    "reason",
    "failed_step",
}
PAIR_KEYS = ("seed", "preset", "steps")  # a pair is the same seed of the same setting
REFERENCE_LOSS = "nonsaturating"
DEFAULT_REFERENCES = ("nonsaturating", "vae")  # the first present in a dataset x model is its reference
COMPARISONS = ("reference", "all")
GRAD_RATIO = "stability_g_grad_ratio"
COLLAPSED = "modes_collapsed"
SCORES = "stability_scores"  # "logits" or "raw": the scale of D's scores, hence of the generator's gradient
FAILED = ("failed", "diverged")  # statuses whose seeds take the worst value where they have none
ERROR_SUFFIX = "_error"  # text stored when a metric raised on a run (``train.train_run``)
TEST_NAME = "wilcoxon signed-rank (paired by seed; failed seeds worst)"


def declared_directions(metrics: Iterable[object]) -> dict[str, str]:
    """``{key: direction}`` declared by metric objects (their ``better``)."""
    return {key: fact.better for key, fact in declared_facts(metrics).items()}


def stored_directions(runs_wide: pd.DataFrame) -> dict[str, str]:
    """Directions recorded with the runs (their metrics' facts), so that no plugin is needed to read them."""
    return {key: fact.better for key, fact in stored_facts(runs_wide).items()}


def directions(runs_wide: pd.DataFrame | None = None, metrics: Iterable[object] = ()) -> dict[str, str]:
    """Every known key's direction: those stored with the runs, then registered ``metrics``' over them."""
    return {key: fact.better for key, fact in known_facts(runs_wide, metrics).items()}


def better_direction(key: str, metrics: Iterable[object] = (), known: Mapping[str, str] | None = None) -> str:
    """'higher', 'lower' or 'none': which way a metric key improves ("none": shown, never ranked or tested).

    ``metrics`` (metric objects) come first, then ``known`` (e.g. ``directions(runs_wide)``); a key nobody
    declares is lower-is-better, the ``Metric.better`` default.
    """
    declared = declared_directions(metrics)
    if key in declared:
        return declared[key]
    if known is not None and key in known:
        return known[key]
    if base_key(key) != key:  # fid@s: the direction of fid
        return better_direction(base_key(key), metrics, known)
    return "lower"


def ranked(direction: str) -> bool:
    """Whether a key with this direction gets ranks and tests."""
    return direction in ("lower", "higher")


def bootstrap_ci(
    values: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; (nan, nan) for fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


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


def metric_errored(group: pd.DataFrame, key: str) -> pd.Series:
    """Per run: whether the metric that computes ``key`` raised (a ``<metric>_error`` text is stored), e.g. on
    samples it could not score. The metric is the longest prefix of ``key`` with such a column."""
    parts = key.split("_")
    for i in range(len(parts), 0, -1):
        column = "_".join(parts[:i]) + ERROR_SUFFIX
        if column in group.columns:
            return group[column].notna() & (group[column].astype(str) != "")
    return pd.Series(False, index=group.index)


def scored_values(group: pd.DataFrame, key: str, direction: str) -> pd.Series:
    """Per run, the value that ranks and tests use, oriented so that lower is better.

    A counting run's finite value (negated when higher is better); ``+inf`` (the worst) for a seed that failed or
    diverged without a value, or whose metric raised (no scorable sample); NaN for a finished run where the
    metric is undefined (it is left out).
    """
    # numpy inside: `lossbench show` calls this per dataset x model x key, and pandas indexing is what costs
    values = (
        pd.to_numeric(group[key], errors="coerce").to_numpy(dtype=float, na_value=math.nan)
        if key in group.columns
        else np.full(len(group), math.nan)
    )
    counting = counts_for(key, group["status"]).to_numpy() & np.isfinite(values)
    oriented = values if direction == "lower" else -values
    result = np.full(len(group), math.nan)
    result[counting] = oriented[counting]
    result[~counting & (group["status"].isin(FAILED) | metric_errored(group, key)).to_numpy()] = math.inf
    return pd.Series(result, index=group.index)


def eligible_losses(group: pd.DataFrame, scored: pd.Series) -> set[str]:
    """Losses that take part in a ranking: those with a value on some seed, or whose every seed is at the worst
    (all failed); not those where the metric is undefined (e.g. sigmoid(D) of a critic)."""
    losses, values = group["loss"].to_numpy(), scored.to_numpy(dtype=float)
    finite, worst = np.isfinite(values), values == math.inf
    return {name for name in set(losses) if finite[losses == name].any() or worst[losses == name].all()}


def pooled_ranks(group: pd.DataFrame, key: str, direction: str) -> pd.DataFrame:
    """Per loss: the mean rank of its seeds among all seeds of all losses (1 = best; failed seeds tied last)."""
    scored = scored_values(group, key, direction)
    keep = group["loss"].isin(eligible_losses(group, scored)) & scored.notna()
    if not keep.any():
        return pd.DataFrame(columns=["n_ranked", "mean_rank"])
    ranks = scored[keep].rank(method="average").to_numpy()
    names, of_loss, sizes = np.unique(
        group["loss"].to_numpy()[keep.to_numpy()], return_inverse=True, return_counts=True
    )
    mean_rank = np.bincount(of_loss, weights=ranks) / sizes  # ranks are halves: these sums are exact
    return pd.DataFrame({"n_ranked": sizes, "mean_rank": mean_rank}, index=pd.Index(names, name="loss"))


def summarise(runs_wide: pd.DataFrame, known: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Summary table from the wide runs table (one row per run, metric columns) of ``Store.runs_wide``.

    Per dataset x model x loss x metric: the metric's direction (``better``), seed counts by outcome,
    ``n_collapsed`` (finished but mode-collapsed seeds), ``success_share`` (seeds that neither diverged, failed nor
    collapsed, over all seeds); over the seeds with a value (finished seeds): mean, std, coefficient of variation
    (std / |mean|), seeded percentile-bootstrap 95% CI of the mean, median; over EVERY seed: ``n_ranked`` and
    ``mean_rank`` (see the module docstring) and ``rank`` (1 = best), NaN for keys whose direction is "none".
    ``known`` maps keys to directions (default: ``directions(runs_wide)``).
    """
    if runs_wide.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    runs_wide = with_derived(runs_wide)
    known = directions(runs_wide) if known is None else known
    keys = metric_keys(runs_wide)
    # numpy arrays sliced by each group's positions: `lossbench show` summarises the whole store on every call
    success = succeeded(runs_wide).to_numpy()
    is_collapsed = (collapsed(runs_wide) & (runs_wide["status"] == "ok")).to_numpy()
    status = runs_wide["status"].to_numpy()
    column = {key: runs_wide[key].to_numpy(dtype=float, na_value=math.nan) for key in keys}
    counting = {key: counts_for(key, runs_wide["status"]).to_numpy() for key in keys}
    better = {key: better_direction(key, known=known) for key in keys}
    rows = []
    for (dataset, model, loss), positions in sorted(runs_wide.groupby(GROUP).indices.items()):
        counts = Counter(status[positions])
        n_seeds = len(positions)
        n_collapsed, n_succeeded = int(is_collapsed[positions].sum()), int(success[positions].sum())
        for key in keys:
            values = column[key][positions]
            values = values[counting[key][positions] & ~np.isnan(values)]
            mean = float(values.mean()) if len(values) else math.nan
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            low, high = bootstrap_ci(values, derive_seed("bootstrap", dataset, model, loss, key))
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "loss": loss,
                    "metric": key,
                    "better": better[key],
                    "n_seeds": n_seeds,
                    "n_ok": counts["ok"],
                    "n_diverged": counts["diverged"],
                    "n_failed": counts["failed"],
                    "n_collapsed": n_collapsed,
                    "success_share": float(n_succeeded) / n_seeds,
                    "n_values": len(values),
                    "mean": mean,
                    "std": std,
                    "cv": std / abs(mean) if len(values) > 1 and mean != 0 else math.nan,
                    "ci_low": low,
                    "ci_high": high,
                    "median": float(np.median(values)) if len(values) else math.nan,
                }
            )
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-3])
    summary["n_ranked"] = 0
    summary["mean_rank"] = math.nan
    summary["rank"] = math.nan
    for (dataset, model), runs in runs_wide.groupby(["dataset", "model"], sort=True):
        part = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        for key, rows_of_key in part.groupby("metric"):
            direction = better_direction(key, known=known)
            if not ranked(direction):
                continue
            pooled = pooled_ranks(runs, key, direction)
            by_loss = rows_of_key.set_index("loss").index
            # float: a key no seed has a value for (e.g. NaN for every run) gives an empty, untyped ``pooled``
            n_ranked = pooled["n_ranked"].reindex(by_loss).astype(float).fillna(0)
            summary.loc[rows_of_key.index, "n_ranked"] = n_ranked.to_numpy(dtype=int)
            mean_rank = pooled["mean_rank"].reindex(by_loss).to_numpy(dtype=float)
            summary.loc[rows_of_key.index, "mean_rank"] = mean_rank
            summary.loc[rows_of_key.index, "rank"] = pd.Series(mean_rank).rank(method="min").to_numpy()
    summary["n_ranked"] = summary["n_ranked"].astype(int)
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


def min_seeds(family_size: int, alpha: float = ALPHA) -> int | None:
    """The fewest paired seeds at which a difference can reach ``alpha`` in a Holm family of ``family_size`` tests.

    The exact signed-rank test's smallest two-sided p with n non-zero pairs is 2 / 2^n, and Holm multiplies the
    smallest p by the family size m; so n must satisfy m * 2 / 2^n < alpha. None for an empty family.
    """
    if family_size < 1:
        return None
    n = 1
    while family_size * 2.0 / 2**n >= alpha:
        n += 1
    return n


def family_size(n_losses: int, comparisons: str) -> int:
    """Tests per dataset x model x metric: k - 1 against the reference, k (k - 1) / 2 for all pairs."""
    return max(0, n_losses - 1) if comparisons == "reference" else n_losses * (n_losses - 1) // 2


def reference_of(losses: Iterable[str], reference: str | None = None) -> str | None:
    """The reference loss of one dataset x model: ``reference`` when present, else the first default present."""
    present = set(losses)
    for candidate in ((reference,) if reference else ()) + DEFAULT_REFERENCES:
        if candidate in present:
            return candidate
    return None


def family_name(comparisons: str, reference: str | None) -> str:
    return f"vs {reference}" if comparisons == "reference" else "all pairs"


def _check_comparisons(comparisons: str) -> None:
    if comparisons not in COMPARISONS:
        raise ValueError(f"comparisons must be one of {', '.join(COMPARISONS)}, not {comparisons!r}")


def pairwise(
    runs_wide: pd.DataFrame,
    metric: str,
    alpha: float = ALPHA,
    comparisons: str = "reference",
    reference: str | None = None,
    known: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Paired comparisons of losses within each dataset x model on ``metric``; Holm within each such family.

    ``comparisons="reference"`` (default): every loss against the reference loss (``reference`` when present in
    that dataset x model, else the first of ``DEFAULT_REFERENCES`` present), k - 1 tests; ``"all"``: every pair,
    k (k - 1) / 2 tests. Rows name the ``family`` and its size. Paired by seed (same preset and steps); a seed
    that failed or diverged takes the worst value (a value beyond every observed one), so the test keeps it:
    ``n_pairs`` counts every seed both losses ran, ``n_finished_pairs`` those where both have a value.

    ``mean_diff`` (loss_a - loss_b, over the finished pairs) with a seeded paired-bootstrap 95% CI is the paired
    effect; ``p_value`` is the exact two-sided Wilcoxon signed-rank test's, ``p_holm`` its Holm adjustment,
    ``significant`` is ``p_holm < alpha`` and ``better`` names the better loss then (else ""). ``min_p_value``
    (2 / 2^n) and ``min_p_holm`` (times the family size) are the smallest p these pairs could give, and
    ``min_seeds`` the fewest seeds at which this family can reach ``alpha``: with fewer, "not significant" means
    "too few seeds to tell", and only the effect and its CI speak. Keys whose direction is "none" get no rows.
    """
    _check_comparisons(comparisons)
    if runs_wide.empty:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    if metric == GRAD_RATIO:
        runs_wide = with_derived(runs_wide)
    if metric not in runs_wide.columns:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    direction = better_direction(metric, known=directions(runs_wide) if known is None else known)
    if not ranked(direction):
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    pair_keys = [c for c in PAIR_KEYS if c in runs_wide.columns]
    rows = []
    for (dataset, model), group in runs_wide.groupby(["dataset", "model"], sort=True):
        scored = scored_values(group, metric, direction)
        group = group.assign(_scored=scored)[group["loss"].isin(eligible_losses(group, scored))]
        finite = group["_scored"][np.isfinite(group["_scored"])]
        if finite.empty:
            continue
        low_value, high_value = float(finite.min()), float(finite.max())
        worst = high_value + (high_value - low_value) + 1.0  # beyond every finite difference
        table = group.pivot_table(index=pair_keys, columns="loss", values="_scored", aggfunc="first")
        losses = sorted(table.columns)
        ref = reference_of(losses, reference) if comparisons == "reference" else None
        if comparisons == "reference":
            if ref is None:
                continue
            pairs = [(loss, ref) for loss in losses if loss != ref]
        else:
            pairs = list(combinations(losses, 2))
        size = len(pairs)
        family = []
        for loss_a, loss_b in pairs:
            both = table[[loss_a, loss_b]].dropna()
            tested = both.replace(math.inf, worst)
            differences = (tested[loss_a] - tested[loss_b]).to_numpy(dtype=float)
            finished = both[np.isfinite(both[loss_a]) & np.isfinite(both[loss_b])]
            sign = 1.0 if direction == "lower" else -1.0  # back to the metric's own orientation
            effect = sign * (finished[loss_a] - finished[loss_b]).to_numpy(dtype=float)
            low, high = bootstrap_ci(effect, derive_seed("pairwise", dataset, model, metric, loss_a, loss_b))
            nonzero = int(np.count_nonzero(differences))
            min_p = min(1.0, 2.0 / 2**nonzero) if nonzero else 1.0
            family.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "metric": metric,
                    "family": family_name(comparisons, ref),
                    "family_size": size,
                    "pair": f"{loss_a} vs {loss_b}",
                    "loss_a": loss_a,
                    "loss_b": loss_b,
                    "n_pairs": len(differences),
                    "n_finished_pairs": len(effect),
                    "mean_diff": float(effect.mean()) if len(effect) else math.nan,
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": paired_test(differences),
                    "test": TEST_NAME,
                    "min_p_value": min_p,
                    "min_p_holm": min(1.0, size * min_p),
                    "min_seeds": min_seeds(size, alpha),
                    "_a_better": signed_rank_sum(differences) < 0,
                }
            )
        for row, adjusted in zip(family, holm(row["p_value"] for row in family)):
            row["p_holm"] = adjusted
            row["significant"] = bool(adjusted < alpha)  # NaN compares False
            a_better = row.pop("_a_better")
            row["better"] = (row["loss_a"] if a_better else row["loss_b"]) if row["significant"] else ""
        rows.extend(family)
    return pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)


def pairwise_table(
    runs_wide: pd.DataFrame,
    alpha: float = ALPHA,
    comparisons: str = "reference",
    reference: str | None = None,
    known: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``pairwise`` for every ranked metric key: the content of ``results/pairwise.csv``."""
    _check_comparisons(comparisons)
    if runs_wide.empty:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    runs_wide = with_derived(runs_wide)
    known = directions(runs_wide) if known is None else known
    frames = [pairwise(runs_wide, key, alpha, comparisons, reference, known) for key in metric_keys(runs_wide)]
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIRWISE_COLUMNS)


def power_note(n_seeds: int, size: int, comparisons: str, reference: str | None, alpha: float = ALPHA) -> str:
    """One plain sentence: can this family reach ``alpha`` with ``n_seeds`` paired seeds, and if not, what then."""
    needed = min_seeds(size, alpha)
    seeds = f"{n_seeds} seed{'s' * (n_seeds != 1)}"
    family = (
        f"{size} comparison{'s' * (size != 1)} with {reference}"
        if comparisons == "reference"
        else f"all {size} pair{'s' * (size != 1)}"
    )
    if needed is None:
        return "no paired comparisons (fewer than two losses)"
    if n_seeds >= needed:
        return (
            f"family: {family} (Holm); with {seeds} a difference can reach alpha = {alpha} "
            f"(needs at least {needed} seeds)"
        )
    return (
        f"family: {family} (Holm); with {seeds} NO difference can reach alpha = {alpha}: that needs "
        f"at least {needed} seeds (smallest Holm-adjusted p = {size} x 2/2^{n_seeds} = "
        f"{min(1.0, size * 2.0 / 2**n_seeds):.3g}). The paired effects (mean paired difference with its "
        f"bootstrap 95% CI) are estimates only; no test has power here"
    )
