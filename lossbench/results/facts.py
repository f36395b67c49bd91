"""Metric facts as the store holds them: each key's direction, label, unit and headline rank.

A metric declares them (``Metric.better``, ``labels``, ``units``, ``headline``); every run stores its metrics'
declarations as ``<metric>_facts`` texts (``lossbench.records.facts_texts``), so tables, figures, the report,
``show`` and the progress line read them from the runs, whether or not the plugin is installed. Registered metric
objects, when given, take precedence (they are the code now running). Torch-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import pandas as pd

from lossbench.records import KeyFacts, base_key, facts_from_texts, is_facts_column, metric_facts, space_of

Facts = Mapping[str, KeyFacts]
RAW_SPACES = ("coordinates", "pixels")  # a Fréchet distance here sees only a mean and a covariance
FEATURE_SUFFIX = "_features"  # ``<metric>_features``: the feature space a metric's values were measured in
DEFAULT = KeyFacts()


def stored_facts(runs_wide: pd.DataFrame | None) -> dict[str, KeyFacts]:
    """Facts recorded with the runs of a ``Store.runs_wide`` table (its ``<metric>_facts`` text columns)."""
    if runs_wide is None:
        return {}
    pairs = [
        (str(column), text)
        for column in runs_wide.columns
        if is_facts_column(column)
        for text in runs_wide[column].dropna().unique()
    ]  # one per metric, unless its declaration changed
    return facts_from_texts(pairs)


def declared_facts(metrics: Iterable[object]) -> dict[str, KeyFacts]:
    """Facts declared by metric objects (e.g. the registered ones)."""
    found: dict[str, KeyFacts] = {}
    for metric in metrics:
        found.update(metric_facts(metric))
    return found


def known_facts(runs_wide: pd.DataFrame | None = None, metrics: Iterable[object] = ()) -> dict[str, KeyFacts]:
    """Every known key's facts: those stored with the runs, then those of ``metrics`` (registered) over them.

    A value computed in a feature space chosen with ``--feature-space`` (``fid@s``) has its base key's direction,
    label and unit, labelled with its space, and is never a headline (the default space's key leads)."""
    facts = {**stored_facts(runs_wide), **declared_facts(metrics)}
    columns = [] if runs_wide is None else [str(column) for column in runs_wide.columns]
    for key in columns:
        space, base = space_of(key), base_key(key)
        if space and base in facts and key not in facts:
            fact = facts[base]
            facts[key] = dataclasses.replace(fact, label=f"{fact.name(base)} @{space}", headline=None)
    return facts


def facts_of(key: str, facts: Facts | None) -> KeyFacts:
    """One key's facts; a key nobody declares is lower-is-better, unlabelled and no headline."""
    return (facts or {}).get(key, DEFAULT)


def label(key: str, facts: Facts | None = None, features: str | None = None) -> str:
    """Axis/column label of a key: the metric's label and unit, then the feature space its value depends on."""
    fact = facts_of(key, facts)
    text = fact.name(key) + (f" ({fact.unit})" if fact.unit else "")
    if not features:
        return text
    short = "Inception-v3" if features == "inception-v3-pool3" else features
    return f"{text} [{short}]"


def feature_space_for(key: str, prefixes: Iterable[str]) -> str | None:
    """The metric prefix whose ``<prefix>_features`` describes ``key`` (``fid_floor`` -> ``fid``)."""
    prefixes = set(prefixes)
    parts = key.split("_")
    for i in range(len(parts), 0, -1):
        prefix = "_".join(parts[:i])
        if prefix in prefixes:
            return prefix
    return None


def feature_columns(runs_wide: pd.DataFrame) -> dict[str, pd.Series]:
    """Text columns that name a feature space (``fid_features``...), by the metric prefix they describe."""
    found = {}
    for column in runs_wide.columns:
        if str(column).endswith(FEATURE_SUFFIX) and not pd.api.types.is_numeric_dtype(runs_wide[column]):
            found[str(column).removesuffix(FEATURE_SUFFIX)] = runs_wide[column]
    return found


def key_spaces(keys: Iterable[str], texts: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Per key, the feature spaces its values were measured in: ``texts`` maps a metric prefix to the values of its
    ``<prefix>_features`` text; a key of a metric with no such text has none."""
    spaces = {}
    for key in keys:
        prefix = feature_space_for(key, texts)
        spaces[key] = sorted({str(s) for s in texts[prefix] if isinstance(s, str) and s}) if prefix else []
    return spaces


def labels(runs_wide: pd.DataFrame, dataset: str, keys: Iterable[str], facts: Facts | None = None) -> dict[str, str]:
    """Labels of metric keys on one dataset, naming the feature space(s) each value was measured in."""
    rows = runs_wide["dataset"] == dataset
    texts = {prefix: column[rows].dropna().unique() for prefix, column in feature_columns(runs_wide).items()}
    facts = stored_facts(runs_wide) if facts is None else facts
    return {
        key: label(key, facts, " / ".join(spaces) if spaces else None)
        for key, spaces in key_spaces(keys, texts).items()
    }


def metric_names(runs_wide: pd.DataFrame) -> list[str]:
    """The metrics whose facts the runs stored (``<metric>_facts`` columns): the families keys belong to."""
    return sorted({str(c).rsplit("_", 1)[0] for c in runs_wide.columns if is_facts_column(c)})


def family_of(key: str, names: Iterable[str]) -> str:
    """The metric a key belongs to (``prdc_recall`` -> ``prdc``); a key of no known metric is its own."""
    return feature_space_for(key, names) or key
