"""Seaborn figures for the report, built from the store's tables (no training, no file reads here), one module
per family: ``style`` (colours, labels, saving), ``scores``, ``curves``, ``stability``, ``samples``.

Conventions that every figure follows, so that a reader can compare them at a glance:

- one colour per loss, the same in every figure: seaborn's colour-blind-safe ``"colorblind"`` palette keyed by
  the sorted loss names of the whole store (``loss_palette``);
- loss and metric axes are linear: losses can be negative (a Wasserstein critic's is), so no log scales;
- the uncertainty drawn is the one in the tables (bootstrap 95% CI of the mean over seeds from
  ``tables.summarise``), never a second estimate computed by the plotting library;
- axis labels come from the metric facts stored with the runs (``lossbench.results.facts``);
- figures are ``matplotlib.figure.Figure`` objects made without pyplot, so building a report never opens a
  window, never touches a global figure registry and needs no ``close``: the Agg canvas renders them.
"""

from lossbench.report.figures.curves import curves_figure, run_curves_figure
from lossbench.report.figures.samples import (
    images_figure,
    points_figure,
    run_samples_figure,
    save_image_grid,
    tile_images,
)
from lossbench.report.figures.scores import (
    direction_of,
    direction_text,
    heatmap_figure,
    leaderboard_figure,
    seeds_figure,
)
from lossbench.report.figures.stability import stability_figure, stability_flags, stability_table
from lossbench.report.figures.style import (
    BUILTIN_LOSS_SLOTS,
    DPI,
    FEATURE_SPACE_NAMES,
    FIRST_RING,
    REVISION,
    LossPalette,
    LossStyle,
    feature_space_name,
    loss_palette,
    loss_slots,
    loss_styles,
    marker_of,
    metric_label,
    repeats_colour,
    save_figure,
    short_number,
    style_of,
)

__all__ = [
    "BUILTIN_LOSS_SLOTS",
    "DPI",
    "FEATURE_SPACE_NAMES",
    "FIRST_RING",
    "REVISION",
    "LossPalette",
    "LossStyle",
    "curves_figure",
    "direction_of",
    "direction_text",
    "feature_space_name",
    "heatmap_figure",
    "images_figure",
    "leaderboard_figure",
    "loss_palette",
    "loss_slots",
    "loss_styles",
    "marker_of",
    "metric_label",
    "points_figure",
    "repeats_colour",
    "run_curves_figure",
    "run_samples_figure",
    "save_figure",
    "save_image_grid",
    "seeds_figure",
    "short_number",
    "stability_figure",
    "stability_flags",
    "stability_table",
    "style_of",
    "tile_images",
]
