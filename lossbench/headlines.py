"""Which metrics lead a leaderboard: light enough for the progress line and `show` (no plotting libraries).

The figures, the report, `show` and the progress lines all ask these; the orders live here once.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["COMPACT_ORDER", "HEADLINE_ORDER", "PRIMARY_ORDER", "headline_metrics", "primary_metric"]

# The metric a leaderboard is ranked by: the first of these that the store holds for a dataset.
PRIMARY_ORDER = ("fid", "kid", "modes_covered", "modes_high_quality", "modes_kl")
# The metrics shown in leaderboard tables and plots (when present), in this order.
HEADLINE_ORDER = ("fid", "kid", "prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage",
                  "modes_covered", "modes_high_quality", "modes_kl")
# The few metrics a terminal line or a leaderboard plot has room for, in this order.
COMPACT_ORDER = ("fid", "modes_covered", "prdc_precision", "prdc_recall", "kid", "modes_high_quality")


def primary_metric(keys: Iterable[str]) -> str | None:
    """The metric a leaderboard ranks by: FID where present, else the first known headline, else any metric."""
    keys = [k for k in keys if not k.endswith("_floor")]
    for key in PRIMARY_ORDER:
        if key in keys:
            return key
    return sorted(keys)[0] if keys else None


def headline_metrics(keys: Iterable[str], limit: int | None = None, compact: bool = False) -> list[str]:
    """The metrics worth a column in a leaderboard: known headlines in a fixed order, else the primary one;
    ``compact``: the few that fit a terminal line or a plot row (FID, modes, precision, recall)."""
    keys = list(keys)
    chosen = [k for k in (COMPACT_ORDER if compact else HEADLINE_ORDER) if k in keys]
    if not chosen:
        first = primary_metric(keys)
        chosen = [first] if first else []
    return chosen[:limit] if limit else chosen
