"""Built-in metrics."""

from __future__ import annotations

import math

import torch

from lossbench.api import Metric, hookimpl


class ModeCoverage(Metric):
    """Modes covered, share of high-quality samples and KL(generated || true) mode histogram (VEEGAN protocol)."""

    name = "modes"
    curve = True

    def compute(self, ctx) -> dict[str, float]:
        n_modes = ctx.dataset.spec.n_modes
        assignment = ctx.dataset.mode_of(ctx.fake.x)
        if assignment is None or not n_modes:
            return {}
        hq_modes = assignment.mode[assignment.high_quality]
        counts = torch.bincount(hq_modes, minlength=n_modes).double()
        covered = int((counts > 0).sum())
        share = float(assignment.high_quality.double().mean())
        if ctx.real.y is not None:
            true = torch.bincount(ctx.real.y.cpu(), minlength=n_modes).double()
        else:
            true = torch.ones(n_modes, dtype=torch.float64)
        true = true / true.sum()
        if counts.sum() == 0:
            kl = math.nan
        else:
            p = counts / counts.sum()
            mask = p > 0
            kl = float((p[mask] * (p[mask] / true[mask]).log()).sum())
        return {"modes_covered": covered, "modes_high_quality": share, "modes_kl": kl}


@hookimpl
def register_metrics(register) -> None:
    register(ModeCoverage())
