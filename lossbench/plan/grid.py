"""Expand the user's filters into RunSpecs: compatible loss x model x dataset x seed, with stable run ids."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lossbench.errors import DataUnavailable, UsageError

if TYPE_CHECKING:  # the presets and RunSpec are read by `lossbench show` and --help, which load no plugins
    from lossbench.plugin.registry import Catalog


@dataclass(frozen=True)
class Preset:
    """How long and how carefully each run trains and is scored."""

    name: str
    steps_points: int  # generator steps on points datasets
    steps_image: int  # generator steps on image datasets
    batch_size: int
    log_every: int
    eval_every: int  # light evaluation (curve metrics) every this many steps
    eval_samples: int  # samples per light evaluation
    final_samples: int  # samples of the final evaluation (capped by half the dataset for the real sets)
    n_seeds: int
    # (dataset, model) pairs the preset's default grid leaves out ("*": any); naming one with -d/-m brings it back
    leaves_out: tuple[tuple[str, str], ...] = ()
    batch_size_image: int | None = None  # batch on image datasets, when it differs from ``batch_size``

    def steps(self, kind: str) -> int:
        return self.steps_image if kind == "image" else self.steps_points

    def batch(self, kind: str) -> int:
        return self.batch_size_image if kind == "image" and self.batch_size_image else self.batch_size

    def leaves_out_pair(self, dataset: str, model: str) -> bool:
        return any(d in ("*", dataset) and m in ("*", model) for d, m in self.leaves_out)

    def left_out_text(self) -> str:
        """What this preset's default grid leaves out, for the report and ``lossbench show``; '' if nothing."""
        if not self.leaves_out:
            return ""
        parts = [
            f"{m} on every dataset" if d == "*" else (f"{d} (every model)" if m == "*" else f"{m} on {d}")
            for d, m in self.leaves_out
        ]
        return (
            f"the {self.name} preset's default grid leaves out {', '.join(parts)}; "
            f"`--preset standard` adds them (or name them with -d/-m)"
        )


# The quick preset's default grid holds what its 15 minutes on 2 CPU cores can train (docs/budgets.md): ring8 and
# digits. It leaves out grid25 (PacGAN's 94.8 % high quality needs far more steps than any loss gets here),
# stacked digits (1,000 modes) and the VAEs on the mixtures (a Gaussian decoder blurs a 2-d mixture at any budget).
QUICK_LEAVES_OUT = (("grid25", "*"), ("stacked-digits", "*"), ("*", "mlp-vae"))

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("smoke", 40, 20, 64, 10, 20, 256, 2500, 2),
        Preset("quick", 4000, 1000, 128, 25, 500, 500, 2500, 3, leaves_out=QUICK_LEAVES_OUT, batch_size_image=64),
        # n_seeds: the exact signed-rank test's smallest p is 2/2^n and Holm multiplies it by the family size m,
        # so a difference can reach 0.05 only when 2^n > 40 m (tables.min_seeds). standard: 10 seeds reach it
        # against the reference for up to 26 losses (m <= 25); paper: 12 also for all 45 pairs of 10 losses.
        Preset("standard", 10_000, 3000, 256, 50, 1000, 2000, 5000, 10),
        Preset("paper", 50_000, 20_000, 256, 100, 2500, 5000, 10_000, 12),
    )
}
DEFAULT_PRESET = "quick"


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run's result. Its hash is the run's id in the store."""

    loss: str
    """The loss's registered name."""
    model: str
    """The model's registered name."""
    dataset: str
    """The dataset's registered name."""
    seed: int
    """The paired seed: same initial weights, data order and noise for every loss."""
    steps: int
    """Generator updates."""
    batch_size: int
    """Samples per batch."""
    log_every: int
    """A history row every this many steps (and at step 1)."""
    eval_every: int
    """A light evaluation (curve metrics) every this many steps."""
    eval_samples: int
    """Samples of each light evaluation."""
    final_samples: int
    """Samples of the final evaluation (the real sets are capped at half the dataset)."""
    device: str = "cpu"
    """Where the run trains: "cpu", "cuda", "cuda:N" or "mps"."""
    preset: str = "custom"
    """The preset the sizes came from."""

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit id: the same spec gives the same id in every process and on every machine."""
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """``dataset/model/loss/seedN``, for messages."""
        return f"{self.dataset}/{self.model}/{self.loss}/seed{self.seed}"

    def to_dict(self) -> dict:
        """The fields as a plain dict (stored with each run)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunSpec:
        """The RunSpec of a stored dict; keys that are not fields are ignored."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in fields})


def parse_positive_int(value: str, what: str) -> int:
    """A whole number >= 1 from user input, or one UsageError naming ``what`` (a flag or a variable)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise UsageError(f"{what}={value!r}: give a positive whole number")
    return number


MAX_RUNS = 10_000  # the largest grid ``run`` starts without --max-runs: a typo in --seeds must not plan a year
MAX_SEED = 2**63 - 1  # seeds are stored as SQLite INTEGER (signed 64-bit)


def check_grid_size(n_runs: int, max_runs: int | None) -> None:
    """Refuse a grid of more than ``max_runs`` runs (None: no limit), in one line."""
    if max_runs is not None and n_runs > max_runs:
        raise UsageError(
            f"the grid has {n_runs:,} runs, more than the limit of {max_runs:,}; "
            f"narrow it, or raise the limit with --max-runs {n_runs}"
        )


