"""The leaderboard as text, shared by ``lossbench show``, the paper tables and the HTML report (torch-free, no
plotting libraries): which losses lead on which metric, labelled and ranked by the facts stored with the runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from lossbench.results import headlines, tables, verdicts
from lossbench.results.facts import (
    Facts,
    feature_columns,
    key_spaces,
    labels as metric_labels,
    metric_names,
    stored_facts,
)

__all__ = [
    "fmt",
    "leaderboard_text",
    "leading_metrics",
    "left_out_notes",
    "loss_order",
    "metric_labels",
    "paired_effects_text",
    "paired_seeds",
    "power_line",
]


def fmt(value: Any, digits: int = 4) -> str:
    """A number as a reader sees it: 4 significant digits, '–' for missing, ∞ for infinite."""
    if value is None or isinstance(value, str):
        return value or "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    number = float(value)
    if math.isnan(number):
        return "–"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    return f"{number:.{digits}g}"


def paired_seeds(wide: pd.DataFrame) -> int:
    """Seeds every loss of one dataset x model ran (the pairs a comparison can have)."""
    counts = wide.groupby("loss")["seed"].nunique()
    return int(counts.min()) if len(counts) else 0


def power_line(wide: pd.DataFrame, comparisons: str = "reference", reference: str | None = None) -> str:
    """For one dataset x model: the comparison family in use and whether its tests can reach alpha at all."""
    losses = sorted(wide["loss"].unique())
    ref = tables.reference_of(losses, reference) if comparisons == "reference" else None
    if comparisons == "reference" and ref is None:
        wanted = ", ".join(([reference] if reference else []) + list(tables.DEFAULT_REFERENCES))
        return f"no reference loss here ({wanted} not run): no paired comparisons; use --comparisons all"
    size = tables.family_size(len(losses), comparisons)
    return tables.power_note(paired_seeds(wide), size, comparisons, ref)


def loss_order(wide: pd.DataFrame, summary: pd.DataFrame, primary: str | None) -> list[str]:
    """Losses best first on the primary metric; losses without a value (all seeds failed) last, by name."""
    losses = sorted(wide["loss"].unique())
    if not primary:
        return losses
    ranks = summary[summary["metric"] == primary].set_index("loss")["rank"].to_dict()

    def key(loss: str) -> tuple:
        rank = ranks.get(loss)
        missing = rank is None or pd.isna(rank)
        return (missing, 0.0 if missing else float(rank), loss)

    return sorted(losses, key=key)


def leading_metrics(
    wide: pd.DataFrame, present: list[str], facts: Facts | None = None
) -> tuple[str | None, list[str], list[str]]:
    """(primary, headline, compact) metrics of one dataset x model (see ``headlines.leading_metrics``), with the
    feature spaces its runs stored; ``facts`` default to those stored with the runs."""
    texts = {prefix: column.dropna().unique() for prefix, column in feature_columns(wide).items()}
    facts = stored_facts(wide) if facts is None else facts
    return headlines.leading_metrics(present, facts, key_spaces(present, texts), metric_names(wide))


def left_out_notes(wide: pd.DataFrame) -> list[str]:
    """What the default grid of each preset in the store leaves out (``Preset.leaves_out``)."""
    from lossbench.plan.grid import PRESETS

    names = sorted(set(wide["preset"].dropna())) if "preset" in wide.columns else []
    return [PRESETS[name].left_out_text() for name in names if name in PRESETS and PRESETS[name].leaves_out]


def _cell(entries: pd.DataFrame | None, loss: str, metric: str) -> str:
    entry = entries.loc[(loss, metric)] if entries is not None and (loss, metric) in entries.index else None
    if entry is None or not math.isfinite(entry["mean"]):
        return "–"
    ci = f" [{fmt(entry['ci_low'])}, {fmt(entry['ci_high'])}]" if math.isfinite(entry["ci_low"]) else ""
    return fmt(entry["mean"]) + ci


def _entry(entries: pd.DataFrame | None, loss: str, metric: str | None, column: str) -> Any:
    """One column of a loss's summary entry on ``metric``; NaN where it has none (no metric, no values)."""
    if not metric or entries is None or (loss, metric) not in entries.index:
        return math.nan
    return entries.loc[(loss, metric), column]


