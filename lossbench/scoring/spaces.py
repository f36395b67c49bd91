"""Feature spaces: the built-in ones, which space "default" means for a dataset, and the chosen extra spaces.

A space is a ``lossbench.FeatureSpace`` plugin registered through ``register_feature_spaces``; the built-ins below
are registered by ``lossbench.builtin.spaces`` like any plugin's. ``resolve_feature_space`` turns a name into a
``BuiltSpace`` (the network, built on first use, and the name stored beside its values). The extra spaces a user
chooses with ``--feature-space`` are ``lossbench.scoring.chosen``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lossbench.api import Dataset, FeatureNetwork, FeatureSpace
from lossbench.errors import DataUnavailable
from lossbench.plugin.registry import Catalog, unknown_name_message
from lossbench.scoring import inception

FEATURE_BATCH = 512
DEFAULT = "default"
DEFAULT_ORDER = ("inception", "classifier", "raw")  # "default": the first that takes the dataset and is built


@dataclass
class BuiltSpace:
    """A built map from samples to feature vectors; ``name`` is stored beside every value computed in it."""

    name: str
    extract: Callable[[Tensor], Tensor]
    width: int | None = None  # declared output width, checked on every batch

    def __call__(self, x: Tensor) -> np.ndarray:
        chunks = []
        with torch.no_grad():
            for start in range(0, x.shape[0], FEATURE_BATCH):
                out = self.extract(x[start : start + FEATURE_BATCH])
                out = out.reshape(out.shape[0], -1)
                if self.width is not None and out.shape[1] != self.width:
                    raise ValueError(
                        f"feature space {self.name!r} declares width {self.width} but its extractor "
                        f"returned {out.shape[1]} features per sample"
                    )
                chunks.append(out.double().cpu())
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))


class Identity:
    """A ``FeatureNetwork``: the samples themselves, flattened ("coordinates" for points, "pixels" for images)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def features(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


class RawSpace(FeatureSpace):
    """Raw coordinates (points) or pixels (images): the default space of points datasets."""

    name = "raw"
    description = "raw coordinates (points) or pixels (images)"
    inputs = "vector"

    def build(self, dataset: Dataset, device: torch.device) -> FeatureNetwork:
        return Identity("coordinates" if dataset.spec.kind == "points" else "pixels")


class ClassifierSpace(FeatureSpace):
    """The dataset's own feature network (built-in image datasets: their classifier's 128-d penultimate layer)."""

    name = "classifier"
    description = "the dataset's own feature network (built-in image datasets: their classifier's 128-d features)"
    inputs = "vector"  # whatever the dataset's own network takes

    def build(self, dataset: Dataset, device: torch.device) -> FeatureNetwork | None:
        return dataset.feature_network(device)


class InceptionSpace(FeatureSpace):
    """pytorch-fid's FID Inception (2048-d pool3), the standard FID; weights from ``--inception-weights`` or the
    torch hub cache, never downloaded."""

    name = "inception"
    description = (
        "pytorch-fid's FID Inception, 2048-d pool3 (the standard FID); images of 16 px and more, weights on disk"
    )
    channels = (1, 3)
    sizes = (inception.INCEPTION_MIN_SIDE, None)  # 8x8 images would be a few blurred pixels to Inception
    width = inception.INCEPTION_WIDTH

    @property
    def weights(self) -> Path | None:  # type: ignore[override]  # read when asked: --inception-weights may change
        return inception.inception_weights()

    def unavailable(self) -> str | None:
        if self.weights is None:
            return (
                f"FID Inception weights not found: put pytorch-fid's {inception.INCEPTION_FILE} at "
                f"{inception.hub_inception_path()} or pass --inception-weights PATH"
            )
        return None

    def build(self, dataset: Dataset, device: torch.device) -> FeatureNetwork:
        weights = self.weights
        if weights is None:
            raise DataUnavailable(self.unavailable() or "")
        return inception.InceptionFeatures(inception.load_inception(weights, device))


BUILTIN_SPACES: tuple[FeatureSpace, ...] = (InceptionSpace(), ClassifierSpace(), RawSpace())
"""The built-in spaces, registered by ``lossbench.builtin.spaces``; also the spaces of a context built without a
catalog (a test, a metric's own check)."""


def builtin_spaces() -> dict[str, FeatureSpace]:
    return {space.name: space for space in BUILTIN_SPACES}


def catalog_spaces(catalog: Catalog) -> dict[str, FeatureSpace]:
    """The catalog's feature spaces by name; the built-ins for a hand-made catalog that registered none."""
    return {space.name: space for space in catalog.feature_spaces} or builtin_spaces()


def _bind(space: FeatureSpace, network: FeatureNetwork) -> BuiltSpace:
    return BuiltSpace(network.name, network.features, getattr(space, "width", None))


def build_space(space: FeatureSpace, dataset: Dataset, device: torch.device) -> BuiltSpace:
    """``space`` built for ``dataset``; one line naming the space when it refuses the data or cannot be built."""
    why = space.refuses(dataset.spec) or space.unavailable()
    if why:
        raise DataUnavailable(f"feature space {space.name!r} cannot score dataset {dataset.name!r}: {why}")
    network = space.build(dataset, device)
    if network is None:
        raise ValueError(f"feature space {space.name!r} has no network for dataset {dataset.name!r}")
    return _bind(space, network)


def resolve_feature_space(
    which: str, dataset: Dataset, device: torch.device, spaces: Mapping[str, FeatureSpace] | None = None
) -> BuiltSpace:
    """The space called ``which`` (a registered name, or "default": see ``resolve_default``) built for ``dataset``."""
    spaces = spaces or builtin_spaces()
    if which == DEFAULT:
        return resolve_default(dataset, device, spaces)[1]
    if which not in spaces:
        raise ValueError(unknown_name_message("feature space", which, list(spaces)))
    return build_space(spaces[which], dataset, device)


def resolve_default(
    dataset: Dataset, device: torch.device, spaces: Mapping[str, FeatureSpace]
) -> tuple[str, BuiltSpace]:
    """The dataset's own space, with its registered name: the first of inception, classifier, raw that takes the
    dataset, can be built here and has a network for it. That is raw coordinates for points; for images of at
    least 16 px FID Inception when its weights are present offline; otherwise (always for the 8x8 built-ins) the
    dataset's classifier when it has one, else raw pixels."""
    if dataset.spec.kind == "points" and "raw" in spaces:
        return "raw", build_space(spaces["raw"], dataset, device)
    for name in DEFAULT_ORDER:
        space = spaces.get(name)
        if space is None or space.refuses(dataset.spec) or space.unavailable():
            continue
        network = space.build(dataset, device)
        if network is not None:
            return name, _bind(space, network)
    raise ValueError(f"no feature space can score dataset {dataset.name!r}")
