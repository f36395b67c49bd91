"""One RunSpec to one RunResult: build, train with paired seeds, evaluate. No file I/O here.

The training step is the hot path (small models are bound by Python overhead per step), so
it does only what the bare loop does plus one ``.item()`` per loss for the divergence check; history rows,
gradient norms and evaluations happen only on their schedule.
"""

from __future__ import annotations

import copy
import io
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from lossbench.api import GAN, VAE, AdversarialLoss, Dataset, Recipe, Samples, VAELoss
from lossbench.data.root import data_root
from lossbench.errors import LossbenchError
from lossbench.plan import seeding
from lossbench.plan.grid import RunSpec
from lossbench.plugin.contracts import check_shapes, failure_reason
from lossbench.plugin.registry import SINGULAR, Catalog
from lossbench.records import HISTORY_COLUMNS, RunResult, facts_texts
from lossbench.scoring.chosen import chosen_spaces
from lossbench.scoring.evaluate import Evaluation, EvaluationContext, run_metrics
from lossbench.scoring.spaces import catalog_spaces

SAMPLES_KEPT = {"points": 2500, "image": 64}
GENERATE_BATCH = 1024

ProgressCallback = Callable[[RunSpec, int], None]


class LossContractError(LossbenchError):
    """A loss returned something other than a scalar tensor: names the loss and the plugin."""


_DATA_CACHE: dict[tuple[str, str], Samples] = {}


def load_data(dataset: Dataset) -> Samples:
    """The dataset's training samples, loaded once per process (datasets are deterministic)."""
    root = data_root()
    key = (dataset.name, str(root))
    if key not in _DATA_CACHE:
        samples = dataset.load(root)
        _DATA_CACHE[key] = Samples(samples.x.float().contiguous(), samples.y)
    return _DATA_CACHE[key]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit device must exist."""
    from lossbench.errors import DeviceUnavailable

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceUnavailable(f"--device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"--device {name}: Apple MPS is not available on this machine")
    return device


def make_optimizer(recipe: Recipe, params, lr: float) -> torch.optim.Optimizer:
    """The optimizer a loss's recipe asks for."""
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=recipe.betas)
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


class Batches:
    """Training batches in a seeded order: a fresh permutation per epoch, last partial batch dropped."""

    def __init__(self, x: Tensor, batch_size: int, seed: int) -> None:
        self.x = x
        self.n = x.shape[0]
        self.batch_size = min(batch_size, self.n)
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.position = self.n

    def next(self) -> Tensor:
        if self.position + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator).to(self.x.device)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.x[index]


def _grad_norm(module: nn.Module) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else float("nan")


def _check_scalar(value: object, loss_name: str, plugin: str, method: str) -> None:
    if not isinstance(value, Tensor) or value.dim() != 0:
        what = f"a tensor of shape {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise LossContractError(
            f"loss {loss_name!r} (plugin {plugin!r}): {method} returned {what}; expected a scalar tensor"
        )


@torch.no_grad()
def generate(model: GAN | VAE, n: int, seed: int, device: torch.device) -> Samples:
    """``n`` samples from the model's prior, with noise from a fixed seed (the same z at every evaluation)."""
    network = model.generator if isinstance(model, GAN) else model.decoder
    was_training = network.training
    network.eval()
    generator = seeding.make_generator(seed, device)
    chunks = []
    for start in range(0, n, GENERATE_BATCH):
        size = min(GENERATE_BATCH, n - start)
        z = torch.randn((size, model.latent_dim), generator=generator, device=device)
        chunks.append(network(z).float())
    network.train(was_training)
    return Samples(torch.cat(chunks))


