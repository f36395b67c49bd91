"""Read MNIST, Fashion-MNIST and CIFAR-10 from the user's disk, in torchvision's folder layout, never downloading.

Why not simply ``torchvision.datasets.MNIST(root, download=False)``? Its class insists on all four MNIST files
uncompressed (test split included) and CIFAR10 refuses any batch whose md5 differs from the official archive's,
which rules out subsets and the tiny files the tests write. So files are looked up in the same places
(``<root>/MNIST/raw/``, ``<root>/FashionMNIST/raw/``, ``<root>/cifar-10-batches-py/``) and read the same way:
idx files through torchvision's own parser, CIFAR batches as the pickles torchvision reads. Only the training
split is needed. Every problem becomes ``DataUnavailable`` naming the file and saying what to put where.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lossbench.errors import DataUnavailable

ROOT_HINT = "pass --data-root DIR or set LOSSBENCH_DATA=DIR"
N_CLASSES = 10
IDX_IMAGE_MAGIC = 0x00000803  # uint8, 3 dimensions
IDX_LABEL_MAGIC = 0x00000801  # uint8, 1 dimension


def _root(root: Path | str | None) -> Path | None:
    return None if root is None or str(root) == "" else Path(root).expanduser()


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# -- MNIST and Fashion-MNIST: idx files -------------------------------------------------------------------------
@dataclass(frozen=True)
class IdxLayout:
    """Where torchvision keeps one MNIST-like dataset: ``<root>/<folder>/raw/`` holding idx files (or .gz)."""

    title: str  # e.g. "MNIST"
    folder: str  # torchvision's class name: "MNIST" | "FashionMNIST"
    images: str = "train-images-idx3-ubyte"
    labels: str = "train-labels-idx1-ubyte"

    def raw(self, root: Path) -> Path:
        return root / self.folder / "raw"

    def find(self, root: Path, name: str) -> Path | None:
        """The file itself, or its ``.gz`` as distributed, whichever is there (the plain one first)."""
        for candidate in (self.raw(root) / name, self.raw(root) / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def what_to_put(self, where: str) -> str:
        return f"put {self.images} and {self.labels} (or their .gz) from the {self.title} distribution in {where}"


def idx_availability(layout: IdxLayout, root: Path | str | None) -> str | None:
    """None when both training files are there and their headers agree with their sizes; else one line."""
    root = _root(root)
    if root is None:
        return f"no data folder: {ROOT_HINT}, and {layout.what_to_put('DIR/' + layout.folder + '/raw/')}"
    paths = {name: layout.find(root, name) for name in (layout.images, layout.labels)}
    found = {name: path for name, path in paths.items() if path is not None}
    missing = [name for name in paths if name not in found]
    if missing:
        return (
            f"{_join(missing)} not found: {layout.what_to_put(str(layout.raw(root)) + '/')} "
            f"(data folder from --data-root / LOSSBENCH_DATA)"
        )
    for name, path in found.items():
        problem = _idx_header_problem(path, IDX_IMAGE_MAGIC if name == layout.images else IDX_LABEL_MAGIC)
        if problem:
            return f"{path} is corrupt ({problem}): {layout.what_to_put(str(layout.raw(root)) + '/')}"
    return None


def _idx_header_problem(path: Path, magic: int) -> str | None:
    """A cheap check (no full read) that an idx file's magic and size agree with its header.

    For a ``.gz`` the size is the gzip trailer's (uncompressed size mod 2^32), so a truncated download is
    caught here too, without decompressing it.
    """
    header_size = 16 if magic == IDX_IMAGE_MAGIC else 8
    try:
        if path.suffix == ".gz":
            with path.open("rb") as handle:
                handle.seek(0, 2)
                if handle.tell() < 18:
                    return "too short for a gzip file"
                handle.seek(-4, 2)
                size = int.from_bytes(handle.read(4), "little")
            with gzip.open(path, "rb") as handle:
                header = handle.read(header_size)
        else:
            size = path.stat().st_size
            with path.open("rb") as handle:
                header = handle.read(header_size)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        return f"unreadable: {exc}"
    if len(header) < header_size or int.from_bytes(header[:4], "big") != magic:
        kind = "image" if magic == IDX_IMAGE_MAGIC else "label"
        return f"not an idx {kind} file: bad header"
    dims = [int.from_bytes(header[i : i + 4], "big") for i in range(4, header_size, 4)]
    expected = header_size + int(np.prod(dims))
    if path.suffix == ".gz" and size != expected % 2**32:
        return f"decompresses to {size} bytes where its header promises {expected} (truncated?)"
    if path.suffix != ".gz" and size != expected:
        return f"{size} bytes where its header promises {expected}"
    return None


def _read_idx(path: Path, reader, what: str) -> Tensor:
    """Parse one idx file with torchvision's reader; a .gz is decompressed to a temporary file first."""
    try:
        if path.suffix != ".gz":
            return reader(str(path))
        with tempfile.TemporaryDirectory(prefix="lossbench-idx-") as tmp:
            plain = Path(tmp) / path.stem
            with gzip.open(path, "rb") as source, plain.open("wb") as target:
                shutil.copyfileobj(source, target)
            return reader(str(plain))
    except Exception as exc:  # torchvision parses with asserts and view(): turn any failure into a named file
        reason = str(exc).strip() or type(exc).__name__
        raise DataUnavailable(
            f"{path} is not a valid idx {what} file ({reason}); replace it with the original"
        ) from None


