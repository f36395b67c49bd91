"""Seaborn figures for the report, built from the store's tables (no training, no file reads here).

Conventions that every figure follows, so that a reader can compare them at a glance:

- one colour per loss, the same in every figure: seaborn's colour-blind-safe ``"colorblind"`` palette keyed by
  the sorted loss names of the whole store (``loss_palette``);
- loss and metric axes are linear: losses can be negative (a Wasserstein critic's is), so no log scales;
- the uncertainty drawn is the one in the tables (bootstrap 95% CI of the mean over seeds from
  ``tables.summarise``), never a second estimate computed by the plotting library;
- figures are ``matplotlib.figure.Figure`` objects made without pyplot, so building a report never opens a
  window, never touches a global figure registry and needs no ``close``: the Agg canvas renders them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.figure import Figure
from PIL import Image

from lossbench.results.files import atomic_path
from lossbench.results.tables import better_direction, directions as known_directions

REVISION = 2  # bump when a figure's drawing changes, so that cached per-run figures are redrawn
PALETTE = "colorblind"
STYLE = "whitegrid"
CONTEXT = "paper"
DPI = 90
FEATURE_SPACE_NAMES = {
    "coordinates": "raw 2-d coordinates",
    "pixels": "raw pixels",
    "digits-classifier": "the digits classifier's features",
    "digits-classifier-x3": "the digits classifier's features of each of the three stacked channels",
    "inception-v3-pool3": "Inception-v3 pool3 (standard FID)",
}
METRIC_NAMES = {
    "fid": "FID", "kid": "KID", "prdc_precision": "precision", "prdc_recall": "recall",
    "prdc_density": "density", "prdc_coverage": "coverage", "modes_covered": "modes covered",
    "modes_high_quality": "high-quality share", "modes_kl": "mode KL",
}
STATUS_FLAGS = {"stability_diverged", "stability_failed"}
STEP_COLUMNS = {"d_loss": "D loss", "g_loss": "G loss"}


# -- naming and colours ------------------------------------------------------------------------------------------
# A loss's style in every figure: slot k has colour COLOURS[k % 20] (the colour-blind palette, then its dark
# shades), marker MARKERS[k // 10 % 8] and line style LINE_STYLES[k // 80 % 4], so that 320 losses stay apart
# and the first 20 differ by colour alone. The built-in losses hold fixed slots, so that a loss has the same
# colour in every report; any other name takes the free slot its name hashes to (the next free one when taken).
BUILTIN_LOSS_SLOTS = ("nonsaturating", "hinge", "wgan-gp", "lsgan", "minimax", "wgan", "dragan", "r1", "vae",
                      "beta-vae", "vae-perceptual")
FIRST_RING = 20
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINE_STYLES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class LossStyle:
    """How one loss is drawn: its colour, and the marker and line style that tell it apart when colours repeat."""

    colour: tuple[float, float, float]
    marker: str
    linestyle: str


@functools.lru_cache(maxsize=1)
def _colours() -> tuple[tuple[float, float, float], ...]:
    return tuple(tuple(c) for c in sns.color_palette(PALETTE, 10) + sns.color_palette("dark", 10))


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def loss_slots(losses: Iterable[str]) -> dict[str, int]:
    """Each loss's style slot: fixed for the built-in losses, else hashed from its name into the first ring's
    plugin slots (probing forward past taken ones), taking names in sorted order so the result is deterministic.
    A plugin loss changes colour between reports only when its slot is taken by another plugin loss."""
    names = sorted(set(losses))
    slots = {name: BUILTIN_LOSS_SLOTS.index(name) for name in names if name in BUILTIN_LOSS_SLOTS}
    taken = set(slots.values())
    free = FIRST_RING - len(BUILTIN_LOSS_SLOTS)
    for name in names:
        if name in slots:
            continue
        start = len(BUILTIN_LOSS_SLOTS) + _name_hash(name) % free
        # its hashed slot, else the next free one of the first ring (wrapping into unused built-in slots),
        # and only then a slot past it, where colours repeat
        probe = [*range(start, FIRST_RING), *range(0, start)]
        slot = next((k for k in probe if k not in taken), None)
        if slot is None:
            slot = FIRST_RING
            while slot in taken:
                slot += 1
        slots[name] = slot
        taken.add(slot)
    return slots


def style_of(slot: int) -> LossStyle:
    colours = _colours()
    return LossStyle(colours[slot % len(colours)], MARKERS[slot // 10 % len(MARKERS)],
                     LINE_STYLES[slot // 80 % len(LINE_STYLES)])


def loss_styles(losses: Iterable[str]) -> dict[str, LossStyle]:
    """One ``LossStyle`` per loss name (see ``loss_slots``)."""
    return {name: style_of(slot) for name, slot in loss_slots(losses).items()}


class LossPalette(dict):
    """``{loss: colour}`` (what seaborn and matplotlib take) that also knows each loss's slot and style."""

    def __init__(self, slots: Mapping[str, int]) -> None:
        self.slots = dict(slots)
        self.styles = {name: style_of(slot) for name, slot in self.slots.items()}
        super().__init__({name: style.colour for name, style in self.styles.items()})


