"""How every report figure looks: one style, one colour (and marker) per loss for every figure and report, labels
from the metric facts, and whole-or-absent PNG files (the conventions are in the package docstring)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lossbench.results.facts import Facts, label as facts_label
from lossbench.results.files import atomic_path

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
STATUS_FLAGS = {"stability_diverged", "stability_failed"}
STEP_COLUMNS = {"d_loss": "D loss", "g_loss": "G loss"}


# -- naming and colours ------------------------------------------------------------------------------------------
# A loss's style in every figure: slot k has colour COLOURS[k % 20] (the colour-blind palette, then its dark
# shades), marker MARKERS[k // 10 % 8] and line style LINE_STYLES[k // 80 % 4], so that 320 losses stay apart
# and the first 20 differ by colour alone. The built-in losses hold fixed slots, so that a loss has the same
# colour in every report; any other name takes the free slot its name hashes to (the next free one when taken).
BUILTIN_LOSS_SLOTS = (
    "nonsaturating",
    "hinge",
    "wgan-gp",
    "lsgan",
    "minimax",
    "wgan",
    "dragan",
    "r1",
    "vae",
    "beta-vae",
    "vae-perceptual",
)
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
    return LossStyle(
        colours[slot % len(colours)], MARKERS[slot // 10 % len(MARKERS)], LINE_STYLES[slot // 80 % len(LINE_STYLES)]
    )


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


def metric_label(key: str, features: str | None = None, facts: Facts | None = None) -> str:
    """Axis/column label of a metric key from its facts (label, unit), naming the feature space it depends on."""
    return facts_label(key, facts, features)


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