def evaluation_sets(data: Samples, spec: RunSpec) -> tuple[Samples, Samples]:
    """The real set a run is scored against and the disjoint reference set (real-vs-real floors): a seeded split
    of the dataset that depends on the dataset alone, each at most half of it."""
    split = torch.randperm(
        len(data), generator=torch.Generator().manual_seed(seeding.derive_seed("eval-split", spec.dataset))
    )
    n_eval = max(1, min(spec.final_samples, len(data) // 2))
    return data.subset(split[:n_eval]), data.subset(split[n_eval : 2 * n_eval])


def evaluate_model(
    model: GAN | VAE,
    spec: RunSpec,
    dataset: Dataset,
    metrics: list,
    real: Samples,
    reference: Samples,
    device: torch.device,
    *,
    final: bool,
    history: pd.DataFrame,
    curves: pd.DataFrame,
    diverged_at: int | None = None,
    spaces: Mapping | None = None,
    extra_spaces: Sequence[str] = (),
) -> tuple[Evaluation, Samples]:
    """Score ``model`` with ``metrics`` as the harness does (the run's evaluation noise, the shared context).

    Training calls it for the light and the final evaluations; ``lossbench rescore`` calls it on a stored
    checkpoint, which gives the values a run would have had with those metrics from the start. ``spaces`` are the
    registered feature spaces; ``extra_spaces`` those chosen with ``--feature-space`` (final evaluation only).
    """
    ctx = evaluation_context(
        model,
        spec,
        dataset,
        real,
        reference,
        device,
        final=final,
        history=history,
        curves=curves,
        diverged_at=diverged_at,
        spaces=spaces,
        extra_spaces=extra_spaces,
    )
    return run_metrics(metrics, ctx), ctx.fake


def evaluation_context(
    model: GAN | VAE,
    spec: RunSpec,
    dataset: Dataset,
    real: Samples,
    reference: Samples,
    device: torch.device,
    *,
    final: bool,
    history: pd.DataFrame,
    curves: pd.DataFrame,
    diverged_at: int | None = None,
    spaces: Mapping | None = None,
    extra_spaces: Sequence[str] = (),
) -> EvaluationContext:
    """The context one evaluation's metrics read: ``model``'s samples from the run's evaluation noise."""
    n = len(real) if final else min(spec.eval_samples, len(real))
    seed = seeding.noise_seed(spec.seed, spec.model, spec.dataset, "eval")
    fake = generate(model, n, seed, device)
    return EvaluationContext(
        real=real if final else real.subset(torch.arange(n)),
        fake=fake,
        dataset=dataset,
        spec=spec,
        history=history,
        reference=reference if final else reference.subset(torch.arange(min(n, len(reference)))),
        device=device,
        final=final,
        curves=curves,
        diverged_at=diverged_at,
        family=model.family,
        _registry=spaces,
        _extra_spaces=tuple(extra_spaces),
    )


def sampling_network(model: GAN | VAE) -> tuple[str, nn.Module]:
    """The network that turns noise into samples, which is all scoring needs: ("generator" | "decoder", module)."""
    return ("generator", model.generator) if isinstance(model, GAN) else ("decoder", model.decoder)


def checkpoint_bytes(model: GAN | VAE) -> tuple[str, bytes]:
    """The sampling network's weights as ``torch.save`` bytes (on the CPU, so that any machine can load them)."""
    role, network = sampling_network(model)
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu() for key, value in network.state_dict().items()}, buffer)
    return role, buffer.getvalue()


class Diverged(Exception):
    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"non-finite {what} at step {step}")
        self.step = step


