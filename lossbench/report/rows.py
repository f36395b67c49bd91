"""The rows of the report's tables (leaderboard, summary, paired comparisons), every number also at full
precision for the page's ``data-*`` attributes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.colors import to_hex

from lossbench.report.data import exact, summary_numbers
from lossbench.results import tables, verdicts
from lossbench.results.leaderboard import fmt

ALPHA_DEFAULT = tables.ALPHA


def _cell(entry: pd.Series | None, metric: str) -> dict[str, Any]:
    mean = entry["mean"] if entry is not None else math.nan
    low = entry["ci_low"] if entry is not None else math.nan
    high = entry["ci_high"] if entry is not None else math.nan
    return {
        "metric": metric,
        "mean": exact(mean),
        "ci_low": exact(low),
        "ci_high": exact(high),
        "n_values": int(entry["n_values"]) if entry is not None else 0,
        "text": fmt(mean),
        "ci": f"[{fmt(low)}, {fmt(high)}]" if math.isfinite(low) else "",
        "rank": fmt(entry["rank"]) if entry is not None else "–",
    }


def leaderboard_rows(
    dataset: str,
    model: str,
    order: list[str],
    metrics: list[str],
    summary: pd.DataFrame,
    wide: pd.DataFrame,
    primary: str | None,
    palette: Mapping[str, Any],
    verdict: verdicts.Verdict | None = None,
) -> list[dict[str, Any]]:
    """One row per loss (every loss with a stored run, failed ones included), best first on the primary; a cell
    per headline metric with its mean, CI and rank."""
    rows = []
    by_loss = summary.set_index(["loss", "metric"]) if len(summary) else None
    for loss in order:
        group = wide[wide["loss"] == loss]
        status = group["status"].value_counts()
        n_seeds = len(group)
        cells = [
            _cell(
                by_loss.loc[(loss, metric)] if by_loss is not None and (loss, metric) in by_loss.index else None, metric
            )
            for metric in metrics
        ]
        own = summary[summary["loss"] == loss]
        # seeds that neither diverged nor collapsed, as tables.summarise counts them
        success = (
            float(own["success_share"].iloc[0])
            if len(own)
            else (status.get("ok", 0) / n_seeds if n_seeds else math.nan)
        )
        collapsed = float(own["n_collapsed"].iloc[0]) if len(own) and "n_collapsed" in own else math.nan
        rank = (
            by_loss.loc[(loss, primary), "rank"]
            if by_loss is not None and primary and (loss, primary) in by_loss.index
            else math.nan
        )
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "loss": loss,
                "colour": to_hex(palette[loss]),
                "rank": fmt(rank),
                "n_seeds": n_seeds,
                "n_ok": int(status.get("ok", 0)),
                "n_diverged": int(status.get("diverged", 0)),
                "n_failed": int(status.get("failed", 0)),
                "success_share": exact(success),
                "success_text": fmt(success, 3),
                "n_collapsed": int(collapsed) if collapsed == collapsed else None,
                "target_text": verdicts.seeds_text(verdict, loss),
                "target_share": exact(verdicts.share(verdict, loss)),
                "cells": cells,
            }
        )
    return rows


def summary_rows(summary: pd.DataFrame, labels: Mapping[str, str], palette: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every summary.csv row of one dataset x model, every number at full precision."""
    rows = []
    numbers = summary_numbers(summary)
    for record in summary.to_dict("records"):
        rows.append(
            {
                "dataset": record["dataset"],
                "model": record["model"],
                "loss": record["loss"],
                "metric": record["metric"],
                "label": labels.get(record["metric"], record["metric"]),
                "better": record.get("better", ""),
                "colour": to_hex(palette[record["loss"]]),
                "cells": [{"column": c, "value": exact(record[c]), "text": fmt(record[c])} for c in numbers],
            }
        )
    return rows


def pairwise_rows(
    frames: Mapping[str, pd.DataFrame], dataset: str, model: str, labels: Mapping[str, str]
) -> tuple[list[dict], list[dict]]:
    """(significant, all) paired comparisons between losses for one dataset x model."""
    rows = []
    for metric, frame in frames.items():
        part = frame[(frame["dataset"] == dataset) & (frame["model"] == model)]
        for record in part.to_dict("records"):
            rows.append(
                {
                    "metric": metric,
                    "label": labels.get(metric, metric),
                    "loss_a": record["loss_a"],
                    "loss_b": record["loss_b"],
                    "n_pairs": fmt(record["n_pairs"]),
                    "mean_diff": fmt(record["mean_diff"]),
                    "ci": f"[{fmt(record['ci_low'])}, {fmt(record['ci_high'])}]",
                    "p_value": fmt(record["p_value"], 3),
                    "p_holm": fmt(record["p_holm"], 3),
                    "significant": bool(record["significant"]) if pd.notna(record["significant"]) else False,
                    "better": "" if pd.isna(record["better"]) else str(record["better"]),
                    "too_few": bool(record.get("min_p_holm", record.get("min_p_value", 0.0)) >= ALPHA_DEFAULT),
                    "family": record.get("family", ""),
                    "n_finished_pairs": fmt(record.get("n_finished_pairs")),
                    "raw": {k: exact(record[k]) for k in ("mean_diff", "ci_low", "ci_high", "p_value", "p_holm")},
                }
            )
    return [r for r in rows if r["significant"]], rows
