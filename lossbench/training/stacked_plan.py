"""Which runs train together in the stacked engine, and how many per group (``--vectorise``, ``--group-size``).

Unless told (``--vectorise`` stacks every compatible group, ``--no-vectorise`` none), the engine stacks where it pays
(``pays``): on CUDA every compatible group, on the CPU only networks that run as batched layers (MLPs).

Members of one group share everything that shapes the loop: model, dataset, sizes, schedule, device, the optimizer
kind, the n_critic schedule and whether a generator average is kept. Learning rates, Adam's betas and the average's
decay are per member (``stacked_optim``), so a group holds every loss of a dataset x model x seed set that trains
with one optimizer and one n_critic. Members with another n_critic go in another group: the number of critic passes
is the group's loop, and a member with fewer would be computed and thrown away on the passes it skips.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from lossbench.api import AdversarialLoss
from lossbench.errors import LossbenchError
from lossbench.plan.grid import RunSpec
from lossbench.plugin.registry import Catalog

DEFAULT_GROUP_SIZE = {"cpu": 32, "cuda": 256}
"""Most members per group when ``--group-size`` is not given: CPU gains flatten past a few dozen members; a GPU
needs hundreds of small models to fill (``group_limit`` lowers it to what the GPU's free memory holds)."""

VECTORISE_ENV = "LOSSBENCH_VECTORISE"
"""``1``: the executors stack every compatible group (``lossbench run --vectorise``); ``0``: none
(``--no-vectorise``); unset: where it pays (``pays``)."""
GROUP_SIZE_ENV = "LOSSBENCH_GROUP_SIZE"
"""Members per group (``--group-size``); default ``DEFAULT_GROUP_SIZE`` for the device."""

CUDA_BYTES_PER_MEMBER = 64 * 2**20
"""A generous bound on one small member's GPU memory (weights, optimizer state, activations of a step)."""


def mode() -> str:
    """``on`` (``--vectorise``), ``off`` (``--no-vectorise``) or ``auto`` (neither: stack where it ``pays``), from
    ``$LOSSBENCH_VECTORISE`` (the CLI sets it; worker processes inherit it)."""
    value = os.environ.get(VECTORISE_ENV, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return "on"
    if value in ("0", "false", "no", "off"):
        return "off"
    if not value:
        return "auto"
    raise LossbenchError(f"${VECTORISE_ENV}={value!r}: expected 1 or 0, or leave it unset")


def enabled() -> bool:
    """Whether the executors plan groups at all (``plan_groups`` then leaves alone the runs it will not stack)."""
    return mode() != "off"


def pays(spec: RunSpec, catalog: Catalog) -> bool:
    """Whether stacking ``spec``'s group is worth it where it trains. On CUDA, yes: a few small models leave a GPU
    idle. On the CPU only where both networks run as batched layers (``stacked_layers.batched_layers``, MLPs:
    1.3 to 1.5x the sequential engine in ``benchmarks/vectorised.py``), not convolutions under ``vmap``, which train
    no faster than one at a time there (0.9x)."""
    from torch import nn

    from lossbench.training.stacked_layers import runs_as_batched_layers
    from lossbench.training.train import resolve_device

    if spec.device.startswith("cuda") or (spec.device == "auto" and resolve_device("auto").type == "cuda"):
        return True
    try:
        model = catalog.models.get(spec.model).build(catalog.datasets.get(spec.dataset).spec)
    except Exception:  # the run fails alone, with the sequential engine's message
        return False
    networks = (getattr(model, "generator", None), getattr(model, "discriminator", None))
    return all(isinstance(n, nn.Module) and runs_as_batched_layers(n) for n in networks)


def group_size() -> int | None:
    """``--group-size`` (``$LOSSBENCH_GROUP_SIZE``), or None for the device's default."""
    from lossbench.plan.grid import parse_positive_int

    value = os.environ.get(GROUP_SIZE_ENV, "").strip()
    return parse_positive_int(value, f"${GROUP_SIZE_ENV}") if value else None


def group_limit(device: str) -> int:
    """The default most members per group on ``device``: ``DEFAULT_GROUP_SIZE``, and on CUDA no more than its free
    memory holds at ``CUDA_BYTES_PER_MEMBER`` each."""
    import torch

    from lossbench.training.train import resolve_device

    if device != "auto" and (device.startswith("cuda") and not torch.cuda.is_available()):
        return DEFAULT_GROUP_SIZE["cuda"]  # a Ray cluster's GPU, planned on a driver without one
    resolved = resolve_device(device)
    limit = DEFAULT_GROUP_SIZE.get(resolved.type, DEFAULT_GROUP_SIZE["cpu"])
    if resolved.type == "cuda":
        free, _total = torch.cuda.mem_get_info(resolved)
        limit = max(2, min(limit, free // CUDA_BYTES_PER_MEMBER))
    return limit


def group_key(spec: RunSpec, catalog: Catalog) -> tuple | None:
    """What members of one group share (None: this run trains alone)."""
    try:
        loss = catalog.losses.get(spec.loss)
    except Exception:
        return None
    if not isinstance(loss, AdversarialLoss):
        return None
    r = loss.recipe
    return (
        spec.model,
        spec.dataset,
        spec.steps,
        spec.batch_size,
        spec.log_every,
        spec.eval_every,
        spec.eval_samples,
        spec.final_samples,
        spec.device,
        r.optimizer,
        r.n_critic,
        r.n_critic_burst,
        r.burst_steps,
        r.burst_every,
        r.ema_decay is None,
    )


def plan_groups(
    specs: Sequence[RunSpec], catalog: Catalog, group_size: int | None, workers: int = 1, where_it_pays: bool = False
) -> list[list[RunSpec]]:
    """The specs in groups of compatible runs, in the order of their first member (with several workers: the
    costliest first, so that the last group to start is a short one); runs that cannot be grouped form groups of
    one, and so do those that stacking would not speed up with ``where_it_pays`` (``pays``). Without ``group_size``
    a set of n compatible runs is cut into ``max(ceil(n / limit), min(workers, n // 2))`` equal groups, so that
    ``workers`` processes all get a group (a group holds at least 2)."""
    buckets: dict[object, list[RunSpec]] = {}
    for index, spec in enumerate(specs):
        key = group_key(spec, catalog)
        buckets.setdefault(("alone", index) if key is None else key, []).append(spec)
    groups: list[list[RunSpec]] = []
    for bucket in buckets.values():
        if where_it_pays and not pays(bucket[0], catalog):
            size = 1
        elif group_size:
            size = group_size
        else:
            limit = group_limit(bucket[0].device)
            parts = max(math.ceil(len(bucket) / limit), min(workers, len(bucket) // 2), 1)
            size = math.ceil(len(bucket) / parts)
        groups.extend(bucket[start : start + size] for start in range(0, len(bucket), size))
    first: dict[str, int] = {}
    for index, spec in enumerate(specs):
        first.setdefault(spec.run_id, index)
    groups.sort(key=lambda group: first[group[0].run_id])
    if workers > 1:
        groups.sort(key=lambda group: -_cost(group, catalog))
    return groups


def _cost(group: Sequence[RunSpec], catalog: Catalog) -> int:
    """Network passes a group trains, roughly: members x (critic steps + generator steps) of its schedule."""
    spec = group[0]
    loss = catalog.losses.get(spec.loss) if spec.loss in catalog.losses else None
    recipe = getattr(loss, "recipe", None)
    critic = sum(recipe.critic_steps(t) for t in range(1, spec.steps + 1)) if recipe is not None else spec.steps
    return len(group) * (critic + spec.steps)
