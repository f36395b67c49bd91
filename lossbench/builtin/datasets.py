"""Built-in datasets."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from lossbench.api import DataSpec, Dataset, ModeAssignment, Samples, hookimpl


class GaussianMixture(Dataset):
    """Isotropic 2-d Gaussian mixture with equal weights; modes are exact (nearest centre, 3 std)."""

    n_samples = 20_000

    def __init__(self, name: str, centres: Tensor, std: float, seed: int, description: str) -> None:
        self.name = name
        self.centres = centres.float()
        self.std = std
        self.seed = seed
        self.description = description
        self.spec = DataSpec(shape=(2,), kind="points", n_modes=len(centres))

    def load(self, root: Path | None = None) -> Samples:
        generator = torch.Generator().manual_seed(self.seed)
        y = torch.randint(len(self.centres), (self.n_samples,), generator=generator)
        x = self.centres[y] + self.std * torch.randn((self.n_samples, 2), generator=generator)
        return Samples(x, y)

    def mode_of(self, x: Tensor) -> ModeAssignment:
        distances = torch.cdist(x.float().cpu(), self.centres)
        nearest, mode = distances.min(dim=1)
        return ModeAssignment(mode=mode, high_quality=nearest <= 3 * self.std)


def ring8() -> GaussianMixture:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture("ring8", centres, 0.02, 1, "8 Gaussians on a circle of radius 2, std 0.02 (VEEGAN)")


@hookimpl
def register_datasets(register) -> None:
    register(ring8())