@dataclass
class _Run:
    """The mutable state of one run while it trains."""

    spec: RunSpec
    catalog: Catalog
    device: torch.device
    progress: ProgressCallback | None
    step: int = 0
    rows: list = field(default_factory=list)
    curve_rows: list = field(default_factory=list)
    eval_seconds: float = 0.0
    train_started: float = 0.0
    average: nn.Module | None = None  # the generator's moving average when the recipe asks for one
    sent_rows: int = 0  # history rows and curve values already handed to the run_logged hook
    sent_curves: int = 0

    def __post_init__(self) -> None:
        spec, catalog = self.spec, self.catalog
        self.dataset = catalog.datasets.get(spec.dataset)
        self.loss = catalog.losses.get(spec.loss).bind(self.dataset, self.device)
        self.loss_plugin = catalog.losses.plugin_of(spec.loss)
        self.factory = catalog.models.get(spec.model)
        self.metrics = [catalog.metrics.get(name) for name in catalog.metrics.names()]
        data = load_data(self.dataset)
        self.train_x = data.x.to(self.device)
        self.real, self.reference = evaluation_sets(data, spec)

    # -- building -------------------------------------------------------------------------------------------
    def build(self) -> GAN | VAE:
        spec = self.spec
        torch.manual_seed(seeding.init_seed(spec.seed, spec.model, spec.dataset))
        model = self.factory.build(self.dataset.spec)
        if model.family != self.loss.family:
            raise LossbenchError(f"model {spec.model!r} built a {model.family} for a {self.loss.family} loss")
        for module in (
            (model.generator, model.discriminator) if isinstance(model, GAN) else (model.encoder, model.decoder)
        ):
            module.to(self.device).train()
        torch.manual_seed(seeding.loss_seed(spec.seed, spec.loss, spec.model, spec.dataset))
        return model

    def check_model(self, model: GAN | VAE) -> None:
        """Raise, naming the model's plugin, when ``model`` does not map a batch of this dataset to the shapes the
        harness expects (``contracts.check_shapes``)."""
        spec = self.spec
        check_shapes(
            model,
            self.train_x[: min(spec.batch_size, len(self.train_x))],
            tuple(self.dataset.spec.shape),
            spec.model,
            self.catalog.models.plugin_of(spec.model),
        )

    def noise(self, stream: str) -> torch.Generator:
        spec = self.spec
        return seeding.make_generator(seeding.noise_seed(spec.seed, spec.model, spec.dataset, stream), self.device)

    # -- evaluation -----------------------------------------------------------------------------------------
    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(HISTORY_COLUMNS))

    def evaluate(
        self, model: GAN | VAE, final: bool, diverged_at: int | None = None
    ) -> tuple[dict, dict, dict, Samples]:
        started = time.perf_counter()
        metrics = self.metrics if final else [m for m in self.metrics if getattr(m, "curve", False)]
        outcome, fake = evaluate_model(
            self.evaluated(model),
            self.spec,
            self.dataset,
            metrics,
            self.real,
            self.reference,
            self.device,
            final=final,
            history=self.history_frame(),
            curves=pd.DataFrame(self.curve_rows, columns=["step", "key", "value"]),
            diverged_at=diverged_at,
            spaces=catalog_spaces(self.catalog),
            extra_spaces=chosen_spaces(),
        )
        self.eval_seconds += time.perf_counter() - started
        return outcome.values, outcome.texts, outcome.errors, fake

    def evaluated(self, model: GAN | VAE) -> GAN | VAE:
        """The model whose samples are scored: with a generator average (``Recipe.ema_decay``), the average."""
        if self.average is None or not isinstance(model, GAN):
            return model
        return GAN(self.average, model.discriminator, model.latent_dim)

    def light_evaluation(self, model: GAN | VAE) -> None:
        values, _texts, _errors, _fake = self.evaluate(model, final=False)
        self.curve_rows.extend((self.step, key, value) for key, value in values.items())
        self.send_live(final=False)

    def send_live(self, final: bool, **outcome: Any) -> None:
        """Hand what was logged since the last call to the ``run_logged`` hook (at light evaluations and at the
        end, never per step); its time counts as evaluation time."""
        if self.catalog.live is None:
            return
        from lossbench.plugin import live

        started = time.perf_counter()
        rows = pd.DataFrame(self.rows[self.sent_rows :], columns=list(HISTORY_COLUMNS))
        curves = pd.DataFrame(self.curve_rows[self.sent_curves :], columns=["step", "key", "value"])
        self.sent_rows, self.sent_curves = len(self.rows), len(self.curve_rows)
        self.catalog.live(live.batch(self.spec, self.step, rows, curves, final, **outcome))
        self.eval_seconds += time.perf_counter() - started

    def log(self, **values: float | None) -> None:  # None: no value (a NaN in the history)
        values.setdefault("seconds", time.perf_counter() - self.train_started - self.eval_seconds)
        self.rows.append(tuple(values.get(column, math.nan) for column in HISTORY_COLUMNS))
        if self.progress is not None:
            self.progress(self.spec, self.step)

    # -- training -------------------------------------------------------------------------------------------
    def train_gan(self, model: GAN) -> None:
        spec, loss, device = self.spec, self.loss, self.device
        assert isinstance(loss, AdversarialLoss)
        G, D, latent = model.generator, model.discriminator, model.latent_dim
        recipe = loss.recipe
        opt_g = make_optimizer(recipe, G.parameters(), recipe.lr_g)
        opt_d = make_optimizer(recipe, D.parameters(), recipe.lr_d)
        batches = Batches(self.train_x, spec.batch_size, seeding.data_seed(spec.seed, spec.dataset))
        z_d, z_g = self.noise("discriminator"), self.noise("generator")
        batch = batches.batch_size
        needs_real = loss.generator_needs_real
        if recipe.ema_decay is not None:
            self.average = copy.deepcopy(G).requires_grad_(False)
        for step in range(1, spec.steps + 1):
            self.step = step
            logging_now = step % spec.log_every == 0 or step == 1
            n_critic = recipe.critic_steps(step)
            for critic_step in range(n_critic):
                real = batches.next()
                z = torch.randn((batch, latent), generator=z_d, device=device)
                with torch.no_grad():
                    fake = G(z)
                real_scores, fake_scores = D(real), D(fake)
                d_loss = loss.discriminator_loss(real_scores, fake_scores)
                penalty = loss.penalty(D, real, fake)
                total = d_loss if penalty is None else d_loss + penalty
                if step == 1 and critic_step == 0:
                    _check_scalar(d_loss, spec.loss, self.loss_plugin, "discriminator_loss")
                    if penalty is not None:
                        _check_scalar(penalty, spec.loss, self.loss_plugin, "penalty")
                opt_d.zero_grad(set_to_none=True)
                total.backward()
                d_value = total.item()
                if not math.isfinite(d_value):
                    self.log(step=step, d_loss=d_value)
                    raise Diverged(step, "discriminator loss")
                grad_norm_d = _grad_norm(D) if logging_now and critic_step == n_critic - 1 else math.nan
                opt_d.step()
                loss.after_discriminator_step(D)
            if needs_real:
                with torch.no_grad():
                    real_scores = D(real)
            z = torch.randn((batch, latent), generator=z_g, device=device)
            fake_scores_g = D(G(z))
            g_loss = loss.generator_loss(fake_scores_g, real_scores.detach())
            if step == 1:
                _check_scalar(g_loss, spec.loss, self.loss_plugin, "generator_loss")
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            g_value = g_loss.item()
            if not math.isfinite(g_value):
                self.log(step=step, d_loss=d_value, g_loss=g_value)
                raise Diverged(step, "generator loss")
            if logging_now:
                self.log_gan(step, d_loss, penalty, g_value, real_scores, fake_scores, _grad_norm(G), grad_norm_d)
            opt_g.step()
            if self.average is not None and recipe.ema_decay is not None:
                update_average(self.average, G, recipe.ema_decay)
            if step % spec.eval_every == 0 and step < spec.steps:
                self.light_evaluation(model)

    def log_gan(self, step, d_loss, penalty, g_value, real_scores, fake_scores, grad_norm_g, grad_norm_d) -> None:
        loss = self.loss
        assert isinstance(loss, AdversarialLoss)  # a GAN's run: the registry paired it with an adversarial loss
        with torch.no_grad():
            real_scores, fake_scores = real_scores.detach().float(), fake_scores.detach().float()
            score_real, score_fake = real_scores.mean().item(), fake_scores.mean().item()
            if loss.scores_are_logits:  # the loss's own probabilities (relativistic ones differ)
                p_real, p_fake = loss.discriminator_probabilities(real_scores, fake_scores)
                d_real, d_fake = p_real.mean().item(), p_fake.mean().item()
                accuracy = 0.5 * ((p_real > 0.5).float().mean() + (p_fake < 0.5).float().mean()).item()
            else:  # critic values: no probabilities; accuracy against the midpoint of the two means
                threshold = (score_real + score_fake) / 2
                d_real = d_fake = math.nan
                accuracy = (
                    0.5 * ((real_scores > threshold).float().mean() + (fake_scores < threshold).float().mean()).item()
                )
        self.log(
            step=step,
            d_loss=d_loss.item(),
            g_loss=g_value,
            penalty=penalty.item() if penalty is not None else math.nan,
            d_real=d_real,
            d_fake=d_fake,
            d_accuracy=accuracy,
            score_real=score_real,
            score_fake=score_fake,
            grad_norm_g=grad_norm_g,
            grad_norm_d=grad_norm_d,
        )

    def train_vae(self, model: VAE) -> None:
        spec, loss, device = self.spec, self.loss, self.device
        assert isinstance(loss, VAELoss)
        encoder, decoder = model.encoder, model.decoder
        params = list(encoder.parameters()) + list(decoder.parameters())
        optimizer = make_optimizer(loss.recipe, params, loss.recipe.lr_g)
        batches = Batches(self.train_x, spec.batch_size, seeding.data_seed(spec.seed, spec.dataset))
        z_noise = self.noise("generator")
        for step in range(1, spec.steps + 1):
            self.step = step
            x = batches.next()
            mu, logvar = encoder(x)
            eps = torch.randn(mu.shape, generator=z_noise, device=device)
            reconstruction = decoder(mu + torch.exp(0.5 * logvar) * eps)
            value = loss.loss(x, reconstruction, mu, logvar)
            if step == 1:
                _check_scalar(value, spec.loss, self.loss_plugin, "loss")
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            loss_value = value.item()
            if not math.isfinite(loss_value):
                self.log(step=step, g_loss=loss_value)
                raise Diverged(step, "VAE loss")
            if step % spec.log_every == 0 or step == 1:
                norm = float(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
                self.log(step=step, g_loss=loss_value, grad_norm_g=norm)
            optimizer.step()
            if step % spec.eval_every == 0 and step < spec.steps:
                self.light_evaluation(model)


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model`` for parameters; buffers are copied (BatchNorm stats)."""
    for mean, current in zip(average.parameters(), model.parameters()):
        mean.lerp_(current, 1.0 - decay)
    for kept, buffer in zip(average.buffers(), model.buffers()):
        kept.copy_(buffer)


def run_facts(run: _Run) -> dict[str, str]:
    """Text facts stored with every run: each metric's declared key facts (direction, label, unit, headline rank;
    so that tables and reports rebuilt without the plugin rank and label right) and the feature space a loss trains
    in, when it has one."""

    facts = facts_texts(run.metrics)
    space = getattr(run.loss, "feature_space", None)
    if isinstance(space, str):
        facts["loss_feature_space"] = space
    return facts


def environment_facts(device: torch.device, determinism: dict) -> dict:
    """Facts stored with each run so that a reader can tell how it was produced."""
    facts = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        **determinism,
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def _keep_samples(fake: Samples, kind: str) -> np.ndarray:
    return fake.x[: SAMPLES_KEPT.get(kind, 64)].cpu().numpy().astype(np.float32)


def train_run(spec: RunSpec, catalog: Catalog, progress: ProgressCallback | None = None) -> RunResult:
    """Train and score one run. Divergence is a result (status "diverged"); errors propagate to ``run_safely``."""
    device = resolve_device(spec.device)
    determinism = seeding.enable_determinism(device)
    run = _Run(spec, catalog, device, progress)
    facts = run_facts(run)
    model = run.build()
    run.check_model(model)
    run.train_started = time.perf_counter()
    status, reason, failed_step = "ok", "", None
    try:
        if isinstance(model, GAN):
            run.train_gan(model)
        else:
            run.train_vae(model)
    except Diverged as exc:
        status, reason, failed_step = "diverged", str(exc), exc.step
    except Exception as exc:
        exc.lossbench_step = run.step  # type: ignore[attr-defined]  # where it failed, for the record
        run.send_live(final=True, status="failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    train_seconds = time.perf_counter() - run.train_started - run.eval_seconds
    environment = {**environment_facts(device, determinism), "engine": "sequential"}  # the stacked one: stacked.py
    return finish_run(run, model, status, reason, failed_step, train_seconds, facts, environment)


def finish_run(
    run: _Run,
    model: GAN | VAE,
    status: str,
    reason: str,
    failed_step: int | None,
    train_seconds: float,
    facts: dict[str, str],
    environment: dict,
) -> RunResult:
    """A trained run's final scoring and result, shared by this engine and the stacked one (training.stacked)."""
    samples = None
    if status == "ok":
        values, texts, errors, fake = run.evaluate(model, final=True)
        samples = _keep_samples(fake, run.dataset.spec.kind)
    else:  # a diverged model's samples are not finite: score only what the history says
        run.metrics = [m for m in run.metrics if not getattr(m, "needs_samples", True)]
        values, texts, errors, _fake = run.evaluate(model, final=True, diverged_at=failed_step)
    texts.update(facts)
    role, checkpoint = checkpoint_bytes(run.evaluated(model))  # the network that was scored (the average, if any)
    if errors:
        texts.update({f"{name}_error": message for name, message in errors.items()})
        reason = "; ".join(
            [reason] * bool(reason)
            + [
                f"metric {name!r} (plugin {_plugin_of(run.catalog, name)!r}) failed: {msg}"
                for name, msg in errors.items()
            ]
        )
    run.send_live(final=True, status=status, reason=reason, metrics=values)
    return RunResult(
        spec=run.spec,
        status=status,
        reason=reason,
        failed_step=failed_step,
        history=run.history_frame(),
        curves=pd.DataFrame(run.curve_rows, columns=["step", "key", "value"]),
        metrics=values,
        texts=texts,
        samples=samples,
        train_seconds=train_seconds,
        eval_seconds=run.eval_seconds,
        environment=environment,
        checkpoint=checkpoint,
        checkpoint_role=role,
    )


