"""Samples to metric values: the evaluation context that metrics read, with features extracted once and cached."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from lossbench.api import Dataset, Metric, Samples
from lossbench.errors import DataUnavailable

FEATURE_BATCH = 512

INCEPTION_FEATURES = "inception-v3-pool3"  # the name stored beside every value computed with FID Inception
INCEPTION_WEIGHTS_ENV = "LOSSBENCH_INCEPTION_WEIGHTS"  # set by ``--inception-weights PATH``
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's file name in the torch hub cache
INCEPTION_MIN_SIDE = 16  # smaller images (the 8x8 built-ins) are scored in their classifier's space
INCEPTION_BATCH = 32  # 299x299 inputs: keep a CPU batch within a few hundred MB


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


def hub_inception_path() -> Path:
    """Where pytorch-fid looks for its weights: ``<torch hub dir>/checkpoints/<file>`` (honours ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_weights() -> Path | None:
    """The FID Inception weights file if present offline, else None.

    ``$LOSSBENCH_INCEPTION_WEIGHTS`` (``--inception-weights``) wins; a path given there that is not a file is an
    error (the user asked for it), while an empty torch hub cache just means "score in the fallback space".
    """
    given = os.environ.get(INCEPTION_WEIGHTS_ENV)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise DataUnavailable(f"--inception-weights / ${INCEPTION_WEIGHTS_ENV}: no file at {path} "
                                  f"(expected pytorch-fid's {INCEPTION_FILE})")
        return path
    cached = hub_inception_path()
    return cached if cached.is_file() else None


@contextlib.contextmanager
def _hub_serving(weights: Path) -> Iterator[None]:
    """Make pytorch-fid's ``load_state_dict_from_url`` find ``weights`` in the hub cache, so it never downloads.

    pytorch-fid always loads through the torch hub cache. A file already there needs nothing; a file elsewhere
    is linked into a temporary hub folder for the duration of the build, and the previous hub folder restored.
    """
    if weights.resolve() == hub_inception_path().resolve():
        yield
        return
    previous = getattr(torch.hub, "_hub_dir", None)
    with tempfile.TemporaryDirectory(prefix="lossbench-hub-") as hub:
        checkpoints = Path(hub) / "checkpoints"
        checkpoints.mkdir()
        try:
            (checkpoints / INCEPTION_FILE).symlink_to(weights.resolve())
        except OSError:  # no symlinks on this filesystem: copy
            shutil.copyfile(weights, checkpoints / INCEPTION_FILE)
        torch.hub.set_dir(hub)
        try:
            yield
        finally:
            torch.hub._hub_dir = previous  # restore exactly, including "unset" (follow $TORCH_HOME)


_INCEPTION: dict[tuple[str, str], nn.Module] = {}


def load_inception(weights: Path, device: torch.device) -> nn.Module:
    """pytorch-fid's ``InceptionV3`` (pool3 block, FID weights, its own resize and normalisation), kept per process.

    Built only once the weights file is known to exist, so that pytorch-fid never tries the network.
    """
    key = (str(weights.resolve()), str(device))
    if key not in _INCEPTION:
        from pytorch_fid.inception import InceptionV3

        block = InceptionV3.BLOCK_INDEX_BY_DIM[2048]
        try:
            with _hub_serving(weights):
                model = InceptionV3([block], use_fid_inception=True)
        except Exception as exc:
            raise DataUnavailable(f"Inception weights at {weights} could not be loaded "
                                  f"({type(exc).__name__}: {exc}); expected pytorch-fid's {INCEPTION_FILE}") from None
        _INCEPTION[key] = model.eval().to(device)
    return _INCEPTION[key]


def inception_space(weights: Path, device: torch.device) -> FeatureSpace:
    """2048-d pool3 features of pytorch-fid's Inception; images go from [-1, 1] to its [0, 1], grey to 3 channels."""
    model = load_inception(weights, device)

    def extract(x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"Inception features need (N, 1 or 3, H, W) images, got shape {tuple(x.shape)}")
        x = ((x.float() + 1) / 2).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        chunks = []
        for chunk in x.split(INCEPTION_BATCH):
            pooled = model(chunk)[0]
            if pooled.shape[2:] != (1, 1):  # as pytorch-fid's get_activations
                pooled = torch.nn.functional.adaptive_avg_pool2d(pooled, (1, 1))
            chunks.append(pooled.flatten(1))
        return torch.cat(chunks)

    return FeatureSpace(INCEPTION_FEATURES, extract)


def _inception_suits(dataset: Dataset) -> bool:
    spec = dataset.spec
    return spec.kind == "image" and len(spec.shape) == 3 and spec.channels in (1, 3) and spec.size >= INCEPTION_MIN_SIDE


def resolve_feature_space(which: str, dataset: Dataset, device: torch.device) -> FeatureSpace:
    """The feature space called ``which`` for ``dataset``.

    ``"default"``: raw coordinates for points; for images of at least 16 px, FID Inception's pool3 when its
    weights are present offline; otherwise (and always for the 8x8 built-ins, which Inception would see as a
    few blurred pixels) the dataset's own feature network (its classifier) when it has one, else raw pixels.
    ``"inception"``: FID Inception, an error naming where to put the weights when they are absent.
    ``"classifier"``: the dataset's feature network. ``"raw"``: coordinates or pixels.
    """
    if which == "raw" or (which == "default" and dataset.spec.kind == "points"):
        return FeatureSpace("coordinates" if dataset.spec.kind == "points" else "pixels", lambda x: x)
    if which == "inception":
        weights = inception_weights()
        if weights is None:
            raise DataUnavailable(f"FID Inception weights not found: put pytorch-fid's {INCEPTION_FILE} at "
                                  f"{hub_inception_path()} or pass --inception-weights PATH")
        return inception_space(weights, device)
    if which == "default" and _inception_suits(dataset):
        weights = inception_weights()
        if weights is not None:
            return inception_space(weights, device)
    if which in ("default", "classifier"):
        network = dataset.feature_network(device)
        if network is not None:
            return FeatureSpace(network.name, network.features)
        if which == "classifier":
            raise ValueError(f"dataset {dataset.name!r} has no classifier feature network")
        return FeatureSpace("pixels", lambda x: x)
    raise ValueError(f"unknown feature space {which!r} (known: default, raw, classifier, inception)")


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
    _spaces: dict[str, FeatureSpace] = field(default_factory=dict, repr=False)
    _features: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    def feature_space(self, which: str = "default") -> FeatureSpace:
        """The named feature space ("default", "raw", "classifier", "inception"); its ``name`` is stored beside
        values computed in it."""
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
    """Compute each metric; a metric that raises or returns a malformed value is recorded by name, not hidden.

    Metrics marked ``reads_values = True`` (e.g. the training target) run after the others and find their
    values in ``ctx.values``.
    """
    result = Evaluation()
    ctx.values = result.values
    for metric in sorted(metrics, key=lambda m: bool(getattr(m, "reads_values", False))):
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