def parse_seeds(text: str, max_seeds: int | None = MAX_RUNS) -> list[int]:
    """'0,1,2' or '0-4' (or a mix) to a sorted list of distinct seeds in [0, 2**63 - 1].

    Ranges are sized arithmetically before any list is made: more than ``max_seeds`` seeds (a grid has at least
    one run per seed) is refused at once, however large the range.
    """
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                first, last = part.split("-", 1)
                ranges.append((int(first), int(last)))
            else:
                ranges.append((int(part), int(part)))
        except ValueError:
            raise UsageError(f"--seeds {text!r}: {part!r} is not a seed; give integers like 0,1,2 or 0-4") from None
    ranges = [(low, high) for low, high in ranges if high >= low]
    if not ranges or min(low for low, _ in ranges) < 0:
        raise UsageError(f"--seeds {text!r}: give one or more non-negative integers like 0,1,2")
    largest = max(high for _, high in ranges)
    if largest > MAX_SEED:
        raise UsageError(f"--seeds {text!r}: seed {largest} is too large; seeds go up to {MAX_SEED} (2**63 - 1)")
    count = sum(high - low + 1 for low, high in ranges)  # an upper bound: overlapping ranges count twice
    if max_seeds is not None and count > max_seeds:
        raise UsageError(
            f"--seeds {text!r}: {count:,} seeds, more than the limit of {max_seeds:,} runs; "
            f"narrow it, or raise the limit with --max-runs {count}"
        )
    seeds: set[int] = set()
    for low, high in ranges:
        seeds.update(range(low, high + 1))
    return sorted(seeds)


def _select(what: str, registry, requested: Sequence[str]) -> list[str]:
    if not requested:
        return registry.names()
    for name in requested:
        registry.get(name)  # raises UnknownNameError with suggestions
    return list(dict.fromkeys(requested))


@dataclass
class GridPlan:
    """The RunSpecs of a grid and the notes to show the user (datasets skipped because their files are absent)."""

    specs: list[RunSpec]
    notes: list[str]


def expand(
    catalog: Catalog,
    *,
    losses: Sequence[str] = (),
    models: Sequence[str] = (),
    datasets: Sequence[str] = (),
    seeds: Iterable[int] | None = None,
    preset: str = DEFAULT_PRESET,
    steps: int | None = None,
    device: str = "cpu",
    data_root: Path | None = None,
    max_runs: int | None = MAX_RUNS,
) -> GridPlan:
    """Every compatible (dataset, model, loss, seed) the filters allow, in a stable order.

    Unknown names raise ``UnknownNameError``. A dataset asked for by name whose files are absent raises
    ``DataUnavailable``; in the default grid it is skipped with a note saying where its files would go. A grid of
    more than ``max_runs`` runs is refused before its RunSpecs are made.
    """
    if preset not in PRESETS:
        from lossbench.plugin.registry import unknown_name_message

        raise UsageError(unknown_name_message("preset", preset, list(PRESETS)))
    chosen = PRESETS[preset]
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be at least 1, not {steps}")
    loss_names = _select("loss", catalog.losses, losses)
    model_names = _select("model", catalog.models, models)
    dataset_names = _select("dataset", catalog.datasets, datasets)
    seed_list = list(seeds) if seeds is not None else list(range(chosen.n_seeds))

    notes: list[str] = []
    combos: list[tuple[str, str, str, str]] = []  # (dataset, kind, model, loss): counted before any RunSpec exists
    left_out: set[tuple[str, str]] = set()
    for dataset_name in dataset_names:
        dataset = catalog.datasets.get(dataset_name)
        missing = dataset.availability(data_root)
        if missing:
            if datasets:
                raise DataUnavailable(f"dataset {dataset_name!r}: {missing}")
            notes.append(f"skipped dataset {dataset_name!r}: {missing}")
            continue
        for model_name in model_names:
            model = catalog.models.get(model_name)
            if not model.supports(dataset.spec):
                continue
            if chosen.leaves_out_pair(dataset_name, model_name) and not (
                dataset_name in datasets or model_name in models
            ):
                left_out.add((dataset_name, model_name))
                continue
            for loss_name in loss_names:
                loss = catalog.losses.get(loss_name)
                if loss.family != model.family or not loss.supports(dataset.spec):
                    continue
                combos.append((dataset_name, dataset.spec.kind, model_name, loss_name))
    check_grid_size(len(combos) * len(seed_list), max_runs)
    specs = [
        RunSpec(
            loss=loss_name,
            model=model_name,
            dataset=dataset_name,
            seed=int(seed),
            steps=steps if steps is not None else chosen.steps(kind),
            batch_size=chosen.batch(kind),
            log_every=chosen.log_every,
            eval_every=chosen.eval_every,
            eval_samples=chosen.eval_samples,
            final_samples=chosen.final_samples,
            device=device,
            preset=chosen.name,
        )
        for dataset_name, kind, model_name, loss_name in combos
        for seed in seed_list
    ]
    if left_out:
        notes.append(f"{chosen.left_out_text()} ({len(left_out)} dataset x model pairs left out)")
    if not specs:
        raise UsageError(
            "no run matches: the chosen losses, models and datasets have no compatible combination "
            f"(losses: {', '.join(loss_names)}; models: {', '.join(model_names)}; datasets: {', '.join(dataset_names)})"
        )
    return GridPlan(specs, notes)
