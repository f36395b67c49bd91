"""Conformance checks for plugin objects: does a loss, model, dataset or metric keep the contract of ``lossbench.api``?

A plugin author calls these from their own tests (``from lossbench.testing import check_loss``). Each check runs
the object on small, seeded, random inputs -- the way the harness will -- and raises ``ConformanceError`` (an
``AssertionError``, so pytest shows it as a failure) whose message names the object and the problem. They catch
the mistakes that otherwise surface many steps into a grid, or never: a loss that returns a vector, a NaN, or a
value detached from the scores (the player then never learns, silently).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import pandas as pd
import torch
from torch import Tensor, nn

from lossbench.api import (
    DIRECTIONS,
    GAN,
    VAE,
    AdversarialLoss,
    Dataset,
    DataSpec,
    FeatureSpace,
    Metric,
    ModeAssignment,
    ModelFactory,
    Samples,
    VAELoss,
)
from lossbench.errors import DataUnavailable
from lossbench.plugin.kinds import KINDS, SINGULAR
from lossbench.plugin.metric_values import MetricValueError, split_values
from lossbench.plugin.registry import RegistrationError, Registry

EXTREME_SCORE = 30.0  # |score| at which a loss written as log(sigmoid(s)) overflows in float32
DEFAULT_SPECS = (DataSpec((2,), "points", None), DataSpec((1, 8, 8), "image", None))
IMAGE_TOLERANCE = 1e-5


class ConformanceError(AssertionError):
    """A plugin object breaks the plugin contract; the message names the object and what is wrong."""


def _fail(kind: str, obj: object, problem: str) -> NoReturn:
    raise ConformanceError(f"{SINGULAR[kind]} {getattr(obj, 'name', type(obj).__name__)!r}: {problem}")


def _check_registrable(kind: str, obj: object) -> None:
    """The registry's own validation (slug name, required methods, family): what ``register(obj)`` would do."""
    try:
        Registry[Any](kind).add(obj, "lossbench.testing")
    except RegistrationError as exc:
        raise ConformanceError(str(exc)) from None


def _first_supported(kind: str, obj: Any, spec: DataSpec | None) -> DataSpec:
    if spec is not None:
        if not obj.supports(spec):
            _fail(kind, obj, f"supports({spec}) is False; pass a spec it supports")
        return spec
    for candidate in DEFAULT_SPECS:
        if obj.supports(candidate):
            return candidate
    _fail(kind, obj, "supports none of the default specs (2-d points, 1x8x8 images); pass spec=DataSpec(...)")
    raise AssertionError("unreachable")


def data_like(spec: DataSpec, n: int, generator: torch.Generator) -> Tensor:
    """Random samples of ``spec``'s shape: standard normal points, or images squashed into [-1, 1]."""
    x = torch.randn((n, *spec.shape), generator=generator)
    return torch.tanh(x) if spec.kind == "image" else x


class TinyCritic(nn.Module):
    """A real, smooth, two-layer critic ``x -> [B]`` for checking penalties (they differentiate it twice)."""

    def __init__(self, spec: DataSpec, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(spec.shape), width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).reshape(x.shape[0])


# -- losses --------------------------------------------------------------------------------------------------------


def _scalar(kind: str, obj: object, value: object, what: str, where: str) -> Tensor:
    if not isinstance(value, Tensor):
        _fail(kind, obj, f"{what} returned {type(value).__name__}; expected a scalar tensor")
    assert isinstance(value, Tensor)
    if value.dim() != 0:
        _fail(
            kind,
            obj,
            f"{what} returned a tensor of shape {list(value.shape)}; expected a scalar "
            "(reduce over the batch, e.g. with .mean())",
        )
    if not value.is_floating_point():
        _fail(kind, obj, f"{what} returned a {value.dtype} tensor; expected a floating-point scalar")
    if not bool(torch.isfinite(value)):
        _fail(kind, obj, f"{what} returned {value.item()} (not finite) on {where}")
    return value


