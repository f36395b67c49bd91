"""Samples to metric values: the evaluation context that metrics read, with features extracted once and cached."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lossbench.api import Dataset, FeatureSpace, Metric, Samples
from lossbench.records import space_key
from lossbench.scoring.inception import (  # noqa: F401  (re-exported: where callers have always found them)
    INCEPTION_FEATURES, INCEPTION_FILE, INCEPTION_WEIGHTS_ENV, hub_inception_path, inception_weights,
)
from lossbench.scoring.spaces import (
    DEFAULT, BuiltSpace, builtin_spaces, resolve_default, resolve_feature_space,
)


@dataclass
class EvaluationContext:
    """What a metric sees for one evaluation of one run. Built by the harness; features are cached per space."""

    real: Samples
    """The real samples scored against (at most half of the dataset; fewer during training)."""
    fake: Samples
    """The run's generated samples, from the same evaluation noise at every evaluation."""
    dataset: Dataset
    """The dataset object (its ``spec``, ``mode_of``, ``centres``, ``feature_network``)."""
    spec: Any
    """The run's ``lossbench.RunSpec``: loss, model, dataset, seed, steps, sample sizes."""
    history: pd.DataFrame
    """The training log so far: one row per logged step, the columns of ``history.csv``."""
    reference: Samples | None = None
    """A second real set, disjoint from ``real`` and of its size, for real-vs-real floors."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where the run's networks are."""
    final: bool = True
    """False for the light evaluations during training (curve metrics, fewer samples)."""
    curves: pd.DataFrame | None = None
    """The light evaluations so far: columns step, key, value."""
    diverged_at: int | None = None
    """The step at which the run diverged, if it did (then only ``needs_samples = False`` metrics run)."""
    values: dict[str, float] = field(default_factory=dict)
    """The values computed so far in this evaluation (read by ``reads_values`` metrics, e.g. the target)."""
    family: str | None = None
    """The run's model family ("gan" | "vae"), when the harness knows it."""
    spaces: Mapping[str, FeatureSpace] | None = None
    """The registered feature spaces by name (the catalog's); None: the built-in ones."""
    extra_spaces: tuple[str, ...] = ()
    """Spaces chosen with ``--feature-space``: ``per_feature_space`` metrics are also computed in each (final only)."""
    default_space: str = DEFAULT
    """What ``"default"`` means in this context: "default" (the dataset's own choice) or, while a metric is computed
    in an extra space, that space's name."""
    _spaces: dict[str, BuiltSpace] = field(default_factory=dict, repr=False)
    _names: dict[str, str] = field(default_factory=dict, repr=False)  # "default" -> the registered space it is
    _features: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    def feature_space(self, which: str = "default") -> BuiltSpace:
        """The named feature space ("default" or a registered name: "raw", "classifier", "inception"...), built on
        first use; its ``name`` is stored beside values computed in it."""
        which = self._resolved(which)
        if which not in self._spaces:
            self._spaces[which] = resolve_feature_space(which, self.dataset, self.device, self.spaces)
        return self._spaces[which]

    def _resolved(self, which: str) -> str:
        """The registered name behind ``which``: "default" is the dataset's own space (built on first use), so that
        a space chosen with --feature-space that is also the default is extracted once."""
        which = self.default_space if which == DEFAULT else which
        if which != DEFAULT:
            return which
        if DEFAULT not in self._names:
            name, built = resolve_default(self.dataset, self.device, self.spaces or builtin_spaces())
            self._spaces.setdefault(name, built)
            self._names[DEFAULT] = name
        return self._names[DEFAULT]

    def in_space(self, space: str) -> "EvaluationContext":
        """This context with ``space`` as its "default" (sharing the cache of built spaces and features)."""
        return dataclasses.replace(self, default_space=space, _spaces=self._spaces, _names=self._names,
                                   _features=self._features)

    def _cached(self, which: str, role: str, samples: Samples) -> np.ndarray:
        key = (self._resolved(which), role)
        if key not in self._features:
            self._features[key] = self.feature_space(which)(samples.x.to(self.device))
        return self._features[key]

    def features(self, which: str = "default") -> tuple[np.ndarray, np.ndarray]:
        """(real, fake) features as float64 arrays of shape (N, d), extracted once per space."""
        return self._cached(which, "real", self.real), self._cached(which, "fake", self.fake)

    def reference_features(self, which: str = "default") -> np.ndarray:
        """Features of the reference real set (disjoint from ``real``)."""
        if self.reference is None:
            raise ValueError("this evaluation has no reference set")
        return self._cached(which, "reference", self.reference)


