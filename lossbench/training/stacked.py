"""The stacked engine: a group of compatible GAN runs trained as one model, K members per forward and backward.

Small models are bound by Python and dispatch overhead, not arithmetic, so K runs that share a model factory, a
dataset, batch size, steps and recipe differ only in their weights, seed streams and loss: their networks are
stacked (``torch.func.stack_module_state``) and evaluated with ``vmap(functional_call)``, and one optimizer steps
the stacked tensors (Adam, RMSprop and SGD are elementwise, so this equals K optimizers). Each member keeps what
makes it its own run:

- it starts from the weights ``train._Run.build`` gives its RunSpec and draws the same batches and latent noise
  (streams are shared by members of one seed, since they depend on the seed, model and dataset only);
- its loss and penalty are called on its own slice, with its own global-RNG state (the penalty's randomness);
- its ``after_discriminator_step`` sees a module whose parameters alias its slice (weight clipping per member);
- a non-finite loss makes it ``diverged`` at that step and it is dropped from the group before the optimizer
  steps (its weights and optimizer state stay as they were); an exception makes it ``failed`` with its reason;
- its history, light evaluations and final scoring are the sequential engine's (``train._Run``,
  ``train.finish_run``), on a model that holds its slice.

What cannot be stacked (VAEs, a group of one, a model that vmap rejects, a loss that raises at its first stacked
step) trains in the sequential engine, with one line on stderr saying why.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from lossbench.api import GAN, AdversarialLoss
from lossbench.errors import LossbenchError
from lossbench.plan import seeding
from lossbench.plan.grid import RunSpec
from lossbench.plugin.contracts import check_shapes, failure_reason
from lossbench.plugin.registry import Catalog
from lossbench.records import RunResult
from lossbench.training.train import (
    Batches,
    Diverged,
    ProgressCallback,
    _check_scalar,
    _Run,
    environment_facts,
    finish_run,
    make_optimizer,
    plugin_objects,
    resolve_device,
    run_facts,
    run_safely,
)

DEFAULT_GROUP_SIZE = {"cpu": 32, "cuda": 256}
"""Members per group when ``--group-size`` is not given: CPU gains flatten past a few dozen members; a GPU needs
hundreds of small models to fill."""

VECTORISE_ENV = "LOSSBENCH_VECTORISE"
"""``1``: the local executor trains compatible runs stacked (``lossbench run --vectorise``); off by default."""
GROUP_SIZE_ENV = "LOSSBENCH_GROUP_SIZE"
"""Members per group (``--group-size``); default ``DEFAULT_GROUP_SIZE`` for the device."""

Notice = Callable[[str], None]


def enabled() -> bool:
    """Whether this process trains groups stacked (set by ``--vectorise``, read by the executors)."""
    return os.environ.get(VECTORISE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def group_size() -> int | None:
    """``--group-size`` (``$LOSSBENCH_GROUP_SIZE``), or None for the device's default."""
    from lossbench.plan.grid import parse_positive_int

    value = os.environ.get(GROUP_SIZE_ENV, "").strip()
    return parse_positive_int(value, f"${GROUP_SIZE_ENV}") if value else None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class CannotStack(Exception):
    """The group cannot train stacked; its runs go to the sequential engine (the message says why)."""


def group_key(spec: RunSpec, catalog: Catalog) -> tuple | None:
    """What members of one group share (None: this run trains alone): the model, dataset, sizes, schedule, device
    and the loss's recipe (optimizer, learning rates, betas, n_critic schedule, EMA)."""
    try:
        loss = catalog.losses.get(spec.loss)
    except Exception:
        return None
    if not isinstance(loss, AdversarialLoss):
        return None
    return (spec.model, spec.dataset, spec.steps, spec.batch_size, spec.log_every, spec.eval_every,
            spec.eval_samples, spec.final_samples, spec.device, loss.recipe)


