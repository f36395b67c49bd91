"""Plugin blame: shapes checked before the first step, and errors raised in a plugin's code named after it.

A model that returns the wrong shape would otherwise fail deep inside torch with a message that names no model
(or, worse, train: a discriminator returning ``[B, 1]`` broadcasts silently in most losses). The check runs once,
on the run's first batch, with the networks in eval mode, under ``no_grad`` and with the random state restored,
so that it changes nothing a run computes.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch
from torch import Tensor

from lossbench.api import GAN, VAE
from lossbench.errors import LossbenchError

SHARED_PACKAGES = ("lossbench", "lossbench_local_plugins")  # packages that hold more than one plugin


class ModelContractError(LossbenchError):
    """A model's networks return tensors of the wrong shape: names the model and the plugin."""


def _shape(value: Any) -> str:
    return f"shape {list(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"


def _expect(value: Any, shape: tuple[int, ...], what: str, model: str, plugin: str) -> None:
    if not isinstance(value, Tensor) or tuple(value.shape) != shape:
        raise ModelContractError(
            f"model {model!r} (plugin {plugin!r}): the {what} returned {_shape(value)}; expected shape {list(shape)}"
        )


def check_shapes(model: GAN | VAE, real: Tensor, data_shape: tuple[int, ...], name: str, plugin: str) -> None:
    """Check every network of ``model`` on the first batch ``real``: the generator/decoder gives samples of the
    data's shape, the discriminator one score per sample ``[B]``, the encoder ``(mu, logvar)`` of ``[B, latent]``."""
    n = real.shape[0]
    networks = [model.generator, model.discriminator] if isinstance(model, GAN) else [model.encoder, model.decoder]
    modes = [network.training for network in networks]
    devices = [real.device] if real.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            for network in networks:
                network.eval()
            z = torch.zeros((n, model.latent_dim), device=real.device)
            if isinstance(model, GAN):
                fake = model.generator(z)
                _expect(fake, (n, *data_shape), "generator", name, plugin)
                _expect(model.discriminator(real), (n,), "discriminator", name, plugin)
            else:
                encoded = model.encoder(real)
                if not (isinstance(encoded, (tuple, list)) and len(encoded) == 2):
                    raise ModelContractError(
                        f"model {name!r} (plugin {plugin!r}): the encoder returned "
                        f"{_shape(encoded)}; expected a pair (mu, logvar)"
                    )
                for part, value in zip(("mu", "logvar"), encoded):
                    _expect(value, (n, model.latent_dim), f"encoder's {part}", name, plugin)
                _expect(model.decoder(z), (n, *data_shape), "decoder", name, plugin)
    finally:
        for network, mode in zip(networks, modes):
            network.train(mode)


def _owner(module_name: str, owners: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """The (what, plugin) whose code lives in ``module_name``: the object's own module, or its package when the
    package belongs to one plugin."""
    if module_name in owners:
        return owners[module_name]
    for owner_module, owner in owners.items():
        package = owner_module.partition(".")[0]
        if package not in SHARED_PACKAGES and module_name.startswith(package + "."):
            return owner
    return None


def blame(exc: BaseException, objects: dict[str, tuple[object, str]]) -> str | None:
    """``"loss 'x' (plugin 'p')"`` for the innermost frame of ``exc``'s traceback that runs code of one of
    ``objects`` (``{"loss 'x'": (obj, plugin)}``), or None when no plugin code was on the stack."""
    owners: dict[str, tuple[str, str]] = {}
    for what, (obj, plugin) in objects.items():
        owners.setdefault(type(obj).__module__, (what, plugin))
    frames: list[TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    for frame in reversed(frames):
        owner = _owner(frame.tb_frame.f_globals.get("__name__", ""), owners)
        if owner is not None:
            return f"{owner[0]} (plugin {owner[1]!r})"
    return None


def failure_reason(exc: BaseException, objects: dict[str, tuple[object, str]]) -> str:
    """The stored reason of a failed run: lossbench's own message, or the exception named after the plugin whose
    code raised it."""
    if isinstance(exc, LossbenchError):
        return str(exc)
    message = f"{type(exc).__name__}: {exc}"
    culprit = blame(exc, objects)
    return f"{culprit}: {message}" if culprit else message