def _gradients(
    kind: str, obj: object, value: Tensor, inputs: dict[str, Tensor], what: str, where: str, nonzero: bool = True
) -> None:
    """``value`` must depend differentiably on every input: gradient present, finite and (by default) non-zero."""
    if not value.requires_grad:
        _fail(
            kind,
            obj,
            f"{what} has no gradient with respect to {', '.join(inputs)} (is it detached, or built "
            "with .item(), numpy or torch.no_grad()?)",
        )
    grads = torch.autograd.grad(value, list(inputs.values()), allow_unused=True, retain_graph=True)
    for name, grad in zip(inputs, grads):
        if grad is None:
            _fail(kind, obj, f"{what} has no gradient with respect to {name}")
        elif not bool(torch.isfinite(grad).all()):
            _fail(kind, obj, f"{what} has a non-finite gradient with respect to {name} on {where}")
        elif nonzero and not bool((grad != 0).any()):
            _fail(
                kind,
                obj,
                f"{what} has a zero gradient with respect to {name} on {where}, so that player would never learn",
            )


def _check_adversarial(loss: AdversarialLoss, spec: DataSpec, batch_size: int, generator: torch.Generator) -> None:
    kind = "losses"
    where = "random scores"
    real = torch.randn(batch_size, generator=generator).requires_grad_(True)
    fake = torch.randn(batch_size, generator=generator).requires_grad_(True)
    d_loss = _scalar(kind, loss, loss.discriminator_loss(real, fake), "discriminator_loss", where)
    _gradients(kind, loss, d_loss, {"real_scores": real, "fake_scores": fake}, "discriminator_loss", where)

    fake_g = torch.randn(batch_size, generator=generator).requires_grad_(True)
    g_loss = _scalar(kind, loss, loss.generator_loss(fake_g, real.detach()), "generator_loss", where)
    _gradients(kind, loss, g_loss, {"fake_scores": fake_g}, "generator_loss", where)

    for sign in (1.0, -1.0):  # a confident discriminator, right and wrong: where naive log(sigmoid) overflows
        extreme = f"scores of magnitude {EXTREME_SCORE:g} (use F.softplus or F.logsigmoid, not log(sigmoid(s)))"
        high = torch.full((batch_size,), sign * EXTREME_SCORE, requires_grad=True)
        low = torch.full((batch_size,), -sign * EXTREME_SCORE, requires_grad=True)
        d_value = _scalar(kind, loss, loss.discriminator_loss(high, low), "discriminator_loss", extreme)
        _gradients(
            kind, loss, d_value, {"real_scores": high, "fake_scores": low}, "discriminator_loss", extreme, nonzero=False
        )
        g_value = _scalar(kind, loss, loss.generator_loss(low, high.detach()), "generator_loss", extreme)
        _gradients(kind, loss, g_value, {"fake_scores": low}, "generator_loss", extreme, nonzero=False)

    critic = TinyCritic(spec)
    real_x, fake_x = data_like(spec, batch_size, generator), data_like(spec, batch_size, generator)
    penalty = loss.penalty(critic, real_x, fake_x)
    if penalty is not None:
        where = "a small random critic"
        penalty = _scalar(kind, loss, penalty, "penalty", where)
        if not penalty.requires_grad:
            _fail(
                kind,
                loss,
                "penalty has no gradient with respect to the critic's parameters (compute it from "
                "critic(x), with create_graph=True when it differentiates the critic)",
            )
        params = list(critic.parameters())
        grads = torch.autograd.grad(penalty, params, allow_unused=True)
        if all(grad is None for grad in grads):
            _fail(kind, loss, "penalty has no gradient with respect to the critic's parameters")
        if not all(bool(torch.isfinite(grad).all()) for grad in grads if grad is not None):
            _fail(kind, loss, f"penalty has a non-finite gradient on {where}")
    loss.after_discriminator_step(critic)


