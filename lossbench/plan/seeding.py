"""Paired seeds and determinism switches.

Seed *s* of a grid must give every loss the same initial weights (for a given model and dataset), the same data
order and the same latent noise, so that losses are compared on common random numbers. Each random stream is
therefore seeded from a hash of the seed and of exactly the names it may depend on: the loss's name enters only
the stream its own penalty draws from.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: derive_seed serves torch-free tables too
    import torch

CUBLAS_WORKSPACE = ":4096:8"
RUN_THREADS_ENV = "LOSSBENCH_RUN_THREADS"
DEFAULT_RUN_THREADS = 1


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
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def prepare_process() -> None:
    """Settings that must precede the process's first CUDA call: cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` when it
    creates its handle, so drivers and workers call this before anything touches the GPU. A value the user set
    is kept."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def run_threads() -> int:
    """Intra-op threads for every run, whatever the executor: ``$LOSSBENCH_RUN_THREADS``, default 1.

    The thread count decides how MKL/oneDNN/OpenBLAS split their float reductions, so it is part of what makes a
    result bitwise reproducible; deriving it from the executor (cores // workers) would make serial, ``--workers``
    and Ray runs of one RunSpec differ. One thread is also the fast choice for the small models of a grid
    (two one-thread runs side by side beat one two-thread run), so cores are used by running
    runs side by side, not by threads. Raise it for a single big model on a many-core machine; the value is
    recorded with every run.
    """
    value = os.environ.get(RUN_THREADS_ENV, "").strip()
    if not value:
        return DEFAULT_RUN_THREADS
    from lossbench.plan.grid import parse_positive_int

    return parse_positive_int(value, f"${RUN_THREADS_ENV}")


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads in torch and in the BLAS libraries numpy/scipy use (metrics),
    restoring the previous counts afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def enable_determinism(device: torch.device) -> dict[str, Any]:
    """Switch on deterministic algorithms for ``device`` and return the settings, to be stored with the run.

    ``set_deterministic_debug_mode("error")`` is ``use_deterministic_algorithms(True)`` without the latter's import
    of torch._inductor (seconds per process, paid by every worker); inductor's own flag is set when it is loaded.
    """
    import torch

    cuda = device.type == "cuda"
    if cuda:
        late = torch.cuda.is_initialized() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        prepare_process()
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.set_deterministic_debug_mode("error")
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:
        inductor.deterministic = True  # type: ignore[attr-defined]
    settings: dict[str, Any] = {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "torch_threads": torch.get_num_threads(),
        "run_threads": run_threads(),
    }
    if cuda:
        settings["cudnn_deterministic"] = torch.backends.cudnn.deterministic
        settings["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        settings["cublas_workspace_config"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        # cuBLAS read the variable when CUDA started: if it was set only afterwards, cuBLAS may not be deterministic
        settings["cublas_config_before_cuda"] = not late
    return settings
