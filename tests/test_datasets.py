"""The built-in datasets: exact mixtures, the bundled digits, stacked digits, and MNIST / Fashion-MNIST / CIFAR-10
read from tiny files written here in the exact on-disk formats (idx ubyte, CIFAR python pickles)."""

from __future__ import annotations

import gzip
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lossbench.api import DataSpec, describe
from lossbench.builtin import datasets as builtin
from lossbench.errors import DataUnavailable
from lossbench.plan.grid import expand
from lossbench.plugin.loader import PluginConfig, load_environment

# -- Gaussian mixtures ------------------------------------------------------------------------------------------


def test_ring8_centres_std_and_modes() -> None:
    """PacGAN's 2D-ring (its 2DRing config.py): means (cos 2pi i/8, sin 2pi i/8), variance 0.01^2 I."""
    ring = builtin.ring8()
    assert ring.spec == DataSpec((2,), "points", 8)
    radius = ring.centres.norm(dim=1)
    assert torch.allclose(radius, torch.full((8,), 1.0), atol=1e-6)
    assert ring.std == 0.01
    angles = torch.atan2(ring.centres[:, 1], ring.centres[:, 0]).double() % (2 * math.pi)
    assert torch.allclose(angles.sort().values, torch.arange(8, dtype=torch.float64) * math.pi / 4, atol=1e-6)
    samples = ring.load(None)
    assert samples.x.shape == (20_000, 2) and samples.x.dtype == torch.float32
    assert set(samples.y.tolist()) == set(range(8))
    residual = samples.x - ring.centres[samples.y]
    assert residual.std(dim=0).sub(0.01).abs().max() < 0.0005  # sample std 0.01 on both axes
    assert torch.equal(ring.load(None).x, samples.x)  # fixed seed
    assert ring.feature_network(torch.device("cpu")) is None and ring.availability(None) is None


def test_grid25_centres_std_and_modes() -> None:
    """PacGAN's 2D-grid (its 2DGrid config.py): means (i, j) for i, j in range(-4, 5, 2), variance 0.05^2 I."""
    grid = builtin.grid25()
    assert grid.std == 0.05
    assert grid.spec == DataSpec((2,), "points", 25)
    expected = {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(int(v) for v in centre) for centre in grid.centres.round()} == expected
    assert torch.equal(grid.centres, grid.centres.round())
    samples = grid.load(None)
    assert set(samples.y.tolist()) == set(range(25))
    residual = samples.x - grid.centres[samples.y]
    assert residual.std(dim=0).sub(0.05).abs().max() < 0.002
    # every sample's true component is also the one mode_of assigns (the modes are 40 std apart)
    assignment = grid.mode_of(samples.x)
    assert torch.equal(assignment.mode, samples.y)
    assert 0.98 < assignment.high_quality.double().mean() < 0.995  # P(|N(0,I_2)| <= 3) = 1 - e^-4.5 = 0.9889


def test_mode_of_is_exact_on_hand_placed_points() -> None:
    ring = builtin.ring8()
    std = 0.01
    centre = ring.centres[2]  # (0, 1)
    points = torch.stack(
        [
            centre,  # on the centre
            centre + torch.tensor([2.9 * std, 0.0]),  # 2.9 std away: still high quality
            centre + torch.tensor([3.02 * std, 0.0]),  # just beyond 3 std: not (PacGAN counts distances < 3)
            centre + torch.tensor([0.0, -3.1 * std]),  # 3.1 std away: same mode, low quality
            torch.tensor([0.0, 0.0]) + 0.01 * ring.centres[5],  # near the origin, on the side of centre 5
        ]
    )
    assignment = ring.mode_of(points)
    assert assignment.mode.tolist() == [2, 2, 2, 2, 5]
    assert assignment.high_quality.tolist() == [True, True, False, False, False]
    assert assignment.mode.dtype == torch.int64 and assignment.high_quality.dtype == torch.bool


# -- digits and stacked digits ----------------------------------------------------------------------------------


def test_digits_shape_range_and_labels() -> None:
    from sklearn.datasets import load_digits

    digits = builtin.Digits()
    assert digits.spec == DataSpec((1, 8, 8), "image", 10)
    samples = digits.load(None)
    bunch = load_digits()
    assert samples.x.shape == (1797, 1, 8, 8) and samples.x.dtype == torch.float32
    assert float(samples.x.min()) == -1.0 and float(samples.x.max()) == 1.0
    expected = torch.as_tensor(bunch.images, dtype=torch.float32) * (2 / 16) - 1  # 0 -> -1, 8 -> 0, 16 -> 1
    assert torch.allclose(samples.x[:, 0], expected, atol=1e-6)
    assert samples.y.tolist() == bunch.target.tolist() and set(samples.y.tolist()) == set(range(10))


