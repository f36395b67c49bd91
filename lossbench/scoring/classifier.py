"""A small image classifier per dataset: assigns generated images to modes and gives the scoring feature space.

Pretrained networks cannot be downloaded here, so each image dataset gets its own small CNN, trained once,
deterministically (fixed seed, on the CPU, fixed epochs), and cached on disk under ``$LOSSBENCH_CACHE``
(default ``~/.cache/lossbench``) in a file keyed by the dataset's name and a hash of its data, the architecture
version and the training plan, so that changed data or code never reuses a stale network. A process keeps the
networks it has loaded. A cache file that cannot be read is retrained and rewritten, never a crash.

Training runs inside ``torch.random.fork_rng``: training on first use in the middle of a run must not shift that
run's random stream (paired seeds would otherwise differ between a fresh and a warm cache).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lossbench.api import Samples

log = logging.getLogger(__name__)

CACHE_ENV = "LOSSBENCH_CACHE"
ARCH_VERSION = 1
FEATURE_DIM = 128
CONFIDENCE_THRESHOLD = 0.5  # max softmax at or above this: a "high-quality" sample of its class
PREDICT_BATCH = 1024
FILE_FORMAT = "lossbench-classifier"


def cache_dir() -> Path:
    """Where trained classifiers are kept: ``$LOSSBENCH_CACHE/classifiers`` (default ``~/.cache/lossbench``)."""
    base = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "lossbench")
    return Path(base).expanduser() / "classifiers"


@dataclass(frozen=True)
class TrainingPlan:
    """How a classifier is trained; part of the cache key, so changing it retrains."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3  # peak of a one-cycle schedule
    seed: int = 0
    held_out: float = 0.2  # share of the data kept out of training to measure accuracy
    max_held_out: int = 10_000
    max_train: int | None = None  # train on at most this many images (big on-disk sets on the CPU)


class ClassifierNet(nn.Module):
    """Conv-ReLU stages with max-pooling -> 128-d penultimate features (after ReLU) -> class logits.

    No BatchNorm or dropout: train and eval mode compute the same function, so a copy that a caller switches
    to training mode (a VAE trainer backpropagating through it) still gives the same features.
    """

    def __init__(self, channels: int, size: int, n_classes: int = 10) -> None:
        super().__init__()
        # (width, pool after?): 8-px digits need two convs; 28/32-px images three, pooled to 7/8 px. Narrow on
        # purpose: it trains on the CPU on first use (the cost is dominated by the full-resolution layers)
        stages = [(32, True), (64, False)] if size <= 8 else [(16, True), (32, True), (64, False)]
        layers: list[nn.Module] = []
        width, side = channels, size
        for out, pool in stages:
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU()]
            width = out
            if pool:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, FEATURE_DIM), nn.ReLU())
        self.out = nn.Linear(FEATURE_DIM, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(N, 128)``; differentiable with respect to ``x``."""
        return self.head(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.features(x))


@dataclass
class Classifier:
    """A trained classifier: the network (CPU master copy), its held-out accuracy and where it came from."""

    dataset: str
    net: ClassifierNet
    accuracy: float  # on the held-out share of the dataset, never seen in training
    n_train: int
    n_held_out: int
    train_seconds: float
    path: Path
    source: str  # "trained" (this process trained it) | "cache" (read from ``path``)
    _copies: dict[str, ClassifierNet] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return f"{self.dataset}-classifier"

    def on(self, device: torch.device | str) -> ClassifierNet:
        """The network on ``device`` (one shared frozen copy per device, in eval mode)."""
        key = str(torch.device(device))
        if key not in self._copies:
            net = self.net if key == "cpu" else copy.deepcopy(self.net).to(device)
            self._copies[key] = net.eval().requires_grad_(False)
        return self._copies[key]

    def copy_on(self, device: torch.device | str) -> ClassifierNet:
        """A private frozen copy on ``device``, for callers that may move or modify it (feature networks)."""
        return copy.deepcopy(self.net).to(device).eval().requires_grad_(False)

    @torch.no_grad()
    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(class, confidence)`` per image on the CPU: argmax and max softmax probability."""
        if len(x) == 0:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0)
        net = self.on(x.device)
        probs = torch.cat(
            [F.softmax(net(x[i : i + PREDICT_BATCH].float()), dim=1) for i in range(0, len(x), PREDICT_BATCH)]
        )
        confidence, label = probs.max(dim=1)
        return label.cpu(), confidence.cpu()