def marker_of(palette: Mapping[str, tuple], loss: str, default: str = "o") -> str:
    """The loss's marker when ``palette`` is a ``LossPalette``, else ``default``."""
    style = getattr(palette, "styles", {}).get(loss)
    return style.marker if style is not None else default


def repeats_colour(palette: Mapping[str, tuple], loss: str) -> bool:
    """Whether another loss may share this loss's colour (its slot is past the first ring): draw its marker."""
    return getattr(palette, "slots", {}).get(loss, 0) >= FIRST_RING


def loss_palette(losses: Iterable[str]) -> LossPalette:
    """One colour per loss name, the same for a loss in every figure and every report (``loss_slots``): up to 20
    losses get 20 distinct colours; beyond, markers (``LossPalette.styles``) tell them apart."""
    return LossPalette(loss_slots(losses))


def feature_space_name(space: str | None) -> str:
    """A reader's name for a feature space; only ``inception-v3-pool3`` is ever called the standard FID."""
    if not space:
        return "unknown feature space"
    return FEATURE_SPACE_NAMES.get(space, f"the {space!r} feature space (named by its metric plugin)")


def metric_label(key: str, features: str | None = None) -> str:
    """Axis/column label of a metric key, naming the feature space where the value depends on one."""
    base = METRIC_NAMES.get(key, key.replace("_", " "))
    if not features:
        return base
    short = "Inception-v3" if features == "inception-v3-pool3" else features
    return f"{base} [{short}]"


def short_number(value: float) -> str:
    """A value for an annotation: 3 significant digits, whole numbers from 1,000 up (no 4.1e+03)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _figure(width: float, height: float, margins: dict[str, float] | None = None) -> Figure:
    """A figure laid out by matplotlib's constrained layout, or, given fixed ``margins``, without it: the small
    per-run figures use fixed margins because the layout solver is most of their drawing time."""
    if margins is None:
        return Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(**margins)
    return fig


def _styled():
    """Seaborn's whitegrid style and paper context, applied locally (no global rcParams change)."""
    stack = contextlib.ExitStack()
    stack.enter_context(sns.axes_style(STYLE))
    stack.enter_context(sns.plotting_context(CONTEXT))
    return stack


def save_figure(fig: Figure, path: Path) -> Path:
    """Render a figure to PNG with the Agg canvas and drop it (whole or not at all: a kill leaves no cut file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png", dpi=DPI)
    fig.clear()
    return path


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _finite(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy with +-inf replaced by NaN (a diverged run's last logged loss) so axes stay readable."""
    frame = frame.copy()
    for column in columns:
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce").astype(float)
            frame[column] = values.where(np.isfinite(values))
    return frame


# -- leaderboard -------------------------------------------------------------------------------------------------
def direction_of(metric: str, summary: pd.DataFrame | None = None, wide: pd.DataFrame | None = None) -> str:
    """A metric's direction as the tables hold it: the summary's ``better`` column, else what the runs stored."""
    if summary is not None and "better" in summary.columns:
        found = summary.loc[summary["metric"] == metric, "better"].dropna()
        if len(found):
            return str(found.iloc[0])
    return better_direction(metric, known=known_directions(wide) if wide is not None else None)


def direction_text(direction: str) -> str:
    return {"lower": "lower is better", "higher": "higher is better"}.get(direction, "unranked")


