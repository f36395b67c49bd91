"""Built-in datasets: Gaussian mixtures with exact modes, scikit-learn's 8x8 digits (plain and stacked), and
MNIST, Fashion-MNIST and CIFAR-10 read from the user's disk. Image datasets assign modes with their own small
classifier (``lossbench.scoring.classifier``), whose penultimate features are also their scoring feature space."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lossbench.api import Dataset, DataSpec, ModeAssignment, Samples, Threshold, TrainingTarget, hookimpl
from lossbench.data import ondisk
from lossbench.scoring import classifier as clf

PACGAN = "PacGAN (Lin et al. 2018), Table 1"


@dataclass(frozen=True)
class MixtureProtocol:
    """How a published paper scores mode collapse on a Gaussian mixture (VEEGAN's measures, as PacGAN ran them).

    ``n_samples`` generated samples, whatever the preset; a sample is high quality within ``high_quality_stds``
    standard deviations of its nearest centre; a mode is covered by at least ``min_covering`` high-quality
    samples; the KL is over the high-quality samples' mode histogram. ``strict_share`` is our stricter variant
    beside it: a mode needs at least that share of the high-quality samples (``modes_covered_strict``).
    """

    paper: str
    n_samples: int = 2500
    high_quality_stds: float = 3.0
    min_covering: int = 1
    strict_share: float = 0.01


class GaussianMixture(Dataset):
    """Isotropic 2-d Gaussian mixture with equal weights; modes are exact (nearest centre, 3 std)."""

    n_samples = 20_000
    centres: Tensor  # always known for a mixture (``Dataset.centres`` may be None)

    def __init__(
        self,
        name: str,
        centres: Tensor,
        std: float,
        seed: int,
        description: str,
        protocol: MixtureProtocol | None = None,
        target: TrainingTarget | None = None,
    ) -> None:
        self.name = name
        self.centres = centres.float()
        self.std = std
        self.seed = seed
        self.description = description
        self.protocol = protocol or MixtureProtocol(paper="")
        self.target = target
        self.spec = DataSpec(shape=(2,), kind="points", n_modes=len(centres))

    def load(self, root: Path | None = None) -> Samples:
        generator = torch.Generator().manual_seed(self.seed)
        y = torch.randint(len(self.centres), (self.n_samples,), generator=generator)
        x = self.centres[y] + self.std * torch.randn((self.n_samples, 2), generator=generator)
        return Samples(x, y)

    def mode_of(self, x: Tensor) -> ModeAssignment:
        """Nearest centre; high quality when strictly within ``protocol.high_quality_stds`` (3) std of it.

        As PacGAN's ``MetricLogger``: the distance in units of the mode's std is compared with ``< 3``.
        """
        distances = torch.cdist(x.detach().double().cpu(), self.centres.double())
        nearest, mode = distances.min(dim=1)
        return ModeAssignment(mode=mode, high_quality=nearest < self.protocol.high_quality_stds * self.std)


def _mixture_target(modes: int) -> TrainingTarget:
    """PacGAN Table 1's GAN row, rounded down: >= 80 % high quality and at least ``modes`` modes."""
    return TrainingTarget(
        (Threshold("modes_high_quality", at_least=0.8), Threshold("modes_covered", at_least=modes)),
        source=f"{PACGAN}, GAN row",
        families=("gan",),
    )


def ring8() -> GaussianMixture:
    """PacGAN's 2D-ring: 8 Gaussians at (cos 2pi i/8, sin 2pi i/8), std 0.01."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    centres = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(
        "ring8",
        centres,
        0.01,
        1,
        "8 Gaussians on a circle of radius 1, std 0.01; scored by PacGAN's protocol (Lin et al. 2018, Table 1: "
        "2,500 samples, high quality within 3 std, a mode covered by 1 such sample)",
        MixtureProtocol(PACGAN),
        _mixture_target(6),
    )


def grid25() -> GaussianMixture:
    """PacGAN's 2D-grid: 25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05."""
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    centres = torch.cartesian_prod(axis, axis)
    return GaussianMixture(
        "grid25",
        centres,
        0.05,
        2,
        "25 Gaussians on the grid {-4,-2,0,2,4}^2, std 0.05; scored by PacGAN's protocol (Lin et al. 2018, "
        "Table 1: 2,500 samples, high quality within 3 std, a mode covered by 1 such sample)",
        MixtureProtocol(PACGAN),
        _mixture_target(17),
    )


class ClassifiedImages(Dataset, ABC):
    """An image dataset whose modes are its classes, assigned by its own classifier (trained once, cached).

    ``mode_of``: the mode is the predicted class; a sample is high quality when the classifier's max softmax
    probability is at least ``classifier.CONFIDENCE_THRESHOLD`` (0.5), i.e. the classifier is more sure of that
    class than of all others together.
    """

    plan: clf.TrainingPlan = clf.TrainingPlan()

    def __init__(self) -> None:
        self._root: Path | None = None
        self._loaded: dict[str, Samples] = {}
        self._classifiers: dict[str, clf.Classifier] = {}

    @abstractmethod
    def read(self, root: Path | None) -> Samples:
        """Subclasses read their data here; ``load`` caches it per root so that ``mode_of`` finds the same data."""

    def load(self, root: Path | None = None) -> Samples:
        key = str(root)
        if key not in self._loaded:
            self._loaded[key] = self.read(root)
        self._root = root
        return self._loaded[key]

    def _classifier_root(self) -> Path | None:
        """The root last loaded (the run's); before any load, the harness's --data-root / $LOSSBENCH_DATA."""
        if self._loaded:
            return self._root
        from lossbench.data.root import data_root

        return data_root()

    def classifier(self) -> clf.Classifier:
        """This dataset's classifier (trained on first use, then from the cache); ``.accuracy`` is held-out.

        Kept on the dataset as well, so that the evaluations during training do not hash the data again.
        """
        root = self._classifier_root()
        key = str(root)
        if key not in self._classifiers:
            self._classifiers[key] = clf.get_classifier(self.name, self.load(root), self.spec.shape, self.plan)
        return self._classifiers[key]

    def mode_of(self, x: Tensor) -> ModeAssignment:
        label, confidence = self.classifier().predict(x.detach())
        return ModeAssignment(mode=label, high_quality=confidence >= clf.CONFIDENCE_THRESHOLD)

    def feature_network(self, device: torch.device) -> clf.ClassifierFeatures:
        """The classifier's 128-d penultimate features (differentiable with respect to the input)."""
        classifier = self.classifier()
        return clf.ClassifierFeatures(classifier.name, classifier.copy_on(device))


class Digits(ClassifiedImages):
    """scikit-learn's bundled 8x8 digits: 1,797 images, 10 classes, scaled to [-1, 1]. Offline."""

    name = "digits"
    description = "scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), offline"
    spec = DataSpec(shape=(1, 8, 8), kind="image", n_modes=10)
    plan = clf.TrainingPlan(epochs=10, batch_size=64, lr=3e-3)
    # a trained GAN draws every digit (>= 9 of 10) at a classifier FID within 10x the real-vs-real floor
    target = TrainingTarget(
        (Threshold("modes_covered", at_least=9), Threshold("fid", at_most=10, relative_to="fid_floor")),
        source="what a trained DCGAN reaches on 8x8 digits (docs/budgets.md)",
        families=("gan",),
    )

    def read(self, root: Path | None = None) -> Samples:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0  # 0..16 -> -1..1
        return Samples(x.contiguous(), torch.as_tensor(bunch.target, dtype=torch.int64))

    def load(self, root: Path | None = None) -> Samples:
        return super().load(None)  # bundled with scikit-learn: no data folder involved


class StackedDigits(Dataset):
    """Three digits stacked as channels (PacGAN's stacked-MNIST at 8x8): 1,000 modes ``100*c0 + 10*c1 + c2``.

    Each channel is assigned by the digits classifier; a sample is high quality when every channel's max
    softmax is at least 0.5. Features are the three channels' digits-classifier features, concatenated.
    """

    name = "stacked-digits"
    description = "three 8x8 digits stacked as RGB channels, 1,000 modes (PacGAN's stacked-MNIST protocol at 8x8)"
    spec = DataSpec(shape=(3, 8, 8), kind="image", n_modes=1000)
    n_samples = 50_000
    seed = 3

    def __init__(self, digits: Digits | None = None) -> None:
        self.digits = digits or Digits()
        self._cache: Samples | None = None

    def load(self, root: Path | None = None) -> Samples:
        if self._cache is None:
            base = self.digits.load(None)
            generator = torch.Generator().manual_seed(self.seed)
            index = torch.randint(len(base), (self.n_samples, 3), generator=generator)
            x = base.x[index].reshape(self.n_samples, 3, 8, 8)  # (N, 3, 1, 8, 8) -> channels
            labels = base.y[index]  # type: ignore[index]
            y = 100 * labels[:, 0] + 10 * labels[:, 1] + labels[:, 2]
            self._cache = Samples(x.contiguous(), y)
        return self._cache

    def mode_of(self, x: Tensor) -> ModeAssignment:
        classifier = self.digits.classifier()
        n = x.shape[0]
        label, confidence = classifier.predict(x.detach().reshape(n * 3, 1, 8, 8))
        label, confidence = label.reshape(n, 3), confidence.reshape(n, 3)
        mode = 100 * label[:, 0] + 10 * label[:, 1] + label[:, 2]
        return ModeAssignment(mode=mode, high_quality=(confidence >= clf.CONFIDENCE_THRESHOLD).all(dim=1))

    def feature_network(self, device: torch.device) -> clf.ClassifierFeatures:
        classifier = self.digits.classifier()
        return clf.ClassifierFeatures(f"{classifier.name}-x3", classifier.copy_on(device), groups=3)


class IdxImages(ClassifiedImages):
    """MNIST-format idx files read from ``<root>/<folder>/raw/`` (training split), scaled to [-1, 1]."""

    spec = DataSpec(shape=(1, 28, 28), kind="image", n_modes=10)
    # the CPU trains on a 15,000-image subset for 2 epochs: a first use in tens of seconds, not minutes
    plan = clf.TrainingPlan(epochs=2, batch_size=128, lr=3e-3, max_train=15_000)

    def __init__(self, name: str, layout: ondisk.IdxLayout, description: str) -> None:
        super().__init__()
        self.name = name
        self.layout = layout
        self.description = description

    def availability(self, root: Path | None) -> str | None:
        return ondisk.idx_availability(self.layout, root)

    def read(self, root: Path | None) -> Samples:
        images, labels = ondisk.read_idx_dataset(self.layout, root)
        return Samples(ondisk.to_unit_range(images), labels)


class Cifar10(ClassifiedImages):
    """CIFAR-10's python batches read from ``<root>/cifar-10-batches-py/`` (training split), scaled to [-1, 1]."""

    name = "cifar10"
    description = "CIFAR-10 32x32 colour images (50,000, 10 classes) read from --data-root/cifar-10-batches-py/"
    spec = DataSpec(shape=(3, 32, 32), kind="image", n_modes=10)
    plan = clf.TrainingPlan(epochs=3, batch_size=128, lr=3e-3, max_train=20_000)

    def availability(self, root: Path | None) -> str | None:
        return ondisk.cifar_availability(root)

    def read(self, root: Path | None) -> Samples:
        images, labels = ondisk.read_cifar10(root)
        return Samples(ondisk.to_unit_range(images), labels)


def mnist() -> IdxImages:
    return IdxImages(
        "mnist",
        ondisk.IdxLayout("MNIST", "MNIST"),
        "MNIST 28x28 handwritten digits (60,000, 10 classes) read from --data-root/MNIST/raw/",
    )


def fashion_mnist() -> IdxImages:
    return IdxImages(
        "fashion-mnist",
        ondisk.IdxLayout("Fashion-MNIST", "FashionMNIST"),
        "Fashion-MNIST 28x28 clothing images (60,000, 10 classes) read from --data-root/FashionMNIST/raw/",
    )


def builtin_datasets() -> list[Dataset]:
    """Fresh instances of every built-in dataset (stacked digits shares the digits classifier)."""
    digits = Digits()
    return [ring8(), grid25(), digits, StackedDigits(digits), mnist(), fashion_mnist(), Cifar10()]


@hookimpl
def register_datasets(register) -> None:
    for dataset in builtin_datasets():
        register(dataset)
