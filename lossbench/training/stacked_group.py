"""A stacked group's training loop: the sequential engine's ``train_gan`` over K members at once (see
``lossbench.training.stacked`` for what each member keeps of its own run)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import vmap

from lossbench.api import GAN, AdversarialLoss
from lossbench.errors import LossbenchError
from lossbench.plan import seeding
from lossbench.plan.grid import RunSpec
from lossbench.plugin.contracts import failure_reason
from lossbench.plugin.registry import Catalog
from lossbench.training.stacked_layers import Critic, Stack, alias_module
from lossbench.training.train import Batches, Diverged, ProgressCallback, _check_scalar, _Run, plugin_objects


class CannotStack(Exception):
    """The group cannot train stacked; its runs go to the sequential engine (the message says why)."""


def _overrides(loss: AdversarialLoss, method: str) -> bool:
    return getattr(type(loss), method) is not getattr(AdversarialLoss, method)


def is_pure(loss: AdversarialLoss) -> bool:
    """Whether ``loss`` is ``pure``, as declared by a class at or below every class that writes one of its two
    losses: a subclass that rewrites a loss (say, to keep a count) does not inherit its parent's claim."""
    mro = type(loss).__mro__
    declared_by = next(cls for cls in mro if "pure" in vars(cls))
    writers = [cls for cls in mro if "discriminator_loss" in vars(cls) or "generator_loss" in vars(cls)]
    return bool(loss.pure) and all(issubclass(declared_by, cls) for cls in writers)


@dataclass
class _Member:
    run: _Run
    model: GAN
    loss: AdversarialLoss
    stream: int  # index of its seed's batch and noise streams
    rng: Tensor  # its global-RNG state (CPU), for its loss's and penalty's randomness
    cuda_rng: Tensor | None = None
    status: str = "ok"
    reason: str = ""
    failed_step: int | None = None
    done: bool = False
    alias: nn.Module | None = None
    step_values: dict = field(default_factory=dict)

    def call(self, fn: Callable, *args):
        """``fn(*args)`` with this member's global-RNG state swapped in (so a penalty draws what it draws alone)."""
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state(self.cuda_rng, self.run.device)
        try:
            return fn(*args)
        finally:
            self.rng = torch.get_rng_state()
            if self.cuda_rng is not None:
                self.cuda_rng = torch.cuda.get_rng_state(self.run.device)