def _plugin_of(catalog: Catalog, metric: str) -> str:
    metric = metric.split("@")[0]  # "fid@space": the fid metric, computed in another feature space
    return catalog.metrics.plugin_of(metric) if metric in catalog.metrics else "?"


def plugin_objects(spec: RunSpec, catalog: Catalog) -> dict[str, tuple[object, str]]:
    """The registered objects a run executes code of, by how a failure names them, with their plugins."""
    objects: dict[str, tuple[object, str]] = {}
    for kind, name in (("losses", spec.loss), ("models", spec.model), ("datasets", spec.dataset)):
        registry = catalog.registry(kind)
        if name in registry:
            objects[f"{SINGULAR[kind]} {name!r}"] = (registry.get(name), registry.plugin_of(name))
    for name in catalog.metrics.names():
        objects[f"metric {name!r}"] = (catalog.metrics.get(name), catalog.metrics.plugin_of(name))
    return objects


def run_safely(spec: RunSpec, catalog: Catalog, progress: ProgressCallback | None = None) -> RunResult:
    """``train_run``, with any exception turned into a failed result carrying its reason: the grid goes on.

    Every executor calls this, and it pins the run's threads to ``seeding.run_threads()``: the result then does
    not depend on where the run executes (serial, a worker process, a Ray task).
    """
    try:
        with seeding.pinned_threads(seeding.run_threads()):
            return train_run(spec, catalog, progress)
    except Exception as exc:
        reason = failure_reason(exc, plugin_objects(spec, catalog))
        return RunResult(spec=spec, status="failed", reason=reason, failed_step=getattr(exc, "lossbench_step", None))