def _check_vae(loss: VAELoss, spec: DataSpec, batch_size: int, generator: torch.Generator, latent: int = 4) -> None:
    kind = "losses"
    where = "random inputs"
    x = data_like(spec, batch_size, generator)
    raw = torch.randn((batch_size, *spec.shape), generator=generator).requires_grad_(True)
    reconstruction = torch.tanh(raw) if spec.kind == "image" else raw
    mu = torch.randn((batch_size, latent), generator=generator).requires_grad_(True)
    logvar = (0.1 * torch.randn((batch_size, latent), generator=generator)).requires_grad_(True)
    value = _scalar(kind, loss, loss.loss(x, reconstruction, mu, logvar), "loss", where)
    _gradients(kind, loss, value, {"reconstruction": raw, "mu": mu, "logvar": logvar}, "loss", where)


def check_loss(
    loss: AdversarialLoss | VAELoss,
    *,
    dataset: Dataset | None = None,
    spec: DataSpec | None = None,
    batch_size: int = 16,
    seed: int = 0,
) -> None:
    """Check a loss the way the harness uses it; raises ``ConformanceError`` naming the loss and the problem.

    GAN losses: both losses are finite scalars on random scores, the discriminator's with a gradient with respect
    to both real and fake scores, the generator's with respect to the fake scores; they stay finite for a very
    confident discriminator (scores of +-30); ``penalty`` (if any) is a finite scalar differentiable with
    respect to a small real critic's parameters. VAE losses: a finite scalar with gradients with respect to the
    reconstruction, ``mu`` and ``logvar``. With ``dataset`` the loss is first bound to it (``loss.bind``).
    """
    _check_registrable("losses", loss)
    if dataset is not None:
        spec = dataset.spec
        loss = loss.bind(dataset, torch.device("cpu"))
    spec = _first_supported("losses", loss, spec)
    generator = torch.Generator().manual_seed(seed)
    if isinstance(loss, AdversarialLoss):
        _check_adversarial(loss, spec, batch_size, generator)
    else:
        _check_vae(loss, spec, batch_size, generator)


# -- models --------------------------------------------------------------------------------------------------------