class _Group:
    """A group's training loop: the sequential engine's ``train_gan``, over K members at once."""

    def __init__(
        self, specs: Sequence[RunSpec], catalog: Catalog, device: torch.device, progress: ProgressCallback | None
    ) -> None:
        self.device = device
        self.members: list[_Member] = []
        seeds: dict[int, int] = {}
        for spec in specs:
            run = _Run(spec, catalog, device, progress)
            model = run.build()
            if not isinstance(model, GAN):
                raise CannotStack(f"{spec.label} is not a GAN")
            run.check_model(model)  # raises: the runs go alone and fail there
            stream = seeds.setdefault(spec.seed, len(seeds))
            cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
            if not isinstance(run.loss, AdversarialLoss):
                raise CannotStack(f"{spec.label}: the loss is not adversarial")
            self.members.append(_Member(run, model, run.loss, stream, torch.get_rng_state(), cuda_rng))
        first = self.members[0]
        self.spec, self.recipe = first.run.spec, first.loss.recipe
        self.latent = first.model.latent_dim
        shapes = [
            {k: v.shape for k, v in m.model.generator.state_dict().items()}
            | {"D." + k: v.shape for k, v in m.model.discriminator.state_dict().items()}
            for m in self.members
        ]
        if any(s != shapes[0] for s in shapes):
            raise CannotStack("members' networks differ in shape")
        self.seed_specs = {m.stream: m.run.spec for m in self.members}
        recipes = [m.loss.recipe for m in self.members]
        betas = [r.betas for r in recipes]
        decays: list[float] | None = None
        if self.recipe.ema_decay is not None:
            decays = [r.ema_decay for r in recipes if r.ema_decay is not None]
            if len(decays) != len(recipes):
                raise CannotStack("members differ in whether they keep an average of the generator")
        self.G = Stack(
            [m.model.generator for m in self.members], self.recipe.optimizer, [r.lr_g for r in recipes], betas, decays
        )
        self.D = Stack(
            [m.model.discriminator for m in self.members], self.recipe.optimizer, [r.lr_d for r in recipes], betas, None
        )
        if decays is not None:
            for m in self.members:
                m.run.average = copy.deepcopy(m.model.generator).requires_grad_(False)
        self.active = list(self.members)
        self.member_by_member: set[tuple[str, str]] = set()  # (loss, method) whose vmapped call failed once
        self.pure = {m.run.spec.loss: is_pure(m.loss) for m in self.members}
        self.finished: list[_Member] = []  # out of training, not yet handed on
        self._refresh()

    def _refresh(self) -> None:
        self.streams = torch.tensor([m.stream for m in self.active], device=self.device)
        for i, m in enumerate(self.active):
            m.alias = alias_module(self.D, i) if _overrides(m.loss, "after_discriminator_step") else None

    # -- the loop -------------------------------------------------------------------------------------------
    def train(self) -> Iterator[_Member]:
        """The loop, yielding each member once its training is over (dropped members at once, the others at the
        end, their models holding their weights). An error outside the members' own losses is the group's: at
        step 1 it cannot be stacked (``CannotStack``), later every member still training fails with it."""
        try:
            for _ in self._train():
                yield from self._take()
        except Exception as exc:
            step = self.active[0].run.step if self.active else 0
            reason = f"{type(exc).__name__}: {exc}"
            if step <= 1:
                raise CannotStack(reason) from exc
            for m in self.active:
                m.status, m.reason, m.failed_step, m.done = "failed", f"stacked training: {reason}", step, True
            self.finished.extend(self.active)
            self.active = []
        for i, m in enumerate(self.active):
            self._materialise(m, i)
        self.finished.extend(self.active)
        yield from self._take()

    def _take(self) -> Iterator[_Member]:
        finished, self.finished = self.finished, []
        yield from finished

    def _train(self) -> Iterator[None]:
        spec, recipe, device = self.spec, self.recipe, self.device
        batches = {
            s: Batches(self.members[0].run.train_x, sp.batch_size, seeding.data_seed(sp.seed, sp.dataset))
            for s, sp in self.seed_specs.items()
        }
        z_d = {
            s: seeding.make_generator(seeding.noise_seed(sp.seed, sp.model, sp.dataset, "discriminator"), device)
            for s, sp in self.seed_specs.items()
        }
        z_g = {
            s: seeding.make_generator(seeding.noise_seed(sp.seed, sp.model, sp.dataset, "generator"), device)
            for s, sp in self.seed_specs.items()
        }
        batch = next(iter(batches.values())).batch_size
        needs_real = any(m.loss.generator_needs_real for m in self.members)
        order = sorted(self.seed_specs)
        for step in range(1, spec.steps + 1):
            if not self.active:
                return
            for m in self.active:
                m.run.step = step
            logging_now = step % spec.log_every == 0 or step == 1
            n_critic = recipe.critic_steps(step)
            for critic_step in range(n_critic):
                reals = torch.stack([batches[s].next() for s in order])
                zs = torch.stack([torch.randn((batch, self.latent), generator=z_d[s], device=device) for s in order])
                real, z = reals[self.streams], zs[self.streams]
                with torch.no_grad():
                    fake = self.G(z)
                real_scores, fake_scores = self.D(real), self.D(fake)  # two passes, as alone: one would sum D's
                # weight gradient in another order, and Adam's first steps (g / |g|) turn that into lr-sized changes
                totals, penalties, d_losses = self._discriminator_losses(
                    step, critic_step, real, fake, real_scores, fake_scores
                )
                self.D.zero_grad()
                if totals:
                    torch.stack([t for t in totals if t is not None]).sum().backward()
                values = _values(totals)
                last = critic_step == n_critic - 1
                grad_norm_d = self.D.grad_norms().tolist() if logging_now and last else None
                out = []
                for i, m in enumerate(self.active):
                    if m.done:
                        out.append(i)
                    elif not _finite(values[i]):
                        m.run.log(step=step, d_loss=values[i])
                        self._diverge(m, i, Diverged(step, "discriminator loss"))
                        out.append(i)
                    else:
                        m.step_values.update(
                            d_loss=d_losses[i],
                            penalty=penalties[i],
                            d_value=values[i],
                            grad_norm_d=grad_norm_d[i] if grad_norm_d else float("nan"),
                        )
                if out:
                    real_scores, fake_scores, real = self._drop(out, real_scores, fake_scores, real)
                    yield  # the dropped members are final: their results can be stored now
                    if not self.active:
                        return
                self.D.optimizer.step()
                for m in self.active:
                    if m.alias is not None:
                        m.call(m.loss.after_discriminator_step, m.alias)
            if needs_real:
                with torch.no_grad():
                    fresh_real_scores = self.D(real)
            zs = torch.stack([torch.randn((batch, self.latent), generator=z_g[s], device=device) for s in order])
            fake_scores_g = self.D.frozen(self.G(zs[self.streams]))
            references = {False: real_scores.detach()} | ({True: fresh_real_scores} if needs_real else {})
            g_losses = self._losses(step, "generator_loss", _generator_columns(fake_scores_g, references), True)
            self.G.zero_grad()
            live = [g for g in g_losses if g is not None]
            if live:
                torch.stack(live).sum().backward()
            g_values = _values(g_losses)
            grad_norm_g = self.G.grad_norms().tolist() if logging_now else None
            out = []
            for i, m in enumerate(self.active):
                if m.done:
                    out.append(i)
                elif not _finite(g_values[i]):
                    m.run.log(step=step, d_loss=m.step_values["d_value"], g_loss=g_values[i])
                    self._diverge(m, i, Diverged(step, "generator loss"))
                    out.append(i)
                elif logging_now:
                    assert grad_norm_g is not None  # computed on logging steps
                    v = m.step_values
                    m.run.log_gan(
                        step,
                        v["d_loss"],
                        v["penalty"],
                        g_values[i],
                        real_scores[i],
                        fake_scores[i],
                        grad_norm_g[i],
                        v["grad_norm_d"],
                    )
            if out:
                self._drop(out, real_scores, fake_scores, real)
                yield
                if not self.active:
                    return
            self.G.optimizer.step()
            if self.G.average is not None:
                self.G.update_average()
            if step % spec.eval_every == 0 and step < spec.steps:
                for i, m in enumerate(self.active):
                    self._materialise(m, i)
                    m.call(m.run.light_evaluation, m.model)

    def _discriminator_losses(self, step, critic_step, real, fake, real_scores, fake_scores):
        totals, penalties = [], []
        d_losses = self._losses(step, "discriminator_loss", lambda loss: (real_scores, fake_scores), critic_step == 0)
        for i, m in enumerate(self.active):
            d_loss = d_losses[i]
            penalty = None
            if d_loss is not None and _overrides(m.loss, "penalty"):
                penalty = self._guarded(
                    m, step, "penalty", Critic(self.D, i), real[i], fake[i], check=critic_step == 0, optional=True
                )
            total = None if d_loss is None or m.done else (d_loss if penalty is None else d_loss + penalty)
            totals.append(total)
            penalties.append(penalty)
        return totals, penalties, d_losses

    def _losses(
        self, step: int, method: str, columns: Callable[[AdversarialLoss], tuple[Tensor, ...]], check: bool
    ) -> list[Tensor | None]:
        """Every active member's loss ``method`` on its rows of ``columns(loss)`` (``[K, ...]`` tensors): one
        vmapped call for the members of a ``pure`` loss after step 1 (whose checks and fall-backs are per member),
        else one call per member (``_guarded``). A vmapped call that raises or reads a value (``.item()``, a
        random draw) makes that loss go member by member from then on, where each member's error is its own."""
        values: list[Tensor | None] = [None] * len(self.active)
        by_loss: dict[str, list[int]] = {}
        for i, m in enumerate(self.active):
            if not m.done:
                by_loss.setdefault(m.run.spec.loss, []).append(i)
        for name, positions in by_loss.items():
            loss = self.active[positions[0]].loss
            if step > 1 and len(positions) > 1 and self.pure[name] and (name, method) not in self.member_by_member:
                rows = None if len(positions) == len(self.active) else torch.tensor(positions, device=self.device)
                batched = _vmapped(getattr(loss, method), [c if rows is None else c[rows] for c in columns(loss)])
                if batched is not None:
                    for i, value in zip(positions, batched.unbind()):
                        values[i] = value
                    continue
                self.member_by_member.add((name, method))
            arguments = columns(loss)
            for i in positions:
                values[i] = self._guarded(self.active[i], step, method, *(c[i] for c in arguments), check=check)
        return values

    def _guarded(self, m: _Member, step: int, method: str, *args, check: bool = True, optional: bool = False):
        """Member ``m``'s loss method on its slice; an exception marks it failed (at step 1: alone, see run_groups)."""
        if m.done:
            return None
        try:
            value = m.call(getattr(m.loss, method), *args)
            if step == 1 and check and not (optional and value is None):
                _check_scalar(value, m.run.spec.loss, m.run.loss_plugin, method)
            return value
        except Exception as exc:
            if step == 1 and not isinstance(exc, LossbenchError):
                m.status, m.reason = "alone", f"{type(exc).__name__}: {exc}"
            else:
                m.status = "failed"
                m.reason = failure_reason(exc, plugin_objects(m.run.spec, m.run.catalog))
            m.failed_step, m.done = step, True
            return None

    def _diverge(self, m: _Member, i: int, exc: Diverged) -> None:
        m.status, m.reason, m.failed_step, m.done = "diverged", str(exc), exc.step, True

    def _materialise(self, m: _Member, position: int) -> None:
        self.G.load_into(m.model.generator, position)
        self.D.load_into(m.model.discriminator, position)
        if m.run.average is not None:
            self.G.load_into(m.run.average, position, average=True)

    def _drop(self, out: list[int], *tensors: Tensor) -> tuple[Tensor, ...]:
        """Take the members at ``out`` out of the group, their models holding their weights as they are now."""
        for i in out:
            self._materialise(self.active[i], i)
            self.finished.append(self.active[i])
        keep = [i for i in range(len(self.active)) if i not in set(out)]
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.active = [self.active[i] for i in keep]
        if self.active:
            self.G.keep(index)
            self.D.keep(index)
            self._refresh()
        return tuple(t[index] for t in tensors)


