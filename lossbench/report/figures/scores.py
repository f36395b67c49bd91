"""Figures of the scores: per loss, the mean with its bootstrap CI and every seed; a loss x model heatmap."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.figure import Figure

from lossbench.report.figures.style import _empty_note, _figure, _styled, marker_of, metric_label, short_number
from lossbench.results.tables import better_direction, directions as known_directions


def direction_of(metric: str, summary: pd.DataFrame | None = None, wide: pd.DataFrame | None = None) -> str:
    """A metric's direction as the tables hold it: the summary's ``better`` column, else what the runs stored."""
    if summary is not None and "better" in summary.columns:
        found = summary.loc[summary["metric"] == metric, "better"].dropna()
        if len(found):
            return str(found.iloc[0])
    return better_direction(metric, known=known_directions(wide) if wide is not None else None)


def direction_text(direction: str) -> str:
    return {"lower": "lower is better", "higher": "higher is better"}.get(direction, "unranked")


def _one_row_per_loss(data: pd.DataFrame, metric: str, order: Sequence[str], palette: Mapping[str, tuple], ax) -> dict:
    """The arguments that make a seaborn plot draw ``metric`` on x with one row per loss, in ``order`` and the
    report's loss colours, on ``ax``."""
    return dict(
        data=data,
        x=metric,
        y="loss",
        hue="loss",
        order=list(order),
        hue_order=list(order),
        palette=palette,
        legend=False,
        ax=ax,
    )


def leaderboard_figure(
    summary: pd.DataFrame,
    wide: pd.DataFrame,
    metrics: Sequence[str],
    order: Sequence[str],
    palette: Mapping[str, tuple],
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Per dataset x model: one panel per metric, mean over seeds with its bootstrap 95% CI, seeds as dots.

    ``summary`` and ``wide`` hold one dataset x model; ``order`` is the loss order (best first on the primary).
    """
    labels = labels or {}
    panels: list[str | None] = [*metrics] or [None]  # one empty panel says that no metric has values
    with _styled():
        fig = _figure(3.0 * len(panels) + 0.6, 0.45 * len(order) + 1.3)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, metric in zip(axes, panels):
            if metric is None:
                _empty_note(ax, "no metric values stored")
                continue
            rows = summary[summary["metric"] == metric].set_index("loss")
            ok = wide[wide["status"] == "ok"] if metric in wide else wide.iloc[0:0]
            if metric in ok and ok[metric].notna().any():
                sns.stripplot(
                    **_one_row_per_loss(ok, metric, order, palette, ax),
                    size=3.5,
                    alpha=0.45,
                    jitter=0.12,
                )
            for i, loss in enumerate(order):
                if loss not in rows.index or not np.isfinite(rows.at[loss, "mean"]):
                    ax.plot([], [])
                    continue
                mean, low, high = (float(rows.at[loss, c]) for c in ("mean", "ci_low", "ci_high"))
                xerr = None if not (np.isfinite(low) and np.isfinite(high)) else [[mean - low], [high - mean]]
                ax.errorbar(
                    [mean],
                    [i],
                    xerr=xerr,
                    fmt=marker_of(palette, loss),
                    color=palette[loss],
                    markersize=7,
                    capsize=4,
                    markeredgecolor="black",
                    markeredgewidth=0.6,
                    linewidth=1.8,
                    zorder=5,
                )
            floor = f"{metric}_floor"
            floor_rows = summary[summary["metric"] == floor]["mean"].dropna()
            if len(floor_rows):
                ax.axvline(
                    float(floor_rows.mean()), color="0.4", linestyle="--", linewidth=1, label="real-vs-real floor"
                )
                ax.legend(loc="best", fontsize=7, frameon=False)
            ax.set_yticks(range(len(order)), list(order))
            ax.set_ylim(len(order) - 0.5, -0.5)
            arrow = direction_text(direction_of(metric, summary, wide))
            ax.set_xlabel(f"{labels.get(metric, metric_label(metric))}\n({arrow})")
            ax.set_ylabel("")
            ax.set_xscale("linear")
    return fig


def heatmap_figure(summary: pd.DataFrame, metric: str, label: str | None = None, statistic: str = "median") -> Figure:
    """Per dataset: loss x model heatmap of the median over seeds of ``metric`` (annotated with the values)."""
    data = summary[summary["metric"] == metric].pivot_table(
        index="loss", columns="model", values=statistic, aggfunc="first", dropna=False
    )
    data = data.sort_index().reindex(sorted(data.columns), axis=1)
    with _styled():
        fig = _figure(1.6 * max(len(data.columns), 1) + 2.6, 0.42 * max(len(data.index), 1) + 1.3)
        ax = fig.subplots()
        if data.empty or not np.isfinite(data.to_numpy(dtype=float)).any():
            _empty_note(ax, f"no {metric} values")
            return fig
        cmap = "viridis_r" if direction_of(metric, summary) == "lower" else "viridis"
        values = data.astype(float)
        annot = values.map(lambda v: short_number(v) if np.isfinite(v) else "")
        sns.heatmap(
            values,
            annot=annot.to_numpy(),
            fmt="",
            cmap=cmap,
            linewidths=0.5,
            linecolor="white",
            cbar_kws={"label": f"{statistic} {label or metric_label(metric)}"},
            ax=ax,
        )
        ax.grid(False)
        ax.set_xlabel("model")
        ax.set_ylabel("loss")
        ax.tick_params(axis="y", rotation=0)
    return fig


def seeds_figure(
    wide: pd.DataFrame,
    metrics: Sequence[str],
    order: Sequence[str],
    palette: Mapping[str, tuple],
    labels: Mapping[str, str] | None = None,
    references: Mapping[str, float] | None = None,
    directions_from: pd.DataFrame | None = None,
) -> Figure:
    """Per dataset x model: box plot with every seed as a dot, one panel per metric (successful runs only).

    ``directions_from``: the summary table whose ``better`` column names each metric's direction (default: the
    directions stored with the runs)."""
    labels, references = labels or {}, references or {}
    ok = wide[wide["status"] == "ok"]
    with _styled():
        fig = _figure(3.0 * len(metrics) + 0.6, 0.45 * len(order) + 1.3)
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
        for ax, metric in zip(axes, metrics):
            data = ok[["loss", metric]].dropna() if metric in ok else ok.iloc[0:0]
            if data.empty:
                _empty_note(ax, f"no successful run has {metric}")
                continue
            with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated ``vert``
                warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
                sns.boxplot(
                    **_one_row_per_loss(data, metric, order, palette, ax),
                    fliersize=0,
                    width=0.55,
                    boxprops={"alpha": 0.45},
                )
            sns.stripplot(
                **_one_row_per_loss(data, metric, order, palette, ax),
                size=5,
                jitter=0.15,
                edgecolor="black",
                linewidth=0.5,
            )
            if metric in references:
                ax.axvline(references[metric], color="0.3", linestyle="--", linewidth=1)
            arrow = direction_text(direction_of(metric, directions_from, wide))
            ax.set_xlabel(f"{labels.get(metric, metric_label(metric))}\n({arrow})")
            ax.set_ylabel("")
            ax.set_xscale("linear")
    return fig
