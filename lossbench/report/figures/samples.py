"""Figures of generated samples: image grids (straight to PNG) and 2-d points over the mode centres."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from lossbench.report.figures.style import _empty_note, _figure, _styled
from lossbench.results.files import atomic_path


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
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = pixels[i].transpose(
            1, 2, 0
        )
    return grid[..., 0] if c == 1 else grid[..., :3]


def save_image_grid(x: np.ndarray, path: Path, scale: int = 4, columns: int = 8) -> Path:
    """A sample grid straight to PNG (no matplotlib): nearest-neighbour upscaling keeps 8x8 pixels crisp."""
    grid = tile_images(x, columns)
    image = Image.fromarray(grid)
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
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


def points_figure(
    samples: Mapping[str, np.ndarray | None],
    centres: np.ndarray | None,
    palette: Mapping[str, tuple],
    titles: Mapping[str, str] | None = None,
) -> Figure:
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
        for ax in axes[len(names) :]:
            ax.set_visible(False)
    return fig


def images_figure(
    samples: Mapping[str, np.ndarray | None], titles: Mapping[str, str] | None = None, columns_per_grid: int = 8
) -> Figure:
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
            grid = tile_images(images[: columns_per_grid**2], columns_per_grid)
            ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[len(names) :]:
            ax.set_visible(False)
    return fig


def run_samples_figure(points: np.ndarray, centres: np.ndarray | None, colour) -> Figure:
    """One run's generated points over the mode centres."""
    with _styled():
        fig = _figure(2.8, 2.8, {"left": 0.14, "right": 0.97, "bottom": 0.1, "top": 0.97})
        ax = fig.subplots()
        _scatter(ax, points, centres, colour, _point_limits(centres, [points]))
    return fig