def _generator_columns(
    fake_scores: Tensor, references: dict[bool, Tensor]
) -> Callable[[AdversarialLoss], tuple[Tensor, ...]]:
    """A loss's generator-step arguments: the fake scores, and real scores recomputed with the updated D where it
    asks for them (``generator_needs_real``), else the last critic step's."""
    return lambda loss: (fake_scores, references[loss.generator_needs_real])


def _vmapped(method: Callable[..., Tensor], columns: list[Tensor]) -> Tensor | None:
    """``method`` over the rows of ``columns`` in one call: the members' values (``[k]``), or None where it cannot
    be vmapped (it raised, drew a random number, read a value) or gave no scalar per member."""
    try:
        out = vmap(method, randomness="error")(*columns)
    except Exception:
        return None
    return out if isinstance(out, Tensor) and out.shape == (columns[0].shape[0],) else None


def _values(tensors: list[Tensor | None]) -> list[float | None]:
    """The members' loss values with one device sync (None where a member has no value)."""
    live = [t.detach().float() for t in tensors if t is not None]
    numbers = iter(torch.stack(live).tolist() if live else [])
    return [next(numbers) if t is not None else None for t in tensors]


def _finite(value: float | None) -> bool:
    return value is not None and value == value and value not in (float("inf"), float("-inf"))
