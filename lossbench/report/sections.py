"""One section of the report per dataset x model: its leaderboard, tables, comparisons and figures, with the
headline keys (the metric facts' ranks) deciding which metrics get a column and a figure."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lossbench.report import captions, figures
from lossbench.report.data import Builder, slug, summary_numbers
from lossbench.report.rows import leaderboard_rows, pairwise_rows, summary_rows
from lossbench.results import headlines, verdicts
from lossbench.results.facts import family_of, metric_names
from lossbench.results.leaderboard import leading_metrics, loss_order, power_line

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_CURVES = 4  # curve metrics plotted over steps per section, one key each
MODES_COVERED = "modes_covered"  # drawn against the dataset's number of modes, its ceiling


def families(keys: list[str], names: list[str]) -> dict[str, list[str]]:
    """Keys grouped by the metric they belong to, in the order of their first key."""
    grouped: dict[str, list[str]] = {}
    for key in keys:
        grouped.setdefault(family_of(key, names), []).append(key)
    return grouped


def curve_keys(curves: pd.DataFrame, primary: str | None, facts: Any, names: list[str]) -> list[str]:
    """The evaluation-during-training keys to plot, one per curve metric (its best headline key, else its first
    key): the primary metric's first, then by headline rank, at most ``MAX_CURVES``."""
    keys = [k for k in curves["key"].unique() if curves.loc[curves["key"] == k, "value"].notna().any()]
    ordered = headlines.headline_metrics(keys, facts)
    first = [primary] if primary is not None and primary in keys else []
    ordered = list(dict.fromkeys(first + ordered + sorted(keys)))
    return [group[0] for group in families(ordered, names).values()][:MAX_CURVES]


def family_figures(
    builder: Builder,
    base: str,
    tag: str,
    headline: list[str],
    shown: list[str],
    primary: str | None,
    wide: pd.DataFrame,
    summary: pd.DataFrame,
    order: list[str],
    labels: dict[str, str],
    n_modes: int | None,
) -> list[Any]:
    """A figure of each metric's headline keys over seeds, unless the leaderboard figure already shows its one key
    (or it is the primary's alone, shown by the seeds figure)."""
    refs = []
    for name, keys in families(headline, metric_names(builder.data.wide)).items():
        if keys == [primary] or (len(keys) == 1 and keys[0] in shown):
            continue
        references = {MODES_COVERED: float(n_modes)} if n_modes and MODES_COVERED in keys else {}
        caption = captions.family(
            tag, name, [labels.get(k, k) for k in keys], keys, labels.get(MODES_COVERED) if references else None
        )

        def draw(_path: Path, keys: list[str] = keys, references: dict[str, float] = references) -> Figure:
            return figures.seeds_figure(wide, keys, order, builder.palette, labels, references, directions_from=summary)

        refs.append(builder.figure(f"{base}--metric-{slug(name)}", *caption, draw))
    return refs


def model_section(
    builder: Builder, dataset: str, model: str, info: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    data = builder.data
    wide = data.wide[(data.wide["dataset"] == dataset) & (data.wide["model"] == model)]
    summary = data.summary[(data.summary["dataset"] == dataset) & (data.summary["model"] == model)]
    present = sorted(summary.loc[summary["n_values"] > 0, "metric"].unique()) if len(summary) else []
    primary, metrics, plot_metrics = leading_metrics(wide, present, data.facts)
    order = loss_order(wide, summary, primary)
    verdict = verdicts.verdicts(wide).get((dataset, model))
    base = f"{slug(dataset)}--{slug(model)}"
    tag = f"{dataset} · {model}"
    label = labels.get(primary, primary) if primary else "no metric"
    palette = builder.palette
    refs = []
    if metrics and primary is not None:  # headline keys present: one of them is the primary
        refs.append(
            builder.figure(
                f"{base}--leaderboard",
                *captions.leaderboard(tag, [labels.get(m, m) for m in plot_metrics], plot_metrics, label),
                lambda _path: figures.leaderboard_figure(summary, wide, plot_metrics, order, palette, labels),
            )
        )
        refs.append(
            builder.figure(
                f"{base}--seeds",
                *captions.seeds(tag, label, primary),
                lambda _path: figures.seeds_figure(wide, [primary], order, palette, labels, directions_from=summary),
            )
        )
    refs += family_figures(
        builder, base, tag, metrics, plot_metrics, primary, wide, summary, order, labels, info.get("n_modes")
    )
    history = data.history[(data.history["dataset"] == dataset) & (data.history["model"] == model)]
    curves = data.curves[(data.curves["dataset"] == dataset) & (data.curves["model"] == model)]
    plotted = curve_keys(curves, primary, data.facts, metric_names(data.wide))
    refs.append(
        builder.figure(
            f"{base}--curves",
            *captions.curves(tag, [labels.get(k, k) for k in plotted]),
            lambda _path: figures.curves_figure(history, curves, order, palette, plotted, labels),
        )
    )
    refs.append(
        builder.figure(
            f"{base}--stability", *captions.stability(tag), lambda _path: figures.stability_figure(wide, order)
        )
    )
    samples, titles = builder.samples_of(wide, order)
    if info.get("kind") == "points":
        centres = info.get("centres")
        refs.append(
            builder.figure(
                f"{base}--samples",
                *captions.points(tag, centres is not None),
                lambda _path: figures.points_figure(samples, centres, palette, titles),
            )
        )
    elif info.get("kind") == "image":
        refs.append(
            builder.figure(
                f"{base}--samples", *captions.images(tag), lambda _path: figures.images_figure(samples, titles)
            )
        )
    pairwise_frames = {metric: builder.pairwise(metric) for metric in metrics}
    significant, all_pairs = pairwise_rows(pairwise_frames, dataset, model, labels)
    return {
        "name": model,
        "anchor": f"{slug(dataset)}--{slug(model)}",
        "primary": primary,
        "primary_label": label,
        "metrics": [
            {"key": m, "label": labels.get(m, m), "direction": figures.direction_text(figures.direction_of(m, summary))}
            for m in metrics
        ],
        "power": power_line(wide, builder.comparisons, builder.reference),
        "summary_columns": summary_numbers(summary),
        "rows": leaderboard_rows(dataset, model, order, metrics, summary, wide, primary, palette, verdict),
        "verdict": None
        if verdict is None
        else {"kind": verdict.kind, "notice": verdict.notice, "message": verdict.message(), "rule": verdict.rule},
        "summary_rows": summary_rows(summary, labels, palette),
        "significant": significant,
        "pairs": all_pairs,
        "too_few": bool(all_pairs) and all(p["too_few"] for p in all_pairs),
        "has_collapsed": "n_collapsed" in summary.columns,
        "pairwise_metrics": [labels.get(m, m) for m in pairwise_frames],
        "figures": refs,
        "stability": figures.stability_table(wide, order).to_dict("records") if len(wide) else [],
    }


def heatmap(builder: Builder, dataset: str, labels: dict[str, str]) -> Any:
    """The loss x model heatmap of one dataset's primary metric, or None without metric values."""
    summary = builder.data.summary[builder.data.summary["dataset"] == dataset]
    present = sorted(summary.loc[summary["n_values"] > 0, "metric"].unique()) if len(summary) else []
    primary = headlines.primary_metric(present, builder.data.facts)
    if not primary:
        return None
    label = labels.get(primary, primary)
    direction = figures.direction_text(figures.direction_of(primary, summary))
    return builder.figure(
        f"{slug(dataset)}--heatmap",
        *captions.heatmap(dataset, label, primary, direction),
        lambda _path: figures.heatmap_figure(summary, primary, label),
    )