def leaderboard_text(
    wide: pd.DataFrame,
    summary: pd.DataFrame,
    metrics: list[str] | None = None,
    comparisons: str = "reference",
    reference: str | None = None,
    facts: Facts | None = None,
) -> str:
    """The leaderboard for a terminal (``lossbench show``): per dataset x model, one line per loss, best first.

    Ranks keep every seed (failed and diverged ones at the worst value); the means beside them are over finished
    seeds only, and say so. Each block ends with the comparison family and the seeds it needs to reach alpha.
    Each block opens with the training verdict (``lossbench.results.verdicts``) when most losses missed the
    dataset's target, and the ``target`` column gives the seeds of each loss that reached it. ``facts``: the
    metric facts (default: those stored with the runs).
    """
    facts = stored_facts(wide) if facts is None else facts
    blocks = []
    found = verdicts.verdicts(wide)
    for (dataset, model), group in wide.groupby(["dataset", "model"], sort=True):
        part = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        present = sorted(part.loc[part["n_values"] > 0, "metric"].unique()) if len(part) else []
        lead, _headline, compact = leading_metrics(group, present, facts)
        shown = [m for m in metrics if m in set(part["metric"])] if metrics else compact
        primary = shown[0] if metrics and shown else lead
        labels = metric_labels(wide, dataset, shown, facts)
        entries = part.set_index(["loss", "metric"]) if len(part) else None
        better = dict(zip(part["metric"], part["better"])) if len(part) else {}
        verdict = found.get((dataset, model))
        rows = []
        for loss in loss_order(group, part, primary):
            status = group.loc[group["loss"] == loss, "status"].value_counts()
            row = {
                "rank": fmt(_entry(entries, loss, primary, "rank")),
                "loss": loss,
                "mean rank (all seeds)": fmt(_entry(entries, loss, primary, "mean_rank"), 3),
                "ok/seeds": f"{status.get('ok', 0)}/{int(status.sum())}",
                "diverged": int(status.get("diverged", 0)),
                "failed": int(status.get("failed", 0)),
            }
            if verdict is not None:
                row["target"] = verdicts.seeds_text(verdict, loss)
            for metric in shown:
                unranked = " (unranked)" if better.get(metric) == "none" else ""
                row[labels[metric] + unranked] = _cell(entries, loss, metric)
            rows.append(row)
        label = labels.get(primary, primary) if primary else ""
        ranked = f"ranked by {label} over all seeds, failed and diverged seeds worst" if primary else "no metric values"
        effects = paired_effects_text(group, part, primary, label, comparisons, reference)
        head = f"{dataset} · {model} ({ranked}; values: mean [95% CI] over finished seeds only"
        head += "; target: seeds that reached the training target)" if verdict is not None else ")"
        if verdict is not None and verdict.kind != "trained":
            head = f"{'!! ' if verdict.notice else ''}{verdict.message()}\n{head}"
        blocks.append(
            head
            + "\n"
            + pd.DataFrame(rows).to_string(index=False)
            + f"\npaired tests: {power_line(group, comparisons, reference)}"
            + effects
        )
    notes = left_out_notes(wide)
    return "\n\n".join(blocks + [f"Note: {note}." for note in notes])


def paired_effects_text(
    wide: pd.DataFrame,
    summary: pd.DataFrame,
    metric: str | None,
    label: str,
    comparisons: str = "reference",
    reference: str | None = None,
) -> str:
    """One line per comparison on ``metric``: the paired effect with its CI, then the test (for ``show``)."""
    if not metric or summary.empty:
        return ""
    known = dict(zip(summary["metric"], summary["better"])) if "better" in summary.columns else None
    frame = tables.pairwise(wide, metric, comparisons=comparisons, reference=reference, known=known)
    lines = []
    for record in frame.to_dict("records"):
        ci = f" [{fmt(record['ci_low'])}, {fmt(record['ci_high'])}]" if math.isfinite(record["ci_low"]) else ""
        verdict = f"; {record['better']} is better" if record["significant"] else ""
        lines.append(
            f"  {record['loss_a']} − {record['loss_b']}: {fmt(record['mean_diff'])}{ci} over "
            f"{record['n_finished_pairs']} finished pairs; p = {fmt(record['p_value'], 3)}, Holm p = "
            f"{fmt(record['p_holm'], 3)} over {record['n_pairs']} pairs{verdict}"
        )
    if not lines:
        return ""
    return f"\npaired effects on {label} (mean paired difference [bootstrap 95% CI]):\n" + "\n".join(lines)
