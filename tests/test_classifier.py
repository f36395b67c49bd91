"""The per-dataset classifiers: held-out accuracy, deterministic training, the disk cache, features and modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from lossbench.api import FeatureNetwork, Samples
from lossbench.builtin import datasets as builtin
from lossbench.scoring import classifier as clf

SMALL_PLAN = clf.TrainingPlan(epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def digits() -> builtin.Digits:
    return builtin.Digits()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of the test's own, and no classifier held in this process."""
    monkeypatch.setenv(clf.CACHE_ENV, str(tmp_path / "cache"))
    clf.clear_memory()
    yield tmp_path / "cache" / "classifiers"
    clf.clear_memory()


def small_samples(digits: builtin.Digits, n: int = 300) -> Samples:
    data = digits.load(None)
    return Samples(data.x[:n].clone(), data.y[:n].clone())


def test_digits_classifier_reaches_95_percent_on_held_out_digits(digits: builtin.Digits) -> None:
    classifier = digits.classifier()
    data = digits.load(None)
    assert classifier.n_held_out == 359 and classifier.n_train == 1797 - 359
    assert classifier.accuracy >= 0.95
    # the recorded accuracy is what the network scores on the held-out split, recomputed here
    _, held = clf.split(len(data), digits.plan)
    label, _ = classifier.predict(data.x[held])
    assert float((label == data.y[held]).double().mean()) == pytest.approx(classifier.accuracy, abs=1e-12)
    assert classifier.name == "digits-classifier"
    print(
        f"digits classifier: held-out accuracy {classifier.accuracy:.4f}, trained in {classifier.train_seconds:.1f} s"
    )


def test_second_use_loads_from_disk_without_training(digits: builtin.Digits, cache: Path) -> None:
    samples = small_samples(digits)
    before = clf.TRAINING_COUNT["n"]
    first = clf.get_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN)
    assert first.source == "trained" and clf.TRAINING_COUNT["n"] == before + 1
    files = list(cache.glob("digits-small-v*.pt"))
    assert files == [first.path]
    stamp = first.path.stat().st_mtime_ns
    assert clf.get_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN) is first  # in-process cache
    clf.clear_memory()
    second = clf.get_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN)
    assert second.source == "cache" and second is not first
    assert clf.TRAINING_COUNT["n"] == before + 1 and first.path.stat().st_mtime_ns == stamp
    assert second.accuracy == first.accuracy and second.n_train == first.n_train
    for key, value in first.net.state_dict().items():
        assert torch.equal(value, second.net.state_dict()[key])


def test_cache_key_follows_the_data_and_the_plan(digits: builtin.Digits, cache: Path) -> None:
    samples = small_samples(digits)
    base = clf.get_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN)
    changed = Samples(samples.x.clone(), samples.y)
    changed.x[0, 0, 0, 0] += 0.5
    other_data = clf.get_classifier("digits-small", changed, (1, 8, 8), SMALL_PLAN)
    other_plan = clf.get_classifier("digits-small", samples, (1, 8, 8), clf.TrainingPlan(epochs=1, batch_size=64))
    assert len({base.path, other_data.path, other_plan.path}) == 3
    assert other_data.source == other_plan.source == "trained"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_corrupt_cache_file_is_retrained(digits: builtin.Digits, cache: Path, damage: str) -> None:
    samples = small_samples(digits)
    trained = clf.get_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN)
    path = trained.path
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a torch file" * 100)
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:  # a valid torch file holding something else
        torch.save({"format": "something-else", "weights": torch.zeros(3)}, path)
    clf.clear_memory()
    before = clf.TRAINING_COUNT["n"]
    again = clf.get_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN)
    assert again.source == "trained" and clf.TRAINING_COUNT["n"] == before + 1
    for key, value in trained.net.state_dict().items():  # deterministic: the same network again
        assert torch.equal(value, again.net.state_dict()[key])
    clf.clear_memory()
    assert clf.get_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN).source == "cache"  # rewritten


def test_training_is_deterministic_and_leaves_the_global_random_state_alone(
    digits: builtin.Digits, tmp_path: Path
) -> None:
    samples = small_samples(digits)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    one = clf.train_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN, tmp_path / "a.pt")
    assert torch.equal(torch.rand(3), expected_next)  # training consumed none of the caller's random numbers
    assert torch.get_num_threads() == threads
    two = clf.train_classifier("digits-small", samples, (1, 8, 8), SMALL_PLAN, tmp_path / "b.pt")
    for key, value in one.net.state_dict().items():
        assert torch.equal(value, two.net.state_dict()[key])
    assert one.accuracy == two.accuracy and one.n_held_out == 60