class ClassifierFeatures(nn.Module):
    """A ``FeatureNetwork``: a classifier's penultimate features; ``groups`` > 1 classifies each channel alone.

    With ``groups = 3`` (stacked digits) the image's three channels go through the one-channel classifier
    separately and their features are concatenated: ``(N, 3 * 128)``.
    """

    def __init__(self, name: str, net: ClassifierNet, groups: int = 1) -> None:
        super().__init__()
        self.name = name
        self.net = net
        self.groups = groups

    def features(self, x: Tensor) -> Tensor:
        x = x.float()
        if self.groups == 1:
            return self.net.features(x)
        channels = x.shape[1] // self.groups
        parts = [self.net.features(x[:, i * channels : (i + 1) * channels]) for i in range(self.groups)]
        return torch.cat(parts, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def data_hash(samples: Samples, shape: tuple[int, ...], plan: TrainingPlan) -> str:
    """Hash of the data, the architecture version and the plan: the cache key of one classifier."""
    digest = hashlib.sha256()
    digest.update(f"{FILE_FORMAT}:v{ARCH_VERSION}:{shape}:{plan}".encode())
    digest.update(samples.x.detach().float().contiguous().cpu().numpy().tobytes())
    assert samples.y is not None
    digest.update(samples.y.detach().long().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


_MEMORY: dict[str, Classifier] = {}
TRAINING_COUNT = {"n": 0}  # trainings in this process (tests check that a warm cache does not train)


def clear_memory() -> None:
    """Forget the classifiers this process holds (the disk cache stays)."""
    _MEMORY.clear()


def get_classifier(
    dataset: str, samples: Samples, shape: tuple[int, ...], plan: TrainingPlan = TrainingPlan()
) -> Classifier:
    """The classifier of ``dataset``: from this process, else the disk cache, else trained now and cached."""
    if samples.y is None:
        raise ValueError(f"dataset {dataset!r} has no labels to train a classifier on")
    key = f"{dataset}-v{ARCH_VERSION}-{data_hash(samples, shape, plan)}"
    path = cache_dir() / f"{key}.pt"
    if key in _MEMORY and _MEMORY[key].path == path:
        return _MEMORY[key]
    classifier = _read(dataset, path, key, shape)
    if classifier is None:
        classifier = train_classifier(dataset, samples, shape, plan, path)
        _write(classifier, key)
    _MEMORY[key] = classifier
    return classifier


def _read(dataset: str, path: Path, key: str, shape: tuple[int, ...]) -> Classifier | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FILE_FORMAT or state.get("key") != key:
            raise ValueError("not this classifier's file")
        net = ClassifierNet(shape[0], shape[-1])
        net.load_state_dict(state["state_dict"])
        return Classifier(
            dataset,
            net.eval().requires_grad_(False),
            float(state["accuracy"]),
            int(state["n_train"]),
            int(state["n_held_out"]),
            float(state["train_seconds"]),
            path,
            "cache",
        )
    except Exception as exc:  # a corrupt or foreign file is replaced, never fatal
        log.warning("classifier cache %s is unreadable (%s: %s); retraining", path, type(exc).__name__, exc)
        return None


def _write(classifier: Classifier, key: str) -> None:
    """Save atomically (temporary file, then rename), so parallel workers never read half a file."""
    path = classifier.path
    state = {
        "format": FILE_FORMAT,
        "key": key,
        "dataset": classifier.dataset,
        "arch_version": ARCH_VERSION,
        "state_dict": classifier.net.state_dict(),
        "accuracy": classifier.accuracy,
        "n_train": classifier.n_train,
        "n_held_out": classifier.n_held_out,
        "train_seconds": classifier.train_seconds,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False) as handle:
            torch.save(state, handle)
        os.replace(handle.name, path)
    except OSError as exc:  # an unwritable cache costs a retrain next time, nothing else
        log.warning("cannot cache the %s classifier in %s: %s", classifier.dataset, path, exc)


def split(n: int, plan: TrainingPlan) -> tuple[Tensor, Tensor]:
    """Seeded (train, held-out) indices; the held-out share is never trained on."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(plan.seed))
    n_held = max(1, min(round(n * plan.held_out), plan.max_held_out)) if n > 1 else 0
    train = order[n_held:]
    if plan.max_train is not None:
        train = train[: plan.max_train]
    return train, order[:n_held]


def train_classifier(
    dataset: str, samples: Samples, shape: tuple[int, ...], plan: TrainingPlan, path: Path
) -> Classifier:
    """Train deterministically on the CPU (fixed seed and epochs) and measure held-out accuracy."""
    assert samples.y is not None
    started = time.perf_counter()
    x = samples.x.detach().float().cpu()
    y = samples.y.detach().long().cpu()
    train_index, held_index = split(len(x), plan)
    threads = torch.get_num_threads()
    # one thread: the same float results on every machine, and faster for a net this small on a busy CPU
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(plan.seed)
            net = ClassifierNet(shape[0], shape[-1])
            optimizer = torch.optim.Adam(net.parameters(), lr=plan.lr)
            steps_per_epoch = -(-len(train_index) // plan.batch_size)
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=plan.lr, total_steps=max(1, plan.epochs * steps_per_epoch)
            )
            order_rng = torch.Generator().manual_seed(plan.seed + 1)
            net.train()
            for _ in range(plan.epochs):
                order = train_index[torch.randperm(len(train_index), generator=order_rng)]
                for start in range(0, len(order), plan.batch_size):
                    batch = order[start : start + plan.batch_size]
                    loss = F.cross_entropy(net(x[batch]), y[batch])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
    finally:
        torch.set_num_threads(threads)
    net.eval().requires_grad_(False)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        correct = sum(
            int((net(x[held_index[i : i + PREDICT_BATCH]]).argmax(1) == y[held_index[i : i + PREDICT_BATCH]]).sum())
            for i in range(0, len(held_index), PREDICT_BATCH)
        )
    accuracy = correct / len(held_index) if len(held_index) else float("nan")
    TRAINING_COUNT["n"] += 1
    log.info("trained the %s classifier in %.1f s: held-out accuracy %.4f", dataset, seconds, accuracy)
    return Classifier(dataset, net, accuracy, len(train_index), len(held_index), seconds, path, "trained")