def leaderboard_figure(summary: pd.DataFrame, wide: pd.DataFrame, metrics: Sequence[str], order: Sequence[str],
                       palette: Mapping[str, tuple], labels: Mapping[str, str] | None = None) -> Figure:
    """Per dataset x model: one panel per metric, mean over seeds with its bootstrap 95% CI, seeds as dots.

    ``summary`` and ``wide`` hold one dataset x model; ``order`` is the loss order (best first on the primary).
    """
    labels = labels or {}
    metrics = list(metrics) or [None]
    with _styled():
        fig = _figure(3.0 * len(metrics) + 0.6, 0.45 * len(order) + 1.3)
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
        for ax, metric in zip(axes, metrics):
            if metric is None:
                _empty_note(ax, "no metric values stored")
                continue
            rows = summary[summary["metric"] == metric].set_index("loss")
            ok = wide[wide["status"] == "ok"] if metric in wide else wide.iloc[0:0]
            if metric in ok and ok[metric].notna().any():
                sns.stripplot(data=ok, x=metric, y="loss", hue="loss", order=list(order), hue_order=list(order),
                              palette=palette, legend=False, ax=ax, size=3.5, alpha=0.45, jitter=0.12)
            for i, loss in enumerate(order):
                if loss not in rows.index or not np.isfinite(rows.at[loss, "mean"]):
                    ax.plot([], [])
                    continue
                mean, low, high = (float(rows.at[loss, c]) for c in ("mean", "ci_low", "ci_high"))
                xerr = None if not (np.isfinite(low) and np.isfinite(high)) else [[mean - low], [high - mean]]
                ax.errorbar([mean], [i], xerr=xerr, fmt=marker_of(palette, loss), color=palette[loss], markersize=7, capsize=4,
                            markeredgecolor="black", markeredgewidth=0.6, linewidth=1.8, zorder=5)
            floor = f"{metric}_floor"
            floor_rows = summary[summary["metric"] == floor]["mean"].dropna()
            if len(floor_rows):
                ax.axvline(float(floor_rows.mean()), color="0.4", linestyle="--", linewidth=1,
                           label="real-vs-real floor")
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
    data = summary[summary["metric"] == metric].pivot_table(index="loss", columns="model", values=statistic,
                                                             aggfunc="first", dropna=False)
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
        sns.heatmap(values, annot=annot.to_numpy(), fmt="", cmap=cmap, linewidths=0.5, linecolor="white",
                    cbar_kws={"label": f"{statistic} {label or metric_label(metric)}"}, ax=ax)
        ax.grid(False)
        ax.set_xlabel("model")
        ax.set_ylabel("loss")
        ax.tick_params(axis="y", rotation=0)
    return fig


def seeds_figure(wide: pd.DataFrame, metrics: Sequence[str], order: Sequence[str], palette: Mapping[str, tuple],
                 labels: Mapping[str, str] | None = None, references: Mapping[str, float] | None = None,
                 directions_from: pd.DataFrame | None = None) -> Figure:
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
                sns.boxplot(data=data, x=metric, y="loss", hue="loss", order=list(order), hue_order=list(order),
                            palette=palette, legend=False, ax=ax, fliersize=0, width=0.55, boxprops={"alpha": 0.45})
            sns.stripplot(data=data, x=metric, y="loss", hue="loss", order=list(order), hue_order=list(order),
                          palette=palette, legend=False, ax=ax, size=5, jitter=0.15, edgecolor="black", linewidth=0.5)
            if metric in references:
                ax.axvline(references[metric], color="0.3", linestyle="--", linewidth=1)
            arrow = direction_text(direction_of(metric, directions_from, wide))
            ax.set_xlabel(f"{labels.get(metric, metric_label(metric))}\n({arrow})")
            ax.set_ylabel("")
            ax.set_xscale("linear")
    return fig


# -- training curves ---------------------------------------------------------------------------------------------
def _curve_frame(curves: pd.DataFrame, key: str) -> pd.DataFrame:
    frame = curves[curves["key"] == key][["loss", "seed", "step", "value"]].rename(columns={"value": key})
    return _finite(frame, [key])


def curves_figure(history: pd.DataFrame, curves: pd.DataFrame, order: Sequence[str], palette: Mapping[str, tuple],
                  curve_keys: Sequence[str] = (), labels: Mapping[str, str] | None = None) -> Figure:
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