@dataclass
class Evaluation:
    """The outcome of running some metrics: numbers, text facts, and the metrics that raised."""

    values: dict[str, float] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _check_key(metric: Metric, key: str) -> None:
    if key != metric.name and not key.startswith(metric.name + "_"):
        raise ValueError(f"returned key {key!r}; keys must be {metric.name!r} or start with {metric.name + '_'!r}")


def _compute_into(result: Evaluation, metric: Metric, ctx: EvaluationContext, space: str | None = None) -> None:
    """One metric's values into ``result`` (keys renamed ``<name>@<space>...`` when ``space`` is given); a metric
    that raises or returns a malformed value is recorded by name (``<name>@<space>`` in a space), not hidden."""
    try:
        values = metric.compute(ctx)
        if not isinstance(values, dict):
            raise TypeError(f"compute() returned {type(values).__name__}, expected a dict")
        for key, value in values.items():
            _check_key(metric, key)
            if space is not None:
                key = space_key(key, metric.name, space)
            if isinstance(value, str):
                result.texts[key] = value
            elif isinstance(value, (bool, int, float, np.floating, np.integer)):
                result.values[key] = float(value)
            elif isinstance(value, Tensor) and value.numel() == 1:
                result.values[key] = float(value.item())
            else:
                raise TypeError(f"value of {key!r} is {type(value).__name__}, expected a float or str")
    except Exception as exc:  # recorded with the run; the other metrics still count
        name = metric.name if space is None else f"{metric.name}@{space}"
        result.errors[name] = f"{type(exc).__name__}: {exc}"


def run_metrics(metrics: Iterable[Metric], ctx: EvaluationContext) -> Evaluation:
    """Compute each metric; a metric that raises or returns a malformed value is recorded by name, not hidden.

    Metrics marked ``reads_values = True`` (e.g. the training target) run after the others and find their
    values in ``ctx.values``. At the final evaluation, ``per_feature_space`` metrics are computed again in each
    of ``ctx.extra_spaces`` (``score_in_spaces``).
    """
    result = Evaluation()
    ctx.values = result.values
    metrics = list(metrics)
    for metric in sorted(metrics, key=lambda m: bool(getattr(m, "reads_values", False))):
        _compute_into(result, metric, ctx)
    if ctx.final and ctx.extra_spaces:
        score_in_spaces(metrics, ctx, ctx.extra_spaces, result)
    return result


def score_in_spaces(metrics: Iterable[Metric], ctx: EvaluationContext, spaces: Iterable[str],
                    result: Evaluation | None = None) -> Evaluation:
    """The ``per_feature_space`` metrics computed in each of ``spaces`` (keys ``<name>@<space>...``); a space
    that cannot take the dataset's samples is left out (the grid said so before training)."""
    result = result if result is not None else Evaluation()
    registry = ctx.spaces if ctx.spaces is not None else builtin_spaces()
    chosen = [m for m in metrics if getattr(m, "per_feature_space", False)]
    for space in spaces:
        if space in registry and registry[space].refuses(ctx.dataset.spec):
            continue
        in_space = ctx.in_space(space)
        for metric in chosen:
            _compute_into(result, metric, in_space, space)
    return result


def finite(samples: Samples) -> bool:
    """Whether every generated value is finite (a diverged generator's samples are not)."""
    return bool(torch.isfinite(samples.x).all())
