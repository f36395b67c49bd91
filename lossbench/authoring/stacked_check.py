"""The plugin author's check that a loss trains stacked (``lossbench run --vectorise``) exactly as it trains alone."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch

from lossbench.api import AdversarialLoss
from lossbench.authoring.conformance import ConformanceError
from lossbench.authoring.smoke import kit_environment
from lossbench.plan.grid import RunSpec
from lossbench.records import HISTORY_COLUMNS
from lossbench.training.stacked import train_group
from lossbench.training.train import run_safely


def check_stacked(
    loss: AdversarialLoss,
    *,
    model: str = "mlp",
    dataset: str = "ring8",
    seeds: Sequence[int] = (0, 1),
    steps: int = 10,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Check that ``loss`` trains stacked (``lossbench run --vectorise``) as it trains alone; raises
    ``ConformanceError`` naming the loss and the first difference.

    The loss is registered next to the built-ins only; ``seeds`` runs of ``model`` x ``dataset`` train for
    ``steps`` steps as one stacked group and one by one, with a history row every step. Histories and the final
    generator weights must agree within ``rtol``/``atol`` (float reassociation of batched matmuls); statuses and
    divergence steps exactly. A loss that the stacked engine hands to the sequential one fails the check too.
    """
    name = getattr(loss, "name", type(loss).__name__)
    catalog = kit_environment().env.catalog
    if name not in catalog.losses:
        catalog.losses.add(loss, "check_stacked")
    elif catalog.losses.get(name) is not loss:
        raise ConformanceError(f"loss {name!r}: the name is taken by a built-in loss; rename it to check it")
    specs = [
        RunSpec(
            loss=name,
            model=model,
            dataset=dataset,
            seed=seed,
            steps=steps,
            batch_size=64,
            log_every=1,
            eval_every=steps + 1,
            eval_samples=100,
            final_samples=200,
            device="cpu",
            preset="check",
        )
        for seed in seeds
    ]
    fallbacks: list[str] = []
    stacked = train_group(specs, catalog, notice=fallbacks.append)
    if fallbacks:
        raise ConformanceError(f"loss {name!r}: does not train stacked: {fallbacks[0]}")
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    for spec, together in zip(specs, stacked):
        alone = run_safely(spec, catalog)
        where = f"loss {name!r}, seed {spec.seed}"
        if (together.status, together.failed_step) != (alone.status, alone.failed_step):
            raise ConformanceError(
                f"{where}: stacked {together.status} at step {together.failed_step} "
                f"({together.reason}), alone {alone.status} at step {alone.failed_step} ({alone.reason})"
            )
        a, b = together.history[columns].to_numpy(float), alone.history[columns].to_numpy(float)
        close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True) if a.shape == b.shape else np.zeros((1, 1), bool)
        if not close.all():
            row, column = np.argwhere(~close)[0]
            raise ConformanceError(
                f"{where}: history differs stacked vs alone at step {int(b[row, 0]) if len(b) > row else '?'}, "
                f"{columns[column]}: {a[row, column]!r} vs {b[row, column]!r}"
            )
        if together.checkpoint and alone.checkpoint:
            wa, wb = (torch.load(io.BytesIO(blob)) for blob in (together.checkpoint, alone.checkpoint))
            for key in wb:
                if not torch.allclose(wa[key], wb[key], rtol=rtol, atol=atol, equal_nan=True):
                    raise ConformanceError(f"{where}: final generator weights {key!r} differ stacked vs alone")