def test_stacked_digits_channels_and_labels_match_the_digits() -> None:
    digits = builtin.Digits()
    stacked = builtin.StackedDigits(digits)
    assert stacked.spec == DataSpec((3, 8, 8), "image", 1000)
    samples = stacked.load(None)
    assert samples.x.shape == (stacked.n_samples, 3, 8, 8) and stacked.n_samples >= 10_000
    assert len(samples.y.unique()) == 1000 and 0 <= samples.y.min() and samples.y.max() <= 999
    assert torch.equal(stacked.load(None).y, samples.y)
    base = digits.load(None)
    classes_of: dict[bytes, set[int]] = {}  # each digit image -> its class(es)
    for image, label in zip(base.x.numpy(), base.y.tolist()):
        classes_of.setdefault(image.tobytes(), set()).add(label)
    for image, label in zip(samples.x[:2000].numpy(), samples.y[:2000].tolist()):
        # each channel is one of the digits, and the label's decimal digits are their classes
        classes = [classes_of[image[channel : channel + 1].tobytes()] for channel in range(3)]
        assert label // 100 in classes[0] and (label // 10) % 10 in classes[1] and label % 10 in classes[2]


def test_builtins_are_registered_through_the_hook_with_descriptions() -> None:
    env = load_environment(PluginConfig(entry_points=False))
    names = env.catalog.datasets.names()
    expected = {"ring8", "grid25", "digits", "stacked-digits", "mnist", "fashion-mnist", "cifar10"}
    assert expected <= set(names)
    for name in expected:
        assert env.catalog.datasets.plugin_of(name) == "lossbench.builtin.datasets"
        text = describe(env.catalog.datasets.get(name))
        assert text and "\n" not in text


# -- on-disk formats, written here ------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx ubyte file: magic 0x0000 08 <ndim>, big-endian dimension sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_arrays(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        images[i] = i * 20  # a grey level per image
        images[i, 3, 5] = 255
        images[i, 27, 0] = 51
    labels = (np.arange(n) * 7) % 10
    return images, labels


def write_mnist(root: Path, folder: str = "MNIST", gz: bool = False, n: int = 12) -> Path:
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    images, labels = mnist_arrays(n)
    for name, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    return raw


def check_mnist_samples(samples, n: int = 12) -> None:
    images, labels = mnist_arrays(n)
    assert samples.x.shape == (n, 1, 28, 28) and samples.x.dtype == torch.float32
    for i in range(n):
        assert math.isclose(float(samples.x[i, 0, 10, 10]), i * 20 / 127.5 - 1, abs_tol=1e-6)
    assert torch.all(samples.x[:, 0, 3, 5] == 1.0)  # 255 -> 1
    assert torch.allclose(samples.x[:, 0, 27, 0], torch.tensor(-0.6))  # 51 -> -0.6
    assert float(samples.x[0].min()) == -1.0  # 0 -> -1
    assert samples.y.tolist() == labels.tolist() and samples.y.dtype == torch.int64


