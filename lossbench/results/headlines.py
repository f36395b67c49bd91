"""Which metrics lead a leaderboard: light enough for the progress line and `show` (no plotting libraries).

The order comes from the metrics themselves: each declares the headline rank of its keys (``Metric.headline``,
stored with every run as a fact, see ``lossbench.results.facts``). The figures, the report, `show` and the
progress lines all ask these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lossbench.results.facts import RAW_SPACES, Facts, facts_of, family_of

__all__ = ["COMPACT", "headline_metrics", "leading_metrics", "primary_metric", "space_free"]

COMPACT = 4  # the headline keys a terminal line or a leaderboard plot has room for


def headline_metrics(keys: Iterable[str], facts: Facts | None, limit: int | None = None) -> list[str]:
    """The keys worth a column in a leaderboard: the headline keys present by rank (ties by name), else the
    primary one; ``limit``: only the first ones (``COMPACT`` fit a terminal line or a plot row)."""
    keys = list(keys)
    ranks = {key: facts_of(key, facts).headline for key in keys}
    chosen = sorted((k for k in keys if ranks[k] is not None), key=lambda k: (ranks[k], k))
    if not chosen:
        first = primary_metric(keys, facts)
        chosen = [first] if first else []
    return chosen[:limit] if limit else chosen


def primary_metric(keys: Iterable[str], facts: Facts | None) -> str | None:
    """The metric a leaderboard ranks by: the first headline key present, else the first ranked key by name."""
    keys = list(keys)
    headline = [k for k in keys if facts_of(k, facts).headline is not None]
    if headline:
        return min(headline, key=lambda k: (facts_of(k, facts).headline, k))
    ranked = sorted(k for k in keys if facts_of(k, facts).better != "none")
    return ranked[0] if ranked else (sorted(keys)[0] if keys else None)


def space_free(headline: Iterable[str], spaces: Mapping[str, Iterable[str]], names: Iterable[str] = ()) -> list[str]:
    """The headline keys that lead where the first headline key was measured in a raw space (coordinates,
    pixels: a Fréchet distance there sees only a mean and a covariance): those of the first metric measured in no
    feature space at all, such as a mixture protocol's mode measures (``names``: the metrics, to group keys by).
    Empty where the first key's space is a learned one."""
    headline = list(headline)
    lead_spaces = set(spaces.get(headline[0], ())) if headline else set()
    if not lead_spaces or not lead_spaces <= set(RAW_SPACES):
        return []
    free = [k for k in headline if not list(spaces.get(k, ()))]
    if not free:
        return []
    family = family_of(free[0], names)
    return [k for k in free if family_of(k, names) == family]


def leading_metrics(
    present: Iterable[str],
    facts: Facts | None,
    spaces: Mapping[str, Iterable[str]] | None = None,
    names: Iterable[str] = (),
) -> tuple[str | None, list[str], list[str]]:
    """(primary, headline, compact) metrics of one dataset x model; ``spaces`` maps keys to the feature spaces
    their values were measured in (``facts.key_spaces``), ``names`` are the metrics (``facts.metric_names``).

    Where the first headline key was measured on raw coordinates or pixels and a metric's headline keys need no
    feature space (the mixtures' mode measures), that metric's keys lead: the first ranks, the coordinate Fréchet
    distance stays in the tables after them (one Gaussian blob scores near the floor on it).
    """
    present = list(present)
    headline = headline_metrics(present, facts)
    free = space_free(headline, spaces or {}, names)
    if free:
        headline = free + [k for k in headline if k not in free]
        return free[0], headline, headline[:COMPACT]
    return primary_metric(present, facts), headline, headline[:COMPACT]
