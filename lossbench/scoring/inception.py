"""pytorch-fid's FID Inception, offline: where its weights are found and the 2048-d pool3 extractor.

The built-in "inception" feature space (``lossbench.scoring.spaces``) builds on this. Nothing here downloads:
the weights come from ``--inception-weights`` / ``$LOSSBENCH_INCEPTION_WEIGHTS`` or the torch hub cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from lossbench.errors import DataUnavailable

INCEPTION_FEATURES = "inception-v3-pool3"  # the name stored beside every value computed with FID Inception
INCEPTION_WEIGHTS_ENV = "LOSSBENCH_INCEPTION_WEIGHTS"  # set by ``--inception-weights PATH``
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's file name in the torch hub cache
INCEPTION_MIN_SIDE = 16  # smaller images (the 8x8 built-ins) are scored in their classifier's space
INCEPTION_BATCH = 32  # 299x299 inputs: keep a CPU batch within a few hundred MB
INCEPTION_WIDTH = 2048


def hub_inception_path() -> Path:
    """Where pytorch-fid looks for its weights: ``<torch hub dir>/checkpoints/<file>`` (honours ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_weights() -> Path | None:
    """The FID Inception weights file if present offline, else None.

    ``$LOSSBENCH_INCEPTION_WEIGHTS`` (``--inception-weights``) wins; a path given there that is not a file is an
    error (the user asked for it), while an empty torch hub cache just means "score in the fallback space".
    """
    given = os.environ.get(INCEPTION_WEIGHTS_ENV)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise DataUnavailable(
                f"--inception-weights / ${INCEPTION_WEIGHTS_ENV}: no file at {path} "
                f"(expected pytorch-fid's {INCEPTION_FILE})"
            )
        return path
    cached = hub_inception_path()
    return cached if cached.is_file() else None


@contextlib.contextmanager
def _hub_serving(weights: Path) -> Iterator[None]:
    """Make pytorch-fid's ``load_state_dict_from_url`` find ``weights`` in the hub cache, so it never downloads.

    pytorch-fid always loads through the torch hub cache. A file already there needs nothing; a file elsewhere
    is linked into a temporary hub folder for the duration of the build, and the previous hub folder restored.
    """
    if weights.resolve() == hub_inception_path().resolve():
        yield
        return
    previous = getattr(torch.hub, "_hub_dir", None)
    with tempfile.TemporaryDirectory(prefix="lossbench-hub-") as hub:
        checkpoints = Path(hub) / "checkpoints"
        checkpoints.mkdir()
        try:
            (checkpoints / INCEPTION_FILE).symlink_to(weights.resolve())
        except OSError:  # no symlinks on this filesystem: copy
            shutil.copyfile(weights, checkpoints / INCEPTION_FILE)
        torch.hub.set_dir(hub)
        try:
            yield
        finally:
            torch.hub._hub_dir = previous  # restore exactly, including "unset" (follow $TORCH_HOME)


_INCEPTION: dict[tuple[str, str], nn.Module] = {}


def load_inception(weights: Path, device: torch.device) -> nn.Module:
    """pytorch-fid's ``InceptionV3`` (pool3 block, FID weights, its own resize and normalisation), kept per process.

    Built only once the weights file is known to exist, so that pytorch-fid never tries the network.
    """
    key = (str(weights.resolve()), str(device))
    if key not in _INCEPTION:
        from pytorch_fid.inception import InceptionV3

        block = InceptionV3.BLOCK_INDEX_BY_DIM[2048]
        try:
            with _hub_serving(weights):
                model = InceptionV3([block], use_fid_inception=True)
        except Exception as exc:
            raise DataUnavailable(
                f"Inception weights at {weights} could not be loaded "
                f"({type(exc).__name__}: {exc}); expected pytorch-fid's {INCEPTION_FILE}"
            ) from None
        _INCEPTION[key] = model.eval().to(device)
    return _INCEPTION[key]


class InceptionFeatures(nn.Module):
    """A ``FeatureNetwork``: 2048-d pool3 features of pytorch-fid's Inception; images go from [-1, 1] to its
    [0, 1], grey to 3 channels (pytorch-fid resizes to 299 px itself)."""

    name = INCEPTION_FEATURES

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def features(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"Inception features need (N, 1 or 3, H, W) images, got shape {tuple(x.shape)}")
        x = ((x.float() + 1) / 2).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        chunks = []
        for chunk in x.split(INCEPTION_BATCH):
            pooled = self.model(chunk)[0]
            if pooled.shape[2:] != (1, 1):  # as pytorch-fid's get_activations
                pooled = torch.nn.functional.adaptive_avg_pool2d(pooled, (1, 1))
            chunks.append(pooled.flatten(1))
        return torch.cat(chunks)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