def _band_lines(ax, data: pd.DataFrame, column: str, order: Sequence[str], palette: Mapping[str, tuple],
                style: str = "-", marker: str | None = None) -> None:
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

    handles = [Line2D([0], [0], color="0.3", linestyle=style, label=label)
               for style, label in (("-", "real"), ("--", "fake"))]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="best")


def _loss_legend(fig: Figure, order: Sequence[str], palette: Mapping[str, tuple]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color=palette[loss], linewidth=2.5, label=loss, marker=marker_of(palette, loss),
                      markersize=5) for loss in order]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False, title="loss")


# -- stability ---------------------------------------------------------------------------------------------------
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
        row = {"loss": loss, "n_seeds": len(group), "failed": int((group["status"] == "failed").sum()),
               "diverged": int((group["status"] == "diverged").sum())}
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
    share = pd.DataFrame(index=list(order), columns=[c.removeprefix("stability_").replace("_", " ") for c in columns],
                         dtype=float)
    annot = share.copy().astype(object)
    for _, row in table.iterrows():
        for column, label in zip(columns, share.columns):
            n = row["n_seeds"] if column in ("failed", "diverged") else row[f"{column}__n"]
            share.loc[row["loss"], label] = row[column] / n if n else math.nan
            annot.loc[row["loss"], label] = f"{int(row[column])}/{int(n)}" if n else "-"
    with _styled():
        fig = _figure(1.05 * len(columns) + 2.4, 0.42 * len(order) + 1.5)
        ax = fig.subplots()
        sns.heatmap(share, vmin=0, vmax=1, cmap="rocket_r", annot=annot.to_numpy(), fmt="", linewidths=0.5,
                    linecolor="white", cbar_kws={"label": "share of seeds flagged"}, ax=ax)
        ax.grid(False)
        ax.set_ylabel("loss")
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
        ax.tick_params(axis="y", rotation=0)
    return fig


# -- samples -----------------------------------------------------------------------------------------------------
def tile_images(x: np.ndarray, columns: int = 8) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] -> one (rows*H, columns*W[, C]) uint8 grid with 1-pixel white gutters."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {x.shape}")
    n, c, h, w = x.shape
    columns = max(1, min(columns, n))
    rows = max(1, math.ceil(n / columns))
    pixels = np.clip((np.nan_to_num(x, nan=-1.0) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    grid = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, c), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, columns)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + q * (w + 1): 1 + q * (w + 1) + w] = pixels[i].transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid[..., :3]


def save_image_grid(x: np.ndarray, path: Path, scale: int = 4, columns: int = 8) -> Path:
    """A sample grid straight to PNG (no matplotlib): nearest-neighbour upscaling keeps 8x8 pixels crisp."""
    grid = tile_images(x, columns)
    image = Image.fromarray(grid)
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")
    return path


def _point_limits(centres: np.ndarray | None, samples: Iterable[np.ndarray]) -> tuple[tuple, tuple]:
    chunks = [np.asarray(s, dtype=float)[np.isfinite(s).all(axis=1)] for s in samples]
    chunks = [c for c in chunks if len(c)]
    points = np.concatenate(chunks) if chunks else np.zeros((0, 2))
    boxes = []
    if centres is not None and len(centres):
        boxes.append((centres.min(axis=0) - 0.6, centres.max(axis=0) + 0.6))
    if len(points):
        boxes.append((np.quantile(points, 0.01, axis=0) - 0.2, np.quantile(points, 0.99, axis=0) + 0.2))
    if not boxes:
        return (-1, 1), (-1, 1)
    low = np.min([b[0] for b in boxes], axis=0)
    high = np.max([b[1] for b in boxes], axis=0)
    return (low[0], high[0]), (low[1], high[1])


def _scatter(ax, points: np.ndarray, centres: np.ndarray | None, colour, limits) -> None:
    points = np.asarray(points, dtype=float)
    ax.scatter(points[:, 0], points[:, 1], s=3, color=colour, alpha=0.35, linewidths=0, rasterized=True)
    if centres is not None and len(centres):
        ax.scatter(centres[:, 0], centres[:, 1], s=40, marker="x", color="black", linewidths=1.4, zorder=5)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_aspect("equal", adjustable="box")


