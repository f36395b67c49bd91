"""Plugin files that fail on purpose, written into temporary plugins folders to make real failed and diverged runs."""

from __future__ import annotations

FAULTY_LOSSES_TEMPLATE = '''
import torch.nn.functional as F
from lossbench import AdversarialLoss, hookimpl


class Boom(AdversarialLoss):
    """Raises on its first call: the run fails."""

    name = "boom"

    def discriminator_loss(self, real_scores, fake_scores):
        raise RuntimeError("boom: this loss raises on purpose")

    def generator_loss(self, fake_scores, real_scores):
        return fake_scores.mean()


class NanLater(AdversarialLoss):
    """Non-saturating loss whose discriminator loss turns NaN at its {nan_call}th call (a diverging run)."""

    name = "nan-later"

    def bind(self, dataset, device):
        fresh = NanLater()
        fresh.calls = 0
        return fresh

    def discriminator_loss(self, real_scores, fake_scores):
        self.calls += 1
        value = F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        return value * float("nan") if self.calls >= {nan_call} else value

    def generator_loss(self, fake_scores, real_scores):
        return F.softplus(-fake_scores).mean()


@hookimpl
def register_losses(register):
    register(Boom())
    register(NanLater())
'''


def faulty_losses(nan_call: int) -> str:
    """Source of a plugin registering ``boom`` (raises) and ``nan-later`` (NaN from call ``nan_call`` on)."""
    return FAULTY_LOSSES_TEMPLATE.replace("{nan_call}", str(nan_call))
