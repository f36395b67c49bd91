"""The plugin-facing types: what a third-party loss, model, dataset or metric is written against.

This module is the public contract third-party plugins are written against (docs/architecture.md). Everything
here is re-exported from ``lossbench``; plugins import from there (``from lossbench import AdversarialLoss,
Recipe, hookimpl``). Additions are allowed (new optional methods with defaults), changes to what exists are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    import numpy as np
    import pandas as pd
    import torch
    from torch import Tensor, nn

PROJECT_NAME = "lossbench"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

FAMILIES = ("gan", "vae")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
DIRECTIONS = ("higher", "lower", "none")  # Metric.better values; "none": shown, never ranked


@dataclass(frozen=True)
class Recipe:
    """Training defaults a loss needs, taken from its paper (the harness follows them for that loss).

    The first five fields are the original contract; the rest extend it compatibly (their defaults change nothing):

    - ``ema_decay``: when set (e.g. 0.999), the engine keeps an exponential moving average of the generator,
      ``avg <- decay * avg + (1 - decay) * G`` after every generator step starting from a copy of the initial G,
      and evaluates the average instead of G (Mescheder et al. 2018 evaluate such an average).
    - ``n_critic_burst``, ``burst_steps``, ``burst_every``: an n_critic schedule. Generator step t (from 1) gets
      ``n_critic_burst`` critic steps when ``t <= burst_steps`` or ``(t - 1) % burst_every == 0``, else
      ``n_critic`` (WGAN: 100 critic steps for the first 25 generator steps and every 500th).
    """

    n_critic: int = 1
    """Discriminator (critic) updates per generator update."""
    optimizer: str = "adam"
    """"adam", "rmsprop" or "sgd", for both players."""
    lr_g: float = 2e-4
    """Learning rate of the generator (VAEs: of encoder and decoder together)."""
    lr_d: float = 2e-4
    """Learning rate of the discriminator."""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam's betas (ignored by the other optimizers)."""
    ema_decay: float | None = None
    """Decay of the evaluated moving average of the generator, or None for no average (see above)."""
    n_critic_burst: int = 0
    """Critic steps of the schedule's bursts (0: no schedule, ``n_critic`` every step)."""
    burst_steps: int = 0
    """The first generator steps that get ``n_critic_burst`` critic steps."""
    burst_every: int = 0
    """Every this many generator steps another burst (0: none after the first ``burst_steps``)."""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Recipe.optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if int(self.n_critic) != self.n_critic or self.n_critic < 1:
            raise ValueError(f"Recipe.n_critic must be a positive integer, not {self.n_critic!r}")
        if not (self.lr_g > 0 and self.lr_d > 0):
            raise ValueError("Recipe learning rates must be positive")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"Recipe.ema_decay must be in (0, 1) or None, not {self.ema_decay!r}")
        for name in ("n_critic_burst", "burst_steps", "burst_every"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ValueError(f"Recipe.{name} must be a non-negative integer, not {value!r}")

    def critic_steps(self, step: int) -> int:
        """Critic steps before generator step ``step`` (counted from 1), following the n_critic schedule."""
        if self.n_critic_burst and (
            step <= self.burst_steps or (self.burst_every and (step - 1) % self.burst_every == 0)
        ):
            return self.n_critic_burst
        return self.n_critic


class AdversarialLoss:
    """A GAN loss (family ``"gan"``), written in terms of the discriminator's raw scores.

    Scores are the discriminator's raw outputs, shape ``[batch]``: logits for the classic losses, unbounded critic
    values for the Wasserstein family. Set ``scores_are_logits = False`` for the latter so that the harness does
    not report sigmoid(D) for them. Losses may be negative.
    """

    family: ClassVar[str] = "gan"
    """Always "gan": pairs the loss with models of the same family."""
    name: str = ""
    """Lowercase slug users select it by (``-l name``)."""
    description: str = ""
    """One line shown by ``lossbench list`` (default: the class docstring's first line)."""
    recipe: Recipe = Recipe()
    """The training defaults of the loss's paper, which the harness follows for this loss."""
    scores_are_logits: bool = True
    """False for critics (unbounded scores): no sigmoid(D), equilibrium gap or logit accuracy is reported."""
    generator_needs_real: bool = False
    """True when ``generator_loss`` uses ``real_scores``: the harness recomputes D(real) with the updated D."""
    pure: bool = False
    """True when ``discriminator_loss`` and ``generator_loss`` are pure functions of their tensors: no state kept
    between calls, no random draws, no Python decision on a value (``.item()``, ``if x > 0``). The stacked engine
    (``--vectorise``) then evaluates every member of one loss in a single ``torch.func.vmap`` call instead of one
    call per member; it checks the claim (a random draw or a value read makes it go member by member) but cannot
    see state kept on the loss. A subclass that overrides either loss inherits no claim: it declares its own.
    ``penalty`` is always called per member, with that member's random stream."""

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        """Scalar the discriminator minimises."""
        raise NotImplementedError(f"{type(self).__name__} must implement discriminator_loss")

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        """Scalar the generator minimises.

        ``real_scores`` (no gradient) are D's scores of the last real batch: from the last critic step, or
        recomputed with the updated D when ``generator_needs_real`` is True (relativistic losses).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement generator_loss")

    def penalty(self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor | None:
        """Optional regulariser added to the discriminator loss (GP, DRAGAN, R1...). ``critic`` maps x -> scores.

        Draw random numbers (interpolation weights, perturbations) from torch's global generator on the data's
        device, e.g. ``torch.rand(shape, device=real.device)``: the harness seeds it once per run, after building
        the model, from the seed, loss, model and dataset, so the draws are reproducible for each RunSpec.
        """
        return None

    def discriminator_probabilities(self, real_scores: Tensor, fake_scores: Tensor) -> tuple[Tensor, Tensor]:
        """Per sample, D's probability that the sample is real, for real and fake samples (logits only).

        The harness logs their means as sigmoid(D) and scores D's accuracy at 0.5 from them. Default:
        ``sigmoid(score)``; a relativistic loss overrides it (sigma(C(x_f) - mean C(x_r))). An extension of the
        original contract.
        """
        import torch  # here, not at the top: the API's types are read without torch (lossbench show, --help)

        return torch.sigmoid(real_scores), torch.sigmoid(fake_scores)

    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        """Optional hook after each discriminator update (e.g. weight clipping)."""

    def supports(self, data: DataSpec) -> bool:
        """Whether this loss applies to data of this spec (default: any)."""
        return True

    def bind(self, dataset: Dataset, device: torch.device) -> AdversarialLoss:
        """Return the loss to use for one run on ``dataset`` (default: itself)."""
        return self


class VAELoss:
    """A VAE objective (family ``"vae"``): ``loss`` is minimised over encoder and decoder together.

    ``reconstruction`` is the decoder's output in data space (images in [-1, 1]); ``mu`` and ``logvar`` are the
    encoder's Gaussian posterior parameters.
    """

    family: ClassVar[str] = "vae"
    """Always "vae": pairs the loss with models of the same family."""
    name: str = ""
    """Lowercase slug users select it by (``-l name``)."""
    description: str = ""
    """One line shown by ``lossbench list`` (default: the class docstring's first line)."""
    recipe: Recipe = Recipe(lr_g=1e-3, lr_d=1e-3, betas=(0.9, 0.999))
    """Optimizer and learning rate (``lr_g``) of encoder and decoder."""

    def loss(self, x: Tensor, reconstruction: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """Scalar to minimise."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss")

    def supports(self, data: DataSpec) -> bool:
        """Whether this loss applies to data of this spec (default: any)."""
        return True

    def bind(self, dataset: Dataset, device: torch.device) -> VAELoss:
        """Return the loss to use for one run on ``dataset`` (default: itself), e.g. to attach a feature network."""
        return self


Loss = AdversarialLoss | VAELoss


@dataclass(frozen=True)
class DataSpec:
    """The shape and kind of one dataset's samples, which is all a model factory needs to know."""

    shape: tuple[int, ...]
    """One sample's shape: ``(d,)`` for points, ``(C, H, W)`` for images."""
    kind: str
    """"points" or "image"."""
    n_modes: int | None = None
    """Number of modes (classes, mixture components) when known; mode metrics need it."""

    @property
    def channels(self) -> int:
        """Image channels (images are ``(C, H, W)``)."""
        return self.shape[0]

    @property
    def size(self) -> int:
        """Image side in pixels (images are square)."""
        return self.shape[-1]


@dataclass
class Samples:
    """A batch of samples: ``x`` is ``(N, *shape)`` float32 (images in [-1, 1]); ``y`` are mode labels if known."""

    x: Tensor
    """``(N, *shape)`` float32; images in [-1, 1]."""
    y: Tensor | None = None
    """``(N,)`` int64 mode labels in ``[0, n_modes)``, or None."""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: Tensor) -> Samples:
        """The samples at ``index``."""
        return Samples(self.x[index], None if self.y is None else self.y[index])

    def to(self, device: torch.device | str) -> Samples:
        """The samples on ``device``."""
        return Samples(self.x.to(device), None if self.y is None else self.y.to(device))


@dataclass
class ModeAssignment:
    """Which mode each sample belongs to, and whether it is a high-quality sample of that mode."""

    mode: Tensor
    """``(N,)`` int64: the mode each sample belongs to, in ``[0, n_modes)``."""
    high_quality: Tensor
    """``(N,)`` bool: whether the sample is a high-quality sample of its mode (e.g. within 3 std of a centre)."""


@dataclass(frozen=True)
class Threshold:
    """One condition of a training target: the final value of metric ``key`` is at least ``at_least`` and/or at
    most ``at_most``; with ``relative_to``, the bounds are multiples of that key's value (e.g. FID <= 10 x floor)."""

    key: str
    at_least: float | None = None
    at_most: float | None = None
    relative_to: str | None = None

    def holds(self, values: Mapping[str, float]) -> bool | None:
        """Whether the condition holds; None when a value it needs is missing or not finite."""
        value = values.get(self.key, math.nan)
        scale = values.get(self.relative_to, math.nan) if self.relative_to else 1.0
        if not (math.isfinite(float(value)) and math.isfinite(float(scale))):
            return None
        low = -math.inf if self.at_least is None else self.at_least * scale
        high = math.inf if self.at_most is None else self.at_most * scale
        return low <= float(value) <= high

    def describe(self) -> str:
        unit = f" x {self.relative_to}" if self.relative_to else ""
        parts = ([f"{self.key} >= {self.at_least:g}{unit}"] if self.at_least is not None else []) + (
            [f"{self.key} <= {self.at_most:g}{unit}"] if self.at_most is not None else []
        )
        return " and ".join(parts)


@dataclass(frozen=True)
class TrainingTarget:
    """What a trained model reaches on a dataset (every threshold holds), and where that bar comes from.

    A run that misses it is undertrained or failed; when most losses of a dataset x model miss it, the report
    says the budget, not the losses, decided the ranking. An extension of the original contract.
    """

    thresholds: tuple[Threshold, ...]
    source: str = ""
    families: tuple[str, ...] = FAMILIES  # the model families it is a bar for (e.g. only "gan")

    def reached(self, values: Mapping[str, float]) -> float:
        """1.0 when every threshold holds, 0.0 when one fails, NaN when a value it needs is missing."""
        verdicts = [threshold.holds(values) for threshold in self.thresholds]
        if any(verdict is False for verdict in verdicts):
            return 0.0
        return math.nan if any(verdict is None for verdict in verdicts) else 1.0

    def describe(self) -> str:
        """The rule as text, e.g. ``modes_high_quality >= 0.8; modes_covered >= 6``."""
        return "; ".join(threshold.describe() for threshold in self.thresholds)


class Dataset:
    """A dataset plugin. ``load`` returns the training samples; ``mode_of`` assigns generated samples to modes."""

    name: str = ""
    """Lowercase slug users select it by (``-d name``)."""
    description: str = ""
    """One line shown by ``lossbench list`` (default: the class docstring's first line)."""
    spec: DataSpec
    """Shape, kind and number of modes of the samples."""
    centres: Tensor | None = None
    """``(n_modes, *shape)`` mode centres of a points dataset, or None; the report draws them under the generated
    points."""
    target: TrainingTarget | None = None
    """What a trained model reaches here (``TrainingTarget``); None: no target, nothing claimed."""

    def load(self, root: Path | None) -> Samples:
        """All training samples. ``root`` is the user's data folder (``--data-root``) for on-disk datasets."""
        raise NotImplementedError(f"{type(self).__name__} must implement load")

    def mode_of(self, x: Tensor) -> ModeAssignment | None:
        """Mode of each sample in ``x`` (points: nearest centre; images: the dataset's classifier), or None."""
        return None

    def availability(self, root: Path | None) -> str | None:
        """None when the data can be loaded; otherwise one line saying which files to put where.

        Lets the default grid skip on-disk datasets whose files are absent.
        """
        return None

    def feature_network(self, device: torch.device) -> FeatureNetwork | None:
        """A network whose features score samples of this dataset (images: its own classifier), or None."""
        return None


@runtime_checkable
class FeatureNetwork(Protocol):
    """A feature space for scoring: ``features`` maps ``(N, *shape)`` samples to ``(N, d)`` features."""

    name: str
    """Recorded beside every value computed in this space, e.g. "digits-classifier"."""

    def features(self, x: Tensor) -> Tensor:
        """``(N, *shape)`` samples -> ``(N, d)`` features."""
        ...


FEATURE_INPUTS = ("image", "vector")  # FeatureSpace.inputs values


class FeatureSpace:
    """A feature-space plugin: a network image metrics (FID, KID, PRDC) can be computed in, chosen with
    ``lossbench run --feature-space NAME`` (an extension of the original contract).

    Registration is cheap: nothing is read or built until a metric first needs the space in a process (``build``).
    Values computed in it are stored under ``<metric>@<name>`` keys (``fid@<name>``, ``prdc@<name>_recall``), with
    ``<metric>@<name>_features`` naming the network, so the default space's keys (``fid``...) never change.
    """

    name: str = ""
    """Lowercase slug users select it by (``--feature-space name``)."""
    description: str = ""
    """One line shown by ``lossbench list`` (default: the class docstring's first line)."""
    inputs: str = "image"
    """"image": ``(N, C, H, W)`` images in [-1, 1] within ``channels`` and ``sizes``; "vector": any samples
    (points, or images flattened)."""
    channels: tuple[int, ...] = (1, 3)
    """Image channels it takes ("image" inputs)."""
    sizes: tuple[int, int | None] = (1, None)
    """Smallest and largest image side it takes (None: no upper bound); its extractor resizes within them."""
    width: int | None = None
    """Features per sample, ``(N, width)``; None when it depends on the data (raw coordinates). Checked."""
    weights: Path | None = None
    """The file its weights are read from (never downloaded); None: it needs no weights file."""

    def refuses(self, data: DataSpec) -> str | None:
        """None when it can take samples of ``data``; else why not, in a few words (default: from ``inputs``,
        ``channels`` and ``sizes``)."""
        if self.inputs == "vector":
            return None
        if data.kind != "image" or len(data.shape) != 3:
            return f"it takes images, not {data.kind}"
        low, high = self.sizes
        if data.channels not in self.channels:
            return f"it takes {' or '.join(map(str, self.channels))}-channel images, not {data.channels}-channel"
        if data.size < low or (high is not None and data.size > high):
            bound = f"{low} to {high}" if high is not None else f"at least {low}"
            return f"it takes images of side {bound} px, not {data.size} px"
        return None

    def unavailable(self) -> str | None:
        """None when it can be built here; else one line saying what is missing (default: the ``weights`` file)."""
        if self.weights is not None and not Path(self.weights).expanduser().is_file():
            return f"its weights file {Path(self.weights).expanduser()} does not exist"
        return None

    def build(self, dataset: Dataset, device: torch.device) -> FeatureNetwork | None:
        """The extractor for ``dataset`` on ``device``: a ``FeatureNetwork`` whose ``name`` is stored beside every
        value computed with it. Called when an evaluation's metrics first need the space (keep a costly network in
        the plugin to build it once per process); None when the space has no network for this dataset (the
        built-in "classifier" for a dataset without one)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build")


@dataclass
class GAN:
    """A built GAN: ``generator(z)`` has the data's shape; ``discriminator(x)`` returns scores of shape ``[B]``."""

    generator: nn.Module
    """``[B, latent_dim]`` -> ``[B, *spec.shape]``."""
    discriminator: nn.Module
    """``[B, *spec.shape]`` -> scores ``[B]``."""
    latent_dim: int
    """Size of the latent noise the harness draws."""

    family: ClassVar[str] = "gan"
    """Always "gan"."""


@dataclass
class VAE:
    """A built VAE: ``encoder(x) -> (mu, logvar)``; ``decoder(z)`` returns samples in data space."""

    encoder: nn.Module
    """``x`` -> ``(mu, logvar)``, each ``[B, latent_dim]``."""
    decoder: nn.Module
    """``[B, latent_dim]`` -> samples in data space; also the sampler scored by the metrics."""
    latent_dim: int
    """Size of the latent space."""

    family: ClassVar[str] = "vae"
    """Always "vae"."""


class ModelFactory:
    """A model plugin: builds a fresh GAN or VAE for a dataset it supports."""

    name: str = ""
    """Lowercase slug users select it by (``-m name``)."""
    description: str = ""
    """One line shown by ``lossbench list`` (default: the class docstring's first line)."""
    family: str = "gan"
    """"gan" or "vae": the family of losses it is paired with."""

    def supports(self, data: DataSpec) -> bool:
        """Whether this model can be built for data of this spec."""
        raise NotImplementedError(f"{type(self).__name__} must implement supports")

    def build(self, data: DataSpec) -> GAN | VAE:
        """A new, randomly initialised model (the harness seeds torch before calling this)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build")


class FeatureMap(Protocol):
    """A named feature space, as ``MetricContext.feature_space`` returns it: samples -> ``(N, d)`` float64 array."""

    name: str
    """Recorded beside every value computed in this space, e.g. "coordinates", "inception-v3-pool3"."""

    def __call__(self, x: Tensor) -> np.ndarray: ...


@runtime_checkable
class MetricContext(Protocol):
    """What a metric sees for one evaluation of one run (``Metric.compute``'s ``ctx``).

    The harness passes a ``lossbench.EvaluationContext``, built per evaluation with features cached per space;
    this Protocol is the part of it a metric may rely on, declared with the rest of the contract.
    """

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
    reference: Samples | None
    """A second real set, disjoint from ``real`` and of its size, for real-vs-real floors."""
    device: torch.device
    """Where the run's networks are."""
    final: bool
    """False for the light evaluations during training (curve metrics, fewer samples)."""
    curves: pd.DataFrame | None
    """The light evaluations so far: columns step, key, value."""
    diverged_at: int | None
    """The step at which the run diverged, if it did (then only ``needs_samples = False`` metrics run)."""
    values: dict[str, float]
    """The values computed so far in this evaluation (read by ``reads_values`` metrics, e.g. the target)."""
    family: str | None
    """The run's model family ("gan" | "vae"), when the harness knows it."""

    def feature_space(self, which: str = "default") -> FeatureMap:
        """The named feature space ("default", "raw", "classifier", "inception"); its ``name`` is stored beside
        values computed in it."""
        ...

    def features(self, which: str = "default") -> tuple[np.ndarray, np.ndarray]:
        """(real, fake) features as float64 arrays of shape (N, d), extracted once per space."""
        ...

    def reference_features(self, which: str = "default") -> np.ndarray:
        """Features of the reference real set (disjoint from ``real``)."""
        ...


class Metric:
    """A metric plugin: values computed from one evaluation of one run.

    ``compute`` returns ``{key: value}`` with keys ``<name>`` or ``<name>_<part>``. Values are floats (NaN only
    where undefined); a ``str`` value is a fact about the others (e.g. ``fid_features``) and is stored as text.
    Metrics with ``curve = True`` are also computed during training every ``eval_every`` steps on fewer samples.
    """

    name: str = ""
    """Lowercase slug; also the prefix of every key the metric returns."""
    description: str = ""
    """One line shown by ``lossbench list`` (default: the class docstring's first line)."""
    curve: bool = False
    """True: also computed every ``eval_every`` training steps on fewer samples (``ctx.final`` is False)."""
    needs_samples: bool = True
    """False: computed from the history alone, so also for diverged runs."""
    per_feature_space: bool = False
    """True: it reads ``ctx.features()`` and is also computed, at the final evaluation, in every space chosen with
    ``--feature-space`` (its keys renamed ``<name>@<space>...``; FID, KID and PRDC)."""
    better: ClassVar[dict[str, str]] = {}
    """Key -> "higher", "lower" or "none" (not ranked), for ranks and comparisons; unlisted keys: lower. "none"
    marks a fact with no better direction (a floor, a spread, a scale that differs between losses)."""
    labels: ClassVar[dict[str, str]] = {}
    """Key -> a reader's name for tables and axes (e.g. ``{"fid": "FID"}``); unlisted keys: the key with spaces."""
    units: ClassVar[dict[str, str]] = {}
    """Key -> its unit (e.g. ``"nats"``, ``"%"``), shown after the label; unlisted keys: no unit."""
    headline: ClassVar[dict[str, int]] = {}
    """Key -> its rank among the keys that lead a leaderboard (1 first; ties by name): headline keys get a column
    and a figure in the report and ``show``, and the first present ranks the leaderboard. Unlisted: not a headline.
    All four declarations are stored with every run, so a report rebuilt without the plugin still uses them."""

    def compute(self, ctx: MetricContext) -> dict[str, Any]:
        """``{key: float | str}`` for one evaluation described by ``ctx`` (the harness's ``EvaluationContext``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute")


def describe(obj: object) -> str:
    """One-line description of a registered object: its ``description`` attribute or its docstring's first line."""
    text = getattr(obj, "description", None) or type(obj).__doc__ or ""
    return text.strip().splitlines()[0].strip() if text.strip() else ""
