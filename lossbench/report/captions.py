"""What each figure of the report says about itself: title, caption and alternative text, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Caption(NamedTuple):
    title: str
    caption: str
    alt: str


def leaderboard(tag: str, labels: Sequence[str], keys: Sequence[str], ranked_by: str) -> Caption:
    return Caption(
        f"Leaderboard, {tag}",
        f"Mean over successful seeds with its bootstrap 95% confidence interval (bars), and each seed (dots), per "
        f"loss, for {', '.join(labels)}. Losses are ordered by {ranked_by} over every seed (failed and diverged "
        f"seeds at the worst value). Dashed lines: the real-vs-real floor where stored.",
        f"Point plot of {', '.join(keys)} per loss on {tag}, with 95% confidence intervals.",
    )


def seeds(tag: str, label: str, key: str) -> Caption:
    return Caption(
        f"Spread across seeds, {tag}",
        f"Box plot of {label} over the successful seeds of each loss; every dot is one seed. A loss whose "
        f"seeds failed or diverged has fewer dots (see the leaderboard's seed counts).",
        f"Box and strip plot of {key} across seeds per loss on {tag}.",
    )


def family(tag: str, name: str, labels: Sequence[str], keys: Sequence[str], ceiling: str | None) -> Caption:
    """A metric's headline keys over seeds (e.g. the mixtures' mode measures); ``ceiling``: the label of a key
    drawn with the dataset's number of modes as a dashed line."""
    dashed = f" Dashed: all modes, on {ceiling}." if ceiling else ""
    return Caption(
        f"{', '.join(labels)}, {tag}",
        f"The headline values of the {name} metric ({', '.join(labels)}) over the successful seeds of each loss; "
        f"every dot is one seed.{dashed}",
        f"Box and strip plots of {', '.join(keys)} per loss on {tag}.",
    )


def curves(tag: str, curve_labels: Sequence[str]) -> Caption:
    return Caption(
        f"Training curves, {tag}",
        "Discriminator and generator losses (linear axes: losses may be negative), mean sigmoid(D) on real "
        "(solid) and fake (dashed) samples where scores are logits, and "
        + (
            ", ".join(curve_labels) + " from the evaluations during training"
            if curve_labels
            else "no evaluation during training"
        )
        + ", over steps. Lines: mean over seeds; bands: from the lowest to the highest seed.",
        f"Training curves per loss on {tag}.",
    )


def stability(tag: str) -> Caption:
    return Caption(
        f"Stability flags, {tag}",
        "Share of seeds (annotated as flagged/seeds) that failed, diverged, or raised each stored stability "
        "flag, per loss. Darker is worse.",
        f"Heatmap of failed, diverged and stability flags per loss on {tag}.",
    )


def points(tag: str, centres_known: bool) -> Caption:
    return Caption(
        f"Generated samples, {tag}",
        "Generated points of one seed per loss (the lowest successful seed) in the loss's colour; black "
        "crosses: the true mode centres."
        if centres_known
        else "Generated points of one seed per loss (the lowest successful seed); the dataset's mode centres "
        "are unknown here (its plugin is not loaded).",
        f"Scatter plots of generated 2-d points per loss on {tag}.",
    )


def images(tag: str) -> Caption:
    return Caption(
        f"Generated samples, {tag}",
        "Generated images of one seed per loss (the lowest successful seed).",
        f"Grids of generated images per loss on {tag}.",
    )


def heatmap(dataset: str, label: str, key: str, direction: str) -> Caption:
    return Caption(
        f"{label} by loss and model, {dataset}",
        f"Median over successful seeds of {label} for every loss (rows) and model (columns) on {dataset}; "
        f"{direction}. Empty cells: no successful run.",
        f"Heatmap of the median {key} per loss and model on {dataset}.",
    )


def run_curves(
    run_id: str, loss: str, dataset: str, seed: object, curve_label: str | None, failed_step: float | None
) -> Caption:
    return Caption(
        f"Training curves of {run_id}",
        "D loss (solid) and G loss (dashed), mean sigmoid(D) on real (solid) and fake (dashed), and "
        f"{curve_label or 'no curve metric'} over steps"
        + (
            f"; the dash-dotted line marks step {int(failed_step)} where the run stopped."
            if failed_step is not None
            else "."
        ),
        f"Training curves of run {run_id} ({loss} on {dataset}, seed {seed}).",
    )


def run_images(run_id: str, count: int, seed: object) -> Caption:
    return Caption(
        f"Samples of {run_id}", f"{count} generated images (seed {seed}).", f"Grid of generated images of run {run_id}."
    )


def run_points(run_id: str, count: int, centres_known: bool) -> Caption:
    return Caption(
        f"Samples of {run_id}",
        f"{count} generated points" + (" over the true mode centres (black crosses)." if centres_known else "."),
        f"Scatter plot of the generated points of run {run_id}.",
    )