def read_idx_dataset(layout: IdxLayout, root: Path | str | None) -> tuple[Tensor, Tensor]:
    """The training split as ``uint8 (N, 28, 28)`` images and ``int64 (N,)`` labels, validated."""
    missing = idx_availability(layout, root)
    if missing:
        raise DataUnavailable(f"{layout.title}: {missing}")
    root = _root(root)
    assert root is not None
    image_path = layout.find(root, layout.images)
    label_path = layout.find(root, layout.labels)
    assert image_path is not None and label_path is not None
    from torchvision.datasets.mnist import read_image_file, read_label_file  # lazy: torchvision costs ~2 s to import

    images = _read_idx(image_path, read_image_file, "image")
    labels = _read_idx(label_path, read_label_file, "label")
    if tuple(images.shape[1:]) != (28, 28):
        raise DataUnavailable(f"{image_path} holds images of {tuple(images.shape[1:])} pixels, not 28x28")
    if len(images) != len(labels):
        raise DataUnavailable(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DataUnavailable(f"{label_path} holds labels outside 0..{N_CLASSES - 1}")
    if len(images) == 0:
        raise DataUnavailable(f"{image_path} holds no images")
    return images, labels.long()


# -- CIFAR-10: python pickle batches ----------------------------------------------------------------------------
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"


def _cifar_what_to_put(root: str) -> str:
    return f"extract {CIFAR_ARCHIVE} in {root} so that {root}/{CIFAR_FOLDER}/ holds data_batch_1 ... data_batch_5"


def cifar_availability(root: Path | str | None) -> str | None:
    """None when the five training batches are there (non-empty); else one line saying what to put where."""
    root = _root(root)
    if root is None:
        return f"no data folder: {ROOT_HINT}, and {_cifar_what_to_put('DIR')}"
    folder = root / CIFAR_FOLDER
    missing = [name for name in CIFAR_BATCHES if not (folder / name).is_file()]
    if missing:
        return (
            f"{_join(missing)} not found in {folder}/: {_cifar_what_to_put(str(root))} (--data-root / LOSSBENCH_DATA)"
        )
    empty = [name for name in CIFAR_BATCHES if (folder / name).stat().st_size == 0]
    if empty:
        return f"{folder / empty[0]} is empty: {_cifar_what_to_put(str(root))}"
    return None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch as torchvision reads it (pickle, latin1): ``data`` uint8 (n, 3072) rows in CHW order, ``labels``."""
    try:
        with path.open("rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
    except Exception as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise DataUnavailable(
            f"{path} is not a CIFAR-10 python batch ({reason}); replace it from {CIFAR_ARCHIVE}"
        ) from None
    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise DataUnavailable(
            f"{path} is not a CIFAR-10 python batch (no 'data' and 'labels'); replace it from {CIFAR_ARCHIVE}"
        )
    data = np.asarray(entry["data"])
    labels = np.asarray(entry["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataUnavailable(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (n, 3072)")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataUnavailable(f"{path}: {data.shape[0]} images but 'labels' of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DataUnavailable(f"{path}: labels outside 0..{N_CLASSES - 1}")
    return data, labels


def read_cifar10(root: Path | str | None) -> tuple[Tensor, Tensor]:
    """The training split (data_batch_1..5) as ``uint8 (N, 3, 32, 32)`` images and ``int64 (N,)`` labels."""
    missing = cifar_availability(root)
    if missing:
        raise DataUnavailable(f"CIFAR-10: {missing}")
    folder = _root(root) / CIFAR_FOLDER  # type: ignore[operator]
    batches = [_read_cifar_batch(folder / name) for name in CIFAR_BATCHES]
    data = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([b[1] for b in batches]).astype(np.int64)
    if len(data) == 0:
        raise DataUnavailable(f"{folder}/ batches hold no images: {_cifar_what_to_put(str(_root(root)))}")
    return torch.from_numpy(data), torch.from_numpy(labels)


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 pixels 0..255 to float32 in [-1, 1] (0 -> -1, 255 -> 1), with a channel axis for grey images."""
    x = images.float().div_(127.5).sub_(1.0)
    return x.unsqueeze(1) if x.dim() == 3 else x