def plan_groups(specs: Sequence[RunSpec], catalog: Catalog, group_size: int | None) -> list[list[RunSpec]]:
    """The specs in groups of compatible runs, at most ``group_size`` each (default: ``DEFAULT_GROUP_SIZE``),
    in the order of their first member; runs that cannot be grouped form groups of one."""
    groups: dict[object, list[list[RunSpec]]] = {}
    order: list[list[RunSpec]] = []
    for index, spec in enumerate(specs):
        key = group_key(spec, catalog)
        key = ("alone", index) if key is None else key
        size = group_size or DEFAULT_GROUP_SIZE.get(resolve_device(spec.device).type, DEFAULT_GROUP_SIZE["cpu"])
        bucket = groups.setdefault(key, [])
        if not bucket or len(bucket[-1]) >= size:
            bucket.append([])
            order.append(bucket[-1])
        bucket[-1].append(spec)
    return order


def _overrides(loss: AdversarialLoss, method: str) -> bool:
    return getattr(type(loss), method) is not getattr(AdversarialLoss, method)


def _alias_module(base: nn.Module, params: dict[str, Tensor], index: int) -> nn.Module:
    """A copy of ``base`` whose parameters alias member ``index``'s slice: in-place edits (clipping) land in the
    stacked tensors."""
    module = copy.deepcopy(base)
    for name, value in params.items():
        owner, _, leaf = name.rpartition(".")
        target = module.get_submodule(owner) if owner else module
        target._parameters[leaf] = nn.Parameter(value.detach()[index], requires_grad=False)
    return module


class _Critic(nn.Module):
    """Member ``index``'s discriminator as the callable a penalty receives (gradients reach the stacked tensors)."""

    def __init__(self, stack: _Stack, index: int) -> None:
        super().__init__()
        self._call = (stack.base, stack.params, stack.buffers, index)
        self._fast = stack.fast

    def forward(self, x: Tensor) -> Tensor:
        base, params, buffers, i = self._call
        if self._fast is not None:
            return self._fast({k: v[i : i + 1] for k, v in params.items()}, x.unsqueeze(0))[0]
        return functional_call(base, ({k: v[i] for k, v in params.items()}, {k: v[i] for k, v in buffers.items()}), (x,))

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """The member's parameter slices (a penalty on the weights, e.g. weight decay, sees its own)."""
        base, params, _buffers, i = self._call
        for name, value in params.items():
            yield prefix + name, value[i]

    def parameters(self, recurse: bool = True):
        for _name, value in self.named_parameters():
            yield value


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


Forward = Callable[[dict, Tensor], Tensor]
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.ELU, nn.SiLU, nn.GELU, nn.Softplus)


def batched_layers(module: nn.Module, prefix: str = "") -> Forward | None:
    """``module`` as batched layers over stacked parameters ([K, ...]) and inputs ([K, B, features]), or None when
    it holds a layer this does not know (it then runs under ``vmap``). Why: for the small MLPs of a grid, vmap's
    per-call bookkeeping costs as much as the arithmetic; ``baddbmm`` is one kernel per layer. Exact types only,
    so that a subclass with its own ``forward`` is never compiled wrongly."""
    from lossbench.builtin.models import Scores

    kind = type(module)
    if kind is nn.Sequential:
        parts = [batched_layers(child, f"{prefix}{name}.") for name, child in module.named_children()]
        if any(part is None for part in parts):
            return None

        def sequential(params: dict, x: Tensor) -> Tensor:
            for part in parts:
                x = part(params, x)  # type: ignore[misc]
            return x
        return sequential
    if kind is nn.Linear:
        weight, bias = prefix + "weight", prefix + "bias"
        if module.bias is None:
            return lambda params, x: torch.bmm(x, params[weight].transpose(1, 2))
        return lambda params, x: torch.baddbmm(params[bias].unsqueeze(1), x, params[weight].transpose(1, 2))
    if kind in _ELEMENTWISE:
        return lambda params, x: module(x)
    if kind is Scores:
        body = batched_layers(module.body, prefix + "body.")
        return None if body is None else (lambda params, x: body(params, x).reshape(x.shape[0], x.shape[1]))
    return None


def _multi_tensor(make: Callable) -> Callable:
    """The recipe's optimizer with its multi-tensor (foreach) kernels: the same elementwise update, in a few calls
    for all stacked tensors instead of a Python loop over them."""
    def build(params: list[Tensor]) -> torch.optim.Optimizer:
        optimizer = make(params)
        for group in optimizer.param_groups:
            if "foreach" in group:
                group["foreach"] = True
        return optimizer
    return build


