"""The stability figure: per loss, the share of seeds that failed, diverged or raised each stored flag."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lossbench.report.figures.style import STATUS_FLAGS, _figure, _styled


def stability_flags(wide: pd.DataFrame) -> list[str]:
    """The stored 0/1 stability keys (flags), e.g. ``stability_d_overpowering``; continuous ones are not flags,
    and ``stability_diverged`` repeats the run's status, which is shown as such."""
    flags = []
    for column in wide.columns:
        if column in STATUS_FLAGS:
            continue
        if column.startswith("stability_") and pd.api.types.is_numeric_dtype(wide[column]):
            values = wide[column].dropna()
            if len(values) and values.isin([0.0, 1.0]).all():
                flags.append(column)
    return sorted(flags)


def stability_table(wide: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Per loss: how many seeds failed, diverged and raised each stability flag, out of how many seeds."""
    flags = stability_flags(wide)
    rows = []
    for loss in order:
        group = wide[wide["loss"] == loss]
        row = {
            "loss": loss,
            "n_seeds": len(group),
            "failed": int((group["status"] == "failed").sum()),
            "diverged": int((group["status"] == "diverged").sum()),
        }
        for flag in flags:
            values = group[flag].dropna()
            row[flag] = int(values.sum())
            row[f"{flag}__n"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows)


def stability_figure(wide: pd.DataFrame, order: Sequence[str]) -> Figure:
    """Per dataset x model: share of seeds that failed, diverged or raised each stability flag (loss x flag)."""
    table = stability_table(wide, order)
    flags = stability_flags(wide)
    columns = ["failed", "diverged", *flags]
    share = pd.DataFrame(
        index=list(order), columns=[c.removeprefix("stability_").replace("_", " ") for c in columns], dtype=float
    )
    annot = share.copy().astype(object)
    for _, row in table.iterrows():
        for column, label in zip(columns, share.columns):
            n = row["n_seeds"] if column in ("failed", "diverged") else row[f"{column}__n"]
            share.loc[row["loss"], label] = row[column] / n if n else math.nan
            annot.loc[row["loss"], label] = f"{int(row[column])}/{int(n)}" if n else "-"
    with _styled():
        fig = _figure(1.05 * len(columns) + 2.4, 0.42 * len(order) + 1.5)
        ax = fig.subplots()
        sns.heatmap(
            share,
            vmin=0,
            vmax=1,
            cmap="rocket_r",
            annot=annot.to_numpy(),
            fmt="",
            linewidths=0.5,
            linecolor="white",
            cbar_kws={"label": "share of seeds flagged"},
            ax=ax,
        )
        ax.grid(False)
        ax.set_ylabel("loss")
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
        ax.tick_params(axis="y", rotation=0)
    return fig
