"""The stacked engine: a group of compatible GAN runs trained as one model, K members per forward and backward.

Small models are bound by Python and dispatch overhead, not arithmetic, so K runs that share a model factory, a
dataset, sizes and an optimizer kind and n_critic schedule (``stacked_plan``) differ only in their weights, seed
streams, loss and learning rates: their networks are stacked into flat ``[K, P]`` weights run as batched layers
(``stacked_layers``) and stepped by per-member optimizers (``stacked_optim``). Each member keeps what makes it its
own run:

- it starts from the weights ``train._Run.build`` gives its RunSpec and draws the same batches and latent noise
  (streams are shared by members of one seed, since they depend on the seed, model and dataset only);
- its loss and penalty are called on its own slice, with its own global-RNG state (the penalty's randomness); a
  loss declared ``pure`` is evaluated for all its members in one ``vmap`` call (it draws nothing, so no state is
  swapped), and member by member if that call fails;
- its learning rates, Adam betas and generator-average decay are its recipe's;
- its ``after_discriminator_step`` sees a module whose parameters alias its slice (weight clipping per member);
- a non-finite loss makes it ``diverged`` at that step and it is dropped from the group before the optimizer
  steps (its weights and optimizer state stay as they were); an exception makes it ``failed`` with its reason;
- its history, light evaluations and final scoring are the sequential engine's (``train._Run``,
  ``train.finish_run``), on a model that holds its slice; its result is handed on as soon as it is final (a
  member that diverges early is stored while the others train on).

A group of one trains stacked too (a lone run, a member of a group whose worker died, the last unfinished member of
a killed group), so that a run gets the same bits whatever else trains beside it. What cannot be stacked (VAEs, a
model that vmap rejects, a loss that raises at its first stacked step) trains in the sequential engine, with one
line on stderr saying why.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence

from lossbench.plan import seeding
from lossbench.plan.grid import RunSpec
from lossbench.plugin.contracts import failure_reason
from lossbench.plugin.registry import Catalog
from lossbench.records import RunResult
from lossbench.training.stacked_group import CannotStack, _Group, _Member
from lossbench.training.stacked_plan import (  # noqa: F401  (re-exported: the executors and the CLI read them here)
    DEFAULT_GROUP_SIZE,
    GROUP_SIZE_ENV,
    VECTORISE_ENV,
    enabled,
    group_key,
    mode,
    pays,
    plan_groups,
)
from lossbench.training.train import (
    ProgressCallback,
    environment_facts,
    finish_run,
    plugin_objects,
    resolve_device,
    run_facts,
    run_safely,
)

Notice = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def iter_group(
    specs: Sequence[RunSpec], catalog: Catalog, progress: ProgressCallback | None = None, notice: Notice = _stderr
) -> Iterator[RunResult]:
    """Train ``specs`` (one group: see ``group_key``) stacked, yielding each member's result as soon as it is
    final (so that the driver stores it: a killed group leaves its finished members stored).

    Members that cannot be stacked (and the whole group, when it cannot) are trained by ``train.run_safely``.
    """
    if not specs:
        return
    if len(specs) == 1 and (group_key(specs[0], catalog) is None or (mode() == "auto" and not pays(specs[0], catalog))):
        yield run_safely(specs[0], catalog, progress)  # not a GAN run, or one that stacks no faster here
        return
    device = resolve_device(specs[0].device)
    handed: set[str] = set()
    try:
        with seeding.pinned_threads(seeding.run_threads()):
            determinism = seeding.enable_determinism(device)
            group = _build(specs, catalog, device, progress)
            environment = {**environment_facts(device, determinism), "engine": "stacked", "group_size": len(specs)}
            started = time.perf_counter()
            for m in group.train():
                evaluating = sum(member.run.eval_seconds for member in group.members)
                seconds = (time.perf_counter() - started - evaluating) / len(specs)
                handed.add(m.run.spec.run_id)
                yield _result(m, seconds, environment, catalog, progress, notice)
    except CannotStack as exc:
        rest = [spec for spec in specs if spec.run_id not in handed]
        notice(
            f"{len(rest)} runs of {specs[0].dataset} · {specs[0].model}: cannot train stacked ({exc}); "
            "training them one at a time"
        )
        yield from (_alone(spec, catalog, progress, str(exc)) for spec in rest)


def _result(
    m: _Member, seconds: float, environment: dict, catalog: Catalog, progress: ProgressCallback | None, notice: Notice
) -> RunResult:
    """A member's result once its training is over: scored as the sequential engine scores a run."""
    spec = m.run.spec
    if m.status == "alone":
        notice(f"{spec.label}: cannot train stacked ({m.reason}); training it alone")
        return _alone(spec, catalog, progress, m.reason)
    if m.status == "failed":
        return RunResult(
            spec=spec, status="failed", reason=m.reason, failed_step=m.failed_step, environment=dict(environment)
        )
    try:
        return finish_run(
            m.run, m.model, m.status, m.reason, m.failed_step, seconds, run_facts(m.run), dict(environment)
        )
    except Exception as exc:
        return RunResult(spec=spec, status="failed", reason=failure_reason(exc, plugin_objects(spec, catalog)))


def train_group(
    specs: Sequence[RunSpec], catalog: Catalog, progress: ProgressCallback | None = None, notice: Notice = _stderr
) -> list[RunResult]:
    """``iter_group``'s results in the order of ``specs``."""
    results = {r.run_id: r for r in iter_group(specs, catalog, progress, notice)}
    return [results[spec.run_id] for spec in specs]


def _alone(spec: RunSpec, catalog: Catalog, progress: ProgressCallback | None, why: str) -> RunResult:
    """The sequential engine's result, recording why the stacked one did not train it."""
    result = run_safely(spec, catalog, progress)
    result.environment["stacked_fallback"] = why
    return result


def _build(specs, catalog, device, progress) -> _Group:
    try:
        return _Group(specs, catalog, device, progress)
    except CannotStack:
        raise
    except Exception as exc:
        raise CannotStack(f"{type(exc).__name__}: {exc}") from None


def run_groups(
    specs: Sequence[RunSpec],
    catalog: Catalog,
    group_size: int | None = None,
    progress: ProgressCallback | None = None,
    notice: Notice = _stderr,
) -> Iterator[RunResult]:
    """Every spec's result, training compatible runs stacked group by group (``plan_groups``)."""
    for group in plan_groups(specs, catalog, group_size):
        yield from iter_group(group, catalog, progress, notice)
