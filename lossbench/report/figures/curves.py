"""Figures over training steps: losses, sigmoid(D) and the curve metrics, per dataset x model and per run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lossbench.report.figures.style import (
    STEP_COLUMNS,
    _empty_note,
    _figure,
    _finite,
    _styled,
    marker_of,
    metric_label,
    repeats_colour,
)


def _curve_frame(curves: pd.DataFrame, key: str) -> pd.DataFrame:
    frame = curves[curves["key"] == key][["loss", "seed", "step", "value"]].rename(columns={"value": key})
    return _finite(frame, [key])


def curves_figure(
    history: pd.DataFrame,
    curves: pd.DataFrame,
    order: Sequence[str],
    palette: Mapping[str, tuple],
    curve_keys: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Per dataset x model: D and G losses, sigmoid(D) on real (solid) and fake (dashed), and the curve metrics,
    over steps; the line is the mean over seeds and the band spans the seeds (min to max)."""
    labels = labels or {}
    history = _finite(history, ["d_loss", "g_loss", "d_real", "d_fake"])
    adversarial = bool(history["d_loss"].notna().any()) if "d_loss" in history else False
    # a VAE has one objective (logged as g_loss) and no discriminator: no D or sigmoid(D) panels for it
    panels = (list(STEP_COLUMNS) + ["sigmoid"] if adversarial else ["g_loss"]) + list(curve_keys)
    names = STEP_COLUMNS if adversarial else {"g_loss": "loss"}
    with _styled():
        fig = _figure(3.1 * len(panels) + 1.4, 3.2)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            if panel in STEP_COLUMNS:
                data = history[["loss", "seed", "step", panel]].dropna()
                if data.empty:
                    _empty_note(ax, f"no {names[panel]} logged")
                    continue
                _band_lines(ax, data, panel, order, palette)
                ax.set_ylabel(f"{names[panel]} (linear)")
                ax.set_yscale("linear")
            elif panel == "sigmoid":
                if history[["d_real", "d_fake"]].isna().all().all():
                    _empty_note(ax, "no sigmoid(D): critic scores are not logits")
                    continue
                for column, style in (("d_real", "-"), ("d_fake", "--")):
                    _band_lines(ax, history.dropna(subset=[column]), column, order, palette, style)
                ax.axhline(0.5, color="0.5", linewidth=0.8, linestyle=":")
                _style_legend(ax)
                ax.set_ylabel("mean σ(D)")
                ax.set_ylim(-0.02, 1.02)
            else:
                data = _curve_frame(curves, panel).dropna()
                if data.empty:
                    _empty_note(ax, f"no {panel} curve")
                    continue
                _band_lines(ax, data, panel, order, palette, marker="o")
                ax.set_ylabel(labels.get(panel, metric_label(panel)))
                ax.set_yscale("linear")
            ax.set_xlabel("step")
        _loss_legend(fig, order, palette)
    return fig


def _band_lines(
    ax,
    data: pd.DataFrame,
    column: str,
    order: Sequence[str],
    palette: Mapping[str, tuple],
    style: str = "-",
    marker: str | None = None,
) -> None:
    """Per loss, the mean over seeds at each step as a line and the range of the seeds (min to max) as a band.

    The same picture as seaborn's ``lineplot(errorbar=("pi", 100))``, aggregated once with pandas: the
    per-group aggregation in seaborn was most of a report's drawing time with many losses.
    """
    stats = data.groupby(["loss", "step"], sort=True)[column].agg(["mean", "min", "max"])
    for loss in order:
        if loss not in stats.index.get_level_values(0):
            continue
        rows = stats.loc[loss]
        steps = rows.index.to_numpy(dtype=float)
        colour = palette[loss]
        own = marker_of(palette, loss) if repeats_colour(palette, loss) else None
        ax.plot(steps, rows["mean"], style, color=colour, linewidth=1.3, marker=marker or own, markersize=3)
        if (rows["max"] > rows["min"]).any():
            ax.fill_between(steps, rows["min"], rows["max"], color=colour, alpha=0.2, linewidth=0)


def _style_legend(ax) -> None:
    from matplotlib.lines import Line2D

    styles: tuple[tuple[Literal["-", "--"], str], ...] = (("-", "real"), ("--", "fake"))
    handles = [Line2D([0], [0], color="0.3", linestyle=style, label=label) for style, label in styles]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="best")


def _loss_legend(fig: Figure, order: Sequence[str], palette: Mapping[str, tuple]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([0], [0], color=palette[loss], linewidth=2.5, label=loss, marker=marker_of(palette, loss), markersize=5)
        for loss in order
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False, title="loss")


def run_curves_figure(
    history: pd.DataFrame,
    curves: pd.DataFrame,
    colour,
    curve_key: str | None,
    failed_step: float | None = None,
    label: str | None = None,
) -> Figure:
    """One run: D and G losses, sigmoid(D) on real and fake, and one curve metric, over steps."""
    history = _finite(history, ["d_loss", "g_loss", "d_real", "d_fake"])
    with _styled():
        fig = _figure(7.6, 2.3, {"left": 0.08, "right": 0.99, "bottom": 0.2, "top": 0.96, "wspace": 0.38})
        ax_loss, ax_sig, ax_curve = fig.subplots(1, 3)
        adversarial = bool(history["d_loss"].notna().any())
        for column, style in (("d_loss", "-"), ("g_loss", "--")):
            data = history[["step", column]].dropna()
            if len(data):
                name = STEP_COLUMNS[column] if adversarial else "loss"
                ax_loss.plot(
                    data["step"],
                    data[column],
                    style,
                    color=colour,
                    linewidth=1.3,
                    label=name,
                    marker="o" if len(data) < 12 else None,
                    markersize=2.5,
                )
        if ax_loss.lines:
            ax_loss.legend(fontsize=7, frameon=False)
        else:
            _empty_note(ax_loss, "no losses logged")
        ax_loss.set_ylabel("loss (linear)")
        ax_loss.set_yscale("linear")
        for column, style in (("d_real", "-"), ("d_fake", "--")):
            data = history[["step", column]].dropna()
            if len(data):
                ax_sig.plot(
                    data["step"],
                    data[column],
                    style,
                    color=colour,
                    linewidth=1.3,
                    label="real" if column == "d_real" else "fake",
                    marker="o" if len(data) < 12 else None,
                    markersize=2.5,
                )
        if ax_sig.lines:
            ax_sig.axhline(0.5, color="0.5", linewidth=0.8, linestyle=":")
            ax_sig.set_ylim(-0.02, 1.02)
            ax_sig.legend(fontsize=7, frameon=False)
        else:
            _empty_note(ax_sig, "no sigmoid(D)" if adversarial else "no discriminator (VAE)")
        ax_sig.set_ylabel("mean σ(D)")
        data = _curve_frame(curves.assign(loss="", seed=0), curve_key).dropna() if curve_key else pd.DataFrame()
        if curve_key and len(data):
            ax_curve.plot(data["step"], data[curve_key], "o-", color=colour, linewidth=1.3, markersize=3)
            ax_curve.set_ylabel(label or metric_label(curve_key))
        else:
            _empty_note(ax_curve, "no evaluation during training")
        for ax in (ax_loss, ax_sig, ax_curve):
            ax.set_xlabel("step")
            if failed_step is not None and np.isfinite(failed_step):
                ax.axvline(failed_step, color="#d55e00", linewidth=1, linestyle="-.")
    return fig