class _Stack:
    """One network of every active member, stacked: parameters, buffers, optimizer, optional average."""

    def __init__(self, modules: list[nn.Module], optimizer: Callable, average: bool) -> None:
        params, buffers = stack_module_state(modules)
        self.real_base = copy.deepcopy(modules[0])  # a real module, for aliases of one member's slice
        self.base = copy.deepcopy(modules[0]).to("meta")
        self.params = params
        self.buffers = buffers
        self.make_optimizer = _multi_tensor(optimizer)
        self.optimizer = self.make_optimizer(list(params.values()))
        self.average = ({k: v.detach().clone() for k, v in params.items()} if average else None)
        self.average_buffers = ({k: v.clone() for k, v in buffers.items()} if average else None)
        self.forward = vmap(self._one)
        self.fast = fast = batched_layers(modules[0]) if not buffers else None
        if fast is not None:
            self.forward = lambda params, _buffers, x: fast(params, x)

    def _one(self, params: dict, buffers: dict, x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(self.params, self.buffers, x)

    def frozen(self, x: Tensor) -> Tensor:
        """The forward pass with detached parameters: gradients reach ``x`` only (the generator step needs no
        discriminator weight gradients, which the sequential engine computes and discards)."""
        return self.forward({k: v.detach() for k, v in self.params.items()}, self.buffers, x)

    def grad_norms(self) -> Tensor:
        squares = [p.grad.flatten(1).pow(2).sum(1) for p in self.params.values() if p.grad is not None]
        return torch.stack(squares).sum(0).sqrt() if squares else torch.full((self.size,), float("nan"))

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def keep(self, index: Tensor) -> None:
        """Keep only the members at ``index`` (params, grads, buffers, optimizer state, average)."""
        old = self.size
        new_params = {}
        for name, p in self.params.items():
            q = p.detach()[index].clone().requires_grad_(True)
            if p.grad is not None:
                q.grad = p.grad[index].clone()
            new_params[name] = q
        optimizer = self.make_optimizer(list(new_params.values()))
        for name, p in self.params.items():
            state = self.optimizer.state.get(p)
            if state:
                optimizer.state[new_params[name]] = {
                    key: (value[index].clone() if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == old
                          else value) for key, value in state.items()}
        self.params, self.optimizer = new_params, optimizer
        self.buffers = {k: v[index].clone() for k, v in self.buffers.items()}
        if self.average is not None:
            self.average = {k: v[index].clone() for k, v in self.average.items()}
            self.average_buffers = {k: v[index].clone() for k, v in self.average_buffers.items()}

    @torch.no_grad()
    def update_average(self, decay: float) -> None:
        for name, mean in self.average.items():
            mean.lerp_(self.params[name].detach(), 1.0 - decay)
        for name, mean in self.average_buffers.items():
            mean.copy_(self.buffers[name])

    @torch.no_grad()
    def load_into(self, module: nn.Module, position: int, average: bool = False) -> None:
        """Member ``position``'s slice into a plain module (for evaluation and checkpoints)."""
        params, buffers = (self.average, self.average_buffers) if average else (self.params, self.buffers)
        state = {k: v[position].detach() for k, v in {**params, **buffers}.items()}
        module.load_state_dict(state)


class _Group:
    """A group's training loop: the sequential engine's ``train_gan``, over K members at once."""

    def __init__(self, specs: Sequence[RunSpec], catalog: Catalog, device: torch.device,
                 progress: ProgressCallback | None) -> None:
        self.device = device
        self.members: list[_Member] = []
        seeds: dict[int, int] = {}
        for spec in specs:
            run = _Run(spec, catalog, device, progress)
            model = run.build()
            if not isinstance(model, GAN):
                raise CannotStack(f"{spec.label} is not a GAN")
            check_shapes(model, run.train_x[: min(spec.batch_size, len(run.train_x))], tuple(run.dataset.spec.shape),
                         spec.model, catalog.models.plugin_of(spec.model))  # raises: the runs go alone and fail there
            stream = seeds.setdefault(spec.seed, len(seeds))
            cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
            self.members.append(_Member(run, model, run.loss, stream, torch.get_rng_state(), cuda_rng))
        first = self.members[0]
        self.spec, self.recipe = first.run.spec, first.loss.recipe
        self.latent = first.model.latent_dim
        shapes = [{k: v.shape for k, v in m.model.generator.state_dict().items()}
                  | {"D." + k: v.shape for k, v in m.model.discriminator.state_dict().items()} for m in self.members]
        if any(s != shapes[0] for s in shapes):
            raise CannotStack("members' networks differ in shape")
        self.seed_specs = {m.stream: m.run.spec for m in self.members}
        recipe = self.recipe
        self.G = _Stack([m.model.generator for m in self.members],
                        lambda ps: make_optimizer(recipe, ps, recipe.lr_g), recipe.ema_decay is not None)
        self.D = _Stack([m.model.discriminator for m in self.members],
                        lambda ps: make_optimizer(recipe, ps, recipe.lr_d), False)
        if recipe.ema_decay is not None:
            for m in self.members:
                m.run.average = copy.deepcopy(m.model.generator).requires_grad_(False)
        self.active = list(self.members)
        self._refresh()

    def _refresh(self) -> None:
        self.streams = torch.tensor([m.stream for m in self.active], device=self.device)
        for i, m in enumerate(self.active):
            m.alias = _alias_module(self.D.real_base, self.D.params, i) if _overrides(m.loss, "after_discriminator_step") else None

    # -- the loop -------------------------------------------------------------------------------------------
    def train(self) -> None:
        """The loop; an error outside the members' own losses is the group's: at step 1 it cannot be stacked
        (``CannotStack``), later every member still training fails with it."""
        try:
            self._train()
        except Exception as exc:
            step = self.active[0].run.step if self.active else 0
            reason = f"{type(exc).__name__}: {exc}"
            if step <= 1:
                raise CannotStack(reason) from exc
            for m in self.active:
                m.status, m.reason, m.failed_step, m.done = "failed", f"stacked training: {reason}", step, True
            self.active = []

    def _train(self) -> None:
        spec, recipe, device = self.spec, self.recipe, self.device
        batches = {s: Batches(self.members[0].run.train_x, sp.batch_size, seeding.data_seed(sp.seed, sp.dataset))
                   for s, sp in self.seed_specs.items()}
        z_d = {s: seeding.make_generator(seeding.noise_seed(sp.seed, sp.model, sp.dataset, "discriminator"), device)
               for s, sp in self.seed_specs.items()}
        z_g = {s: seeding.make_generator(seeding.noise_seed(sp.seed, sp.model, sp.dataset, "generator"), device)
               for s, sp in self.seed_specs.items()}
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
                real_scores, fake_scores = self.D(real), self.D(fake)
                totals, penalties, d_losses = self._discriminator_losses(step, critic_step, real, fake, real_scores, fake_scores)
                self.D.optimizer.zero_grad(set_to_none=True)
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
                        m.step_values.update(d_loss=d_losses[i], penalty=penalties[i], d_value=values[i],
                                             grad_norm_d=grad_norm_d[i] if grad_norm_d else float("nan"))
                if out:
                    real_scores, fake_scores, real = self._drop(out, real_scores, fake_scores, real)
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
            g_losses = []
            for i, m in enumerate(self.active):
                reference = fresh_real_scores[i] if m.loss.generator_needs_real else real_scores[i].detach()
                g_losses.append(self._guarded(m, step, "generator_loss", fake_scores_g[i], reference))
            self.G.optimizer.zero_grad(set_to_none=True)
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
                    v = m.step_values
                    m.run.log_gan(step, v["d_loss"], v["penalty"], g_values[i], real_scores[i], fake_scores[i],
                                  grad_norm_g[i], v["grad_norm_d"])
            if out:
                self._drop(out, real_scores, fake_scores, real)
                if not self.active:
                    return
            self.G.optimizer.step()
            if recipe.ema_decay is not None:
                self.G.update_average(recipe.ema_decay)
            if step % spec.eval_every == 0 and step < spec.steps:
                for i, m in enumerate(self.active):
                    self._materialise(m, i)
                    m.call(m.run.light_evaluation, m.model)

    def _discriminator_losses(self, step, critic_step, real, fake, real_scores, fake_scores):
        totals, penalties, d_losses = [], [], []
        for i, m in enumerate(self.active):
            d_loss = self._guarded(m, step, "discriminator_loss", real_scores[i], fake_scores[i], check=critic_step == 0)
            penalty = None
            if d_loss is not None and _overrides(m.loss, "penalty"):
                penalty = self._guarded(m, step, "penalty", _Critic(self.D, i),
                                        real[i], fake[i], check=critic_step == 0, optional=True)
            total = None if d_loss is None or m.done else (d_loss if penalty is None else d_loss + penalty)
            totals.append(total)
            penalties.append(penalty)
            d_losses.append(d_loss)
        return totals, penalties, d_losses

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
        keep = [i for i in range(len(self.active)) if i not in set(out)]
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.active = [self.active[i] for i in keep]
        if self.active:
            self.G.keep(index)
            self.D.keep(index)
            self._refresh()
        return tuple(t[index] for t in tensors)

    def finish_training(self) -> None:
        for i, m in enumerate(self.active):
            self._materialise(m, i)


def _values(tensors: list[Tensor | None]) -> list[float | None]:
    """The members' loss values with one device sync (None where a member has no value)."""
    live = [t.detach().float() for t in tensors if t is not None]
    numbers = iter(torch.stack(live).tolist() if live else [])
    return [next(numbers) if t is not None else None for t in tensors]


def _finite(value: float | None) -> bool:
    return value is not None and value == value and value not in (float("inf"), float("-inf"))


def train_group(specs: Sequence[RunSpec], catalog: Catalog, progress: ProgressCallback | None = None,
                notice: Notice = _stderr) -> list[RunResult]:
    """Train ``specs`` (one group: see ``group_key``) stacked; results in the order of ``specs``.

    Members that cannot be stacked (and the whole group, when it cannot) are trained by ``train.run_safely``.
    """
    if len(specs) < 2:
        return [_alone(spec, catalog, progress, "a group of one") for spec in specs]
    device = resolve_device(specs[0].device)
    try:
        with seeding.pinned_threads(seeding.run_threads()):
            determinism = seeding.enable_determinism(device)
            group = _build(specs, catalog, device, progress)
            started = time.perf_counter()
            group.train()
            group.finish_training()
            evaluating = sum(m.run.eval_seconds for m in group.members)
            seconds = (time.perf_counter() - started - evaluating) / len(specs)
            environment = {**environment_facts(device, determinism), "engine": "stacked", "group_size": len(specs)}
            results: dict[str, RunResult] = {}
            for m in group.members:
                spec = m.run.spec
                if m.status == "alone":
                    notice(f"{spec.label}: cannot train stacked ({m.reason}); training it alone")
                    results[spec.run_id] = _alone(spec, catalog, progress, m.reason)
                elif m.status == "failed":
                    results[spec.run_id] = RunResult(spec=spec, status="failed", reason=m.reason,
                                                     failed_step=m.failed_step, environment=dict(environment))
                else:
                    try:
                        results[spec.run_id] = finish_run(
                            m.run, m.model, m.status, m.reason, m.failed_step,
                            seconds, run_facts(m.run), dict(environment))
                    except Exception as exc:
                        reason = failure_reason(exc, plugin_objects(spec, catalog))
                        results[spec.run_id] = RunResult(spec=spec, status="failed", reason=reason)
            return [results[spec.run_id] for spec in specs]
    except CannotStack as exc:
        notice(f"{len(specs)} runs of {specs[0].dataset} · {specs[0].model}: cannot train stacked ({exc}); "
               "training them one at a time")
        return [_alone(spec, catalog, progress, str(exc)) for spec in specs]
    return [run_safely(spec, catalog, progress) for spec in specs]


def _alone(spec: RunSpec, catalog: Catalog, progress: ProgressCallback | None, why: str) -> RunResult:
    """The sequential engine's result, recording why the stacked one did not train it."""
    result = run_safely(spec, catalog, progress)
    result.environment.update(engine="sequential", stacked_fallback=why)
    return result


def _build(specs, catalog, device, progress) -> _Group:
    try:
        return _Group(specs, catalog, device, progress)
    except CannotStack:
        raise
    except Exception as exc:
        raise CannotStack(f"{type(exc).__name__}: {exc}") from None


def run_groups(specs: Sequence[RunSpec], catalog: Catalog, group_size: int | None = None,
               progress: ProgressCallback | None = None, notice: Notice = _stderr) -> Iterator[RunResult]:
    """Every spec's result, training compatible runs stacked group by group (``plan_groups``)."""
    for group in plan_groups(specs, catalog, group_size):
        yield from train_group(group, catalog, progress, notice)