def test_mnist_loads_from_idx_files(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    mnist = builtin.mnist()
    assert mnist.spec == DataSpec((1, 28, 28), "image", 10)
    assert mnist.availability(tmp_path) is None
    check_mnist_samples(mnist.load(tmp_path))


def test_fashion_mnist_loads_from_gzipped_idx_files(tmp_path: Path) -> None:
    raw = write_mnist(tmp_path, "FashionMNIST", gz=True)
    assert sorted(p.name for p in raw.iterdir()) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    fashion = builtin.fashion_mnist()
    assert fashion.availability(str(tmp_path)) is None
    check_mnist_samples(fashion.load(tmp_path))
    assert sorted(p.name for p in raw.iterdir()) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_mnist_missing_file_names_it_and_the_folder(tmp_path: Path) -> None:
    raw = write_mnist(tmp_path)
    (raw / "train-labels-idx1-ubyte").unlink()
    mnist = builtin.mnist()
    message = mnist.availability(tmp_path)
    assert message is not None and "\n" not in message
    assert message.startswith("train-labels-idx1-ubyte not found") and f"{raw}/" in message
    with pytest.raises(DataUnavailable, match="train-labels-idx1-ubyte not found") as error:
        mnist.load(tmp_path)
    assert str(raw) in str(error.value)
    # nothing at all in an empty folder: both files named, and where torchvision's layout wants them
    empty = builtin.fashion_mnist().availability(tmp_path)
    assert "train-images-idx3-ubyte and train-labels-idx1-ubyte not found" in empty
    assert str(tmp_path / "FashionMNIST" / "raw") in empty


def test_no_data_folder_says_how_to_give_one() -> None:
    for dataset in (builtin.mnist(), builtin.fashion_mnist(), builtin.Cifar10()):
        message = dataset.availability(None)
        assert "--data-root" in message and "LOSSBENCH_DATA" in message and "\n" not in message
        with pytest.raises(DataUnavailable, match="--data-root"):
            dataset.load(None)
    assert "DIR/MNIST/raw/" in builtin.mnist().availability(None)
    assert "DIR/cifar-10-batches-py/" in builtin.Cifar10().availability(None)


def test_truncated_idx_file_is_named(tmp_path: Path) -> None:
    raw = write_mnist(tmp_path)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    mnist = builtin.mnist()
    message = mnist.availability(tmp_path)
    assert message is not None and str(path) in message and "corrupt" in message
    with pytest.raises(DataUnavailable, match="train-images-idx3-ubyte"):
        mnist.load(tmp_path)


def test_garbage_idx_files_are_named(tmp_path: Path) -> None:
    raw = write_mnist(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"this is not an idx file at all")
    with pytest.raises(DataUnavailable, match=r"train-labels-idx1-ubyte is corrupt \(not an idx label file"):
        builtin.mnist().load(tmp_path)
    # compressed files: a truncated .gz is caught by its gzip trailer's size, without decompressing
    raw = write_mnist(tmp_path, "FashionMNIST", gz=True)
    data = (raw / "train-images-idx3-ubyte.gz").read_bytes()
    (raw / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    fashion = builtin.fashion_mnist()
    message = fashion.availability(tmp_path)  # cheap check: header and the gzip trailer's size
    assert message.startswith(f"{raw / 'train-images-idx3-ubyte.gz'} is corrupt")
    with pytest.raises(DataUnavailable, match=r"train-images-idx3-ubyte\.gz is corrupt"):
        fashion.load(tmp_path)
    # damage in the middle of the stream, header and trailer intact: only reading it finds out
    images, _ = mnist_arrays()
    data = gzip.compress(idx_bytes(images))
    (raw / "train-images-idx3-ubyte.gz").write_bytes(data[:-30] + bytes(b ^ 0x5A for b in data[-30:-8]) + data[-8:])
    assert builtin.fashion_mnist().availability(tmp_path) is None
    with pytest.raises(DataUnavailable, match=r"train-images-idx3-ubyte\.gz is not a valid idx image file"):
        builtin.fashion_mnist().load(tmp_path)
    # an image file where the labels belong
    (raw / "train-images-idx3-ubyte.gz").write_bytes(data)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(data)
    with pytest.raises(DataUnavailable, match=r"train-labels-idx1-ubyte\.gz is corrupt \(not an idx label file"):
        builtin.fashion_mnist().load(tmp_path)


def test_images_and_labels_must_agree(tmp_path: Path) -> None:
    raw = write_mnist(tmp_path)
    _, labels = mnist_arrays(5)
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DataUnavailable, match="12 images but .*train-labels-idx1-ubyte 5 labels"):
        builtin.mnist().load(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(12) + 3))  # labels 3..14
    with pytest.raises(DataUnavailable, match="train-labels-idx1-ubyte holds labels outside 0..9"):
        builtin.mnist().load(tmp_path)


def cifar_batch(offset: int, n: int = 2) -> dict:
    data = np.zeros((n, 3072), dtype=np.uint8)
    for i in range(n):
        data[i, :1024] = 255  # red plane
        data[i, 2048:] = 127  # blue plane
        data[i, 1024 + 3 * 32 + 5] = 51  # green, row 3, column 5
        data[i, 0] = offset + i  # red, row 0, column 0: which image this is
    return {
        "batch_label": f"training batch {offset}",
        "labels": [(offset + i) % 10 for i in range(n)],
        "data": data,
        "filenames": [f"img{offset + i}.png" for i in range(n)],
    }