def _check_output(factory: ModelFactory, x: object, what: str, shape: tuple[int, ...], image: bool) -> Tensor:
    if not isinstance(x, Tensor):
        _fail("models", factory, f"{what} returned {type(x).__name__}; expected a tensor of shape {list(shape)}")
    assert isinstance(x, Tensor)
    if tuple(x.shape) != shape:
        _fail("models", factory, f"{what} returned shape {list(x.shape)}; expected {list(shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        _fail("models", factory, f"{what} returned non-finite values")
    low, high = float(x.detach().min()), float(x.detach().max())
    if image and (low < -1 - IMAGE_TOLERANCE or high > 1 + IMAGE_TOLERANCE):
        _fail(
            "models",
            factory,
            f"{what} returned values in [{low:.3g}, {high:.3g}]; images must be in [-1, 1] (end with tanh)",
        )
    return x


def _modules(model: GAN | VAE) -> dict[str, nn.Module]:
    if isinstance(model, GAN):
        return {"generator": model.generator, "discriminator": model.discriminator}
    return {"encoder": model.encoder, "decoder": model.decoder}


def _reaches(output: Tensor, module: nn.Module) -> bool:
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(output, params, allow_unused=True, retain_graph=True) if params else []
    return any(grad is not None for grad in grads)


def check_model(
    factory: ModelFactory, spec: DataSpec | None = None, *, batch_size: int = 8, seed: int = 0
) -> GAN | VAE:
    """Build the model for ``spec`` and check shapes, ranges, gradients and reproducibility; returns the model.

    A GAN's generator maps ``[B, latent_dim]`` to ``[B, *spec.shape]`` (images in [-1, 1]) and its discriminator
    returns ``[B]``; a VAE's encoder returns ``(mu, logvar)``, each ``[B, latent_dim]``, and its decoder samples of
    the data's shape. ``build`` must draw only from torch's global generator (the harness seeds it, so that every
    loss starts from the same weights) and must return fresh modules.
    """
    kind = "models"
    _check_registrable(kind, factory)
    spec = _first_supported(kind, factory, spec)
    torch.manual_seed(seed)
    model = factory.build(spec)
    if not isinstance(model, (GAN, VAE)):
        _fail(kind, factory, f"build() returned {type(model).__name__}; expected lossbench.GAN or lossbench.VAE")
    if model.family != factory.family:
        _fail(kind, factory, f"has family {factory.family!r} but build() returned a {model.family}")
    for role, module in _modules(model).items():
        if not isinstance(module, nn.Module):
            _fail(kind, factory, f"{role} is a {type(module).__name__}; expected a torch.nn.Module")
    if not (isinstance(model.latent_dim, int) and model.latent_dim > 0):
        _fail(kind, factory, f"latent_dim is {model.latent_dim!r}; expected a positive int")

    torch.manual_seed(seed)
    again = factory.build(spec)
    first_state = {role: m.state_dict() for role, m in _modules(model).items()}
    for role, module in _modules(again).items():
        state = module.state_dict()
        if state.keys() != first_state[role].keys() or not all(
            torch.equal(state[key], first_state[role][key]) for key in state
        ):
            _fail(
                kind,
                factory,
                f"build() is not reproducible: two builds after torch.manual_seed({seed}) give different "
                f"{role} weights (draw only from torch's global generator)",
            )
    shared = {id(p) for m in _modules(model).values() for p in m.parameters()} & {
        id(p) for m in _modules(again).values() for p in m.parameters()
    }
    if shared:
        _fail(
            kind, factory, "build() returned modules that share parameters with an earlier build; return fresh modules"
        )

    generator = torch.Generator().manual_seed(seed)
    image = spec.kind == "image"
    shape = (batch_size, *spec.shape)
    for module in _modules(model).values():
        module.train()
    if isinstance(model, GAN):
        z = torch.randn((batch_size, model.latent_dim), generator=generator)
        x = _check_output(factory, model.generator(z), "generator(z)", shape, image)
        scores = _check_output(factory, model.discriminator(x), "discriminator(x)", (batch_size,), False)
        _check_output(
            factory,
            model.discriminator(data_like(spec, batch_size, generator)),
            "discriminator(real)",
            (batch_size,),
            False,
        )
        total = scores.sum()
        for role in ("generator", "discriminator"):
            if not _reaches(total, getattr(model, role)):
                _fail(
                    kind,
                    factory,
                    f"discriminator(generator(z)) has no gradient with respect to the {role}'s parameters",
                )
    else:
        x = data_like(spec, batch_size, generator)
        encoded = model.encoder(x)
        if not (isinstance(encoded, tuple) and len(encoded) == 2):
            _fail(kind, factory, f"encoder(x) returned {type(encoded).__name__}; expected a tuple (mu, logvar)")
        latent_shape = (batch_size, model.latent_dim)
        mu = _check_output(factory, encoded[0], "encoder(x)[0] (mu)", latent_shape, False)
        _check_output(factory, encoded[1], "encoder(x)[1] (logvar)", latent_shape, False)
        reconstruction = _check_output(factory, model.decoder(mu), "decoder(z)", shape, image)
        total = reconstruction.sum()
        for role in ("encoder", "decoder"):
            if not _reaches(total, getattr(model, role)):
                _fail(kind, factory, f"decoder(encoder(x)) has no gradient with respect to the {role}'s parameters")
    return model


# -- datasets ------------------------------------------------------------------------------------------------------


def check_dataset(dataset: Dataset, root: Any = None, *, n_check: int = 512) -> Samples:
    """Load the dataset and check its samples and mode assignment against its ``spec``; returns the samples.

    ``x`` is floating point of shape ``(N, *spec.shape)``, finite, images in [-1, 1]; ``y`` (if given) holds int64
    labels in ``[0, n_modes)``; ``load`` is deterministic; ``mode_of`` returns ``None`` or a ``ModeAssignment``
    of the right shapes and dtypes. Data that is not available raises ``DataUnavailable`` with its message.
    """
    kind = "datasets"
    _check_registrable(kind, dataset)
    spec = dataset.spec
    missing = dataset.availability(root)
    if missing:
        raise DataUnavailable(f"dataset {dataset.name!r}: {missing}")
    samples = dataset.load(root)
    if not isinstance(samples, Samples):
        _fail(kind, dataset, f"load() returned {type(samples).__name__}; expected lossbench.Samples")
    x, y = samples.x, samples.y
    if not (isinstance(x, Tensor) and x.is_floating_point()):
        _fail(kind, dataset, f"samples.x is {getattr(x, 'dtype', type(x).__name__)}; expected a float32 tensor")
    if tuple(x.shape[1:]) != tuple(spec.shape) or x.shape[0] < 2:
        _fail(
            kind,
            dataset,
            f"samples.x has shape {list(x.shape)}; expected (N, {', '.join(map(str, spec.shape))}) "
            "with N >= 2, as spec.shape declares",
        )
    if not bool(torch.isfinite(x).all()):
        _fail(kind, dataset, "samples.x has non-finite values")
    if spec.kind == "image" and (float(x.min()) < -1 - IMAGE_TOLERANCE or float(x.max()) > 1 + IMAGE_TOLERANCE):
        _fail(
            kind,
            dataset,
            f"image samples are in [{float(x.min()):.3g}, {float(x.max()):.3g}]; images must be scaled to [-1, 1]",
        )
    if y is not None:
        if not (isinstance(y, Tensor) and y.dtype == torch.int64 and tuple(y.shape) == (x.shape[0],)):
            _fail(
                kind,
                dataset,
                f"samples.y must be an int64 tensor of shape [{x.shape[0]}], not "
                f"{getattr(y, 'dtype', type(y).__name__)} {list(getattr(y, 'shape', []))}",
            )
        if spec.n_modes is not None and (int(y.min()) < 0 or int(y.max()) >= spec.n_modes):
            _fail(
                kind, dataset, f"samples.y has labels in [{int(y.min())}, {int(y.max())}]; expected [0, {spec.n_modes})"
            )
    again = dataset.load(root)
    if not (isinstance(again, Samples) and again.x.shape == x.shape and torch.equal(again.x, x)):
        _fail(kind, dataset, "load() is not deterministic: two loads differ (seed the generator of the data)")

    probe = x[:n_check]
    assignment = dataset.mode_of(probe)
    if assignment is not None:
        if not isinstance(assignment, ModeAssignment):
            _fail(kind, dataset, f"mode_of() returned {type(assignment).__name__}; expected ModeAssignment or None")
        if spec.n_modes is None:
            _fail(kind, dataset, "mode_of() assigns modes but spec.n_modes is None; declare the number of modes")
        n = probe.shape[0]
        mode, high = assignment.mode, assignment.high_quality
        if not (isinstance(mode, Tensor) and mode.dtype == torch.int64 and tuple(mode.shape) == (n,)):
            _fail(kind, dataset, f"mode_of(x).mode must be an int64 tensor of shape [{n}]")
        if not (isinstance(high, Tensor) and high.dtype == torch.bool and tuple(high.shape) == (n,)):
            _fail(kind, dataset, f"mode_of(x).high_quality must be a bool tensor of shape [{n}]")
        if int(mode.min()) < 0 or int(mode.max()) >= int(spec.n_modes or 0):
            _fail(
                kind,
                dataset,
                f"mode_of(x).mode has modes in [{int(mode.min())}, {int(mode.max())}]; expected [0, {spec.n_modes})",
            )
    return samples


# -- metrics -------------------------------------------------------------------------------------------------------


def builtin(kind: str, name: str) -> Any:
    """A built-in object by name, collected through the built-ins' own ``register_<kind>`` hooks."""
    from lossbench.plugin.loader import BUILTIN_MODULES

    found: list[Any] = []
    for module_name in BUILTIN_MODULES:
        hook = getattr(importlib.import_module(module_name), f"register_{kind}", None)
        if hook is not None:
            hook(found.append)
    for obj in found:
        if obj.name == name:
            return obj
    raise LookupError(f"no built-in {SINGULAR[kind]} called {name!r}")


def make_context(
    dataset: Dataset | None = None,
    *,
    fake: Samples | Tensor | None = None,
    n: int = 256,
    final: bool = True,
    seed: int = 0,
) -> Any:
    """An ``EvaluationContext`` like the harness builds: ``n`` real samples, a disjoint reference set, and ``fake``.

    ``dataset`` defaults to the built-in ``ring8``; ``fake`` defaults to other real samples plus a little noise
    (a good but imperfect generator). The history is a short, plausible training log of a smoke run.
    """
    from lossbench.plan.grid import RunSpec
    from lossbench.records import HISTORY_COLUMNS
    from lossbench.scoring.evaluate import EvaluationContext

    dataset = dataset if dataset is not None else builtin("datasets", "ring8")
    data = dataset.load(None)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    n = max(2, min(n, len(data) // 3))
    real, reference = data.subset(order[:n]), data.subset(order[n : 2 * n])
    if fake is None:
        other = data.subset(order[2 * n : 3 * n])
        x = other.x + 0.05 * torch.randn(other.x.shape, generator=generator)
        fake = Samples(x.clamp(-1, 1) if dataset.spec.kind == "image" else x)
    elif isinstance(fake, Tensor):
        fake = Samples(fake)
    steps = [1, 10, 20]
    history = pd.DataFrame(
        [
            dict(zip(HISTORY_COLUMNS, (step, 1.35, 0.7, math.nan, 0.52, 0.48, 0.55, 0.1, -0.1, 0.8, 1.2, 0.01 * step)))
            for step in steps
        ],
        columns=list(HISTORY_COLUMNS),
    )
    spec = RunSpec(
        loss="check",
        model="check",
        dataset=dataset.name,
        seed=seed,
        steps=steps[-1],
        batch_size=64,
        log_every=10,
        eval_every=20,
        eval_samples=n,
        final_samples=n,
        device="cpu",
        preset="smoke",
    )
    return EvaluationContext(
        real=real,
        fake=fake,
        dataset=dataset,
        spec=spec,
        history=history,
        reference=reference,
        final=final,
        curves=pd.DataFrame(columns=["step", "key", "value"]),
    )


def _check_values(metric: Metric, values: object, where: str) -> dict[str, Any]:
    """The engine's own rule (``plugin.metric_values``), failing with its message."""
    try:
        split_values(metric.name, values, f" on {where}")
    except MetricValueError as exc:
        _fail("metrics", metric, str(exc))
    assert isinstance(values, dict)
    return values


def check_metric(
    metric: Metric,
    dataset: Dataset | None = None,
    *,
    fake: Samples | Tensor | None = None,
    n: int = 256,
    allow_empty: bool = False,
) -> dict[str, Any]:
    """Compute the metric on a harness-like context and check its keys and values; returns the values.

    Keys are ``<name>`` or ``<name>_<part>``; values are numbers (NaN only where undefined) or ``str`` facts,
    under the engine's own rule (``lossbench.plugin.metric_values``: bools and tensors are rejected). ``better``
    maps keys the metric returns to "higher", "lower" or "none" (not ranked). A curve metric is also computed as
    during training (``final=False``, fewer samples). An empty result fails unless
    ``allow_empty`` (pass a ``dataset`` the metric applies to).
    """
    kind = "metrics"
    _check_registrable(kind, metric)
    ctx = make_context(dataset, fake=fake, n=n)
    where = f"dataset {ctx.dataset.name!r}"
    values = _check_values(metric, metric.compute(ctx), where)
    if not values and not allow_empty:
        _fail(kind, metric, f"returned no values on {where}; pass a dataset it applies to, or allow_empty=True")
    if values:
        _check_better(metric, values, where)
    if getattr(metric, "curve", False):
        light = make_context(dataset, fake=fake, n=max(2, n // 4), final=False)
        _check_values(metric, metric.compute(light), f"{where} during training (final=False)")
    return values


def _check_better(metric: Metric, values: dict[str, Any], where: str) -> None:
    """``better`` maps keys of the metric (``<name>`` or ``<name>_<part>``; some may be returned only in some
    contexts, e.g. ``kid_std`` with enough samples) to a known direction; a str fact has no direction."""
    kind = "metrics"
    better = getattr(metric, "better", {})
    if not isinstance(better, Mapping):
        _fail(kind, metric, f"better is {type(better).__name__}; expected a dict {{key: 'higher' | 'lower' | 'none'}}")
    for key, direction in better.items():
        if not isinstance(key, str) or not (key == metric.name or key.startswith(metric.name + "_")):
            _fail(
                kind,
                metric,
                f"better names key {key!r}; keys must be {metric.name!r} or start with {metric.name + '_'!r}",
            )
        if isinstance(values.get(key), str):
            _fail(kind, metric, f"better names key {key!r}, whose value is a str fact, not a number")
        if direction not in DIRECTIONS:
            _fail(
                kind,
                metric,
                f"better[{key!r}] is {direction!r}; expected one of {', '.join(repr(d) for d in DIRECTIONS)}",
            )


def check_feature_space(space: FeatureSpace, dataset: Dataset | None = None, *, n: int = 64) -> Tensor:
    """Build the space for ``dataset`` (default: the first built-in dataset it accepts) and extract features of
    ``n`` of its samples; checks registration, ``unavailable``, the output shape (``(n, width)``, finite), that
    equal inputs give equal features, and that a dataset it refuses is refused with a reason. Returns the features.
    """
    kind = "feature_spaces"
    _check_registrable(kind, space)
    missing = space.unavailable()
    if missing:
        _fail(kind, space, f"cannot be built here: {missing}")
    if dataset is None:
        accepted = [builtin("datasets", name) for name in ("digits", "ring8")]
        accepted = [d for d in accepted if space.refuses(d.spec) is None]
        if not accepted:
            _fail(kind, space, "refuses every built-in dataset (digits, ring8); pass a dataset it accepts")
        dataset = accepted[0]
    elif space.refuses(dataset.spec):
        _fail(kind, space, f"refuses dataset {dataset.name!r}: {space.refuses(dataset.spec)}")
    network = space.build(dataset, torch.device("cpu"))
    if network is None:
        _fail(kind, space, f"build() returned None for dataset {dataset.name!r}, which it does not refuse")
    x = dataset.load(None).x[:n].float()
    with torch.no_grad():
        features = network.features(x)
        again = network.features(x.clone())
    if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[0] != len(x):
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        _fail(kind, space, f"features of {len(x)} samples have shape {shape}; expected ({len(x)}, width)")
    if space.width is not None and features.shape[1] != space.width:
        _fail(kind, space, f"declares width {space.width} but returned {features.shape[1]} features per sample")
    if not torch.isfinite(features).all():
        _fail(kind, space, "returned non-finite features")
    if not torch.equal(features, again):
        _fail(kind, space, "returned different features for the same samples (put the network in eval mode)")
    if not isinstance(getattr(network, "name", None), str) or not network.name:
        _fail(kind, space, "its network has no name (stored beside every value computed in the space)")
    return features


CHECKS: dict[str, Callable[..., Any]] = {kind.name: globals()[kind.check] for kind in KINDS}
"""Each kind's conformance check, by the kind's name (``Kind.check`` names it)."""
