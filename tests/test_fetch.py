"""`lossbench fetch` against a real HTTP server on 127.0.0.1 serving files this test makes: verified downloads into
the folders lossbench reads, resume after a broken connection, and refusal of a file whose checksum is wrong."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lossbench.data import fetch as fetching, ondisk


class Files(BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes) with range requests; a name in ``server.cut_once`` is cut in half the
    first time it is sent whole, as a broken connection would."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server = self.server
        name = self.path.lstrip("/")
        server.requests.append((name, self.headers.get("Range")))
        if name not in server.files:
            self.send_error(404)
            return
        body = server.files[name]
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if not start and name in server.cut_once:
            server.cut_once.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    httpd.files, httpd.cut_once, httpd.requests = {}, set(), []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server: ThreadingHTTPServer, name: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def idx_files(n: int = 12) -> dict[str, bytes]:
    """A tiny MNIST training split in the distributed form: gzipped idx files, the same bytes on every call, as a
    mirror serves them (gzip's header holds a time: ``mtime=0`` keeps it from changing the digest between calls)."""
    images = (
        struct.pack(">IIII", ondisk.IDX_IMAGE_MAGIC, n, 28, 28)
        + bytes(range(256)) * (n * 784 // 256)
        + bytes(n * 784 % 256)
    )
    labels = struct.pack(">II", ondisk.IDX_LABEL_MAGIC, n) + bytes(i % 10 for i in range(n))
    return {
        "train-images-idx3-ubyte.gz": gzip.compress(images, mtime=0),
        "train-labels-idx1-ubyte.gz": gzip.compress(labels, mtime=0),
    }


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def local_sources(
    server: ThreadingHTTPServer,
    files: dict[str, bytes],
    name: str,
    folder: str,
    algorithm: str = "md5",
    extract: bool = False,
) -> dict[str, fetching.Source]:
    server.files.update(files)  # type: ignore[attr-defined]
    remotes = tuple(
        fetching.Remote((url(server, filename),), filename, algorithm, hashlib.new(algorithm, data).hexdigest())
        for filename, data in files.items()
    )
    return {name: fetching.Source(name, "test files", remotes, folder, extract=extract)}


def test_the_official_table_is_torchvisions_and_pytorch_fids() -> None:
    from pytorch_fid.inception import FID_WEIGHTS_URL
    from torchvision.datasets import CIFAR10, MNIST

    table = fetching.sources()
    assert sorted(table) == ["cifar10", "fashion-mnist", "inception", "mnist"]
    mnist = {remote.filename: remote for remote in table["mnist"].files}
    assert sorted(mnist) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]  # the training split only
    assert (
        mnist["train-images-idx3-ubyte.gz"].digest
        == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
        == dict(MNIST.resources)["train-images-idx3-ubyte.gz"]
    )
    assert mnist["train-images-idx3-ubyte.gz"].urls[0] == MNIST.mirrors[0] + "train-images-idx3-ubyte.gz"
    assert table["mnist"].folder == "MNIST/raw" and table["fashion-mnist"].folder == "FashionMNIST/raw"
    assert table["cifar10"].files[0].digest == CIFAR10.tgz_md5 == "c58f30108f718f92721af3b95e74349a"
    inception = table["inception"].files[0]
    assert inception.urls == (FID_WEIGHTS_URL,) and (inception.algorithm, inception.digest) == ("sha256", "6726825d")


def test_mnist_lands_where_lossbench_reads_it_and_is_not_fetched_twice(
    cli, server, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetching, "sources", lambda: local_sources(server, idx_files(), "mnist", "MNIST/raw"))
    first = cli("fetch", "mnist", "--to", "data")
    assert first.exit_code == 0, first.output
    assert "fetched: data/MNIST/raw/train-images-idx3-ubyte.gz (md5 verified)" in first.output
    layout = ondisk.IdxLayout("MNIST", "MNIST")
    assert ondisk.idx_availability(layout, workdir / "data") is None
    images, labels = ondisk.read_idx_dataset(layout, workdir / "data")
    assert tuple(images.shape)[0] == 12 and labels.tolist()[:3] == [0, 1, 2]

    again = cli("fetch", "mnist", "--to", "data")
    assert again.exit_code == 0 and again.output.count("already there:") == 2, again.output
    assert len(server.requests) == 2  # nothing downloaded the second time


def test_a_broken_download_resumes_with_a_range_request(
    cli, server, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = idx_files(400)
    monkeypatch.setattr(fetching, "sources", lambda: local_sources(server, files, "mnist", "MNIST/raw"))
    server.cut_once.add("train-images-idx3-ubyte.gz")
    broken = cli("fetch", "mnist", "--to", "data")
    assert broken.exit_code == 1
    part = workdir / "data/MNIST/raw/train-images-idx3-ubyte.gz.part"
    half = len(files["train-images-idx3-ubyte.gz"]) // 2
    assert part.stat().st_size == half
    assert broken.output.splitlines()[-1].endswith(
        f"{half} bytes kept in {part.relative_to(workdir)}, run the same command to resume"
    )

    resumed = cli("fetch", "mnist", "--to", "data")
    assert resumed.exit_code == 0, resumed.output
    assert ("train-images-idx3-ubyte.gz", f"bytes={half}-") in server.requests
    assert (workdir / "data/MNIST/raw/train-images-idx3-ubyte.gz").read_bytes() == files["train-images-idx3-ubyte.gz"]
    assert not part.exists()


def test_a_file_with_the_wrong_checksum_is_refused_and_removed(cli, server, workdir: Path) -> None:
    """The real table's MNIST md5s against a mirror serving other bytes: nothing is kept."""
    server.files.update(idx_files())
    result = cli("fetch", "mnist", "--to", "data", "--mirror", url(server, ""))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: train-images-idx3-ubyte.gz from {url(server, 'train-images-idx3-ubyte.gz')} has the wrong md5 "
        "(expected f68b3c2dcbeaaa9fbdd348bbdeb94873): refused and removed; try again or another mirror"
    )
    assert list((workdir / "data/MNIST/raw").iterdir()) == []


def test_a_users_file_with_another_checksum_is_never_overwritten(
    cli, server, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetching, "sources", lambda: local_sources(server, idx_files(), "mnist", "MNIST/raw"))
    mine = workdir / "data/MNIST/raw/train-images-idx3-ubyte.gz"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own file")
    result = cli("fetch", "mnist", "--to", "data")
    assert result.exit_code == 1 and "exists but its md5 is not" in result.output
    assert mine.read_bytes() == b"my own file" and server.requests == []


def test_cifar10_is_extracted_into_the_batches_folder(
    cli, server, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    import numpy as np

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for index in range(1, 6):
            data = pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [index % 10] * 4})
            info = tarfile.TarInfo(f"{ondisk.CIFAR_FOLDER}/data_batch_{index}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    files = {ondisk.CIFAR_ARCHIVE: archive.getvalue()}
    monkeypatch.setattr(fetching, "sources", lambda: local_sources(server, files, "cifar10", "", extract=True))
    result = cli("fetch", "cifar10", "--to", "data")
    assert result.exit_code == 0, result.output
    assert ondisk.cifar_availability(workdir / "data") is None
    images, labels = ondisk.read_cifar10(workdir / "data")
    assert tuple(images.shape) == (20, 3, 32, 32) and labels.tolist()[:4] == [1, 1, 1, 1]


def test_inception_weights_are_checked_by_the_sha256_prefix_in_their_name(server, tmp_path: Path) -> None:
    weights = b"not really weights"
    prefix = hashlib.sha256(weights).hexdigest()[:8]
    server.files[f"pt_inception-{prefix}.pth"] = weights
    good = fetching.Remote((url(server, f"pt_inception-{prefix}.pth"),), f"pt_inception-{prefix}.pth", "sha256", prefix)
    path, downloaded = fetching.fetch_file(good, tmp_path / "checkpoints")
    assert downloaded and path.read_bytes() == weights
    bad = fetching.Remote(good.urls, "other.pth", "sha256", "6726825d")
    with pytest.raises(fetching.FetchError, match="has the wrong sha256 \\(expected 6726825d\\)"):
        fetching.fetch_file(bad, tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints/other.pth").exists()


def test_without_a_data_folder_it_says_where_to_put_one(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOSSBENCH_DATA", raising=False)
    result = cli("fetch", "mnist")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: fetch mnist: no data folder; pass --to DIR or set LOSSBENCH_DATA=DIR "
        "(and give the same folder to `lossbench run --data-root`)"
    )
