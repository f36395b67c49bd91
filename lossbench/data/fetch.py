"""``lossbench fetch``: download a dataset's files or the FID Inception weights on request, verified.

Nothing in a run ever downloads; this command is the one place that does, and only when asked. The addresses
and checksums are the ones torchvision and pytorch-fid declare, read from those libraries so that they are
stated once. Downloads go to ``<file>.part`` first and resume from there with an HTTP range request, so a
broken connection costs only what is left; a file is put in place only once its checksum matches, and a file
whose checksum is wrong is refused (and its partial download removed), never kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lossbench.errors import LossbenchError, UsageError

CHUNK = 1 << 16
TIMEOUT_SECONDS = 60


class FetchError(LossbenchError):
    """A download failed or did not verify: one line naming the file and what to do."""


@dataclass(frozen=True)
class Remote:
    """One file to download: where from (mirrors tried in order), its name and its checksum."""

    urls: tuple[str, ...]
    filename: str
    algorithm: str  # "md5" (torchvision's) or "sha256" (pytorch-fid's, a prefix in the file name)
    digest: str  # the expected hex digest, or its prefix

    def verifies(self, path: Path) -> bool:
        return file_digest(path, self.algorithm).startswith(self.digest)


@dataclass(frozen=True)
class Source:
    """What ``lossbench fetch NAME`` downloads, and where in the target folder lossbench reads it."""

    name: str
    what: str
    files: tuple[Remote, ...]
    folder: str  # below the target folder ("" for the folder itself)
    extract: bool = False  # a tar archive to unpack in place (CIFAR-10)
    needs_data_root: bool = True  # datasets go to the data folder; the Inception weights to torch's hub cache


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _idx_source(name: str, dataset_class: type[Any], folder: str, what: str) -> Source:
    """The training files of an MNIST-like torchvision dataset (the test split is never read)."""
    files = tuple(
        Remote(tuple(mirror + filename for mirror in dataset_class.mirrors), filename, "md5", md5)
        for filename, md5 in dataset_class.resources
        if filename.startswith("train-")
    )
    return Source(name, what, files, f"{folder}/raw")


def sources() -> dict[str, Source]:
    """Every fetchable name, from torchvision's and pytorch-fid's own declarations."""
    import torch.hub
    from pytorch_fid.inception import FID_WEIGHTS_URL
    from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

    inception_file = FID_WEIGHTS_URL.rsplit("/", 1)[-1]
    match = torch.hub.HASH_REGEX.search(inception_file)
    inception_hash = match.group(1) if match else ""
    found = [
        _idx_source("mnist", MNIST, "MNIST", "MNIST training images and labels (torchvision's files)"),
        _idx_source("fashion-mnist", FashionMNIST, "FashionMNIST", "Fashion-MNIST training images and labels"),
        Source(
            "cifar10",
            "CIFAR-10 python batches (extracted from torchvision's archive)",
            (Remote((CIFAR10.url,), CIFAR10.filename, "md5", CIFAR10.tgz_md5),),
            "",
            extract=True,
        ),
        Source(
            "inception",
            "pytorch-fid's FID Inception weights",
            (Remote((FID_WEIGHTS_URL,), inception_file, "sha256", inception_hash),),
            "",
            needs_data_root=False,
        ),
    ]
    return {source.name: source for source in found}


def default_folder(source: Source) -> Path | None:
    """Where lossbench reads this source when no ``--to`` is given: the data folder, or torch's hub cache."""
    if not source.needs_data_root:
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    value = os.environ.get("LOSSBENCH_DATA")
    return Path(value) if value else None


Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def _download(url: str, part: Path, progress: Progress | None) -> None:
    """Append ``url``'s bytes to ``part``, resuming from its current size with a range request."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored the range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with part.open("ab" if have else "wb") as target:
            for block in iter(lambda: response.read(CHUNK), b""):
                target.write(block)
                have += len(block)
                if progress is not None:
                    progress(have, total)
    if total is not None and have < total:
        raise urllib.error.URLError(f"connection closed after {have} of {total} bytes")


def fetch_file(remote: Remote, folder: Path, progress: Progress | None = None) -> tuple[Path, bool]:
    """``folder/remote.filename``, downloaded and verified; returns (path, whether it was downloaded now)."""
    path = folder / remote.filename
    if path.exists():
        if remote.verifies(path):
            return path, False
        raise FetchError(
            f"{path} exists but its {remote.algorithm} is not {remote.digest}: "
            "move it away and fetch again (lossbench never overwrites a file it did not make)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    problems = []
    for url in remote.urls:
        try:
            _download(url, part, progress)
            break
        except (urllib.error.URLError, OSError) as exc:
            problems.append(f"{url}: {getattr(exc, 'reason', exc)}")
    else:
        kept = f"; {part.stat().st_size} bytes kept in {part}, run the same command to resume" if part.exists() else ""
        raise FetchError(f"could not download {remote.filename} ({'; '.join(problems)}){kept}")
    if not remote.verifies(part):
        part.unlink()
        raise FetchError(
            f"{remote.filename} from {url} has the wrong {remote.algorithm} "
            f"(expected {remote.digest}): refused and removed; try again or another mirror"
        )
    part.replace(path)
    return path, True


def _extract(archive: Path, folder: Path) -> None:
    """Unpack a verified tar archive in ``folder`` (the 'data' filter refuses links and paths that leave it)."""
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")


def with_mirror(remote: Remote, mirror: str | None) -> Remote:
    """``remote`` with ``<mirror>/<filename>`` tried first (an institutional mirror, or a test's local server)."""
    if not mirror:
        return remote
    return dataclasses.replace(remote, urls=(f"{mirror.rstrip('/')}/{remote.filename}", *remote.urls))


def fetch(
    name: str,
    target: Path | None,
    mirror: str | None = None,
    progress_for: Callable[[Remote], Progress | None] | None = None,
) -> list[str]:
    """Fetch one source into ``target`` (or where lossbench reads it); returns one line per file for the user."""
    known = sources()
    if name not in known:
        from lossbench.plugin.registry import unknown_name_message

        raise UsageError(unknown_name_message("fetchable name", name, list(known)))
    source = known[name]
    root = target if target is not None else default_folder(source)
    if root is None:
        raise FetchError(
            f"fetch {name}: no data folder; pass --to DIR or set LOSSBENCH_DATA=DIR "
            "(and give the same folder to `lossbench run --data-root`)"
        )
    folder = root / source.folder if source.folder else root
    lines = []
    for remote in (with_mirror(remote, mirror) for remote in source.files):
        path, downloaded = fetch_file(remote, folder, progress_for(remote) if progress_for else None)
        if source.extract:
            _extract(path, folder)
        lines.append(f"{'fetched' if downloaded else 'already there'}: {path} ({remote.algorithm} verified)")
    return lines