def points_figure(samples: Mapping[str, np.ndarray | None], centres: np.ndarray | None,
                  palette: Mapping[str, tuple], titles: Mapping[str, str] | None = None) -> Figure:
    """Per dataset x model: generated points of one seed per loss (in the loss colour) over the mode centres (x)."""
    titles = titles or {}
    names = list(samples)
    columns = min(4, max(len(names), 1))
    rows = max(1, math.ceil(len(names) / columns))
    limits = _point_limits(centres, [s for s in samples.values() if s is not None])
    with _styled():
        fig = _figure(2.7 * columns, 2.8 * rows)
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax, loss in zip(axes, names):
            points = samples[loss]
            ax.set_title(titles.get(loss, loss), fontsize=9)
            if points is None:
                _empty_note(ax, "no samples (run failed or diverged)")
                continue
            _scatter(ax, points, centres, palette[loss], limits)
        for ax in axes[len(names):]:
            ax.set_visible(False)
    return fig


def images_figure(samples: Mapping[str, np.ndarray | None], titles: Mapping[str, str] | None = None,
                  columns_per_grid: int = 8) -> Figure:
    """Per dataset x model: a grid of generated images of one seed per loss."""
    titles = titles or {}
    names = list(samples)
    columns = min(4, max(len(names), 1))
    rows = max(1, math.ceil(len(names) / columns))
    with _styled():
        fig = _figure(2.8 * columns, 3.0 * rows)
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax, loss in zip(axes, names):
            ax.set_title(titles.get(loss, loss), fontsize=9)
            ax.grid(False)
            images = samples[loss]
            if images is None:
                _empty_note(ax, "no samples (run failed or diverged)")
                continue
            grid = tile_images(images[: columns_per_grid ** 2], columns_per_grid)
            ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[len(names):]:
            ax.set_visible(False)
    return fig


def run_samples_figure(points: np.ndarray, centres: np.ndarray | None, colour) -> Figure:
    """One run's generated points over the mode centres."""
    with _styled():
        fig = _figure(2.8, 2.8, {"left": 0.14, "right": 0.97, "bottom": 0.1, "top": 0.97})
        ax = fig.subplots()
        _scatter(ax, points, centres, colour, _point_limits(centres, [points]))
    return fig


def run_curves_figure(history: pd.DataFrame, curves: pd.DataFrame, colour, curve_key: str | None,
                      failed_step: float | None = None, label: str | None = None) -> Figure:
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
                ax_loss.plot(data["step"], data[column], style, color=colour, linewidth=1.3,
                             label=name, marker="o" if len(data) < 12 else None, markersize=2.5)
        if ax_loss.lines:
            ax_loss.legend(fontsize=7, frameon=False)
        else:
            _empty_note(ax_loss, "no losses logged")
        ax_loss.set_ylabel("loss (linear)")
        ax_loss.set_yscale("linear")
        for column, style in (("d_real", "-"), ("d_fake", "--")):
            data = history[["step", column]].dropna()
            if len(data):
                ax_sig.plot(data["step"], data[column], style, color=colour, linewidth=1.3,
                            label="real" if column == "d_real" else "fake", marker="o" if len(data) < 12 else None,
                            markersize=2.5)
        if ax_sig.lines:
            ax_sig.axhline(0.5, color="0.5", linewidth=0.8, linestyle=":")
            ax_sig.set_ylim(-0.02, 1.02)
            ax_sig.legend(fontsize=7, frameon=False)
        else:
            _empty_note(ax_sig, "no sigmoid(D)" if adversarial else "no discriminator (VAE)")
        ax_sig.set_ylabel("mean σ(D)")
        data = _curve_frame(curves.assign(loss="", seed=0), curve_key).dropna() if curve_key else pd.DataFrame()
        if len(data):
            ax_curve.plot(data["step"], data[curve_key], "o-", color=colour, linewidth=1.3, markersize=3)
            ax_curve.set_ylabel(label or metric_label(curve_key))
        else:
            _empty_note(ax_curve, "no evaluation during training")
        for ax in (ax_loss, ax_sig, ax_curve):
            ax.set_xlabel("step")
            if failed_step is not None and np.isfinite(failed_step):
                ax.axvline(failed_step, color="#d55e00", linewidth=1, linestyle="-.")
    return fig