def write_cifar(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(1, 6):
        with (folder / f"data_batch_{b}").open("wb") as handle:
            pickle.dump(cifar_batch(2 * (b - 1)), handle, protocol=2)
    with (folder / "test_batch").open("wb") as handle:
        pickle.dump(cifar_batch(100), handle, protocol=2)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump(
            {
                "label_names": [
                    "airplane",
                    "automobile",
                    "bird",
                    "cat",
                    "deer",
                    "dog",
                    "frog",
                    "horse",
                    "ship",
                    "truck",
                ],
                "num_cases_per_batch": 2,
                "num_vis": 3072,
            },
            handle,
            protocol=2,
        )
    return folder


def test_cifar10_loads_from_python_batches(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    cifar = builtin.Cifar10()
    assert cifar.spec == DataSpec((3, 32, 32), "image", 10)
    assert cifar.availability(tmp_path) is None
    samples = cifar.load(tmp_path)
    assert samples.x.shape == (10, 3, 32, 32) and samples.x.dtype == torch.float32
    assert samples.y.tolist() == list(range(10))  # batches 1..5 in order, test_batch left out
    assert [round((float(v) + 1) * 127.5) for v in samples.x[:, 0, 0, 0]] == list(range(10))
    assert torch.all(samples.x[:, 0, 1:, :] == 1.0)  # red 255
    assert torch.allclose(samples.x[:, 2], torch.tensor(127 / 127.5 - 1))  # blue 127
    assert torch.allclose(samples.x[:, 1, 3, 5], torch.tensor(-0.6)) and torch.all(samples.x[:, 1, 0, 0] == -1.0)


def test_torchvision_refuses_these_files_by_md5_which_is_why_the_pickles_are_read_directly(tmp_path: Path) -> None:
    import torchvision

    write_cifar(tmp_path)
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)


def test_cifar10_missing_and_corrupt_batches_are_named(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path)
    cifar = builtin.Cifar10()
    (folder / "data_batch_3").unlink()
    message = cifar.availability(tmp_path)
    assert message.startswith("data_batch_3 not found in") and f"{folder}/" in message and "\n" not in message
    with pytest.raises(DataUnavailable, match="data_batch_3 not found"):
        cifar.load(tmp_path)
    with (folder / "data_batch_3").open("wb") as handle:
        pickle.dump(cifar_batch(4), handle, protocol=2)
    good = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(good[: len(good) // 2])  # truncated pickle
    with pytest.raises(DataUnavailable, match=r"data_batch_2 is not a CIFAR-10 python batch"):
        builtin.Cifar10().load(tmp_path)
    (folder / "data_batch_2").write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(DataUnavailable, match=r"data_batch_2 is not a CIFAR-10 python batch"):
        builtin.Cifar10().load(tmp_path)
    with (folder / "data_batch_2").open("wb") as handle:
        pickle.dump({"data": np.zeros((2, 100), dtype=np.uint8), "labels": [0, 1]}, handle)
    with pytest.raises(DataUnavailable, match=r"data_batch_2: 'data' is uint8 \(2, 100\), expected uint8 \(n, 3072\)"):
        builtin.Cifar10().load(tmp_path)


# -- the grid and the command line ------------------------------------------------------------------------------


def test_default_grid_skips_on_disk_datasets_without_files_and_keeps_them_with(tmp_path: Path) -> None:
    catalog = load_environment(PluginConfig(entry_points=False)).catalog
    plan = expand(catalog, preset="smoke", data_root=tmp_path)
    datasets = {spec.dataset for spec in plan.specs}
    assert {"ring8", "grid25", "digits", "stacked-digits"} <= datasets
    assert not datasets & {"mnist", "fashion-mnist", "cifar10"}
    skipped = [note for note in plan.notes if "skipped dataset" in note]
    assert len(skipped) == 3 and any(str(tmp_path / "MNIST" / "raw") in note for note in skipped)
    write_mnist(tmp_path)
    datasets = {spec.dataset for spec in expand(catalog, preset="smoke", data_root=tmp_path).specs}
    assert "mnist" in datasets and "cifar10" not in datasets
    with pytest.raises(DataUnavailable, match="dataset 'cifar10': .*data_batch_1"):
        expand(catalog, datasets=["cifar10"], preset="smoke", data_root=tmp_path)


def test_run_mnist_without_files_exits_with_one_line(cli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOSSBENCH_DATA", raising=False)
    result = cli("run", "-d", "mnist", "--preset", "smoke")
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert "dataset 'mnist'" in errors[0] and "--data-root" in errors[0] and "MNIST/raw/" in errors[0]
    empty = workdir / "data"
    empty.mkdir()
    result = cli("run", "-d", "mnist", "--preset", "smoke", "--data-root", str(empty))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert (
        "put train-images-idx3-ubyte and train-labels-idx1-ubyte (or their .gz) from the MNIST distribution in "
        f"{empty / 'MNIST' / 'raw'}/"
    ) in result.output
