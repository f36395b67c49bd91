"""Files lossbench writes: whole or not at all (temporary file + rename), only inside their folder, and only in
folders it owns.

A kill during a write must never leave a cut CSV or figure under the real name, and a name taken from the store or
a plugin (a run id, a dataset name) must never lead a write out of its folder. A folder that already held the
user's files is not lossbench's: it writes into a subfolder of its own there, and deletes only files it wrote.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lossbench.errors import LossbenchError

MARKER = ".lossbench-owned"  # in a folder lossbench created: the files it wrote there, one name a line (JSON)


class UnsafePath(LossbenchError):
    """A name would put a file outside its folder (e.g. a crafted run id such as ``../../x``)."""


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused unless it stays inside ``folder`` (no ``..``, no absolute name, no link out)."""
    folder = Path(folder)
    path = folder / name
    root = folder.resolve()
    if Path(name).is_absolute() or not path.resolve().is_relative_to(root) or path.resolve() == root:
        raise UnsafePath(f"refusing to write {name!r}: it would land outside {folder}/")
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` only when the block succeeds.

    The temporary name is hidden and unique, so a kill mid-write leaves the real file as it was (or absent).
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


class OwnedFolder:
    """A folder lossbench may write into and prune: ``parent/name`` if lossbench made it (its marker is there) or
    it does not exist yet; otherwise lossbench's own subfolder ``parent/name/lossbench`` (same rule, one level).

    The marker lists the files lossbench wrote, so ``prune`` removes only those, never a file someone put there.
    """

    def __init__(self, parent: Path, name: str) -> None:
        candidate, self.relative = Path(parent) / name, name
        if candidate.exists() and not (candidate / MARKER).is_file():
            candidate, self.relative = candidate / "lossbench", f"{name}/lossbench"
            if candidate.exists() and not (candidate / MARKER).is_file():
                raise LossbenchError(
                    f"{candidate}/ exists and was not made by lossbench; "
                    "move it away or choose another --reports folder"
                )
        self.path = candidate
        self.path.mkdir(parents=True, exist_ok=True)
        self.marker = self.path / MARKER
        if not self.marker.is_file():
            write_text(self.marker, "[]\n")

    def written(self) -> set[str]:
        try:
            names = json.loads(self.marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        return {name for name in names if isinstance(name, str)}

    def record(self, names: Iterable[str]) -> None:
        """Add ``names`` to the files lossbench wrote here."""
        write_text(self.marker, json.dumps(sorted(self.written() | set(names)), indent=0) + "\n")

    def file(self, name: str) -> Path:
        """Where to write ``name`` in this folder (refused if the name leads out of it)."""
        return inside(self.path, name)

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Delete the files lossbench wrote here that are not in ``keep``; return their names."""
        keep = set(keep)
        removed = []
        for name in sorted(self.written() - keep):
            path = self.path / name
            if path.parent == self.path and path.is_file():
                path.unlink()
            removed.append(name)
        write_text(self.marker, json.dumps(sorted(self.written() & keep), indent=0) + "\n")
        return removed