def test_feature_network_is_differentiable_penultimate_features(digits: builtin.Digits) -> None:
    network = digits.feature_network(torch.device("cpu"))
    assert isinstance(network, FeatureNetwork) and network.name == "digits-classifier"
    x = digits.load(None).x[:16].clone().requires_grad_(True)
    features = network.features(x)
    assert features.shape == (16, clf.FEATURE_DIM) and bool((features >= 0).all())  # after the ReLU
    features.square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(not p.requires_grad for p in network.parameters())
    # the features are the classifier's own: its last layer on them gives its logits
    classifier = digits.classifier()
    with torch.no_grad():
        assert torch.allclose(classifier.net.out(network.features(x)), classifier.net(x), atol=1e-5)
    network.to(torch.float64)  # a caller may move its copy; the shared classifier is untouched
    assert next(classifier.net.parameters()).dtype == torch.float32


def test_digits_mode_of_is_the_classifier_with_a_confidence_threshold(digits: builtin.Digits) -> None:
    data = digits.load(None)
    _, held = clf.split(len(data), digits.plan)
    noise = torch.rand((200, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = torch.cat([data.x[held], noise])
    assignment = digits.mode_of(x)
    with torch.no_grad():
        probs = F.softmax(digits.classifier().net(x), dim=1)
    assert torch.equal(assignment.mode, probs.argmax(dim=1))
    assert torch.equal(assignment.high_quality, probs.max(dim=1).values >= 0.5)
    assert float((assignment.mode[: len(held)] == data.y[held]).double().mean()) >= 0.95
    assert float(assignment.high_quality[: len(held)].double().mean()) >= 0.95
    assert not bool(assignment.high_quality[len(held) :].all())  # noise is not all confidently a digit


def test_stacked_digits_modes_and_features_come_from_each_channel(digits: builtin.Digits) -> None:
    stacked = builtin.StackedDigits(digits)
    data = digits.load(None)
    _, held = clf.split(len(data), digits.plan)
    per_digit = digits.mode_of(data.x[held])
    sure = held[per_digit.high_quality & (per_digit.mode == data.y[held])][:90]  # digits classified right
    a, b, c = sure[:30], sure[30:60], sure[60:90]
    x = torch.cat([data.x[a], data.x[b], data.x[c]], dim=1)
    assignment = stacked.mode_of(x)
    assert torch.equal(assignment.mode, 100 * data.y[a] + 10 * data.y[b] + data.y[c])
    assert bool(assignment.high_quality.all())
    # with noise in some channels: high quality only when every channel is, modes digit by digit
    noise = torch.rand((30, 3, 8, 8), generator=torch.Generator().manual_seed(1)) * 2 - 1
    mixed = x.clone()
    mixed[:15, 2:] = noise[:15, 2:]
    mixed[15:, :1] = noise[15:, :1]
    assignment = stacked.mode_of(mixed)
    channels = [digits.mode_of(mixed[:, i : i + 1]) for i in range(3)]
    assert torch.equal(assignment.mode, 100 * channels[0].mode + 10 * channels[1].mode + channels[2].mode)
    assert torch.equal(
        assignment.high_quality, channels[0].high_quality & channels[1].high_quality & channels[2].high_quality
    )
    assert 0 < int(assignment.high_quality.sum()) < 30  # some noise channels are not confidently a digit
    network = stacked.feature_network(torch.device("cpu"))
    assert isinstance(network, FeatureNetwork) and network.name == "digits-classifier-x3"
    single = digits.feature_network(torch.device("cpu"))
    with torch.no_grad():
        expected = torch.cat([single.features(x[:, i : i + 1]) for i in range(3)], dim=1)
        assert torch.equal(network.features(x), expected)
    assert expected.shape == (30, 3 * clf.FEATURE_DIM)


def test_on_disk_dataset_classifier_trains_on_the_loaded_files(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = torch.randint(0, 256, (40, 28, 28), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    labels = torch.arange(40, dtype=torch.uint8) % 10
    for name, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        header = bytes([0, 0, 8, array.dim()]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
        (raw / name).write_bytes(header + array.numpy().tobytes())
    monkeypatch.setenv("LOSSBENCH_DATA", str(root))
    mnist = builtin.mnist()
    x = mnist.load(root).x[:5]
    assignment = builtin.mnist().mode_of(x)  # before any load: the data folder comes from $LOSSBENCH_DATA
    assert assignment.mode.shape == (5,) and assignment.high_quality.dtype == torch.bool
    assert int(assignment.mode.max()) < 10
    network = mnist.feature_network(torch.device("cpu"))
    assert network.name == "mnist-classifier" and network.features(x).shape == (5, clf.FEATURE_DIM)
    assert [p.name.split("-v")[0] for p in cache.glob("*.pt")] == ["mnist"]
    assert os.listdir(root) == ["MNIST"] and sorted(os.listdir(raw)) == [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]
