"""One page per stored run (``reports/runs/<run_id>.html``): its values, flags, code, curves and samples.

A run's own figures are fingerprinted by everything they depend on, so a rebuilt report redraws only new runs'.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.colors import to_hex

from lossbench import __version__
from lossbench.plugin import provenance
from lossbench.records import is_facts_column
from lossbench.report import captions, figures, runsvg
from lossbench.report.data import Builder, exact, slug
from lossbench.report.pages import template
from lossbench.report.sections import curve_keys
from lossbench.results import headlines
from lossbench.results.facts import metric_names
from lossbench.results.files import write_text
from lossbench.results.leaderboard import fmt

BADGES = {"ok": "ok", "failed": "FAILED", "diverged": "DIVERGED"}


def _values(run_metrics: pd.DataFrame, labels: dict[str, str]) -> list[dict[str, Any]]:
    """A run's stored values and texts as its page lists them (the metric facts are for the tables, not results)."""
    return [
        {
            "key": r["key"],
            "label": labels.get(r["key"], r["key"]),
            "text": r["text"] if isinstance(r["text"], str) else fmt(r["value"]),
            "value": exact(r["value"]) if not isinstance(r["text"], str) else "",
            "is_text": isinstance(r["text"], str),
        }
        for r in run_metrics.to_dict("records")
        if not is_facts_column(r["key"])
    ]


def _figures(
    builder: Builder,
    run: dict[str, Any],
    run_history: pd.DataFrame,
    run_curves: pd.DataFrame,
    curve_key: str | None,
    labels: dict[str, str],
    centres: Any,
    samples: Any,
) -> list[Any]:
    run_id, colour = run["run_id"], to_hex(builder.palette[run["loss"]])
    failed_step = run["failed_step"] if pd.notna(run["failed_step"]) else None
    # what a run's own figures depend on: the stored run, its colour, and how figures are drawn
    fingerprint = f"{run_id}|{run.get('finished_at')}|{colour}|{__version__}|{figures.REVISION}"
    curve_label = labels.get(curve_key, curve_key) if curve_key else None
    refs = []
    if len(run_history) or len(run_curves):
        refs.append(
            builder.figure(
                f"run-{run_id}-curves",
                *captions.run_curves(run_id, run["loss"], run["dataset"], run["seed"], curve_label, failed_step),
                lambda path: runsvg.write(
                    runsvg.curves_svg(
                        run_history,
                        run_curves,
                        colour,
                        curve_key,
                        failed_step,
                        labels.get(curve_key) if curve_key else None,
                    ),
                    path,
                ),
                fingerprint=f"{fingerprint}|{curve_key}|{labels.get(curve_key) if curve_key else ''}",
                suffix=".svg",
            )
        )
    if samples is not None and samples.ndim == 4:
        refs.append(
            builder.figure(
                f"run-{run_id}-samples",
                *captions.run_images(run_id, min(len(samples), 64), run["seed"]),
                lambda path: figures.save_image_grid(samples[:64], path),
                fingerprint=fingerprint,
            )
        )
    elif samples is not None:
        refs.append(
            builder.figure(
                f"run-{run_id}-samples",
                *captions.run_points(run_id, min(len(samples), runsvg.MAX_POINTS), centres is not None),
                lambda path: runsvg.write(runsvg.points_svg(samples, centres, colour), path),
                fingerprint=f"{fingerprint}|centres={centres is not None}",
                suffix=".svg",
            )
        )
    return refs


def run_sections(builder: Builder, infos: dict[str, dict], labels_by_dataset: dict[str, dict]) -> list[dict[str, Any]]:
    """One section per stored run, in the store's order."""
    data = builder.data
    metrics, history, curves = (frame.groupby("run_id") for frame in (data.metrics, data.history, data.curves))
    flags = figures.stability_flags(data.wide)
    wide = data.wide.set_index("run_id")
    recorded = data.store.provenances()
    summary = data.summary
    names = metric_names(data.wide)
    primaries = (
        {
            dataset: headlines.primary_metric(part.loc[part["n_values"] > 0, "metric"].unique(), data.facts)
            for dataset, part in summary.groupby("dataset")
        }
        if len(summary)
        else {}
    )
    sections = []
    for run in data.runs.to_dict("records"):
        run_id = run["run_id"]
        labels = labels_by_dataset.get(run["dataset"], {})
        run_metrics = metrics.get_group(run_id) if run_id in metrics.groups else data.metrics.iloc[0:0]
        raised = [
            f.removeprefix("stability_").replace("_", " ")
            for f in flags
            if f in wide.columns and wide.at[run_id, f] == 1.0
        ]
        run_history = history.get_group(run_id) if run_id in history.groups else data.history.iloc[0:0]
        run_curves = curves.get_group(run_id) if run_id in curves.groups else data.curves.iloc[0:0]
        lead = headlines.primary_metric(run_curves["key"].unique(), data.facts)
        plotted = curve_keys(run_curves, lead, data.facts, names)
        curve_key = plotted[0] if plotted else None
        samples = data.store.samples(run_id)
        refs = _figures(
            builder,
            run,
            run_history,
            run_curves,
            curve_key,
            labels,
            infos.get(run["dataset"], {}).get("centres"),
            samples,
        )
        failed_step = run["failed_step"] if pd.notna(run["failed_step"]) else None
        status = run["status"]
        badge = BADGES[status] + (f" at step {int(failed_step)}" if status != "ok" and failed_step is not None else "")
        headline = primaries.get(run["dataset"])
        headline_value = wide.at[run_id, headline] if headline and headline in wide.columns else math.nan
        sections.append(
            {
                "page": f"{builder.runs_folder.relative}/{slug(run_id)}.html",
                "headline": labels.get(headline, headline) if headline else "",
                "headline_value": exact(headline_value),
                "headline_text": fmt(headline_value),
                "run_id": run_id,
                "dataset": run["dataset"],
                "model": run["model"],
                "loss": run["loss"],
                "seed": int(run["seed"]),
                "steps": run["steps"],
                "preset": run["preset"],
                "device": run["device"],
                "status": status,
                "badge": badge,
                "reason": run["reason"] or "",
                "colour": to_hex(builder.palette[run["loss"]]),
                "failed_step": int(failed_step) if failed_step is not None else None,
                "train_seconds": fmt(run.get("train_seconds"), 3),
                "eval_seconds": fmt(run.get("eval_seconds"), 3),
                "finished_at": run.get("finished_at", ""),
                "metrics": _values(run_metrics, labels),
                "flags": raised,
                "figures": refs,
                "no_samples": samples is None,
                "code": provenance.describe(recorded.get(run_id)).split(" | "),
            }
        )
    return sections


def write_run_pages(builder: Builder, runs: list[dict[str, Any]]) -> None:
    """Each run's section as its own page ``runs/<run_id>.html`` (the index links them); pages of runs no
    longer stored are removed."""
    folder = builder.runs_folder
    base = "../" * (folder.relative.count("/") + 1)  # from a run page back to the report folder
    page = template("run.html.j2")
    kept = []
    for run in runs:
        name = Path(run["page"]).name
        write_text(folder.file(name), page.render(run=run, version=__version__, base=base))
        kept.append(name)
    folder.record(kept)
    folder.prune(kept)
