"""Samples to metric values: the evaluation context that metrics read, with features extracted once and cached."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lossbench.api import Dataset, Metric, Samples

FEATURE_BATCH = 512


def _flatten(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


@dataclass
class FeatureSpace:
    """A named map from samples to feature vectors; the name is stored beside every value computed in it."""

    name: str
    extract: Callable[[Tensor], Tensor]

    def __call__(self, x: Tensor) -> np.ndarray:
        chunks = []
        with torch.no_grad():
            for start in range(0, x.shape[0], FEATURE_BATCH):
                chunks.append(_flatten(self.extract(x[start : start + FEATURE_BATCH])).double().cpu())
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))


def resolve_feature_space(which: str, dataset: Dataset, device: torch.device) -> FeatureSpace:
    """The feature space called ``which`` for ``dataset``.

    ``"default"``: raw coordinates for points; for images the dataset's own feature network (its classifier)
    when it has one, else raw pixels. ``"raw"``: coordinates or pixels.
    """
    if which == "raw" or (which == "default" and dataset.spec.kind == "points"):
        return FeatureSpace("coordinates" if dataset.spec.kind == "points" else "pixels", lambda x: x)
    if which in ("default", "classifier"):
        network = dataset.feature_network(device)
        if network is not None:
            return FeatureSpace(network.name, network.features)
        if which == "classifier":
            raise ValueError(f"dataset {dataset.name!r} has no classifier feature network")
        return FeatureSpace("pixels", lambda x: x)
    raise ValueError(f"unknown feature space {which!r} (known: default, raw, classifier)")


@dataclass
class EvaluationContext:
    """What a metric sees for one evaluation of one run. Built by the harness; features are cached per space."""

    real: Samples
    fake: Samples
    dataset: Dataset
    spec: Any  # lossbench.grid.RunSpec
    history: pd.DataFrame
    reference: Samples | None = None  # a second real set, disjoint from ``real``, for real-vs-real floors
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    final: bool = True  # False during training (curve evaluations on fewer samples)
    curves: pd.DataFrame | None = None  # light evaluations so far: columns step, key, value
    diverged_at: int | None = None  # the step at which the run diverged, if it did
    _spaces: dict[str, FeatureSpace] = field(default_factory=dict, repr=False)
    _features: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    def feature_space(self, which: str = "default") -> FeatureSpace:
        if which not in self._spaces:
            self._spaces[which] = resolve_feature_space(which, self.dataset, self.device)
        return self._spaces[which]

    def _cached(self, which: str, role: str, samples: Samples) -> np.ndarray:
        key = (which, role)
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


def run_metrics(metrics: Iterable[Metric], ctx: EvaluationContext) -> Evaluation:
    """Compute each metric; a metric that raises or returns a malformed value is recorded by name, not hidden."""
    result = Evaluation()
    for metric in metrics:
        try:
            values = metric.compute(ctx)
            if not isinstance(values, dict):
                raise TypeError(f"compute() returned {type(values).__name__}, expected a dict")
            for key, value in values.items():
                _check_key(metric, key)
                if isinstance(value, str):
                    result.texts[key] = value
                elif isinstance(value, (bool, int, float, np.floating, np.integer)):
                    result.values[key] = float(value)
                elif isinstance(value, Tensor) and value.numel() == 1:
                    result.values[key] = float(value.item())
                else:
                    raise TypeError(f"value of {key!r} is {type(value).__name__}, expected a float or str")
        except Exception as exc:  # recorded with the run; the other metrics still count
            result.errors[metric.name] = f"{type(exc).__name__}: {exc}"
    return result


def finite(samples: Samples) -> bool:
    """Whether every generated value is finite (a diverged generator's samples are not)."""
    return bool(torch.isfinite(samples.x).all())
