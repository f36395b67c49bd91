"""Paired seeds and determinism switches.

Seed *s* of a grid must give every loss the same initial weights (for a given model and dataset), the same data
order and the same latent noise, so that losses are compared on common random numbers. Each random stream is
therefore seeded from a hash of the seed and of exactly the names it may depend on: the loss's name enters only
the stream its own penalty draws from.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch

CUBLAS_WORKSPACE = ":4096:8"


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, stable across processes and Python versions (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def init_seed(seed: int, model: str, dataset: str) -> int:
    """Seed of the model's initial weights: independent of the loss, so all losses start alike."""
    return derive_seed("init", seed, model, dataset)


def data_seed(seed: int, dataset: str) -> int:
    """Seed of the order in which training batches are drawn."""
    return derive_seed("data", seed, dataset)


def noise_seed(seed: int, model: str, dataset: str, stream: str) -> int:
    """Seed of a latent-noise stream ("discriminator", "generator", "eval")."""
    return derive_seed("noise", stream, seed, model, dataset)


def loss_seed(seed: int, loss: str, model: str, dataset: str) -> int:
    """Seed of the loss's own randomness (interpolates of a gradient penalty, DRAGAN's perturbations)."""
    return derive_seed("loss", seed, loss, model, dataset)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def enable_determinism(device: torch.device) -> dict[str, Any]:
    """Switch on deterministic algorithms for ``device`` and return the settings, to be stored with the run."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=False)
    settings: dict[str, Any] = {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        settings["cudnn_deterministic"] = torch.backends.cudnn.deterministic
        settings["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        settings["cublas_workspace_config"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    return settings
