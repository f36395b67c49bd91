"""Samples to metric values: the evaluation context that metrics read, with features extracted once and cached."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from lossbench.api import Dataset, FeatureSpace, Metric, Samples
from lossbench.plugin.metric_values import MetricValueError, split_values
from lossbench.records import space_key
from lossbench.scoring.inception import (  # noqa: F401  (re-exported: where callers have always found them)
    INCEPTION_FEATURES,
    INCEPTION_FILE,
    INCEPTION_WEIGHTS_ENV,
    hub_inception_path,
    inception_weights,
)
from lossbench.scoring.spaces import (
    DEFAULT,
    BuiltSpace,
    builtin_spaces,
    resolve_default,
    resolve_feature_space,
)


@dataclass
class EvaluationContext:
    """What a metric sees for one evaluation of one run: the harness's ``lossbench.api.MetricContext``, whose
    attributes and methods document each field below. Built by the harness; features are cached per space."""

    real: Samples
    fake: Samples
    dataset: Dataset
    spec: Any
    history: pd.DataFrame
    reference: Samples | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    final: bool = True
    curves: pd.DataFrame | None = None
    diverged_at: int | None = None
    values: dict[str, float] = field(default_factory=dict)
    family: str | None = None
    """The run's model family ("gan" | "vae"), when the harness knows it."""
    # Harness plumbing, not part of what a metric reads (``lossbench.api.MetricContext``):
    _registry: Mapping[str, FeatureSpace] | None = None
    """The registered feature spaces by name (the catalog's); None: the built-in ones."""
    _extra_spaces: tuple[str, ...] = ()
    """Spaces chosen with ``--feature-space``: ``per_feature_space`` metrics are also computed in each (final only)."""
    _default_space: str = DEFAULT
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
            self._spaces[which] = resolve_feature_space(which, self.dataset, self.device, self._registry)
        return self._spaces[which]

    def _resolved(self, which: str) -> str:
        """The registered name behind ``which``: "default" is the dataset's own space (built on first use), so that
        a space chosen with --feature-space that is also the default is extracted once."""
        which = self._default_space if which == DEFAULT else which
        if which != DEFAULT:
            return which
        if DEFAULT not in self._names:
            name, built = resolve_default(self.dataset, self.device, self._registry or builtin_spaces())
            self._spaces.setdefault(name, built)
            self._names[DEFAULT] = name
        return self._names[DEFAULT]

    def _in_space(self, space: str) -> EvaluationContext:
        """This context with ``space`` as its "default" (sharing the cache of built spaces and features)."""
        return dataclasses.replace(
            self, _default_space=space, _spaces=self._spaces, _names=self._names, _features=self._features
        )

    def _cached(self, which: str, role: str, samples: Samples) -> np.ndarray:
        key = (self._resolved(which), role)
        if key not in self._features:
            self._features[key] = self.feature_space(which)(samples.x.to(self.device))
        return self._features[key]

    def features(self, which: str = "default") -> tuple[np.ndarray, np.ndarray]:
        return self._cached(which, "real", self.real), self._cached(which, "fake", self.fake)

    def reference_features(self, which: str = "default") -> np.ndarray:
        if self.reference is None:
            raise ValueError("this evaluation has no reference set")
        return self._cached(which, "reference", self.reference)


@dataclass
class Evaluation:
    """The outcome of running some metrics: numbers, text facts, and the metrics that raised."""

    values: dict[str, float] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _compute_into(result: Evaluation, metric: Metric, ctx: EvaluationContext, space: str | None = None) -> None:
    """One metric's values into ``result`` (keys renamed ``<name>@<space>...`` when ``space`` is given); a metric
    that raises or returns a malformed value is recorded by name (``<name>@<space>`` in a space), not hidden."""
    name = metric.name if space is None else f"{metric.name}@{space}"
    try:
        values, texts = split_values(metric.name, metric.compute(ctx))
    except MetricValueError as exc:
        result.errors[name] = str(exc)
    except Exception as exc:  # recorded with the run; the other metrics still count
        result.errors[name] = f"{type(exc).__name__}: {exc}"
    else:
        rename = (lambda key: key) if space is None else (lambda key: space_key(key, metric.name, space))
        result.values.update({rename(k): v for k, v in values.items()})
        result.texts.update({rename(k): v for k, v in texts.items()})


def run_metrics(metrics: Iterable[Metric], ctx: EvaluationContext) -> Evaluation:
    """Compute each metric; a metric that raises or returns a malformed value is recorded by name, not hidden.

    What a metric may return is ``plugin.metric_values``' rule, the one ``check_metric`` applies: a metric that
    breaks it contributes no value, and its message names the key. Metrics marked ``reads_values = True`` (e.g.
    the training target) run after the others and find their values in ``ctx.values``. At the final evaluation,
    ``per_feature_space`` metrics are computed again in each of ``ctx._extra_spaces`` (``score_in_spaces``).
    """
    result = Evaluation()
    ctx.values = result.values
    metrics = list(metrics)
    for metric in sorted(metrics, key=lambda m: bool(getattr(m, "reads_values", False))):
        _compute_into(result, metric, ctx)
    if ctx.final and ctx._extra_spaces:
        score_in_spaces(metrics, ctx, ctx._extra_spaces, result)
    return result


def score_in_spaces(
    metrics: Iterable[Metric], ctx: EvaluationContext, spaces: Iterable[str], result: Evaluation | None = None
) -> Evaluation:
    """The ``per_feature_space`` metrics computed in each of ``spaces`` (keys ``<name>@<space>...``); a space
    that cannot take the dataset's samples is left out (the grid said so before training)."""
    result = result if result is not None else Evaluation()
    registry = ctx._registry if ctx._registry is not None else builtin_spaces()
    chosen = [m for m in metrics if getattr(m, "per_feature_space", False)]
    for space in spaces:
        if space in registry and registry[space].refuses(ctx.dataset.spec):
            continue
        in_space = ctx._in_space(space)
        for metric in chosen:
            _compute_into(result, metric, in_space, space)
    return result


def finite(samples: Samples) -> bool:
    """Whether every generated value is finite (a diverged generator's samples are not)."""
    return bool(torch.isfinite(samples.x).all())
