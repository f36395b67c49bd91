"""A run's own figures as small SVG files written as text: its training curves and its generated points.

A report of thousands of runs cannot afford a matplotlib figure per run (about 0.2 s each); these take about a
millisecond and draw the same content as ``figures.run_curves_figure`` and ``figures.run_samples_figure``:
D and G losses (linear axis), mean sigmoid(D) on real and fake, one curve metric, the step where the run stopped,
and the generated points over the mode centres. Aggregate figures stay with matplotlib (``lossbench.report.figures``).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

PANEL_W, PANEL_H, PAD = 240, 150, 34
POINTS_SIZE = 260
MAX_POINTS = 500  # a run page shows at most this many generated points (the first ones, as stored)
STOPPED = "#d55e00"


def _number(value: float) -> str:
    return f"{value:.3g}"


def _scale(values: np.ndarray, low: float, high: float, start: float, length: float) -> np.ndarray:
    span = high - low if high > low else 1.0
    return start + (values - low) / span * length


def _range(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def _panel(
    x0: float,
    title: str,
    series: list[tuple[str, np.ndarray, np.ndarray, str]],
    colour: str,
    steps: tuple[float, float],
    stopped: float | None,
    y_range: tuple[float, float] | None = None,
) -> str:
    """One panel: a frame, its title and y range, and each (label, steps, values, dash) series as a polyline."""
    top, left, width, height = PAD / 2, x0 + PAD, PANEL_W - PAD - 6, PANEL_H - PAD - PAD / 2
    parts = [
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#ccc"/>',
        f'<text x="{left}" y="{top - 4}" font-size="10">{escape(title)}</text>',
    ]
    kept = [(label, s[np.isfinite(v)], v[np.isfinite(v)], dash) for label, s, v, dash in series]
    kept = [entry for entry in kept if len(entry[1])]
    if not kept:
        parts.append(f'<text x="{left + 8}" y="{top + height / 2}" font-size="10" fill="#777">no values</text>')
        return "".join(parts)
    low, high = y_range or _range([v for _l, _s, v, _d in kept])
    for label, s, v, dash in kept:
        xs = _scale(s.astype(float), steps[0], steps[1], left, width)
        ys = _scale(v.astype(float), low, high, top + height, -height)
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.4"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + f"><title>{escape(label)}</title></polyline>"
        )
        if len(xs) < 12:
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8" fill="{colour}"/>' for x, y in zip(xs, ys))
    labels = ", ".join(f"{label} {'dashed' if dash else 'solid'}" for label, _s, _v, dash in kept)
    parts.append(f'<text x="{left}" y="{top + height + 22}" font-size="9" fill="#555">{escape(labels)}</text>')
    parts.append(
        f'<text x="{left - 3}" y="{top + 8}" font-size="9" text-anchor="end">{_number(high)}</text>'
        f'<text x="{left - 3}" y="{top + height}" font-size="9" text-anchor="end">{_number(low)}</text>'
    )
    if stopped is not None:
        x = float(_scale(np.array([stopped]), steps[0], steps[1], left, width)[0])
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + height}" stroke="{STOPPED}" '
            f'stroke-dasharray="5,2,1,2"/>'
        )
    return "".join(parts)


def curves_svg(
    history: pd.DataFrame,
    curves: pd.DataFrame,
    colour: str,
    curve_key: str | None,
    failed_step: float | None = None,
    label: str | None = None,
) -> str:
    """Three panels over steps: losses, mean sigmoid(D) on real and fake, and ``curve_key``'s evaluations."""

    def column(frame: pd.DataFrame, name: str) -> np.ndarray:
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float) if name in frame else np.array([])

    steps_h = column(history, "step")
    curve = curves[curves["key"] == curve_key] if curve_key and len(curves) else curves.iloc[0:0]
    steps_c = column(curve, "step")
    all_steps = np.concatenate([steps_h, steps_c, [failed_step] if failed_step is not None else []])
    span = _range([all_steps])
    adversarial = bool(np.isfinite(column(history, "d_loss")).any())
    panels = [
        _panel(
            0,
            "loss (linear)",
            [
                ("D loss" if adversarial else "loss", steps_h, column(history, "d_loss"), ""),
                ("G loss" if adversarial else "loss", steps_h, column(history, "g_loss"), "4,3"),
            ]
            if adversarial
            else [("loss", steps_h, column(history, "g_loss"), "")],
            colour,
            span,
            failed_step,
        ),
        _panel(
            PANEL_W,
            "mean σ(D)",
            [("real", steps_h, column(history, "d_real"), ""), ("fake", steps_h, column(history, "d_fake"), "4,3")],
            colour,
            span,
            failed_step,
            (0.0, 1.0),
        ),
        _panel(
            2 * PANEL_W,
            label or curve_key or "no evaluation during training",
            [(label or curve_key or "", steps_c, column(curve, "value"), "")] if curve_key else [],
            colour,
            span,
            failed_step,
        ),
    ]
    width = 3 * PANEL_W
    axis = (
        f'<text x="{width / 2}" y="{PANEL_H - 2}" font-size="10" text-anchor="middle">step '
        f"{_number(span[0])} to {_number(span[1])}</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{PANEL_H}" '
        f'viewBox="0 0 {width} {PANEL_H}" font-family="sans-serif">{"".join(panels)}{axis}</svg>'
    )


def points_svg(points: np.ndarray, centres: np.ndarray | None, colour: str) -> str:
    """Generated 2-d points (at most ``MAX_POINTS``) over the mode centres (black crosses)."""
    points = np.asarray(points, dtype=float)[:MAX_POINTS]
    points = points[np.isfinite(points).all(axis=1)] if points.ndim == 2 else np.zeros((0, 2))
    arrays = [points] + ([np.asarray(centres, dtype=float)] if centres is not None else [])
    low_x, high_x = _range([a[:, 0] for a in arrays])
    low_y, high_y = _range([a[:, 1] for a in arrays])
    pad = 0.05 * max(high_x - low_x, high_y - low_y)
    low, high = min(low_x, low_y) - pad, max(high_x, high_y) + pad
    to_x = lambda v: _scale(v, low, high, 4, POINTS_SIZE - 8)  # noqa: E731
    to_y = lambda v: _scale(v, low, high, POINTS_SIZE - 4, -(POINTS_SIZE - 8))  # noqa: E731
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.3"/>' for x, y in zip(to_x(points[:, 0]), to_y(points[:, 1]))
    )
    crosses = ""
    if centres is not None:
        for x, y in zip(to_x(np.asarray(centres)[:, 0]), to_y(np.asarray(centres)[:, 1])):
            crosses += (
                f'<path d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}M{x - 4:.1f},{y + 4:.1f}'
                f'L{x + 4:.1f},{y - 4:.1f}" stroke="black" stroke-width="1.5"/>'
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{POINTS_SIZE}" height="{POINTS_SIZE}" '
        f'viewBox="0 0 {POINTS_SIZE} {POINTS_SIZE}"><rect width="100%" height="100%" fill="#fff" stroke="#ccc"/>'
        f'<g fill="{colour}" fill-opacity="0.45">{dots}</g>{crosses}</svg>'
    )


def write(svg: str, path: Path) -> Path:
    path.write_text(svg, encoding="utf-8")
    return path
