"""Which metrics lead a leaderboard: light enough for the progress line and `show` (no plotting libraries).

The figures, the report, `show` and the progress lines all ask these; the orders live here once.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["COMPACT_ORDER", "HEADLINE_ORDER", "MODE_KEYS", "PRIMARY_ORDER", "RAW_SPACES", "headline_metrics",
           "leading_metrics", "primary_metric"]

# The metric a leaderboard is ranked by: the first of these that the store holds for a dataset.
PRIMARY_ORDER = ("fid", "kid", "modes_covered", "modes_high_quality", "modes_kl")
# The metrics shown in leaderboard tables and plots (when present), in this order.
HEADLINE_ORDER = ("fid", "kid", "prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage",
                  "modes_covered", "modes_high_quality", "modes_kl")
# The few metrics a terminal line or a leaderboard plot has room for, in this order.
COMPACT_ORDER = ("fid", "modes_covered", "prdc_precision", "prdc_recall", "kid", "modes_high_quality")
# The mixtures' protocol measures, in the order they lead where FID was measured in a raw space.
MODE_KEYS = ("modes_covered", "modes_high_quality", "modes_kl")
RAW_SPACES = ("coordinates", "pixels")  # a Fréchet distance here sees only a mean and a covariance


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


def leading_metrics(present: Iterable[str], fid_spaces: Iterable[str]) -> tuple[str | None, list[str], list[str]]:
    """(primary, headline, compact) metrics of one dataset x model whose FID was measured in ``fid_spaces``.

    Where FID was measured on raw coordinates or pixels and mode measures exist (the mixtures), the mode measures
    of the dataset's protocol lead: modes covered ranks, then high-quality share and KL; the coordinate Fréchet
    distance stays in the tables after them (one Gaussian blob scores near the floor on it).
    """
    present, spaces = list(present), {space for space in fid_spaces if space}
    modes = [k for k in MODE_KEYS if k in present]
    if modes and spaces and spaces <= set(RAW_SPACES):
        headline = modes + [k for k in headline_metrics(present) if k not in modes]
        compact = (modes + [k for k in headline_metrics(present, compact=True) if k not in modes])[:4]
        return modes[0], headline, compact
    return primary_metric(present), headline_metrics(present), headline_metrics(present, limit=4, compact=True)
